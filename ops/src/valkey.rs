//! How the native processes (the refresher, its exporter, runtime-shim) open
//! Valkey: `redis://` in clear, or `rediss://` over TLS 1.2 or 1.3 with the
//! server's certificate checked against the system's CA bundle plus
//! `SSL_CERT_FILE` (where a cluster's CA is mounted) and its host name
//! verified. Nothing turns verification off: a URL asking for it
//! (`#insecure`) is refused. A failure is described by its cause (an unknown
//! CA, a certificate for another host, an expired one, a plain server on a
//! TLS URL or the reverse), never with the URL's password.
//!
//! With Sentinels ([`Valkey::with_sentinels`]) the node to connect to is
//! the primary they name at each connection: the URL then gives the
//! credentials, TLS and database, and its own address is not used. A
//! writer that must not lose what it wrote across a failover waits for
//! replicas to acknowledge it ([`Valkey::acknowledged`]).

use crate::redis_url::{RedisUrl, redact, scrub};
use redis::aio::MultiplexedConnection;
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisError, TlsCertificates};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::time::Duration;

/// The environment variable naming an extra CA bundle (PEM).
pub const CA_FILE_ENV: &str = "SSL_CERT_FILE";

/// Where Linux distributions keep the system's CA bundle; the first that
/// exists is used. (spin-operator's executors mount theirs at the first.)
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];

/// A Valkey to connect to: its client, and its URL to describe errors by.
#[derive(Clone)]
pub struct Valkey {
    pub client: Client,
    url: String,
    /// Where the URL comes from (e.g. `VALKEY_URL`), for errors to name.
    setting: &'static str,
    /// The Sentinels that name the primary, when there are any.
    sentinels: Option<Sentinels>,
    /// Replicas that must acknowledge a write ([`Valkey::acknowledged`]).
    replica_acks: usize,
}

/// Sentinels watching one primary, by name.
#[derive(Clone)]
struct Sentinels {
    /// `redis://` or `rediss://` URLs of Sentinels, asked in this order.
    urls: Vec<String>,
    primary_name: String,
    /// Where the URLs come from, for errors to name.
    setting: &'static str,
}

impl Valkey {
    /// Checks `url`, given by `setting`, and the trust store it needs;
    /// connects nothing yet.
    pub fn open(url: &str, setting: &'static str) -> Result<Valkey, String> {
        Ok(Valkey {
            client: client(url).map_err(|e| format!("{setting}: {e}"))?,
            url: url.to_string(),
            setting,
            sentinels: None,
            replica_acks: 0,
        })
    }

    /// The same Valkey, its primary named by the Sentinels at `urls`
    /// (given by `setting`) under `primary_name`; each URL is checked now.
    pub fn with_sentinels(
        mut self,
        urls: &[String],
        primary_name: &str,
        setting: &'static str,
    ) -> Result<Valkey, String> {
        if urls.is_empty() {
            return Err(format!("{setting}: no Sentinel URL"));
        }
        for url in urls {
            client(url).map_err(|e| format!("{setting}: {e}"))?;
        }
        if primary_name.trim().is_empty() {
            return Err(format!("{setting}: the primary's name is empty"));
        }
        self.sentinels = Some(Sentinels {
            urls: urls.to_vec(),
            primary_name: primary_name.trim().to_string(),
            setting,
        });
        Ok(self)
    }

    /// The same Valkey, whose writes count only once `n` replicas hold them.
    pub fn with_replica_acks(mut self, n: usize) -> Valkey {
        self.replica_acks = n;
        self
    }

    /// Whether Sentinels name the primary.
    pub fn has_sentinels(&self) -> bool {
        self.sentinels.is_some()
    }

    pub fn replica_acks(&self) -> usize {
        self.replica_acks
    }

