//! Processes under test. Each handle owns its process and a scratch
//! directory; dropping the handle kills the process and removes the directory.

use crate::http;
use std::ffi::OsStr;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// The cargo profile directory this program was built into (`target/debug`
/// for tests, which live in `target/debug/deps`; `target/release` for the
/// benchmark tools).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("an executable lives in a directory");
    let dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    dir.to_path_buf()
}

/// A workspace binary; panics with how to build it when missing.
pub fn bin(name: &str) -> PathBuf {
    let p = profile_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `make build` (or `cargo build --bins`) first",
        p.display()
    );
    p
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "forex-e2e-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process whose stdout and stderr go to a log file.
pub struct Proc {
    child: Option<Child>,
    log: PathBuf,
    /// The child leads a process group of its own, stopped as a whole.
    group: bool,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
        Proc::spawn_group(cmd, log, false)
    }

    /// As [`Proc::spawn`]; with `group`, the command must have been given a
    /// process group of its own (`process_group(0)`), and stopping the
    /// `Proc` stops every process in it.
    pub fn spawn_group(cmd: &mut Command, log: PathBuf, group: bool) -> Proc {
        let out = File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        Proc {
            child: Some(child),
            log,
            group,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn has_exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends `signal` (e.g. "STOP") without waiting.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// Sends `signal` (e.g. "TERM") and waits up to `limit` for the exit.
    pub fn signal_and_wait(&mut self, signal: &str, limit: Duration) -> Option<ExitStatus> {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").arg(format!("-{signal}")).arg(&pid).status();
        wait_for_exit(self.child.as_mut()?, limit)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.group {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", c.id())])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 20 ms until it returns `Some` or `limit` passes.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_port(port: u16, limit: Duration) -> bool {
    eventually(limit, || TcpStream::connect(("127.0.0.1", port)).ok()).is_some()
}

/// `valkey-server` when installed, else `redis-server` (same protocol).
pub fn valkey_binary() -> &'static str {
    let on_path = |b: &str| {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(b).is_file()))
    };
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

/// The outcome of a finished process.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub log: String,
    pub took: Duration,
}

/// Runs `refresher once` with `args` (plus env), killing it after `limit`.
pub fn refresher_once(args: &[String], env: &[(&str, &str)], limit: Duration) -> Run {
    refresher_command("once", args, env, limit)
}

/// Runs `refresher <subcommand>` with `args` (plus env), killing it after `limit`.
pub fn refresher_command(subcommand: &str, args: &[String], env: &[(&str, &str)], limit: Duration) -> Run {
    let dir = TempDir::new("refresher");
    let started = Instant::now();
    let mut cmd = Command::new(bin("refresher"));
    cmd.arg(subcommand).args(args);
    // Isolate from the caller's environment (the refresher reads settings
    // from it): only what the test gives.
    cmd.env_clear();
    cmd.envs(env.iter().copied());
    let mut proc = Proc::spawn(&mut cmd, dir.path().join("refresher.log"));
    let status = wait_for_exit(proc.child.as_mut().expect("child"), limit);
    let took = started.elapsed();
    if status.is_none() {
        proc.kill();
    }
    Run {
        code: status.and_then(|s| s.code()),
        log: proc.log(),
        took,
    }
}

