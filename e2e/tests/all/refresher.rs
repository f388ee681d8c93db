//! The refresher against a real Valkey and the One-Frame emulator.

use e2e::{DEFAULT_CURRENCIES, OneFrame, Valkey, refresh, stored_snapshot};
use shared::{Currency, Snapshot, Timestamp};
use std::time::Duration;

/// Quick retries so failing runs end fast.
const FAST: [&str; 6] = [
    "--deadline",
    "3s",
    "--retry-initial",
    "50ms",
    "--retry-max",
    "200ms",
];

fn fast(extra: &[&'static str]) -> Vec<&'static str> {
    FAST.iter().chain(extra).copied().collect()
}

/// Valkey and the emulator, after one successful refresh; its stored bytes.
fn stack_with_a_snapshot() -> (Valkey, OneFrame, Vec<u8>) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    let run = refresh(&valkey, &one_frame, &[]);
    assert_eq!(run.code, Some(0), "{}", run.log);
    let stored = valkey.get("rates").expect("a stored snapshot");
    (valkey, one_frame, stored)
}

#[test]
fn stores_all_usd_legs_and_publishes_the_seq() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    let mut sub = valkey.conn();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("rates_updated").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    let run = refresh(&valkey, &one_frame, &[]);
    assert_eq!(run.code, Some(0), "{}", run.log);

    let snapshot = stored_snapshot(&valkey).expect("a snapshot is stored");
    let mut legs: Vec<&str> = snapshot.quotes.iter().map(|q| q.pair.to.code()).collect();
    legs.sort();
    let mut expected: Vec<&str> = DEFAULT_CURRENCIES
        .iter()
        .copied()
        .filter(|c| *c != "USD")
        .collect();
    expected.sort();
    assert_eq!(legs, expected);
    assert!(snapshot.quotes.iter().all(|q| q.pair.from == Currency::USD));
    let age = Timestamp::now().since(snapshot.fetched_at);
    assert!(
        age < Duration::from_secs(30),
        "fetched_at is now, not {}",
        snapshot.fetched_at
    );

    let msg = pubsub.get_message().expect("rates_updated message");
    assert_eq!(msg.get_payload::<String>().unwrap(), snapshot.seq.to_string());
    assert_eq!(one_frame.calls(), 1, "one One-Frame call for all pairs");
}

