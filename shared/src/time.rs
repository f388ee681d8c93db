//! UTC timestamps with nanosecond precision, One-Frame's `time_stamp` format
//! and RFC 3339 output. No time-zone database and no I/O: the caller supplies
//! "now".

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant, nanoseconds since the Unix epoch (years 1970–2262).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(i64);

/// Why a string is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError(String);

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a UTC timestamp like 2026-11-24T10:00:00.123Z",
            self.0
        )
    }
}

impl std::error::Error for TimestampError {}

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(n: i64) -> Timestamp {
        Timestamp(n)
    }

    /// From milliseconds since the Unix epoch (saturating).
    pub const fn from_unix_millis(ms: i64) -> Timestamp {
        Timestamp(ms.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// Milliseconds since the Unix epoch, rounded down.
    pub const fn unix_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Whole seconds since the Unix epoch, rounded down.
    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }

    /// Converts a system time (clamped to the representable range).
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        )
    }

    /// `self - d`, saturating.
    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        )
    }

    /// How long after `earlier` this instant is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        let d = self.0.saturating_sub(earlier.0);
        Duration::from_nanos(u64::try_from(d).unwrap_or(0))
    }

    /// The UTC calendar date, as `(year, month, day)`.
    pub fn date(self) -> (i64, u32, u32) {
        civil_from_days(self.0.div_euclid(NANOS_PER_SEC * SECS_PER_DAY))
    }

    /// The UTC date as `YYYY-MM-DD` (the quota counter's day).
    pub fn utc_day(self) -> String {
        let (y, m, d) = self.date();
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// The first instant of the next UTC day.
    pub fn next_utc_midnight(self) -> Timestamp {
        let day = self.0.div_euclid(NANOS_PER_SEC * SECS_PER_DAY);
        Timestamp((day + 1) * NANOS_PER_SEC * SECS_PER_DAY)
    }

    /// Parses One-Frame's `time_stamp` and RFC 3339 UTC timestamps:
    /// `YYYY-MM-DDTHH:MM:SS`, then 0–9 fractional digits, then an optional `Z`
    /// (One-Frame's documentation omits it; its server sends it).
    pub fn parse(s: &str) -> Result<Timestamp, TimestampError> {
        parse_inner(s.as_bytes()).ok_or_else(|| TimestampError(crate::currency::truncate_for_message(s)))
    }

    /// RFC 3339 in UTC with `Z`, with 3, 6 or 9 fractional digits: the fewest
    /// that represent the instant exactly (milliseconds at the least).
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let (y, mo, d) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        let sod = secs.rem_euclid(SECS_PER_DAY);
        let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")?;
        if nanos % 1_000_000 == 0 {
            write!(f, ".{:03}Z", nanos / 1_000_000)
        } else if nanos % 1_000 == 0 {
            write!(f, ".{:06}Z", nanos / 1_000)
        } else {
            write!(f, ".{nanos:09}Z")
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
}

fn parse_inner(b: &[u8]) -> Option<Timestamp> {
    let b = b.strip_suffix(b"Z").unwrap_or(b);
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let frac = &b[19..];
    let nanos = match frac {
        [] => 0,
        [b'.', rest @ ..] if rest.len() <= 9 => {
            if rest.is_empty() {
                return None;
            }
            digits(rest)? * 10i64.pow(9 - rest.len() as u32)
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month as u32)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos).map(Timestamp)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-date algorithms (public domain), proleptic Gregorian.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn parses_one_frame_server_format() {
        let t = ts("2022-01-11T07:47:42.74Z");
        assert_eq!(t.unix_millis(), 1_641_887_262_740);
        assert_eq!(t.to_rfc3339(), "2022-01-11T07:47:42.740Z");
    }

    #[test]
    fn parses_documented_format_without_zone_and_any_precision() {
        assert_eq!(ts("2019-01-01T00:00:00.000"), ts("2019-01-01T00:00:00Z"));
        assert_eq!(ts("2019-01-01T00:00:00").unix_secs(), 1_546_300_800);
        assert_eq!(
            ts("2019-01-01T00:00:00.123456789Z").unix_nanos() % NANOS_PER_SEC,
            123_456_789
        );
        assert_eq!(
            ts("2019-01-01T00:00:00.5").unix_nanos() % NANOS_PER_SEC,
            500_000_000
        );
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for s in [
            "",
            "2019-01-01",
            "2019-01-01 00:00:00Z",
            "2019-01-01T00:00:00.Z",
            "2019-01-01T00:00:00.1234567890Z",
            "2019-13-01T00:00:00Z",
            "2019-02-29T00:00:00Z",
            "2019-01-01T24:00:00Z",
            "2019-01-01T00:60:00Z",
            "2019-01-01T00:00:60Z",
            "2019-01-01T00:00:00ZZ",
            "2019-01-01T00:00:00+01:00",
            "+019-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            assert!(Timestamp::parse(s).is_err(), "{s:?} should be rejected");
        }
        assert!(Timestamp::parse("2020-02-29T00:00:00Z").is_ok(), "leap day");
    }

    #[test]
    fn formats_with_the_fewest_exact_fraction_digits() {
        assert_eq!(
            ts("2026-11-24T10:00:00Z").to_rfc3339(),
            "2026-11-24T10:00:00.000Z"
        );
        assert_eq!(
            ts("2026-11-24T10:00:00.1234Z").to_rfc3339(),
            "2026-11-24T10:00:00.123400Z"
        );
        assert_eq!(
            ts("2026-11-24T10:00:00.000000001Z").to_rfc3339(),
            "2026-11-24T10:00:00.000000001Z"
        );
    }

    #[test]
    fn utc_day_and_next_midnight() {
        let t = ts("2026-11-24T23:59:59.999Z");
        assert_eq!(t.utc_day(), "2026-11-24");
        assert_eq!(t.next_utc_midnight(), ts("2026-11-25T00:00:00Z"));
        assert_eq!(
            ts("2026-11-25T00:00:00Z").next_utc_midnight(),
            ts("2026-11-26T00:00:00Z")
        );
    }

    #[test]
    fn since_saturates_at_zero() {
        let a = ts("2026-11-24T10:00:00Z");
        let b = a.plus(Duration::from_secs(5));
        assert_eq!(b.since(a), Duration::from_secs(5));
        assert_eq!(a.since(b), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(n in 0i64..i64::MAX) {
            let t = Timestamp::from_unix_nanos(n);
            prop_assert_eq!(Timestamp::parse(&t.to_rfc3339()), Ok(t));
        }

        #[test]
        fn civil_conversion_round_trips(days in 0i64..106_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = Timestamp::parse(&s);
        }
    }
}
