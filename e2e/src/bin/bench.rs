//! `bench`: the edge on runtime-shim and on a real Spin against a native
//! baseline on the same machine, in the same run (see `make bench`).
//! Everything stays on loopback and is bounded in time: about three minutes
//! after the build.
//!
//! 1. Stack: Valkey, the One-Frame emulator, one `refresher once`, then the
//!    real `spin.toml` under `runtime-shim up` and, when a real Spin is found
//!    (`SPIN`, else `spin` on `PATH`), under `spin up`.
//! 2. Baseline: `baseline`, a native hyper server answering the edge's own
//!    response bytes for the same URL from memory. Spin's floor: the
//!    constant-answer component `floor-http` on the same Spin.
//! 3. Load (same generator for all): saturation with 64 connections, closed
//!    loops with 1 and 4 connections, and an open loop at 2,000 requests/s
//!    (or the highest of 1,000 and 500 that a server holds, said so) with
//!    latency from the intended send time.
//! 4. Propagation from `PUBLISH rates_updated` to three shims, cold start
//!    with and without the compile cache, peak RSS of the shim and of one
//!    `refresher once`.
//!
//! The last line is a machine-readable summary.

use e2e::load::{self, Stats, Target};
use e2e::{Edge, Host, OneFrame, Proc, Shim, TempDir, Valkey, bin, eventually, free_port, http, refresh};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const URL: &str = "/rates?from=USD&to=JPY";

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

/// One server's figures, summed over the rounds.
struct Row {
    name: &'static str,
    target: Target,
    sat: Stats,
    c1: Stats,
    c4: Stats,
    open: Stats,
    /// The open loop's rate: the highest of [`RATES`] this server held.
    rate: u32,
}

/// Open-loop rates tried in turn until one is held.
const RATES: [u32; 3] = [2_000, 1_000, 500];

/// Whether an open loop at `rate` for `duration` kept up: every request
/// answered, and the last not more than 10% after the loop's planned end.
fn held(stats: &Stats, duration: Duration) -> bool {
    stats.success_ratio() == 1.0 && stats.elapsed <= duration.mul_f64(1.1)
}

impl Row {
    fn new(name: &'static str, target: Target) -> Row {
        Row {
            name,
            target,
            sat: Stats::default(),
            c1: Stats::default(),
            c4: Stats::default(),
            open: Stats::default(),
            rate: RATES[0],
        }
    }

    /// Finds the open-loop rate this server holds (a short trial of each).
    fn settle_rate(&mut self, trial: Duration) {
        for rate in RATES {
            self.rate = rate;
            if held(&load::fixed_rate(&self.target, rate, trial, 32), trial) {
                return;
            }
        }
    }

    /// One round of every mode.
    fn round(&mut self, each: Duration) {
        self.sat.add(load::saturate(&self.target, 64, each));
        self.c1.add(load::saturate(&self.target, 1, each));
        self.c4.add(load::saturate(&self.target, 4, each));
        self.open.add(load::fixed_rate(&self.target, self.rate, each, 32));
    }
}

/// What the summary prints of a [`Row`].
struct Figures {
    sat_rps: f64,
    sat_p99: f64,
    c1_rps: f64,
    c1_p50: f64,
    c1_p99: f64,
    c4_rps: f64,
    c4_p50: f64,
    c4_p99: f64,
    open_p50: f64,
    open_p99: f64,
    open_p999: f64,
    /// The lowest success ratio of the four modes.
    success: f64,
}

impl Row {
    fn figures(&mut self) -> Figures {
        let success = [&self.sat, &self.c1, &self.c4, &self.open]
            .iter()
            .map(|s| s.success_ratio())
            .fold(1.0, f64::min);
        Figures {
            sat_rps: self.sat.rps(),
            sat_p99: self.sat.quantile_ms(0.99),
            c1_rps: self.c1.rps(),
            c1_p50: self.c1.quantile_ms(0.5),
            c1_p99: self.c1.quantile_ms(0.99),
            c4_rps: self.c4.rps(),
            c4_p50: self.c4.quantile_ms(0.5),
            c4_p99: self.c4.quantile_ms(0.99),
            open_p50: self.open.quantile_ms(0.5),
            open_p99: self.open.quantile_ms(0.99),
            open_p999: self.open.quantile_ms(0.999),
            success,
        }
    }
}

/// The bytes `addr` answers for `path`, as a load target expecting them.
fn target_of(addr: SocketAddr, path: &str) -> (Target, http::Response) {
    let answer = http::get(addr, path);
    assert_eq!(answer.status, 200, "{addr}{path}: {}", answer.text());
    let target = Target {
        addr,
        path: path.to_string(),
        expect_status: 200,
        expect_body_len: Some(answer.body.len()),
    };
    (target, answer)
}

