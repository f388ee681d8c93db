//! `rates-http`: the rates API (docs/api.md) as a Spin HTTP component.
//!
//! Every answer comes from the instance's key-value cache, through
//! [`edge_cache::current_table`]: it refills the cache from Valkey when it is
//! empty or its snapshot is older than `revalidate_age`, one read at a time
//! per instance group. A rate older than `max_rate_age` is never served.

use edge_cache::Cached;
use shared::Timestamp;
use shared::api::{ApiError, ErrorCode, RETRY_AFTER_SECS, RatesQuery, header};
use shared::contract::OPENAPI_JSON;
use shared::freshness;
use shared::table::RateTable;
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use std::time::Duration;

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
    let answer = route(&method, path, query, || if_none_match(&req));
    write(out, answer, method == Method::Head);
}

/// The request's `If-None-Match`, its lines joined as one list; `None`
/// when there is none or it is not text. Read only when an answer could be
/// a 304.
fn if_none_match(req: &IncomingRequest) -> Option<String> {
    let lines = req.headers().get(header::IF_NONE_MATCH);
    let lines: Vec<&str> = lines
        .iter()
        .map(|l| std::str::from_utf8(l).ok())
        .collect::<Option<_>>()?;
    (!lines.is_empty()).then(|| lines.join(","))
}

fn route(method: &Method, path: &str, query: &str, if_none_match: impl FnOnce() -> Option<String>) -> Answer {
    match path {
        "/rates" | "/healthz" | "/readyz" | "/openapi.json"
            if !matches!(method, Method::Get | Method::Head) =>
        {
            let e = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{} is not allowed here: use GET or HEAD", method_name(method)),
            );
            let mut a = error_answer(&e);
            a.headers.push((header::ALLOW, "GET, HEAD".into()));
            a
        }
        "/rates" => rates(query, if_none_match),
        "/healthz" => json(200, r#"{"status":"ok"}"#.to_string()),
        "/readyz" => ready(),
        "/openapi.json" => json(200, OPENAPI_JSON.to_string()),
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
/// client's delayed ACK, about 40 ms on Linux (docs/performance.md).
fn write(out: ResponseOutparam, answer: Answer, head: bool) {
    let not_modified = answer.status == 304;
    let head = head || not_modified;
    let body_bytes = answer.body.into_bytes();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(answer.headers.len() + 2);
    if !not_modified {
        entries.push((header::CONTENT_TYPE.into(), b"application/json".to_vec()));
    }
    if !head {
        // A HEAD answer or a 304 writes no body, so it may not promise a length.
        entries.push((
            header::CONTENT_LENGTH.into(),
            body_bytes.len().to_string().into_bytes(),
        ));
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
    a.headers.push((header::CACHE_CONTROL, "no-store".into()));
    if e.code.status() == 503 {
        a.headers
            .push((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
    }
    a
}

fn unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::RatesUnavailable,
        "no rates are available yet; try again shortly",
    )
}

/// Runs `answer` on the cached table (refilled when due), with the time and
/// `max_rate_age` it is judged by; `rates_unavailable` when there is none,
/// a JSON 500 when the age variables are malformed (the log names which):
/// the service then runs on no silent default. Answered by the component
/// itself, so every host says the same.
fn with_table(answer: impl FnOnce(&RateTable, Timestamp, Duration) -> Answer) -> Answer {
    let now = Timestamp::now();
    edge_cache::current_table(now, |cached| match cached {
        Cached::Table(table, ages) => answer(&table, now, ages.max_rate_age),
        Cached::Empty => error_answer(&unavailable()),
        Cached::Misconfigured(_) => error_answer(&ApiError::new(
            ErrorCode::Internal,
            "the service is misconfigured; the cause is in its log",
        )),
    })
}

/// Answers carry an `ETag`, but in `make bench`'s A/B build (feature
/// `bench-no-etag`), which shows what the tag costs the 200 path.
const WITH_ETAG: bool = !cfg!(feature = "bench-no-etag");

/// `/rates`: the rates, or a 304 when `If-None-Match` holds their `ETag`.
/// Freshness is judged first, so a stale rate is never revalidated.
fn rates(query: &str, if_none_match: impl FnOnce() -> Option<String>) -> Answer {
    let query = match RatesQuery::parse(query) {
        Ok(q) => q,
        Err(e) => return error_answer(&e),
    };
    with_table(|table, now, max_age| {
        let served = match shared::api::serve(table, query.pairs(), now, max_age) {
            Ok(s) => s,
            Err(e) => return error_answer(&e),
        };
        let mut headers = vec![(
            header::CACHE_CONTROL,
            format!("max-age={}", served.fresh_for_secs),
        )];
        if WITH_ETAG {
            let etag = shared::conditional::etag(query.form(), &served.rates);
            let matched = if_none_match().is_some_and(|v| shared::conditional::none_match(&v, &etag));
            headers.push((header::ETAG, etag));
            if matched {
                return Answer {
                    status: 304,
                    headers,
                    body: String::new(),
                };
            }
        }
        let body = match query {
            RatesQuery::Single(_) => shared::api::rate_json(&served.rates[0]),
            RatesQuery::Batch(_) => shared::api::rates_json(&served.rates),
        };
        Answer {
            status: 200,
            headers,
            body,
        }
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
