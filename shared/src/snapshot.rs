//! The schema-1 snapshot stored in Valkey under `rates` (docs/edge.md, "The Valkey contract").
//!
//! Decoding is strict: a reader keeps what it had rather than accept a
//! snapshot with an unknown schema, a bad price or a duplicate pair.

use crate::currency::Currency;
use crate::pair::Pair;
use crate::quote::{Quote, QuoteError};
use crate::rates::{self, LookupError, Rate};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// The only schema this code reads and writes.
pub const SCHEMA: u32 = 1;

/// Upper bound on an encoded snapshot a reader accepts (all ISO pairs fit
/// in well under 64 KiB; this stops a corrupt value from costing memory).
pub const MAX_ENCODED_LEN: usize = 1 << 20;

/// A consistent set of USD quotes from one One-Frame call.
#[derive(Clone, PartialEq, Debug)]
pub struct Snapshot {
    /// From `INCR rates:seq`; breaks ties between equal `fetched_at`.
    pub seq: u64,
    /// When the refresher received the quotes.
    pub fetched_at: Timestamp,
    /// Every quote is `USD → to`, each `to` once.
    pub quotes: Vec<Quote>,
}

/// Why bytes are not a valid snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotError {
    TooLarge(usize),
    Json(String),
    UnknownSchema(u64),
    UnsupportedBase(Currency),
    NotABaseLeg(Pair),
    DuplicatePair(Pair),
    Empty,
    Quote(QuoteError),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::TooLarge(n) => {
                write!(f, "snapshot is {n} bytes, over the {MAX_ENCODED_LEN}-byte limit")
            }
            SnapshotError::Json(e) => write!(f, "snapshot is not valid schema-1 JSON: {e}"),
            SnapshotError::UnknownSchema(s) => write!(
                f,
                "snapshot has schema {s}; this reader understands schema {SCHEMA}"
            ),
            SnapshotError::UnsupportedBase(c) => write!(f, "snapshot base is {c}; only USD is supported"),
            SnapshotError::NotABaseLeg(p) => {
                write!(f, "snapshot quote {p} does not start from the base currency")
            }
            SnapshotError::DuplicatePair(p) => write!(f, "snapshot quotes {p} more than once"),
            SnapshotError::Empty => write!(f, "snapshot has no quotes"),
            SnapshotError::Quote(e) => write!(f, "snapshot quote is invalid: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSnapshot {
    schema: u64,
    seq: u64,
    fetched_at: Timestamp,
    base: Currency,
    quotes: Vec<WireQuote>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireQuote {
    from: Currency,
    to: Currency,
    bid: f64,
    ask: f64,
    price: f64,
    time_stamp: Timestamp,
}

/// Read first, so that a future schema is reported as such rather than as
/// an unknown field.
#[derive(Deserialize)]
struct SchemaOnly {
    schema: u64,
}

impl Snapshot {
    /// Builds a snapshot, applying the same checks as [`Snapshot::decode`].
    pub fn new(seq: u64, fetched_at: Timestamp, quotes: Vec<Quote>) -> Result<Snapshot, SnapshotError> {
        let s = Snapshot {
            seq,
            fetched_at,
            quotes,
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), SnapshotError> {
        if self.quotes.is_empty() {
            return Err(SnapshotError::Empty);
        }
        let mut seen = HashSet::with_capacity(self.quotes.len());
        for q in &self.quotes {
            if q.pair.from != Currency::USD {
                return Err(SnapshotError::NotABaseLeg(q.pair));
            }
            q.validate().map_err(SnapshotError::Quote)?;
            if !seen.insert(q.pair) {
                return Err(SnapshotError::DuplicatePair(q.pair));
            }
        }
        Ok(())
    }

    /// Strict decoding of schema 1.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(SnapshotError::TooLarge(bytes.len()));
        }
        let schema: SchemaOnly =
            serde_json::from_slice(bytes).map_err(|e| SnapshotError::Json(e.to_string()))?;
        if schema.schema != u64::from(SCHEMA) {
            return Err(SnapshotError::UnknownSchema(schema.schema));
        }
        let wire: WireSnapshot =
            serde_json::from_slice(bytes).map_err(|e| SnapshotError::Json(e.to_string()))?;
        if wire.base != Currency::USD {
            return Err(SnapshotError::UnsupportedBase(wire.base));
        }
        let quotes = wire
            .quotes
            .into_iter()
            .map(|q| Quote {
                pair: Pair::new(q.from, q.to),
                bid: q.bid,
                ask: q.ask,
                price: q.price,
                time_stamp: q.time_stamp,
            })
            .collect();
        Snapshot::new(wire.seq, wire.fetched_at, quotes)
    }

    /// Schema-1 JSON.
    pub fn encode(&self) -> Vec<u8> {
        let wire = WireSnapshot {
            schema: u64::from(SCHEMA),
            seq: self.seq,
            fetched_at: self.fetched_at,
            base: Currency::USD,
            quotes: self
                .quotes
                .iter()
                .map(|q| WireQuote {
                    from: q.pair.from,
                    to: q.pair.to,
                    bid: q.bid,
                    ask: q.ask,
                    price: q.price,
                    time_stamp: q.time_stamp,
                })
                .collect(),
        };
        serde_json::to_vec(&wire).expect("a validated snapshot always serialises")
    }

    /// The snapshot order: a later `fetched_at` wins, `seq` breaks ties.
    /// Compare versions, not `seq` alone: Valkey may restart its counter.
    pub fn version(&self) -> (Timestamp, u64) {
        (self.fetched_at, self.seq)
    }

    pub fn is_newer_than(&self, other: &Snapshot) -> bool {
        self.version() > other.version()
    }

    /// The `USD → c` quote, if the snapshot has it.
    pub fn usd_leg(&self, c: Currency) -> Option<&Quote> {
        self.quotes.iter().find(|q| q.pair.to == c)
    }

    /// The time of the oldest quote: the snapshot is as fresh as this.
    pub fn oldest_quote(&self) -> Timestamp {
        self.quotes
            .iter()
            .map(|q| q.time_stamp)
            .min()
            .unwrap_or(self.fetched_at)
    }

    /// The rate for any pair of currencies, derived through USD.
    pub fn rate(&self, pair: Pair) -> Result<Rate, LookupError> {
        rates::derive(pair, self.fetched_at, |c| {
            self.usd_leg(c).map(|q| (q.price, q.time_stamp))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn quote(to: &str, price: f64, ts: &str) -> Quote {
        Quote {
            pair: Pair::new(Currency::USD, Currency::parse(to).unwrap()),
            bid: price * 0.99,
            ask: price * 1.01,
            price,
            time_stamp: Timestamp::parse(ts).unwrap(),
        }
    }

    pub(crate) fn sample() -> Snapshot {
        Snapshot::new(
            42,
            Timestamp::parse("2026-11-24T10:00:00.123Z").unwrap(),
            vec![
                quote("JPY", 150.25, "2026-11-24T10:00:00.100Z"),
                quote("EUR", 0.92, "2026-11-24T10:00:00.100Z"),
                quote("GBP", 0.79, "2026-11-24T09:59:00Z"),
            ],
        )
        .unwrap()
    }

    #[test]
    fn decodes_the_design_example() {
        let json = br#"{"schema":1,"seq":42,"fetched_at":"2026-11-24T10:00:00.123Z","base":"USD",
            "quotes":[{"from":"USD","to":"JPY","bid":0.61,"ask":0.82,"price":0.71,"time_stamp":"2026-11-24T10:00:00.100Z"}]}"#;
        let s = Snapshot::decode(json).unwrap();
        assert_eq!(s.seq, 42);
        assert_eq!(s.quotes.len(), 1);
        assert_eq!(s.quotes[0].price, 0.71);
    }

    fn with_first_quote(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().encode()).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn rejects_unknown_schema_bad_prices_and_duplicates() {
        let e = Snapshot::decode(&with_first_quote(|v| v["schema"] = 2.into())).unwrap_err();
        assert_eq!(e, SnapshotError::UnknownSchema(2));
        for bad in [
            serde_json::json!(0.0),
            serde_json::json!(-1.5),
            serde_json::json!("NaN"),
            serde_json::json!(null),
        ] {
            let b = with_first_quote(|v| v["quotes"][0]["price"] = bad.clone());
            assert!(Snapshot::decode(&b).is_err(), "price {bad} accepted");
        }
        let dup = with_first_quote(|v| {
            let q = v["quotes"][0].clone();
            v["quotes"].as_array_mut().unwrap().push(q);
        });
        assert!(matches!(
            Snapshot::decode(&dup),
            Err(SnapshotError::DuplicatePair(_))
        ));
        let not_usd = with_first_quote(|v| v["quotes"][0]["from"] = "EUR".into());
        assert!(matches!(
            Snapshot::decode(&not_usd),
            Err(SnapshotError::NotABaseLeg(_))
        ));
        let base = with_first_quote(|v| v["base"] = "EUR".into());
        assert!(matches!(
            Snapshot::decode(&base),
            Err(SnapshotError::UnsupportedBase(_))
        ));
        let extra = with_first_quote(|v| v["extra"] = 1.into());
        assert!(matches!(Snapshot::decode(&extra), Err(SnapshotError::Json(_))));
        let empty = with_first_quote(|v| v["quotes"] = serde_json::json!([]));
        assert_eq!(Snapshot::decode(&empty), Err(SnapshotError::Empty));
        let bad_ts = with_first_quote(|v| v["quotes"][0]["time_stamp"] = "yesterday".into());
        assert!(matches!(Snapshot::decode(&bad_ts), Err(SnapshotError::Json(_))));
    }

    #[test]
    fn non_finite_numbers_cannot_be_encoded_into_a_snapshot() {
        let q = Quote {
            price: f64::INFINITY,
            ..quote("JPY", 1.0, "2026-11-24T10:00:00Z")
        };
        assert!(Snapshot::new(1, Timestamp::EPOCH, vec![q]).is_err());
    }

    #[test]
    fn newer_means_later_fetch_then_higher_seq() {
        let a = sample();
        let mut b = a.clone();
        b.seq = 1; // Valkey lost its data and restarted the counter...
        b.fetched_at = a.fetched_at.plus(std::time::Duration::from_millis(1));
        assert!(b.is_newer_than(&a), "...but a later fetch still wins");
        let mut c = a.clone();
        c.seq = a.seq + 1;
        assert!(c.is_newer_than(&a));
        assert!(!a.is_newer_than(&a));
    }

    prop_compose! {
        pub(crate) fn arb_snapshot()(
            seq in any::<u64>(),
            fetched in 0i64..4_000_000_000_000_000_000,
            legs in proptest::collection::btree_map(0usize..Currency::COUNT, (1e-6f64..1e6, 0.0f64..1.0, 0.0f64..1.0, 0i64..4_000_000_000_000_000_000), 1..20),
        ) -> Snapshot {
            let quotes = legs.into_iter()
                .filter(|(i, _)| Currency::from_index(*i) != Some(Currency::USD))
                .map(|(i, (price, bid, ask, ts))| Quote {
                    pair: Pair::new(Currency::USD, Currency::from_index(i).unwrap()),
                    bid, ask, price, time_stamp: Timestamp::from_unix_nanos(ts),
                })
                .collect::<Vec<_>>();
            let quotes = if quotes.is_empty() { vec![quote("JPY", 1.0, "2026-01-01T00:00:00Z")] } else { quotes };
            Snapshot::new(seq, Timestamp::from_unix_nanos(fetched), quotes).unwrap()
        }
    }

    proptest! {
        #[test]
        fn codec_round_trips(s in arb_snapshot()) {
            prop_assert_eq!(Snapshot::decode(&s.encode()), Ok(s));
        }

        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Snapshot::decode(&b);
        }

        #[test]
        fn decoder_never_panics_on_mutated_snapshots(s in arb_snapshot(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut b = s.encode();
            let i = at.index(b.len());
            b[i] = byte;
            let _ = Snapshot::decode(&b);
        }
    }
}
