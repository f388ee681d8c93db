//! The edge's cache of rates, kept in the Spin key-value store `default`
//! (one per instance of the app: in memory under runtime-shim, a `spin`
//! store on an emptyDir under SpinKube).
//!
//! `rates-sync` fills it when `rates_updated` is published; `rates-http`
//! answers from it through [`current_table`], which refills it itself when
//! it is empty or getting old. Both go through [`refill_from_valkey`], which
//! keeps the cache's snapshot unless Valkey's is valid and newer (later
//! `fetched_at`, then higher `seq`).
//!
//! [`current_table`] reads Valkey for one request at a time per instance
//! group: the others answer from the cache at once, or, with an empty cache,
//! wait up to [`EMPTY_CACHE_WAIT`] for that read. After a read that brought
//! nothing fresher (Valkey failing, no snapshot, nothing newer) the next
//! waits [`VALKEY_READ_EVERY_MS`], so a failing Valkey is not hammered; a
//! read that never returns (Spin has no Redis timeout) holds the others back
//! for [`VALKEY_READ_IN_FLIGHT_MS`].

use shared::freshness;
use shared::table::{self, RateTable};
use shared::{Snapshot, Timestamp};
use spin_sdk::key_value::Store;
use std::fmt;
use std::time::{Duration, Instant};

/// The compact table of the newest snapshot seen (see `shared::table`).
pub const TABLE_KEY: &str = "rates:table";
/// Whether a due request may start a Valkey read (see [`current_table`]):
/// `reading:<ms>` while one is in flight, `paused:<ms>` after one that left
/// the cache due; the Unix milliseconds until which no other read starts.
pub const VALKEY_READ_KEY: &str = "rates:valkey-read";

/// Least time between two Valkey reads by one instance group while reads
/// bring nothing fresher.
pub const VALKEY_READ_EVERY_MS: i64 = 2_000;
/// How long one Valkey read holds back the others before another may try.
pub const VALKEY_READ_IN_FLIGHT_MS: i64 = 5_000;
/// How long a request that finds the cache empty waits for another's read.
pub const EMPTY_CACHE_WAIT: Duration = Duration::from_millis(500);

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
fn cached_table(store: &Store) -> Result<Option<Vec<u8>>, RefillError> {
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
fn store_if_newer(store: &Store, snapshot: &Snapshot) -> Result<(Refill, Option<Vec<u8>>), RefillError> {
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

/// Hands `read` the table to answer from: the cached one while it is
/// younger than `revalidate_age` at `now`, else whatever one Valkey read
/// brings (when this request may make it), else the cached one as it is.
/// `None` when there is no valid table at all. The table is decoded once;
/// problems with the store or Valkey are logged (as `rates-http`, the one
/// caller), never returned: the answer is made from what the cache holds.
pub fn current_table<R>(
    now: Timestamp,
    revalidate_age: Duration,
    read: impl FnOnce(Option<RateTable<'_>>) -> R,
) -> R {
    let store = match Store::open_default() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rates-http: cannot open the key-value store: {e}");
            return read(None);
        }
    };
    let cached = cached_table(&store).unwrap_or_else(|e| {
        eprintln!("rates-http: {e}");
        None
    });
    let from_cache = decode(cached.as_deref());
    if !is_due(from_cache.as_ref(), now, revalidate_age) {
        return read(from_cache);
    }
    match claim_valkey_read(&store, now, VALKEY_READ_IN_FLIGHT_MS) {
        Ok(()) => {}
        Err(Held::Reading) if cached.is_none() => return read(decode(wait_for_table(&store).as_deref())),
        Err(_) => return read(from_cache),
    }
    let refilled = match refill_from_valkey(&store) {
        Ok((Refill::Stored { seq }, table)) => {
            eprintln!("rates-http: cache refilled from Valkey with seq {seq}");
            table
        }
        // Another request may have filled the cache meanwhile.
        Ok((Refill::Kept, table)) => table,
        Err(e) => {
            eprintln!("rates-http: could not refill the cache: {e}");
            cached
        }
    };
    let table = decode(refilled.as_deref());
    // Only a read that leaves the cache due pauses the next ones.
    let fruitful = !is_due(table.as_ref(), now, revalidate_age);
    finish_valkey_read(&store, Timestamp::now(), fruitful, VALKEY_READ_EVERY_MS);
    read(table)
}

/// Whether `table` (none counts) must be read again from Valkey.
fn is_due(table: Option<&RateTable<'_>>, now: Timestamp, revalidate_age: Duration) -> bool {
    table.is_none_or(|t| freshness::age(t.oldest_quote(), now) > revalidate_age)
}

/// A table from the cache's bytes, `None` for none or invalid ones.
fn decode(bytes: Option<&[u8]>) -> Option<RateTable<'_>> {
    bytes.and_then(|b| RateTable::decode(b).ok())
}

/// The table another request's read brings, polled for up to
/// [`EMPTY_CACHE_WAIT`]; `None` when none arrives in time.
fn wait_for_table(store: &Store) -> Option<Vec<u8>> {
    const POLL: Duration = Duration::from_millis(5);
    let deadline = Instant::now() + EMPTY_CACHE_WAIT;
    while Instant::now() < deadline {
        std::thread::sleep(POLL);
        if let Ok(Some(table)) = cached_table(store) {
            return Some(table);
        }
    }
    None
}

/// Why a request whose cache is due may not read Valkey now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Another request of this instance group is reading Valkey.
    Reading,
    /// A read left the cache due a moment ago: Valkey failing, no snapshot,
    /// nothing newer.
    Paused,
}

/// Claims the one Valkey read an instance group may have in flight: writes
/// the `reading` marker under [`VALKEY_READ_KEY`] and returns `Ok` when
/// this request may read (it then holds the claim for `in_flight_ms`, or
/// until [`finish_valkey_read`]); otherwise says why not, and the caller
/// answers from the cache at once. A read that never returns (a Valkey that
/// stopped answering, on a host with no timeout) thus holds back the others
/// for `in_flight_ms`, after which one more may try. The store has no
/// compare-and-set, so requests that race within the same instant may both
/// read: rare, and harmless.
fn claim_valkey_read(store: &Store, now: Timestamp, in_flight_ms: i64) -> Result<(), Held> {
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
fn finish_valkey_read(store: &Store, now: Timestamp, fruitful: bool, pause_ms: i64) {
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
