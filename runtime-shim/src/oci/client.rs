//! The registry side of a pull: `GET`s over HTTP/1.1 with TLS (plain HTTP
//! with `--insecure`; on loopback, TLS first and plain HTTP when the registry
//! does not speak it, as Docker does for localhost), anonymous bearer tokens
//! when the registry asks for one (as ghcr.io and Docker Hub do even for
//! public images), and redirects (blob downloads often move to a CDN).
//!
//! TLS trusts the PEM bundle at `$SSL_CERT_FILE`, else
//! `/etc/ssl/certs/ca-certificates.crt`: where spin-operator mounts its CA
//! bundle when the executor sets `installDefaultCACerts`. Every request is
//! bounded in time and every body in size.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use wasmtime::{Result, bail, format_err};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request, from connecting to the last byte of its body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_REDIRECTS: usize = 5;
/// Where spin-operator mounts the CA bundle (and Debian keeps its own).
const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How to speak to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https,
    Http,
    /// HTTPS, and plain HTTP from the first time HTTPS cannot be spoken.
    HttpsThenHttp,
}

pub struct Client {
    /// `http` or `https`.
    scheme: &'static str,
    /// Whether a failed HTTPS connection may be retried, once, in plain HTTP.
    may_fall_back: bool,
    /// `host[:port]` of the registry's API.
    host: String,
    repository: String,
    tls: Option<TlsConnector>,
    /// An anonymous bearer token, once the registry has asked for one.
    token: Option<String>,
}

/// What the registry answered instead of a body, for the caller to word.
pub enum Refusal {
    /// A status other than 2xx, with the registry's own words
    /// (`errors[].code: message` of its JSON).
    Status { code: StatusCode, detail: String },
    /// A body longer than the caller allowed.
    TooLarge,
}

impl Client {
    pub fn new(host: &str, repository: &str, transport: Transport) -> Result<Client> {
        let tls = match transport {
            Transport::Https => Some(tls_connector()?),
            Transport::Http => None,
            // Without a CA bundle, straight to plain HTTP.
            Transport::HttpsThenHttp => tls_connector().ok(),
        };
        Ok(Client {
            scheme: if tls.is_some() { "https" } else { "http" },
            may_fall_back: transport == Transport::HttpsThenHttp && tls.is_some(),
            host: host.to_string(),
            repository: repository.to_string(),
            tls,
            token: None,
        })
    }

    /// `GET /v2/<repository>/<path>`; the body, at most `max` bytes. A status
    /// other than 2xx (after authenticating and following redirects) or a
    /// longer body is `Ok(Err(_))`; not reaching the registry is `Err`.
    pub async fn get(
        &mut self,
        path: &str,
        accept: &str,
        max: usize,
    ) -> Result<std::result::Result<(HeaderMap, Bytes), Refusal>> {
        let first = self.get_over(self.scheme, path, accept, max).await;
        let fall_back = std::mem::take(&mut self.may_fall_back);
        match first {
            Err(https) if fall_back => {
                tracing::info!(
                    "{}: no HTTPS ({https:#}); plain HTTP, as for any registry on loopback",
                    self.host
                );
                self.scheme = "http";
                // When plain HTTP fails too, or meets a TLS server (400), the
                // answer also says why HTTPS was not used.
                match self.get_over("http", path, accept, max).await {
                    Err(http) => Err(format_err!("{http:#} (and over HTTPS: {https:#})")),
                    Ok(Err(Refusal::Status { code, detail })) if code == StatusCode::BAD_REQUEST => {
                        Ok(Err(Refusal::Status {
                            code,
                            detail: format!("{detail}; and over HTTPS: {https:#}"),
                        }))
                    }
                    answered => answered,
                }
            }
            other => other,
        }
    }

