//! The last refresher run, kept in Valkey so that `refresher status` and the
//! exporter can tell when the refresher last ran, how it ended and when it
//! last succeeded, whichever pod or loop ran it.
//!
//! One hash, `refresher:last-run`, written by one `HSET` at the end of every
//! `once` or `run` step: `at` and `outcome` always, `success_at` only on
//! success, so the time of the last success outlives later failures.

use redis::aio::MultiplexedConnection;
use serde::Serialize;
use shared::Timestamp;
use std::collections::HashMap;

pub const LAST_RUN_KEY: &str = "refresher:last-run";

/// How a run ended: the classes of the refresher's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Exit 0: stored, or a newer snapshot was already there.
    Stored,
    /// Exit 1: worth retrying at the next run.
    Transient,
    /// Exit 2: the configuration is wrong (including refused Valkey credentials).
    Config,
    /// Exit 3: One-Frame refused the token.
    Auth,
    /// Exit 4: the day's quota is spent.
    Quota,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Stored,
        Outcome::Transient,
        Outcome::Config,
        Outcome::Auth,
        Outcome::Quota,
    ];

    /// The outcome a refresher exit code stands for.
    pub fn from_exit_code(code: i32) -> Outcome {
        match code {
            0 => Outcome::Stored,
            2 => Outcome::Config,
            3 => Outcome::Auth,
            4 => Outcome::Quota,
            _ => Outcome::Transient,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Transient => "transient",
            Outcome::Config => "config",
            Outcome::Auth => "auth",
            Outcome::Quota => "quota",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// What [`LAST_RUN_KEY`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastRun {
    pub at: Timestamp,
    pub outcome: Outcome,
    /// The last run that succeeded, this one or an earlier one.
    pub success_at: Option<Timestamp>,
}

/// Records a run that ended at `at` with `outcome`.
pub async fn record(
    conn: &mut MultiplexedConnection,
    at: Timestamp,
    outcome: Outcome,
) -> redis::RedisResult<()> {
    let at = at.to_rfc3339();
    let mut cmd = redis::cmd("HSET");
    cmd.arg(LAST_RUN_KEY)
        .arg("at")
        .arg(&at)
        .arg("outcome")
        .arg(outcome.name());
    if outcome == Outcome::Stored {
        cmd.arg("success_at").arg(&at);
    }
    let _: i64 = cmd.query_async(conn).await?;
    Ok(())
}

/// The record from `HGETALL`'s fields; `Ok(None)` when there is none yet.
pub fn parse(fields: &HashMap<String, String>) -> Result<Option<LastRun>, String> {
    if fields.is_empty() {
        return Ok(None);
    }
    let time = |name: &str| -> Result<Option<Timestamp>, String> {
        fields
            .get(name)
            .map(|v| Timestamp::parse(v).map_err(|e| format!("{LAST_RUN_KEY} field {name}: {e}")))
            .transpose()
    };
    let at = time("at")?.ok_or_else(|| format!("{LAST_RUN_KEY} has no field at"))?;
    let outcome = fields
        .get("outcome")
        .ok_or_else(|| format!("{LAST_RUN_KEY} has no field outcome"))?;
    let outcome = Outcome::parse(outcome)
        .ok_or_else(|| format!("{LAST_RUN_KEY} field outcome: unknown {outcome:?}"))?;
    Ok(Some(LastRun {
        at,
        outcome,
        success_at: time("success_at")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn exit_codes_map_to_the_documented_classes() {
        let names: Vec<_> = [0, 1, 2, 3, 4, 101]
            .map(|c| Outcome::from_exit_code(c).name())
            .to_vec();
        assert_eq!(
            names,
            ["stored", "transient", "config", "auth", "quota", "transient"]
        );
    }

    #[test]
    fn parses_what_record_writes_and_refuses_the_rest() {
        assert_eq!(parse(&HashMap::new()), Ok(None));
        let run = parse(&fields(&[
            ("at", "2026-11-30T17:04:00.123Z"),
            ("outcome", "transient"),
            ("success_at", "2026-11-30T17:00:00.456Z"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(run.outcome, Outcome::Transient);
        assert_eq!(run.success_at.unwrap().to_rfc3339(), "2026-11-30T17:00:00.456Z");
        let never = parse(&fields(&[("at", "2026-11-30T17:04:00Z"), ("outcome", "auth")])).unwrap();
        assert_eq!(never.unwrap().success_at, None);
        for bad in [
            fields(&[("outcome", "stored")]),
            fields(&[("at", "yesterday"), ("outcome", "stored")]),
            fields(&[("at", "2026-11-30T17:04:00Z"), ("outcome", "fine")]),
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }
}
