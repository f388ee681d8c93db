//! Simulated days: the refresher's own schedule, retry and quota code runs
//! on a clock that jumps, against the real emulator and a real Valkey, with
//! random faults. Two days take a few seconds.
//!
//! Every simulated minute, the edge's own decision (`shared::api::serve`) is
//! asked for every pair against the newest snapshot Valkey held: it must
//! serve rates at most 300 s old or answer `rates_stale`, never anything else.
//!
//! Day 1 has rare faults (failed calls, hangs, bad answers, a 12-minute
//! Valkey outage) and a normal budget: rates must be served more than 99% of
//! the day. Day 2 is hostile (30% of slots fail, a budget below the schedule's
//! needs, a `Quota reached`): the budget must still hold.

use e2e::{OneFrame, Valkey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use refresher::client::{OneFrameClient, usd_legs};
use refresher::clock::{Clock, Elapsed};
use refresher::quota::QuotaGuard;
use refresher::refresh::{Backoff, Refresher};
use refresher::store::SnapshotStore;
use shared::api::ErrorCode;
use shared::freshness::{self, DEFAULT_MAX_RATE_AGE};
use shared::table::{self, RateTable};
use shared::{Currency, Pair, Snapshot, Timestamp};
use std::future::Future;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Simulated time: sleeping jumps ahead at once; a timed operation runs for
/// real but for at most `real_limit`, and an expiry costs its full simulated
/// duration.
#[derive(Clone)]
struct SimClock {
    now: Arc<Mutex<Timestamp>>,
    real_limit: Duration,
}

impl SimClock {
    fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap();
        *now = now.plus(d);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap()
    }

    async fn sleep(&self, d: Duration) {
        self.advance(d);
        tokio::task::yield_now().await;
    }

    async fn timeout<F: Future + Send>(&self, d: Duration, f: F) -> Result<F::Output, Elapsed> {
        let started = Instant::now();
        match tokio::time::timeout(d.min(self.real_limit), f).await {
            Ok(v) => {
                self.advance(started.elapsed());
                Ok(v)
            }
            Err(_) => {
                self.advance(d);
                Err(Elapsed)
            }
        }
    }
}

/// One simulated day's plan.
struct DayPlan {
    budget: u64,
    fault_rate: f64,
    quota_reached_at_slot: Option<usize>,
    valkey_outage_slots: std::ops::Range<usize>,
}

#[derive(Debug, Default)]
struct DayReport {
    calls_by_one_frame: u64,
    calls_by_guard: u64,
    /// Share of the day's minutes in which the edge served every pair.
    served_share: f64,
    refreshes_ok: u64,
    refreshes_failed: u64,
}

const EVERY: Duration = Duration::from_secs(240);
const CURRENCIES: [&str; 4] = ["EUR", "JPY", "GBP", "USD"];
const SLOTS_PER_DAY: usize = 360;

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

fn valkey_pid(valkey: &Valkey) -> u32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut valkey.conn())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Asks the edge's decision, every minute of `[start, end)`, for every pair
/// of [`CURRENCIES`] against the newest snapshot stored by then (`changes`,
/// in time order); returns the share of minutes in which it served them.
/// Panics if it would serve a rate older than 300 s or refuse with anything
/// but `rates_stale` while a snapshot exists.
fn served_share(changes: &[(Timestamp, Snapshot)], start: Timestamp, end: Timestamp) -> f64 {
    let currencies = CURRENCIES.map(|c| Currency::parse(c).unwrap());
    let pairs: Vec<Pair> = currencies
        .iter()
        .flat_map(|&from| currencies.iter().map(move |&to| Pair::new(from, to)))
        .collect();
    let tables: Vec<Vec<u8>> = changes.iter().map(|(_, s)| table::encode(s)).collect();
    let (mut served, mut minutes) = (0u32, 0u32);
    let mut t = start;
    while t < end {
        minutes += 1;
        if let Some(i) = changes.iter().rposition(|(at, _)| *at <= t) {
            let table = RateTable::decode(&tables[i]).unwrap();
            match shared::api::serve(&table, &pairs, t, DEFAULT_MAX_RATE_AGE) {
                Ok(answer) => {
                    for r in &answer.rates {
                        let age = freshness::age(r.timestamp, t);
                        assert!(
                            age <= DEFAULT_MAX_RATE_AGE,
                            "at {t} the edge would serve {r:?}, {age:?} old"
                        );
                    }
                    served += 1;
                }
                Err(e) => assert_eq!(e.code, ErrorCode::RatesStale, "at {t}: {}", e.body()),
            }
        }
        t = t.plus(Duration::from_secs(60));
    }
    f64::from(served) / f64::from(minutes)
}

