//! `refresher status`: how the system is doing, read-only, in one screen or
//! as JSON, with a verdict and an exit code to match (refresher/README.md).
//!
//! It reads the snapshot (`GET <rates key>`), today's One-Frame call count
//! (`GET oneframe:calls:<day>`), the seq counter (`GET rates:seq`) and the
//! last run (`HGETALL refresher:last-run`) and nothing else, so it also runs
//! as the edge's read-only ACL user, which may read the snapshot only: the
//! rest is then reported as unknown and judged on nothing. The exporter
//! (`refresher exporter`) reads and judges with the same code.

use crate::last_run::{self, LastRun};
use crate::quota::{self, reserve_for_schedule};
use crate::store::SEQ_KEY;
use serde::Serialize;
use shared::freshness::{self, DEFAULT_MAX_RATE_AGE};
use shared::{Snapshot, Timestamp};
use std::collections::HashMap;
use std::time::Duration;

/// The verdict, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// No valid snapshot under the rates key.
    Missing,
    /// The snapshot's oldest rate is past the 5-minute promise.
    Stale,
    /// Today's calls leave fewer than the rest of the day's schedule needs.
    QuotaAtRisk,
    Ok,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Ok,
        Verdict::QuotaAtRisk,
        Verdict::Stale,
        Verdict::Missing,
    ];

    /// As `--json` and the exporter's `verdict` label say it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Stale => "stale",
            Verdict::Missing => "missing",
            Verdict::QuotaAtRisk => "quota-at-risk",
        }
    }

    /// 0 when all is well; distinct codes above the refresher's own (0–4).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::QuotaAtRisk => 10,
            Verdict::Stale => 11,
            Verdict::Missing => 12,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotStatus {
    pub seq: u64,
    pub fetched_at: String,
    pub age_seconds: u64,
    pub pairs: usize,
    /// Age of the oldest rate: what the edge's promise is measured on.
    pub oldest_rate_age_seconds: u64,
    pub fresh: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuotaStatus {
    /// `None` when Valkey would not say (e.g. an ACL user without access).
    pub used_today: Option<u64>,
    pub budget: u64,
    /// Calls the scheduled refreshes still due today need.
    pub needed_for_schedule: u64,
    pub at_risk: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_because: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub verdict: Verdict,
    pub checked_at: String,
    /// `checked_at` as a time.
    #[serde(skip)]
    pub now: Timestamp,
    pub max_rate_age_seconds: u64,
    pub snapshot: Option<SnapshotStatus>,
    /// Why there is no snapshot to report (absent, or invalid and why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_problem: Option<String>,
    pub quota: QuotaStatus,
    /// The last refresher run; `None` when none is recorded or it is unknown.
    pub last_run: Option<LastRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_unknown_because: Option<String>,
    /// The value of `rates:seq`, when readable.
    pub seq_counter: Option<u64>,
    /// The snapshot as decoded, for the exporter's timestamps.
    #[serde(skip)]
    pub decoded: Option<Snapshot>,
    pub valkey: Topology,
}

/// What was read from Valkey. Each part but the snapshot is read on its
/// own: a user refused one of them still gets the others.
#[derive(Debug, Clone)]
pub struct Reading {
    pub snapshot: Option<Vec<u8>>,
    pub used_today: Result<u64, String>,
    pub seq_counter: Result<Option<u64>, String>,
    pub last_run: Result<Option<LastRun>, String>,
    /// The node read from and what it says of its replication.
    pub topology: Topology,
}

/// Where Valkey's data is: the node read from (the primary, with
/// Sentinels), and its replicas as it sees them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Topology {
    /// `host:port` of the node read from.
    pub node: String,
    /// Whether Sentinels named it as the primary.
    pub via_sentinel: bool,
    /// `master` or `slave`, as the node says; `None` when unknown.
    pub role: Option<String>,
    /// Replicas in sync with it.
    pub replicas: Option<usize>,
    /// The largest lag of those replicas, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_lag_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_because: Option<String>,
}

