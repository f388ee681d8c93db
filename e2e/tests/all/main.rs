//! Every end-to-end suite in one test binary, as wasmtime's `tests/all`:
//! the harness and its dependencies are linked once, not once per suite.
//! One suite: `cargo test -p e2e --test all <suite>::` (e.g. `tls::`).

mod contract;
mod edge;
mod executor;
mod exporter;
mod failover;
mod faults;
mod images;
mod monitoring;
mod one_frame;
mod reconnect;
mod refresher;
mod registry;
mod scale;
mod shim;
mod shim_lifecycle;
mod simulated_day;
mod tls;
