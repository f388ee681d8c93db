//! `runtime-shim up [-f spin.toml | -f <OCI reference>] [--listen 127.0.0.1:3000] [--variable KEY=VALUE]...`
//!
//! The flags and environment spin-operator gives a `spinImage` executor's
//! container (`up --listen 0.0.0.0:80 -f <image> --runtime-config-file
//! /runtime-config.toml [--component-id <id>]...`, `SPIN_VARIABLE_*`,
//! `SPIN_HTTP_LISTEN_ADDR`, `SPIN_COMPONENTS_TO_RETAIN`) mean what they mean
//! to `spin up`. Its OpenTelemetry settings and `SPIN_MAX_INSTANCE_MEMORY`
//! are ignored, with a line saying so.

use clap::{Parser, Subcommand};

// Every request makes and drops a store and an instance; mimalloc handles
// that churn of small allocations faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use runtime_shim::{AppSource, CompileCache, UpOptions, variables::Provided};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    Up {
        /// The app: a spin.toml (or a directory holding one), or an OCI
        /// reference `spin registry push` pushed to, e.g.
        /// ghcr.io/org/app:1.0 or ...@sha256:<digest>.
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        from: String,
        /// Pull over plain HTTP (a registry on 127.0.0.1, [::1] or localhost
        /// gets it anyway when it does not speak HTTPS).
        #[arg(short = 'k', long)]
        insecure: bool,
        /// Spin runtime config: [[config_provider]] of type env and
        /// [key_value_store.default] of type spin; anything else is refused.
        #[arg(long, value_name = "FILE")]
        runtime_config_file: Option<PathBuf>,
        /// Run only this component (and the triggers that use it); may be
        /// given more than once. Default: all.
        #[arg(
            long = "component-id",
            short = 'c',
            env = "SPIN_COMPONENTS_TO_RETAIN",
            value_delimiter = ','
        )]
        component_ids: Vec<String>,
        /// Address for the HTTP trigger.
        #[arg(long, env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Sets application variables: KEY=VALUE, KEY=@FILE (the file's
        /// text), or @FILE.json / @FILE.toml (a map of names to strings). Of
        /// a key given twice, the last wins. Else SPIN_VARIABLE_<KEY> in the
        /// environment, else in ./.env, else the manifest's default.
        #[arg(
            long = "variable",
            value_name = "KEY=VALUE | KEY=@FILE | @FILE.json | @FILE.toml"
        )]
        variables: Vec<String>,
        /// Limit of one request's guest work, in milliseconds (504 after it).
        #[arg(long, default_value_t = 10_000)]
        request_timeout_ms: u64,
        /// Limit of one Redis message's handler, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        message_timeout_ms: u64,
        /// On SIGTERM/SIGINT, how long requests and Redis messages in flight
        /// may still run, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        drain_timeout_ms: u64,
        /// Directory of the compiled-component cache.
        #[arg(long, env = "RUNTIME_SHIM_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Compile every component at start-up, ignoring the cache.
        #[arg(long)]
        no_cache: bool,
        /// Most client connections at once; more wait in the listen backlog.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Most component instances alive at once (requests in flight plus
        /// Redis messages; each may use up to 64 MiB); more wait for one.
        #[arg(long, default_value_t = runtime_shim::MAX_LIVE_INSTANCES)]
        max_instances: usize,
        /// A client must send a request's headers within this time, in
        /// milliseconds (idle keep-alive connections are closed after it too).
        #[arg(long, default_value_t = 10_000)]
        header_read_timeout_ms: u64,
        /// Do not write a line per request.
        #[arg(long)]
        quiet: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics, apart from the
        /// app's port. Default: no metrics, nothing counted.
        #[arg(long, env = "RUNTIME_SHIM_METRICS_LISTEN", value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
        /// Log lines as text (default) or JSON objects.
        #[arg(long, env = log_format::ENV, default_value = "text")]
        log_format: log_format::LogFormat,
    },
}

fn main() -> ExitCode {
    let Command::Up {
        from,
        insecure,
        runtime_config_file,
        component_ids,
        listen,
        variables,
        request_timeout_ms,
        message_timeout_ms,
        drain_timeout_ms,
        cache_dir,
        no_cache,
        max_connections,
        max_instances,
        header_read_timeout_ms,
        quiet,
        metrics_listen,
        log_format,
    } = Cli::parse().command;
    log_format::init(log_format);
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
    let source = match AppSource::from_arg(&from) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let provided = match Provided::from_flags_and_env(&variables, std::env::vars()) {
        // Spin reads `.env` in the current directory, not the manifest's.
        Ok(p) => Provided {
            dotenv: Some(PathBuf::from(".env")),
            ..p
        },
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let opts = UpOptions {
        source,
        insecure,
        runtime_config: runtime_config_file,
        component_ids,
        listen,
        variables: provided,
        request_timeout: Duration::from_millis(request_timeout_ms),
        message_timeout: Duration::from_millis(message_timeout_ms),
        cache_dir: if no_cache {
            None
        } else {
            cache_dir.or_else(CompileCache::default_dir)
        },
        drain_timeout: Duration::from_millis(drain_timeout_ms),
        max_connections,
        max_instances,
        header_read_timeout: Duration::from_millis(header_read_timeout_ms),
        access_log: !quiet,
        metrics_listen,
        log_format,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(runtime_shim::up(opts, ops::shutdown())) {
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
