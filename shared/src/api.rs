//! The HTTP API contract of `GET /rates`: query parsing, JSON bodies,
//! error codes, headers and conditional GET. Transport-free, so the
//! component, the tests and the fuzzers share one definition. The same
//! contract for clients is [`crate::contract::OPENAPI_JSON`]
//! (`shared/openapi.json`, served at `/openapi.json`); its tests hold the two
//! to each other. Conditional GET is [`crate::conditional`].

use crate::currency::{Currency, CurrencyError};
use crate::freshness;
use crate::pair::{Pair, PairError};
use crate::rates::Rate;
use crate::table::RateTable;
use crate::time::Timestamp;
use std::fmt::Write as _;
use std::time::Duration;

/// Most pairs one batch request may ask for.
pub const MAX_BATCH_PAIRS: usize = 200;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The header fields the API reads or writes (lower-case, as written on
/// the wire), each documented in [`crate::contract::OPENAPI_JSON`].
pub mod header {
    /// `application/json` on every answer with a body.
    pub const CONTENT_TYPE: &str = "content-type";
    /// Every answer with a body (not HEAD's, not a 304).
    pub const CONTENT_LENGTH: &str = "content-length";
    /// `max-age=N` on a 200 or 304 of `/rates`; `no-store` on errors.
    pub const CACHE_CONTROL: &str = "cache-control";
    /// The strong validator of a 200 or 304 of `/rates` ([`crate::conditional::etag`]).
    pub const ETAG: &str = "etag";
    /// On a 503.
    pub const RETRY_AFTER: &str = "retry-after";
    /// On a 405: `GET, HEAD`.
    pub const ALLOW: &str = "allow";
    /// The request's conditional GET ([`crate::conditional::none_match`]).
    pub const IF_NONE_MATCH: &str = "if-none-match";

    /// Every one of them.
    pub const ALL: [&str; 7] = [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        CACHE_CONTROL,
        ETAG,
        RETRY_AFTER,
        ALLOW,
        IF_NONE_MATCH,
    ];
}

/// What a `/rates` query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RatesQuery {
    /// `?from=USD&to=JPY` → one object.
    Single(Pair),
    /// `?pair=USDJPY&pair=EURGBP` → an array, in request order.
    Batch(Vec<Pair>),
}

/// The API's error codes (docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    UnknownCurrency,
    PairNotFound,
    NotFound,
    MethodNotAllowed,
    RatesUnavailable,
    RatesStale,
    /// The service is misconfigured or failed; the cause is in its log.
    Internal,
}

impl ErrorCode {
    /// Every code the API answers with.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownCurrency,
        ErrorCode::PairNotFound,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RatesUnavailable,
        ErrorCode::RatesStale,
        ErrorCode::Internal,
    ];

    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::UnknownCurrency => 400,
            ErrorCode::PairNotFound | ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RatesUnavailable | ErrorCode::RatesStale => 503,
            ErrorCode::Internal => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownCurrency => "unknown_currency",
            ErrorCode::PairNotFound => "pair_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RatesUnavailable => "rates_unavailable",
            ErrorCode::RatesStale => "rates_stale",
            ErrorCode::Internal => "internal_error",
        }
    }
}

/// An API error: a code and a sentence for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    /// `{"error":{"code":"...","message":"..."}}`
    pub fn body(&self) -> String {
        let mut s = String::with_capacity(48 + self.message.len());
        s.push_str(r#"{"error":{"code":""#);
        s.push_str(self.code.as_str());
        s.push_str(r#"","message":"#);
        push_json_string(&mut s, &self.message);
        s.push_str("}}");
        s
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("strings always serialise"));
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
fn form_decode(raw: &str) -> Result<String, ApiError> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(h), Some(l)) = (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) else {
                    return Err(ApiError::invalid(
                        "the query string has a malformed percent-escape",
                    ));
                };
                out.push((h * 16 + l) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::invalid("the query string is not valid UTF-8"))
}

