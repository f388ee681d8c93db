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
    /// Limit of one request's guest work (504 after it), e.g. 10s or 500ms.
    #[arg(long, default_value = "10s", value_parser = ops::duration::parse)]
    pub request_timeout: Duration,
    /// Limit of one Redis message's handler.
    #[arg(long, default_value = "10s", value_parser = ops::duration::parse)]
    pub message_timeout: Duration,
    /// On SIGTERM/SIGINT, how long requests and Redis messages in flight
    /// may still run.
    #[arg(long, default_value = "10s", value_parser = ops::duration::parse)]
    pub drain_timeout: Duration,
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
    /// At SIGTERM/SIGINT, keep serving for this long before the listener
    /// closes and the drain starts, while --readiness-path answers 503: the
    /// time a balancer takes to stop sending to a leaving instance. 0s
    /// closes at once, as spin up does.
    #[arg(long, env = "RUNTIME_SHIM_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_delay)]
    pub shutdown_delay: Duration,
    /// The app's readiness path (e.g. /readyz): answered 503
    /// `shutting_down` by the host during --shutdown-delay, whatever the
    /// component would say.
    #[arg(long, env = "RUNTIME_SHIM_READINESS_PATH", value_name = "PATH", value_parser = parse_path)]
    pub readiness_path: Option<String>,
    /// A client must send a request's headers within this time (idle
    /// keep-alive connections are closed after it too).
    #[arg(long, default_value = "10s", value_parser = ops::duration::parse)]
    pub header_read_timeout: Duration,
    /// The millisecond flags of earlier versions, refused with the name of
    /// the flag that replaced each.
    #[arg(long = "request-timeout-ms", hide = true, value_parser = renamed_request_timeout)]
    pub old_request_timeout: Option<Duration>,
    #[arg(long = "message-timeout-ms", hide = true, value_parser = renamed_message_timeout)]
    pub old_message_timeout: Option<Duration>,
    #[arg(long = "drain-timeout-ms", hide = true, value_parser = renamed_drain_timeout)]
    pub old_drain_timeout: Option<Duration>,
    #[arg(long = "header-read-timeout-ms", hide = true, value_parser = renamed_header_read_timeout)]
    pub old_header_read_timeout: Option<Duration>,
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

/// A duration as [`ops::duration::parse`] reads it, or none (`0s`, `0`).
fn parse_delay(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" | "0s" | "0ms" => Ok(Duration::ZERO),
        other => ops::duration::parse(other),
    }
}

fn parse_path(text: &str) -> Result<String, String> {
    match text.starts_with('/') {
        true => Ok(text.to_string()),
        false => Err(format!("{text:?} is not a path: it must start with /")),
    }
}

/// A refusal of `--<name>-ms N` that names `--<name> Nms`.
macro_rules! renamed {
    ($($parser:ident => $flag:literal),* $(,)?) => {$(
        fn $parser(value: &str) -> Result<Duration, String> {
            Err(format!(
                "durations are written with a unit now: use {} {}ms (or e.g. 10s)",
                $flag,
                value.trim()
            ))
        }
    )*};
}

renamed! {
    renamed_request_timeout => "--request-timeout",
    renamed_message_timeout => "--message-timeout",
    renamed_drain_timeout => "--drain-timeout",
    renamed_header_read_timeout => "--header-read-timeout",
}

impl UpOptions {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        up: UpOptions,
    }

    fn parse(args: &[&str]) -> Result<UpOptions, String> {
        Cli::try_parse_from([&["runtime-shim"], args].concat())
            .map(|c| c.up)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_take_a_unit_and_old_flags_name_their_successor() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.request_timeout, Duration::from_secs(10));
        let o = parse(&["--request-timeout", "500ms", "--drain-timeout", "1m"]).unwrap();
        assert_eq!(
            (o.request_timeout, o.drain_timeout),
            (Duration::from_millis(500), Duration::from_secs(60))
        );
        let e = parse(&["--request-timeout", "500"]).unwrap_err();
        assert!(e.contains("500ms"), "{e}");
        for (old, new) in [
            ("--request-timeout-ms", "--request-timeout 250ms"),
            ("--message-timeout-ms", "--message-timeout 250ms"),
            ("--drain-timeout-ms", "--drain-timeout 250ms"),
            ("--header-read-timeout-ms", "--header-read-timeout 250ms"),
        ] {
            let e = parse(&[old, "250"]).unwrap_err();
            assert!(e.contains(new), "{old}: {e}");
        }
    }
}
