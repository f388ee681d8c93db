//! Writing snapshots: `seq` from `INCR rates:seq`, then one atomic script
//! that stores the snapshot only if it is newer than the stored one
//! (later `fetched_at`, then higher `seq`) and publishes its `seq`. A crash at any point leaves
//! either the old or the new complete snapshot.

use redis::aio::MultiplexedConnection;

pub const SEQ_KEY: &str = "rates:seq";

/// KEYS[1] = rates key; ARGV = snapshot JSON, its order key, its seq, channel.
/// Returns 1 when written (and published), 0 when a newer snapshot is kept.
const WRITE_IF_NEWER: &str = r"
local function order_key(ts)
  if type(ts) ~= 'string' then return nil end
  local y, mo, d, h, mi, s, frac =
    string.match(ts, '^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)%.?(%d*)Z?$')
  if not y or string.len(frac) > 9 then return nil end
  return y .. mo .. d .. h .. mi .. s .. string.sub(frac .. '000000000', 1, 9)
end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' then
    local cur_key = order_key(doc['fetched_at'])
    local cur_seq = tonumber(doc['seq'])
    if cur_key and cur_seq then
      if cur_key > ARGV[2] or (cur_key == ARGV[2] and cur_seq >= tonumber(ARGV[3])) then
        return 0
      end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[3])
return 1
";

/// Where snapshots go and who hears about them.
pub struct SnapshotStore {
    rates_key: String,
    channel: String,
    script: redis::Script,
}

/// The fixed-width form of `fetched_at` the script compares.
pub fn order_key(ts: shared::Timestamp) -> String {
    let s = ts.to_rfc3339();
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    // YYYYMMDDhhmmss then the fraction padded to nanoseconds.
    format!("{:0<23}", digits)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// A newer snapshot is already stored; it is kept.
    KeptNewer,
}

impl SnapshotStore {
    pub fn new(rates_key: String, channel: String) -> SnapshotStore {
        SnapshotStore {
            rates_key,
            channel,
            script: redis::Script::new(WRITE_IF_NEWER),
        }
    }

    pub fn rates_key(&self) -> &str {
        &self.rates_key
    }

    pub async fn next_seq(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<u64> {
        redis::cmd("INCR").arg(SEQ_KEY).query_async(conn).await
    }

    pub async fn write_if_newer(
        &self,
        conn: &mut MultiplexedConnection,
        snapshot: &shared::Snapshot,
    ) -> redis::RedisResult<WriteOutcome> {
        let written: i64 = self
            .script
            .key(&self.rates_key)
            .arg(snapshot.encode())
            .arg(order_key(snapshot.fetched_at))
            .arg(snapshot.seq)
            .arg(&self.channel)
            .invoke_async(conn)
            .await?;
        Ok(if written == 1 {
            WriteOutcome::Written
        } else {
            WriteOutcome::KeptNewer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::order_key;
    use shared::Timestamp;

    #[test]
    fn order_keys_sort_like_timestamps() {
        let k = |s| order_key(Timestamp::parse(s).unwrap());
        assert_eq!(k("2026-11-24T10:00:00.1Z"), "20261124100000100000000");
        assert!(k("2026-11-24T10:00:00.123Z") < k("2026-11-24T10:00:00.1234Z"));
        assert!(k("2026-11-24T09:59:59.999999999Z") < k("2026-11-24T10:00:00Z"));
    }
}
