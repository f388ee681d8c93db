//! One refresh: take a permit from the quota guard, call One-Frame once for
//! every USD leg, check the answer, store it if it is newer, publish. Failed
//! attempts are retried with capped exponential backoff and jitter while the
//! run's deadline and the day's budget allow.

use crate::client::{FetchError, OneFrameClient};
use crate::clock::Clock;
use crate::last_run;
use crate::quota::{self, QuotaGuard};
use crate::store::{SEQ_KEY, SnapshotStore, WriteOutcome};
pub use ops::backoff::Backoff;
use ops::valkey::{ConnectError, Valkey};
use redis::aio::MultiplexedConnection;
use shared::one_frame::AnswerError;
use shared::{Pair, Snapshot, Timestamp};
use std::fmt;
use std::time::Duration;

pub struct Refresher<C: Clock> {
    pub clock: C,
    pub valkey: Valkey,
    pub connect_timeout: Duration,
    pub client: OneFrameClient,
    pub quota: QuotaGuard,
    pub store: SnapshotStore,
    pub pairs: Vec<Pair>,
    /// The whole run, retries included, ends by then.
    pub deadline: Duration,
    /// Limit of one One-Frame call.
    pub request_timeout: Duration,
    pub backoff: Backoff,
    /// How often refreshes are scheduled: retries keep one call per
    /// remaining slot of the day in reserve.
    pub schedule_interval: Duration,
}

/// A successful run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    pub seq: u64,
    pub outcome: WriteOutcome,
    pub attempts: u32,
    pub calls_today: u64,
}

/// A failed run, by what an operator must do about it.
#[derive(Debug)]
pub enum RefreshError {
    /// The token was refused: fix the Secret.
    Auth(String),
    /// One-Frame rejects our request (e.g. a currency it does not serve).
    Config(String),
    /// No call may be made today: our budget or One-Frame's quota is spent.
    QuotaExhausted(String),
    /// Worth retrying at the next scheduled run.
    Transient(String),
}

impl RefreshError {
    /// The process exit code (refresher/README.md, "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            RefreshError::Transient(_) => 1,
            RefreshError::Config(_) => 2,
            RefreshError::Auth(_) => 3,
            RefreshError::QuotaExhausted(_) => 4,
        }
    }
}

impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshError::Auth(m) => write!(f, "authentication failed: {m}"),
            RefreshError::Config(m) => write!(f, "configuration error: {m}"),
            RefreshError::QuotaExhausted(m) => write!(f, "quota exhausted: {m}"),
            RefreshError::Transient(m) => write!(f, "refresh failed: {m}"),
        }
    }
}

/// A Valkey failure as a step: refused credentials or permissions, and TLS
/// failures (an untrusted or wrong certificate, TLS on one side only), are
/// the operator's to fix (exit 2 at once); anything else may pass with a
/// retry.
fn valkey_step(valkey: &Valkey, what: &str, e: redis::RedisError) -> Step {
    let refused = e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
    if refused {
        Step::Stop(RefreshError::Config(format!(
            "Valkey {what} was refused ({e}): check the user and password of VALKEY_URL and that user's ACL"
        )))
    } else if let Some(cause) = valkey.tls_cause(&e) {
        Step::Stop(RefreshError::Config(format!(
            "Valkey {what} at {} failed: {cause}",
            valkey.redacted()
        )))
    } else {
        Step::Retry(
            Cause::Valkey,
            format!("Valkey {what} failed: {}", valkey.describe(&e)),
        )
    }
}

/// Truncates to whole milliseconds: snapshots carry millisecond times.
fn millis(t: Timestamp) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis())
}

impl<C: Clock> Refresher<C> {
    /// One run, as `refresher once` does it, recorded in Valkey
    /// ([`last_run`]). Each run opens its own Valkey connection, so a Valkey
    /// restart between runs needs no handling.
    pub async fn refresh(&self) -> Result<Refreshed, RefreshError> {
        let mut conn: Option<Primary> = None;
        let result = self.attempts(&mut conn).await;
        self.record(&mut conn, &result).await;
        result
    }

