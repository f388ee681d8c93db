//! The emulator's state and HTTP handling.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use shared::one_frame::{WireQuote, messages};
use shared::{Currency, Pair, Timestamp};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Body = BoxBody<Bytes, Infallible>;

/// Which calls count against the quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CountPolicy {
    /// Every call with a valid token, whatever its answer.
    All,
    /// Only calls answered with rates.
    Successful,
}

pub struct Config {
    pub tokens: Vec<String>,
    pub seed: u64,
    pub daily_quota: u64,
    pub currencies: Vec<Currency>,
    pub count: CountPolicy,
    pub daily_reset: bool,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum FaultMode {
    #[default]
    None,
    Http500,
    Hang,
    Malformed,
    Truncated,
    MissingPairs,
    Error,
}

/// Body of `POST /__admin/fault`.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
struct Fault {
    mode: FaultMode,
    /// The `error` text for mode `error`.
    message: Option<String>,
    /// The HTTP status for mode `error`: One-Frame answers its errors with
    /// 200, but some deployments answer `Quota reached` with 400.
    status: Option<u16>,
    /// Delay before every `/rates` answer.
    latency_ms: u64,
    /// Shifts the emulator's clock: `time_stamp`s and the quota's day.
    clock_offset_s: i64,
    /// Apply `mode` to this many calls only, then go back to `none`.
    times: Option<u64>,
}

struct State {
    rng: StdRng,
    /// Calls per (token, UTC day).
    calls: HashMap<(String, String), u64>,
    fault: Fault,
}

pub struct Emulator {
    config: Config,
    state: Mutex<State>,
}

/// How long a `hang` fault holds a request before giving up.
const HANG: Duration = Duration::from_secs(600);

impl Emulator {
    pub fn new(config: Config) -> Emulator {
        let rng = StdRng::seed_from_u64(config.seed);
        Emulator {
            config,
            state: Mutex::new(State {
                rng,
                calls: HashMap::new(),
                fault: Fault::default(),
            }),
        }
    }

    fn now(&self, fault: &Fault) -> Timestamp {
        let now = Timestamp::now();
        let shift = Duration::from_secs(fault.clock_offset_s.unsigned_abs());
        if fault.clock_offset_s >= 0 {
            now.plus(shift)
        } else {
            now.minus(shift)
        }
    }

    fn quota_day(&self, now: Timestamp) -> String {
        if self.config.daily_reset {
            now.utc_day()
        } else {
            String::from("forever")
        }
    }

    /// The whole `/rates` decision except the delivery of faults that need
    /// time (latency, hang).
    fn rates(&self, token: Option<&str>, query: &str) -> (Fault, Answer) {
        let mut st = self.state.lock().expect("emulator state");
        let fault = st.fault.clone();
        if let Some(n) = st.fault.times.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.fault.mode = FaultMode::None;
                st.fault.times = None;
            }
        }
        let Some(token) = token.filter(|t| self.config.tokens.iter().any(|k| k == t)) else {
            return (fault, Answer::Error(messages::FORBIDDEN.into()));
        };
        let now = self.now(&fault);
        let key = (token.to_string(), self.quota_day(now));
        let used = st.calls.get(&key).copied().unwrap_or(0);
        if used >= self.config.daily_quota {
            return (fault, Answer::Error(messages::QUOTA_REACHED.into()));
        }
        let answer = match parse_pairs(query, &self.config.currencies) {
            Err(msg) => Answer::Error(msg.into()),
            Ok(pairs) => Answer::Quotes(pairs.into_iter().map(|p| quote(&mut st.rng, p, now)).collect()),
        };
        let counts = match self.config.count {
            CountPolicy::All => true,
            CountPolicy::Successful => matches!(answer, Answer::Quotes(_)) && fault.mode == FaultMode::None,
        };
        if counts {
            *st.calls.entry(key).or_insert(0) += 1;
        }
        (fault, answer)
    }

    fn calls_today(&self, token: &str) -> u64 {
        let st = self.state.lock().expect("emulator state");
        let day = self.quota_day(self.now(&st.fault));
        st.calls.get(&(token.to_string(), day)).copied().unwrap_or(0)
    }
}

enum Answer {
    Quotes(Vec<WireQuote>),
    Error(String),
}

/// Reads the repeated `pair` parameters. One bad pair fails the whole call,
/// without naming it; same-currency pairs are dropped.
fn parse_pairs(query: &str, supported: &[Currency]) -> Result<Vec<Pair>, &'static str> {
    let values: Vec<&str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| *k == "pair")
        .map(|(_, v)| v)
        .collect();
    if values.is_empty() {
        return Err(messages::NO_PAIR);
    }
    let mut pairs = Vec::with_capacity(values.len());
    for v in values {
        let pair = Pair::parse(v).map_err(|_| messages::INVALID_PAIR)?;
        if !supported.contains(&pair.from) || !supported.contains(&pair.to) {
            return Err(messages::INVALID_PAIR);
        }
        if pair.from != pair.to {
            pairs.push(pair);
        }
    }
    Ok(pairs)
}

/// One-Frame's `time_stamp`: milliseconds with trailing zeros dropped.
fn one_frame_time(t: Timestamp) -> String {
    // Whole milliseconds always print as `...:SS.mmmZ`.
    let ms = Timestamp::from_unix_millis(t.unix_millis()).to_rfc3339();
    let trimmed = ms
        .trim_end_matches('Z')
        .trim_end_matches('0')
        .trim_end_matches('.');
    format!("{trimmed}Z")
}

