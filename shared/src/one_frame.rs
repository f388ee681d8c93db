//! One-Frame's wire format (as the service is observed to answer) and the checks a client applies to
//! its answers. One-Frame reports errors as HTTP 200 with `{"error": "..."}`,
//! so the body, not the status, decides.

/// The token the public One-Frame image accepts (and the emulator by
/// default); real deployments set their own from a Secret.
pub const PUBLIC_TOKEN: &str = "10dc303535874aeccc86a8251e6992f5";

use crate::currency::Currency;
use crate::pair::Pair;
use crate::quote::{Quote, QuoteError};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// How far in the future a `time_stamp` may be before the answer is refused
/// (clock skew between One-Frame and us).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// One element of One-Frame's answer array.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WireQuote {
    pub from: String,
    pub to: String,
    pub bid: f64,
    pub ask: f64,
    pub price: f64,
    pub time_stamp: String,
}

/// The error messages One-Frame is known to send.
pub mod messages {
    pub const FORBIDDEN: &str = "Forbidden";
    pub const INVALID_PAIR: &str = "Invalid Currency Pair";
    pub const NO_PAIR: &str = "No currency pair provided";
    pub const QUOTA_REACHED: &str = "Quota reached";
}

/// What went wrong with an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerError {
    /// `{"error":"Forbidden"}`: the token is missing or wrong.
    Forbidden,
    /// `{"error":"Quota reached"}`: no more calls today.
    QuotaReached,
    /// Another `{"error": ...}` body (e.g. `Invalid Currency Pair`).
    Upstream(String),
    /// Not JSON, or JSON of the wrong shape.
    Malformed(String),
    /// A quote names an unknown currency or has a bad timestamp.
    BadQuote(String),
    /// A quote's numbers are unusable.
    Quote(QuoteError),
    /// A requested pair is missing from the answer.
    MissingPair(Pair),
    /// A pair appears more than once, or one that was not asked for.
    UnexpectedPair(Pair),
    /// A quote is stamped too far in the future.
    FromTheFuture { pair: Pair, time_stamp: Timestamp },
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::Forbidden => write!(f, "One-Frame refused the token (Forbidden)"),
            AnswerError::QuotaReached => write!(f, "One-Frame's daily quota is used up (Quota reached)"),
            AnswerError::Upstream(m) => write!(f, "One-Frame answered with an error: {m:?}"),
            AnswerError::Malformed(m) => write!(f, "One-Frame's answer is not a rates array: {m}"),
            AnswerError::BadQuote(m) => write!(f, "One-Frame sent an unusable quote: {m}"),
            AnswerError::Quote(e) => write!(f, "One-Frame sent an unusable quote: {e}"),
            AnswerError::MissingPair(p) => write!(f, "One-Frame's answer lacks {p}"),
            AnswerError::UnexpectedPair(p) => {
                write!(f, "One-Frame's answer has an unexpected or repeated {p}")
            }
            AnswerError::FromTheFuture { pair, time_stamp } => {
                write!(
                    f,
                    "One-Frame stamped {pair} at {time_stamp}, more than {}s in the future",
                    MAX_CLOCK_SKEW.as_secs()
                )
            }
        }
    }
}

impl std::error::Error for AnswerError {}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    Quotes(Vec<WireQuote>),
    Error { error: String },
}

/// Parses a `/rates` answer body into quotes, or the error it carries.
pub fn parse_answer(body: &[u8]) -> Result<Vec<WireQuote>, AnswerError> {
    match serde_json::from_slice::<Body>(body) {
        Ok(Body::Quotes(q)) => Ok(q),
        Ok(Body::Error { error }) => Err(match error.as_str() {
            messages::FORBIDDEN => AnswerError::Forbidden,
            messages::QUOTA_REACHED => AnswerError::QuotaReached,
            _ => AnswerError::Upstream(crate::currency::truncate_for_message(&error)),
        }),
        Err(e) => Err(AnswerError::Malformed(e.to_string())),
    }
}

