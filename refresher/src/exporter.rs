//! `refresher exporter`: the two promises (no rate older than five minutes,
//! at most the day's One-Frame budget) as Prometheus metrics.
//!
//! Each scrape reads Valkey with `refresher status`'s own code
//! ([`status::read`], [`status::judge`]) and renders what it could read.
//! Valkey unreachable, stalled or refusing the exporter's credentials is
//! `forex_valkey_up 0`, with the reason in the log when it changes: the
//! scrape still answers, never waits longer than the exporter's limit, and
//! never fails. Timestamps are Unix seconds, so an age is `time() - x` in
//! PromQL and stays right between scrapes.

use crate::last_run::Outcome;
use crate::status::{self, Reading, Status, Verdict};
use ops::valkey::Valkey;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use redis::aio::MultiplexedConnection;
use shared::Timestamp;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::Mutex;

/// What the exporter reads and how long it may take.
pub struct Exporter {
    pub valkey: Valkey,
    pub rates_key: String,
    pub budget: u64,
    pub schedule_interval: Duration,
    /// Limit of connecting and of each command; a scrape takes at most
    /// three times this.
    pub timeout: Duration,
    /// The connection scrapes share, and the node it reaches; dropped when
    /// it fails (with Sentinels, the next is to the primary they name then).
    conn: Mutex<Option<(MultiplexedConnection, String)>>,
    /// The last scrape's failure, so that a lasting one is logged once.
    failing: Mutex<Option<String>>,
}

impl Exporter {
    pub fn new(
        valkey: Valkey,
        rates_key: String,
        budget: u64,
        schedule_interval: Duration,
        timeout: Duration,
    ) -> Exporter {
        Exporter {
            valkey,
            rates_key,
            budget,
            schedule_interval,
            timeout,
            conn: Mutex::new(None),
            failing: Mutex::new(None),
        }
    }

    /// Reads Valkey within the limits; `Err` says why it could not.
    async fn read(&self, now: Timestamp) -> Result<Reading, String> {
        // Scrapes take turns on the one connection: each is bounded, and
        // Prometheus scrapes one target one at a time anyway.
        let mut slot = self.conn.lock().await;
        let (conn, node) = match slot.as_mut() {
            Some(c) => c,
            None => {
                let c = self.valkey.connect_node(self.timeout, self.timeout).await;
                slot.insert(c.map_err(|e| e.to_string())?)
            }
        };
        let via_sentinel = self.valkey.has_sentinels();
        let url = self.valkey.redacted();
        let limit = self.timeout * 2;
        let result = match tokio::time::timeout(
            limit,
            status::read(conn, &self.rates_key, now, node, via_sentinel),
        )
        .await
        {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) if e.is_timeout() => Err(format!(
                "Valkey at {url} did not answer within {:?}",
                self.timeout
            )),
            Ok(Err(e)) => Err(format!(
                "cannot read Valkey at {url}: {}",
                self.valkey.describe(&e)
            )),
            Err(_) => Err(format!("Valkey at {url} did not answer within {limit:?}")),
        };
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// Logs a failure when it starts or changes, and the recovery.
    async fn note(&self, result: &Result<Reading, String>) {
        let mut failing = self.failing.lock().await;
        match (result, failing.as_ref()) {
            (Err(why), last) if last != Some(why) => {
                tracing::warn!("{why}; forex_valkey_up is 0 until it answers");
                *failing = Some(why.clone());
            }
            (Ok(_), Some(_)) => {
                tracing::info!("Valkey at {} answers again", self.valkey.redacted());
                *failing = None;
            }
            _ => {}
        }
    }
}

impl ops::metrics::Scrape for Exporter {
    async fn scrape(&self) -> String {
        let now = Timestamp::now();
        let result = self.read(now).await;
        self.note(&result).await;
        let judged = result
            .ok()
            .map(|r| status::judge(&r, now, self.budget, self.schedule_interval));
        ops::metrics::encode(&registry(judged.as_ref()))
    }
}

