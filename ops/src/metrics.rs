//! A `/metrics` endpoint for Prometheus, on its own listener so that nothing
//! of it reaches an app's port: `GET /metrics` answers what a [`Scrape`]
//! renders in the OpenMetrics text format, `GET /healthz` answers 200, and
//! anything else 404 (405 for a method other than GET or HEAD).

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::{Empty, Full, combinators::UnsyncBoxBody};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What Prometheus is told the body is.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A scraper that stalls while sending its request is cut off after this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Something that renders its metrics when scraped.
pub trait Scrape: Send + Sync + 'static {
    /// The whole exposition, ending with `# EOF`.
    fn scrape(&self) -> impl Future<Output = String> + Send;
}

/// `registry` in the OpenMetrics text format.
pub fn encode(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("writing to a String cannot fail");
    out
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn answer(status: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(body)
        .expect("a valid response")
}

async fn route<S: Scrape>(req: Request<hyper::body::Incoming>, source: Arc<S>) -> Response<Body> {
    let text = |s: &'static str| Full::new(Bytes::from_static(s.as_bytes())).boxed_unsync();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = answer(StatusCode::METHOD_NOT_ALLOWED, "text/plain", text("use GET\n"));
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    let head = req.method() == Method::HEAD;
    match req.uri().path() {
        "/metrics" => {
            let body = source.scrape().await;
            let body = if head {
                Empty::new().boxed_unsync()
            } else {
                Full::new(Bytes::from(body)).boxed_unsync()
            };
            answer(StatusCode::OK, CONTENT_TYPE, body)
        }
        "/healthz" => answer(StatusCode::OK, "text/plain", text("ok\n")),
        _ => answer(
            StatusCode::NOT_FOUND,
            "text/plain",
            text("not found: metrics are at /metrics\n"),
        ),
    }
}

/// Serves `source` on `listener` until `shutdown` resolves.
pub async fn serve<S: Scrape>(
    listener: tokio::net::TcpListener,
    source: Arc<S>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let source = source.clone();
        let service = hyper::service::service_fn(move |req| {
            let source = source.clone();
            async move { Ok::<_, Infallible>(route(req, source).await) }
        });
        let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// Binds `address` for [`serve`], with an error that says which flag to change.
pub async fn bind(address: std::net::SocketAddr, flag: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address} for metrics: {e} (choose another with {flag})"))
}
