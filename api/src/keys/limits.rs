//! Per-key limits: a token bucket each for predictions and feedback, and a
//! cap on feedback rows per key per clock hour, lower for a key a quarantine
//! rule names (screening's or an operator's). The counters live in each API
//! process's memory, not in the database: nothing is written per request,
//! and with N replicas behind a balancer a key gets up to N times each limit
//! (set them per replica accordingly).

use super::Caller;
use crate::error::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket's settings: `per_second` refill (0: no limit) and `burst` capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// Every limit of a key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSettings {
    pub predict: Rate,
    pub feedback: Rate,
    /// Feedback rows a key may send per clock hour (0: no cap).
    pub hourly_cap: u64,
    /// The cap of a key a quarantine rule in force names.
    pub flagged_hourly_cap: u64,
}

/// What a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// This many predictions.
    Predict(u32),
    /// One feedback row.
    Feedback,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes `n` tokens, or says how many seconds until there are enough.
    fn take(&mut self, rate: Rate, n: f64, now: Instant) -> Result<(), u32> {
        if rate.per_second <= 0.0 {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
        if self.tokens >= n {
            self.tokens -= n;
            return Ok(());
        }
        // A request larger than the burst can never pass: wait one full refill.
        let missing = (n.min(rate.burst) - self.tokens).max(0.0);
        Err((missing / rate.per_second).ceil().max(1.0) as u32)
    }
}

#[derive(Debug)]
struct KeyState {
    predict: Bucket,
    feedback: Bucket,
    /// The clock hour (since the epoch) `rows` counts.
    hour: u64,
    rows: u64,
}

/// Every key's counters in this process.
#[derive(Debug)]
pub struct Limiter {
    settings: LimitSettings,
    keys: Mutex<HashMap<Arc<str>, KeyState>>,
}

impl Limiter {
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            settings,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Spends from the caller's budget.
    ///
    /// # Errors
    /// 429 `rate_limited` (bucket empty) or `hourly_cap` (too many rows this
    /// hour), with Retry-After.
    pub fn spend(&self, caller: &Caller, spend: Spend) -> Result<(), ApiError> {
        let s = self.settings;
        let unlimited = match spend {
            Spend::Predict(_) => s.predict.per_second <= 0.0,
            Spend::Feedback => s.feedback.per_second <= 0.0 && s.hourly_cap == 0 && s.flagged_hourly_cap == 0,
        };
        if unlimited {
            return Ok(());
        }
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = keys.entry(caller.name.clone()).or_insert_with(|| KeyState {
            predict: Bucket {
                tokens: s.predict.burst,
                at: now,
            },
            feedback: Bucket {
                tokens: s.feedback.burst,
                at: now,
            },
            hour: 0,
            rows: 0,
        });
        match spend {
            Spend::Predict(n) => state
                .predict
                .take(s.predict, f64::from(n), now)
                .map_err(|wait| too_many("rate_limited", "too many predictions for this key", wait)),
            Spend::Feedback => {
                let (hour, into_hour) = clock_hour();
                if state.hour != hour {
                    (state.hour, state.rows) = (hour, 0);
                }
                let cap = if caller.flagged {
                    s.flagged_hourly_cap
                } else {
                    s.hourly_cap
                };
                if cap > 0 && state.rows >= cap {
                    let message = format!("this key sent its {cap} feedback rows for this hour");
                    return Err(too_many("hourly_cap", message, (3600 - into_hour) as u32));
                }
                state
                    .feedback
                    .take(s.feedback, 1.0, now)
                    .map_err(|wait| too_many("rate_limited", "too much feedback for this key", wait))?;
                state.rows += 1;
                Ok(())
            }
        }
    }
}

/// The clock hour since the epoch, and the seconds into it.
fn clock_hour() -> (u64, u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (now / 3600, now % 3600)
}

fn too_many(code: &'static str, message: impl Into<String>, wait: u32) -> ApiError {
    ApiError {
        retry_after: Some(wait.max(1)),
        ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let rate = Rate {
            per_second: 10.0,
            burst: 3.0,
        };
        let start = Instant::now();
        let mut bucket = Bucket { tokens: 3.0, at: start };
        for _ in 0..3 {
            assert_eq!(bucket.take(rate, 1.0, start), Ok(()));
        }
        assert_eq!(bucket.take(rate, 1.0, start), Err(1));
        assert_eq!(bucket.take(rate, 1.0, start + Duration::from_millis(100)), Ok(()));
        // A long pause refills to the burst only.
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.take(rate, 3.0, later), Ok(()));
        assert_eq!(bucket.take(rate, 1.0, later), Err(1));
        // Larger than the burst: refused, and told to wait one full refill.
        assert_eq!(bucket.take(rate, 50.0, later + Duration::from_secs(1)), Err(1));
    }

    #[test]
    fn the_hourly_cap_is_lower_for_a_flagged_key() {
        let limiter = Limiter::new(LimitSettings {
            predict: Rate {
                per_second: 0.0,
                burst: 0.0,
            },
            feedback: Rate {
                per_second: 0.0,
                burst: 0.0,
            },
            hourly_cap: 5,
            flagged_hourly_cap: 2,
        });
        let honest = Caller {
            name: "honest".into(),
            ..Caller::bootstrap_admin()
        };
        let flagged = Caller {
            name: "flagged".into(),
            flagged: true,
            ..Caller::bootstrap_admin()
        };
        let sent = |caller: &Caller| {
            (0..10)
                .take_while(|_| limiter.spend(caller, Spend::Feedback).is_ok())
                .count()
        };
        assert_eq!((sent(&honest), sent(&flagged)), (5, 2));
        let refused = limiter.spend(&flagged, Spend::Feedback).unwrap_err();
        assert_eq!((refused.status.as_u16(), refused.code), (429, "hourly_cap"));
        assert!(refused.retry_after.is_some_and(|s| (1..=3600).contains(&s)));
    }
}
