//! Whether this replica serves the champion. A load that fails is retried
//! (see `listener`), but until it succeeds the replica answers with an older
//! model; past a bound it must stop looking ready, so a load balancer sends
//! traffic to replicas that serve the champion.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a replica may fail to load the champion before `/ready` says it
/// is not ready. Retries start at 100 ms and back off to 5 s, so the bound
/// spans several attempts; a promotion takes milliseconds when loads work.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(10);

/// Since when, and why, the served model may not be the champion.
#[derive(Debug, Clone)]
pub struct Behind {
    pub since: Instant,
    pub reason: String,
}

/// The replica's standing against the champion.
#[derive(Debug)]
pub struct Freshness {
    stale_after: Duration,
    behind: Mutex<Option<Behind>>,
}

impl Freshness {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            stale_after,
            behind: Mutex::new(None),
        }
    }

    /// A load of the champion (or the look-up of which model it is) failed;
    /// the replica has been behind since the first such failure.
    pub fn behind(&self, reason: String) {
        let mut behind = self.behind.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let since = behind.as_ref().map_or_else(Instant::now, |b| b.since);
        *behind = Some(Behind { since, reason });
    }

    /// The served model is the champion (or there is none).
    pub fn current(&self) {
        *self.behind.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Whether a load of a champion has failed since the last full catch-up.
    pub fn is_behind(&self) -> bool {
        self.behind
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// `Some` once the replica has been behind for longer than the bound.
    pub fn stale(&self) -> Option<Behind> {
        let behind = self.behind.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        behind.clone().filter(|b| b.since.elapsed() >= self.stale_after)
    }
}

impl Default for Freshness {
    fn default() -> Self {
        Self::new(DEFAULT_STALE_AFTER)
    }
}