    /// Whether what was written on `conn` so far is held by the replicas
    /// [`Valkey::with_replica_acks`] asks for, within `limit` (`WAIT`), and,
    /// with Sentinels, whether `node` (the `host:port` `conn` reached) is
    /// still the primary they name. An `Err` says which failed: the write
    /// may be lost in a failover, or sit on a primary that has been cut off
    /// (a replica that still followed it may have acknowledged it before
    /// the Sentinels moved it to the new primary).
    pub async fn acknowledged(
        &self,
        conn: &mut MultiplexedConnection,
        node: &str,
        limit: Duration,
    ) -> Result<(), String> {
        if self.replica_acks > 0 {
            let acked: usize = redis::cmd("WAIT")
                .arg(self.replica_acks)
                .arg(limit.as_millis() as u64)
                .query_async(conn)
                .await
                .map_err(|e| self.describe(&e))?;
            if acked < self.replica_acks {
                return Err(format!(
                    "{acked} of {} replica(s) acknowledged the write within {limit:?}",
                    self.replica_acks
                ));
            }
        }
        if self.sentinels.is_some() {
            let (host, port) = self.primary(limit).await.map_err(|e| e.to_string())?;
            let named = format!("{host}:{port}");
            if named != node {
                return Err(format!(
                    "the Sentinels now name {named} the primary, not {node}, where the write went"
                ));
            }
        }
        Ok(())
    }

    /// The primary's `host:port` as the Sentinels name it now: each is asked
    /// in turn until one answers, all within `limit`.
    pub async fn primary(&self, limit: Duration) -> Result<(String, u16), ConnectError> {
        let Some(s) = &self.sentinels else {
            let u = RedisUrl::parse(&self.url).map_err(|e| ConnectError::Config(e.to_string()))?;
            return Ok((u.host(), u.port().unwrap_or(6379)));
        };
        let deadline = tokio::time::Instant::now() + limit;
        let mut failures = Vec::new();
        for url in &s.urls {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let asked = async {
                let mut c = connect_at(
                    &client(url).map_err(ConnectError::Config)?,
                    url,
                    s.setting,
                    left,
                    left,
                )
                .await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&s.primary_name)
                    .query_async::<Option<(String, u16)>>(&mut c)
                    .await
                    .map_err(|e| ConnectError::Unavailable(describe(&e, url)))
            };
            match tokio::time::timeout(left, asked).await {
                Ok(Ok(Some(address))) => return Ok(address),
                Ok(Ok(None)) => {
                    return Err(ConnectError::Config(format!(
                        "Sentinel at {} knows no primary named {:?}: check {}",
                        redact(url),
                        s.primary_name,
                        s.setting
                    )));
                }
                Ok(Err(ConnectError::Config(why))) => return Err(ConnectError::Config(why)),
                Ok(Err(ConnectError::Unavailable(why))) => failures.push(why),
                Err(_) => failures.push(format!("Sentinel at {} did not answer in time", redact(url))),
            }
        }
        Err(ConnectError::Unavailable(format!(
            "no Sentinel named the primary {:?}: {}",
            s.primary_name,
            failures.join("; ")
        )))
    }

    /// The URL without its password.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// See [`tls_cause`].
    pub fn tls_cause(&self, e: &RedisError) -> Option<String> {
        tls_cause(e, &self.url).map(|c| scrub(&c, &self.url))
    }

    /// See [`describe`].
    pub fn describe(&self, e: &RedisError) -> String {
        describe(e, &self.url)
    }

    /// A connection made within `limit`, whose commands each answer within
    /// `response_limit`; a failure says whether its fix is configuration.
    /// With Sentinels, to the primary they name, checked to be one: a node
    /// just demoted is refused as unavailable, and the next try asks again.
    pub async fn connect(
        &self,
        limit: Duration,
        response_limit: Duration,
    ) -> Result<MultiplexedConnection, ConnectError> {
        Ok(self.connect_node(limit, response_limit).await?.0)
    }

    /// As [`Valkey::connect`], with the `host:port` of the node reached.
    pub async fn connect_node(
        &self,
        limit: Duration,
        response_limit: Duration,
    ) -> Result<(MultiplexedConnection, String), ConnectError> {
        if self.sentinels.is_none() {
            let address = RedisUrl::parse(&self.url)
                .map(|u| u.address())
                .unwrap_or_default();
            let conn = connect_at(&self.client, &self.url, self.setting, limit, response_limit).await?;
            return Ok((conn, address));
        }
        let started = tokio::time::Instant::now();
        let (host, port) = self.primary(limit).await?;
        let url = with_address(&self.url, &host, port).map_err(ConnectError::Config)?;
        let left = limit.saturating_sub(started.elapsed());
        let mut conn = connect_at(
            &client(&url).map_err(ConnectError::Config)?,
            &url,
            self.setting,
            left,
            response_limit,
        )
        .await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query_async(&mut conn)
            .await
            .map_err(|e| ConnectError::Unavailable(describe(&e, &url)))?;
        match role.first() {
            Some(redis::Value::BulkString(r)) if r == b"master" => Ok((conn, format!("{host}:{port}"))),
            _ => Err(ConnectError::Unavailable(format!(
                "Sentinel named {} the primary, but it is not (a failover under way)",
                redact(&url)
            ))),
        }
    }
}

