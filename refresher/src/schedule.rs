//! `refresher run`: refresh now, then every interval, on a given clock.

use crate::clock::Clock;
use crate::refresh::{RefreshError, Refreshed, Refresher};
use std::future::Future;
use std::time::Duration;

/// Runs refreshes every `every` (measured from each run's start) until
/// `stop` resolves. `on_result` sees each run's result, for logs and tests.
pub async fn run<C: Clock>(
    refresher: &Refresher<C>,
    every: Duration,
    stop: impl Future<Output = ()>,
    mut on_result: impl FnMut(&Result<Refreshed, RefreshError>),
) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let started = refresher.clock.now();
        let result = refresher.refresh().await;
        on_result(&result);
        let next = started.plus(every);
        let wait = next.since(refresher.clock.now());
        tokio::select! {
            biased;
            _ = &mut stop => return,
            _ = refresher.clock.sleep(wait) => {}
        }
    }
}
