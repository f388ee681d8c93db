//! `bench`: the edge on runtime-shim and on a real Spin against a native
//! baseline on the same machine, in the same run (see `make bench`).
//! Everything stays on loopback and is bounded in time: about three minutes
//! after the build. One function per phase, then the report:
//!
//! 1. [`cold_starts`] (`e2e::phases`): `runtime-shim up` to its first 200, with and without
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
//! 4. [`compare`] (`e2e::load`): runtime-shim with metrics on, against a TLS Valkey, and
//!    built without its `ETag`, each against the default; a `304` against
//!    a `200`; and on Spin, the edge against the floor component: each pair
//!    in alternating one-second slices (A B B A ...), so that a machine
//!    slowing down during the run weighs on both.
//! 5. [`footprint`] (`e2e::load`): what one pod carries, per executor: CPU time per 1,000
//!    requests and resident memory of the server's whole process tree at a
//!    steady open-loop load of [`STEADY_RATE`].
//! 6. [`propagation`] (`e2e::phases`): from `PUBLISH rates_updated` to three shims serving
//!    it, with Valkey in clear and over TLS.
//! 7. [`memory`]: peak RSS of the shim under load and of one `refresher once`.
//!
//! [`report`] prints the tables; its last line is a machine-readable summary.

use e2e::load::{self, Comparison, Footprint, STEADY_RATE, Stats, Target, compare, footprint};
use e2e::phases::{ColdStarts, cold_starts, propagation};
use e2e::{Edge, Host, OneFrame, Proc, Shim, TempDir, Valkey, bin, eventually, free_port, http, refresh};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

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
        headers: Vec::new(),
    };
    (target, answer)
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
    tls_shim: Shim,
    /// The edge on `spin up` and Spin's floor, when a Spin is found.
    spin: Option<(Edge, Edge)>,
    /// Kept alive during the load phase only.
    others: Vec<Edge>,
    baseline: Proc,
    scraper: e2e::Scraper,
    _dir: TempDir,
}

