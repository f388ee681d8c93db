//! The edge host: the repository's `spin.toml` (or any manifest) served by
//! runtime-shim or a real Spin on a free loopback port, and the macro that
//! runs one test on both.

use crate::http;
use crate::procs::{Proc, TempDir, bin, eventually, free_port, profile_dir, repo_root};
use crate::valkey::Valkey;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// The host that runs the edge's `spin.toml`: runtime-shim, or a real Spin
/// (`spin up`), the runtime production uses inside containerd-shim-spin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Shim,
    Spin(PathBuf),
}

impl Host {
    /// A real Spin found the way a user's machine finds it: `SPIN` (a path),
    /// else `spin` on `PATH`. `None` when there is none.
    pub fn spin() -> Option<Host> {
        if let Some(p) = std::env::var_os("SPIN").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "SPIN={} is not a file", p.display());
            return Some(Host::Spin(p));
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("spin"))
            .find(|p| p.is_file())
            .map(Host::Spin)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Host::Shim => "runtime-shim",
            Host::Spin(_) => "spin",
        }
    }

    pub fn is_spin(&self) -> bool {
        matches!(self, Host::Spin(_))
    }

    /// Whether `log` shows the Redis trigger subscribed: runtime-shim logs
    /// [`SHIM_SUBSCRIBED`]; Spin prints `\t<address>/<channel>: [<components>]`
    /// once the SUBSCRIBE has been answered.
    pub fn has_subscribed(&self, log: &str) -> bool {
        match self {
            Host::Shim => log.contains(SHIM_SUBSCRIBED),
            Host::Spin(_) => log.lines().any(|l| l.starts_with('\t') && l.ends_with(']')),
        }
    }
}

/// What runtime-shim logs once it listens, and once its Redis trigger subscribed.
pub const SHIM_READY: &str = log_format::milestones::READY;
pub const SHIM_SUBSCRIBED: &str = log_format::milestones::SUBSCRIBED;
/// What `spin up` prints once its HTTP trigger listens.
pub const SPIN_READY: &str = "Serving http://";