    /// Records how the run ended; a failure to do so is logged, and changes
    /// neither the run's result nor its exit code.
    async fn record(&self, conn: &mut Option<Primary>, result: &Result<Refreshed, RefreshError>) {
        let outcome = match result {
            Ok(_) => last_run::Outcome::Stored,
            Err(e) => last_run::Outcome::from_exit_code(e.exit_code()),
        };
        let at = self.clock.now();
        let written = match self.connection(conn).await {
            Ok(c) => match self
                .clock
                .timeout(self.connect_timeout, last_run::record(&mut c.conn, at, outcome))
                .await
            {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", self.connect_timeout),
            },
            Err(Step::Retry(_, why) | Step::HeldBack(why)) => why,
            Err(Step::Stop(e)) => e.to_string(),
        };
        tracing::warn!(
            "the run's outcome ({}) was not recorded in Valkey key {}: {written}",
            outcome.name(),
            last_run::LAST_RUN_KEY
        );
    }

    async fn attempts(&self, conn: &mut Option<Primary>) -> Result<Refreshed, RefreshError> {
        let started = self.clock.now();
        let ends = started.plus(self.deadline);
        let mut rng = rand::rng();
        let mut attempt: u32 = 0;
        // One-Frame calls this run was permitted: only the first is free of
        // the reserve kept for the rest of the day's schedule.
        let mut calls: u32 = 0;
        let mut last_error = String::new();
        loop {
            attempt += 1;
            let result = self.attempt(conn, attempt, &mut calls, ends).await;
            match result {
                Ok(r) => return Ok(r),
                Err(Step::Stop(e)) => return Err(e),
                Err(Step::HeldBack(why)) => {
                    return Err(RefreshError::Transient(format!("{last_error}; {why}")));
                }
                Err(Step::Retry(cause, msg)) => {
                    tracing::warn!(attempt, "attempt {attempt} failed: {msg}");
                    if cause == Cause::Valkey {
                        *conn = None;
                    }
                    last_error = msg;
                }
            }
            let delay = self.backoff.delay(attempt, &mut rng);
            if self.clock.now().plus(delay) >= ends {
                return Err(RefreshError::Transient(format!(
                    "gave up after {attempt} attempt(s) within the {:?} deadline; last error: {last_error}",
                    self.deadline
                )));
            }
            self.clock.sleep(delay).await;
        }
    }

