//! A local OCI registry: Debian's `docker-registry` (the CNCF distribution
//! registry) on a free loopback port, plain HTTP (or HTTPS beside another,
//! sharing its storage), its storage in a scratch directory; nothing in its
//! configuration reaches the network.

use crate::http::{self, Response};
use crate::procs::{Proc, TempDir, eventually, free_port, repo_root};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub struct Registry {
    pub port: u16,
    proc: Proc,
    dir: TempDir,
    storage: std::path::PathBuf,
}

impl Registry {
    /// Starts it and waits until `/v2/` answers (panics after 10 s).
    pub fn start() -> Registry {
        let dir = TempDir::new("registry");
        let storage = dir.path().join("storage");
        let registry = Registry::spawn(dir, &storage, "");
        eventually(Duration::from_secs(10), || {
            registry.get("/v2/", &[]).filter(|r| r.status == 200)
        })
        .unwrap_or_else(|| panic!("docker-registry did not start:\n{}", registry.proc.log()));
        registry
    }

    /// A second registry over HTTPS (`cert` and `key`, PEM files) serving
    /// what `other` stores; waits until it accepts connections.
    pub fn start_tls_beside(other: &Registry, cert: &Path, key: &Path) -> Registry {
        let tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
        let registry = Registry::spawn(TempDir::new("registry-tls"), other.storage(), &tls);
        eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", registry.port)).ok()
        })
        .unwrap_or_else(|| panic!("docker-registry (TLS) did not start:\n{}", registry.proc.log()));
        registry
    }

    /// `docker-registry serve` on a free loopback port, its storage at
    /// `storage`, with `http` appended to its `http:` section.
    fn spawn(dir: TempDir, storage: &Path, http: &str) -> Registry {
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n{http}",
                storage.display()
            ),
        )
        .expect("write registry config");
        let proc = Proc::spawn(
            Command::new("docker-registry").arg("serve").arg(&config),
            dir.path().join("registry.log"),
        );
        Registry {
            port,
            proc,
            dir,
            storage: storage.to_path_buf(),
        }
    }

    /// Where blobs and manifests are kept.
    pub fn storage(&self) -> &Path {
        &self.storage
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

    /// `make push` of the repository's spin.toml to `reference` with the
    /// real Spin at `spin`, exactly as a user runs it except that the Wasm
    /// is taken as built (`-o wasm`; run `make wasm` first) and Spin's
    /// registry cache is a scratch directory.
    pub fn push_app(&self, spin: &Path, reference: &str) -> PushedApp {
        for wasm in ["rates_http.wasm", "rates_sync.wasm"] {
            let p = repo_root().join("target/wasm32-wasip1/release").join(wasm);
            assert!(p.is_file(), "{} is missing: run `make wasm` first", p.display());
        }
        let cache = self.dir().join("push-cache");
        let (log, took) = crate::make(
            &[
                "-o".into(),
                "wasm".into(),
                "push".into(),
                format!("REGISTRY={reference}"),
                format!("PUSH_FLAGS=--cache-dir {}", cache.display()),
            ],
            &[("SPIN", spin.as_os_str())],
        );
        let digest = log
            .split("Pushed with digest ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no digest in:\n{log}"))
            .to_string();
        PushedApp { digest, log, took }
    }
}

/// What [`Registry::push_app`] did.
pub struct PushedApp {
    /// `sha256:…`, as `spin registry push` printed it.
    pub digest: String,
    /// make's and Spin's output.
    pub log: String,
    pub took: Duration,
}

/// The real Spin, when it and `docker-registry` are both found; otherwise
/// says why `test` is skipped.
pub fn spin_and_registry(test: &str) -> Option<std::path::PathBuf> {
    let Some(crate::Host::Spin(spin)) = crate::Host::spin() else {
        eprintln!("{test}: no real Spin (SPIN or spin on PATH): skipped");
        return None;
    };
    if !crate::on_path("docker-registry") {
        eprintln!("{test}: no docker-registry on PATH (Debian package docker-registry): skipped");
        return None;
    }
    Some(spin)
}
