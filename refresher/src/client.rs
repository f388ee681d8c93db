//! The One-Frame client: one `GET /rates` for every USD leg, strictly checked.

use shared::one_frame::{self, AnswerError};
use shared::{Currency, Pair, Quote, Timestamp};
use std::fmt;
use std::time::Duration;

/// Largest answer body accepted (the full ISO list is well under 64 KiB).
const MAX_BODY: usize = 4 << 20;

pub struct OneFrameClient {
    http: reqwest::Client,
    rates_url: reqwest::Url,
    token: String,
}

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchError {
    /// No connection, reset, or an HTTP-level failure.
    Transport(String),
    /// A non-200 status.
    Status(u16),
    /// A 200 whose body is an error or an unusable answer.
    Answer(AnswerError),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Transport(e) => write!(f, "One-Frame request failed: {e}"),
            FetchError::Status(s) => write!(f, "One-Frame answered HTTP {s}"),
            FetchError::Answer(e) => e.fmt(f),
        }
    }
}

/// Every `USD → c` pair for the configured currencies (USD itself skipped).
pub fn usd_legs(currencies: &[Currency]) -> Vec<Pair> {
    currencies
        .iter()
        .filter(|c| **c != Currency::USD)
        .map(|c| Pair::new(Currency::USD, *c))
        .collect()
}

impl OneFrameClient {
    pub fn new(base_url: &str, token: String, connect_timeout: Duration) -> Result<OneFrameClient, String> {
        let base = reqwest::Url::parse(base_url)
            .map_err(|e| format!("--one-frame-url {base_url:?} is not a URL: {e}"))?;
        if base.scheme() != "http" {
            return Err(format!(
                "--one-frame-url {base_url:?}: only http:// is supported (One-Frame runs beside the refresher, inside the cluster)"
            ));
        }
        let rates_url = base
            .join("rates")
            .map_err(|e| format!("--one-frame-url {base_url:?}: {e}"))?;
        // One-Frame is spoken to in plain HTTP only (checked above): the
        // client's TLS, compiled in, trusts nothing, and needs no CA bundle
        // in an image that has none.
        ops::install_crypto_provider();
        let no_tls = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(no_tls)
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(OneFrameClient {
            http,
            rates_url,
            token,
        })
    }

    /// The URL being called, for logs (it carries no secret: the token is a header).
    pub fn rates_url(&self) -> &str {
        self.rates_url.as_str()
    }

    /// One call for all `pairs`. The caller bounds its duration.
    pub async fn fetch(&self, pairs: &[Pair], now: impl Fn() -> Timestamp) -> Result<Vec<Quote>, FetchError> {
        let mut url = self.rates_url.clone();
        {
            let mut q = url.query_pairs_mut();
            for p in pairs {
                q.append_pair("pair", &p.to_string());
            }
        }
        let resp = self
            .http
            .get(url)
            .header("token", &self.token)
            .send()
            .await
            .map_err(|e| FetchError::Transport(describe(&e)))?;
        let status = resp.status().as_u16();
        if status != 200 {
            // One-Frame answers its errors with 200, but a deployment in front
            // of it may answer `Quota reached` or `Forbidden` with a 4xx: the
            // body decides, so that neither is retried as a transient failure.
            let body = read_bounded(resp).await.unwrap_or_default();
            return Err(match one_frame::parse_answer(&body) {
                Err(e @ (AnswerError::QuotaReached | AnswerError::Forbidden)) => FetchError::Answer(e),
                _ => FetchError::Status(status),
            });
        }
        let body = read_bounded(resp).await?;
        let answer = one_frame::parse_answer(&body).map_err(FetchError::Answer)?;
        one_frame::validate_answer(pairs, answer, now()).map_err(FetchError::Answer)
    }
}

async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FetchError::Transport(describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::Answer(AnswerError::Malformed(format!(
                "answer larger than {MAX_BODY} bytes"
            ))));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's error kind and causes (its own message repeats the whole URL).
fn describe(e: &reqwest::Error) -> String {
    let mut s = String::from(if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    });
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
