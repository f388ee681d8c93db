//! Snapshot fixtures: the product's default currencies, the snapshot a
//! Valkey holds, and hand-made snapshots with chosen times.

use crate::valkey::Valkey;

/// The product's default currencies.
pub const DEFAULT_CURRENCIES: [&str; 9] = ["AUD", "CAD", "CHF", "EUR", "GBP", "NZD", "JPY", "SGD", "USD"];

/// The snapshot stored in Valkey, decoded strictly.
pub fn stored_snapshot(valkey: &Valkey) -> Option<shared::Snapshot> {
    valkey
        .get("rates")
        .map(|b| shared::Snapshot::decode(&b).expect("stored snapshot is valid"))
}

/// A snapshot of the USD legs to JPY, EUR and GBP (each its own price), taken
/// at `fetched_at`, every quote stamped `stamp`.
pub fn snapshot_stamped(
    seq: u64,
    fetched_at: shared::Timestamp,
    stamp: shared::Timestamp,
) -> shared::Snapshot {
    let quotes = ["JPY", "EUR", "GBP"]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let price = 0.55 + i as f64 / 10.0;
            shared::Quote {
                pair: shared::Pair::new(shared::Currency::USD, shared::Currency::parse(c).unwrap()),
                bid: price - 0.05,
                ask: price + 0.05,
                price,
                time_stamp: stamp,
            }
        })
        .collect();
    shared::Snapshot::new(seq, fetched_at, quotes).expect("a valid snapshot")
}