/// `refresher once` against `valkey` and `one_frame`, with extra flags.
pub fn refresh(valkey: &Valkey, one_frame: &OneFrame, extra: &[&str]) -> Run {
    let mut args = vec![
        "--valkey-url".to_string(),
        valkey.url(),
        "--one-frame-url".into(),
        one_frame.url(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    refresher_once(&args, &[], Duration::from_secs(60))
}

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

    /// Whether `log` shows the Redis trigger subscribed. runtime-shim logs
    /// "subscribed"; Spin prints `\t<address>/<channel>: [<components>]` once
    /// the SUBSCRIBE has been answered.
    pub fn has_subscribed(&self, log: &str) -> bool {
        match self {
            Host::Shim => log.contains(SHIM_SUBSCRIBED),
            Host::Spin(_) => log.lines().any(|l| l.starts_with('\t') && l.ends_with(']')),
        }
    }
}

/// What runtime-shim logs once it listens, and once its Redis trigger subscribed.
pub const SHIM_READY: &str = " ready on http://";
pub const SHIM_SUBSCRIBED: &str = "subscribed";
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

/// The edge (or any manifest) served by a [`Host`] on a free loopback port.
pub struct Edge {
    pub port: u16,
    pub host: Host,
    manifest: PathBuf,
    args: Vec<String>,
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
    /// flags (`--variable` works on both hosts).
    pub fn app_on_with(host: &Host, valkey: &Valkey, valkey_url: &str, extra: &[&str]) -> Edge {
        let mut args: Vec<String> = vec![
            "--variable".into(),
            format!("valkey_url={valkey_url}"),
            "--variable".into(),
            format!("valkey_host={}", valkey.host()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Edge::start_on(host, &repo_root().join("spin.toml"), &args)
            .unwrap_or_else(|log| panic!("{} did not start:\n{log}", host.name()))
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
        Edge::launch(host, Path::new(source), args, free_port(), dir)
    }

    fn launch(
        host: &Host,
        manifest: &Path,
        args: &[String],
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
            mut proc,
            dir,
        } = self;
        proc.kill();
        Edge::launch(&host, &manifest, &args, port, dir)
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
        let r = self.get("/readyz");
        (r.status == 200).then(|| r.json()["seq"].as_u64()).flatten()
    }

    /// Panics, showing the whole log, unless the log contains `needle`.
    #[track_caller]
    pub fn assert_logged(&self, needle: &str) {
        let log = self.log();
        assert!(log.contains(needle), "expected {needle:?} in the log:\n{log}");
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

/// `make -C <repo> --no-print-directory <args>` as a user runs it, without
/// the flags (jobserver, `-k`, ...) a surrounding `make test` would pass on.
/// Panics, showing its output, unless it succeeds; returns the output
/// (stdout, then stderr) and how long it took.
pub fn make(args: &[String], env: &[(&str, &OsStr)]) -> (String, Duration) {
    let started = Instant::now();
    let out = Command::new("make")
        .arg("-C")
        .arg(repo_root())
        .arg("--no-print-directory")
        .args(args)
        .envs(env.iter().copied())
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .expect("run make");
    let took = started.elapsed();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "make {} failed:\n{log}", args.join(" "));
    (log, took)
}

/// The product's default currencies.
pub const DEFAULT_CURRENCIES: [&str; 9] = ["AUD", "CAD", "CHF", "EUR", "GBP", "NZD", "JPY", "SGD", "USD"];

/// The snapshot stored in Valkey, decoded strictly.
pub fn stored_snapshot(valkey: &Valkey) -> Option<shared::Snapshot> {
    valkey
        .get("rates")
        .map(|b| shared::Snapshot::decode(&b).expect("stored snapshot is valid"))
}

/// A snapshot of the USD legs to JPY, EUR and GBP (each its own price), taken
/// at `fetched_at`, every quote stamped `stamp`.
pub fn snapshot_stamped(
    seq: u64,
    fetched_at: shared::Timestamp,
    stamp: shared::Timestamp,
) -> shared::Snapshot {
    let quotes = ["JPY", "EUR", "GBP"]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let price = 0.55 + i as f64 / 10.0;
            shared::Quote {
                pair: shared::Pair::new(shared::Currency::USD, shared::Currency::parse(c).unwrap()),
                bid: price - 0.05,
                ask: price + 0.05,
                price,
                time_stamp: stamp,
            }
        })
        .collect();
    shared::Snapshot::new(seq, fetched_at, quotes).expect("a valid snapshot")
}

/// A memory figure of a process from `/proc/<pid>/status`, in KiB: `VmRSS`
/// (now) or `VmHWM` (peak).
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
