//! `refresher exporter` against a real Valkey: what it exports, that a
//! scrape never fails or hangs whatever Valkey does, that its ACL user can
//! read what it needs and nothing more, and that the families it and
//! runtime-shim export are exactly the catalogue the alerts are checked
//! against (manifests/components/monitoring/metrics.yaml).

use e2e::{
    Exporter, OneFrame, Valkey, ValkeyOptions, catalogue, families, refresh, stored_snapshot, value_of,
};
use std::time::{Duration, Instant};

#[test]
fn the_exporter_reports_the_snapshot_the_calls_and_the_last_run_as_valkey_holds_them() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    let exporter = Exporter::start(&valkey.url(), &["--daily-quota", "500"]);
    let (status, text) = exporter.scrape();
    assert_eq!(status, 200);
    assert_eq!(value_of(&text, "forex_valkey_up"), Some(1.0), "{text}");
    assert_eq!(
        value_of(&text, r#"forex_status_verdict{verdict="missing"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value_of(&text, "forex_snapshot_seq"), None, "{text}");

    for _ in 0..2 {
        assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    }
    let stored = stored_snapshot(&valkey).unwrap();
    let (_, text) = exporter.scrape();
    assert_eq!(
        value_of(&text, "forex_snapshot_seq"),
        Some(stored.seq as f64),
        "{text}"
    );
    assert_eq!(
        value_of(&text, "forex_snapshot_seq_counter"),
        Some(stored.seq as f64)
    );
    assert_eq!(
        value_of(&text, "forex_snapshot_pairs"),
        Some(stored.quotes.len() as f64)
    );
    let millis = |t: shared::Timestamp| t.unix_millis() as f64 / 1000.0;
    assert_eq!(
        value_of(&text, "forex_snapshot_oldest_rate_timestamp_seconds"),
        Some(millis(stored.oldest_quote()))
    );
    assert_eq!(
        value_of(&text, "forex_snapshot_fetched_timestamp_seconds"),
        Some(millis(stored.fetched_at))
    );
    assert_eq!(
        value_of(&text, "forex_oneframe_calls_today"),
        Some(one_frame.calls() as f64)
    );
    assert_eq!(value_of(&text, "forex_oneframe_daily_budget"), Some(500.0));
    assert_eq!(
        value_of(&text, r#"forex_status_verdict{verdict="ok"}"#),
        Some(1.0)
    );
    assert_eq!(
        value_of(&text, r#"forex_refresher_last_run_outcome{outcome="stored"}"#),
        Some(1.0)
    );
    let success = value_of(&text, "forex_refresher_last_success_timestamp_seconds").unwrap();
    assert_eq!(
        value_of(&text, "forex_refresher_last_run_timestamp_seconds"),
        Some(success)
    );

    // A run refused by One-Frame is recorded; the last success stays.
    one_frame.fault(r#"{"mode":"error","message":"Forbidden"}"#);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(3));
    let (_, text) = exporter.scrape();
    assert_eq!(
        value_of(&text, r#"forex_refresher_last_run_outcome{outcome="auth"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value_of(&text, r#"forex_refresher_last_run_outcome{outcome="stored"}"#),
        Some(0.0)
    );
    assert_eq!(
        value_of(&text, "forex_refresher_last_success_timestamp_seconds"),
        Some(success)
    );
    assert!(value_of(&text, "forex_refresher_last_run_timestamp_seconds").unwrap() > success);
}

/// A scrape, which must answer 200 within `limit`: its body.
#[track_caller]
fn scrape_within(exporter: &Exporter, limit: Duration) -> String {
    let started = Instant::now();
    let (status, text) = exporter.scrape();
    let took = started.elapsed();
    assert_eq!(status, 200, "{text}");
    assert!(took < limit, "the scrape took {took:?}");
    text
}

#[test]
fn a_scrape_answers_valkey_up_zero_when_valkey_is_gone_stalled_or_refusing() {
    let mut valkey = Valkey::start_with(ValkeyOptions {
        password: Some("adm-3c4d5e".into()),
        ..Default::default()
    });
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    // Limits of 500 ms per call: a scrape takes at most 1 s.
    let exporter = Exporter::start(&valkey.url(), &["--connect-timeout", "500ms"]);
    let limit = Duration::from_millis(1500);
    assert_eq!(
        value_of(&scrape_within(&exporter, limit), "forex_valkey_up"),
        Some(1.0)
    );

    valkey.pause();
    let text = scrape_within(&exporter, limit);
    assert_eq!(value_of(&text, "forex_valkey_up"), Some(0.0), "{text}");
    assert_eq!(value_of(&text, "forex_snapshot_seq"), None, "{text}");
    valkey.resume();
    assert_eq!(
        value_of(&scrape_within(&exporter, limit), "forex_valkey_up"),
        Some(1.0)
    );

    valkey.stop();
    let text = scrape_within(&exporter, limit);
    assert_eq!(value_of(&text, "forex_valkey_up"), Some(0.0), "{text}");
    valkey.start_again();
    assert_eq!(
        value_of(&scrape_within(&exporter, limit), "forex_valkey_up"),
        Some(1.0)
    );

    let refused = Exporter::start(
        &format!("redis://:wrong-9f8e@{}", valkey.host()),
        &["--connect-timeout", "500ms"],
    );
    let text = scrape_within(&refused, limit);
    assert_eq!(value_of(&text, "forex_valkey_up"), Some(0.0), "{text}");
    let log = refused.log();
    assert!(log.contains("refused the credentials"), "{log}");
    // Each failure is logged once, when it starts, and the recovery too.
    let log = exporter.log();
    assert!(log.contains("did not answer within"), "{log}");
    assert!(log.contains("answers again"), "{log}");
    for log in [exporter.log(), refused.log()] {
        assert!(
            !log.contains("adm-3c4d5e") && !log.contains("wrong-9f8e"),
            "{log}"
        );
    }
}

#[test]
fn the_exporter_acl_user_reads_what_it_needs_and_may_change_nothing() {
    let (admin, password) = ("adm-6a7b8c", "exp-1d2e3f");
    let valkey = Valkey::start_with(ValkeyOptions {
        password: Some(admin.into()),
        users: vec![e2e::acl_rule("exporter", password)],
        ..Default::default()
    });
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let url = format!("redis://exporter:{password}@{}", valkey.host());
    let exporter = Exporter::start(&url, &[]);
    let (_, text) = exporter.scrape();
    for series in [
        "forex_valkey_up",
        "forex_snapshot_seq",
        "forex_snapshot_seq_counter",
        "forex_oneframe_calls_today",
        "forex_refresher_last_success_timestamp_seconds",
    ] {
        assert!(
            value_of(&text, series).is_some_and(|v| v > 0.0),
            "{series} in {text}"
        );
    }
    // INFO, for the topology: one node, no replica.
    assert_eq!(value_of(&text, "forex_valkey_replicas"), Some(0.0), "{text}");

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    let refused = |cmd: &mut redis::Cmd, conn: &mut redis::Connection| {
        let e = cmd.query::<redis::Value>(conn).expect_err("refused");
        assert_eq!(e.code(), Some("NOPERM"), "{e}");
    };
    refused(redis::cmd("SET").arg("rates").arg("{}"), &mut conn);
    refused(redis::cmd("INCR").arg("rates:seq"), &mut conn);
    refused(
        redis::cmd("HSET")
            .arg("refresher:last-run")
            .arg("outcome")
            .arg("stored"),
        &mut conn,
    );
    refused(redis::cmd("DEL").arg("rates"), &mut conn);
    refused(redis::cmd("PUBLISH").arg("rates_updated").arg("1"), &mut conn);
    refused(redis::cmd("GET").arg("some-other-key"), &mut conn);
    refused(redis::cmd("KEYS").arg("*"), &mut conn);
    refused(redis::cmd("CONFIG").arg("GET").arg("requirepass"), &mut conn);
    assert!(!exporter.log().contains(password));
}

#[test]
fn the_exporter_and_runtime_shim_export_exactly_the_catalogued_families() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let exporter = Exporter::start(&valkey.url(), &[]);
    let (_, text) = exporter.scrape();
    assert_eq!(families(&text), catalogue("forex-exporter"), "{text}");

    let metrics = e2e::free_port();
    let shim = e2e::Edge::start_app_with(
        &valkey,
        &valkey.url(),
        &["--metrics-listen", &format!("127.0.0.1:{metrics}")],
    );
    assert_eq!(shim.get("/rates?from=USD&to=JPY").status, 200);
    let r = e2e::http::get(([127, 0, 0, 1], metrics).into(), "/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        r.headers
    );
    assert_eq!(families(&r.text()), catalogue("runtime-shim"), "{}", r.text());
    // Nothing of it on the app's port.
    let app = shim.get("/metrics");
    assert_eq!(app.status, 404);
    assert!(!app.text().contains("runtime_shim_"), "{}", app.text());
}