fn currency(name: &str, value: &str) -> Result<Currency, ApiError> {
    Currency::parse(value).map_err(|e| match e {
        CurrencyError::Unknown(_) | CurrencyError::Malformed(_) => {
            ApiError::new(ErrorCode::UnknownCurrency, format!("`{name}`: {e}"))
        }
    })
}

impl RatesQuery {
    /// Parses the query string of `/rates` (without the leading `?`).
    pub fn parse(query: &str) -> Result<RatesQuery, ApiError> {
        let mut from: Option<String> = None;
        let mut to: Option<String> = None;
        let mut pairs: Vec<String> = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let key = form_decode(k)?;
            let value = form_decode(v)?;
            let slot = match key.as_str() {
                "from" => &mut from,
                "to" => &mut to,
                "pair" => {
                    if pairs.len() == MAX_BATCH_PAIRS {
                        return Err(ApiError::invalid(format!(
                            "too many `pair` parameters: at most {MAX_BATCH_PAIRS} per request"
                        )));
                    }
                    pairs.push(value);
                    continue;
                }
                other => {
                    return Err(ApiError::invalid(format!(
                        "unknown parameter `{}`: use `from` and `to`, or `pair` (e.g. pair=USDJPY)",
                        crate::currency::truncate_for_message(other)
                    )));
                }
            };
            if slot.is_some() {
                return Err(ApiError::invalid(format!("`{key}` is given more than once")));
            }
            *slot = Some(value);
        }
        if !pairs.is_empty() {
            if from.is_some() || to.is_some() {
                return Err(ApiError::invalid(
                    "use either `from` and `to`, or `pair`, not both in one request",
                ));
            }
            return pairs
                .iter()
                .map(|p| {
                    if p.is_empty() {
                        return Err(ApiError::invalid(
                            "`pair` is empty: expected six letters such as USDJPY",
                        ));
                    }
                    Pair::parse(p).map_err(|e| match e {
                        PairError::Malformed(_) => ApiError::invalid(format!("`pair`: {e}")),
                        PairError::UnknownCurrency(_) => {
                            ApiError::new(ErrorCode::UnknownCurrency, format!("`pair`: {e}"))
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(RatesQuery::Batch);
        }
        match (from, to) {
            (None, None) => Err(ApiError::invalid(
                "missing `from` and `to`: ask e.g. /rates?from=USD&to=JPY",
            )),
            (None, Some(_)) => Err(ApiError::invalid(
                "missing `from`: ask e.g. /rates?from=USD&to=JPY",
            )),
            (Some(_), None) => Err(ApiError::invalid("missing `to`: ask e.g. /rates?from=USD&to=JPY")),
            (Some(f), Some(t)) => {
                for (name, v) in [("from", &f), ("to", &t)] {
                    if v.is_empty() {
                        return Err(ApiError::invalid(format!(
                            "`{name}` is empty: expected a code such as USD"
                        )));
                    }
                }
                Ok(RatesQuery::Single(Pair::new(
                    currency("from", &f)?,
                    currency("to", &t)?,
                )))
            }
        }
    }
}

/// Rates that may be served, and for how many more seconds all of them stay
/// fresh (the `Cache-Control: max-age`).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub rates: Vec<Rate>,
    pub fresh_for_secs: u64,
}

/// The edge's decision for `pairs` at `now`: every rate, or the reason none
/// is served. A rate older than `max_rate_age` is never served: the whole
/// answer is then `rates_stale`.
pub fn serve(
    table: &RateTable,
    pairs: &[Pair],
    now: Timestamp,
    max_rate_age: Duration,
) -> Result<Served, ApiError> {
    let mut rates = Vec::with_capacity(pairs.len());
    let mut fresh_for_secs = u64::MAX;
    for &pair in pairs {
        let rate = table
            .rate(pair)
            .map_err(|e| ApiError::new(ErrorCode::PairNotFound, e.to_string()))?;
        match freshness::seconds_left(rate.timestamp, now, max_rate_age) {
            Some(left) => fresh_for_secs = fresh_for_secs.min(left),
            None => return Err(stale(rate.timestamp, max_rate_age)),
        }
        rates.push(rate);
    }
    Ok(Served {
        rates,
        fresh_for_secs,
    })
}

/// Which form a `/rates` answer takes: its body is an object or an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Single,
    Batch,
}

impl RatesQuery {
    pub fn form(&self) -> Form {
        match self {
            RatesQuery::Single(_) => Form::Single,
            RatesQuery::Batch(_) => Form::Batch,
        }
    }

    pub fn pairs(&self) -> &[Pair] {
        match self {
            RatesQuery::Single(p) => std::slice::from_ref(p),
            RatesQuery::Batch(ps) => ps,
        }
    }
}

/// `rates_stale`: the newest rates available date from `rate_time`.
pub fn stale(rate_time: Timestamp, max_rate_age: Duration) -> ApiError {
    ApiError::new(
        ErrorCode::RatesStale,
        format!(
            "the newest rates available date from {rate_time}, older than {} seconds; try again shortly",
            max_rate_age.as_secs()
        ),
    )
}

/// Appends `{"from":"USD","to":"JPY","price":0.71,"timestamp":"..."}`.
pub fn push_rate_json(out: &mut String, rate: &Rate) {
    out.push_str(r#"{"from":""#);
    out.push_str(rate.pair.from.code());
    out.push_str(r#"","to":""#);
    out.push_str(rate.pair.to.code());
    out.push_str(r#"","price":"#);
    // serde_json writes the shortest decimal that reads back as the same f64.
    out.push_str(&serde_json::to_string(&rate.price).expect("finite prices serialise"));
    let _ = write!(out, r#","timestamp":"{}"}}"#, rate.timestamp);
}

/// One rate as a JSON object.
pub fn rate_json(rate: &Rate) -> String {
    let mut s = String::with_capacity(96);
    push_rate_json(&mut s, rate);
    s
}

/// Rates as a JSON array.
pub fn rates_json(rates: &[Rate]) -> String {
    let mut s = String::with_capacity(2 + rates.len() * 97);
    s.push('[');
    for (i, r) in rates.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_rate_json(&mut s, r);
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use proptest::prelude::*;

    fn p(s: &str) -> Pair {
        Pair::parse(s).unwrap()
    }

    #[test]
    fn serve_answers_fresh_rates_or_rates_stale_never_an_old_rate() {
        let t = |s: &str| Timestamp::parse(s).unwrap();
        let quote = |to: &str, stamp: &str| crate::Quote {
            pair: Pair::new(Currency::USD, Currency::parse(to).unwrap()),
            bid: 1.0,
            ask: 1.2,
            price: 1.1,
            time_stamp: t(stamp),
        };
        let snapshot = crate::Snapshot::new(
            1,
            t("2026-11-24T10:00:00Z"),
            vec![
                quote("JPY", "2026-11-24T10:00:00Z"),
                quote("EUR", "2026-11-24T09:58:00Z"),
            ],
        )
        .unwrap();
        let bytes = crate::table::encode(&snapshot);
        let table = RateTable::decode(&bytes).unwrap();
        let max = Duration::from_secs(300);
        let at = t("2026-11-24T10:02:00Z");

        let served = serve(&table, &[p("USDJPY")], at, max).unwrap();
        assert_eq!(served.fresh_for_secs, 180);
        // A cross takes its older leg's age: EUR's quote is 240 s old.
        let served = serve(&table, &[p("USDJPY"), p("JPYEUR")], at, max).unwrap();
        assert_eq!(served.rates.len(), 2);
        assert_eq!(served.fresh_for_secs, 60);
        // One stale pair refuses the whole answer.
        let later = t("2026-11-24T10:03:30Z");
        assert_eq!(
            serve(&table, &[p("USDJPY")], later, max).unwrap().fresh_for_secs,
            90
        );
        let e = serve(&table, &[p("USDJPY"), p("EURJPY")], later, max).unwrap_err();
        assert_eq!(e.code, ErrorCode::RatesStale);
        let e = serve(&table, &[p("USDGBP")], at, max).unwrap_err();
        assert_eq!(e.code, ErrorCode::PairNotFound);
    }

    fn code_of(q: &str) -> ErrorCode {
        RatesQuery::parse(q).unwrap_err().code
    }

    #[test]
    fn parses_both_forms_case_insensitively() {
        assert_eq!(
            RatesQuery::parse("from=usd&to=Jpy"),
            Ok(RatesQuery::Single(p("USDJPY")))
        );
        assert_eq!(
            RatesQuery::parse("to=JPY&from=USD"),
            Ok(RatesQuery::Single(p("USDJPY")))
        );
        assert_eq!(
            RatesQuery::parse("pair=USDJPY&pair=eurgbp&pair=USDJPY"),
            Ok(RatesQuery::Batch(vec![p("USDJPY"), p("EURGBP"), p("USDJPY")]))
        );
        assert_eq!(
            RatesQuery::parse("from=%55SD&to=JPY&"),
            Ok(RatesQuery::Single(p("USDJPY")))
        );
    }

    #[test]
    fn every_invalid_request_case() {
        for q in [
            "",
            "from=USD",
            "to=JPY",
            "from=&to=JPY",
            "from=USD&to=",
            "from=USD&from=EUR&to=JPY",
            "from=USD&to=JPY&to=EUR",
            "from=USD&to=JPY&pair=USDJPY",
            "pair=USDJPY&to=JPY",
            "pair=USDJP",
            "pair=",
            "pair=USDJPY&pair=USD_JPY",
            "from=USD&to=JPY&extra=1",
            "from=US%ZZ&to=JPY",
            "from=%FF%FE&to=JPY",
        ] {
            assert_eq!(code_of(q), ErrorCode::InvalidRequest, "{q:?}");
        }
        let many = vec!["pair=USDJPY"; MAX_BATCH_PAIRS + 1].join("&");
        assert_eq!(code_of(&many), ErrorCode::InvalidRequest);
        assert!(RatesQuery::parse(&vec!["pair=USDJPY"; MAX_BATCH_PAIRS].join("&")).is_ok());
    }

    #[test]
    fn unknown_currency_cases() {
        for q in [
            "from=USD&to=QQQ",
            "from=QQQ&to=USD",
            "from=US&to=JPY",
            "from=USD&to=JPYY",
            "pair=USDQQQ",
            "pair=USDJPY&pair=XYZUSD",
        ] {
            assert_eq!(code_of(q), ErrorCode::UnknownCurrency, "{q:?}");
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let e = RatesQuery::parse("from=USD&to=QQQ").unwrap_err();
        assert!(e.message.contains("QQQ"), "{}", e.message);
        let e = RatesQuery::parse("from=USD&to=JPY&colour=red").unwrap_err();
        assert!(e.message.contains("colour"), "{}", e.message);
    }

    #[test]
    fn bodies_are_json() {
        let e = ApiError::new(ErrorCode::RatesStale, "rates are \"old\"\n");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "rates_stale");
        assert_eq!(v["error"]["message"], "rates are \"old\"\n");

        let r = Rate {
            pair: p("USDJPY"),
            price: 0.71,
            timestamp: Timestamp::parse("2026-11-24T10:00:00.1Z").unwrap(),
        };
        assert_eq!(
            rate_json(&r),
            r#"{"from":"USD","to":"JPY","price":0.71,"timestamp":"2026-11-24T10:00:00.100Z"}"#
        );
        let one = Rate { price: 1.0, ..r };
        let v: serde_json::Value = serde_json::from_str(&rates_json(&[r, one])).unwrap();
        assert_eq!(v[1]["price"], 1.0);
    }

    proptest! {
        #[test]
        fn parser_never_panics_and_errors_are_client_errors(q in "[a-zA-Z=&%+0-9]{0,64}|\\PC{0,64}") {
            if let Err(e) = RatesQuery::parse(&q) {
                prop_assert!(e.code.status() == 400, "{:?} for {:?}", e, q);
            }
        }

        #[test]
        fn prices_read_back_exactly(price in 1e-12f64..1e12) {
            let r = Rate { pair: p("USDJPY"), price, timestamp: Timestamp::EPOCH };
            let v: serde_json::Value = serde_json::from_str(&rate_json(&r)).unwrap();
            prop_assert_eq!(v["price"].as_f64(), Some(price));
        }
    }
}
