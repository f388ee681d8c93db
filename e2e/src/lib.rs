//! The end-to-end harness: real processes on loopback, started per test and
//! stopped when their handles drop.
//!
//! - [`Valkey`]: `valkey-server` (or `redis-server`) on a free port;
//! - [`OneFrame`]: the `one-frame` emulator, with its admin routes;
//! - [`Shim`]: `runtime-shim up` serving a manifest (the real `spin.toml`
//!   and Wasm by default);
//! - [`refresher`]: one `refresher once` run;
//! - [`Registry`]: a local OCI registry (`docker-registry`) on a free port.
//!
//! Binaries come from the cargo target directory of the running test; build
//! them first with `make build` (the `make test` target does).

pub mod http;
pub mod load;
mod procs;
mod registry;

pub use procs::*;
pub use registry::Registry;

/// A setting of the benchmark tools from the environment: `name` parsed, or
/// `default` when it is unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
