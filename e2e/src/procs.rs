//! Process plumbing for the harness: scratch directories, free ports,
//! child processes that log to a file and die with their handle, polling,
//! workspace binaries and `make`. The services built on it live in their own
//! modules (`valkey`, `one_frame`, `edge`, `refresher`, `registry`).

use std::ffi::OsStr;
use std::fs::File;
use std::net::{TcpListener, TcpStream};
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
pub(crate) fn profile_dir() -> PathBuf {
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
        self.wait(limit)
    }

    /// Waits up to `limit` for the exit (None if it did not exit in time).
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
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

/// Whether an executable `bin` is in a directory of `PATH`.
pub fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
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

pub(crate) fn wait_for_port(port: u16, limit: Duration) -> bool {
    eventually(limit, || TcpStream::connect(("127.0.0.1", port)).ok()).is_some()
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

/// A process and every process below it (`spin up` runs its triggers as
/// child processes), from `/proc`.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| Some((p, stat_field(p, 1)? as u32)))
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    tree
}

/// Field `n` (0 = state) after the command name of `/proc/<pid>/stat`.
fn stat_field(pid: u32, n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(n)?.parse().ok()
}

/// CPU time (user + system) used so far by `pid` and every process below it.
pub fn tree_cpu(pid: u32) -> Duration {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("CLK_TCK")
    });
    // utime and stime are fields 11 and 12 after the state.
    let total: u64 = process_tree(pid)
        .into_iter()
        .map(|p| stat_field(p, 11).unwrap_or(0) + stat_field(p, 12).unwrap_or(0))
        .sum();
    Duration::from_secs_f64(total as f64 / ticks as f64)
}

/// Resident memory of `pid` and every process below it, in KiB.
pub fn tree_rss_kib(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .map(|p| memory_kib(p, "VmRSS"))
        .sum()
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

/// Runs `cmd` to completion; returns its exit code and its peak RSS in KiB,
/// sampled every millisecond from its own `/proc` status (so a peak in its
/// last millisecond can be missed). wait4's `ru_maxrss` is no use here: it
/// also counts this process's memory, which the child holds until it execs.
pub fn run_measuring_rss(cmd: &mut Command) -> (i32, u64) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut peak = 0;
    loop {
        peak = peak.max(memory_kib(child.id(), "VmHWM"));
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
