//! A local OCI registry: Debian's `docker-registry` (the CNCF distribution
//! registry) on a free loopback port, plain HTTP, its storage in a scratch
//! directory; nothing in its configuration reaches the network.

use crate::http::{self, Response};
use crate::procs::{Proc, TempDir, eventually, free_port};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub struct Registry {
    pub port: u16,
    proc: Proc,
    dir: TempDir,
}

impl Registry {
    /// Starts it and waits until `/v2/` answers (panics after 10 s).
    pub fn start() -> Registry {
        let dir = TempDir::new("registry");
        let port = free_port();
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .expect("write registry config");
        let proc = Proc::spawn(
            Command::new("docker-registry").arg("serve").arg(&config),
            dir.path().join("registry.log"),
        );
        let registry = Registry { port, proc, dir };
        eventually(Duration::from_secs(10), || {
            registry.get("/v2/", &[]).filter(|r| r.status == 200)
        })
        .unwrap_or_else(|| panic!("docker-registry did not start:\n{}", registry.proc.log()));
        registry
    }

    /// `GET target` with `headers`; `None` when the registry does not answer.
    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Option<Response> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        http::request(addr, "GET", target, headers, b"").ok()
    }

    /// `127.0.0.1:PORT/<name_tag>`.
    pub fn reference(&self, name_tag: &str) -> String {
        format!("127.0.0.1:{}/{name_tag}", self.port)
    }

    /// A scratch directory that lives as long as the registry.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}
