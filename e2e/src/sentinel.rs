//! Valkey without a single point of failure, on loopback: three servers
//! (one primary, two replicas) and three Sentinels watching them as
//! `forex` with a quorum of two, every link over TLS (clients, replication,
//! Sentinel) with a CA of the test's own, replication authenticated as its
//! own ACL user and Sentinel as another, as manifests/valkey-ha.md sets it
//! up in a cluster. And the read Service the edge uses there: haproxy in
//! TCP mode over the three servers, a dead one taken out by its check.

use crate::pki::{CertFiles, TestCa};
use crate::procs::{Proc, TempDir, eventually, free_port, wait_for_port};
use crate::valkey::valkey_binary;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The name the Sentinels watch the primary by.
pub const PRIMARY_NAME: &str = "forex";
/// The default user's password on every server (the refresher's user).
pub const ADMIN_PASSWORD: &str = "adm-4f1c9e";
const REPLICATOR_PASSWORD: &str = "rep-8a2d71";
const SENTINEL_AUTH_PASSWORD: &str = "snt-a1b2c3";
/// What a client gives a Sentinel.
pub const SENTINEL_PASSWORD: &str = "sen-9d8e7f";
/// How long a Sentinel waits before it calls a server down; small, so that
/// a failover takes a few seconds here.
pub const DOWN_AFTER: Duration = Duration::from_millis(1_000);

/// One server or Sentinel process.
struct Member {
    port: u16,
    conf: PathBuf,
    proc: Option<Proc>,
    sentinel: bool,
}

impl Member {
    fn start(&mut self, dir: &TempDir) {
        let log = dir.path().join(format!("{}-{}.log", self.kind(), self.port));
        let mut cmd = Command::new(valkey_binary());
        cmd.arg(&self.conf);
        if self.sentinel {
            cmd.arg("--sentinel");
        }
        let proc = Proc::spawn(&mut cmd, log);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "{} {} did not start:\n{}",
            self.kind(),
            self.port,
            proc.log()
        );
        self.proc = Some(proc);
    }

    fn kind(&self) -> &'static str {
        if self.sentinel { "sentinel" } else { "valkey" }
    }
}

/// Three servers and three Sentinels, TLS only.
pub struct Cluster {
    pub ca: TestCa,
    cert: CertFiles,
    servers: Vec<Member>,
    sentinels: Vec<Member>,
    dir: TempDir,
}

impl Cluster {
    /// Server 0 starts as the primary, 1 and 2 as its replicas; returns once
    /// both replicas are in sync and every Sentinel knows the others.
    pub fn start() -> Cluster {
        let ca = TestCa::new("forex HA test CA");
        let cert = ca.issue(&["127.0.0.1", "localhost"], 1);
        let dir = TempDir::new("sentinel");
        let mut c = Cluster {
            ca,
            cert,
            servers: Vec::new(),
            sentinels: Vec::new(),
            dir,
        };
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for (i, &port) in ports.iter().enumerate() {
            let replica_of = (i > 0).then_some(ports[0]);
            let conf = c.dir.path().join(format!("valkey-{port}.conf"));
            std::fs::write(&conf, c.server_conf(port, replica_of)).unwrap();
            c.servers.push(Member {
                port,
                conf,
                proc: None,
                sentinel: false,
            });
        }
        for _ in 0..3 {
            let port = free_port();
            let conf = c.dir.path().join(format!("sentinel-{port}.conf"));
            std::fs::write(&conf, c.sentinel_conf(port, ports[0])).unwrap();
            c.sentinels.push(Member {
                port,
                conf,
                proc: None,
                sentinel: true,
            });
        }
        let dir = &c.dir;
        for m in c.servers.iter_mut().chain(c.sentinels.iter_mut()) {
            m.start(dir);
        }
        eventually(Duration::from_secs(20), || {
            (c.replicas_in_sync(0) == 2).then_some(())
        })
        .expect("both replicas in sync");
        eventually(Duration::from_secs(20), || {
            c.sentinels
                .iter()
                .all(|s| c.sentinel_field(s.port, "num-other-sentinels").as_deref() == Some("2"))
                .then_some(())
        })
        .expect("the Sentinels know each other");
        c
    }

