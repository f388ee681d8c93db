//! A Valkey server (`valkey-server`, or `redis-server`) on a free loopback
//! port, with a synchronous client for the tests' reads, writes and
//! publishes, and the faults they inject: pause, stop, restart.

use crate::pki::{CertFiles, TestCa};
use crate::procs::{Proc, TempDir, free_port, on_path, repo_root, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `valkey-server` when installed, else `redis-server` (same protocol).
pub fn valkey_binary() -> &'static str {
    if on_path("valkey-server") {
        "valkey-server"
    } else {
        "redis-server"
    }
}

/// How a Valkey server is set up.
#[derive(Default, Clone)]
pub struct ValkeyOptions {
    /// `requirepass` for the default user.
    pub password: Option<String>,
    /// Extra ACL users, as `user` directive arguments.
    pub users: Vec<String>,
    /// TLS only (`port 0`, `tls-port`), with this certificate; clients
    /// must trust `ca`.
    pub tls: Option<Tls>,
}

/// A TLS-only server's certificate and the CA its clients trust.
#[derive(Clone, Debug)]
pub struct Tls {
    pub cert: CertFiles,
    pub ca: PathBuf,
}

/// A Valkey server on a free loopback port.
pub struct Valkey {
    pub port: u16,
    options: ValkeyOptions,
    proc: Option<Proc>,
    /// The test's own connection for faults it injects: kept open, so that
    /// it still works while the server presents a certificate no new
    /// connection would accept.
    admin: std::sync::Mutex<Option<redis::Connection>>,
    /// The CA of a server [`over_tls`] started, kept as long as it runs.
    _ca: Option<TestCa>,
    dir: TempDir,
}