fn quote(rng: &mut StdRng, pair: Pair, now: Timestamp) -> WireQuote {
    let bid: f64 = rng.random();
    let ask: f64 = rng.random();
    WireQuote {
        from: pair.from.code().into(),
        to: pair.to.code().into(),
        bid,
        ask,
        price: (bid + ask) / 2.0,
        time_stamp: one_frame_time(now),
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .expect("valid response")
}

fn json(body: impl Into<Bytes>) -> Response<Body> {
    full(StatusCode::OK, "application/json", body)
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

async fn handle(em: Arc<Emulator>, req: Request<Incoming>) -> Response<Body> {
    let query = req.uri().query().unwrap_or("").to_string();
    let token = req
        .headers()
        .get("token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/rates") => {
            let (fault, answer) = em.rates(token.as_deref(), &query);
            if fault.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
            }
            deliver(fault, answer).await
        }
        (&Method::GET, "/streaming/rates") => stream(em, token, query),
        (&Method::GET, "/__admin/calls") => {
            let token = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(str::to_string)
                .unwrap_or_else(|| em.config.tokens[0].clone());
            json(serde_json::json!({ "calls": em.calls_today(&token) }).to_string())
        }
        (&Method::POST, "/__admin/reset") => {
            let mut st = em.state.lock().expect("emulator state");
            st.calls.clear();
            st.fault = Fault::default();
            json(r#"{"reset":true}"#)
        }
        (&Method::POST, "/__admin/fault") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return full(StatusCode::BAD_REQUEST, "text/plain", e.to_string()),
            };
            match serde_json::from_slice::<Fault>(&body) {
                Ok(f) => {
                    tracing::info!(fault = ?f, "fault set to {f:?}");
                    em.state.lock().expect("emulator state").fault = f;
                    json(r#"{"fault":"set"}"#)
                }
                Err(e) => full(StatusCode::BAD_REQUEST, "text/plain", format!("bad fault: {e}")),
            }
        }
        _ => full(StatusCode::NOT_FOUND, "text/plain", "Not Found"),
    }
}

async fn deliver(fault: Fault, answer: Answer) -> Response<Body> {
    let quotes = match answer {
        Answer::Error(m) => return json(error_body(&m)),
        Answer::Quotes(q) => q,
    };
    let render = |q: &[WireQuote]| serde_json::to_string(q).expect("quotes serialise");
    match fault.mode {
        FaultMode::None => json(render(&quotes)),
        FaultMode::Http500 => full(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "Internal Server Error",
        ),
        FaultMode::Hang => {
            tokio::time::sleep(HANG).await;
            full(StatusCode::GATEWAY_TIMEOUT, "text/plain", "hung")
        }
        FaultMode::Malformed => json(r#"[{"from":"USD","to":"JPY","bid":0.5,"ask"::}"#),
        FaultMode::Truncated => {
            let s = render(&quotes);
            json(s[..s.len() / 2].to_string())
        }
        FaultMode::MissingPairs => {
            let keep = quotes.len().saturating_sub(1);
            json(render(&quotes[..keep]))
        }
        FaultMode::Error => {
            let body = error_body(fault.message.as_deref().unwrap_or("Internal Error"));
            match fault.status.and_then(|s| StatusCode::from_u16(s).ok()) {
                Some(status) => full(status, "application/json", body),
                None => json(body),
            }
        }
    }
}

/// `GET /streaming/rates`: a 200 and then a JSON array about once a second,
/// back to back; errors arrive inside the stream.
fn stream(em: Arc<Emulator>, token: Option<String>, query: String) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
    tokio::spawn(async move {
        loop {
            let (_, answer) = em.rates(token.as_deref(), &query);
            let (chunk, end) = match answer {
                Answer::Quotes(q) => (serde_json::to_string(&q).expect("quotes serialise"), false),
                Answer::Error(m) => (error_body(&m), true),
            };
            if tx.send(Ok(Frame::data(Bytes::from(chunk)))).await.is_err() || end {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let body = StreamBody::new(tokio_stream(rx));
    Response::builder()
        .header("content-type", "application/json")
        .body(BodyExt::boxed(body))
        .expect("valid response")
}

fn tokio_stream<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_core::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

pub async fn serve(listener: tokio::net::TcpListener, em: Arc<Emulator>) -> anyhow::Result<()> {
    loop {
        let (conn, _) = listener.accept().await?;
        let em = em.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let em = em.clone();
                async move { Ok::<_, Infallible>(handle(em, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(conn), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_stamps_drop_trailing_zeros_like_one_frame() {
        let t = |s| one_frame_time(Timestamp::parse(s).unwrap());
        assert_eq!(t("2022-01-11T07:47:42.740Z"), "2022-01-11T07:47:42.74Z");
        assert_eq!(t("2022-01-11T07:47:42.000Z"), "2022-01-11T07:47:42Z");
        assert_eq!(t("2022-01-11T07:47:42.123456Z"), "2022-01-11T07:47:42.123Z");
    }

    #[test]
    fn pair_rules() {
        let all: Vec<Currency> = Currency::all().collect();
        assert_eq!(parse_pairs("", &all), Err(messages::NO_PAIR));
        assert_eq!(
            parse_pairs("pair=USDJPY&pair=USDXXX", &all),
            Err(messages::INVALID_PAIR)
        );
        assert_eq!(parse_pairs("pair=USDUSD", &all), Ok(vec![]));
        let jpy_only = [Currency::USD, Currency::parse("JPY").unwrap()];
        assert_eq!(parse_pairs("pair=USDEUR", &jpy_only), Err(messages::INVALID_PAIR));
        assert_eq!(
            parse_pairs("pair=USDJPY&pair=JPYJPY", &jpy_only).unwrap().len(),
            1
        );
    }
}
