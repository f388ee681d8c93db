//! What a component may ask of the host, named once: the app validates a
//! manifest against these rules at start-up ([`crate::app`]) and the host
//! enforces them per call ([`crate::host`]). Neither layer reaches into the
//! other; both read this one.
//! - [`allowed_hosts`]: which addresses a component may connect to;
//! - [`DEFAULT_STORE`]: the one key-value store this host provides;
//! - [`check_variable_name`]: Spin's rule for variable names.

pub mod allowed_hosts;

pub use allowed_hosts::AllowedHosts;

use wasmtime::{Result, bail};

/// The key-value store a component lists to share the app's cache.
pub const DEFAULT_STORE: &str = "default";

/// Spin's rule: lower-case letters, digits and single underscores, starting with a letter.
pub fn check_variable_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_');
    if !ok {
        bail!("{name:?} is not a valid variable name: use lower-case letters, digits and single underscores");
    }
    Ok(())
}
