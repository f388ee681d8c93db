//! Snapshot fixtures: the product's default currencies, the snapshot a
//! Valkey holds, and hand-made snapshots with chosen times.

use crate::http;
use crate::valkey::Valkey;
use std::net::SocketAddr;

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

/// Checks a rate object of the API against the snapshot's own derivation
/// for the pair `p` (e.g. "EURJPY").
#[track_caller]
pub fn assert_rate(v: &serde_json::Value, snapshot: &shared::Snapshot, p: &str) {
    let expected = snapshot.rate(shared::Pair::parse(p).unwrap()).unwrap();
    assert_eq!(v["from"], &p[..3], "{v}");
    assert_eq!(v["to"], &p[3..], "{v}");
    assert_eq!(v["price"].as_f64(), Some(expected.price), "{p}: {v}");
    assert_eq!(v["timestamp"], expected.timestamp.to_rfc3339(), "{p}: {v}");
}

/// `GET /rates` of `addr` for the pair `p` answers 200 with the snapshot's
/// own rate.
#[track_caller]
pub fn assert_serves(addr: SocketAddr, snapshot: &shared::Snapshot, p: &str) {
    let r = http::get(addr, &format!("/rates?from={}&to={}", &p[..3], &p[3..]));
    assert_eq!(r.status, 200, "{p}: {}", r.text());
    assert_rate(&r.json(), snapshot, p);
}

/// The `seq` of the snapshot `/readyz` of `addr` reports, while it answers 200.
pub fn seq_served(addr: SocketAddr) -> Option<u64> {
    let r = http::get(addr, "/readyz");
    (r.status == 200).then(|| r.json()["seq"].as_u64()).flatten()
}

/// Stores and publishes a newer snapshot with the same prices, stamped now:
/// a run longer than `max_rate_age` keeps serving 200s, and every answer
/// keeps its length. Called between phases, never during one (a phase may
/// hold an `ETag`).
pub fn restamp(valkey: &crate::Valkey) {
    let old = stored_snapshot(valkey).expect("a stored snapshot");
    // Whole milliseconds, as One-Frame stamps them: the answers keep their length.
    let now = shared::Timestamp::from_unix_millis(shared::Timestamp::now().unix_millis());
    let quotes = old
        .quotes
        .iter()
        .map(|q| shared::Quote {
            time_stamp: now,
            ..*q
        })
        .collect();
    let next = shared::Snapshot::new(old.seq + 1, now, quotes).expect("a valid snapshot");
    valkey.set("rates", &next.encode());
    valkey.publish("rates_updated", &next.seq.to_string());
    std::thread::sleep(std::time::Duration::from_millis(500));
}