fn main() {
    let warmup = Duration::from_secs(e2e::env_or("BENCH_WARMUP", 2));
    let duration = Duration::from_secs(e2e::env_or("BENCH_SECONDS", 6));
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
    let (shim_target, edge_answer) = target_of(shim.addr(), URL);

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

    let mut rows = vec![
        Row::new("baseline (native hyper)", target_of(base_addr, URL).0),
        Row::new("edge on runtime-shim", shim_target),
    ];
    // The same spin.toml and Wasm under a real Spin, and Spin's floor.
    let spin = Host::spin();
    let spin_edges: Vec<Edge> = match &spin {
        Some(host) => vec![
            Edge::app_on(host, &valkey),
            Edge::start_on(host, &e2e::repo_root().join("e2e/floor-http/spin.toml"), &[])
                .unwrap_or_else(|log| panic!("the floor component did not start:\n{log}")),
        ],
        None => {
            eprintln!("!!! bench: no real Spin found (SPIN or spin on PATH): no Spin columns");
            Vec::new()
        }
    };
    if let [spin_edge, floor] = spin_edges.as_slice() {
        rows.push(Row::new("edge on spin up", target_of(spin_edge.addr(), URL).0));
        rows.push(Row::new(
            "floor component on spin up",
            target_of(floor.addr(), URL).0,
        ));
    }

    for row in rows.iter_mut() {
        eprintln!("bench: {}: warm-up {warmup:?}", row.name);
        load::saturate(&row.target, 64, warmup);
        row.settle_rate(warmup);
    }
    // The servers take turns, twice, so that a slow minute of a shared
    // machine does not land on one of them only.
    let each = duration / 2;
    for round in 1..=2 {
        for row in rows.iter_mut() {
            eprintln!(
                "bench: round {round}, {}: {each:?} each at 64, 1 and 4 connections, then {}/s",
                row.name, row.rate
            );
            row.round(each);
        }
    }
    let shim_rss_kib = e2e::memory_kib(shim.pid(), "VmHWM");
    // Only the three shims below may be subscribed to rates_updated.
    drop(spin_edges);

    // Propagation: PUBLISH rates_updated → each of 3 shims serves the new seq.
    // The bench writes the next snapshot itself (the stored one, seq + 1, which
    // the contract orders as newer), so the clock starts at the PUBLISH.
    let others = [Shim::start_app(&valkey), Shim::start_app(&valkey)];
    let shims: Vec<&Shim> = std::iter::once(&shim).chain(others.iter()).collect();
    for s in &shims {
        s.wait_subscribed();
    }
    let mut propagation = Stats::default();
    let rounds = 25;
    for _ in 0..rounds {
        let mut next = e2e::stored_snapshot(&valkey).expect("a stored snapshot");
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
                propagation.latencies_us.push(w.join().unwrap());
            }
        });
    }

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

    let figures: Vec<Figures> = rows.iter_mut().map(Row::figures).collect();
    println!();
    println!(
        "| server | 64 conns req/s | p99 ms | 1 conn req/s | p50 ms | p99 ms | 4 conns req/s | p50 ms | p99 ms | open loop | p50 ms | p99 ms | p99.9 ms | success |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (r, f) in rows.iter().zip(&figures) {
        let open = if r.rate == RATES[0] {
            format!("{}/s", r.rate)
        } else {
            format!("{}/s (highest held)", r.rate)
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} | {open} | {:.3} | {:.3} | {:.3} | {:.4} |",
            r.name,
            f.sat_rps,
            f.sat_p99,
            f.c1_rps,
            f.c1_p50,
            f.c1_p99,
            f.c4_rps,
            f.c4_p50,
            f.c4_p99,
            f.open_p50,
            f.open_p99,
            f.open_p999,
            f.success,
        );
    }
    let (base, edge) = (&figures[0], &figures[1]);
    let ratio = edge.sat_rps / base.sat_rps;
    let spin_fields = match figures.get(2..4) {
        Some([spin_edge, floor]) => {
            println!();
            println!(
                "spin: edge/floor throughput at 64 connections {:.3}; edge on spin/edge on runtime-shim {:.3}",
                spin_edge.sat_rps / floor.sat_rps,
                spin_edge.sat_rps / edge.sat_rps,
            );
            format!(
                " spin_rps={:.0} spin_p50_c1_ms={:.3} spin_p99_c1_ms={:.3} spin_open_rate={} spin_floor_rps={:.0}",
                spin_edge.sat_rps, spin_edge.c1_p50, spin_edge.c1_p99, rows[2].rate, floor.sat_rps
            )
        }
        _ => " spin_rps=none".to_string(),
    };
    println!();
    println!("edge/baseline throughput ratio: {ratio:.3}");
    println!(
        "propagation PUBLISH → served, 3 shims × {rounds} refreshes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        propagation.quantile_ms(0.5),
        propagation.quantile_ms(0.99),
        propagation.quantile_ms(1.0)
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
        "bench edge_rps={:.0} baseline_rps={:.0} ratio={ratio:.3} p99_ms={:.3} success={:.3} propagation_p99_ms={:.2} cold_start_ms={} cold_start_nocache_ms={} shim_rss_mib={:.1} refresher_rss_mib={:.1}{spin_fields}",
        edge.sat_rps,
        base.sat_rps,
        edge.open_p99,
        edge.success,
        propagation.quantile_ms(0.99),
        cold_cached.as_millis(),
        cold_nocache.as_millis(),
        shim_rss_kib as f64 / 1024.0,
        refresher_rss_kib as f64 / 1024.0,
    );
}