    async fn connection<'c>(&self, slot: &'c mut Option<Primary>) -> Result<&'c mut Primary, Step> {
        if slot.is_none() {
            let response_limit = self.connect_timeout.max(Duration::from_secs(2));
            let (conn, node) = match self
                .valkey
                .connect_node(self.connect_timeout, response_limit)
                .await
            {
                Ok(c) => c,
                Err(ConnectError::Config(why)) => return Err(Step::Stop(RefreshError::Config(why))),
                Err(ConnectError::Unavailable(why)) => return Err(Step::Retry(Cause::Valkey, why)),
            };
            *slot = Some(Primary { conn, node });
        }
        Ok(slot.as_mut().expect("connected above"))
    }

    /// One call and its write, on the connection in `slot` (made, or made
    /// again after a failure, to whichever node is primary now).
    async fn attempt(
        &self,
        slot: &mut Option<Primary>,
        attempt: u32,
        calls: &mut u32,
        ends: Timestamp,
    ) -> Result<Refreshed, Step> {
        let primary = self.connection(slot).await?;
        let now = self.clock.now();
        // A run's first call is the scheduled one; retries must leave enough
        // budget for the rest of the day's schedule.
        let reserve = if *calls == 0 {
            0
        } else {
            quota::reserve_for_schedule(now, self.schedule_interval)
        };
        let permit = self
            .quota
            .acquire(&mut primary.conn, now, reserve)
            .await
            .map_err(|e| valkey_step(&self.valkey, "quota check", e))?;
        let Some(permit) = permit else {
            if reserve > 0 {
                return Err(Step::HeldBack(format!(
                    "no retry: the remaining budget is kept for the {reserve} refreshes still scheduled today"
                )));
            }
            return Err(Step::Stop(RefreshError::QuotaExhausted(format!(
                "today's budget of {} One-Frame calls (UTC day) is spent",
                self.quota.budget()
            ))));
        };
        *calls += 1;
        // The count must survive a failover before the call is made: a
        // count the old primary took but never replicated would let the
        // next primary hand out the same calls again.
        self.replicated(primary, "the day's call count", ": no One-Frame call")
            .await?;

        let left = ends.since(now);
        let limit = self.request_timeout.min(left);
        let fetched = self
            .clock
            .timeout(limit, self.client.fetch(&self.pairs, || self.clock.now()))
            .await
            .map_err(|_| {
                Step::Retry(
                    Cause::OneFrame,
                    format!("One-Frame did not answer within {limit:?}"),
                )
            })?;
        let quotes = match fetched {
            Ok(q) => q,
            Err(FetchError::Answer(AnswerError::Forbidden)) => {
                return Err(Step::Stop(RefreshError::Auth(
                    "One-Frame answered Forbidden: check ONE_FRAME_TOKEN".into(),
                )));
            }
            Err(FetchError::Answer(AnswerError::QuotaReached)) => {
                let _ = self.quota.mark_exhausted(&mut primary.conn, now).await;
                return Err(Step::Stop(RefreshError::QuotaExhausted(
                    "One-Frame answered Quota reached; no more calls until the next UTC day".into(),
                )));
            }
            Err(FetchError::Answer(AnswerError::Upstream(m)))
                if m == shared::one_frame::messages::INVALID_PAIR =>
            {
                return Err(Step::Stop(RefreshError::Config(format!(
                    "One-Frame answered {m:?}: it does not serve one of --currencies"
                ))));
            }
            Err(e) => return Err(Step::Retry(Cause::OneFrame, e.to_string())),
        };

        let fetched_at = millis(self.clock.now());
        // From here on the call is spent; only the write is retried, on a
        // new connection after a Valkey failure (a failover may have named
        // another primary).
        let mut write_attempt = 0;
        loop {
            write_attempt += 1;
            let written = match self.connection(slot).await {
                Ok(c) => self.store_snapshot(c, fetched_at, &quotes).await,
                Err(step) => Err(step),
            };
            match written {
                Ok((seq, outcome)) => {
                    return Ok(Refreshed {
                        seq,
                        outcome,
                        attempts: attempt,
                        calls_today: permit.used_today,
                    });
                }
                Err(Step::Stop(e)) => return Err(Step::Stop(e)),
                Err(Step::Retry(cause, e)) => {
                    if cause == Cause::Valkey {
                        *slot = None;
                    }
                    let delay = self.backoff.delay(write_attempt, &mut rand::rng());
                    if self.clock.now().plus(delay) >= ends {
                        return Err(Step::Stop(RefreshError::Transient(format!(
                            "fetched rates but could not store them: {e}"
                        ))));
                    }
                    tracing::warn!("storing the snapshot failed, retrying: {e}");
                    self.clock.sleep(delay).await;
                }
                Err(Step::HeldBack(e)) => return Err(Step::Stop(RefreshError::Transient(e))),
            }
        }
    }

    async fn store_snapshot(
        &self,
        primary: &mut Primary,
        fetched_at: Timestamp,
        quotes: &[shared::Quote],
    ) -> Result<(u64, WriteOutcome), Step> {
        let conn = &mut primary.conn;
        let seq = self
            .store
            .next_seq(conn)
            .await
            .map_err(|e| valkey_step(&self.valkey, &format!("INCR {SEQ_KEY}"), e))?;
        let snapshot = Snapshot::new(seq, fetched_at, quotes.to_vec())
            .map_err(|e| Step::Retry(Cause::Snapshot, e.to_string()))?;
        let outcome = self
            .store
            .write_if_newer(conn, &snapshot)
            .await
            .map_err(|e| valkey_step(&self.valkey, "snapshot write", e))?;
        // Not believed until a replica holds it: a primary cut off from its
        // replicas (and about to be replaced) may still take the write.
        self.replicated(primary, "the snapshot", "").await?;
        Ok((seq, outcome))
    }

    /// Whether what `primary` wrote last (`what`) is held by the replicas
    /// the Valkey settings ask for, on the node the Sentinels still name the
    /// primary; if not, a retry on a new connection.
    async fn replicated(&self, primary: &mut Primary, what: &str, then: &str) -> Result<(), Step> {
        self.valkey
            .acknowledged(&mut primary.conn, &primary.node, self.connect_timeout)
            .await
            .map_err(|e| {
                Step::Retry(
                    Cause::Valkey,
                    format!("{what} is not yet on a replica ({e}){then}"),
                )
            })
    }
}

/// The run's connection, and the `host:port` of the node it reached (the
/// primary, when it was made).
struct Primary {
    conn: MultiplexedConnection,
    node: String,
}

enum Step {
    /// Worth another attempt within the run's deadline.
    Retry(Cause, String),
    /// A retry would spend a call the rest of today's schedule needs.
    HeldBack(String),
    Stop(RefreshError),
}

/// What failed in a retried attempt: a Valkey failure drops the connection
/// so the next attempt opens a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Valkey,
    OneFrame,
    Snapshot,
}
