//! Time as the refresher sees it. Production uses the wall clock; the
//! simulated-day test injects a clock that jumps, so 24 hours of schedule,
//! retries and quota days run in seconds.

use shared::Timestamp;
use std::future::Future;
use std::time::Duration;

/// The operation did not finish within its time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Waits for `d` to pass on this clock.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;

    /// Runs `f`, giving up once `d` has passed on this clock.
    fn timeout<F: Future + Send>(
        &self,
        d: Duration,
        f: F,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> + Send;
}

/// The wall clock, with tokio's timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }

    async fn timeout<F: Future + Send>(&self, d: Duration, f: F) -> Result<F::Output, Elapsed> {
        tokio::time::timeout(d, f).await.map_err(|_| Elapsed)
    }
}