/// What a node says of its replication (`INFO replication`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replication {
    /// `master` or `slave`.
    pub role: String,
    /// The replicas a primary sees.
    pub replicas: Vec<Replica>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// `host:port` as the replica announces itself.
    pub address: String,
    /// `online` once it is in sync.
    pub state: String,
    /// Seconds since its last acknowledgement.
    pub lag_seconds: u64,
}

impl Replication {
    /// Reads `INFO replication` on `conn`.
    pub async fn read(conn: &mut MultiplexedConnection) -> redis::RedisResult<Replication> {
        let info: String = redis::cmd("INFO").arg("replication").query_async(conn).await?;
        Ok(Replication::parse(&info))
    }

    fn parse(info: &str) -> Replication {
        let mut r = Replication::default();
        for line in info.lines().map(str::trim) {
            if let Some(role) = line.strip_prefix("role:") {
                r.role = role.to_string();
            } else if line.starts_with("slave") && line.contains(":ip=") {
                let fields: std::collections::HashMap<&str, &str> = line
                    .split_once(':')
                    .map(|(_, f)| f.split(',').filter_map(|kv| kv.split_once('=')).collect())
                    .unwrap_or_default();
                r.replicas.push(Replica {
                    address: format!(
                        "{}:{}",
                        fields.get("ip").unwrap_or(&""),
                        fields.get("port").unwrap_or(&"")
                    ),
                    state: fields.get("state").unwrap_or(&"").to_string(),
                    lag_seconds: fields.get("lag").and_then(|l| l.parse().ok()).unwrap_or(0),
                });
            }
        }
        r
    }

    /// The largest lag of a replica in sync, `None` without one.
    pub fn max_lag_seconds(&self) -> Option<u64> {
        self.replicas
            .iter()
            .filter(|r| r.state == "online")
            .map(|r| r.lag_seconds)
            .max()
    }

    pub fn replicas_online(&self) -> usize {
        self.replicas.iter().filter(|r| r.state == "online").count()
    }
}

/// `url` with its host and port replaced (an IPv6 address in brackets).
fn with_address(url: &str, host: &str, port: u16) -> Result<String, String> {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    RedisUrl::parse(url)
        .and_then(|u| u.with_address(&host, port))
        .map(|u| u.as_str().to_string())
        .map_err(|e| format!("{}: {e}", redact(url)))
}

/// A connection to `url` through `client` (given by `setting`), made within
/// `limit`; a failure says whether its fix is configuration.
async fn connect_at(
    client: &Client,
    url: &str,
    setting: &str,
    limit: Duration,
    response_limit: Duration,
) -> Result<MultiplexedConnection, ConnectError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(limit))
        .set_response_timeout(Some(response_limit));
    let connecting = client.get_multiplexed_async_connection_with_config(&config);
    let failed = match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(c)) => return Ok(c),
        Ok(Err(e)) => Some(e),
        Err(_) => None,
    };
    let shown = redact(url);
    if let Some(e) = &failed
        && (e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("WRONGPASS" | "NOAUTH")))
    {
        return Err(ConnectError::Config(format!(
            "Valkey at {shown} refused the credentials ({e}): check the user and password of {setting} and that user's ACL"
        )));
    }
    if let Some(cause) = connect_cause(url, failed.as_ref(), limit).await {
        return Err(ConnectError::Config(scrub(
            &format!("Valkey at {shown} ({setting}): {cause}"),
            url,
        )));
    }
    Err(ConnectError::Unavailable(match failed {
        Some(e) if !e.is_timeout() => format!("cannot connect to Valkey at {shown}: {}", describe(&e, url)),
        _ => format!("Valkey at {shown} did not answer within {limit:?}"),
    }))
}

/// Why [`Valkey::connect`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// Its fix is configuration: credentials refused, or TLS set up wrong
    /// on one side ([`connect_cause`]).
    Config(String),
    /// Refused, dropped or stalled: worth another try.
    Unavailable(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Config(m) | ConnectError::Unavailable(m) => f.write_str(m),
        }
    }
}