#[test]
fn every_upstream_failure_keeps_the_stored_snapshot_and_exits_non_zero() {
    let (valkey, one_frame, good) = stack_with_a_snapshot();

    let cases: [(&str, i32); 8] = [
        (r#"{"mode":"http500"}"#, 1),
        (r#"{"mode":"malformed"}"#, 1),
        (r#"{"mode":"truncated"}"#, 1),
        (r#"{"mode":"missing_pairs"}"#, 1),
        (r#"{"mode":"error","message":"Internal Error"}"#, 1),
        (r#"{"mode":"error","message":"Invalid Currency Pair"}"#, 2),
        (r#"{"mode":"error","message":"No currency pair provided"}"#, 1),
        (r#"{"mode":"none","clock_offset_s":600}"#, 1), // stamped in the future
    ];
    for (fault, code) in cases {
        one_frame.fault(fault);
        let run = refresh(&valkey, &one_frame, &fast(&[]));
        assert_eq!(run.code, Some(code), "fault {fault}: {}", run.log);
        assert_eq!(
            valkey.get("rates").as_deref(),
            Some(&good[..]),
            "fault {fault} changed the snapshot"
        );
    }
    one_frame.fault(r#"{"mode":"none"}"#);

    let run = refresh(&valkey, &one_frame, &fast(&["--one-frame-token", "wrong-token"]));
    assert_eq!(run.code, Some(3), "Forbidden is an auth error: {}", run.log);
    assert!(run.log.contains("Forbidden"), "{}", run.log);
    assert_eq!(valkey.get("rates").as_deref(), Some(&good[..]));
}

#[test]
fn an_old_answer_is_refused_but_kept_snapshot_stays() {
    let (valkey, one_frame, good) = stack_with_a_snapshot();
    // Rates stamped 10 minutes ago are accepted by the refresher (the edge
    // decides what is too old to serve) but must still be complete.
    one_frame.fault(r#"{"mode":"missing_pairs","clock_offset_s":-600}"#);
    assert_eq!(refresh(&valkey, &one_frame, &fast(&[])).code, Some(1));
    assert_eq!(valkey.get("rates").unwrap(), good);
}

#[test]
fn quota_guard_stops_calls_at_the_budget() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    for i in 1..=3 {
        let run = refresh(&valkey, &one_frame, &["--daily-quota", "3"]);
        assert_eq!(run.code, Some(0), "run {i}: {}", run.log);
    }
    assert_eq!(one_frame.calls(), 3);
    let run = refresh(&valkey, &one_frame, &["--daily-quota", "3"]);
    assert_eq!(
        run.code,
        Some(4),
        "the 4th run must stop at the guard: {}",
        run.log
    );
    assert_eq!(one_frame.calls(), 3, "the 4th run made no One-Frame call");
    let day_key = format!("oneframe:calls:{}", Timestamp::now().utc_day());
    assert_eq!(valkey.get(&day_key).as_deref(), Some(&b"3"[..]));
    let ttl: i64 = redis::cmd("TTL").arg(&day_key).query(&mut valkey.conn()).unwrap();
    assert!(
        ttl > 24 * 3600 && ttl <= 2 * 24 * 3600,
        "the day's counter expires after two days, ttl={ttl}"
    );
}

#[test]
fn retries_count_against_the_quota_and_stop_at_it() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    // Two failures, then success: three calls, one run.
    one_frame.fault(r#"{"mode":"http500","times":2}"#);
    let run = refresh(&valkey, &one_frame, &fast(&[]));
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert_eq!(one_frame.calls(), 3);

    // A budget of 5 leaves 2 calls. The run's scheduled call takes one; a
    // retry would take the last, which the schedule still needs today: the
    // run ends as a transient failure (exit 1), not as a spent quota.
    one_frame.fault(r#"{"mode":"http500"}"#);
    let run = refresh(
        &valkey,
        &one_frame,
        &fast(&["--daily-quota", "5", "--schedule-interval", "1h"]),
    );
    assert_eq!(run.code, Some(1), "{}", run.log);
    assert!(run.log.contains("no retry"), "{}", run.log);
    assert!(
        run.log.contains("500"),
        "names the failure it did not retry: {}",
        run.log
    );
    assert_eq!(one_frame.calls(), 4);
}

#[test]
fn quota_reached_answered_with_http_400_still_ends_the_day() {
    let (valkey, one_frame, stored) = stack_with_a_snapshot();
    one_frame.fault(r#"{"mode":"error","message":"Quota reached","status":400}"#);
    let run = refresh(&valkey, &one_frame, &fast(&[]));
    assert_eq!(run.code, Some(4), "{}", run.log);
    assert_eq!(one_frame.calls(), 2, "not retried as a transient failure");
    assert_eq!(valkey.get("rates").unwrap(), stored, "the snapshot is kept");
    one_frame.fault(r#"{"mode":"none"}"#);
    assert_eq!(refresh(&valkey, &one_frame, &fast(&[])).code, Some(4));
    assert_eq!(one_frame.calls(), 2, "the day is marked spent");
}

#[test]
fn refused_valkey_credentials_are_a_configuration_error() {
    let valkey = Valkey::start_with(e2e::ValkeyOptions {
        password: Some("right-password".into()),
        ..Default::default()
    });
    let one_frame = OneFrame::start(&[]);
    let urls = [
        format!("redis://:wrong-password@{}", valkey.host()),
        format!("redis://{}", valkey.host()),
    ];
    for url in urls {
        let args = vec![
            "--valkey-url".to_string(),
            url,
            "--one-frame-url".into(),
            one_frame.url(),
            "--deadline".into(),
            "20s".into(),
        ];
        let run = e2e::refresher_once(&args, &[], Duration::from_secs(30));
        assert_eq!(run.code, Some(2), "{}", run.log);
        assert!(
            run.took < Duration::from_secs(10),
            "not retried until the deadline: {:?}",
            run.took
        );
        assert!(run.log.contains("VALKEY_URL"), "{}", run.log);
        assert!(!run.log.contains("wrong-password"), "{}", run.log);
    }
    assert_eq!(one_frame.calls(), 0);
}

#[test]
fn quota_reached_from_one_frame_stops_calls_for_the_day() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&["--daily-quota", "1"]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let run = refresh(&valkey, &one_frame, &fast(&[]));
    assert_eq!(run.code, Some(4), "{}", run.log);
    assert!(run.log.contains("Quota reached"), "{}", run.log);
    assert_eq!(
        stored_snapshot(&valkey).map(|s| s.seq),
        Some(1),
        "the snapshot is kept"
    );
    one_frame.reset(); // One-Frame would serve again...
    let run = refresh(&valkey, &one_frame, &fast(&[]));
    assert_eq!(
        run.code,
        Some(4),
        "...but the guard remembers the day is spent: {}",
        run.log
    );
    assert_eq!(one_frame.calls(), 0, "no call was made after Quota reached");
}

#[test]
fn an_older_snapshot_never_overwrites_a_newer_one() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let mut newer = stored_snapshot(&valkey).unwrap();
    newer.fetched_at = Timestamp::now().plus(Duration::from_secs(3600));
    newer.seq = 999;
    valkey.set("rates", &newer.encode());

    let run = refresh(&valkey, &one_frame, &[]);
    assert_eq!(run.code, Some(0), "{}", run.log);
    assert!(run.log.contains("newer"), "{}", run.log);
    assert_eq!(stored_snapshot(&valkey).unwrap(), newer);
}

#[test]
fn a_later_fetch_wins_even_when_valkey_restarted_its_seq() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let mut old = stored_snapshot(&valkey).unwrap();
    old.seq = 1_000_000;
    old.fetched_at = old.fetched_at.minus(Duration::from_secs(60));
    valkey.set("rates", &old.encode());
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let now = stored_snapshot(&valkey).unwrap();
    assert!(
        now.seq < old.seq && now.fetched_at > old.fetched_at,
        "seq {} replaced seq {}",
        now.seq,
        old.seq
    );
}

#[test]
fn a_hanging_one_frame_is_cut_off_by_the_deadline() {
    let (valkey, one_frame, good) = stack_with_a_snapshot();
    one_frame.fault(r#"{"mode":"hang"}"#);
    let run = refresh(
        &valkey,
        &one_frame,
        &["--deadline", "2s", "--one-frame-timeout", "10s"],
    );
    assert_eq!(run.code, Some(1), "{}", run.log);
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
    assert_eq!(valkey.get("rates").unwrap(), good);
}

#[test]
fn no_call_is_made_while_valkey_is_down() {
    let mut valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    valkey.stop();
    let run = refresh(&valkey, &one_frame, &fast(&["--connect-timeout", "200ms"]));
    assert_eq!(run.code, Some(1), "{}", run.log);
    assert_eq!(
        one_frame.calls(),
        0,
        "without the quota guard no call may be made"
    );
}

#[test]
fn bad_configuration_is_reported_with_exit_code_2() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    for (flags, needle) in [
        (vec!["--currencies", "USD,QQQ"], "QQQ"),
        (vec!["--daily-quota", "0"], "daily-quota"),
        (vec!["--deadline", "soon"], "duration"),
    ] {
        let run = refresh(&valkey, &one_frame, &flags);
        assert_eq!(run.code, Some(2), "{flags:?}: {}", run.log);
        assert!(run.log.contains(needle), "{flags:?}: {}", run.log);
    }
    let args: Vec<String> = ["--valkey-url", "not-a-url", "--one-frame-url", &one_frame.url()]
        .map(String::from)
        .to_vec();
    let run = e2e::refresher_once(&args, &[], Duration::from_secs(20));
    assert_eq!(run.code, Some(2), "{}", run.log);
    assert_eq!(one_frame.calls(), 0);
}

#[test]
fn the_token_and_the_valkey_password_never_reach_the_logs() {
    let token = "tok-7f3a9c1e5b";
    let password = "pw-2d8e4b6a0c";
    let valkey = Valkey::start_with(e2e::ValkeyOptions {
        password: Some(password.into()),
        ..Default::default()
    });
    let one_frame = OneFrame::start(&["--token", token]);
    let env = [("ONE_FRAME_TOKEN", token), ("VALKEY_URL", &valkey.url() as &str)];
    let args = vec!["--one-frame-url".to_string(), one_frame.url()];
    let ok = e2e::refresher_once(&args, &env, Duration::from_secs(30));
    assert_eq!(ok.code, Some(0), "{}", ok.log);
    one_frame.fault(r#"{"mode":"http500"}"#);
    let failing = e2e::refresher_once(
        &[args.clone(), FAST.map(String::from).to_vec()].concat(),
        &env,
        Duration::from_secs(30),
    );
    assert_eq!(failing.code, Some(1));
    for log in [&ok.log, &failing.log, &one_frame.log()] {
        assert!(!log.contains(token), "token leaked: {log}");
        assert!(!log.contains(password), "password leaked: {log}");
    }
    let snapshot: Snapshot = Snapshot::decode(&valkey.get("rates").unwrap()).unwrap();
    assert_eq!(snapshot.quotes.len(), 8);
}

/// `refresher status` against `valkey` as the URL `url`, text and JSON.
fn status(url: &str, extra: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let mut args = vec!["--valkey-url".to_string(), url.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let text = e2e::refresher_command("status", &args, &[], Duration::from_secs(10));
    args.push("--json".into());
    let json = e2e::refresher_command("status", &args, &[], Duration::from_secs(10));
    assert_eq!(text.code, json.code, "{}\n{}", text.log, json.log);
    let value = serde_json::from_str(json.log.trim())
        .unwrap_or_else(|e| panic!("status --json printed no JSON ({e}):\n{}", json.log));
    (json.code, text.log, value)
}

/// `status` that must end in `verdict` with exit `code`; its text and JSON.
#[track_caller]
fn expect_verdict(url: &str, extra: &[&str], code: i32, verdict: &str) -> (String, serde_json::Value) {
    let (got, text, json) = status(url, extra);
    assert_eq!(
        (got, json["verdict"].as_str()),
        (Some(code), Some(verdict)),
        "{text}"
    );
    (text, json)
}

#[test]
fn status_gives_each_verdict_with_its_exit_code_on_a_live_stack() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    let (text, _) = expect_verdict(&valkey.url(), &[], 12, "missing");
    assert!(text.contains("snapshot   none: no snapshot is stored"), "{text}");

    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let stored = stored_snapshot(&valkey).unwrap();
    let (text, json) = expect_verdict(&valkey.url(), &[], 0, "ok");
    assert_eq!(json["snapshot"]["seq"].as_u64(), Some(stored.seq));
    assert_eq!(
        json["snapshot"]["pairs"].as_u64(),
        Some(stored.quotes.len() as u64)
    );
    assert_eq!(json["snapshot"]["fetched_at"], stored.fetched_at.to_rfc3339());
    assert_eq!(json["quota"]["used_today"].as_u64(), Some(one_frame.calls()));
    assert!(text.contains(&format!("seq {}", stored.seq)), "{text}");
    assert!(text.ends_with("verdict    ok (exit 0)\n"), "{text}");
    assert_eq!(json["last_run"]["outcome"], "stored", "{json}");
    assert_eq!(json["last_run"]["success_at"], json["last_run"]["at"], "{json}");
    assert!(text.contains("): stored; last success "), "{text}");

    // The rest of today's schedule cannot be met with a budget this small.
    let (text, _) = expect_verdict(&valkey.url(), &["--daily-quota", "1"], 10, "quota-at-risk");
    assert!(text.contains("AT RISK"), "{text}");

    let now = Timestamp::now();
    let old = e2e::snapshot_stamped(99, now, now.minus(Duration::from_secs(301)));
    valkey.set("rates", &old.encode());
    let (text, json) = expect_verdict(&valkey.url(), &[], 11, "stale");
    assert!(text.contains("PAST the 300 s promise"), "{text}");
    assert_eq!(json["snapshot"]["fresh"], false);
}

#[test]
fn status_runs_as_the_read_only_edge_user_and_never_prints_its_password() {
    let valkey = Valkey::start_with(e2e::ValkeyOptions {
        password: Some("adm-5e6f".into()),
        users: vec!["reader on >rdr-7a8b ~rates resetchannels -@all +get +@connection".into()],
        ..Default::default()
    });
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let url = format!("redis://reader:rdr-7a8b@{}", valkey.host());
    let (text, json) = expect_verdict(&url, &[], 0, "ok");
    assert!(json["quota"]["used_today"].is_null(), "{json}");
    assert!(
        text.contains("quota      unknown (this Valkey user may not read the call count)"),
        "{text}"
    );
    assert!(
        text.contains("refresher  unknown (this Valkey user may not read refresher:last-run)"),
        "{text}"
    );
    let wrong = e2e::refresher_command(
        "status",
        &[
            "--valkey-url".into(),
            format!("redis://reader:nope-1c2d@{}", valkey.host()),
        ],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(wrong.code, Some(2), "{}", wrong.log);
    for log in [&text, &wrong.log] {
        for secret in ["rdr-7a8b", "nope-1c2d", "adm-5e6f"] {
            assert!(!log.contains(secret), "{log}");
        }
    }
}
