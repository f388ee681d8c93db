//! Command line and environment (refresher/README.md; `--help` lists the flags).

use clap::{Args, Parser, Subcommand};
use shared::Currency;
use shared::currency::CurrencyList;
use std::time::Duration;

pub use shared::one_frame::PUBLIC_TOKEN;

#[derive(Parser, Debug)]
#[command(
    name = "refresher",
    about = "Fetches USD rates from One-Frame into Valkey, within the daily quota"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as text (default) or JSON objects.
    #[arg(long, global = true, env = log_format::ENV, default_value = "text")]
    pub log_format: log_format::LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Refresh once and exit (the CronJob's mode).
    Once(Settings),
    /// Refresh now and then every `--every` until interrupted (local runs).
    Run {
        #[command(flatten)]
        settings: Settings,
        /// Time between refreshes, e.g. 4m, 30s.
        #[arg(long, env = "REFRESH_EVERY", default_value = "4m", value_parser = ops::duration::parse)]
        every: Duration,
    },
    /// Read-only report: the snapshot, its freshness, today's calls, the
    /// last run and a verdict (exit 0 ok, 10 quota at risk, 11 stale, 12
    /// missing).
    Status {
        #[command(flatten)]
        settings: Settings,
        /// Print JSON instead of one screen of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve what `status` reads as Prometheus metrics at /metrics, reading
    /// Valkey at each scrape (read-only; long-running).
    Exporter {
        #[command(flatten)]
        settings: Settings,
        /// Address of the metrics endpoint.
        #[arg(long, env = "EXPORTER_LISTEN", default_value = "127.0.0.1:9464")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// One-Frame base URL (http only).
    #[arg(long, env = "ONE_FRAME_URL", default_value = "http://127.0.0.1:8080")]
    pub one_frame_url: String,
    /// One-Frame token (sent as the `token` header; never logged).
    #[arg(long, env = "ONE_FRAME_TOKEN", default_value = PUBLIC_TOKEN, hide_default_value = true, hide_env_values = true)]
    pub one_frame_token: String,
    /// Valkey URL, e.g. redis://:password@valkey:6379 (the password is never logged).
    #[arg(
        long,
        env = "VALKEY_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub valkey_url: String,
    /// Sentinels that name Valkey's primary (comma-separated URLs, e.g.
    /// rediss://:PASSWORD@valkey-sentinel:26379): the primary is asked of them
    /// at each connection, and --valkey-url then gives only the credentials,
    /// TLS and database. Unset: --valkey-url's own address (one Valkey).
    #[arg(long, env = "VALKEY_SENTINELS", value_delimiter = ',', hide_env_values = true)]
    pub valkey_sentinels: Vec<String>,
    /// The name the Sentinels watch the primary by.
    #[arg(long, env = "VALKEY_PRIMARY_NAME", default_value = "forex")]
    pub valkey_primary_name: String,
    /// Replicas that must hold the day's call count before One-Frame is
    /// called, and a snapshot before it counts as stored (WAIT). Default: 1
    /// with Sentinels, 0 without.
    #[arg(long, env = "VALKEY_REPLICA_ACKS")]
    pub valkey_replica_acks: Option<usize>,
    /// Currencies to quote against USD (ISO 4217, comma-separated).
    #[arg(long, env = "CURRENCIES", default_value = "AUD,CAD,CHF,EUR,GBP,NZD,JPY,SGD,USD", value_parser = parse_currencies)]
    pub currencies: CurrencyList,
    /// One-Frame calls allowed per UTC day, across all refreshers.
    #[arg(long, env = "ONE_FRAME_DAILY_QUOTA", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub daily_quota: u64,
    /// Valkey key of the snapshot.
    #[arg(long, env = "RATES_KEY", default_value = "rates")]
    pub rates_key: String,
    /// Channel told about each new snapshot.
    #[arg(long, env = "RATES_CHANNEL", default_value = "rates_updated")]
    pub rates_channel: String,
    /// A run, retries included, ends within this time.
    #[arg(long, env = "REFRESH_DEADLINE", default_value = "60s", value_parser = ops::duration::parse)]
    pub deadline: Duration,
    /// Limit of one One-Frame call.
    #[arg(long = "one-frame-timeout", env = "ONE_FRAME_TIMEOUT", default_value = "10s", value_parser = ops::duration::parse)]
    pub request_timeout: Duration,
    /// Limit for opening a connection (One-Frame and Valkey).
    #[arg(long, env = "CONNECT_TIMEOUT", default_value = "2s", value_parser = ops::duration::parse)]
    pub connect_timeout: Duration,
    /// First retry delay; doubles per retry up to --retry-max.
    #[arg(long, env = "RETRY_INITIAL", default_value = "500ms", value_parser = ops::duration::parse)]
    pub retry_initial: Duration,
    /// Longest retry delay.
    #[arg(long, env = "RETRY_MAX", default_value = "8s", value_parser = ops::duration::parse)]
    pub retry_max: Duration,
    /// The refresh schedule's interval; retries keep enough of the day's
    /// budget for the refreshes still due at this pace.
    #[arg(long, env = "SCHEDULE_INTERVAL", default_value = "4m", value_parser = ops::duration::parse)]
    pub schedule_interval: Duration,
}

/// A currency list with something to quote against USD.
fn parse_currencies(s: &str) -> Result<CurrencyList, String> {
    let list: CurrencyList = s.parse()?;
    if list.0.iter().all(|c| *c == Currency::USD) {
        return Err("list at least one currency besides USD".into());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_lists_need_something_to_quote() {
        assert!(parse_currencies("USD").is_err());
        assert!(parse_currencies("USD,QQQ").is_err());
        assert_eq!(parse_currencies("jpy,usd").unwrap().0.len(), 2);
    }

    #[test]
    fn the_token_never_shows_in_help() {
        use clap::CommandFactory;
        let help = Cli::command()
            .find_subcommand_mut("once")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains(PUBLIC_TOKEN), "{help}");
    }
}
