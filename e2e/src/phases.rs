//! Phases of `make bench` (e2e/src/bin/bench.rs) that stand on their own:
//! how fast runtime-shim starts, and how fast a refresh reaches the
//! instances.

use crate::load::Stats;
use crate::procs::{Proc, TempDir, bin, eventually, free_port};
use crate::{Shim, Valkey, http};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Microseconds from `since` until `shim` serves snapshot `seq` (panics after 5 s).
fn wait_for_seq(shim: &Shim, seq: u64, since: Instant) -> u32 {
    loop {
        if shim.seq_served() == Some(seq) {
            return since.elapsed().as_micros() as u32;
        }
        assert!(since.elapsed() < Duration::from_secs(5), "seq {seq} never served");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Time from spawning `runtime-shim up` to its first 200.
fn cold_start(valkey: &Valkey, cache_dir: &std::path::Path) -> Duration {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = TempDir::new("cold");
    let started = Instant::now();
    let mut cmd = Command::new(bin("runtime-shim"));
    cmd.args(["up", "--quiet", "-f"])
        .arg(crate::repo_root().join("spin.toml"))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--variable")
        .arg(format!("valkey_url={}", valkey.url()))
        .arg("--variable")
        .arg(format!("valkey_host={}", valkey.host()))
        .arg("--cache-dir")
        .arg(cache_dir);
    let proc = Proc::spawn(&mut cmd, dir.path().join("shim.log"));
    let took = eventually(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(1));
        http::request(addr, "GET", "/healthz", &[], b"")
            .ok()
            .filter(|r| r.status == 200)
            .map(|_| started.elapsed())
    })
    .unwrap_or_else(|| panic!("cold start failed:\n{}", proc.log()));
    drop(proc);
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Cold starts: the median of three, with a warm compile cache and without.
pub struct ColdStarts {
    pub cached: Duration,
    pub uncached: Duration,
}

pub fn cold_starts(valkey: &Valkey) -> ColdStarts {
    let dir = TempDir::new("cold-cache");
    let uncached = median(
        (0..3)
            .map(|i| cold_start(valkey, &dir.path().join(format!("empty-{i}"))))
            .collect(),
    );
    let warm = dir.path().join("warm");
    cold_start(valkey, &warm);
    let cached = median((0..3).map(|_| cold_start(valkey, &warm)).collect());
    ColdStarts { cached, uncached }
}

/// PUBLISH rates_updated → each of three shims (`shim` and two more)
/// serves the new seq. The bench writes the next snapshot itself (the
/// stored one, seq + 1, which the contract orders as newer), so the clock
/// starts at the PUBLISH. Nothing else may be subscribed meanwhile.
pub fn propagation(valkey: &Valkey, shim: &Shim, rounds: usize) -> Stats {
    let others = [Shim::start_app(valkey), Shim::start_app(valkey)];
    let shims: Vec<&Shim> = std::iter::once(shim).chain(others.iter()).collect();
    for s in &shims {
        s.wait_subscribed();
    }
    let mut stats = Stats::default();
    // The first round opens the components' connections: not measured.
    for round in 0..=rounds {
        let mut next = crate::stored_snapshot(valkey).expect("a stored snapshot");
        next.seq += 1;
        valkey.set("rates", &next.encode());
        let published = Instant::now();
        assert_eq!(valkey.publish("rates_updated", &next.seq.to_string()), 3);
        std::thread::scope(|scope| {
            let waiters: Vec<_> = shims
                .iter()
                .map(|s| scope.spawn(move || wait_for_seq(s, next.seq, published)))
                .collect();
            for w in waiters {
                let latency = w.join().unwrap();
                if round > 0 {
                    stats.latencies_us.push(latency);
                }
            }
        });
    }
    stats
}
