//! The end-to-end harness: real processes on loopback, started per test and
//! stopped when their handles drop.
//!
//! - [`Valkey`]: `valkey-server` (or `redis-server`) on a free port;
//! - [`OneFrame`]: the `one-frame` emulator, with its admin routes;
//! - [`Edge`] (also [`Shim`]): a manifest (the real `spin.toml` and Wasm by
//!   default) served by runtime-shim or a real Spin, the [`Host`];
//! - [`refresh`]: one `refresher once` run;
//! - [`Balancer`]: haproxy in front of edge instances, health-checking
//!   `/readyz`, with instances added and taken away while it runs;
//! - [`sentinel::Cluster`]: three Valkeys and three Sentinels over TLS, and
//!   the read Service in front of them;
//! - [`Registry`]: a local OCI registry (`docker-registry`) on a free port;
//! - [`Exporter`] and [`Prometheus`]: the metrics exporter and a real
//!   Prometheus scraping it, with the metrics catalogue ([`catalogue`]);
//! - snapshot fixtures such as [`snapshot_stamped`], and test certificates
//!   ([`TestCa`]) for TLS servers;
//! - underneath, the process plumbing: [`Proc`], [`TempDir`], [`free_port`],
//!   [`eventually`].
//!
//! Every item is re-exported here, so tests name them `e2e::…` whatever
//! module they live in.
//!
//! Binaries come from the cargo target directory of the running test; build
//! them first with `make build` (the `make test` target does).

mod balancer;
mod edge;
pub mod failover;
mod fixtures;
pub mod http;
pub mod load;
pub mod manifests;
mod monitoring;
mod one_frame;
pub mod phases;
mod pki;
pub mod probe;
mod procs;
mod refresher;
mod registry;
pub mod sentinel;
mod valkey;

pub use balancer::{Balancer, ServerStat};
pub use edge::*;
pub use fixtures::*;
pub use monitoring::*;
pub use one_frame::*;
pub use pki::*;
pub use procs::*;
pub use refresher::*;
pub use registry::{PushedApp, Registry, spin_and_registry};
pub use valkey::*;

/// A setting of the benchmark tools from the environment: `name` parsed, or
/// `default` when it is unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
