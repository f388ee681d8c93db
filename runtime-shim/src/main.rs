//! `runtime-shim up [-f spin.toml | -f <OCI reference>] [--listen 127.0.0.1:3000] [--variable KEY=VALUE]...`
//! (`runtime-shim up --help` lists every flag: [`runtime_shim::UpOptions`]).
//! The OpenTelemetry settings and `SPIN_MAX_INSTANCE_MEMORY` spin-operator
//! may set are ignored, with a line saying so.

use clap::{Parser, Subcommand};
use runtime_shim::{Up, UpOptions};
use std::process::ExitCode;

// Every request makes and drops a store and an instance; mimalloc handles
// that churn of small allocations faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "runtime-shim",
    about = "Runs a Spin app (spin.toml + Wasm components) on wasmtime, without the Spin CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app: HTTP routes and Redis triggers.
    Up(UpOptions),
}

/// Says which settings meant for Spin have no effect here.
fn note_ignored_environment() {
    for name in [
        "SPIN_MAX_INSTANCE_MEMORY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    ] {
        if std::env::var_os(name).is_some() {
            let why = if name.starts_with("OTEL") {
                "runtime-shim exports no OpenTelemetry data".to_string()
            } else {
                format!(
                    "runtime-shim limits every instance's memory to {} MiB",
                    runtime_shim::MAX_INSTANCE_MEMORY >> 20
                )
            };
            tracing::info!("{name} is set and ignored: {why}");
        }
    }
}

fn main() -> ExitCode {
    let Command::Up(options) = Cli::parse().command;
    log_format::init(options.log_format);
    note_ignored_environment();
    // Before any other thread: it may set SSL_CERT_FILE.
    if let Err(e) = runtime_shim::oci::stand_in_trust_anchor() {
        tracing::warn!("no CA certificate on this system, and none could be stood in: {e}");
    }
    let up = match Up::new(options) {
        Ok(up) => up,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(up.run(ops::shutdown())) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}
