//! Retry policy: how many attempts a step gets and how long it waits between
//! them (exponential backoff with jitter, capped).

use rand::Rng;
use std::time::Duration;

/// Attempts and backoff for one step. Copied into the step's row when a run is
/// created, so a run keeps the policy it started with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts allowed per round (a run retry starts a new round).
    pub max_attempts: u32,
    /// Delay before the second attempt, before jitter.
    pub initial: Duration,
    /// Growth of the delay per failed attempt (at least 1).
    pub multiplier: f64,
    /// Upper bound of any delay, before jitter.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial: Duration::from_secs(1),
            multiplier: 4.0,
            cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn once() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Delay after the `failures`-th failed attempt of a round (1-based):
    /// `min(cap, initial * multiplier^(failures-1))`, then "equal jitter" keeps
    /// it between half and all of that, so delays still grow while retries from
    /// many runs spread out.
    pub fn delay_after(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let exponent = failures.saturating_sub(1).min(64) as i32;
        let base_ms =
            (self.initial.as_millis() as f64 * self.multiplier.powi(exponent)).min(self.cap.as_millis() as f64);
        let half = base_ms / 2.0;
        let jittered = half + rng.gen_range(0.0..=half.max(0.0));
        Duration::from_millis(jittered.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delays_grow_and_stop_at_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial: Duration::from_millis(100),
            multiplier: 4.0,
            cap: Duration::from_millis(5_000),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let delays: Vec<u128> = (1..=6).map(|n| policy.delay_after(n, &mut rng).as_millis()).collect();
        assert!((50..=100).contains(&delays[0]), "{delays:?}");
        assert!((200..=400).contains(&delays[1]), "{delays:?}");
        assert!((800..=1600).contains(&delays[2]), "{delays:?}");
        for capped in &delays[3..] {
            assert!((2_500..=5_000).contains(capped), "{delays:?}");
        }
    }
}