    async fn get_over(
        &mut self,
        scheme: &str,
        path: &str,
        accept: &str,
        max: usize,
    ) -> Result<std::result::Result<(HeaderMap, Bytes), Refusal>> {
        let first: Uri = format!("{scheme}://{}/v2/{}/{path}", self.host, self.repository)
            .parse()
            .map_err(|e| format_err!("bad registry URL: {e}"))?;
        let mut uri = first.clone();
        let mut authenticated = false;
        for _ in 0..=MAX_REDIRECTS {
            // Credentials only ever go to the registry itself, not to
            // wherever it redirects.
            let token = self
                .token
                .as_deref()
                .filter(|_| uri.authority() == first.authority());
            let (head, body) = match self.send(&uri, accept, token, max).await? {
                Ok(answer) => answer,
                Err(too_large) => return Ok(Err(too_large)),
            };
            match head.status {
                s if s.is_success() => return Ok(Ok((head.headers, body))),
                s if s.is_redirection() => {
                    let location = (head.headers.get(header::LOCATION))
                        .and_then(|l| l.to_str().ok())
                        .ok_or_else(|| format_err!("{} answered {s} without a Location", self.host))?;
                    uri = follow(&uri, location)?;
                }
                StatusCode::UNAUTHORIZED if !authenticated && uri == first => {
                    authenticated = true;
                    self.token = Some(self.anonymous_token(&head.headers).await?);
                }
                code => {
                    return Ok(Err(Refusal::Status {
                        code,
                        detail: registry_errors(&body),
                    }));
                }
            }
        }
        bail!("{} redirected more than {MAX_REDIRECTS} times", self.host)
    }

    /// The token a `WWW-Authenticate: Bearer realm=…,service=…,scope=…`
    /// challenge offers to anyone (no credentials are sent).
    async fn anonymous_token(&self, headers: &HeaderMap) -> Result<String> {
        let challenge = (headers.get(header::WWW_AUTHENTICATE))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(params) = challenge
            .strip_prefix("Bearer ")
            .or_else(|| challenge.strip_prefix("bearer "))
        else {
            bail!(
                "{} requires credentials ({challenge:?}); runtime-shim pulls anonymously, \
                 so the app must be public (as spin-operator's spinImage executors require)",
                self.host
            );
        };
        let params = parse_challenge(params);
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format_err!("{}: a Bearer challenge without a realm", self.host))?;
        let mut query = Vec::new();
        if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
            query.push(format!("service={}", encode(service)));
        }
        let scope = params
            .iter()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        query.push(format!("scope={}", encode(&scope)));
        let separator = if realm.contains('?') { '&' } else { '?' };
        let uri: Uri = format!("{realm}{separator}{}", query.join("&"))
            .parse()
            .map_err(|e| format_err!("{}: bad token realm {realm:?}: {e}", self.host))?;
        let Ok((head, body)) = self.send(&uri, "application/json", None, 64 * 1024).await? else {
            bail!("{}: the token answer from {realm} is too large", self.host);
        };
        if !head.status.is_success() {
            bail!(
                "{}: no anonymous pull token ({} from {realm}): the app must be public",
                self.host,
                head.status
            );
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token =
            serde_json::from_slice(&body).map_err(|e| format_err!("{}: bad token answer: {e}", self.host))?;
        t.token
            .or(t.access_token)
            .ok_or_else(|| format_err!("{}: the token answer holds no token", self.host))
    }

    /// One request on a connection of its own.
    async fn send(
        &self,
        uri: &Uri,
        accept: &str,
        token: Option<&str>,
        max: usize,
    ) -> Result<std::result::Result<(http::response::Parts, Bytes), Refusal>> {
        let host = uri.host().unwrap_or_default().to_string();
        let what = uri
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_default()
            .to_string();
        let attempt = async {
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((bare, port)))
                .await
                .map_err(|_| format_err!("no connection within {CONNECT_TIMEOUT:?}"))??;
            let _ = tcp.set_nodelay(true);
            let target = uri.path_and_query().map_or("/", |p| p.as_str());
            let request = Request::get(target)
                .header(header::HOST, &what)
                .header(header::ACCEPT, accept)
                .header(
                    header::USER_AGENT,
                    concat!("runtime-shim/", env!("CARGO_PKG_VERSION")),
                );
            let request = match token {
                Some(t) => request.header(header::AUTHORIZATION, format!("Bearer {t}")),
                None => request,
            }
            .body(Empty::<Bytes>::new())?;
            let response = if https {
                let Some(tls) = &self.tls else {
                    bail!("redirected from plain HTTP to HTTPS, which --insecure does not set up");
                };
                let name = ServerName::try_from(bare.to_string())?;
                let stream = tls.connect(name, tcp).await?;
                request_on(stream, request).await?
            } else {
                request_on(tcp, request).await?
            };
            let (head, body) = response.into_parts();
            // Only the boxed error's type tells a body that is too long from
            // a broken connection.
            match Limited::new(body, max).collect().await {
                Ok(body) => Ok(Ok((head, body.to_bytes()))),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => Ok(Err(Refusal::TooLarge)),
                Err(e) => Err(format_err!("reading the body: {e}")),
            }
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => bail!("cannot reach the registry at {what}: {e:#}"),
            Err(_) => bail!("the registry at {what} did not answer within {REQUEST_TIMEOUT:?}"),
        }
    }
}

