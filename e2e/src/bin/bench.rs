//! `bench`: the edge on runtime-shim and on a real Spin against a native
//! baseline on the same machine, in the same run (see `make bench`).
//! Everything stays on loopback and is bounded in time: about three minutes
//! after the build. One function per phase, then the report:
//!
//! 1. [`cold_starts`]: `runtime-shim up` to its first 200, with and without
//!    the compile cache, while the machine is otherwise idle.
//! 2. [`start_servers`]: the real `spin.toml` under `runtime-shim up`, once
//!    as it runs by default, once with `--metrics-listen` scraped every
//!    second, and once against a Valkey that speaks TLS only (with a CA the
//!    bench makes); when a real Spin is found (`SPIN`, else `spin` on `PATH`),
//!    under `spin up` and Spin's floor (the constant-answer component
//!    `floor-http`); and the baseline, a native hyper server answering the
//!    edge's own response bytes from memory.
//! 3. [`load_rounds`] (same generator for all): saturation with 64
//!    connections, closed loops with 1 and 4 connections, and an open loop
//!    at 2,000 requests/s (or the highest of 1,000 and 500 that a server
//!    holds, said so) with latency from the intended send time; the
//!    servers take turns, twice.
//! 4. [`compare`]: runtime-shim with metrics on, and against a TLS Valkey,
//!    each against the default in alternating one-second slices (A B B A
//!    ...), so that a machine slowing down during the run weighs on both.
//! 5. [`propagation`]: from `PUBLISH rates_updated` to three shims serving
//!    it, with Valkey in clear and over TLS.
//! 6. [`memory`]: peak RSS of the shim under load and of one `refresher once`.
//!
//! [`report`] prints the tables; its last line is a machine-readable summary.

use e2e::load::{self, Stats, Target};
use e2e::{Edge, Host, OneFrame, Proc, Shim, TempDir, Valkey, bin, eventually, free_port, http, refresh};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const URL: &str = "/rates?from=USD&to=JPY";

/// What a server in the load phase is there to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Native hyper answering the same bytes: the machine's ceiling.
    Baseline,
    /// The edge on runtime-shim, as `make up` and the tests run it.
    Shim,
    /// The same with `--metrics-listen`, scraped every second.
    ShimMetrics,
    /// The same against a TLS-only Valkey (the cache answers; TLS is paid
    /// on refreshes and misses).
    ShimTls,
    /// The edge on `spin up`.
    Spin,
    /// A constant-answer component on `spin up`: what any component costs there.
    SpinFloor,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Baseline => "baseline (native hyper)",
            Role::Shim => "edge on runtime-shim",
            Role::ShimMetrics => "edge on runtime-shim, metrics on",
            Role::ShimTls => "edge on runtime-shim, Valkey over TLS",
            Role::Spin => "edge on spin up",
            Role::SpinFloor => "floor component on spin up",
        }
    }
}

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

/// Cold starts: the median of three, with a warm compile cache and without.
struct ColdStarts {
    cached: Duration,
    uncached: Duration,
}

