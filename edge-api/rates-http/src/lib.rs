//! `rates-http`: the API of DESIGN.md ("HTTP API") as a Spin HTTP component.
//!
//! Every answer comes from the instance's key-value cache. The cache is
//! refilled from Valkey when it is empty or its snapshot is older than
//! `revalidate_age`, at most once per [`VALKEY_READ_EVERY_MS`] per instance
//! (so a failing Valkey is not hammered). A rate older than `max_rate_age`
//! is never served.

use edge_cache::{Refill, cached_table, claim_valkey_read, refill_from_valkey};
use shared::api::{ApiError, ErrorCode, RETRY_AFTER_SECS, RatesQuery};
use shared::freshness;
use shared::table::RateTable;
use shared::{Rate, Timestamp};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use std::time::Duration;

/// Least time between two Valkey reads by one instance.
const VALKEY_READ_EVERY_MS: i64 = 2_000;

#[http_component]
fn handle(req: Request) -> Response {
    let head = *req.method() == Method::Head;
    match req.path() {
        "/rates" | "/healthz" | "/readyz" if !matches!(req.method(), Method::Get | Method::Head) => {
            let e = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{} is not allowed here: use GET or HEAD", req.method()),
            );
            let mut r = error_response(&e, head);
            r.set_header("allow", "GET, HEAD");
            r
        }
        "/rates" => rates(req.query(), head),
        "/healthz" => json(200, r#"{"status":"ok"}"#.to_string(), head),
        "/readyz" => ready(head),
        _ => error_response(
            &ApiError::new(
                ErrorCode::NotFound,
                "no such route: use GET /rates?from=USD&to=JPY",
            ),
            head,
        ),
    }
}

fn json(status: u16, body: String, head: bool) -> Response {
    let mut b = Response::builder();
    b.status(status).header("content-type", "application/json");
    if !head {
        b.body(body);
    }
    b.build()
}

fn error_response(e: &ApiError, head: bool) -> Response {
    let mut r = json(e.code.status(), e.body(), head);
    r.set_header("cache-control", "no-store");
    if e.code.status() == 503 {
        r.set_header("retry-after", RETRY_AFTER_SECS.to_string());
    }
    r
}

/// A numeric variable, or its default when unset or unparsable.
fn seconds_variable(name: &str, default: u64) -> Duration {
    let secs = spin_sdk::variables::get(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// The cached table, refilled from Valkey when missing or due.
fn load_table(now: Timestamp) -> Option<Vec<u8>> {
    let store = match Store::open_default() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rates-http: cannot open the key-value store: {e}");
            return None;
        }
    };
    let cached = cached_table(&store).unwrap_or_else(|e| {
        eprintln!("rates-http: {e}");
        None
    });
    let revalidate_age = seconds_variable("revalidate_age", 250);
    let due = match cached.as_deref().map(RateTable::decode) {
        Some(Ok(t)) => freshness::age(t.oldest_quote(), now) > revalidate_age,
        _ => true,
    };
    if !due || !claim_valkey_read(&store, now, VALKEY_READ_EVERY_MS) {
        return cached;
    }
    match refill_from_valkey(&store) {
        Ok((Refill::Stored { seq }, table)) => {
            eprintln!("rates-http: cache refilled from Valkey with seq {seq}");
            table
        }
        Ok((Refill::Kept, table)) => table,
        Err(e) => {
            eprintln!("rates-http: could not refill the cache: {e}");
            cached
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::RatesUnavailable,
        "no rates are available yet; try again shortly",
    )
}

fn stale(rate_time: Timestamp, max_age: Duration) -> ApiError {
    ApiError::new(
        ErrorCode::RatesStale,
        format!(
            "the newest rates available date from {rate_time}, older than {} seconds; try again shortly",
            max_age.as_secs()
        ),
    )
}

fn rates(query: &str, head: bool) -> Response {
    let query = match RatesQuery::parse(query) {
        Ok(q) => q,
        Err(e) => return error_response(&e, head),
    };
    let now = Timestamp::now();
    let Some(bytes) = load_table(now) else {
        return error_response(&unavailable(), head);
    };
    let Ok(table) = RateTable::decode(&bytes) else {
        return error_response(&unavailable(), head);
    };
    let max_age = seconds_variable("max_rate_age", 300);

    let pairs = match &query {
        RatesQuery::Single(p) => std::slice::from_ref(p),
        RatesQuery::Batch(ps) => ps.as_slice(),
    };
    let mut found: Vec<Rate> = Vec::with_capacity(pairs.len());
    let mut max_age_header = u64::MAX;
    for &pair in pairs {
        let rate = match table.rate(pair) {
            Ok(r) => r,
            Err(e) => return error_response(&ApiError::new(ErrorCode::PairNotFound, e.to_string()), head),
        };
        match freshness::seconds_left(rate.timestamp, now, max_age) {
            Some(left) => max_age_header = max_age_header.min(left),
            None => return error_response(&stale(rate.timestamp, max_age), head),
        }
        found.push(rate);
    }
    let body = match query {
        RatesQuery::Single(_) => shared::api::rate_json(&found[0]),
        RatesQuery::Batch(_) => shared::api::rates_json(&found),
    };
    let mut r = json(200, body, head);
    r.set_header("cache-control", format!("max-age={max_age_header}"));
    r
}

fn ready(head: bool) -> Response {
    let now = Timestamp::now();
    let max_age = seconds_variable("max_rate_age", 300);
    let Some(bytes) = load_table(now) else {
        return error_response(&unavailable(), head);
    };
    let Ok(table) = RateTable::decode(&bytes) else {
        return error_response(&unavailable(), head);
    };
    let oldest = table.oldest_quote();
    if !freshness::is_fresh(oldest, now, max_age) {
        return error_response(&stale(oldest, max_age), head);
    }
    let age = freshness::age(oldest, now).as_secs_f64();
    json(
        200,
        format!(
            r#"{{"status":"ready","seq":{},"age_seconds":{age:.3}}}"#,
            table.seq()
        ),
        head,
    )
}
