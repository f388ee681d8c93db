//! The edge's cache of rates, kept in the Spin key-value store `default`
//! (one per instance of the app: in memory under runtime-shim, a `spin`
//! store on an emptyDir under SpinKube).
//!
//! `rates-sync` fills it when `rates_updated` is published; `rates-http`
//! refills it itself when it is empty or getting old. Both go through
//! [`refill_from_valkey`], which keeps the cache's snapshot unless Valkey's
//! is valid and newer (later `fetched_at`, then higher `seq`).

use shared::table::{self, RateTable};
use shared::{Snapshot, Timestamp};
use spin_sdk::key_value::Store;
use std::fmt;

/// The compact table of the newest snapshot seen (see `shared::table`).
pub const TABLE_KEY: &str = "rates:table";
/// When `rates-http` last read Valkey without getting fresher rates (Valkey
/// failing, no snapshot, nothing newer): Unix milliseconds, decimal.
pub const UNFRUITFUL_READ_KEY: &str = "rates:unfruitful-valkey-read";

/// Why Valkey could not refill the cache.
#[derive(Debug)]
pub enum RefillError {
    Config(String),
    Valkey(String),
    Missing(String),
    Invalid(String),
    Cache(String),
}

impl fmt::Display for RefillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefillError::Config(m) => write!(f, "configuration: {m}"),
            RefillError::Valkey(m) => write!(f, "Valkey: {m}"),
            RefillError::Missing(k) => write!(f, "Valkey has no snapshot under {k:?} yet"),
            RefillError::Invalid(m) => write!(f, "Valkey's snapshot is invalid, keeping the cache: {m}"),
            RefillError::Cache(m) => write!(f, "key-value store: {m}"),
        }
    }
}

impl std::error::Error for RefillError {}

/// What a refill did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refill {
    /// The cache now holds Valkey's snapshot `seq`.
    Stored { seq: u64 },
    /// The cache already held a snapshot at least as new.
    Kept,
}

fn variable(name: &str) -> Result<String, RefillError> {
    spin_sdk::variables::get(name).map_err(|e| RefillError::Config(format!("variable {name}: {e}")))
}

/// The cached table's bytes, if any.
pub fn cached_table(store: &Store) -> Result<Option<Vec<u8>>, RefillError> {
    store
        .get(TABLE_KEY)
        .map_err(|e| RefillError::Cache(e.to_string()))
}

/// Reads the snapshot from Valkey and stores it in the cache if it is valid
/// and newer than the cached one. Returns the table now cached.
pub fn refill_from_valkey(store: &Store) -> Result<(Refill, Option<Vec<u8>>), RefillError> {
    let url = variable("valkey_url")?;
    let key = variable("rates_key")?;
    let conn = spin_sdk::redis::Connection::open(&url).map_err(|e| RefillError::Valkey(format!("{e:?}")))?;
    let bytes = conn
        .get(&key)
        .map_err(|e| RefillError::Valkey(format!("{e:?}")))?
        .ok_or_else(|| RefillError::Missing(key.clone()))?;
    let snapshot = Snapshot::decode(&bytes).map_err(|e| RefillError::Invalid(e.to_string()))?;
    store_if_newer(store, &snapshot)
}

/// The cache's side of a refill: the snapshot order decides.
pub fn store_if_newer(store: &Store, snapshot: &Snapshot) -> Result<(Refill, Option<Vec<u8>>), RefillError> {
    let current = cached_table(store)?;
    if let Some(bytes) = &current
        && let Ok(t) = RateTable::decode(bytes)
        && t.version() >= snapshot.version()
    {
        return Ok((Refill::Kept, current));
    }
    let encoded = table::encode(snapshot);
    store
        .set(TABLE_KEY, &encoded)
        .map_err(|e| RefillError::Cache(e.to_string()))?;
    Ok((Refill::Stored { seq: snapshot.seq }, Some(encoded)))
}

/// Whether a request whose cache is due may read Valkey now. Always, unless
/// a read left the cache due less than `every_ms` ago; once that pause is
/// over, the request that goes ahead records itself first, so a failing
/// Valkey sees at most one read per `every_ms` from each instance while
/// requests racing to fill an empty cache all read.
pub fn may_read_valkey(store: &Store, now: Timestamp, every_ms: i64) -> bool {
    let last = store
        .get(UNFRUITFUL_READ_KEY)
        .ok()
        .flatten()
        .and_then(|b| std::str::from_utf8(&b).ok()?.parse::<i64>().ok());
    match last {
        None => true,
        Some(ms) if (0..every_ms).contains(&(now.unix_millis() - ms)) => false,
        Some(_) => note_unfruitful_read(store, now),
    }
}

/// Records a read that left the cache due; returns whether it was recorded.
pub fn note_unfruitful_read(store: &Store, now: Timestamp) -> bool {
    store
        .set(UNFRUITFUL_READ_KEY, now.unix_millis().to_string().as_bytes())
        .is_ok()
}

/// Valkey gave fresher rates: the next due request may read at once.
pub fn forget_unfruitful_reads(store: &Store) {
    let _ = store.delete(UNFRUITFUL_READ_KEY);
}
