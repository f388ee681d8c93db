//! The registry side of a pull, spoken by oci-client (the ORAS project's
//! crate, which the Spin ecosystem uses): the distribution API, anonymous
//! bearer tokens when a registry asks for one (as ghcr.io and Docker Hub do
//! even for public images), and redirects (blob downloads often move to a
//! CDN; credentials never follow them).
//!
//! What stays ours: which transport a registry gets (HTTPS; plain HTTP with
//! `--insecure`; on loopback HTTPS first and plain HTTP when the registry
//! does not speak TLS, as Docker does for localhost), the CA bundle (the
//! system's plus `SSL_CERT_FILE`, where spin-operator mounts its bundle,
//! as for Valkey), time limits, bounded bodies, and the registry's
//! refusals told in its own words.

use bytes::Bytes;
use futures_util::StreamExt;
use http::StatusCode;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, client::ClientConfig, client::ClientProtocol};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Result, bail, format_err};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request, from connecting to the last byte of its body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How to speak to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https,
    Http,
    /// HTTPS, and plain HTTP from the first time HTTPS cannot be spoken.
    HttpsThenHttp,
}

/// What the registry answered instead of a body, for the caller to word.
pub enum Refusal {
    /// A status other than 2xx, with the registry's own words
    /// (`errors[].code: message` of its JSON).
    Status { code: StatusCode, detail: String },
    /// A body longer than the caller allowed.
    TooLarge,
    /// The body does not match the digest it was asked by.
    Mismatch(Bytes),
}

type Answer = std::result::Result<Bytes, Refusal>;

pub struct Client {
    /// The registry's `host[:port]`, for messages.
    host: String,
    https: Option<oci_client::Client>,
    http: Option<oci_client::Client>,
    /// Whether requests now go over plain HTTP.
    plain: AtomicBool,
    /// Whether a failed HTTPS request may still be retried in plain HTTP
    /// (once: the first answer decides).
    may_fall_back: AtomicBool,
}

/// A self-signed CA certificate whose private key was thrown away when it
/// was made: it signs nothing, so trusting it alone trusts no server.
const SIGNS_NOTHING: &str = "-----BEGIN CERTIFICATE-----
MIIBpTCCAUugAwIBAgIUV7Z3DUFKi7yrHv1MTFZrPWOPIxEwCgYIKoZIzj0EAwIw
JzElMCMGA1UEAwwccnVudGltZS1zaGltOiB0cnVzdHMgbm90aGluZzAgFw0yNjEy
MDIyMDQxNDJaGA8yMTI2MTEwODIwNDE0MlowJzElMCMGA1UEAwwccnVudGltZS1z
aGltOiB0cnVzdHMgbm90aGluZzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFh6
GQ03eHO/bqtX7geWt0OmVKsUS2U1faSH8A48YWw2CM1vaAPAwvInKPuhlrU2dPJQ
QTYWETpaTdZQoU8qCYijUzBRMB0GA1UdDgQWBBT38fdMI40tznAeBBeEvgMk0teK
kzAfBgNVHSMEGDAWgBT38fdMI40tznAeBBeEvgMk0teKkzAPBgNVHRMBAf8EBTAD
AQH/MAoGCCqGSM49BAMCA0gAMEUCIFPc1P8hgXeWoIkFXd74Mzo9t+6pRKFWDt68
coiVeKLLAiEAqQYEmRDZAkFKjCEeF8ZDhMHyt/Gmi0WSNrQQ+hTuiZo=
-----END CERTIFICATE-----
";

/// Set when the process found no CA certificate at all and stood in
/// [`SIGNS_NOTHING`] ([`stand_in_trust_anchor`]).
static NO_CA_BUNDLE: AtomicBool = AtomicBool::new(false);