/// A state set: one series per state of `label`, 1 for the current one.
fn one_hot(
    r: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    states: impl IntoIterator<Item = (&'static str, bool)>,
) {
    let family = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    for (state, current) in states {
        family
            .get_or_create(&vec![(label, state)])
            .set(i64::from(current));
    }
    r.register(name, help, family);
}

fn seconds(t: Timestamp) -> f64 {
    t.unix_millis() as f64 / 1000.0
}

/// The metrics of one scrape: `None` when Valkey could not be read, which
/// leaves only `forex_valkey_up 0`.
fn registry(judged: Option<&Status>) -> Registry {
    let mut r = Registry::default();
    let int = |r: &mut Registry, name: &str, help: &str, v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        r.register(name, help, g);
    };
    let time = |r: &mut Registry, name: &str, help: &str, t: Timestamp| {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(seconds(t));
        r.register(name, help, g);
    };
    int(
        &mut r,
        "forex_valkey_up",
        "1 when this scrape read Valkey, 0 when it was unreachable or refused the exporter's credentials",
        i64::from(judged.is_some()),
    );
    let Some(s) = judged else {
        return r;
    };
    if let Some(snapshot) = &s.decoded {
        int(
            &mut r,
            "forex_snapshot_seq",
            "seq of the stored snapshot",
            snapshot.seq as i64,
        );
        time(
            &mut r,
            "forex_snapshot_fetched_timestamp_seconds",
            "fetched_at of the stored snapshot, Unix seconds",
            snapshot.fetched_at,
        );
        time(
            &mut r,
            "forex_snapshot_oldest_rate_timestamp_seconds",
            "time_stamp of the snapshot's oldest rate, Unix seconds: its age is what the 300 s promise is about",
            snapshot.oldest_quote(),
        );
        int(
            &mut r,
            "forex_snapshot_pairs",
            "pairs in the stored snapshot",
            snapshot.quotes.len() as i64,
        );
    }
    if let Some(n) = s.seq_counter {
        int(
            &mut r,
            "forex_snapshot_seq_counter",
            "value of rates:seq, which gives each snapshot its seq (restarts at 1 when Valkey loses its data)",
            n as i64,
        );
    }
    let q = &s.quota;
    if let Some(used) = q.used_today {
        int(
            &mut r,
            "forex_oneframe_calls_today",
            "One-Frame calls counted today (UTC day), by every refresher",
            used as i64,
        );
    }
    int(
        &mut r,
        "forex_oneframe_daily_budget",
        "One-Frame calls allowed per UTC day",
        q.budget as i64,
    );
    int(
        &mut r,
        "forex_oneframe_calls_needed_for_schedule",
        "One-Frame calls the rest of today's refresh schedule needs",
        q.needed_for_schedule as i64,
    );
    one_hot(
        &mut r,
        "forex_status_verdict",
        "refresher status's verdict: 1 for the current one",
        "verdict",
        Verdict::ALL.map(|v| (v.name(), v == s.verdict)),
    );
    let v = &s.valkey;
    if let Some(replicas) = v.replicas {
        int(
            &mut r,
            "forex_valkey_replicas",
            "replicas in sync with the Valkey node read (the primary, with Sentinels)",
            replicas as i64,
        );
        let primary = Family::<Vec<(&'static str, String)>, Gauge>::default();
        primary
            .get_or_create(&vec![("address", v.node.clone())])
            .set(i64::from(v.role.as_deref() == Some("master")));
        r.register(
            "forex_valkey_primary",
            "1 for the node read when it is the primary, labelled with its host:port (a failover changes it)",
            primary,
        );
    }
    if v.replicas.is_some() {
        int(
            &mut r,
            "forex_valkey_replication_lag_seconds",
            "the largest lag of a replica in sync, in seconds; 0 without one",
            v.replication_lag_seconds.unwrap_or(0) as i64,
        );
    }
    if let Some(run) = &s.last_run {
        time(
            &mut r,
            "forex_refresher_last_run_timestamp_seconds",
            "when the last refresher run ended, Unix seconds",
            run.at,
        );
        if let Some(success) = run.success_at {
            time(
                &mut r,
                "forex_refresher_last_success_timestamp_seconds",
                "when a refresher run last succeeded (stored a snapshot or found a newer one), Unix seconds",
                success,
            );
        }
        one_hot(
            &mut r,
            "forex_refresher_last_run_outcome",
            "the last refresher run's exit-code class: 1 for the current one",
            "outcome",
            Outcome::ALL.map(|o| (o.name(), o == run.outcome)),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::last_run::LastRun;
    use shared::{Currency, Pair, Quote, Snapshot};

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn render(read: Option<Reading>, now: &str) -> String {
        let judged = read.map(|r| status::judge(&r, t(now), 1000, Duration::from_secs(240)));
        ops::metrics::encode(&registry(judged.as_ref()))
    }

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .map(|l| &l[series.len() + 1..])
    }

    #[test]
    fn a_snapshot_and_a_run_become_timestamps_counts_and_one_hot_states() {
        let quote = |to: &str, at: &str| Quote {
            pair: Pair::new(Currency::USD, Currency::parse(to).unwrap()),
            bid: 0.5,
            ask: 0.7,
            price: 0.6,
            time_stamp: t(at),
        };
        let snapshot = Snapshot::new(
            42,
            t("2026-11-24T11:59:00.250Z"),
            vec![
                quote("JPY", "2026-11-24T11:58:30.500Z"),
                quote("EUR", "2026-11-24T11:58:50Z"),
            ],
        )
        .unwrap();
        let read = Reading {
            snapshot: Some(snapshot.encode()),
            used_today: Ok(7),
            seq_counter: Ok(Some(43)),
            last_run: Ok(Some(LastRun {
                at: t("2026-11-24T11:59:01Z"),
                outcome: Outcome::Config,
                success_at: Some(t("2026-11-24T11:55:00Z")),
            })),
            topology: crate::status::Topology::example(),
        };
        let text = render(Some(read), "2026-11-24T12:00:00Z");
        let at = |s| seconds(t(s)).to_string();
        assert_eq!(line(&text, "forex_valkey_up"), Some("1"), "{text}");
        assert_eq!(line(&text, "forex_valkey_replicas"), Some("2"), "{text}");
        assert_eq!(
            line(&text, "forex_valkey_replication_lag_seconds"),
            Some("0"),
            "{text}"
        );
        assert_eq!(
            line(
                &text,
                r#"forex_valkey_primary{address="valkey-1.valkey-nodes:6379"}"#
            ),
            Some("1"),
            "{text}"
        );
        assert_eq!(line(&text, "forex_snapshot_seq"), Some("42"));
        assert_eq!(line(&text, "forex_snapshot_seq_counter"), Some("43"));
        assert_eq!(line(&text, "forex_snapshot_pairs"), Some("2"));
        let oldest = line(&text, "forex_snapshot_oldest_rate_timestamp_seconds").unwrap();
        assert_eq!(
            oldest.parse::<f64>().unwrap().to_string(),
            at("2026-11-24T11:58:30.500Z")
        );
        let fetched = line(&text, "forex_snapshot_fetched_timestamp_seconds").unwrap();
        assert_eq!(
            fetched.parse::<f64>().unwrap().to_string(),
            at("2026-11-24T11:59:00.250Z")
        );
        assert_eq!(line(&text, "forex_oneframe_calls_today"), Some("7"));
        assert_eq!(line(&text, "forex_oneframe_daily_budget"), Some("1000"));
        assert_eq!(
            line(&text, "forex_oneframe_calls_needed_for_schedule"),
            Some("180")
        );
        assert_eq!(line(&text, r#"forex_status_verdict{verdict="ok"}"#), Some("1"));
        assert_eq!(line(&text, r#"forex_status_verdict{verdict="stale"}"#), Some("0"));
        assert_eq!(
            line(&text, r#"forex_refresher_last_run_outcome{outcome="config"}"#),
            Some("1")
        );
        assert_eq!(
            line(&text, r#"forex_refresher_last_run_outcome{outcome="stored"}"#),
            Some("0")
        );
        let success = line(&text, "forex_refresher_last_success_timestamp_seconds").unwrap();
        assert_eq!(
            success.parse::<f64>().unwrap().to_string(),
            at("2026-11-24T11:55:00Z")
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn without_valkey_only_up_zero_is_said() {
        let text = render(None, "2026-11-24T12:00:00Z");
        assert_eq!(line(&text, "forex_valkey_up"), Some("0"), "{text}");
        assert!(!text.contains("forex_snapshot"), "{text}");
        assert!(!text.contains("forex_status_verdict"), "{text}");
    }

    #[test]
    fn unreadable_parts_are_left_out_not_zero() {
        let read = Reading {
            snapshot: None,
            used_today: Err("no permission".into()),
            seq_counter: Err("no permission".into()),
            last_run: Ok(None),
            topology: crate::status::Topology {
                unknown_because: Some("no permission".into()),
                ..Default::default()
            },
        };
        let text = render(Some(read), "2026-11-24T12:00:00Z");
        assert_eq!(
            line(&text, r#"forex_status_verdict{verdict="missing"}"#),
            Some("1"),
            "{text}"
        );
        for absent in [
            "forex_oneframe_calls_today",
            "forex_snapshot_seq",
            "forex_refresher_last_run_timestamp_seconds",
            "forex_valkey_replicas",
            "forex_valkey_replication_lag_seconds",
        ] {
            assert_eq!(line(&text, absent), None, "{absent} in {text}");
        }
    }
}
