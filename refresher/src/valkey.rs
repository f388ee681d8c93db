//! The refresher's Valkey: a client for `--valkey-url` (`VALKEY_URL`), in
//! clear or over TLS (`ops::valkey`), with errors that name the setting.

pub use ops::redis_url::redact;
pub use ops::valkey::Valkey;

/// The Valkey of `--valkey-url` (checked, not yet connected).
pub fn open(url: &str) -> Result<Valkey, String> {
    Valkey::open(url, "VALKEY_URL (--valkey-url)")
}
