//! `refresher once` / `refresher run --every 4m` / `refresher status` /
//! `refresher exporter`.
//!
//! Exit codes: 0 refreshed (or a newer snapshot was already stored),
//! 1 transient failure, 2 configuration error, 3 authentication error,
//! 4 quota exhausted for today; `status` adds its verdicts (10 quota at
//! risk, 11 stale, 12 missing).

use clap::Parser;
use ops::valkey::ConnectError;
use refresher::client::{OneFrameClient, usd_legs};
use refresher::clock::SystemClock;
use refresher::config::{Cli, Command, Settings};
use refresher::quota::QuotaGuard;
use refresher::refresh::{Backoff, RefreshError, Refreshed, Refresher};
use refresher::store::{SnapshotStore, WriteOutcome};
use refresher::{schedule, status, valkey};
use shared::Timestamp;
use std::process::ExitCode;

fn build(s: &Settings) -> Result<Refresher<SystemClock>, RefreshError> {
    let client = OneFrameClient::new(&s.one_frame_url, s.one_frame_token.clone(), s.connect_timeout)
        .map_err(RefreshError::Config)?;
    Ok(Refresher {
        clock: SystemClock,
        valkey: valkey::open(s).map_err(RefreshError::Config)?,
        connect_timeout: s.connect_timeout,
        client,
        quota: QuotaGuard::new(s.daily_quota),
        store: SnapshotStore::new(s.rates_key.clone(), s.rates_channel.clone()),
        pairs: usd_legs(&s.currencies.0),
        deadline: s.deadline,
        request_timeout: s.request_timeout,
        backoff: Backoff {
            initial: s.retry_initial,
            max: s.retry_max,
        },
        schedule_interval: s.schedule_interval,
    })
}

fn report(result: &Result<Refreshed, RefreshError>, budget: u64) {
    match result {
        Ok(r) => {
            let what = match r.outcome {
                WriteOutcome::Written => format!("stored snapshot seq={} and published it", r.seq),
                WriteOutcome::KeptNewer => {
                    format!("kept the stored snapshot, which is newer than seq={}", r.seq)
                }
            };
            tracing::info!(
                seq = r.seq,
                attempts = r.attempts,
                calls_today = r.calls_today,
                budget,
                "{what} ({} attempt(s); {} of {budget} One-Frame calls used today)",
                r.attempts,
                r.calls_today
            );
        }
        Err(e) => tracing::error!(exit_code = e.exit_code(), "{e}"),
    }
}

/// `refresher status`: read-only, so it needs no One-Frame and spends nothing.
async fn status(s: &Settings, json: bool) -> ExitCode {
    let fail = |code: u8, what: String| {
        tracing::error!(exit_code = code, "{what}");
        ExitCode::from(code)
    };
    let valkey = match valkey::open(s) {
        Ok(v) => v,
        Err(e) => return fail(2, e),
    };
    let url = valkey.redacted();
    let now = Timestamp::now();
    let (mut conn, node) = match valkey.connect_node(s.connect_timeout, s.connect_timeout).await {
        Ok(c) => c,
        Err(ConnectError::Config(why)) => return fail(2, why),
        Err(ConnectError::Unavailable(why)) => return fail(1, why),
    };
    let limit = s.connect_timeout * 2;
    let reading = match tokio::time::timeout(
        limit,
        status::read(&mut conn, &s.rates_key, now, &node, valkey.has_sentinels()),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return fail(1, format!("cannot read Valkey at {url}: {}", valkey.describe(&e))),
        Err(_) => return fail(1, format!("Valkey at {url} did not answer within {limit:?}")),
    };
    let report = status::judge(&reading, now, s.daily_quota, s.schedule_interval);
    if json {
        println!("{}", serde_json::to_string(&report).expect("a status serializes"));
    } else {
        print!("{}", status::render_text(&report, s.schedule_interval));
    }
    ExitCode::from(report.verdict.exit_code())
}

/// `refresher exporter`: serves until SIGTERM; a scrape never fails.
async fn exporter(s: &Settings, listen: std::net::SocketAddr) -> ExitCode {
    let valkey = match valkey::open(s) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(exit_code = 2, "{e}");
            return ExitCode::from(2);
        }
    };
    let listener = match ops::metrics::bind(listen, "--listen").await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(exit_code = 2, "{e}");
            return ExitCode::from(2);
        }
    };
    let url = valkey.redacted();
    tracing::info!(
        address = %listen,
        valkey = url,
        "serving metrics at http://{listen}/metrics, read from {url} key {:?} at each scrape",
        s.rates_key
    );
    let exporter = refresher::exporter::Exporter::new(
        valkey,
        s.rates_key.clone(),
        s.daily_quota,
        s.schedule_interval,
        s.connect_timeout,
    );
    ops::metrics::serve(listener, std::sync::Arc::new(exporter), ops::shutdown()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    log_format::init(cli.log_format);
    let (settings, every) = match &cli.command {
        Command::Once(s) => (s, None),
        Command::Run { settings, every } => (settings, Some(*every)),
        Command::Status { settings, json } => return status(settings, *json).await,
        Command::Exporter { settings, listen } => return exporter(settings, *listen).await,
    };
    let fail = |e: RefreshError| {
        tracing::error!(exit_code = e.exit_code(), "{e}");
        ExitCode::from(e.exit_code() as u8)
    };
    let refresher = match build(settings) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let valkey = valkey::redact(&settings.valkey_url);
    tracing::info!(
        pairs = refresher.pairs.len(),
        one_frame = refresher.client.rates_url(),
        valkey,
        rates_key = settings.rates_key,
        "{} pairs from {} into {valkey} key {:?}",
        refresher.pairs.len(),
        refresher.client.rates_url(),
        settings.rates_key
    );
    match every {
        None => {
            let result = refresher.refresh().await;
            report(&result, settings.daily_quota);
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => ExitCode::from(e.exit_code() as u8),
            }
        }
        Some(every) => {
            schedule::run(&refresher, every, ops::shutdown(), |r| {
                report(r, settings.daily_quota)
            })
            .await;
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
    }
}
