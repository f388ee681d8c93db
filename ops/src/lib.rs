//! What the project's native processes (the refresher and its exporter,
//! runtime-shim) share to be operated, beside logging (`log-format`):
//! - [`metrics`]: a `/metrics` endpoint on a listener of its own;
//! - [`duration`]: how every duration flag and variable is written;
//! - [`backoff`]: how every retry loop waits;
//! - [`shutdown`]: the signal that ends a long-running process;
//! - [`valkey`]: Valkey clients over TCP or TLS, and their errors in words;
//! - [`redis_url`]: Valkey URLs taken apart by one grammar: addresses,
//!   TLS, and what a log line may show of them.

pub mod backoff;
pub mod duration;
pub mod metrics;
pub mod redis_url;
pub mod valkey;

/// Makes ring the process's rustls crypto provider, once; every TLS client
/// of the process (Valkey, registries, One-Frame's HTTP client, built
/// without a provider of its own) uses it. Call before building one.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (Kubernetes stopping the pod).
pub async fn shutdown() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
