//! `runtime-shim up [-f spin.toml] [--listen 127.0.0.1:3000] [--variable KEY=VALUE]...`

use clap::{Parser, Subcommand};

// Every request makes and drops a store and an instance; mimalloc handles
// that churn of small allocations faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use runtime_shim::{CompileCache, UpOptions, variables::Provided};
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
        /// The manifest.
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        manifest: PathBuf,
        /// Address for the HTTP trigger.
        #[arg(long, default_value = "127.0.0.1:3000")]
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
        /// Directory of the compiled-component cache.
        #[arg(long, env = "RUNTIME_SHIM_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Compile every component at start-up, ignoring the cache.
        #[arg(long)]
        no_cache: bool,
        /// Most client connections at once; more wait in the listen backlog.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// A client must send a request's headers within this time, in
        /// milliseconds (idle keep-alive connections are closed after it too).
        #[arg(long, default_value_t = 10_000)]
        header_read_timeout_ms: u64,
        /// Do not write a line per request.
        #[arg(long)]
        quiet: bool,
        /// Log lines as text (default) or JSON objects.
        #[arg(long, env = log_format::ENV, default_value = "text")]
        log_format: log_format::LogFormat,
    },
}

async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> ExitCode {
    let Command::Up {
        manifest,
        listen,
        variables,
        request_timeout_ms,
        message_timeout_ms,
        cache_dir,
        no_cache,
        max_connections,
        header_read_timeout_ms,
        quiet,
        log_format,
    } = Cli::parse().command;
    log_format::init(log_format);
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
        manifest,
        listen,
        variables: provided,
        request_timeout: Duration::from_millis(request_timeout_ms),
        message_timeout: Duration::from_millis(message_timeout_ms),
        cache_dir: if no_cache {
            None
        } else {
            cache_dir.or_else(CompileCache::default_dir)
        },
        drain_timeout: Duration::from_secs(10),
        max_connections,
        header_read_timeout: Duration::from_millis(header_read_timeout_ms),
        access_log: !quiet,
        log_format,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(runtime_shim::up(opts, shutdown_signal())) {
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
