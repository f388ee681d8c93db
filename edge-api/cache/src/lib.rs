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
//!
//! The cached entry carries, beside the table, the ages it is judged by
//! ([`Ages`], from the variables `max_rate_age` and `revalidate_age`, read
//! when the entry is written). A request served from the cache thus makes
//! two host calls (open the store, get the entry) and reads no variable: on
//! Spin every host call crosses a thread boundary (docs/performance.md).

use shared::freshness;
use shared::table::{self, RateTable};
use shared::{Snapshot, Timestamp};
use spin_sdk::key_value::Store;
use std::fmt;
use std::time::{Duration, Instant};

/// The cached entry: [`Ages`] and the compact table of the newest snapshot
/// seen (see `shared::table`), as [`encode_entry`] writes them.
pub const TABLE_KEY: &str = "rates:entry";
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

/// The ages a cached table is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ages {
    /// A rate older than this is never served.
    pub max_rate_age: Duration,
    /// A table older than this is read again from Valkey.
    pub revalidate_age: Duration,
}

impl Ages {
    /// `max_rate_age` and `revalidate_age`, each a whole number of seconds,
    /// or its default when unset. Any other value is a deployment mistake,
    /// named rather than run on a silent default.
    pub fn from_variables() -> Result<Ages, RefillError> {
        Ok(Ages {
            max_rate_age: seconds_variable("max_rate_age", freshness::DEFAULT_MAX_RATE_AGE)?,
            revalidate_age: seconds_variable("revalidate_age", freshness::DEFAULT_REVALIDATE_AGE)?,
        })
    }
}

fn seconds_variable(name: &str, default: Duration) -> Result<Duration, RefillError> {
    match spin_sdk::variables::get(name) {
        Err(_) => Ok(default),
        Ok(v) => v.trim().parse().map(Duration::from_secs).map_err(|_| {
            RefillError::Config(format!(
                "variable {name} must be a whole number of seconds, not {v:?}"
            ))
        }),
    }
}

/// Marks the entry's layout; anything else (an older layout) is no entry.
const ENTRY_MAGIC: &[u8; 4] = b"fxe1";

/// The cached entry's bytes: the magic, both ages in seconds (u32, little
/// endian), then the table.
pub fn encode_entry(ages: Ages, table: &[u8]) -> Vec<u8> {
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::with_capacity(12 + table.len());
    out.extend_from_slice(ENTRY_MAGIC);
    out.extend_from_slice(&secs(ages.max_rate_age));
    out.extend_from_slice(&secs(ages.revalidate_age));
    out.extend_from_slice(table);
    out
}

/// An entry's ages and table; `None` for no entry or one that does not
/// decode.
pub fn decode_entry(bytes: Option<&[u8]>) -> Option<(Ages, RateTable<'_>)> {
    let b = bytes?;
    let rest = b.strip_prefix(ENTRY_MAGIC.as_slice())?;
    let secs = |at: usize| -> Option<Duration> {
        let raw: [u8; 4] = rest.get(at..at + 4)?.try_into().ok()?;
        Some(Duration::from_secs(u32::from_le_bytes(raw).into()))
    };
    let ages = Ages {
        max_rate_age: secs(0)?,
        revalidate_age: secs(4)?,
    };
    Some((ages, RateTable::decode(rest.get(8..)?).ok()?))
}

/// The cached entry's bytes, if any.
fn cached_entry(store: &Store) -> Result<Option<Vec<u8>>, RefillError> {
    store
        .get(TABLE_KEY)
        .map_err(|e| RefillError::Cache(e.to_string()))
}

