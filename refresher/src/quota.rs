//! The quota guard: One-Frame allows a fixed number of calls per token per
//! day, and every refresher run (CronJob pods, local loops) shares it. The
//! count lives in Valkey under `oneframe:calls:<YYYY-MM-DD>` (UTC) and a call
//! is counted *before* it is made, so a crash never under-counts.

use redis::aio::MultiplexedConnection;
use shared::Timestamp;
use std::time::Duration;

/// Kept two days so that yesterday's count is still there for inspection.
const KEY_TTL_SECS: u64 = 2 * 24 * 3600;

/// Takes one call from today's budget unless that would leave fewer than
/// `reserve` calls for later. Returns the new count, or -1 when refused.
const ACQUIRE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + 1 + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return -1 end
used = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return used
";

/// One-Frame said `Quota reached`: mark today's budget as spent.
const EXHAUST: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
";

/// The per-UTC-day One-Frame call budget, shared through Valkey.
pub struct QuotaGuard {
    budget: u64,
    acquire: redis::Script,
    exhaust: redis::Script,
}

/// A permitted call: the count including it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    pub used_today: u64,
}

pub fn key(now: Timestamp) -> String {
    format!("oneframe:calls:{}", now.utc_day())
}

impl QuotaGuard {
    pub fn new(budget: u64) -> QuotaGuard {
        QuotaGuard {
            budget,
            acquire: redis::Script::new(ACQUIRE),
            exhaust: redis::Script::new(EXHAUST),
        }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Counts one call against today's budget, keeping `reserve` calls
    /// untouched; `None` when the call must not be made.
    pub async fn acquire(
        &self,
        conn: &mut MultiplexedConnection,
        now: Timestamp,
        reserve: u64,
    ) -> redis::RedisResult<Option<Permit>> {
        let n: i64 = self
            .acquire
            .key(key(now))
            .arg(self.budget)
            .arg(reserve)
            .arg(KEY_TTL_SECS)
            .invoke_async(conn)
            .await?;
        Ok(u64::try_from(n).ok().map(|used_today| Permit { used_today }))
    }

    /// Records One-Frame's `Quota reached`: no refresher calls again today.
    pub async fn mark_exhausted(
        &self,
        conn: &mut MultiplexedConnection,
        now: Timestamp,
    ) -> redis::RedisResult<()> {
        let _: i64 = self
            .exhaust
            .key(key(now))
            .arg(self.budget)
            .arg(KEY_TTL_SECS)
            .invoke_async(conn)
            .await?;
        Ok(())
    }

    /// Calls counted today.
    pub async fn used(&self, conn: &mut MultiplexedConnection, now: Timestamp) -> redis::RedisResult<u64> {
        let n: Option<u64> = redis::cmd("GET").arg(key(now)).query_async(conn).await?;
        Ok(n.unwrap_or(0))
    }
}

/// Calls to keep for the scheduled refreshes still due today, so that
/// retries never starve them: one per `interval` until UTC midnight.
pub fn reserve_for_schedule(now: Timestamp, interval: Duration) -> u64 {
    let left = now.next_utc_midnight().since(now);
    left.as_secs().div_ceil(interval.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_one_call_per_remaining_slot() {
        let every = Duration::from_secs(240);
        let t = |s| Timestamp::parse(s).unwrap();
        assert_eq!(reserve_for_schedule(t("2026-11-24T00:00:00Z"), every), 360);
        assert_eq!(reserve_for_schedule(t("2026-11-24T23:56:00Z"), every), 1);
        assert_eq!(reserve_for_schedule(t("2026-11-24T23:59:59Z"), every), 1);
        assert_eq!(reserve_for_schedule(t("2026-11-24T12:00:00Z"), every), 180);
    }

    #[test]
    fn keys_are_per_utc_day() {
        assert_eq!(
            key(Timestamp::parse("2026-11-24T23:59:59Z").unwrap()),
            "oneframe:calls:2026-11-24"
        );
    }
}
