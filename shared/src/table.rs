//! The edge's compact form of a snapshot.
//!
//! `rates-sync` validates a snapshot once and stores it in this binary form;
//! `rates-http` reads it per request without parsing JSON: a fixed header and
//! the USD legs sorted by currency, found by binary search.
//!
//! Layout (little-endian):
//! `b"FXT1" | seq: u64 | fetched_at: i64 ns | count: u16 | count × (currency index: u8, price: f64, time_stamp: i64 ns)`

use crate::currency::Currency;
use crate::pair::Pair;
use crate::rates::{self, LookupError, Rate};
use crate::snapshot::Snapshot;
use crate::time::Timestamp;
use std::fmt;

const MAGIC: &[u8; 4] = b"FXT1";
const HEADER: usize = 4 + 8 + 8 + 2;
const ENTRY: usize = 1 + 8 + 8;

/// A borrowed, validated rate table.
#[derive(Clone, Copy, Debug)]
pub struct RateTable<'a> {
    seq: u64,
    fetched_at: Timestamp,
    entries: &'a [u8],
}

/// Why bytes are not a rate table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError(&'static str);

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid rate table: {}", self.0)
    }
}

impl std::error::Error for TableError {}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Encodes a (validated) snapshot.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let mut legs: Vec<_> = snapshot.quotes.iter().collect();
    legs.sort_by_key(|q| q.pair.to);
    let mut out = Vec::with_capacity(HEADER + legs.len() * ENTRY);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&snapshot.seq.to_le_bytes());
    out.extend_from_slice(&snapshot.fetched_at.unix_nanos().to_le_bytes());
    out.extend_from_slice(&(legs.len() as u16).to_le_bytes());
    for q in legs {
        out.push(q.pair.to.index() as u8);
        out.extend_from_slice(&q.price.to_le_bytes());
        out.extend_from_slice(&q.time_stamp.unix_nanos().to_le_bytes());
    }
    out
}

impl<'a> RateTable<'a> {
    /// Checks the layout and every entry; never panics.
    pub fn decode(b: &'a [u8]) -> Result<RateTable<'a>, TableError> {
        if b.len() < HEADER || &b[..4] != MAGIC {
            return Err(TableError("missing header"));
        }
        let count = usize::from(u16::from_le_bytes([b[20], b[21]]));
        let entries = &b[HEADER..];
        if entries.len() != count * ENTRY {
            return Err(TableError("length does not match entry count"));
        }
        if count == 0 {
            return Err(TableError("no entries"));
        }
        let table = RateTable {
            seq: u64_at(b, 4),
            fetched_at: Timestamp::from_unix_nanos(u64_at(b, 12) as i64),
            entries,
        };
        let mut prev: Option<u8> = None;
        for e in entries.chunks_exact(ENTRY) {
            let c = Currency::from_index(usize::from(e[0])).ok_or(TableError("unknown currency"))?;
            if c == Currency::USD || prev.is_some_and(|p| p >= e[0]) {
                return Err(TableError("entries not sorted and unique"));
            }
            prev = Some(e[0]);
            let price = f64::from_le_bytes(e[1..9].try_into().expect("8 bytes"));
            if !(price.is_finite() && price > 0.0) {
                return Err(TableError("price not finite and positive"));
            }
        }
        Ok(table)
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn fetched_at(&self) -> Timestamp {
        self.fetched_at
    }

    fn entry(&self, i: usize) -> (u8, f64, Timestamp) {
        let e = &self.entries[i * ENTRY..(i + 1) * ENTRY];
        let price = f64::from_le_bytes(e[1..9].try_into().expect("8 bytes"));
        (e[0], price, Timestamp::from_unix_nanos(u64_at(e, 9) as i64))
    }

    fn len(&self) -> usize {
        self.entries.len() / ENTRY
    }

    /// Price and time of `USD → c`.
    pub fn usd_leg(&self, c: Currency) -> Option<(f64, Timestamp)> {
        let key = c.index() as u8;
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (k, price, ts) = self.entry(mid);
            match k.cmp(&key) {
                std::cmp::Ordering::Equal => return Some((price, ts)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    /// The time of the oldest leg: the table is as fresh as this.
    pub fn oldest_quote(&self) -> Timestamp {
        (0..self.len())
            .map(|i| self.entry(i).2)
            .min()
            .unwrap_or(self.fetched_at)
    }

    /// The rate for any pair, derived exactly as [`Snapshot::rate`] does.
    pub fn rate(&self, pair: Pair) -> Result<Rate, LookupError> {
        rates::derive(pair, self.fetched_at, |c| self.usd_leg(c))
    }

    /// The snapshot's place in the snapshot order (see [`Snapshot::version`]).
    pub fn version(&self) -> (Timestamp, u64) {
        (self.fetched_at, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::{arb_snapshot, sample};
    use proptest::prelude::*;

    #[test]
    fn rejects_corrupt_tables() {
        let good = encode(&sample());
        assert!(RateTable::decode(&good).is_ok());
        assert!(RateTable::decode(&good[..good.len() - 1]).is_err());
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(RateTable::decode(&bad_magic).is_err());
        let mut bad_price = good.clone();
        bad_price[HEADER + 1..HEADER + 9].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(RateTable::decode(&bad_price).is_err());
        let mut unsorted = good.clone();
        let (a, b) = (HEADER, HEADER + ENTRY);
        let first: Vec<u8> = unsorted[a..b].to_vec();
        unsorted.copy_within(b..b + ENTRY, a);
        unsorted[b..b + ENTRY].copy_from_slice(&first);
        assert!(RateTable::decode(&unsorted).is_err());
    }

    proptest! {
        #[test]
        fn table_answers_exactly_like_the_snapshot(s in arb_snapshot()) {
            let bytes = encode(&s);
            let t = RateTable::decode(&bytes).unwrap();
            prop_assert_eq!(t.seq(), s.seq);
            prop_assert_eq!(t.fetched_at(), s.fetched_at);
            prop_assert_eq!(t.oldest_quote(), s.oldest_quote());
            let mut cs: Vec<Currency> = s.quotes.iter().map(|q| q.pair.to).collect();
            cs.push(Currency::USD);
            cs.push(Currency::parse("XAU").unwrap());
            for &a in &cs { for &b in &cs {
                prop_assert_eq!(t.rate(Pair::new(a, b)), s.rate(Pair::new(a, b)));
            }}
        }

        #[test]
        fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RateTable::decode(&b);
        }
    }
}
