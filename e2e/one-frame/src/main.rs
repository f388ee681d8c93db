//! `one-frame`: an emulator of the One-Frame rates service.
//!
//! It answers like the real container (as observed by its integrations): errors are HTTP 200
//! with `{"error": ...}`, one call counts once against a per-token daily
//! quota, bid/ask come from a seeded generator. On top it offers admin routes
//! so tests can read the call count and inject faults:
//!
//! - `GET /__admin/calls[?token=T]` → `{"calls": N}` (today's count)
//! - `POST /__admin/reset` → counts and faults back to zero
//! - `POST /__admin/fault` with `{"mode": "none|http500|hang|malformed|truncated|missing_pairs|error",
//!   "message": "...", "latency_ms": 0, "clock_offset_s": 0, "times": N}`

mod emulator;

use clap::Parser;
use emulator::{CountPolicy, Emulator};
use std::net::SocketAddr;
use std::sync::Arc;

use shared::currency::CurrencyList;
use shared::one_frame::PUBLIC_TOKEN;

#[derive(Parser, Debug)]
#[command(
    name = "one-frame",
    about = "Emulates the One-Frame rates service for local runs and tests"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The accepted token (header `token`). May be repeated.
    #[arg(long = "token", default_values_t = [PUBLIC_TOKEN.to_string()])]
    tokens: Vec<String>,
    /// Seed of the bid/ask generator: the same seed gives the same sequence.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Calls per token per UTC day.
    #[arg(long, default_value_t = 1000)]
    daily_quota: u64,
    /// Supported currencies (comma-separated); default: every ISO 4217 code.
    #[arg(long)]
    currencies: Option<CurrencyList>,
    /// Which calls count against the quota: `all` authenticated calls, or only
    /// `successful` ones.
    #[arg(long, value_enum, default_value_t = CountPolicy::All)]
    count: CountPolicy,
    /// Never reset the count at UTC midnight (like a container that only
    /// forgets on restart).
    #[arg(long)]
    no_daily_reset: bool,
    /// Log lines as text (default) or JSON objects.
    #[arg(long, env = log_format::ENV, default_value = "text")]
    log_format: log_format::LogFormat,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    log_format::init(args.log_format);
    let currencies = args
        .currencies
        .map(|l| l.0)
        .unwrap_or_else(|| shared::Currency::all().collect());
    let emulator = Arc::new(Emulator::new(emulator::Config {
        tokens: args.tokens,
        seed: args.seed,
        daily_quota: args.daily_quota,
        currencies,
        count: args.count,
        daily_reset: !args.no_daily_reset,
    }));
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e} (is the port taken? pick another with --listen)",
            args.listen
        )
    })?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, "listening on http://{addr}");
    emulator::serve(listener, emulator).await
}