    fn tls_lines(&self, port: u16) -> String {
        format!(
            "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
             tls-auth-clients no\ntls-replication yes\n",
            self.cert.cert.display(),
            self.cert.key.display(),
            self.ca.cert.display()
        )
    }

    fn server_conf(&self, port: u16, replica_of: Option<u16>) -> String {
        let mut c = format!(
            "bind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\n{}",
            self.dir.path().display(),
            self.tls_lines(port)
        );
        c.push_str(&format!("user default on >{ADMIN_PASSWORD} ~* &* +@all\n"));
        c.push_str(&format!(
            "user replicator on >{REPLICATOR_PASSWORD} +psync +replconf +ping\n"
        ));
        c.push_str(&format!(
            "user sentinel on >{SENTINEL_AUTH_PASSWORD} &__sentinel__:hello +client +config|rewrite +exec +info \
             +multi +ping +publish +replicaof +role +script|kill +slaveof +subscribe\n"
        ));
        c.push_str(&format!(
            "masteruser replicator\nmasterauth {REPLICATOR_PASSWORD}\n"
        ));
        c.push_str("min-replicas-to-write 1\nmin-replicas-max-lag 10\n");
        c.push_str(&format!(
            "replica-announce-ip 127.0.0.1\nreplica-announce-port {port}\n"
        ));
        if let Some(primary) = replica_of {
            c.push_str(&format!("replicaof 127.0.0.1 {primary}\n"));
        }
        c
    }

    fn sentinel_conf(&self, port: u16, primary: u16) -> String {
        format!(
            "bind 127.0.0.1\ndir {}\n{}requirepass {SENTINEL_PASSWORD}\n\
             sentinel sentinel-pass {SENTINEL_PASSWORD}\n\
             sentinel announce-ip 127.0.0.1\nsentinel announce-port {port}\n\
             sentinel monitor {PRIMARY_NAME} 127.0.0.1 {primary} 2\n\
             sentinel auth-user {PRIMARY_NAME} sentinel\nsentinel auth-pass {PRIMARY_NAME} {SENTINEL_AUTH_PASSWORD}\n\
             sentinel down-after-milliseconds {PRIMARY_NAME} {}\n\
             sentinel failover-timeout {PRIMARY_NAME} 10000\nsentinel parallel-syncs {PRIMARY_NAME} 1\n",
            self.dir.path().display(),
            self.tls_lines(port),
            DOWN_AFTER.as_millis()
        )
    }

    /// The URL of server `i` for the default user.
    pub fn server_url(&self, i: usize) -> String {
        format!("rediss://:{ADMIN_PASSWORD}@127.0.0.1:{}", self.servers[i].port)
    }

    pub fn server_port(&self, i: usize) -> u16 {
        self.servers[i].port
    }

    /// Every Sentinel's URL, comma-separated (`VALKEY_SENTINELS`).
    pub fn sentinels_url(&self) -> String {
        (self.sentinels.iter())
            .map(|s| format!("rediss://:{SENTINEL_PASSWORD}@127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `SSL_CERT_FILE` for a client process.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![(
            ops::valkey::CA_FILE_ENV.to_string(),
            self.ca.cert.display().to_string(),
        )]
    }