fn start_servers(valkey: &Valkey, tls: &TlsValkey) -> Servers {
    let shim = Shim::start_app_with(valkey, &valkey.url(), &[]);
    let (shim_target, edge_answer) = target_of(shim.addr(), URL);
    let metrics_port = free_port();
    let metered = Shim::start_app_with(
        valkey,
        &valkey.url(),
        &["--metrics-listen", &format!("127.0.0.1:{metrics_port}")],
    );
    let scraper = e2e::Scraper::start(SocketAddr::from(([127, 0, 0, 1], metrics_port)));

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
    let others = vec![metered];
    let tls_shim = Shim::start_app(&tls.valkey);
    rows.push(Row::new(Role::ShimTls, target_of(tls_shim.addr(), URL).0));
    // The same spin.toml and Wasm under a real Spin, and Spin's floor.
    let spin = match Host::spin() {
        Some(host) => {
            let spin = Edge::app_on(&host, valkey);
            let floor = Edge::start_on(&host, &e2e::repo_root().join("e2e/floor-http/spin.toml"), &[])
                .unwrap_or_else(|log| panic!("the floor component did not start:\n{log}"));
            rows.push(Row::new(Role::Spin, target_of(spin.addr(), URL).0));
            rows.push(Row::new(Role::SpinFloor, target_of(floor.addr(), URL).0));
            Some((spin, floor))
        }
        None => {
            eprintln!("!!! bench: no real Spin found (SPIN or spin on PATH): no Spin rows");
            None
        }
    };
    Servers {
        rows,
        shim,
        tls_shim,
        spin,
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

/// The `rates-http` built without its `ETag` (`make bench` builds it apart,
/// feature `bench-no-etag`) beside the real `rates-sync`, under runtime-shim.
fn start_shim_without_etag(valkey: &Valkey, dir: &TempDir) -> Shim {
    let root = e2e::repo_root();
    let wasm = root.join("target/bench-no-etag/wasm32-wasip1/release/rates_http.wasm");
    assert!(wasm.is_file(), "{} is missing: run make bench", wasm.display());
    let manifest = std::fs::read_to_string(root.join("spin.toml"))
        .unwrap()
        .replace(
            "\"target/wasm32-wasip1/release/rates_http.wasm\"",
            &format!("{:?}", wasm.display().to_string()),
        )
        .replace(
            "\"target/wasm32-wasip1/release/",
            &format!("\"{}/target/wasm32-wasip1/release/", root.display()),
        );
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    let vars = [
        format!("valkey_url={}", valkey.url()),
        format!("valkey_host={}", valkey.host()),
    ];
    let args: Vec<String> = vars
        .iter()
        .flat_map(|v| ["--variable".to_string(), v.clone()])
        .collect();
    Shim::start(&path, &args).unwrap_or_else(|log| panic!("the no-ETag edge did not start:\n{log}"))
}

/// Peak RSS in KiB: the shim after the load, one `refresher once`.
struct Memory {
    shim_kib: u64,
    refresher_kib: u64,
}

fn memory(shim: &Shim, valkey: &Valkey, one_frame: &OneFrame) -> Memory {
    let (code, refresher_kib) = e2e::run_measuring_rss(
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

/// Propagation with Valkey in clear, and over TLS.
struct Propagation {
    plain: Stats,
    tls: Stats,
    rounds: usize,
}

/// The A/B comparisons against runtime-shim as `make up` runs it, and on Spin.
struct Comparisons {
    metrics: Comparison,
    tls: Comparison,
    /// With the ETag against the build without it.
    etag: Comparison,
    /// A 304 (If-None-Match holding the ETag) against the 200.
    not_modified: Comparison,
    /// The edge on Spin against Spin's floor component.
    spin_floor: Option<Comparison>,
}

/// What one pod carries on each executor.
struct Footprints {
    shim: Footprint,
    spin: Option<Footprint>,
}

fn report(
    figures: &[Figures],
    comparisons: &Comparisons,
    footprints: &Footprints,
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
    let spin_fields = match (
        of(Role::Spin),
        of(Role::SpinFloor),
        &comparisons.spin_floor,
        &footprints.spin,
    ) {
        (Some(spin), Some(floor), Some(c), Some(fp)) => {
            println!();
            println!(
                "spin: edge/floor throughput at 64 connections, alternating slices {:.3} (pairs {:.3}–{:.3}); in the table's rounds {:.3}; edge on spin/edge on runtime-shim {:.3}",
                c.ratio,
                c.low,
                c.high,
                spin.sat_rps / floor.sat_rps,
                spin.sat_rps / edge.sat_rps,
            );
            println!(
                "spin: at a steady {STEADY_RATE} req/s the edge uses {:.1} ms of CPU per 1,000 requests and {:.1} MiB resident (spin up and its trigger processes)",
                fp.cpu_ms_per_1k, fp.rss_mib
            );
            format!(
                " spin_rps={:.0} spin_p50_c1_ms={:.3} spin_p99_c1_ms={:.3} spin_open_rate={} spin_floor_rps={:.0} spin_floor_ratio={:.3} spin_cpu_ms_per_1k={:.1} spin_rss_mib={:.1}",
                spin.sat_rps,
                spin.c1_p50,
                spin.c1_p99,
                spin.rate,
                floor.sat_rps,
                c.ratio,
                fp.cpu_ms_per_1k,
                fp.rss_mib
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
    let tls = of(Role::ShimTls).expect("a TLS row");
    let c = &comparisons.tls;
    let tls_p99 = propagation.tls.quantile_ms(0.99);
    println!(
        "Valkey over TLS: throughput TLS/plain at 64 connections, alternating slices {:.3} (pairs {:.3}–{:.3}); in the table's rounds {:.3}; propagation p50 {:.2} ms, p99 {tls_p99:.2} ms ({:+.2} ms at p99)",
        c.ratio,
        c.low,
        c.high,
        tls.sat_rps / edge.sat_rps,
        propagation.tls.quantile_ms(0.5),
        tls_p99 - plain_p99
    );
    let tls_fields = format!(" tls_ratio={:.3} tls_propagation_p99_ms={tls_p99:.2}", c.ratio);
    let (e, n) = (&comparisons.etag, &comparisons.not_modified);
    println!(
        "ETag: throughput with/without at 64 connections, alternating slices {:.3} (pairs {:.3}–{:.3}); a 304 against a 200 {:.3} (pairs {:.3}–{:.3})",
        e.ratio, e.low, e.high, n.ratio, n.low, n.high
    );
    println!(
        "runtime-shim: at a steady {STEADY_RATE} req/s the edge uses {:.1} ms of CPU per 1,000 requests and {:.1} MiB resident",
        footprints.shim.cpu_ms_per_1k, footprints.shim.rss_mib
    );
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
        "bench edge_rps={:.0} baseline_rps={:.0} ratio={ratio:.3} metrics_ratio={metrics_ratio:.3} etag_ratio={:.3} not_modified_ratio={:.3} p99_ms={:.3} success={:.3} propagation_p99_ms={plain_p99:.2} cold_start_ms={} cold_start_nocache_ms={} shim_rss_mib={:.1} shim_cpu_ms_per_1k={:.1} shim_steady_rss_mib={:.1} refresher_rss_mib={:.1}{tls_fields}{spin_fields}",
        edge.sat_rps,
        base.sat_rps,
        e.ratio,
        n.ratio,
        edge.open_p99,
        edge.success,
        cold.cached.as_millis(),
        cold.uncached.as_millis(),
        memory.shim_kib as f64 / 1024.0,
        footprints.shim.cpu_ms_per_1k,
        footprints.shim.rss_mib,
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
    let mut servers = start_servers(&valkey, &tls);
    load_rounds(&mut servers.rows, warmup, duration);
    let target = |role| {
        let row = servers.rows.iter().find(|r: &&Row| r.role == role);
        row.map(|r| r.target.clone())
    };
    let plain = target(Role::Shim).expect("a runtime-shim row");
    // The rates have aged through the rounds; every phase below restamps
    // them first (both Valkeys), so none runs into max_rate_age.
    let fresh = || {
        e2e::restamp(&valkey);
        e2e::restamp(&tls.valkey);
    };
    fresh();
    eprintln!("bench: metrics on against off, alternating one-second slices");
    let comparisons = Comparisons {
        metrics: compare(&plain, &target(Role::ShimMetrics).expect("a metrics row"), 20),
        tls: {
            fresh();
            eprintln!("bench: Valkey over TLS against in clear, alternating one-second slices");
            compare(&plain, &target(Role::ShimTls).expect("a TLS row"), 20)
        },
        etag: {
            fresh();
            eprintln!("bench: with the ETag against without, alternating one-second slices");
            let dir = TempDir::new("no-etag");
            let without = start_shim_without_etag(&valkey, &dir);
            let (without, answer) = target_of(without.addr(), URL);
            assert!(
                answer.header("etag").is_none(),
                "the A/B build answers without an ETag"
            );
            compare(&without, &plain, 20)
        },
        not_modified: {
            fresh();
            eprintln!("bench: a 304 against a 200, alternating one-second slices");
            let etag = http::get(plain.addr, URL)
                .header("etag")
                .expect("an ETag")
                .to_string();
            let revalidated = Target {
                expect_status: 304,
                expect_body_len: Some(0),
                headers: vec![format!("if-none-match: {etag}")],
                ..plain.clone()
            };
            compare(&plain, &revalidated, 20)
        },
        spin_floor: target(Role::Spin)
            .zip(target(Role::SpinFloor))
            .map(|(spin, floor)| {
                fresh();
                eprintln!("bench: the edge on Spin against Spin's floor, alternating one-second slices");
                compare(&floor, &spin, 20)
            }),
    };
    fresh();
    eprintln!("bench: footprints at a steady {STEADY_RATE} req/s");
    let footprints = Footprints {
        shim: footprint(&plain, servers.shim.pid(), Duration::from_secs(10)),
        spin: servers.spin.as_ref().map(|(spin, _)| {
            let target = target(Role::Spin).expect("a Spin row");
            footprint(&target, spin.pid(), Duration::from_secs(10))
        }),
    };
    let figures: Vec<Figures> = servers.rows.iter_mut().map(Row::figures).collect();
    let Servers {
        shim,
        tls_shim,
        spin,
        others,
        baseline,
        scraper,
        ..
    } = servers;
    drop((spin, others, baseline, scraper));
    fresh();
    let memory = memory(&shim, &valkey, &one_frame);
    let rounds = 25;
    let mut propagation = Propagation {
        plain: propagation(&valkey, &shim, rounds),
        tls: propagation(&tls.valkey, &tls_shim, rounds),
        rounds,
    };
    report(
        &figures,
        &comparisons,
        &footprints,
        &mut propagation,
        &cold,
        &memory,
    );
}
