//! What the project's native processes (the refresher and its exporter,
//! runtime-shim) share to be operated, beside logging (`log-format`):
//! - [`metrics`]: a `/metrics` endpoint on a listener of its own;
//! - [`shutdown`]: the signal that ends a long-running process;
//! - [`valkey`]: Valkey clients over TCP or TLS, and their errors in words.

pub mod metrics;
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
