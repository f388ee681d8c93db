//! A Valkey server (`valkey-server`, or `redis-server`) on a free loopback
//! port, with a synchronous client for the tests' reads, writes and
//! publishes, and the faults they inject: pause, stop, restart.

use crate::procs::{Proc, TempDir, free_port, on_path, wait_for_port};
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
}

/// A Valkey server on a free loopback port.
pub struct Valkey {
    pub port: u16,
    options: ValkeyOptions,
    proc: Option<Proc>,
    dir: TempDir,
}

impl Valkey {
    pub fn start() -> Valkey {
        Valkey::start_with(ValkeyOptions::default())
    }

    pub fn start_with(options: ValkeyOptions) -> Valkey {
        let mut v = Valkey {
            port: free_port(),
            options,
            proc: None,
            dir: TempDir::new("valkey"),
        };
        v.start_process();
        v
    }

    fn start_process(&mut self) {
        let conf = self.dir.path().join("valkey.conf");
        let mut text = format!(
            "port {}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\n",
            self.port,
            self.dir.path().display()
        );
        if let Some(pw) = &self.options.password {
            text.push_str(&format!("requirepass {pw}\n"));
        }
        for u in &self.options.users {
            text.push_str(&format!("user {u}\n"));
        }
        std::fs::write(&conf, text).expect("write valkey.conf");
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

    /// The URL of the default user.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// A synchronous client connection (default user).
    pub fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("valkey url");
        client
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect to Valkey")
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET").arg(key).query(&mut self.conn()).expect("GET")
    }

    pub fn set(&self, key: &str, value: &[u8]) {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query(&mut self.conn())
            .expect("SET");
    }

    pub fn publish(&self, channel: &str, message: &str) -> i64 {
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .query(&mut self.conn())
            .expect("PUBLISH")
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
