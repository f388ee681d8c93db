//! The HTTP API contract of `GET /rates`: query parsing, JSON bodies,
//! error codes, headers and conditional GET. Transport-free, so the
//! component, the tests and the fuzzers share one definition. The same
//! contract for clients is [`OPENAPI_JSON`] (`shared/openapi.json`, served
//! at `/openapi.json`); the tests hold the two to each other.

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

/// What a host answers itself, before or instead of the component
/// (runtime-shim's, as its README lists them): the status and, when the host
/// writes a JSON error, its code. No code of the API writes these, but a
/// client may get them, so the OpenAPI document lists them too.
pub const HOST_ANSWERS: [(u16, Option<&str>); 4] = [
    (414, Some("uri_too_long")),
    (431, None),
    (503, Some("shutting_down")),
    (504, Some("timeout")),
];

/// The OpenAPI 3.1 document of the API, as `GET /openapi.json` serves it.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The header fields the API reads or writes (lower-case, as written on
/// the wire), each documented in [`OPENAPI_JSON`].
pub mod header {
    /// `application/json` on every answer with a body.
    pub const CONTENT_TYPE: &str = "content-type";
    /// Every answer with a body (not HEAD's, not a 304).
    pub const CONTENT_LENGTH: &str = "content-length";
    /// `max-age=N` on a 200 or 304 of `/rates`; `no-store` on errors.
    pub const CACHE_CONTROL: &str = "cache-control";
    /// The strong validator of a 200 or 304 of `/rates` ([`super::etag`]).
    pub const ETAG: &str = "etag";
    /// On a 503.
    pub const RETRY_AFTER: &str = "retry-after";
    /// On a 405: `GET, HEAD`.
    pub const ALLOW: &str = "allow";
    /// The request's conditional GET ([`super::none_match`]).
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

/// Bumped whenever the same rates would be written as other bytes, so that
/// no tag of an older body matches a newer one.
const BODY_FORMAT: u8 = 1;

/// The strong `ETag` of a 200 of `/rates` (quotes included): a hash of
/// what its body is made of, the form and each rate's pair, price and
/// timestamp. No clock time enters it, so every instance serving the same
/// rates gives the same tag, and a new snapshot changes the tag of every
/// pair whose rate it changes.
pub fn etag(form: Form, rates: &[Rate]) -> String {
    // FNV-1a, 64 bits: stable across builds and hosts, and enough to tell
    // one answer of a pair from its next.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&[BODY_FORMAT, form as u8]);
    for r in rates {
        eat(r.pair.from.code().as_bytes());
        eat(r.pair.to.code().as_bytes());
        eat(&r.price.to_bits().to_le_bytes());
        eat(&r.timestamp.unix_millis().to_le_bytes());
    }
    format!("\"r{BODY_FORMAT}-{h:016x}\"")
}

/// Whether an `If-None-Match` value (the field's lines joined by commas)
/// matches `etag`, by RFC 9110 §13.1.2: `*` matches any answer, a list
/// matches when one of its entity tags equals `etag` by the weak comparison
/// (`W/` ignored). A malformed list matches nothing, so the client gets the
/// whole answer.
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    let value = if_none_match.trim_matches([' ', '\t']);
    if value == "*" {
        return true;
    }
    let want = etag.trim_start_matches("W/");
    let mut rest = value;
    let mut matched = false;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return matched;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(after_quote) = tag.strip_prefix('"') else {
            return false;
        };
        let Some(end) = after_quote.find('"') else {
            return false;
        };
        let opaque = &tag[..end + 2];
        if opaque.bytes().any(|b| b < 0x21 || b == 0x7f) {
            return false;
        }
        matched |= opaque == want;
        rest = &after_quote[end + 1..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t', ','])) {
            return false;
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

    fn rate(pair: &str, price: f64, stamp: &str) -> Rate {
        Rate {
            pair: p(pair),
            price,
            timestamp: Timestamp::parse(stamp).unwrap(),
        }
    }

    #[test]
    fn etags_follow_the_rates_and_nothing_else() {
        let jpy = rate("USDJPY", 0.71, "2026-11-24T10:00:00.1Z");
        let gbp = rate("EURGBP", 0.84, "2026-11-24T10:00:00.1Z");
        let tag = etag(Form::Single, &[jpy]);
        assert_eq!(tag, etag(Form::Single, &[jpy]), "the same rates, the same tag");
        assert!(
            tag.starts_with("\"r1-") && tag.ends_with('"') && tag.len() == 21,
            "{tag}"
        );
        // A new snapshot that changes the rate changes the tag.
        assert_ne!(tag, etag(Form::Single, &[Rate { price: 0.72, ..jpy }]));
        let later = rate("USDJPY", 0.71, "2026-11-24T10:04:00.1Z");
        assert_ne!(tag, etag(Form::Single, &[later]));
        // The body's form and the pairs' order are part of the answer.
        assert_ne!(tag, etag(Form::Batch, &[jpy]));
        assert_ne!(etag(Form::Batch, &[jpy, gbp]), etag(Form::Batch, &[gbp, jpy]));
        // Another pair at the same price is another answer.
        assert_ne!(
            tag,
            etag(
                Form::Single,
                &[Rate {
                    pair: p("USDEUR"),
                    ..jpy
                }]
            )
        );
    }

    #[test]
    fn if_none_match_as_rfc_9110_reads_it() {
        let tag = "\"r1-00000000000000ff\"";
        for matching in [
            "*",
            " * ",
            tag,
            "W/\"r1-00000000000000ff\"",
            "\"a\", \"r1-00000000000000ff\"",
            "\"a\",W/\"r1-00000000000000ff\" ,\"b\"",
            "\"x,y\", \"r1-00000000000000ff\"",
        ] {
            assert!(none_match(matching, tag), "{matching:?}");
        }
        for other in [
            "",
            "\"r1-00000000000000fe\"",
            "r1-00000000000000ff",
            "\"r1-00000000000000ff",
            "\"a\" \"r1-00000000000000ff\"x",
            "\"a b\", \"r1-00000000000000ff\"",
            "*, \"r1-00000000000000ff\"",
            "w/\"r1-00000000000000ff\"",
        ] {
            assert!(!none_match(other, tag), "{other:?}");
        }
    }

    /// The document's parts, `$ref`s followed.
    fn resolve<'a>(doc: &'a serde_json::Value, v: &'a serde_json::Value) -> &'a serde_json::Value {
        match v.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => {
                let path = r.strip_prefix("#/").expect("local refs only");
                let target = path.split('/').fold(doc, |at, key| &at[key]);
                resolve(doc, target)
            }
            None => v,
        }
    }

