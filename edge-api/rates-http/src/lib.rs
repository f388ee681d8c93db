//! `rates-http`: the rates API (README, "API") as a Spin HTTP component.
//!
//! Every answer comes from the instance's key-value cache. The cache is
//! refilled from Valkey when it is empty or its snapshot is older than
//! `revalidate_age`, by one request at a time per instance group: the others
//! answer from the cache at once, or, with an empty cache, wait up to
//! [`EMPTY_CACHE_WAIT_MS`] for that read. After a read that brought nothing
//! fresher (Valkey failing, no snapshot, nothing newer) the next waits
//! [`VALKEY_READ_EVERY_MS`], so a failing Valkey is not hammered; a read that
//! never returns (Spin has no Redis timeout) holds the others back for
//! [`VALKEY_READ_IN_FLIGHT_MS`]. A rate older than `max_rate_age` is never
//! served.

use edge_cache::{Held, Refill, cached_table, claim_valkey_read, finish_valkey_read, refill_from_valkey};
use shared::Timestamp;
use shared::api::{ApiError, ErrorCode, RETRY_AFTER_SECS, RatesQuery};
use shared::freshness;
use shared::table::RateTable;
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use std::time::Duration;

/// Least time between two Valkey reads by one instance while reads bring
/// nothing fresher.
const VALKEY_READ_EVERY_MS: i64 = 2_000;
/// How long one Valkey read holds back the others before another may try.
const VALKEY_READ_IN_FLIGHT_MS: i64 = 5_000;
/// How long a request that finds the cache empty waits for another's read.
const EMPTY_CACHE_WAIT_MS: u64 = 500;

/// Most bytes one `blocking-write-and-flush` call may carry.
const WRITE_CHUNK: usize = 4096;

/// An answer before it is written out.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

// The request is read and the response written through wasi:http directly:
// this path needs only the method and the path, and skipping spin-sdk's
// `Request`/`Response` conversion (every header copied into a map, the URI
// re-parsed) measurably shortens each request.
#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let method = req.method();
    let target = req.path_with_query().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let answer = route(&method, path, query);
    write(out, answer, method == Method::Head);
}

fn route(method: &Method, path: &str, query: &str) -> Answer {
    match path {
        "/rates" | "/healthz" | "/readyz" if !matches!(method, Method::Get | Method::Head) => {
            let e = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{} is not allowed here: use GET or HEAD", method_name(method)),
            );
            let mut a = error_answer(&e);
            a.headers.push(("allow", "GET, HEAD".into()));
            a
        }
        "/rates" => rates(query),
        "/healthz" => json(200, r#"{"status":"ok"}"#.to_string()),
        "/readyz" => ready(),
        _ => error_answer(&ApiError::new(
            ErrorCode::NotFound,
            "no such route: use GET /rates?from=USD&to=JPY",
        )),
    }
}

fn method_name(m: &Method) -> &str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(o) => o,
    }
}

/// Hands the answer to the host. The whole body is queued and finished
/// *before* the response is set, with a `content-length`: the host then has
/// the head and the body at once and sends them in one write. Setting the
/// response first (the usual order) lets a host send the head alone; on a
/// listener without `TCP_NODELAY`, as Spin's is, the body then waits for the
/// client's delayed ACK, about 40 ms on Linux (README, "Performance").
fn write(out: ResponseOutparam, answer: Answer, head: bool) {
    let body_bytes = answer.body.into_bytes();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(answer.headers.len() + 2);
    entries.push(("content-type".into(), b"application/json".to_vec()));
    if !head {
        // A HEAD answer writes no body, so it may not promise a length.
        entries.push(("content-length".into(), body_bytes.len().to_string().into_bytes()));
    }
    entries.extend(
        answer
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_bytes())),
    );
    let headers = Fields::from_list(&entries).expect("static, valid header names");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(answer.status);
    let body = response.body().expect("a new response has a body");
    if head {
        let _ = OutgoingBody::finish(body, None);
        out.set(response);
        return;
    }
    let stream = body.write().expect("a new body has a stream");
    // A stream takes as much as `check_write` allows without blocking; the
    // host reads nothing before the response is set, so only a body that
    // fits at once can go first. Anything larger streams after the head.
    let fits = stream.check_write().is_ok_and(|n| n >= body_bytes.len() as u64);
    if fits {
        if let Err(e) = stream.write(&body_bytes) {
            eprintln!("rates-http: the host refused the answer's body: {e:?}");
        }
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
        out.set(response);
        return;
    }
    out.set(response);
    for chunk in body_bytes.chunks(WRITE_CHUNK) {
        if let Err(e) = stream.blocking_write_and_flush(chunk) {
            eprintln!("rates-http: the client went away while the answer was written: {e:?}");
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

fn json(status: u16, body: String) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body,
    }
}

fn error_answer(e: &ApiError) -> Answer {
    let mut a = json(e.code.status(), e.body());
    a.headers.push(("cache-control", "no-store".into()));
    if e.code.status() == 503 {
        a.headers.push(("retry-after", RETRY_AFTER_SECS.to_string()));
    }
    a
}