/// oci-client builds, beside the client it is configured with, a default
/// HTTP client whose TLS must find a CA certificate on the system, and
/// panics without one: in a `FROM scratch` image run without
/// spin-operator's bundle, where a plain-HTTP pull must still work. With
/// no CA certificate at all, the process gets [`SIGNS_NOTHING`] through
/// `SSL_CERT_FILE` naming an in-memory file: HTTPS then fails closed, and
/// an HTTPS pull says that no CA bundle was found.
///
/// Call before any other thread starts (it sets an environment variable).
pub fn stand_in_trust_anchor() -> std::io::Result<()> {
    if std::env::var_os(ops::valkey::CA_FILE_ENV).is_some() || ops::valkey::trusted_roots(None).is_ok() {
        return Ok(());
    }
    let file = rustix::fs::memfd_create("runtime-shim-signs-nothing", rustix::fs::MemfdFlags::empty())?;
    rustix::io::write(&file, SIGNS_NOTHING.as_bytes())?;
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    // Kept open for the life of the process: the path names it.
    std::mem::forget(file);
    // SAFETY: called at start-up, before any other thread exists, so no
    // thread reads the environment while it changes.
    unsafe { std::env::set_var(ops::valkey::CA_FILE_ENV, path) };
    NO_CA_BUNDLE.store(true, Ordering::Relaxed);
    Ok(())
}

fn protocol_is_https(protocol: &ClientProtocol) -> bool {
    !matches!(protocol, ClientProtocol::Http)
}

/// An oci-client speaking `protocol`, trusting the system's CAs plus
/// `SSL_CERT_FILE` (and only those: the library's own roots are not used).
fn oci(protocol: ClientProtocol) -> Result<oci_client::Client> {
    ops::install_crypto_provider();
    let mut config = ClientConfig {
        protocol,
        connect_timeout: Some(CONNECT_TIMEOUT),
        user_agent: concat!("runtime-shim/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    if protocol_is_https(&config.protocol) && NO_CA_BUNDLE.load(Ordering::Relaxed) {
        bail!(
            "no CA certificates for HTTPS: none of the system's bundles exists and SSL_CERT_FILE is not \
             set: set SSL_CERT_FILE, give the SpinAppExecutor installDefaultCACerts: true, or --insecure \
             for a plain-HTTP registry"
        );
    }
    let extra = std::env::var_os(ops::valkey::CA_FILE_ENV);
    let pem = ops::valkey::trusted_roots(extra.as_deref().map(std::path::Path::new))
        .map_err(|e| format_err!("no CA certificates for HTTPS: {e}"))?;
    config.tls_certs_only = CertificateDer::pem_slice_iter(&pem)
        .filter_map(|c| c.ok())
        .map(|der| oci_client::client::Certificate {
            encoding: oci_client::client::CertificateEncoding::Der,
            data: der.to_vec(),
        })
        .collect();
    Ok(oci_client::Client::new(config))
}

impl Client {
    pub fn new(host: &str, transport: Transport) -> Result<Client> {
        let (https, http) = match transport {
            Transport::Https => (Some(oci(ClientProtocol::Https)?), None),
            Transport::Http => (None, Some(oci(ClientProtocol::Http)?)),
            // Without a CA bundle, straight to plain HTTP.
            Transport::HttpsThenHttp => (oci(ClientProtocol::Https).ok(), Some(oci(ClientProtocol::Http)?)),
        };
        Ok(Client {
            host: host.to_string(),
            plain: AtomicBool::new(https.is_none()),
            may_fall_back: AtomicBool::new(https.is_some() && http.is_some()),
            https,
            http,
        })
    }

    /// The manifest `reference` names, in one of `accept`, at most `max`
    /// bytes. A refusal is `Ok(Err(_))`; not reaching the registry is `Err`.
    pub async fn manifest(&self, reference: &Reference, accept: &str, max: usize) -> Result<Answer> {
        let answer = self
            .request(|c| async move {
                let pulled = c
                    .pull_manifest_raw(reference, &RegistryAuth::Anonymous, &[accept])
                    .await;
                match pulled {
                    Ok((body, _)) if body.len() > max => Ok(Err(Refusal::TooLarge)),
                    Ok((body, _)) => Ok(Ok(body)),
                    Err(e) => refused(e),
                }
            })
            .await?;
        Ok(answer)
    }

    /// The blob `layer` of `reference`'s repository, at most `max` bytes.
    pub async fn blob(&self, reference: &Reference, layer: &OciDescriptor, max: usize) -> Result<Answer> {
        self.request(|c| async move {
            let mut stream = match c.pull_blob_stream(reference, layer).await {
                Ok(s) => s,
                Err(e) => return refused(e),
            };
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) if body.len() + bytes.len() > max => return Ok(Err(Refusal::TooLarge)),
                    Ok(bytes) => body.extend_from_slice(&bytes),
                    // oci-client checks the digest at the end: ours says how.
                    Err(e) if is_digest_error(&e) => return Ok(Err(Refusal::Mismatch(body.into()))),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(Ok(body.into()))
        })
        .await
    }

    /// One request with the client in use, within [`REQUEST_TIMEOUT`]; on a
    /// loopback registry that does not speak HTTPS, again in plain HTTP.
    async fn request<'a, F, Fut>(&'a self, send: F) -> Result<Answer>
    where
        F: Fn(&'a oci_client::Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Answer, OciDistributionError>> + 'a,
    {
        let host = &self.host;
        let (https, http) = (self.https.as_ref(), self.http.as_ref());
        let in_use = if self.plain.load(Ordering::Relaxed) {
            http
        } else {
            https
        };
        let first = within(host, send(in_use.expect("a client for the transport"))).await;
        let fall_back = self.may_fall_back.swap(false, Ordering::Relaxed);
        let (Some(http), true, Err(https)) = (http, fall_back, &first) else {
            return first;
        };
        tracing::info!("{host}: no HTTPS ({https:#}); plain HTTP, as for any registry on loopback");
        self.plain.store(true, Ordering::Relaxed);
        // When plain HTTP fails too, or meets a TLS server (400), the answer
        // also says why HTTPS was not used.
        match within(host, send(http)).await {
            Err(plain) => Err(format_err!("{plain:#} (and over HTTPS: {https:#})")),
            Ok(Err(Refusal::Status { code, detail })) if code == StatusCode::BAD_REQUEST => {
                Ok(Err(Refusal::Status {
                    code,
                    detail: format!("{detail}; and over HTTPS: {https:#}"),
                }))
            }
            answered => answered,
        }
    }
}

