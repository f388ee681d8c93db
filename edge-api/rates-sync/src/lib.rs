//! `rates-sync`: on each `rates_updated` message, copy Valkey's snapshot into
//! the instance's key-value cache if it is valid and newer than the cached
//! one. The message's payload (the new `seq`) is only a hint: messages can
//! be late, duplicated or lost, so the snapshot itself decides.

use edge_cache::{Refill, refill_from_valkey};
use spin_sdk::key_value::Store;
use spin_sdk::redis_component;

#[redis_component]
fn on_rates_updated(message: bytes::Bytes) -> anyhow::Result<()> {
    let hint = String::from_utf8_lossy(&message);
    let store = Store::open_default()?;
    // The handler's error reaches the host without its message: say it here.
    let refill = refill_from_valkey(&store).inspect_err(|e| {
        eprintln!("rates-sync: could not refresh the cache (message {hint:?}): {e}");
    })?;
    match refill {
        (Refill::Stored { seq }, _) => eprintln!("rates-sync: cached snapshot seq {seq} (message {hint:?})"),
        (Refill::Kept, _) => {
            eprintln!("rates-sync: kept the cached snapshot, newer than Valkey's (message {hint:?})")
        }
    }
    Ok(())
}
