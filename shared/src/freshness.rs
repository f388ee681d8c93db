//! The freshness promise: a rate older than `max_rate_age` is never served.

use crate::time::Timestamp;
use std::time::Duration;

/// The service's promise: five minutes.
pub const DEFAULT_MAX_RATE_AGE: Duration = Duration::from_secs(300);

/// How old the edge lets its cached rates grow before it reads Valkey again,
/// so that a snapshot whose `rates_updated` message was lost still arrives
/// before they turn [`DEFAULT_MAX_RATE_AGE`] old.
pub const DEFAULT_REVALIDATE_AGE: Duration = Duration::from_secs(250);

/// How old a rate stamped `timestamp` is at `now` (zero if it is stamped in
/// the future).
pub fn age(timestamp: Timestamp, now: Timestamp) -> Duration {
    now.since(timestamp)
}

/// Whether a rate may still be served.
pub fn is_fresh(timestamp: Timestamp, now: Timestamp, max_rate_age: Duration) -> bool {
    age(timestamp, now) <= max_rate_age
}

/// Whole seconds left before the rate turns `max_rate_age` old (rounded
/// down, so a cache honouring it never holds a stale rate); `None` once it is
/// stale.
pub fn seconds_left(timestamp: Timestamp, now: Timestamp, max_rate_age: Duration) -> Option<u64> {
    max_rate_age.checked_sub(age(timestamp, now)).map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_to_stale() {
        let t = Timestamp::parse("2026-11-24T10:00:00Z").unwrap();
        let max = DEFAULT_MAX_RATE_AGE;
        let at = |s: u64, ms: u64| t.plus(Duration::from_secs(s) + Duration::from_millis(ms));
        assert_eq!(seconds_left(t, at(0, 0), max), Some(300));
        assert_eq!(seconds_left(t, at(0, 1), max), Some(299));
        assert_eq!(seconds_left(t, at(299, 999), max), Some(0));
        assert_eq!(seconds_left(t, at(300, 0), max), Some(0));
        assert!(is_fresh(t, at(300, 0), max));
        assert_eq!(seconds_left(t, at(300, 1), max), None);
        assert!(!is_fresh(t, at(300, 1), max));
    }

    #[test]
    fn future_stamps_count_as_new() {
        let t = Timestamp::parse("2026-11-24T10:00:10Z").unwrap();
        let now = Timestamp::parse("2026-11-24T10:00:00Z").unwrap();
        assert_eq!(age(t, now), Duration::ZERO);
        assert_eq!(seconds_left(t, now, DEFAULT_MAX_RATE_AGE), Some(300));
    }
}
