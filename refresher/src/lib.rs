//! The refresher: keeps the `rates` snapshot in Valkey fresh with one
//! One-Frame call per run, within the daily quota. `main.rs` is the CLI;
//! the modules are public so the simulated-day test can drive the same code
//! with its own clock.

pub mod client;
pub mod clock;
pub mod config;
pub mod exporter;
pub mod last_run;
pub mod quota;
pub mod refresh;
pub mod schedule;
pub mod status;
pub mod store;
pub mod valkey;
