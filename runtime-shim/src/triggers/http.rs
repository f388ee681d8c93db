//! The HTTP trigger: one hyper server ([`serve`]: the accept loop, with
//! its limits), routes from the manifest, and per request a fresh instance
//! of the routed component (Spin's model) made from an `InstancePre`,
//! bounded in time and memory. A guest that traps answers
//! 500, one that runs too long 504; the next request gets a new instance and
//! is unaffected.
//!
//! As in Spin, `/.well-known/spin/health` and `/.well-known/spin/info` are
//! answered by the host before routing, and a request that reaches a
//! component must name its host (`Host` or an absolute URI).

use super::access_log::AccessLog;
use crate::app::RoutePattern;
use crate::host::{AppServices, ComponentEnv, InstanceState, new_store};
use crate::metrics::{GuestMetrics, HttpMetrics};
use bytes::Bytes;
use http::uri::Authority;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::Result;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Longest request line target served; longer ones get 414.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// Paths under it are the host's own, never a component's.
const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

/// Where a request goes: to a route's component, or answered by the host.
enum Routed<'a> {
    To(&'a Route, Request<Incoming>),
    Answered(Response<HyperOutgoingBody>),
}

/// What became of a request once a guest had it.
enum Outcome {
    /// The guest set a response (or an error code instead).
    Answered(Result<Response<HyperOutgoingBody>, ErrorCode>),
    /// The request could not be handed to the guest.
    Malformed(String),
    TimedOut,
    Trapped(wasmtime::Error),
    /// The guest returned without setting a response.
    NoResponse,
    TaskFailed(tokio::task::JoinError),
}

pub struct HttpComponent {
    pub pre: ProxyPre<InstanceState>,
    pub env: Arc<ComponentEnv>,
    /// Its requests and its instances' traps and timeouts, when metrics are on.
    pub metrics: Option<(HttpMetrics, GuestMetrics)>,
}

pub struct Route {
    pub pattern: RoutePattern,
    pub raw: String,
    pub component: Arc<HttpComponent>,
}

pub struct HttpTrigger {
    pub routes: Vec<Route>,
    /// The series of answers the host gives itself, when metrics are on.
    pub host_metrics: Option<HttpMetrics>,
    pub app: Arc<AppServices>,
    pub request_timeout: Duration,
    /// Bounds live instances so the pooling allocator is never exhausted:
    /// excess requests wait instead of failing.
    pub instances: Arc<Semaphore>,
    pub log: AccessLog,
    /// The body of `/.well-known/spin/info` ([`app_info`]).
    pub app_info: Bytes,
    /// The app's readiness path (`--readiness-path`), which the host answers
    /// with a 503 itself once the instance is leaving.
    pub readiness_path: Option<String>,
    /// Set at SIGTERM for the `--shutdown-delay`: the instance still serves,
    /// but tells a readiness probe it takes no new traffic.
    pub leaving: Arc<AtomicBool>,
}

/// Spin's `/.well-known/spin/info`: pretty JSON of the application's name
/// and, when the manifest gives one, version.
pub fn app_info(name: &str, version: Option<&str>) -> Bytes {
    #[derive(serde::Serialize)]
    struct Info<'a> {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
    }
    Bytes::from(serde_json::to_vec_pretty(&Info { name, version }).expect("strings serialize"))
}

fn full(body: Bytes) -> HyperOutgoingBody {
    Full::new(body).map_err(|never| match never {}).boxed_unsync()
}

/// A JSON error in the app's own shape, for failures the host answers.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response<HyperOutgoingBody> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(Bytes::from(body)))
        .expect("valid response")
}

