//! The two promises seen through a real Prometheus (Debian's `prometheus`):
//! Valkey, the One-Frame emulator, the refresher, the exporter and
//! runtime-shim with its metrics, scraped every second, with the project's
//! rule file loaded; every check goes through Prometheus's HTTP API.

use e2e::{
    Edge, Exporter, Job, OneFrame, Prometheus, Valkey, free_port, refresh, repo_root, stored_snapshot,
};
use shared::Timestamp;
use std::net::SocketAddr;
use std::time::Duration;

/// Unix seconds as the exporter says them.
fn seconds(t: Timestamp) -> f64 {
    t.unix_millis() as f64 / 1000.0
}

/// Every panel query of the Grafana dashboard, with its panel's title.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = repo_root().join("manifests/components/monitoring/dashboards/forex-edge.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut panels: Vec<&serde_json::Value> = doc["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((p["title"].as_str().unwrap_or("").to_string(), expr.to_string()));
            }
        }
    }
    out
}

#[test]
fn prometheus_sees_both_promises_and_the_alerts_fire_and_clear() {
    let mut valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let exporter = Exporter::start(&valkey.url(), &["--connect-timeout", "300ms"]);
    let metrics_port = free_port();
    let shim = Edge::start_app_with(
        &valkey,
        &valkey.url(),
        &["--metrics-listen", &format!("127.0.0.1:{metrics_port}")],
    );
    let prometheus = Prometheus::start(&[
        Job {
            name: "forex-exporter",
            target: exporter.addr(),
        },
        Job {
            name: "forex-edge-metrics",
            target: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
        },
    ]);
    let limit = Duration::from_secs(20);
    prometheus.wait_for("forex_valkey_up", limit, |v| v == 1.0);
    prometheus.wait_for(r#"up{job="forex-edge-metrics"}"#, limit, |v| v == 1.0);

    // After exactly N requests the request counter rose by N.
    let requests = r#"sum(runtime_shim_http_requests_total{job="forex-edge-metrics"})"#;
    let before = prometheus.wait_for(requests, limit, |_| true);
    const N: usize = 25;
    for _ in 0..N {
        assert_eq!(shim.get("/rates?from=EUR&to=JPY").status, 200);
    }
    prometheus.wait_for(requests, limit, |v| v == before + N as f64);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        prometheus.scalar(requests),
        Some(before + N as f64),
        "no more, no less"
    );

    // seq and the oldest rate's time are Valkey's, and follow a refresh.
    for _ in 0..2 {
        let stored = stored_snapshot(&valkey).unwrap();
        prometheus.wait_for("forex_snapshot_seq", limit, |v| v == stored.seq as f64);
        prometheus.wait_for("forex_snapshot_oldest_rate_timestamp_seconds", limit, |v| {
            v == seconds(stored.oldest_quote())
        });
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    }
    // The call counter is the emulator's own count.
    let calls = one_frame.calls() as f64;
    assert_eq!(calls, 3.0);
    prometheus.wait_for("forex_oneframe_calls_today", limit, |v| v == calls);

    // Every dashboard panel's query is accepted, and each over the
    // project's own metrics has data (Traefik's cannot exist here).
    let queries = dashboard_queries();
    assert!(queries.len() >= 6, "{queries:?}");
    for (title, expr) in &queries {
        let expr = expr.replace("$__rate_interval", "1m");
        let answer = prometheus.query_raw(&expr);
        assert_eq!(answer["status"], "success", "panel {title:?}: {expr}: {answer}");
        if !expr.contains("traefik_") {
            assert!(
                !prometheus.query(&expr).is_empty(),
                "panel {title:?} shows nothing: {expr}"
            );
        }
    }

    // A snapshot whose oldest rate is past 270 s fires the stale alert
    // before 300 s; a fresh one clears it.
    let now = Timestamp::now();
    let old = e2e::snapshot_stamped(1000, now, now.minus(Duration::from_secs(275)));
    valkey.set("rates", &old.encode());
    prometheus.wait_for("forex_snapshot_seq", limit, |v| v == 1000.0);
    prometheus.wait_for_alert("ForexRatesStale", Some("firing"), Duration::from_secs(20));
    assert!(Timestamp::now().since(old.oldest_quote()) < Duration::from_secs(300));
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    prometheus.wait_for_alert("ForexRatesStale", None, Duration::from_secs(20));
    assert_eq!(prometheus.alert_state("ForexRefresherFailing"), None);

    // Valkey stops: forex_valkey_up turns 0 and its alert fires, while
    // every scrape of the exporter still succeeds.
    valkey.stop();
    prometheus.wait_for("forex_valkey_up", limit, |v| v == 0.0);
    prometheus.wait_for_alert("ForexValkeyDown", Some("firing"), Duration::from_secs(60));
    assert_eq!(
        prometheus.scalar(r#"min_over_time(up{job="forex-exporter"}[10m])"#),
        Some(1.0),
        "a scrape of the exporter failed"
    );
    assert!(
        prometheus
            .scalar(r#"max_over_time(scrape_duration_seconds{job="forex-exporter"}[10m])"#)
            .unwrap()
            < 0.9
    );
    assert_eq!(prometheus.alert_state("ForexExporterDown"), None);
    drop(shim);
}