fn run_day(
    valkey: &Valkey,
    one_frame: &OneFrame,
    day_start: Timestamp,
    plan: &DayPlan,
    seed: u64,
) -> DayReport {
    let clock = SimClock {
        now: Arc::new(Mutex::new(day_start)),
        real_limit: Duration::from_millis(150),
    };
    let refresher = Refresher {
        clock: clock.clone(),
        valkey: ops::valkey::Valkey::open(&valkey.url(), "VALKEY_URL").unwrap(),
        connect_timeout: Duration::from_millis(150),
        client: OneFrameClient::new(
            &one_frame.url(),
            refresher::config::PUBLIC_TOKEN.into(),
            Duration::from_millis(150),
        )
        .unwrap(),
        quota: QuotaGuard::new(plan.budget),
        store: SnapshotStore::new("rates".into(), "rates_updated".into()),
        pairs: usd_legs(&CURRENCIES.map(|c| Currency::parse(c).unwrap())),
        deadline: Duration::from_secs(60),
        request_timeout: Duration::from_secs(10),
        backoff: Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(8),
        },
        schedule_interval: EVERY,
    };
    let day_end = day_start.plus(Duration::from_secs(24 * 3600));
    let pid = valkey_pid(valkey);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = DayReport::default();
    let mut changes: Vec<(Timestamp, Snapshot)> = Vec::new();
    if let Some(s) = valkey.get("rates") {
        changes.push((day_start, Snapshot::decode(&s).unwrap()));
    }
    let mut slot = 0usize;
    let mut last_seq = 0u64;

    // The emulator follows simulated time (its stamps and its quota day).
    let prepare_slot = |slot: usize, now: Timestamp, rng: &mut StdRng| {
        let offset = now.unix_secs() - Timestamp::now().unix_secs();
        let fault = if Some(slot) == plan.quota_reached_at_slot {
            r#""mode":"error","message":"Quota reached","times":1"#.to_string()
        } else if rng.random_bool(plan.fault_rate) {
            let modes = ["http500", "hang", "malformed", "truncated", "missing_pairs"];
            format!(
                r#""mode":"{}","times":{}"#,
                modes[rng.random_range(0..modes.len())],
                rng.random_range(1..=3)
            )
        } else {
            r#""mode":"none""#.to_string()
        };
        one_frame.fault(&format!(r#"{{{fault},"clock_offset_s":{offset}}}"#));
        if slot == plan.valkey_outage_slots.start {
            signal(pid, "STOP");
        }
        if slot == plan.valkey_outage_slots.end {
            signal(pid, "CONT");
        }
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut stop_tx = Some(stop_tx);
    prepare_slot(0, day_start, &mut rng);
    runtime.block_on(refresher::schedule::run(
        &refresher,
        EVERY,
        async {
            let _ = stop_rx.await;
        },
        |result| {
            let now = clock.now();
            match result {
                Ok(_) => report.refreshes_ok += 1,
                Err(_) => report.refreshes_failed += 1,
            }
            if !plan.valkey_outage_slots.contains(&slot) {
                if let Some(bytes) = valkey.get("rates") {
                    let s = Snapshot::decode(&bytes).expect("Valkey never holds an invalid snapshot");
                    if s.seq != last_seq {
                        last_seq = s.seq;
                        changes.push((now, s));
                    }
                }
                report.calls_by_one_frame = report.calls_by_one_frame.max(one_frame.calls());
            }
            slot += 1;
            let next = day_start.plus(EVERY * slot as u32);
            if next >= day_end {
                if let Some(tx) = stop_tx.take() {
                    let _ = tx.send(());
                }
            } else {
                prepare_slot(slot, clock.now().max(next), &mut rng);
            }
        },
    ));
    if plan.valkey_outage_slots.end >= slot {
        signal(pid, "CONT");
    }
    let key = format!("oneframe:calls:{}", day_start.utc_day());
    report.calls_by_guard = valkey
        .get(&key)
        .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap());
    report.served_share = served_share(&changes, day_start, day_end);
    report
}

#[test]
fn a_simulated_day_keeps_rates_fresh_and_calls_within_budget() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&["--daily-quota", "100000"]);
    let today = Timestamp::now();
    let day1 = today.next_utc_midnight();
    let day2 = day1.next_utc_midnight();

    let calm = DayPlan {
        budget: 1000,
        fault_rate: 0.02,
        quota_reached_at_slot: None,
        valkey_outage_slots: 100..103,
    };
    let r1 = run_day(&valkey, &one_frame, day1, &calm, 1);
    println!("simulated day 1 (rare faults, a 12-minute Valkey outage): {r1:?}");
    println!(
        "simulated day 1: fresh rates served {:.2}% of the day",
        r1.served_share * 100.0
    );
    assert!(
        r1.calls_by_guard <= calm.budget && r1.calls_by_one_frame <= calm.budget,
        "{r1:?}"
    );
    assert!(
        r1.calls_by_guard >= SLOTS_PER_DAY as u64 - 5,
        "every slot made its call: {r1:?}"
    );
    assert!(
        r1.served_share > 0.99,
        "fresh rates served only {:.3}% of the day",
        r1.served_share * 100.0
    );

    let hostile = DayPlan {
        budget: 200,
        fault_rate: 0.3,
        quota_reached_at_slot: Some(300),
        valkey_outage_slots: 50..54,
    };
    let r2 = run_day(&valkey, &one_frame, day2, &hostile, 2);
    println!("simulated day 2 (30% faults, budget 200, Quota reached at slot 300): {r2:?}");
    println!(
        "simulated day 2: fresh rates served {:.2}% of the day",
        r2.served_share * 100.0
    );
    assert!(
        r2.calls_by_guard <= hostile.budget,
        "guard counted {} > {}",
        r2.calls_by_guard,
        hostile.budget
    );
    assert!(
        r2.calls_by_one_frame <= hostile.budget,
        "One-Frame saw {} > {}",
        r2.calls_by_one_frame,
        hostile.budget
    );
}

#[test]
fn served_share_counts_the_minutes_the_edge_would_serve() {
    let t = |s: u64| Timestamp::from_unix_millis(1_800_000_000_000).plus(Duration::from_secs(s));
    // Quotes from 30 s serve the minutes 0..=300 (6); from 590 s, 600..=840 (5).
    let changes = [
        (t(0), e2e::snapshot_stamped(1, t(30), t(30))),
        (t(600), e2e::snapshot_stamped(2, t(590), t(590))),
    ];
    let share = served_share(&changes, t(0), t(1020));
    assert!((share - 11.0 / 17.0).abs() < 1e-9, "{share}");
    // Before the first snapshot nothing is served.
    let share = served_share(&changes[1..], t(0), t(1020));
    assert!((share - 5.0 / 17.0).abs() < 1e-9, "{share}");
}
