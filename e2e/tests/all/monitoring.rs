//! The two promises seen through a real Prometheus (Debian's `prometheus`)
//! and a real Alertmanager (Debian's `prometheus-alertmanager`): Valkey,
//! the One-Frame emulator, the refresher, the exporter and runtime-shim
//! with its metrics, and a stand-in for kube-state-metrics' HPA series,
//! scraped every second, with the project's rule file loaded and its alerts
//! routed by the project's Alertmanager route to a webhook of the test's
//! own; every check goes through Prometheus's HTTP API or that webhook.

use e2e::{
    Alertmanager, Edge, Exporter, Job, OneFrame, Prometheus, StaticMetrics, TempDir, Valkey, Webhook,
    alertmanager_routes_file, free_port, refresh, repo_root, rule_file, stored_snapshot,
};
use shared::Timestamp;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The autoscaler's alert, whose `for` (15 minutes in the rule file) the
/// test shortens in its copy of the rule file, and to what: one evaluation
/// of its group (every 30 s) pending, then firing, as the real one does.
const MAX_REPLICAS_ALERT: &str = "ForexEdgeAtMaxReplicas";
const MAX_REPLICAS_FOR_IN_TEST: &str = "30s";

/// What kube-state-metrics would export for two HPAs: the edge's, at its
/// maximum, and another app's, at its maximum too.
const KUBE_STATE_METRICS: &str = "\
# HELP kube_horizontalpodautoscaler_spec_max_replicas Upper limit for the number of pods that can be set by the autoscaler.
# TYPE kube_horizontalpodautoscaler_spec_max_replicas gauge
kube_horizontalpodautoscaler_spec_max_replicas{namespace=\"forex\",horizontalpodautoscaler=\"forex-edge\"} 10
kube_horizontalpodautoscaler_spec_max_replicas{namespace=\"shop\",horizontalpodautoscaler=\"web\"} 5
# HELP kube_horizontalpodautoscaler_status_current_replicas Current number of replicas of pods managed by this autoscaler.
# TYPE kube_horizontalpodautoscaler_status_current_replicas gauge
kube_horizontalpodautoscaler_status_current_replicas{namespace=\"forex\",horizontalpodautoscaler=\"forex-edge\"} 10
kube_horizontalpodautoscaler_status_current_replicas{namespace=\"shop\",horizontalpodautoscaler=\"web\"} 5
# HELP kube_horizontalpodautoscaler_status_desired_replicas Desired number of replicas of pods managed by this autoscaler.
# TYPE kube_horizontalpodautoscaler_status_desired_replicas gauge
kube_horizontalpodautoscaler_status_desired_replicas{namespace=\"forex\",horizontalpodautoscaler=\"forex-edge\"} 10
kube_horizontalpodautoscaler_status_desired_replicas{namespace=\"shop\",horizontalpodautoscaler=\"web\"} 5
";

fn yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rule `alert` of a parsed rule file.
fn rule_mut<'a>(rules: &'a mut serde_json::Value, alert: &str) -> &'a mut serde_json::Value {
    rules["groups"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|g| g["rules"].as_array_mut().unwrap().iter_mut())
        .find(|r| r["alert"] == alert)
        .unwrap_or_else(|| panic!("no alert {alert} in the rule file"))
}

/// A copy in `dir` of the project's rule file whose only change is the
/// `for` of `alert`: a test cannot wait ForexEdgeAtMaxReplicas' 15 minutes,
/// so it proves the alert's expression, labels and route with a shorter
/// wait; everything else Prometheus evaluates is the file's own.
fn rules_with_for(dir: &Path, alert: &str, duration: &str) -> PathBuf {
    let original = yaml(&rule_file());
    let mut copy = original.clone();
    rule_mut(&mut copy, alert)["for"] = duration.into();
    let path = dir.join("forex.rules.yaml");
    std::fs::write(&path, serde_norway::to_string(&copy).unwrap()).unwrap();
    let mut reread = yaml(&path);
    let mut original_for = original.clone();
    rule_mut(&mut reread, alert)["for"] = rule_mut(&mut original_for, alert)["for"].clone();
    assert_eq!(
        reread, original,
        "the copy differs from the rule file in more than the `for` of {alert}"
    );
    path
}

/// The project's Alertmanager file with the test's webhook as the URL of
/// the receiver forex-oncall: the route itself is the file's own.
fn alertmanager_config(webhook: &Webhook) -> String {
    let mut config = yaml(&alertmanager_routes_file());
    let receiver = config["receivers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["name"] == "forex-oncall")
        .expect("a receiver forex-oncall");
    let hooks = receiver["webhook_configs"]
        .as_array_mut()
        .expect("webhook_configs");
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    hooks[0]["url"] = webhook.url().into();
    serde_norway::to_string(&config).unwrap()
}

/// The alerts named `name` of a notification.
fn alerts_named<'a>(body: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    body["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["alertname"] == name)
        .collect()
}

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
    let webhook = Webhook::start();
    let alertmanager = Alertmanager::start(&alertmanager_config(&webhook));
    let kube_state_metrics = StaticMetrics::start(KUBE_STATE_METRICS);
    let rules_dir = TempDir::new("rules");
    let rules = rules_with_for(rules_dir.path(), MAX_REPLICAS_ALERT, MAX_REPLICAS_FOR_IN_TEST);
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
    let prometheus = Prometheus::start_with(
        &[
            Job {
                name: "forex-exporter",
                target: exporter.addr(),
            },
            Job {
                name: "forex-edge-metrics",
                target: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
            },
            Job {
                name: "kube-state-metrics",
                target: kube_state_metrics.addr(),
            },
        ],
        &rules,
        Some(alertmanager.addr()),
    );
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
    // project's own metrics and kube-state-metrics' has data (Traefik's
    // cannot exist here).
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

    // A snapshot whose oldest rate is 265 s old: the stale alert fires at
    // the first evaluation of its group (every 15 s) past 270 s, Prometheus
    // sends it to Alertmanager, and the project's route sends it on to the
    // on-call's webhook at once: the page arrives before the rate is 300 s
    // old, when the edge would refuse it. (A route that inherited the 30 s
    // group_wait of kube-prometheus-stack's root would page at 300 to 315 s.)
    let now = Timestamp::now();
    let old = e2e::snapshot_stamped(1000, now, now.minus(Duration::from_secs(265)));
    valkey.set("rates", &old.encode());
    prometheus.wait_for("forex_snapshot_seq", limit, |v| v == 1000.0);
    let page = webhook
        .wait_for(Duration::from_secs(60), |n| n.fires("ForexRatesStale"))
        .unwrap_or_else(|| {
            panic!(
                "no page for ForexRatesStale; received {:?}\n{}\n{}",
                webhook.received(),
                prometheus.log(),
                alertmanager.log()
            )
        });
    let age = page.at.since(old.oldest_quote());
    eprintln!(
        "ForexRatesStale reached the webhook when the oldest rate was {:.1} s old",
        age.as_secs_f64()
    );
    assert!(
        age > Duration::from_secs(270) && age < Duration::from_secs(300),
        "paged at an age of {age:?}: {}",
        page.body
    );
    assert_eq!(page.body["receiver"], "forex-oncall", "{}", page.body);
    let stale = alerts_named(&page.body, "ForexRatesStale");
    assert_eq!(stale.len(), 1, "{}", page.body);
    assert_eq!(stale[0]["labels"]["severity"], "critical", "{}", page.body);
    assert_eq!(stale[0]["labels"]["namespace"], "forex", "{}", page.body);
    assert_eq!(
        prometheus.alert_state("ForexRatesStale").as_deref(),
        Some("firing")
    );
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

    // The edge's HPA at its maximum (kube-state-metrics' series, served by
    // the stand-in since the start) fires ForexEdgeAtMaxReplicas, which
    // reaches the webhook through the same route; the other app's HPA at
    // its maximum does not.
    let maxed = webhook
        .wait_for(Duration::from_secs(90), |n| n.fires(MAX_REPLICAS_ALERT))
        .unwrap_or_else(|| {
            panic!(
                "no notification of {MAX_REPLICAS_ALERT}; received {:?}\n{}\n{}",
                webhook.received(),
                prometheus.log(),
                alertmanager.log()
            )
        });
    assert_eq!(maxed.body["receiver"], "forex-oncall", "{}", maxed.body);
    let received = webhook.received();
    let notified: Vec<&serde_json::Value> = received
        .iter()
        .flat_map(|n| alerts_named(&n.body, MAX_REPLICAS_ALERT))
        .collect();
    assert!(!notified.is_empty());
    for alert in notified {
        assert_eq!(
            alert["labels"]["horizontalpodautoscaler"], "forex-edge",
            "{alert}"
        );
        assert_eq!(alert["labels"]["namespace"], "forex", "{alert}");
        assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    }
    drop(shim);
}