/// `attempt` within [`REQUEST_TIMEOUT`], its failure to reach `host` worded.
async fn within(
    host: &str,
    attempt: impl std::future::Future<Output = std::result::Result<Answer, OciDistributionError>>,
) -> Result<Answer> {
    match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format_err!("cannot reach the registry at {host}: {}", chain(&e))),
        Err(_) => Err(format_err!(
            "the registry at {host} did not answer within {REQUEST_TIMEOUT:?}"
        )),
    }
}

/// A refusal by the registry as an answer; any other failure as an error.
fn refused(e: OciDistributionError) -> std::result::Result<Answer, OciDistributionError> {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => {
            let detail = (envelope.errors.iter())
                .map(|e| format!("{}: {}", code_name(&e.code), e.message))
                .collect::<Vec<_>>()
                .join("; ");
            let not_found = (envelope.errors.iter()).any(|e| {
                matches!(
                    code_name(&e.code).as_str(),
                    "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN" | "NAME_UNKNOWN"
                )
            });
            let code = if not_found {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            };
            Ok(Err(Refusal::Status { code, detail }))
        }
        OciDistributionError::ServerError { code, message, .. } => Ok(Err(Refusal::Status {
            code: StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
            detail: message.chars().take(200).collect::<String>().trim().to_string(),
        })),
        OciDistributionError::DigestError(_) => Ok(Err(Refusal::Mismatch(Bytes::new()))),
        OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => {
            Err(OciDistributionError::AuthenticationFailure(
                "the registry requires credentials; runtime-shim pulls anonymously, so the app must be \
                 public (as spin-operator's spinImage executors require)"
                    .into(),
            ))
        }
        other => Err(other),
    }
}

/// An OCI error code as the registry wrote it (`MANIFEST_UNKNOWN`).
fn code_name(code: &oci_client::errors::OciErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{code:?}"))
}

fn is_digest_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| {
        inner.is::<oci_client::errors::DigestError>() || inner.is::<OciDistributionError>()
    })
}

/// An error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let said = s.to_string();
        if !out.contains(&said) {
            out.push_str(": ");
            out.push_str(&said);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_are_quoted_in_their_own_words() {
        let envelope: oci_client::errors::OciEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#,
        )
        .unwrap();
        let e = OciDistributionError::RegistryError {
            envelope,
            url: "http://r/v2/a/blobs/sha256:1".into(),
        };
        match refused(e) {
            Ok(Err(Refusal::Status { code, detail })) => {
                assert_eq!(code, StatusCode::NOT_FOUND);
                assert_eq!(detail, "BLOB_UNKNOWN: blob unknown to registry");
            }
            _ => panic!("not a refusal"),
        }
    }
}
