//! The refresher's Valkey: a client for `--valkey-url` (`VALKEY_URL`), in
//! clear or over TLS (`ops::valkey`), its primary named by the Sentinels of
//! `--valkey-sentinels` when there are any, with errors that name the
//! setting.

use crate::config::Settings;
pub use ops::redis_url::redact;
pub use ops::valkey::Valkey;

/// The Valkey of `settings` (checked, not yet connected).
pub fn open(settings: &Settings) -> Result<Valkey, String> {
    let valkey = Valkey::open(&settings.valkey_url, "VALKEY_URL (--valkey-url)")?;
    let sentinels: Vec<String> = (settings.valkey_sentinels.iter())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let (valkey, default_acks) = if sentinels.is_empty() {
        (valkey, 0)
    } else {
        let v = valkey.with_sentinels(
            &sentinels,
            &settings.valkey_primary_name,
            "VALKEY_SENTINELS (--valkey-sentinels)",
        )?;
        (v, 1)
    };
    Ok(valkey.with_replica_acks(settings.valkey_replica_acks.unwrap_or(default_acks)))
}