/// Reads the snapshot from Valkey and stores it in the cache, with the
/// ages of this component's variables, if it is valid and newer than the
/// cached one. Returns the entry now cached.
pub fn refill_from_valkey(store: &Store) -> Result<(Refill, Option<Vec<u8>>), RefillError> {
    let ages = Ages::from_variables()?;
    let url = variable("valkey_url")?;
    let key = variable("rates_key")?;
    let conn = spin_sdk::redis::Connection::open(&url).map_err(valkey_error)?;
    let bytes = conn
        .get(&key)
        .map_err(valkey_error)?
        .ok_or_else(|| RefillError::Missing(key.clone()))?;
    let snapshot = Snapshot::decode(&bytes).map_err(|e| RefillError::Invalid(e.to_string()))?;
    store_if_newer(store, &snapshot, ages)
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
fn store_if_newer(
    store: &Store,
    snapshot: &Snapshot,
    ages: Ages,
) -> Result<(Refill, Option<Vec<u8>>), RefillError> {
    let current = cached_entry(store)?;
    if let Some((_, t)) = decode_entry(current.as_deref())
        && t.version() >= snapshot.version()
    {
        return Ok((Refill::Kept, current));
    }
    let encoded = encode_entry(ages, &table::encode(snapshot));
    store
        .set(TABLE_KEY, &encoded)
        .map_err(|e| RefillError::Cache(e.to_string()))?;
    Ok((Refill::Stored { seq: snapshot.seq }, Some(encoded)))
}

/// What a request answers from.
pub enum Cached<'a> {
    /// The table, and the ages it is judged by.
    Table(RateTable<'a>, Ages),
    /// No valid table at all.
    Empty,
    /// The age variables are malformed (named in the message, already
    /// logged): nothing may be served on a guessed default.
    Misconfigured(String),
}

/// Hands `read` what to answer from: the cached table while it is younger
/// than its `revalidate_age` at `now`, else whatever one Valkey read brings
/// (when this request may make it), else the cached one as it is. The entry
/// is decoded once; problems with the store or Valkey are logged (as
/// `rates-http`, the one caller), never returned: the answer is made from
/// what the cache holds. Only a read finds the variables malformed.
pub fn current_table<R>(now: Timestamp, read: impl FnOnce(Cached<'_>) -> R) -> R {
    let store = match Store::open_default() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rates-http: cannot open the key-value store: {e}");
            return read(Cached::Empty);
        }
    };
    let cached = cached_entry(&store).unwrap_or_else(|e| {
        eprintln!("rates-http: {e}");
        None
    });
    let from_cache = decode_entry(cached.as_deref());
    if !is_due(from_cache.as_ref(), now) {
        return read(cached_of(from_cache));
    }
    match claim_valkey_read(&store, now, VALKEY_READ_IN_FLIGHT_MS) {
        Ok(()) => {}
        Err(Held::Reading) if from_cache.is_none() => {
            return read(cached_of(decode_entry(wait_for_entry(&store).as_deref())));
        }
        Err(_) => return read(cached_of(from_cache)),
    }
    let refilled = match refill_from_valkey(&store) {
        Ok((Refill::Stored { seq }, entry)) => {
            eprintln!("rates-http: cache refilled from Valkey with seq {seq}");
            entry
        }
        // Another request may have filled the cache meanwhile.
        Ok((Refill::Kept, entry)) => entry,
        Err(RefillError::Config(m)) => {
            eprintln!("rates-http: {m}");
            finish_valkey_read(&store, Timestamp::now(), true, VALKEY_READ_EVERY_MS);
            return read(Cached::Misconfigured(m));
        }
        Err(e) => {
            eprintln!("rates-http: could not refill the cache: {e}");
            cached
        }
    };
    let entry = decode_entry(refilled.as_deref());
    // Only a read that leaves the cache due pauses the next ones.
    let fruitful = !is_due(entry.as_ref(), now);
    finish_valkey_read(&store, Timestamp::now(), fruitful, VALKEY_READ_EVERY_MS);
    read(cached_of(entry))
}

fn cached_of(entry: Option<(Ages, RateTable<'_>)>) -> Cached<'_> {
    match entry {
        Some((ages, table)) => Cached::Table(table, ages),
        None => Cached::Empty,
    }
}

/// Whether `entry` (none counts) must be read again from Valkey.
fn is_due(entry: Option<&(Ages, RateTable<'_>)>, now: Timestamp) -> bool {
    entry.is_none_or(|(ages, t)| freshness::age(t.oldest_quote(), now) > ages.revalidate_age)
}

/// The entry another request's read brings, polled for up to
/// [`EMPTY_CACHE_WAIT`]; `None` when none arrives in time.
fn wait_for_entry(store: &Store) -> Option<Vec<u8>> {
    const POLL: Duration = Duration::from_millis(5);
    let deadline = Instant::now() + EMPTY_CACHE_WAIT;
    while Instant::now() < deadline {
        std::thread::sleep(POLL);
        if let Ok(Some(entry)) = cached_entry(store) {
            return Some(entry);
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