/// Runs `test` on runtime-shim and, as a second module, on a real Spin when
/// one is found ([`Host::spin`]); without one the Spin variants pass after
/// saying so (`make test` says it once, loudly).
#[macro_export]
macro_rules! on_both_hosts {
    ($($test:ident),* $(,)?) => {
        mod on_shim {
            $( #[test] fn $test() { super::$test(&$crate::Host::Shim) } )*
        }
        mod on_spin {
            $(
                #[test]
                fn $test() {
                    match $crate::Host::spin() {
                        Some(host) => super::$test(&host),
                        None => eprintln!("no real Spin (SPIN or spin on PATH): skipped"),
                    }
                }
            )*
        }
    };
}

/// As [`on_both_hosts!`], and again with every Valkey the tests start
/// serving TLS only (`over_tls::on_shim::…`, `over_tls::on_spin::…`).
#[macro_export]
macro_rules! on_both_hosts_in_clear_and_over_tls {
    ($($test:ident),* $(,)?) => {
        $crate::on_both_hosts!($($test),*);
        mod over_tls {
            mod on_shim {
                $( #[test] fn $test() { $crate::over_tls(|| super::super::$test(&$crate::Host::Shim)) } )*
            }
            mod on_spin {
                $(
                    #[test]
                    fn $test() {
                        match $crate::Host::spin() {
                            Some(host) => $crate::over_tls(|| super::super::$test(&host)),
                            None => eprintln!("no real Spin (SPIN or spin on PATH): skipped"),
                        }
                    }
                )*
            }
        }
    };
}

/// The edge (or any manifest) served by a [`Host`] on a free loopback port.
pub struct Edge {
    pub port: u16,
    pub host: Host,
    manifest: PathBuf,
    args: Vec<String>,
    /// Set for the host process beside the test's own environment.
    env: Vec<(String, String)>,
    proc: Proc,
    dir: TempDir,
}

/// Most of the harness predates [`Host`]: a `Shim` is an [`Edge`].
pub type Shim = Edge;

/// The compile cache shared by every shim a test run starts.
pub fn shim_cache_dir() -> PathBuf {
    profile_dir().join("shim-cache")
}

impl Edge {
    /// The product: the repository's `spin.toml` against `valkey`, on runtime-shim.
    pub fn start_app(valkey: &Valkey) -> Edge {
        Edge::app_on(&Host::Shim, valkey)
    }

    /// The product on runtime-shim with the component URL `valkey_url` and extra flags.
    pub fn start_app_with(valkey: &Valkey, valkey_url: &str, extra: &[&str]) -> Edge {
        Edge::app_on_with(&Host::Shim, valkey, valkey_url, extra)
    }

    /// The product on `host`.
    pub fn app_on(host: &Host, valkey: &Valkey) -> Edge {
        Edge::app_on_with(host, valkey, &valkey.url(), &[])
    }

    /// The product on `host` with the component URL `valkey_url` and extra
    /// flags (`--variable` works on both hosts). A TLS `valkey`'s CA is
    /// trusted through `SSL_CERT_FILE`, as in a pod.
    pub fn app_on_with(host: &Host, valkey: &Valkey, valkey_url: &str, extra: &[&str]) -> Edge {
        Edge::try_app_on_with(host, valkey, valkey_url, extra)
            .unwrap_or_else(|log| panic!("{} did not start:\n{log}", host.name()))
    }

    /// As [`Edge::app_on_with`]; `Err(log)` when it exits instead of serving.
    pub fn try_app_on_with(
        host: &Host,
        valkey: &Valkey,
        valkey_url: &str,
        extra: &[&str],
    ) -> Result<Edge, String> {
        Edge::app_with_env(host, valkey_url, &valkey.host(), extra, &valkey.client_env())
    }

    /// The product on `host` with the component URL `valkey_url`, the
    /// allowed `valkey_host`, extra flags and environment.
    pub fn app_with_env(
        host: &Host,
        valkey_url: &str,
        valkey_host: &str,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Result<Edge, String> {
        let mut args: Vec<String> = vec![
            "--variable".into(),
            format!("valkey_url={valkey_url}"),
            "--variable".into(),
            format!("valkey_host={valkey_host}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let dir = TempDir::new(host.name());
        let manifest = repo_root().join("spin.toml");
        Edge::launch(host, &manifest, &args, env, free_port(), dir)
    }

    /// Any manifest on runtime-shim; `Err(log)` when it exits instead of serving.
    pub fn start(manifest: &Path, args: &[String]) -> Result<Edge, String> {
        Edge::start_on(&Host::Shim, manifest, args)
    }

    /// Any manifest on `host`; `Err(log)` when it exits instead of serving.
    /// Spin keeps its state (the SQLite key-value store, component logs) in
    /// a directory of this edge's own, so edges never share a cache.
    pub fn start_on(host: &Host, manifest: &Path, args: &[String]) -> Result<Edge, String> {
        Edge::start_from(host, manifest.as_os_str(), args)
    }

    /// As [`Edge::start_on`], with `source` whatever `-f` takes: a manifest,
    /// or for Spin a registry reference (`127.0.0.1:5000/forex-edge:0.1.0`).
    pub fn start_from(host: &Host, source: &OsStr, args: &[String]) -> Result<Edge, String> {
        let dir = TempDir::new(host.name());
        Edge::launch(host, Path::new(source), args, &[], free_port(), dir)
    }

    fn launch(
        host: &Host,
        manifest: &Path,
        args: &[String],
        env: &[(String, String)],
        port: u16,
        dir: TempDir,
    ) -> Result<Edge, String> {
        let listen = format!("127.0.0.1:{port}");
        let (mut cmd, ready) = match host {
            Host::Shim => (Command::new(bin("runtime-shim")), SHIM_READY),
            Host::Spin(spin) => (Command::new(spin), SPIN_READY),
        };
        cmd.args(["up", "-f"]).arg(manifest).args(["--listen", &listen]);
        match host {
            Host::Shim => {
                cmd.env("RUNTIME_SHIM_CACHE_DIR", shim_cache_dir());
            }
            Host::Spin(_) => {
                cmd.arg("--state-dir").arg(dir.path().join("state"));
                // `spin up` runs each trigger type as a child process: a
                // group of its own lets the harness stop them all.
                std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            }
        }
        cmd.args(args);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let log = dir.path().join(format!("{}.log", host.name()));
        let mut proc = Proc::spawn_group(&mut cmd, log, host.is_spin());
        let started = eventually(Duration::from_secs(120), || {
            if proc.has_exited().is_some() {
                return Some(false);
            }
            proc.log().contains(ready).then_some(true)
        });
        if started != Some(true) {
            proc.kill();
            return Err(proc.log());
        }
        Ok(Edge {
            port,
            host: host.clone(),
            manifest: manifest.to_path_buf(),
            args: args.to_vec(),
            env: env.to_vec(),
            proc,
            dir,
        })
    }

    /// Stops the host and starts it again with the same manifest, flags,
    /// port and state directory (Spin's key-value store survives this).
    pub fn restart(self) -> Result<Edge, String> {
        let Edge {
            port,
            host,
            manifest,
            args,
            env,
            mut proc,
            dir,
        } = self;
        proc.kill();
        Edge::launch(&host, &manifest, &args, &env, port, dir)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn get(&self, target: &str) -> http::Response {
        http::get(self.addr(), target)
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Waits until the log contains `needle`; panics, showing the log, after `limit`.
    #[track_caller]
    pub fn wait_logged(&self, needle: &str, limit: Duration) {
        eventually(limit, || self.log().contains(needle).then_some(()))
            .unwrap_or_else(|| panic!("{needle:?} not logged within {limit:?}:\n{}", self.log()));
    }

    /// Waits until the Redis trigger has subscribed (panics after 10 s).
    #[track_caller]
    pub fn wait_subscribed(&self) {
        eventually(Duration::from_secs(10), || {
            self.host.has_subscribed(&self.log()).then_some(())
        })
        .unwrap_or_else(|| panic!("{} never subscribed:\n{}", self.host.name(), self.log()));
    }

    /// The `seq` of the snapshot `/readyz` reports, while it answers 200.
    pub fn seq_served(&self) -> Option<u64> {
        crate::seq_served(self.addr())
    }

    /// Panics, showing the whole log, unless the log contains `needle`.
    #[track_caller]
    pub fn assert_logged(&self, needle: &str) {
        let log = self.log();
        assert!(log.contains(needle), "expected {needle:?} in the log:\n{log}");
    }

    /// Sends `signal` (e.g. "TERM") without waiting.
    pub fn signal(&self, signal: &str) {
        self.proc.signal(signal);
    }

    /// SIGTERM, then the exit status (None if it did not exit in time).
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.proc.signal_and_wait("TERM", limit)
    }

    /// The exit status, once the host process has ended by itself.
    pub fn has_exited(&mut self) -> Option<ExitStatus> {
        self.proc.has_exited()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Where a Spin host keeps its state (`--state-dir`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

#[cfg(test)]
mod tests {
    use super::repo_root;
    use shared::freshness::{DEFAULT_MAX_RATE_AGE, DEFAULT_REVALIDATE_AGE};

    /// A host given no value uses spin.toml's default; a manifest without
    /// the variable gets rates-http's own. Both say the same.
    #[test]
    fn spin_toml_ages_are_the_shared_defaults() {
        let manifest = std::fs::read_to_string(repo_root().join("spin.toml")).expect("read spin.toml");
        for (name, age) in [
            ("max_rate_age", DEFAULT_MAX_RATE_AGE),
            ("revalidate_age", DEFAULT_REVALIDATE_AGE),
        ] {
            let line = format!("{name} = {{ default = \"{}\" }}", age.as_secs());
            assert!(
                manifest.lines().any(|l| l.trim() == line),
                "spin.toml should declare `{line}`"
            );
        }
    }
}
