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
/// Whether `rates-http` may start a Valkey read (see [`claim_valkey_read`]):
/// `reading:<ms>` while one is in flight, `paused:<ms>` after one that left
/// the cache due; the Unix milliseconds until which no other read starts.
pub const VALKEY_READ_KEY: &str = "rates:valkey-read";

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
    let conn = spin_sdk::redis::Connection::open(&url).map_err(valkey_error)?;
    let bytes = conn
        .get(&key)
        .map_err(valkey_error)?
        .ok_or_else(|| RefillError::Missing(key.clone()))?;
    let snapshot = Snapshot::decode(&bytes).map_err(|e| RefillError::Invalid(e.to_string()))?;
    store_if_newer(store, &snapshot)
}

/// The host's Redis error as a sentence (the host names the address
/// without credentials in `Other`).
fn valkey_error(e: spin_sdk::redis::Error) -> RefillError {
    use spin_sdk::redis::Error;
    RefillError::Valkey(match e {
        Error::InvalidAddress => "the address is invalid or not in allowed_outbound_hosts".into(),
        Error::TooManyConnections => "too many connections".into(),
        Error::TypeError => "unexpected reply type".into(),
        Error::Other(m) => m,
    })
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

/// Why a request whose cache is due may not read Valkey now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Another request of this instance group is reading Valkey.
    Reading,
    /// A read left the cache due a moment ago: Valkey failing, no snapshot,
    /// nothing newer.
    Paused,
}

/// Claims the one Valkey read an instance group may have in flight. `Ok`
/// when this request may read (it then holds the claim for `in_flight_ms`,
/// or until [`finish_valkey_read`]); otherwise why not, and the caller
/// answers from the cache at once. A read that never returns (a Valkey that
/// stopped answering, on a host with no timeout) thus holds back the others
/// for `in_flight_ms`, after which one more may try. The store has no
/// compare-and-set, so requests that race within the same instant may both
/// read: rare, and harmless.
pub fn claim_valkey_read(store: &Store, now: Timestamp, in_flight_ms: i64) -> Result<(), Held> {
    let current = store
        .get(VALKEY_READ_KEY)
        .ok()
        .flatten()
        .and_then(|b| parse_hold(&b));
    if let Some((held, until)) = current
        && now.unix_millis() < until
    {
        return Err(held);
    }
    let _ = store.set(
        VALKEY_READ_KEY,
        format!("reading:{}", now.unix_millis() + in_flight_ms).as_bytes(),
    );
    Ok(())
}

/// Ends a claimed read: the next due request may read at once if this one
/// brought fresher rates (`fruitful`), else only after `pause_ms`.
pub fn finish_valkey_read(store: &Store, now: Timestamp, fruitful: bool, pause_ms: i64) {
    let _ = if fruitful {
        store.delete(VALKEY_READ_KEY)
    } else {
        store.set(
            VALKEY_READ_KEY,
            format!("paused:{}", now.unix_millis() + pause_ms).as_bytes(),
        )
    };
}

fn parse_hold(bytes: &[u8]) -> Option<(Held, i64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (kind, until) = text.split_once(':')?;
    let held = match kind {
        "reading" => Held::Reading,
        "paused" => Held::Paused,
        _ => return None,
    };
    Some((held, until.parse().ok()?))
}
