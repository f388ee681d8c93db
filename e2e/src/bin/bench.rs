//! `bench`: the edge against a native baseline on the same machine, in the
//! same run (see `make bench`). Everything stays on loopback and is bounded
//! in time: about two minutes after the build.
//!
//! 1. Stack: Valkey, the One-Frame emulator, one `refresher once`, then
//!    `runtime-shim up` serving the real `spin.toml`.
//! 2. Baseline: `baseline`, a native hyper server answering the edge's own
//!    response bytes for the same URL from memory.
//! 3. Load (same generator for both): saturation with 64 connections, and an
//!    open loop at 2,000 requests/s with latency from the intended send time.
//! 4. Propagation from `PUBLISH rates_updated` to three shims, cold start
//!    with and without the compile cache, peak RSS of the shim and of one
//!    `refresher once`.
//!
//! The last line is a machine-readable summary.

use e2e::load::{self, Stats, Target};
use e2e::{OneFrame, Proc, Shim, TempDir, Valkey, bin, eventually, free_port, http, refresh};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const URL: &str = "/rates?from=USD&to=JPY";

/// Milliseconds from `since` until `shim` serves snapshot `seq` (panics after 5 s).
fn wait_for_seq(shim: &Shim, seq: u64, since: Instant) -> f64 {
    loop {
        if shim.seq_served() == Some(seq) {
            return since.elapsed().as_secs_f64() * 1000.0;
        }
        assert!(since.elapsed() < Duration::from_secs(5), "seq {seq} never served");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Runs `cmd` to completion; returns its exit code and its peak RSS in KiB,
/// sampled every millisecond from its own `/proc` status (so a peak in its
/// last millisecond can be missed). wait4's `ru_maxrss` is no use here: it
/// also counts this process's memory, which the child holds until it execs.
fn run_measuring_rss(cmd: &mut Command) -> (i32, u64) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut peak = 0;
    loop {
        peak = peak.max(e2e::memory_kib(child.id(), "VmHWM"));
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Time from spawning `runtime-shim up` to its first 200.
fn cold_start(valkey: &Valkey, cache_dir: &std::path::Path) -> Duration {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = TempDir::new("cold");
    let started = Instant::now();
    let mut cmd = Command::new(bin("runtime-shim"));
    cmd.args(["up", "--quiet", "-f"])
        .arg(e2e::repo_root().join("spin.toml"))
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

struct Row {
    name: &'static str,
    sat: Stats,
    open: Stats,
}

fn main() {
    let warmup = Duration::from_secs(e2e::env_or("BENCH_WARMUP", 2));
    let duration = Duration::from_secs(e2e::env_or("BENCH_SECONDS", 10));
    let rate: u32 = 2_000;
    eprintln!("bench: starting the stack");
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    let run = refresh(&valkey, &one_frame, &[]);
    assert_eq!(run.code, Some(0), "refresher: {}", run.log);

    // Cold starts first, while the machine is otherwise idle.
    let cold_dir = TempDir::new("cold-cache");
    let cold_nocache = median(
        (0..3)
            .map(|i| cold_start(&valkey, &cold_dir.path().join(format!("empty-{i}"))))
            .collect(),
    );
    let warm_dir = cold_dir.path().join("warm");
    cold_start(&valkey, &warm_dir);
    let cold_cached = median((0..3).map(|_| cold_start(&valkey, &warm_dir)).collect());

    let shim = Shim::start_app_with(&valkey, &valkey.url(), &[]);
    let edge_answer = shim.get(URL);
    assert_eq!(edge_answer.status, 200, "{}", edge_answer.text());

    let body_dir = TempDir::new("baseline");
    let body_file = body_dir.path().join("body");
    std::fs::write(&body_file, &edge_answer.body).unwrap();
    let base_port = free_port();
    let mut cmd = Command::new(bin("baseline"));
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{base_port}"))
        .arg("--status")
        .arg("200")
        .arg("--body-file")
        .arg(&body_file);
    for name in ["content-type", "cache-control"] {
        if let Some(v) = edge_answer.header(name) {
            cmd.arg("--header").arg(format!("{name}: {v}"));
        }
    }
    let baseline = Proc::spawn(&mut cmd, body_dir.path().join("baseline.log"));
    let base_addr = SocketAddr::from(([127, 0, 0, 1], base_port));
    eventually(Duration::from_secs(10), || {
        http::request(base_addr, "GET", URL, &[], b"").ok()
    })
    .expect("baseline up");

    let target = |addr| Target {
        addr,
        path: URL.to_string(),
        expect_status: 200,
        expect_body_len: Some(edge_answer.body.len()),
    };
    // The servers take turns, twice, so that a slow minute of a shared
    // machine does not land on one of them only.
    let servers = [
        ("baseline (native hyper)", base_addr),
        ("edge (runtime-shim + Wasm)", shim.addr()),
    ];
    let mut rows: Vec<Row> = servers
        .iter()
        .map(|(name, _)| Row {
            name,
            sat: Stats::default(),
            open: Stats::default(),
        })
        .collect();
    for (name, addr) in &servers {
        eprintln!("bench: {name}: warm-up {warmup:?}");
        load::saturate(&target(*addr), 64, warmup);
    }
    for round in 1..=2 {
        for (row, (name, addr)) in rows.iter_mut().zip(&servers) {
            eprintln!(
                "bench: round {round}, {name}: saturation {:?} x 64 connections, open loop {rate}/s for {:?}",
                duration / 2,
                duration / 2
            );
            row.sat.add(load::saturate(&target(*addr), 64, duration / 2));
            row.open
                .add(load::fixed_rate(&target(*addr), rate, duration / 2, 32));
        }
    }
    let shim_rss_kib = e2e::memory_kib(shim.pid(), "VmHWM");

    // Propagation: PUBLISH rates_updated → each of 3 shims serves the new seq.
    // The bench writes the next snapshot itself (the stored one, seq + 1, which
    // the contract orders as newer), so the clock starts at the PUBLISH.
    let others = [Shim::start_app(&valkey), Shim::start_app(&valkey)];
    let shims: Vec<&Shim> = std::iter::once(&shim).chain(others.iter()).collect();
    for s in &shims {
        s.wait_subscribed();
    }
    let mut propagation_ms: Vec<f64> = Vec::new();
    let rounds = 25;
    for _ in 0..rounds {
        let mut next = e2e::stored_snapshot(&valkey).expect("a stored snapshot");
        next.seq += 1;
        valkey.set("rates", &next.encode());
        let published = Instant::now();
        assert_eq!(valkey.publish("rates_updated", &next.seq.to_string()), 3);
        let times: Vec<f64> = std::thread::scope(|scope| {
            let waiters: Vec<_> = shims
                .iter()
                .map(|s| scope.spawn(move || wait_for_seq(s, next.seq, published)))
                .collect();
            waiters.into_iter().map(|h| h.join().unwrap()).collect()
        });
        propagation_ms.extend(times);
    }
    propagation_ms.sort_by(f64::total_cmp);

    let (code, refresher_rss_kib) = run_measuring_rss(
        Command::new(bin("refresher"))
            .arg("once")
            .arg("--valkey-url")
            .arg(valkey.url())
            .arg("--one-frame-url")
            .arg(one_frame.url()),
    );
    assert_eq!(code, 0, "refresher once failed");
    drop(baseline);

    println!();
    println!(
        "| server | saturation req/s (64 conns) | success | p50 ms @{rate}/s | p99 ms | p99.9 ms | success @{rate}/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows.iter_mut() {
        let (p50, p99, p999) = (
            r.open.quantile_ms(0.5),
            r.open.quantile_ms(0.99),
            r.open.quantile_ms(0.999),
        );
        println!(
            "| {} | {:.0} | {:.4} | {p50:.3} | {p99:.3} | {p999:.3} | {:.4} |",
            r.name,
            r.sat.rps(),
            r.sat.success_ratio(),
            r.open.success_ratio()
        );
    }
    let (base, edge) = (&rows[0], &rows[1]);
    let ratio = edge.sat.rps() / base.sat.rps();
    let success = [&edge.sat, &edge.open]
        .iter()
        .map(|s| s.success_ratio())
        .fold(1.0, f64::min);
    let mut edge_open = edge.open.clone();
    let p99 = edge_open.quantile_ms(0.99);
    println!();
    println!("edge/baseline throughput ratio: {ratio:.3}");
    println!(
        "propagation PUBLISH → served, 3 shims × {rounds} refreshes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&propagation_ms, 0.5),
        percentile(&propagation_ms, 0.99),
        propagation_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "cold start to first 200: {} ms without compile cache, {} ms with it",
        cold_nocache.as_millis(),
        cold_cached.as_millis()
    );
    println!(
        "peak RSS: runtime-shim under load {:.1} MiB, refresher once {:.1} MiB",
        shim_rss_kib as f64 / 1024.0,
        refresher_rss_kib as f64 / 1024.0
    );
    println!(
        "bench edge_rps={:.0} baseline_rps={:.0} ratio={ratio:.3} p99_ms={p99:.3} success={success:.3} propagation_p99_ms={:.2} cold_start_ms={} cold_start_nocache_ms={} shim_rss_mib={:.1} refresher_rss_mib={:.1}",
        edge.sat.rps(),
        base.sat.rps(),
        percentile(&propagation_ms, 0.99),
        cold_cached.as_millis(),
        cold_nocache.as_millis(),
        shim_rss_kib as f64 / 1024.0,
        refresher_rss_kib as f64 / 1024.0,
    );
}