thread_local! {
    static OVER_TLS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `test` with every [`Valkey::start`] of this thread serving TLS only,
/// with a certificate from a CA of its own: a suite written against
/// `Valkey::start` then runs over TLS as it is (the harness gives every
/// client the CA).
pub fn over_tls<T>(test: impl FnOnce() -> T) -> T {
    OVER_TLS.with(|t| t.set(true));
    let result = test();
    OVER_TLS.with(|t| t.set(false));
    result
}

impl Valkey {
    /// A server in clear, or over TLS inside [`over_tls`].
    pub fn start() -> Valkey {
        if !OVER_TLS.with(|t| t.get()) {
            return Valkey::start_with(ValkeyOptions::default());
        }
        let ca = TestCa::new("e2e CA");
        let tls = Tls {
            cert: ca.issue(&["127.0.0.1"], 1),
            ca: ca.cert.clone(),
        };
        let mut v = Valkey::start_with(ValkeyOptions {
            tls: Some(tls),
            ..Default::default()
        });
        v._ca = Some(ca);
        v
    }

    pub fn start_with(options: ValkeyOptions) -> Valkey {
        let mut v = Valkey {
            port: free_port(),
            options,
            proc: None,
            admin: Default::default(),
            _ca: None,
            dir: TempDir::new("valkey"),
        };
        v.start_process();
        v
    }

    fn start_process(&mut self) {
        let conf = self.dir.path().join("valkey.conf");
        let mut text = format!(
            "bind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\n",
            self.dir.path().display()
        );
        match &self.options.tls {
            None => text.push_str(&format!("port {}\n", self.port)),
            Some(tls) => text.push_str(&format!(
                "port 0\ntls-port {}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients no\n",
                self.port,
                tls.cert.cert.display(),
                tls.cert.key.display(),
                tls.ca.display()
            )),
        }
        if let Some(pw) = &self.options.password {
            text.push_str(&format!("requirepass {pw}\n"));
        }
        for u in &self.options.users {
            text.push_str(&format!("user {u}\n"));
        }
        std::fs::write(&conf, text).expect("write valkey.conf");
        *self.admin.lock().unwrap() = None;
        let log = self.dir.path().join("valkey.log");
        let proc = Proc::spawn(Command::new(valkey_binary()).arg(&conf), log);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "Valkey did not start:\n{}",
            proc.log()
        );
        self.proc = Some(proc);
    }

    /// `host:port`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The URL of the default user (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.options.password {
            Some(pw) => format!("{scheme}://:{pw}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// A client of the default user, trusting the server's CA when it
    /// speaks TLS.
    pub fn client(&self) -> redis::Client {
        match &self.options.tls {
            None => redis::Client::open(self.url()).expect("valkey url"),
            Some(tls) => {
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(&tls.ca).expect("the CA certificate")),
                };
                redis::Client::build_with_tls(self.url(), certificates).expect("valkey url")
            }
        }
    }

    /// The CA a client must trust, for a TLS server.
    pub fn ca(&self) -> Option<&Path> {
        self.options.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// The environment a client process needs: `SSL_CERT_FILE` naming the
    /// CA of a TLS server (none for a plain one).
    pub fn client_env(&self) -> Vec<(String, String)> {
        self.ca()
            .map(|ca| vec![(ops::valkey::CA_FILE_ENV.to_string(), ca.display().to_string())])
            .unwrap_or_default()
    }

    /// A synchronous client connection (default user).
    pub fn conn(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect to Valkey")
    }

    /// `cmd` on the kept-open admin connection (opened again once if it
    /// was lost).
    fn admin<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut admin = self.admin.lock().unwrap();
        let conn = admin.get_or_insert_with(|| self.conn());
        match cmd.query(conn) {
            Err(e) if e.is_io_error() || e.is_connection_dropped() => cmd
                .query(admin.insert(self.conn()))
                .unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
            result => result.unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
        }
    }

    /// Serves `cert` from now on, as a certificate rotation does: new
    /// connections get it, open ones keep theirs.
    pub fn rotate_certificate(&mut self, cert: &CertFiles) {
        assert!(self.options.tls.is_some(), "a TLS server");
        self.admin::<()>(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("tls-cert-file")
                .arg(cert.cert.to_str().expect("a UTF-8 path"))
                .arg("tls-key-file")
                .arg(cert.key.to_str().expect("a UTF-8 path")),
        );
        if let Some(tls) = self.options.tls.as_mut() {
            tls.cert = cert.clone();
        }
    }

    /// Closes every client connection but the admin one (`CLIENT KILL`),
    /// as a network blip would; clients reconnect.
    pub fn drop_clients(&self) {
        for kind in ["normal", "pubsub"] {
            self.admin::<redis::Value>(
                redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg(kind)
                    .arg("SKIPME")
                    .arg("yes"),
            );
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET").arg(key).query(&mut self.conn()).expect("GET")
    }

    /// `SET`, on the kept-open connection (no connection set-up in a
    /// measured path).
    pub fn set(&self, key: &str, value: &[u8]) {
        self.admin::<()>(redis::cmd("SET").arg(key).arg(value));
    }

    /// `PUBLISH` on the kept-open connection: the number of subscribers.
    pub fn publish(&self, channel: &str, message: &str) -> i64 {
        self.admin(redis::cmd("PUBLISH").arg(channel).arg(message))
    }

    /// Freezes the server (SIGSTOP): its connections stay open but nothing
    /// is answered, as with a stalled host or a partition that drops packets.
    pub fn pause(&self) {
        self.proc.as_ref().expect("Valkey is running").signal("STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.proc.as_ref().expect("Valkey is running").signal("CONT");
    }

    /// Stops the server (its data is lost: it keeps nothing on disk).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "Valkey is running");
        self.start_process();
    }

    /// Stops it and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.start_process();
    }
}

/// The ACL rule of `user` as manifests/base/valkey.yaml writes it (the
/// `printf 'user <user> on ...'` line of its config script), rendered with
/// `password` and the default key and channel, for a test server's
/// [`ValkeyOptions::users`].
pub fn acl_rule(user: &str, password: &str) -> String {
    let yaml = std::fs::read_to_string(repo_root().join("manifests/base/valkey.yaml")).unwrap();
    let marker = format!("'user {user} on");
    let line = yaml
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no ACL line for {user} in valkey.yaml"));
    let format = line.split('\'').nth(1).unwrap().trim_end_matches("\\n");
    // printf's arguments, in the order the script gives them.
    let mut rule = format.to_string();
    for arg in [password, "rates", "rates_updated"] {
        rule = rule.replacen("%s", arg, 1);
    }
    let rule = rule.replace("%%", "%");
    let rule = rule.trim_start_matches("user ").to_string();
    // Redis 7.0 (Debian 12's stand-in for Valkey) predates CLIENT SETINFO.
    if valkey_binary() == "redis-server" && !server_knows_setinfo() {
        return rule.replace(" +client|setinfo", "");
    }
    rule
}

fn server_knows_setinfo() -> bool {
    let v = Command::new("redis-server").arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    let version = text
        .split("v=")
        .nth(1)
        .unwrap_or("0")
        .split(' ')
        .next()
        .unwrap_or("0");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (7, 2)
}