fn cold_starts(valkey: &Valkey) -> ColdStarts {
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

/// One server's figures, summed over the rounds.
struct Row {
    role: Role,
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
    fn new(role: Role, target: Target) -> Row {
        Row {
            role,
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

    fn figures(&mut self) -> Figures {
        let success = [&self.sat, &self.c1, &self.c4, &self.open]
            .iter()
            .map(|s| s.success_ratio())
            .fold(1.0, f64::min);
        Figures {
            role: self.role,
            rate: self.rate,
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

/// What the report prints of a [`Row`].
struct Figures {
    role: Role,
    rate: u32,
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

/// Scrapes `addr`'s `/metrics` every second, as Prometheus would, until dropped.
struct Scraper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Scraper {
    fn start(addr: SocketAddr) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut scrapes = 0;
            while !flag.load(Ordering::Relaxed) {
                let r = http::get(addr, "/metrics");
                assert_eq!(r.status, 200, "metrics scrape");
                scrapes += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            scrapes
        });
        Scraper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let scrapes = t.join().expect("scraper");
            eprintln!("bench: {scrapes} metrics scrapes during the load");
        }
    }
}

/// A TLS-only Valkey holding a snapshot, and the CA its clients trust.
struct TlsValkey {
    valkey: Valkey,
    _ca: e2e::TestCa,
}

fn tls_valkey(one_frame: &OneFrame) -> TlsValkey {
    let ca = e2e::TestCa::new("bench CA");
    let valkey = Valkey::start_with(e2e::ValkeyOptions {
        tls: Some(e2e::Tls {
            cert: ca.issue(&["127.0.0.1"], 1),
            ca: ca.cert.clone(),
        }),
        ..Default::default()
    });
    let run = refresh(&valkey, one_frame, &[]);
    assert_eq!(run.code, Some(0), "refresher over TLS: {}", run.log);
    TlsValkey { valkey, _ca: ca }
}

/// Everything the load phase drives, and what keeps it running.
struct Servers {
    rows: Vec<Row>,
    /// The edge on runtime-shim, also used for propagation and memory.
    shim: Shim,
    /// The edge on runtime-shim against the TLS Valkey, for propagation.
    tls_shim: Option<Shim>,
    /// Kept alive during the load phase only.
    others: Vec<Edge>,
    baseline: Proc,
    scraper: Scraper,
    _dir: TempDir,
}

fn start_servers(valkey: &Valkey, tls: Option<&TlsValkey>) -> Servers {
    let shim = Shim::start_app_with(valkey, &valkey.url(), &[]);
    let (shim_target, edge_answer) = target_of(shim.addr(), URL);
    let metrics_port = free_port();
    let metered = Shim::start_app_with(
        valkey,
        &valkey.url(),
        &["--metrics-listen", &format!("127.0.0.1:{metrics_port}")],
    );
    let scraper = Scraper::start(SocketAddr::from(([127, 0, 0, 1], metrics_port)));

    let dir = TempDir::new("baseline");
    let body_file = dir.path().join("body");
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
    let baseline = Proc::spawn(&mut cmd, dir.path().join("baseline.log"));
    let base_addr = SocketAddr::from(([127, 0, 0, 1], base_port));
    eventually(Duration::from_secs(10), || {
        http::request(base_addr, "GET", URL, &[], b"").ok()
    })
    .expect("baseline up");

    let mut rows = vec![
        Row::new(Role::Baseline, target_of(base_addr, URL).0),
        Row::new(Role::Shim, shim_target),
        Row::new(Role::ShimMetrics, target_of(metered.addr(), URL).0),
    ];
    let mut others = vec![metered];
    let tls_shim = tls.map(|t| {
        let shim = Shim::start_app(&t.valkey);
        rows.push(Row::new(Role::ShimTls, target_of(shim.addr(), URL).0));
        shim
    });
    // The same spin.toml and Wasm under a real Spin, and Spin's floor.
    match Host::spin() {
        Some(host) => {
            let spin = Edge::app_on(&host, valkey);
            let floor = Edge::start_on(&host, &e2e::repo_root().join("e2e/floor-http/spin.toml"), &[])
                .unwrap_or_else(|log| panic!("the floor component did not start:\n{log}"));
            rows.push(Row::new(Role::Spin, target_of(spin.addr(), URL).0));
            rows.push(Row::new(Role::SpinFloor, target_of(floor.addr(), URL).0));
            others.extend([spin, floor]);
        }
        None => eprintln!("!!! bench: no real Spin found (SPIN or spin on PATH): no Spin rows"),
    }
    Servers {
        rows,
        shim,
        tls_shim,
        others,
        baseline,
        scraper,
        _dir: dir,
    }
}

/// Warm-up, then every server in turn, twice, so that a slow minute of a
/// shared machine does not land on one of them only.
fn load_rounds(rows: &mut [Row], warmup: Duration, duration: Duration) {
    for row in rows.iter_mut() {
        eprintln!("bench: {}: warm-up {warmup:?}", row.role.name());
        load::saturate(&row.target, 64, warmup);
        row.settle_rate(warmup);
    }
    let each = duration / 2;
    for round in 1..=2 {
        for row in rows.iter_mut() {
            eprintln!(
                "bench: round {round}, {}: {each:?} each at 64, 1 and 4 connections, then {}/s",
                row.role.name(),
                row.rate
            );
            row.round(each);
        }
    }
}

/// Throughput of `b` against `a` at 64 connections: `slices` pairs of
/// one-second runs in the order A B, B A, A B, ...; the ratio of the sums,
/// and the lowest and highest ratio of a pair.
struct Comparison {
    ratio: f64,
    low: f64,
    high: f64,
}

fn compare(a: &Target, b: &Target, slices: usize) -> Comparison {
    let each = Duration::from_secs(1);
    let (mut sum_a, mut sum_b) = (0.0, 0.0);
    let mut pairs = Vec::new();
    for i in 0..slices {
        let (ra, rb) = if i % 2 == 0 {
            let ra = load::saturate(a, 64, each).rps();
            (ra, load::saturate(b, 64, each).rps())
        } else {
            let rb = load::saturate(b, 64, each).rps();
            (load::saturate(a, 64, each).rps(), rb)
        };
        sum_a += ra;
        sum_b += rb;
        pairs.push(rb / ra);
    }
    Comparison {
        ratio: sum_b / sum_a,
        low: pairs.iter().copied().fold(f64::INFINITY, f64::min),
        high: pairs.iter().copied().fold(0.0, f64::max),
    }
}

/// PUBLISH rates_updated → each of three shims (`shim` and two more)
/// serves the new seq. The bench writes the next snapshot itself (the
/// stored one, seq + 1, which the contract orders as newer), so the clock
/// starts at the PUBLISH. Nothing else may be subscribed meanwhile.
fn propagation(valkey: &Valkey, shim: &Shim, rounds: usize) -> Stats {
    let others = [Shim::start_app(valkey), Shim::start_app(valkey)];
    let shims: Vec<&Shim> = std::iter::once(shim).chain(others.iter()).collect();
    for s in &shims {
        s.wait_subscribed();
    }
    let mut stats = Stats::default();
    // The first round opens the components' connections: not measured.
    for round in 0..=rounds {
        let mut next = e2e::stored_snapshot(valkey).expect("a stored snapshot");
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

/// Peak RSS in KiB: the shim after the load, one `refresher once`.
struct Memory {
    shim_kib: u64,
    refresher_kib: u64,
}

fn memory(shim: &Shim, valkey: &Valkey, one_frame: &OneFrame) -> Memory {
    let (code, refresher_kib) = run_measuring_rss(
        Command::new(bin("refresher"))
            .arg("once")
            .arg("--valkey-url")
            .arg(valkey.url())
            .arg("--one-frame-url")
            .arg(one_frame.url()),
    );
    assert_eq!(code, 0, "refresher once failed");
    Memory {
        shim_kib: e2e::memory_kib(shim.pid(), "VmHWM"),
        refresher_kib,
    }
}

/// Propagation with Valkey in clear, and over TLS when there is a TLS row.
struct Propagation {
    plain: Stats,
    tls: Option<Stats>,
    rounds: usize,
}

/// The A/B comparisons against runtime-shim as `make up` runs it.
struct Comparisons {
    metrics: Comparison,
    tls: Option<Comparison>,
}

fn report(
    figures: &[Figures],
    comparisons: &Comparisons,
    propagation: &mut Propagation,
    cold: &ColdStarts,
    memory: &Memory,
) {
    let of = |role| figures.iter().find(|f| f.role == role);
    println!();
    println!(
        "| server | 64 conns req/s | p99 ms | 1 conn req/s | p50 ms | p99 ms | 4 conns req/s | p50 ms | p99 ms | open loop | p50 ms | p99 ms | p99.9 ms | success |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in figures {
        let open = if f.rate == RATES[0] {
            format!("{}/s", f.rate)
        } else {
            format!("{}/s (highest held)", f.rate)
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} | {open} | {:.3} | {:.3} | {:.3} | {:.4} |",
            f.role.name(),
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
    let base = of(Role::Baseline).expect("a baseline row");
    let edge = of(Role::Shim).expect("a runtime-shim row");
    let metered = of(Role::ShimMetrics).expect("a metrics row");
    let ratio = edge.sat_rps / base.sat_rps;
    let metrics_ratio = comparisons.metrics.ratio;
    let spin_fields = match (of(Role::Spin), of(Role::SpinFloor)) {
        (Some(spin), Some(floor)) => {
            println!();
            println!(
                "spin: edge/floor throughput at 64 connections {:.3}; edge on spin/edge on runtime-shim {:.3}",
                spin.sat_rps / floor.sat_rps,
                spin.sat_rps / edge.sat_rps,
            );
            format!(
                " spin_rps={:.0} spin_p50_c1_ms={:.3} spin_p99_c1_ms={:.3} spin_open_rate={} spin_floor_rps={:.0}",
                spin.sat_rps, spin.c1_p50, spin.c1_p99, spin.rate, floor.sat_rps
            )
        }
        _ => " spin_rps=none".to_string(),
    };
    println!();
    println!("edge/baseline throughput ratio: {ratio:.3}");
    let m = &comparisons.metrics;
    println!(
        "runtime-shim with metrics on/off, 64 connections, alternating slices: {metrics_ratio:.3} (pairs {:.3}–{:.3}); in the table's rounds {:.3}",
        m.low,
        m.high,
        metered.sat_rps / edge.sat_rps
    );
    let rounds = propagation.rounds;
    let plain_p99 = propagation.plain.quantile_ms(0.99);
    println!(
        "propagation PUBLISH → served, 3 shims × {rounds} refreshes: p50 {:.2} ms, p99 {plain_p99:.2} ms, max {:.2} ms",
        propagation.plain.quantile_ms(0.5),
        propagation.plain.quantile_ms(1.0)
    );
    let tls_fields = match (of(Role::ShimTls), &comparisons.tls, propagation.tls.as_mut()) {
        (Some(tls), Some(c), Some(p)) => {
            let tls_ratio = c.ratio;
            let tls_p99 = p.quantile_ms(0.99);
            println!(
                "Valkey over TLS: throughput TLS/plain at 64 connections, alternating slices {tls_ratio:.3} (pairs {:.3}–{:.3}); in the table's rounds {:.3}; propagation p50 {:.2} ms, p99 {tls_p99:.2} ms ({:+.2} ms at p99)",
                c.low,
                c.high,
                tls.sat_rps / edge.sat_rps,
                p.quantile_ms(0.5),
                tls_p99 - plain_p99
            );
            format!(" tls_ratio={tls_ratio:.3} tls_propagation_p99_ms={tls_p99:.2}")
        }
        _ => " tls_ratio=none".to_string(),
    };
    println!(
        "cold start to first 200: {} ms without compile cache, {} ms with it",
        cold.uncached.as_millis(),
        cold.cached.as_millis()
    );
    println!(
        "peak RSS: runtime-shim under load {:.1} MiB, refresher once {:.1} MiB",
        memory.shim_kib as f64 / 1024.0,
        memory.refresher_kib as f64 / 1024.0
    );
    println!(
        "bench edge_rps={:.0} baseline_rps={:.0} ratio={ratio:.3} metrics_ratio={metrics_ratio:.3} p99_ms={:.3} success={:.3} propagation_p99_ms={plain_p99:.2} cold_start_ms={} cold_start_nocache_ms={} shim_rss_mib={:.1} refresher_rss_mib={:.1}{tls_fields}{spin_fields}",
        edge.sat_rps,
        base.sat_rps,
        edge.open_p99,
        edge.success,
        cold.cached.as_millis(),
        cold.uncached.as_millis(),
        memory.shim_kib as f64 / 1024.0,
        memory.refresher_kib as f64 / 1024.0,
    );
}

fn main() {
    let warmup = Duration::from_secs(e2e::env_or("BENCH_WARMUP", 2));
    let duration = Duration::from_secs(e2e::env_or("BENCH_SECONDS", 6));
    eprintln!("bench: starting the stack");
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    let run = refresh(&valkey, &one_frame, &[]);
    assert_eq!(run.code, Some(0), "refresher: {}", run.log);

    let cold = cold_starts(&valkey);
    let tls = tls_valkey(&one_frame);
    let mut servers = start_servers(&valkey, Some(&tls));
    load_rounds(&mut servers.rows, warmup, duration);
    let target = |role| {
        let row = servers.rows.iter().find(|r: &&Row| r.role == role);
        row.map(|r| r.target.clone())
    };
    let plain = target(Role::Shim).expect("a runtime-shim row");
    eprintln!("bench: metrics on against off, alternating one-second slices");
    let comparisons = Comparisons {
        metrics: compare(&plain, &target(Role::ShimMetrics).expect("a metrics row"), 20),
        tls: target(Role::ShimTls).map(|tls| {
            eprintln!("bench: Valkey over TLS against in clear, alternating one-second slices");
            compare(&plain, &tls, 20)
        }),
    };
    let figures: Vec<Figures> = servers.rows.iter_mut().map(Row::figures).collect();
    let Servers {
        shim,
        tls_shim,
        others,
        baseline,
        scraper,
        ..
    } = servers;
    drop((others, baseline, scraper));
    let memory = memory(&shim, &valkey, &one_frame);
    let rounds = 25;
    let mut propagation = Propagation {
        plain: propagation(&valkey, &shim, rounds),
        tls: tls_shim.as_ref().map(|s| propagation(&tls.valkey, s, rounds)),
        rounds,
    };
    report(&figures, &comparisons, &mut propagation, &cold, &memory);
}