impl HttpTrigger {
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let (resp, metrics) = self.dispatch(req, client).await;
        let elapsed = started.elapsed();
        self.log.request(&method, &path, resp.status(), elapsed);
        if let Some(m) = metrics {
            m.observe(resp.status(), elapsed);
        }
        resp
    }

    /// Route, run the guest, turn what it did into a response; with the
    /// series it counts in.
    async fn dispatch(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> (Response<HyperOutgoingBody>, Option<&HttpMetrics>) {
        let (route, req) = match self.route(req, client) {
            Routed::To(route, req) => (route, req),
            Routed::Answered(answer) => return (answer, self.host_metrics.as_ref()),
        };
        let metrics = route.component.metrics.as_ref();
        (self.run(route, req).await, metrics.map(|(http, _)| http))
    }

    /// A routed request, in an instance once one is free.
    async fn run(&self, route: &Route, req: Request<Incoming>) -> Response<HyperOutgoingBody> {
        // Closed at shutdown: a request that would wait for an instance then
        // is answered at once instead.
        let Ok(_permit) = self.instances.clone().acquire_owned().await else {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            );
        };
        let outcome = self.run_guest(route.component.clone(), req).await;
        self.respond(&route.component, outcome)
    }

    /// The route a request goes to, with Spin's headers added, or the answer
    /// the host gives itself (well-known paths, a URL too long, no route, no
    /// host).
    fn route(&self, mut req: Request<Incoming>, client: SocketAddr) -> Routed<'_> {
        if let Some(name) = req.uri().path().strip_prefix(WELL_KNOWN_PREFIX) {
            return Routed::Answered(self.well_known(name));
        }
        if self.leaving.load(Ordering::Relaxed) && self.readiness_path.as_deref() == Some(req.uri().path()) {
            return Routed::Answered(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "this instance is shutting down: it finishes what it is sent, but takes no new traffic",
            ));
        }
        if req.uri().to_string().len() > MAX_URI_LEN {
            return Routed::Answered(json_error(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                "the request URL is longer than 8 KiB",
            ));
        }
        let Some(route) = self.routes.iter().find(|r| r.pattern.matches(req.uri().path())) else {
            return Routed::Answered(json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no route matches this path",
            ));
        };
        let authority = match authority(&req) {
            Ok(a) => a,
            Err(why) => return Routed::Answered(json_error(StatusCode::BAD_REQUEST, "bad_request", why)),
        };
        add_spin_headers(&mut req, route, &authority, client);
        Routed::To(route, req)
    }

    /// One request in a fresh instance of `component`, within the time limit.
    async fn run_guest(&self, component: Arc<HttpComponent>, req: Request<Incoming>) -> Outcome {
        let mut store = new_store(component.pre.engine(), component.env.clone(), self.app.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let prepared = (|| -> Result<_> {
            let incoming = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
            let out = store.data_mut().http().new_response_outparam(tx)?;
            Ok((incoming, out))
        })();
        let (incoming, out) = match prepared {
            Ok(p) => p,
            Err(e) => return Outcome::Malformed(e.to_string()),
        };
        // The guest runs in a task of its own: it may keep streaming the body
        // after the response head is sent, and an idle worker can take it
        // (measured slightly faster than running it inside the connection's
        // task on two cores).
        let task = tokio::spawn(tokio::time::timeout(self.request_timeout, async move {
            let proxy = component.pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, out)
                .await
        }));
        if let Ok(answer) = rx.await {
            return Outcome::Answered(answer);
        }
        // The guest ended (or was stopped) without setting a response.
        match task.await {
            Ok(Err(_elapsed)) => Outcome::TimedOut,
            Ok(Ok(Err(trap))) => Outcome::Trapped(trap),
            Ok(Ok(Ok(()))) => Outcome::NoResponse,
            Err(join) => Outcome::TaskFailed(join),
        }
    }

    /// The response for what the guest did; failures are logged here.
    fn respond(&self, component: &HttpComponent, outcome: Outcome) -> Response<HyperOutgoingBody> {
        let id = &component.env.id;
        let guest = component.metrics.as_ref().map(|(_, guest)| guest);
        match (&outcome, guest) {
            (Outcome::TimedOut, Some(g)) => g.timeouts.inc(),
            (Outcome::Trapped(_), Some(g)) => g.traps.inc(),
            _ => 0,
        };
        let (status, code, message) = match outcome {
            Outcome::Answered(Ok(response)) => return response,
            Outcome::Answered(Err(code)) => {
                tracing::error!("component {id:?} answered with an error: {code:?}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the component failed to answer",
                )
            }
            Outcome::Malformed(why) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("malformed request: {why}"),
                );
            }
            Outcome::TimedOut => {
                tracing::error!(
                    "component {id:?} did not answer within {:?}",
                    self.request_timeout
                );
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    "the component did not answer in time",
                )
            }
            Outcome::Trapped(trap) => {
                tracing::error!("component {id:?} failed: {trap:?}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the component failed",
                )
            }
            Outcome::NoResponse => {
                tracing::error!("component {id:?} returned without a response");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the component gave no response",
                )
            }
            Outcome::TaskFailed(join) => {
                tracing::error!("component {id:?} task failed: {join}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the component failed",
                )
            }
        };
        json_error(status, code, message)
    }

    /// `/.well-known/spin/<name>`: `health` and `info`; anything else is 404.
    fn well_known(&self, name: &str) -> Response<HyperOutgoingBody> {
        match name {
            "health" => Response::new(full(Bytes::from_static(b"OK"))),
            "info" => Response::builder()
                .header("content-type", "application/json")
                .body(full(self.app_info.clone()))
                .expect("valid response"),
            _ => json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such /.well-known/spin/ path",
            ),
        }
    }
}