    /// Every response object of the document: (status, response).
    fn responses(doc: &serde_json::Value) -> Vec<(String, &serde_json::Value)> {
        let mut out = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for (status, r) in op["responses"].as_object().unwrap() {
                    out.push((status.clone(), resolve(doc, r)));
                }
            }
        }
        out
    }

    /// The codes a response's body may carry, as its schema restricts them.
    fn codes_of(r: &serde_json::Value) -> Vec<String> {
        let schema = &r["content"]["application/json"]["schema"];
        let enumed = schema["allOf"].as_array().and_then(|parts| {
            parts
                .iter()
                .find_map(|p| p["properties"]["error"]["properties"]["code"]["enum"].as_array())
        });
        enumed
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_openapi_document_and_the_code_agree_both_ways() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let ours: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(
            listed, ours,
            "the ErrorCode schema lists exactly the code's codes"
        );
        let host: Vec<&str> = HOST_ANSWERS.iter().filter_map(|(_, c)| *c).collect();
        let listed: Vec<&str> = doc["components"]["schemas"]["HostErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(
            listed, host,
            "the HostErrorCode schema lists exactly HOST_ANSWERS' codes"
        );
        let status_of = |code: &str| {
            (ErrorCode::ALL.iter().map(|c| (c.status(), c.as_str())))
                .chain(HOST_ANSWERS.iter().filter_map(|(s, c)| Some((*s, (*c)?))))
                .find(|(_, c)| *c == code)
                .map(|(s, _)| s)
        };

        // Every (status, code) a response documents is one the code answers,
        // and every code is documented under its status.
        let mut documented: Vec<(u16, String)> = responses(&doc)
            .into_iter()
            .flat_map(|(status, r)| codes_of(r).into_iter().map(move |c| (status.parse().unwrap(), c)))
            .collect();
        for r in doc["components"]["responses"].as_object().unwrap().values() {
            if let Some(status) = codes_of(r).first().and_then(|c| status_of(c)) {
                documented.extend(codes_of(r).into_iter().map(|c| (status, c)));
            }
        }
        for (status, code) in &documented {
            assert_eq!(status_of(code), Some(*status), "{code} under {status}");
        }
        for (status, code) in HOST_ANSWERS.iter().filter_map(|(s, c)| Some((*s, (*c)?))) {
            assert!(
                documented.iter().any(|(s, c)| *s == status && c == code),
                "the host's {code} ({status}) is not documented"
            );
        }
        for c in ErrorCode::ALL {
            assert!(
                documented
                    .iter()
                    .any(|(s, code)| *s == c.status() && code == c.as_str()),
                "{} ({}) is not documented",
                c.as_str(),
                c.status()
            );
        }
        // Statuses: 200, 304 and the errors' own, nothing else.
        for (status, _) in responses(&doc) {
            let s: u16 = status.parse().unwrap();
            assert!(
                s == 200
                    || s == 304
                    || ErrorCode::ALL.iter().any(|c| c.status() == s)
                    || HOST_ANSWERS.iter().any(|(h, _)| *h == s),
                "status {s} is in the document but never answered"
            );
        }

        // Headers: those the document names are exactly header::ALL.
        let mut named: Vec<String> = Vec::new();
        let mut note = |n: &str| {
            let n = n.to_ascii_lowercase();
            if !named.contains(&n) {
                named.push(n);
            }
        };
        for (_, r) in responses(&doc) {
            for h in r["headers"].as_object().into_iter().flatten().map(|(k, _)| k) {
                note(h);
            }
            if r.get("content").is_some() {
                note(header::CONTENT_TYPE);
            }
        }
        for r in doc["components"]["responses"].as_object().unwrap().values() {
            for h in r["headers"].as_object().into_iter().flatten().map(|(k, _)| k) {
                note(h);
            }
        }
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if param["in"] == "header" {
                        note(param["name"].as_str().unwrap());
                    }
                }
            }
        }
        named.sort();
        let mut ours: Vec<String> = header::ALL.iter().map(|h| h.to_string()).collect();
        ours.sort();
        assert_eq!(named, ours, "the document's headers and shared::api::header");
    }

    /// docs/api.md keeps its tables for people; they must say what the
    /// document says.
    #[test]
    fn docs_api_md_agrees_with_the_document() {
        let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
        let cells = |line: &str| -> Vec<String> {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        };
        let errors: Vec<(u16, String)> = md
            .lines()
            .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
            .map(|l| {
                let c = cells(l);
                (c[0].parse().unwrap(), c[1].clone())
            })
            .collect();
        let mut ours: Vec<(u16, String)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.status(), c.as_str().to_string()))
            .collect();
        let mut theirs = errors.clone();
        ours.sort();
        theirs.sort();
        assert_eq!(theirs, ours, "docs/api.md's error table");
        let headers: Vec<String> = md
            .lines()
            .filter(|l| l.starts_with("| `") && l.matches('|').count() == 4)
            .map(|l| cells(l)[0].to_ascii_lowercase())
            .collect();
        for h in &headers {
            assert!(header::ALL.contains(&h.as_str()), "docs/api.md names header {h}");
        }
        for h in header::ALL {
            assert!(headers.iter().any(|x| x == h), "docs/api.md lacks header {h}");
        }
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