    /// A client of `url`, trusting the test CA.
    pub fn client(&self, url: &str) -> redis::Client {
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&self.ca.cert).expect("the CA certificate")),
        };
        redis::Client::build_with_tls(url, certificates).expect("a valid URL")
    }

    /// A connection to server `i` (default user); `None` when it does not answer.
    ///
    /// Three tries, 2 s each: the test's own connection must not fail an
    /// assertion because one TLS handshake was slow while the two cores run
    /// an edge under load.
    pub fn conn(&self, i: usize) -> Option<redis::Connection> {
        let client = self.client(&self.server_url(i));
        (0..3).find_map(|_| {
            let c = client.get_connection_with_timeout(Duration::from_secs(2)).ok()?;
            c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            Some(c)
        })
    }

    /// The server the Sentinels name as primary now (the first that answers).
    pub fn primary(&self) -> Option<usize> {
        self.sentinels.iter().find_map(|s| {
            let url = format!("rediss://:{SENTINEL_PASSWORD}@127.0.0.1:{}", s.port);
            let mut c = self
                .client(&url)
                .get_connection_with_timeout(Duration::from_secs(1))
                .ok()?;
            c.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
            let (_, port): (String, u16) = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(PRIMARY_NAME)
                .query(&mut c)
                .ok()?;
            self.servers.iter().position(|m| m.port == port)
        })
    }

    /// `ROLE`'s first word for server `i` (`master`, `slave`), if it answers.
    pub fn role(&self, i: usize) -> Option<String> {
        let v: Vec<redis::Value> = redis::cmd("ROLE").query(&mut self.conn(i)?).ok()?;
        match v.first() {
            Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// Replicas in sync with server `i`, as it reports them.
    pub fn replicas_in_sync(&self, i: usize) -> usize {
        let Some(mut c) = self.conn(i) else { return 0 };
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut c)
            .unwrap_or_default();
        info.lines()
            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
            .count()
    }

    fn sentinel_field(&self, port: u16, field: &str) -> Option<String> {
        let url = format!("rediss://:{SENTINEL_PASSWORD}@127.0.0.1:{port}");
        let mut c = self
            .client(&url)
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let fields: Vec<String> = redis::cmd("SENTINEL")
            .arg("master")
            .arg(PRIMARY_NAME)
            .query(&mut c)
            .ok()?;
        fields.chunks(2).find(|kv| kv[0] == field).map(|kv| kv[1].clone())
    }

    /// `GET key` on server `i`.
    pub fn get(&self, i: usize, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET").arg(key).query(&mut self.conn(i)?).ok()?
    }

    /// Kills server `i` at once (SIGKILL), as a lost node.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.servers[i].proc.take() {
            p.signal("KILL");
            let _ = p.wait(Duration::from_secs(5));
            p.kill();
        }
    }

    /// Freezes server `i` (SIGSTOP): a partition that drops its packets.
    pub fn pause(&self, i: usize) {
        self.servers[i].proc.as_ref().expect("running").signal("STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn resume(&self, i: usize) {
        self.servers[i].proc.as_ref().expect("running").signal("CONT");
    }

    /// Waits until the Sentinels name another primary than `old` and it
    /// says it is one; returns it.
    pub fn wait_for_failover(&self, old: usize, limit: Duration) -> usize {
        eventually(limit, || {
            self.primary()
                .filter(|p| *p != old && self.role(*p).as_deref() == Some("master"))
        })
        .unwrap_or_else(|| panic!("no failover from server {old} within {limit:?}:\n{}", self.logs()))
    }

    /// Every member's log, for a failure's message.
    pub fn logs(&self) -> String {
        (self.servers.iter().chain(&self.sentinels))
            .filter_map(|m| {
                m.proc
                    .as_ref()
                    .map(|p| format!("--- {} {}\n{}", m.kind(), m.port, p.log()))
            })
            .collect()
    }
}

/// The read Service of manifests/valkey-ha.md on loopback: haproxy in TCP
/// mode spreading connections over the servers (TLS passes through), a
/// server that stops accepting taken out by its check.
pub struct ReadService {
    pub port: u16,
    _proc: Proc,
    _dir: TempDir,
}

impl ReadService {
    /// Over the servers `members` of `cluster`; `None` (said so) without haproxy.
    pub fn start(cluster: &Cluster, members: &[usize]) -> Option<ReadService> {
        if !crate::on_path("haproxy") {
            eprintln!("no haproxy on PATH: skipped");
            return None;
        }
        let dir = TempDir::new("read-service");
        let port = free_port();
        let servers: String = members
            .iter()
            .map(|&i| {
                format!(
                    "  server valkey{i} 127.0.0.1:{} check inter 250ms fall 1 rise 1 on-marked-down shutdown-sessions\n",
                    cluster.server_port(i)
                )
            })
            .collect();
        let config = format!(
            "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1h\n  timeout server 1h\n\
             frontend read\n  bind 127.0.0.1:{port}\n  default_backend valkeys\n\
             backend valkeys\n  balance roundrobin\n{servers}"
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let proc = Proc::spawn(
            Command::new("haproxy").arg("-db").arg("-f").arg(&cfg),
            dir.path().join("haproxy.log"),
        );
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "haproxy:\n{}",
            proc.log()
        );
        Some(ReadService {
            port,
            _proc: proc,
            _dir: dir,
        })
    }

    /// The edge's `valkey_url` through it (default user).
    pub fn url(&self) -> String {
        format!("rediss://:{ADMIN_PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// The edge's `valkey_host`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