/// The authority Spin requires of a request that reaches a component: from
/// a valid `Host` header or an absolute URI, which agree when both are given.
/// (Spin closes the connection without an answer otherwise.)
fn authority(req: &Request<Incoming>) -> Result<Authority, &'static str> {
    let header = match req.headers().get(hyper::header::HOST) {
        None => None,
        Some(h) => Some(
            h.to_str()
                .ok()
                .and_then(|h| h.parse::<Authority>().ok())
                .ok_or("the Host header is not a valid host[:port]")?,
        ),
    };
    match (header, req.uri().authority()) {
        (None, None) => Err("the request has no Host header"),
        (Some(h), Some(u)) if h != *u => Err("the Host header and the request URI name different hosts"),
        (Some(a), _) => Ok(a),
        (None, Some(a)) => Ok(a.clone()),
    }
}

/// The request headers Spin adds, which some components read.
fn add_spin_headers(req: &mut Request<Incoming>, route: &Route, host: &Authority, client: SocketAddr) {
    let path = req.uri().path().to_string();
    let full_url = format!(
        "http://{host}{}",
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let matched_prefix = match &route.pattern {
        RoutePattern::Exact(r) => r.clone(),
        RoutePattern::Prefix(p) => p.clone(),
    };
    let path_info = path
        .strip_prefix(matched_prefix.as_str())
        .unwrap_or("")
        .to_string();
    let headers = req.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("spin-full-url", &full_url);
    put("spin-path-info", &path_info);
    put("spin-matched-route", &route.raw);
    put("spin-raw-component-route", &route.raw);
    put("spin-component-route", &matched_prefix);
    put("spin-base-path", "/");
    put("spin-client-addr", &client.to_string());
}

/// What one client may take of the server.
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// An idle or slow client must send its request headers within this.
    pub header_read_timeout: Duration,
}

/// Bytes of request head one connection may buffer.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Accepts connections until `shutdown` resolves; the connections still
/// open are then left to drain through the returned handle.
pub async fn serve(
    listener: tokio::net::TcpListener,
    trigger: Arc<HttpTrigger>,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<hyper_util::server::graceful::GracefulShutdown> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(100)
        // About the most a connection buffers of a request's head (a last
        // read may take it to twice this): past it, 431 and the connection
        // closes.
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = connections.clone().acquire_owned() => p?,
        };
        let (stream, client) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let trigger = trigger.clone();
        let service = hyper::service::service_fn(move |req| {
            let trigger = trigger.clone();
            async move { Ok::<_, std::convert::Infallible>(trigger.handle(req, client).await) }
        });
        let conn = graceful.watch(builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    Ok(graceful)
}