/// Checks an answer against the request: every requested pair exactly once,
/// currencies known, numbers usable, stamps not from the future.
pub fn validate_answer(
    requested: &[Pair],
    answer: Vec<WireQuote>,
    now: Timestamp,
) -> Result<Vec<Quote>, AnswerError> {
    let mut wanted: HashMap<Pair, bool> = requested.iter().map(|p| (*p, false)).collect();
    let mut quotes = Vec::with_capacity(answer.len());
    for w in answer {
        let cur = |s: &str| Currency::parse(s).map_err(|e| AnswerError::BadQuote(e.to_string()));
        let pair = Pair::new(cur(&w.from)?, cur(&w.to)?);
        match wanted.get_mut(&pair) {
            Some(seen @ false) => *seen = true,
            _ => return Err(AnswerError::UnexpectedPair(pair)),
        }
        let time_stamp = Timestamp::parse(&w.time_stamp).map_err(|e| AnswerError::BadQuote(e.to_string()))?;
        if time_stamp > now.plus(MAX_CLOCK_SKEW) {
            return Err(AnswerError::FromTheFuture { pair, time_stamp });
        }
        let q = Quote {
            pair,
            bid: w.bid,
            ask: w.ask,
            price: w.price,
            time_stamp,
        };
        q.validate().map_err(AnswerError::Quote)?;
        quotes.push(q);
    }
    if let Some(p) = requested.iter().find(|p| !wanted[*p]) {
        return Err(AnswerError::MissingPair(*p));
    }
    Ok(quotes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-24T10:00:00Z").unwrap()
    }

    fn pairs(ps: &[&str]) -> Vec<Pair> {
        ps.iter().map(|p| Pair::parse(p).unwrap()).collect()
    }

    const GOOD: &str = r#"[{"from":"USD","to":"JPY","bid":0.61,"ask":0.82,"price":0.71,"time_stamp":"2026-11-24T09:59:59.74Z"},
                           {"from":"USD","to":"EUR","bid":0.2,"ask":0.4,"price":0.3,"time_stamp":"2026-11-24T09:59:59.74Z"}]"#;

    #[test]
    fn accepts_a_complete_answer() {
        let q = validate_answer(
            &pairs(&["USDJPY", "USDEUR"]),
            parse_answer(GOOD.as_bytes()).unwrap(),
            now(),
        )
        .unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].price, 0.71);
    }

    #[test]
    fn recognises_error_bodies() {
        assert_eq!(
            parse_answer(br#"{"error":"Forbidden"}"#),
            Err(AnswerError::Forbidden)
        );
        assert_eq!(
            parse_answer(br#"{"error":"Quota reached"}"#),
            Err(AnswerError::QuotaReached)
        );
        assert_eq!(
            parse_answer(br#"{"error":"Invalid Currency Pair"}"#),
            Err(AnswerError::Upstream("Invalid Currency Pair".into()))
        );
        assert!(matches!(
            parse_answer(b"[{\"from\":"),
            Err(AnswerError::Malformed(_))
        ));
        assert!(matches!(parse_answer(b"<html>"), Err(AnswerError::Malformed(_))));
        assert!(matches!(
            parse_answer(br#"{"rates":[]}"#),
            Err(AnswerError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_incomplete_repeated_or_odd_answers() {
        let answer = || parse_answer(GOOD.as_bytes()).unwrap();
        assert_eq!(
            validate_answer(&pairs(&["USDJPY", "USDEUR", "USDGBP"]), answer(), now()),
            Err(AnswerError::MissingPair(Pair::parse("USDGBP").unwrap()))
        );
        assert_eq!(
            validate_answer(&pairs(&["USDJPY"]), answer(), now()),
            Err(AnswerError::UnexpectedPair(Pair::parse("USDEUR").unwrap()))
        );
        let mut twice = answer();
        twice[1] = twice[0].clone();
        assert!(matches!(
            validate_answer(&pairs(&["USDJPY", "USDEUR"]), twice, now()),
            Err(AnswerError::UnexpectedPair(_))
        ));
        let mut zero = answer();
        zero[0].price = 0.0;
        assert!(matches!(
            validate_answer(&pairs(&["USDJPY", "USDEUR"]), zero, now()),
            Err(AnswerError::Quote(_))
        ));
        let mut future = answer();
        future[0].time_stamp = "2026-11-24T10:01:01Z".into();
        assert!(matches!(
            validate_answer(&pairs(&["USDJPY", "USDEUR"]), future, now()),
            Err(AnswerError::FromTheFuture { .. })
        ));
        let mut skew_ok = answer();
        skew_ok[0].time_stamp = "2026-11-24T10:00:59Z".into();
        assert!(validate_answer(&pairs(&["USDJPY", "USDEUR"]), skew_ok, now()).is_ok());
        let mut bad_ts = answer();
        bad_ts[0].time_stamp = "soon".into();
        assert!(matches!(
            validate_answer(&pairs(&["USDJPY", "USDEUR"]), bad_ts, now()),
            Err(AnswerError::BadQuote(_))
        ));
    }

    proptest! {
        #[test]
        fn parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(q) = parse_answer(&b) {
                let _ = validate_answer(&pairs(&["USDJPY"]), q, now());
            }
        }
    }
}
