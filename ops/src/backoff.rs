//! Capped exponential backoff with jitter: how every retry loop of the
//! project waits (the refresher between attempts, runtime-shim's Redis
//! trigger between reconnections), so that processes that failed together
//! do not retry in lockstep.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry `n` (1-based): `initial × 2^(n-1)` capped at
    /// `max`, then drawn uniformly from its upper half.
    pub fn delay(&self, n: u32, rng: &mut impl Rng) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << n.saturating_sub(1).min(16));
        let d = exp.min(self.max);
        let half = d / 2;
        half + Duration::from_nanos(rng.random_range(0..=half.as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_jittered_within_the_upper_half() {
        let b = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(8),
        };
        let mut rng = rand::rng();
        for (n, full) in [(1, 500), (2, 1000), (3, 2000), (5, 8000), (6, 8000), (40, 8000)] {
            let full = Duration::from_millis(full);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..200 {
                let d = b.delay(n, &mut rng);
                assert!(
                    d >= full / 2 && d <= full,
                    "retry {n}: {d:?} outside [{:?}, {full:?}]",
                    full / 2
                );
                seen.insert(d);
            }
            assert!(seen.len() > 10, "retry {n}: jittered");
        }
    }
}