#[cfg(test)]
impl Topology {
    /// A primary named by Sentinel with two replicas in sync, for tests.
    pub fn example() -> Topology {
        Topology {
            node: "valkey-1.valkey-nodes:6379".into(),
            via_sentinel: true,
            role: Some("master".into()),
            replicas: Some(2),
            replication_lag_seconds: Some(0),
            unknown_because: None,
        }
    }
}

impl Default for Reading {
    fn default() -> Reading {
        Reading {
            snapshot: None,
            used_today: Ok(0),
            seq_counter: Ok(None),
            last_run: Ok(None),
            topology: Topology::default(),
        }
    }
}

/// What was read from Valkey, judged at `now`.
pub fn judge(read: &Reading, now: Timestamp, budget: u64, schedule_interval: Duration) -> Status {
    let max_age = DEFAULT_MAX_RATE_AGE;
    let decoded = read.snapshot.as_deref().map(Snapshot::decode);
    let (snapshot, snapshot_problem) = match &decoded {
        None => (None, Some("no snapshot is stored".to_string())),
        Some(Err(e)) => (None, Some(format!("the stored snapshot is invalid: {e}"))),
        Some(Ok(s)) => {
            let oldest = s.oldest_quote();
            let snapshot = SnapshotStatus {
                seq: s.seq,
                fetched_at: s.fetched_at.to_rfc3339(),
                age_seconds: freshness::age(s.fetched_at, now).as_secs(),
                pairs: s.quotes.len(),
                oldest_rate_age_seconds: freshness::age(oldest, now).as_secs(),
                fresh: freshness::is_fresh(oldest, now, max_age),
            };
            (Some(snapshot), None)
        }
    };
    let needed = reserve_for_schedule(now, schedule_interval);
    let quota = match read.used_today.clone() {
        Ok(used) => QuotaStatus {
            used_today: Some(used),
            budget,
            needed_for_schedule: needed,
            at_risk: used.saturating_add(needed) > budget,
            unknown_because: None,
        },
        Err(why) => QuotaStatus {
            used_today: None,
            budget,
            needed_for_schedule: needed,
            at_risk: false,
            unknown_because: Some(why),
        },
    };
    let verdict = match &snapshot {
        None => Verdict::Missing,
        Some(s) if !s.fresh => Verdict::Stale,
        Some(_) if quota.at_risk => Verdict::QuotaAtRisk,
        Some(_) => Verdict::Ok,
    };
    let (last_run, last_run_unknown_because) = match &read.last_run {
        Ok(run) => (run.clone(), None),
        Err(why) => (None, Some(why.clone())),
    };
    Status {
        verdict,
        checked_at: now.to_rfc3339(),
        now,
        max_rate_age_seconds: max_age.as_secs(),
        snapshot,
        snapshot_problem,
        quota,
        last_run,
        last_run_unknown_because,
        seq_counter: read.seq_counter.clone().ok().flatten(),
        decoded: decoded.and_then(Result::ok),
        valkey: read.topology.clone(),
    }
}

/// Reads what [`judge`] needs from `node` (`host:port`, named by
/// Sentinels when `via_sentinel`); `Err` only when Valkey cannot be read at
/// all.
pub async fn read(
    conn: &mut redis::aio::MultiplexedConnection,
    rates_key: &str,
    now: Timestamp,
    node: &str,
    via_sentinel: bool,
) -> redis::RedisResult<Reading> {
    let snapshot: Option<Vec<u8>> = redis::cmd("GET").arg(rates_key).query_async(conn).await?;
    let used = permitted(
        redis::cmd("GET")
            .arg(quota::key(now))
            .query_async::<Option<u64>>(conn)
            .await,
        "the call count",
    )?;
    let seq_counter = permitted(
        redis::cmd("GET")
            .arg(SEQ_KEY)
            .query_async::<Option<u64>>(conn)
            .await,
        SEQ_KEY,
    )?;
    let last_run = permitted(
        redis::cmd("HGETALL")
            .arg(last_run::LAST_RUN_KEY)
            .query_async::<HashMap<String, String>>(conn)
            .await,
        last_run::LAST_RUN_KEY,
    )?;
    let replication = permitted(ops::valkey::Replication::read(conn).await, "INFO replication")?;
    let topology = match replication {
        Ok(r) => Topology {
            node: node.to_string(),
            via_sentinel,
            role: Some(r.role.clone()),
            replicas: Some(r.replicas_online()),
            replication_lag_seconds: r.max_lag_seconds(),
            unknown_because: None,
        },
        Err(why) => Topology {
            node: node.to_string(),
            via_sentinel,
            unknown_because: Some(why),
            ..Topology::default()
        },
    };
    Ok(Reading {
        snapshot,
        used_today: used.map(|n| n.unwrap_or(0)),
        seq_counter,
        last_run: last_run.and_then(|fields| last_run::parse(&fields)),
        topology,
    })
}

