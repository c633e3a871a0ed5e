//! What the serving benches share: clients predicting in a loop, what they
//! saw, and the swap lag of each promotion read from their answers.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The part of a predict answer the benches read.
#[derive(Deserialize)]
struct Answer {
    model_version: i32,
}

/// The part of a promotion answer the benches read.
#[derive(Deserialize)]
pub struct Promotion {
    pub version: i32,
    pub promoted_at: DateTime<Utc>,
}

/// What predicting clients saw.
#[derive(Default)]
pub struct Seen {
    /// (arrival, model version) of every answer.
    pub answers: Vec<(DateTime<Utc>, i32)>,
    pub failures: usize,
    pub first_failure: Option<String>,
}

impl Seen {
    /// Adds what another client saw.
    pub fn absorb(&mut self, other: Seen) {
        self.answers.extend(other.answers);
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    /// Requests sent, answered or not.
    pub fn requests(&self) -> usize {
        self.answers.len() + self.failures
    }

    /// The arrival of the first answer at or after `promotion` carrying its
    /// version; `answers` must be sorted by arrival.
    pub fn first_answer_of(&self, promotion: &Promotion) -> Option<DateTime<Utc>> {
        let from = self.answers.partition_point(|(at, _)| *at < promotion.promoted_at);
        self.answers[from..]
            .iter()
            .find(|(_, version)| *version == promotion.version)
            .map(|(at, _)| *at)
    }
}

/// Milliseconds from `from` to `to`.
pub fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

/// One client posting `inputs` (JSON bodies, in turn from `i`) to `url`
/// until `stop`.
pub async fn predict_loop(
    http: reqwest::Client,
    url: String,
    inputs: Arc<Vec<Vec<u8>>>,
    mut i: usize,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    while !stop.load(Ordering::Relaxed) {
        let body = inputs[i % inputs.len()].clone();
        i += 1;
        let sent = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match sent {
            Ok(r) if r.status() == 200 => r.json::<Answer>().await.map_err(|e| e.to_string()),
            Ok(r) => Err(format!("status {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(answer) => seen.answers.push((Utc::now(), answer.model_version)),
            Err(why) => {
                seen.failures += 1;
                seen.first_failure.get_or_insert(why);
            }
        }
    }
    seen
}