/// Why connecting to `url` failed, when the fix is configuration: a TLS
/// failure ([`tls_cause`]), a TLS server dropping a client that talks in
/// clear, or a server in clear behind a `rediss://` URL. `error` is what
/// connecting returned, `None` when it timed out; `limit` bounds the probe
/// a timeout gets. `None`: not such a failure (a refused or stalled
/// connection is the network's, worth a retry).
pub async fn connect_cause(url: &str, error: Option<&RedisError>, limit: Duration) -> Option<String> {
    match error {
        Some(e) if !e.is_timeout() => tls_cause(e, url).or_else(|| {
            // Closed on us once connected: not refused, nor never reached.
            let dropped = e.is_connection_dropped()
                && io_error(e).is_none_or(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::BrokenPipe
                    )
                });
            let in_clear = RedisUrl::parse(url).is_ok_and(|u| !u.is_tls());
            (dropped && in_clear).then(|| {
                "the server closed the connection before answering: if it serves TLS only, use rediss://"
                    .to_string()
            })
        }),
        _ => plain_server_behind_tls_url(url, limit).await,
    }
}

/// Why a `rediss://` connection timed out, when the reason is a server
/// that speaks in clear: it waits for the end of a line that a TLS
/// handshake never sends, so the handshake hangs instead of failing. One
/// `PING` in clear, answered or not within `limit`. `None` for other URLs,
/// or a server that does not answer (a stalled one: the timeout is then
/// its own cause).
async fn plain_server_behind_tls_url(url: &str, limit: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let info = url.into_connection_info().ok()?;
    let ConnectionAddr::TcpTls { host, port, .. } = info.addr() else {
        return None;
    };
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await.ok()?;
        // A RESP reply: +PONG, or -NOAUTH when a password is required.
        matches!(answer[0], b'+' | b'-').then(|| {
            "TLS: the server answers in clear text: it does not speak TLS on this port: use redis:// for a plain port, or its TLS port".to_string()
        })
    };
    tokio::time::timeout(limit, probe).await.ok().flatten()
}

/// A client for `url` (checked, not yet connected). `Err` says what is
/// wrong with the URL or the trust store, without the password.
pub fn client(url: &str) -> Result<Client, String> {
    let shown = redact(url);
    let info = url.into_connection_info().map_err(|e| {
        format!("{shown} is not a Valkey URL: {e} (use redis://[user:password@]host:port or rediss://...)")
    })?;
    match info.addr() {
        ConnectionAddr::TcpTls { insecure: true, .. } => Err(format!(
            "{shown} asks to skip certificate verification (#insecure), which is not supported: \
             give the server's CA in {CA_FILE_ENV} instead"
        )),
        ConnectionAddr::TcpTls { .. } => {
            crate::install_crypto_provider();
            let roots = trusted_roots(std::env::var_os(CA_FILE_ENV).as_deref().map(Path::new))?;
            let certificates = TlsCertificates {
                client_tls: None,
                root_cert: Some(roots),
            };
            Client::build_with_tls(url, certificates).map_err(|e| format!("{shown}: {e}"))
        }
        _ => Client::open(url).map_err(|e| format!("{shown} is not a Valkey URL: {e}")),
    }
}

/// The PEM of every CA trusted for TLS: the system's bundle and `extra`.
/// An `extra` that cannot be read or holds no certificate is an error: it
/// was named to be used.
pub fn trusted_roots(extra: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut pem = Vec::new();
    if let Some(system) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
        pem.extend(
            std::fs::read(system)
                .map_err(|e| format!("cannot read the CA bundle {}: {e}", system.display()))?,
        );
        pem.push(b'\n');
    }
    if let Some(path) = extra {
        let file =
            std::fs::read(path).map_err(|e| format!("cannot read {CA_FILE_ENV}={}: {e}", path.display()))?;
        if count_certificates(&file) == 0 {
            return Err(format!(
                "{CA_FILE_ENV}={} holds no PEM certificate",
                path.display()
            ));
        }
        pem.extend(file);
    }
    if count_certificates(&pem) == 0 {
        return Err(format!(
            "no CA certificate to verify a TLS server with: none of {} exists and {CA_FILE_ENV} is not set",
            SYSTEM_BUNDLES.join(", ")
        ));
    }
    Ok(pem)
}

