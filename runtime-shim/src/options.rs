//! The options of `runtime-shim up`, as one clap struct: what `--help`
//! shows is what [`crate::Up`] runs with.
//!
//! The flags and environment spin-operator gives a `spinImage` executor's
//! container (`up --listen 0.0.0.0:80 -f <image> --runtime-config-file
//! /runtime-config.toml [--component-id <id>]...`, `SPIN_VARIABLE_*`,
//! `SPIN_HTTP_LISTEN_ADDR`, `SPIN_COMPONENTS_TO_RETAIN`) mean what they mean
//! to `spin up`; the image turns metrics on with
//! `RUNTIME_SHIM_METRICS_LISTEN`, since the operator fixes the arguments.

use crate::engine::{CompileCache, MAX_LIVE_INSTANCES};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct UpOptions {
    /// The app: a spin.toml (or a directory holding one), or an OCI
    /// reference `spin registry push` pushed to, e.g.
    /// ghcr.io/org/app:1.0 or ...@sha256:<digest>.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    pub from: String,
    /// Pull over plain HTTP (a registry on 127.0.0.1 or localhost gets it
    /// anyway when it does not speak HTTPS).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Spin runtime config: [[config_provider]] of type env and
    /// [key_value_store.default] of type spin; anything else is refused.
    #[arg(long, value_name = "FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// Run only this component (and the triggers that use it); may be
    /// given more than once. Default: all.
    #[arg(
        long = "component-id",
        short = 'c',
        env = "SPIN_COMPONENTS_TO_RETAIN",
        value_delimiter = ','
    )]
    pub component_ids: Vec<String>,
    /// Address for the HTTP trigger.
    #[arg(long, env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Sets application variables: KEY=VALUE, KEY=@FILE (the file's
    /// text), or @FILE.json / @FILE.toml (a map of names to strings). Of
    /// a key given twice, the last wins. Else SPIN_VARIABLE_<KEY> in the
    /// environment, else in ./.env, else the manifest's default.
    #[arg(
        long = "variable",
        value_name = "KEY=VALUE | KEY=@FILE | @FILE.json | @FILE.toml"
    )]
    pub variables: Vec<String>,
    /// Limit of one request's guest work, in milliseconds (504 after it).
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Limit of one Redis message's handler, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub message_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long requests and Redis messages in flight
    /// may still run, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
    /// Directory of the compiled-component cache.
    #[arg(long, env = "RUNTIME_SHIM_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every component at start-up, ignoring the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Most client connections at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Most component instances alive at once (requests in flight plus
    /// Redis messages; each may use up to 64 MiB); more wait for one.
    #[arg(long, default_value_t = MAX_LIVE_INSTANCES)]
    pub max_instances: usize,
    /// A client must send a request's headers within this time, in
    /// milliseconds (idle keep-alive connections are closed after it too).
    #[arg(long, default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// Do not write a line per request.
    #[arg(long)]
    pub quiet: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics, apart from the
    /// app's port. Default: no metrics, nothing counted.
    #[arg(long, env = "RUNTIME_SHIM_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log lines as text (default) or JSON objects.
    #[arg(long, env = log_format::ENV, default_value = "text")]
    pub log_format: log_format::LogFormat,
}

impl UpOptions {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn message_timeout(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The compiled-component (and pulled-blob) cache; `None` with `--no-cache`.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(CompileCache::default_dir)
    }

    pub fn json_logs(&self) -> bool {
        self.log_format == log_format::LogFormat::Json
    }
}