/// A whole number of seconds from a variable, or `default` when it is unset.
/// Any other value is a deployment mistake: the request fails with a JSON
/// 500 and the variable is named in the log, rather than running on a silent
/// default. (Answered by the component itself, so every host says the same.)
fn seconds_variable(name: &str, default: u64) -> Result<Duration, ApiError> {
    let secs = match spin_sdk::variables::get(name) {
        Err(_) => default,
        Ok(v) => v.trim().parse().map_err(|_| {
            eprintln!("rates-http: variable {name} must be a whole number of seconds, not {v:?}");
            ApiError::new(
                ErrorCode::Internal,
                "the service is misconfigured; the cause is in its log",
            )
        })?,
    };
    Ok(Duration::from_secs(secs))
}

/// `max_rate_age` and `revalidate_age`.
fn ages() -> Result<(Duration, Duration), ApiError> {
    Ok((
        seconds_variable("max_rate_age", 300)?,
        seconds_variable("revalidate_age", 250)?,
    ))
}

/// The cached table, refilled from Valkey when missing or due.
fn load_table(now: Timestamp, revalidate_age: Duration) -> Option<Vec<u8>> {
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
    let due = |table: Option<&[u8]>| match table.map(RateTable::decode) {
        Some(Ok(t)) => freshness::age(t.oldest_quote(), now) > revalidate_age,
        _ => true,
    };
    if !due(cached.as_deref()) {
        return cached;
    }
    match claim_valkey_read(&store, now, VALKEY_READ_IN_FLIGHT_MS) {
        Ok(()) => {}
        Err(Held::Reading) if cached.is_none() => return wait_for_table(&store),
        Err(_) => return cached,
    }
    let table = match refill_from_valkey(&store) {
        Ok((Refill::Stored { seq }, table)) => {
            eprintln!("rates-http: cache refilled from Valkey with seq {seq}");
            table
        }
        // Another request may have filled the cache meanwhile.
        Ok((Refill::Kept, table)) => table,
        Err(e) => {
            eprintln!("rates-http: could not refill the cache: {e}");
            cached
        }
    };
    // Only a read that leaves the cache due pauses the next ones.
    let fruitful = !due(table.as_deref());
    finish_valkey_read(&store, Timestamp::now(), fruitful, VALKEY_READ_EVERY_MS);
    table
}

/// The table another request's read brings, polled for up to
/// [`EMPTY_CACHE_WAIT_MS`]; `None` when none arrives in time.
fn wait_for_table(store: &Store) -> Option<Vec<u8>> {
    const POLL: Duration = Duration::from_millis(5);
    let deadline = std::time::Instant::now() + Duration::from_millis(EMPTY_CACHE_WAIT_MS);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(POLL);
        if let Ok(Some(table)) = cached_table(store) {
            return Some(table);
        }
    }
    None
}

fn unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::RatesUnavailable,
        "no rates are available yet; try again shortly",
    )
}

/// Runs `answer` on the cached table (refilled when due), with the time and
/// `max_rate_age` it is judged by; `rates_unavailable` when there is none,
/// a JSON 500 when the age variables are malformed.
fn with_table(answer: impl FnOnce(&RateTable, Timestamp, Duration) -> Answer) -> Answer {
    let (max_age, revalidate_age) = match ages() {
        Ok(a) => a,
        Err(e) => return error_answer(&e),
    };
    let now = Timestamp::now();
    let Some(bytes) = load_table(now, revalidate_age) else {
        return error_answer(&unavailable());
    };
    let Ok(table) = RateTable::decode(&bytes) else {
        return error_answer(&unavailable());
    };
    answer(&table, now, max_age)
}

fn rates(query: &str) -> Answer {
    let query = match RatesQuery::parse(query) {
        Ok(q) => q,
        Err(e) => return error_answer(&e),
    };
    with_table(|table, now, max_age| {
        let pairs = match &query {
            RatesQuery::Single(p) => std::slice::from_ref(p),
            RatesQuery::Batch(ps) => ps.as_slice(),
        };
        let served = match shared::api::serve(table, pairs, now, max_age) {
            Ok(s) => s,
            Err(e) => return error_answer(&e),
        };
        let body = match query {
            RatesQuery::Single(_) => shared::api::rate_json(&served.rates[0]),
            RatesQuery::Batch(_) => shared::api::rates_json(&served.rates),
        };
        let mut a = json(200, body);
        a.headers
            .push(("cache-control", format!("max-age={}", served.fresh_for_secs)));
        a
    })
}

fn ready() -> Answer {
    with_table(|table, now, max_age| {
        let oldest = table.oldest_quote();
        if !freshness::is_fresh(oldest, now, max_age) {
            return error_answer(&shared::api::stale(oldest, max_age));
        }
        let age = freshness::age(oldest, now).as_secs_f64();
        json(
            200,
            format!(
                r#"{{"status":"ready","seq":{},"age_seconds":{age:.3}}}"#,
                table.seq()
            ),
        )
    })
}