/// A read this Valkey user may be refused (`NOPERM`): the refusal becomes
/// the part's reason to be unknown; any other error fails the whole read.
fn permitted<T>(r: redis::RedisResult<T>, what: &str) -> redis::RedisResult<Result<T, String>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.code() == Some("NOPERM") => Ok(Err(format!("this Valkey user may not read {what}"))),
        Err(e) => Err(e),
    }
}

/// One screen for a person.
pub fn render_text(s: &Status, schedule_interval: Duration) -> String {
    let mut out = String::new();
    match (&s.snapshot, &s.snapshot_problem) {
        (Some(snap), _) => {
            out.push_str(&format!(
                "snapshot   seq {}, fetched {} ({} s ago), {} pairs\n",
                snap.seq, snap.fetched_at, snap.age_seconds, snap.pairs
            ));
            out.push_str(&format!(
                "freshness  oldest rate {} s old: {} the {} s promise\n",
                snap.oldest_rate_age_seconds,
                if snap.fresh { "within" } else { "PAST" },
                s.max_rate_age_seconds
            ));
        }
        (None, problem) => {
            out.push_str(&format!(
                "snapshot   none: {}\n",
                problem.as_deref().unwrap_or("no snapshot is stored")
            ));
        }
    }
    let q = &s.quota;
    match q.used_today {
        Some(used) => out.push_str(&format!(
            "quota      {used} of {} One-Frame calls used today; the rest of the day's schedule (every {}) needs {}{}\n",
            q.budget,
            ops::duration::format(schedule_interval),
            q.needed_for_schedule,
            if q.at_risk { ": AT RISK" } else { "" }
        )),
        None => out.push_str(&format!(
            "quota      unknown ({}); the rest of the day's schedule needs {} of {}\n",
            q.unknown_because.as_deref().unwrap_or("not readable"),
            q.needed_for_schedule,
            q.budget
        )),
    }
    match (&s.last_run, &s.last_run_unknown_because) {
        (Some(run), _) => {
            let ago = |t: Timestamp| freshness::age(t, s.now).as_secs();
            let success = match run.success_at {
                Some(t) => format!("last success {} s ago", ago(t)),
                None => "no success recorded".to_string(),
            };
            out.push_str(&format!(
                "refresher  last run {} ({} s ago): {}; {success}\n",
                run.at.to_rfc3339(),
                ago(run.at),
                run.outcome.name()
            ));
        }
        (None, Some(why)) => out.push_str(&format!("refresher  unknown ({why})\n")),
        (None, None) => out.push_str("refresher  no run recorded yet\n"),
    }
    let v = &s.valkey;
    let named = if v.via_sentinel {
        "primary named by Sentinel"
    } else {
        "node"
    };
    match (&v.role, v.replicas) {
        (Some(role), Some(replicas)) => out.push_str(&format!(
            "valkey     {named} {} ({role}), {replicas} replica(s) in sync{}\n",
            v.node,
            v.replication_lag_seconds
                .map(|l| format!(", lag {l} s"))
                .unwrap_or_default()
        )),
        _ => out.push_str(&format!(
            "valkey     {named} {}; replication unknown ({})\n",
            v.node,
            v.unknown_because.as_deref().unwrap_or("not readable")
        )),
    }
    out.push_str(&format!(
        "verdict    {} (exit {})\n",
        s.verdict.name(),
        s.verdict.exit_code()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{Currency, Pair, Quote};

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn snapshot(at: &str) -> Vec<u8> {
        let quote = Quote {
            pair: Pair::new(Currency::USD, Currency::parse("JPY").unwrap()),
            bid: 0.5,
            ask: 0.7,
            price: 0.6,
            time_stamp: t(at),
        };
        Snapshot::new(7, t(at), vec![quote]).unwrap().encode()
    }

    const EVERY: Duration = Duration::from_secs(240);

    #[test]
    fn each_verdict_and_its_exit_code() {
        let noon = t("2026-11-24T12:00:00Z");
        let fresh = snapshot("2026-11-24T11:59:00Z");
        let stale = snapshot("2026-11-24T11:54:59Z");
        let judge_at = |stored: Option<&[u8]>, used| {
            let read = Reading {
                snapshot: stored.map(<[u8]>::to_vec),
                used_today: used,
                ..Reading::default()
            };
            judge(&read, noon, 1000, EVERY)
        };
        // 180 slots left at noon.
        let ok = judge_at(Some(&fresh), Ok(820));
        assert_eq!((ok.verdict, ok.verdict.exit_code()), (Verdict::Ok, 0));
        let risk = judge_at(Some(&fresh), Ok(821));
        assert_eq!(
            (risk.verdict, risk.verdict.exit_code()),
            (Verdict::QuotaAtRisk, 10)
        );
        assert_eq!(judge_at(Some(&stale), Ok(0)).verdict, Verdict::Stale);
        assert_eq!(judge_at(Some(&stale), Ok(999)).verdict, Verdict::Stale);
        assert_eq!(judge_at(None, Ok(0)).verdict, Verdict::Missing);
        let invalid = judge_at(Some(b"{}"), Ok(0));
        assert_eq!(
            (invalid.verdict, invalid.verdict.exit_code()),
            (Verdict::Missing, 12)
        );
        assert!(invalid.snapshot_problem.unwrap().contains("invalid"));
        // Unknown quota judges on the snapshot alone.
        let acl = judge_at(Some(&fresh), Err("denied".into()));
        assert_eq!(acl.verdict, Verdict::Ok);
        assert!(render_text(&acl, EVERY).contains("quota      unknown (denied)"));
        assert!(render_text(&acl, EVERY).contains("refresher  no run recorded yet"));
    }

    #[test]
    fn one_screen_and_json_say_the_same() {
        let read = Reading {
            snapshot: Some(snapshot("2026-11-24T11:59:00Z")),
            used_today: Ok(5),
            seq_counter: Ok(Some(9)),
            last_run: Ok(Some(LastRun {
                at: t("2026-11-24T11:59:50Z"),
                outcome: last_run::Outcome::Transient,
                success_at: Some(t("2026-11-24T11:56:00Z")),
            })),
            topology: Topology::example(),
        };
        let s = judge(&read, t("2026-11-24T12:00:00Z"), 1000, EVERY);
        let text = render_text(&s, EVERY);
        assert!(
            text.contains(
                "valkey     primary named by Sentinel valkey-1.valkey-nodes:6379 (master), 2 replica(s) in sync, lag 0 s"
            ),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(json["valkey"]["replicas"], 2, "{json}");
        assert_eq!(json["valkey"]["node"], "valkey-1.valkey-nodes:6379");
        assert!(text.contains("seq 7"), "{text}");
        assert!(
            text.contains("oldest rate 60 s old: within the 300 s promise"),
            "{text}"
        );
        assert!(text.contains("5 of 1000 One-Frame calls used today"), "{text}");
        assert!(text.contains("(every 4m) needs 180"), "{text}");
        assert!(
            text.contains(
                "refresher  last run 2026-11-24T11:59:50.000Z (10 s ago): transient; last success 240 s ago\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("verdict    ok (exit 0)\n"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["verdict"], "ok");
        assert_eq!(json["snapshot"]["seq"], 7);
        assert_eq!(json["snapshot"]["oldest_rate_age_seconds"], 60);
        assert_eq!(json["quota"]["needed_for_schedule"], 180);
        assert_eq!(json["seq_counter"], 9);
        assert_eq!(json["last_run"]["outcome"], "transient");
        assert_eq!(json["last_run"]["success_at"], "2026-11-24T11:56:00.000Z");
    }
}
