//! `soak`: ten minutes of steady load through runtime-shim while the
//! refresher publishes a new snapshot every few seconds (see `make soak`).
//! Loopback only. Prints success and the shim's memory each minute; exits
//! non-zero on any failed request or if memory keeps growing.
//!
//! Settings (environment): SOAK_SECONDS (600), SOAK_RATE (500 requests/s),
//! SOAK_REFRESH_EVERY (5s).

use e2e::load::{self, Target};
use e2e::{OneFrame, Proc, Shim, TempDir, Valkey, bin, env_or, refresh};
use std::process::Command;
use std::time::Duration;

fn main() {
    let total: u64 = env_or("SOAK_SECONDS", 600);
    let rate: u32 = env_or("SOAK_RATE", 500);
    let every: String = env_or("SOAK_REFRESH_EVERY", "5s".to_string());
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&["--daily-quota", "100000"]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let dir = TempDir::new("soak");
    let _refresher = Proc::spawn(
        Command::new(bin("refresher")).args([
            "run",
            "--every",
            &every,
            "--daily-quota",
            "100000",
            "--valkey-url",
            &valkey.url(),
            "--one-frame-url",
            &one_frame.url(),
        ]),
        dir.path().join("refresher.log"),
    );
    let shim = Shim::start_app_with(&valkey, &valkey.url(), &["--quiet"]);
    let target = Target {
        addr: shim.addr(),
        path: "/rates?from=EUR&to=JPY".into(),
        expect_status: 200,
        expect_body_len: None,
        headers: Vec::new(),
    };
    load::saturate(&target, 8, Duration::from_secs(2));
    let start_rss = e2e::memory_kib(shim.pid(), "VmRSS");
    println!(
        "soak: {total} s at {rate} requests/s, a refresh every {every}; shim RSS at start {:.1} MiB",
        start_rss as f64 / 1024.0
    );
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut rss = Vec::new();
    let minutes = total.div_ceil(60);
    for m in 0..minutes {
        let secs = (total - m * 60).min(60);
        let stats = load::fixed_rate(&target, rate, Duration::from_secs(secs), 16);
        ok += stats.ok;
        failed += stats.failed;
        let now = e2e::memory_kib(shim.pid(), "VmRSS");
        rss.push(now);
        println!(
            "soak: minute {}: {} ok, {} failed, RSS {:.1} MiB",
            m + 1,
            stats.ok,
            stats.failed,
            now as f64 / 1024.0
        );
    }
    let end_rss = *rss.last().unwrap_or(&start_rss);
    println!(
        "soak: done: {ok} ok, {failed} failed ({:.4} success); shim RSS start {:.1} MiB, end {:.1} MiB",
        ok as f64 / (ok + failed).max(1) as f64,
        start_rss as f64 / 1024.0,
        end_rss as f64 / 1024.0
    );
    assert_eq!(failed, 0, "requests failed during the soak:\n{}", shim.log());
    // Flat memory: the second half grows by less than 10% over the first minute's level.
    if rss.len() >= 4 {
        let reference = rss[0].max(start_rss);
        assert!(
            end_rss <= reference + reference / 10,
            "RSS grew from {reference} KiB to {end_rss} KiB"
        );
    }
}