fn count_certificates(pem: &[u8]) -> usize {
    CertificateDer::pem_slice_iter(pem).filter(Result::is_ok).count()
}

/// The I/O error inside `e`, if it is one. (redis-rs keeps it behind an
/// `Arc<dyn Error>`, which is what `source` hands out.)
fn io_error(e: &RedisError) -> Option<&std::io::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let source = std::error::Error::source(e)?;
    match source.downcast_ref::<Shared>() {
        Some(shared) => shared.downcast_ref::<std::io::Error>(),
        None => source.downcast_ref::<std::io::Error>(),
    }
}

/// The TLS failure inside `e`, if it is one.
fn tls_error(e: &RedisError) -> Option<&rustls::Error> {
    io_error(e)?.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Whether `e` is a TLS failure (handshake or certificate).
pub fn is_tls_error(e: &RedisError) -> bool {
    tls_error(e).is_some()
}

/// The TLS failure of `e` in words that name the fix (an unknown CA, a
/// certificate for another host or expired, a server that does not speak
/// TLS); `None` when `e` is no TLS failure.
pub fn tls_cause(e: &RedisError, url: &str) -> Option<String> {
    use rustls::{CertificateError as C, Error as T};
    let t = tls_error(e)?;
    let host = url
        .into_connection_info()
        .ok()
        .map(|i| match i.addr() {
            ConnectionAddr::Tcp(h, _) | ConnectionAddr::TcpTls { host: h, .. } => h.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    Some(match t {
        T::InvalidCertificate(C::UnknownIssuer) => format!(
            "TLS: the server's certificate is signed by a CA this process does not trust (the system's bundle plus {CA_FILE_ENV}): give that CA in {CA_FILE_ENV}"
        ),
        T::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            format!(
                "TLS: the server's certificate is not valid for {host:?}: connect by a name the certificate lists"
            )
        }
        T::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "TLS: the server's certificate has expired: renew it".to_string()
        }
        T::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "TLS: the server's certificate is not valid yet (check the clocks)".to_string()
        }
        T::InvalidMessage(_) | T::InappropriateMessage { .. } | T::InappropriateHandshakeMessage { .. } => {
            "TLS: the server does not speak TLS on this port: use redis:// for a plain port, or its TLS port"
                .to_string()
        }
        other => format!("TLS: {other}"),
    })
}

/// `e` from `url` as one line: the TLS cause when there is one, else the
/// error itself; never the password.
pub fn describe(e: &RedisError, url: &str) -> String {
    let said = match tls_cause(e, url) {
        Some(cause) => format!("{cause} ({e})"),
        None => e.to_string(),
    };
    scrub(&said, url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_as_info_says_it() {
        let r = Replication::parse(
            "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
             slave0:ip=valkey-1.valkey-nodes,port=6379,state=online,offset=42,lag=0\r\n\
             slave1:ip=valkey-2.valkey-nodes,port=6379,state=wait_bgsave,offset=0,lag=3\r\n\
             master_failover_state:no-failover\r\n",
        );
        assert_eq!(r.role, "master");
        assert_eq!(r.replicas.len(), 2);
        assert_eq!(r.replicas[0].address, "valkey-1.valkey-nodes:6379");
        assert_eq!((r.replicas_online(), r.max_lag_seconds()), (1, Some(0)));
        let replica = Replication::parse("role:slave\r\nmaster_host:valkey-0\r\n");
        assert_eq!((replica.role.as_str(), replica.replicas.len()), ("slave", 0));
    }

    #[test]
    fn verification_cannot_be_turned_off() {
        let e = client("rediss://:s3cret@valkey:6380/#insecure").unwrap_err();
        assert!(e.contains("#insecure") && e.contains(CA_FILE_ENV), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn a_named_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("ops-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = trusted_roots(Some(&empty)).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = trusted_roots(Some(&dir.join("missing.pem"))).unwrap_err();
        assert!(e.contains("cannot read SSL_CERT_FILE="), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_urls_are_named_without_their_password() {
        let e = client("valkey:6379").unwrap_err();
        assert!(e.contains("is not a Valkey URL"), "{e}");
        let e = client("http://u:s3cret@valkey:6379").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