async fn request_on<S>(
    stream: S,
    request: Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender.send_request(request).await?)
}

fn tls_connector() -> Result<TlsConnector> {
    let file = std::env::var_os("SSL_CERT_FILE").unwrap_or_else(|| DEFAULT_CA_FILE.into());
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&file).map_err(|e| {
        format_err!(
            "no CA certificates for HTTPS at {} ({e}): set SSL_CERT_FILE, give the SpinAppExecutor \
             installDefaultCACerts: true, or --insecure for a plain-HTTP registry",
            file.to_string_lossy()
        )
    })?;
    for cert in certs {
        let cert = cert.map_err(|e| format_err!("{}: {e}", file.to_string_lossy()))?;
        // A bundle may hold certificates rustls cannot use; the rest still count.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        bail!("{} holds no usable CA certificate", file.to_string_lossy());
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `Location` against the URL that answered with it.
fn follow(from: &Uri, location: &str) -> Result<Uri> {
    let to: Uri = location
        .parse()
        .map_err(|e| format_err!("bad redirect {location:?}: {e}"))?;
    if to.scheme().is_some() {
        return Ok(to);
    }
    let mut parts = from.clone().into_parts();
    parts.path_and_query = to.path_and_query().cloned();
    Uri::from_parts(parts).map_err(|e| format_err!("bad redirect {location:?}: {e}"))
}

/// `key="value",key=value` pairs of an auth challenge.
fn parse_challenge(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = params.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((v, a)) => (v, a),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        out.push((key, value.to_string()));
        rest = after.trim_start_matches(',').trim();
    }
    out
}

/// Percent-encodes all but unreserved characters and `:` `/`.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `CODE: message; …` from a registry's `{"errors": [...]}`, else the start
/// of the body.
fn registry_errors(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Error>,
    }
    #[derive(serde::Deserialize)]
    struct Error {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read_as_registries_send_them() {
        let p = parse_challenge(
            r#"realm="https://ghcr.io/token",service="ghcr.io",scope="repository:org/app:pull""#,
        );
        assert_eq!(
            p,
            [
                ("realm".into(), "https://ghcr.io/token".into()),
                ("service".into(), "ghcr.io".into()),
                ("scope".into(), "repository:org/app:pull".into())
            ]
        );
        let p = parse_challenge("realm=https://r/t, service=s");
        assert_eq!(p[1], ("service".into(), "s".into()));
        assert_eq!(encode("repository:a/b:pull push"), "repository:a/b:pull%20push");
    }

    #[test]
    fn redirects_resolve_against_the_answering_url() {
        let from: Uri = "https://ghcr.io/v2/a/blobs/sha256:1".parse().unwrap();
        assert_eq!(
            follow(&from, "/x?y=1").unwrap().to_string(),
            "https://ghcr.io/x?y=1"
        );
        assert_eq!(
            follow(&from, "https://cdn.example/b").unwrap().to_string(),
            "https://cdn.example/b"
        );
    }

    #[test]
    fn registry_errors_are_quoted_in_their_own_words() {
        let body =
            br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#;
        assert_eq!(registry_errors(body), "BLOB_UNKNOWN: blob unknown to registry");
        assert_eq!(registry_errors(b"  not json "), "not json");
    }
}
