//! The One-Frame emulator (`e2e/one-frame`) on a free loopback port, with
//! its admin routes: the call count, a reset and injected faults.

use crate::http;
use crate::procs::{Proc, TempDir, bin, free_port, wait_for_port};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// The One-Frame emulator.
pub struct OneFrame {
    pub port: u16,
    proc: Proc,
    _dir: TempDir,
}

impl OneFrame {
    pub fn start(args: &[&str]) -> OneFrame {
        let port = free_port();
        let dir = TempDir::new("one-frame");
        let proc = Proc::spawn(
            Command::new(bin("one-frame"))
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(args),
            dir.path().join("one-frame.log"),
        );
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "one-frame did not start:\n{}",
            proc.log()
        );
        OneFrame {
            port,
            proc,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Calls counted against the default token's quota today.
    pub fn calls(&self) -> u64 {
        http::get(self.addr(), "/__admin/calls").json()["calls"]
            .as_u64()
            .expect("calls")
    }

    pub fn reset(&self) {
        assert_eq!(
            http::request(self.addr(), "POST", "/__admin/reset", &[], b"")
                .unwrap()
                .status,
            200
        );
    }

    /// Sets the fault, e.g. `{"mode":"http500"}`.
    pub fn fault(&self, json: &str) {
        let r = http::request(self.addr(), "POST", "/__admin/fault", &[], json.as_bytes()).unwrap();
        assert_eq!(r.status, 200, "fault {json}: {}", r.text());
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}
