//! The load. Users each predict at a steady pace and send feedback for
//! every fourth prediction: mostly the row's true label (rows of the data
//! set's pool split, which the demo plays users from), citing the
//! prediction; one in five a random valid row (features drawn within the
//! pool's range of each feature, a known label) with no prediction. An
//! operator triggers a run every 30 s (the first after 10 s) and every 20 s promotes a stored
//! model, alternating a rollback and a promotion forward.
//!
//! A failed request is any answer but 200 to a predict and 201 to a
//! feedback, or no answer. A 503 counts as failed: the database is up the
//! whole time, so a 503 here would mean the service ran out of something
//! (pool, queue) under a load it is meant to carry.

use crate::support::{Process, TOKEN};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use retrain_steps::ml::Example;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// Feedback for one prediction in this many.
const FEEDBACK_EVERY: u64 = 4;
/// Of the feedback, one in this many is a random row.
const RANDOM_EVERY: u64 = 5;
pub const RUN_EVERY: Duration = Duration::from_secs(30);
/// The first run waits for feedback to arrive (collect skips a run with
/// fewer than 20 new rows).
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(10);
pub const PROMOTE_EVERY: Duration = Duration::from_secs(20);
/// Failures kept verbatim for the report.
const KEEP_FAILURES: usize = 20;

/// What the users and the operator did.
#[derive(Debug, Default)]
pub struct Tally {
    pub predictions: AtomicU64,
    pub feedback: AtomicU64,
    pub failed: AtomicU64,
    pub failures: Mutex<Vec<String>>,
    /// Every feedback id the API acknowledged.
    pub acknowledged: Mutex<Vec<i64>>,
    pub runs_created: AtomicU64,
    pub runs_already_active: AtomicU64,
    pub promotions: AtomicU64,
    pub rollbacks: AtomicU64,
    pub operator_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.failures.lock().unwrap();
        if kept.len() < KEEP_FAILURES {
            kept.push(what);
        }
    }

    fn operator_error(&self, what: String) {
        self.operator_errors.lock().unwrap().push(what);
    }
}

/// What users send: the pool split's rows and the data set's shape.
#[derive(Debug)]
pub struct Traffic {
    pub rows: Vec<Example>,
    ranges: Vec<(f64, f64)>,
    labels: Vec<String>,
}

impl Traffic {
    pub fn new(rows: Vec<Example>) -> Traffic {
        let features = |r: &Example| r.input.features().expect("the wine data is tabular").to_vec();
        let width = features(&rows[0]).len();
        let ranges = (0..width)
            .map(|i| {
                rows.iter()
                    .map(|r| features(r)[i])
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)))
            })
            .collect();
        let mut labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        labels.sort_unstable();
        labels.dedup();
        Traffic { rows, ranges, labels }
    }

    fn random_row(&self, rng: &mut StdRng) -> (Vec<f64>, String) {
        let features = self
            .ranges
            .iter()
            .map(|&(lo, hi)| (rng.gen_range(lo..=hi) * 1000.0).round() / 1000.0)
            .collect();
        (features, self.labels[rng.gen_range(0..self.labels.len())].clone())
    }
}

/// One user until `until`: `per_sec` predictions a second (fewer if the
/// service is slower), with feedback as the module says.
pub async fn user(n: u64, base: String, traffic: Arc<Traffic>, per_sec: f64, until: Instant, tally: Arc<Tally>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(n);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut i = n * 7919;
    while Instant::now() < until {
        tick.tick().await;
        i += 1;
        let row = &traffic.rows[(i as usize) % traffic.rows.len()];
        let answer = post(
            &client,
            &format!("{base}/predict"),
            &json!({"features": row.input.features()}),
        )
        .await;
        let prediction = match answer {
            Ok((200, body)) => {
                tally.predictions.fetch_add(1, Ordering::Relaxed);
                body
            }
            other => {
                tally.fail(format!("predict: {other:?}"));
                continue;
            }
        };
        if !i.is_multiple_of(FEEDBACK_EVERY) {
            continue;
        }
        let body = if (i / FEEDBACK_EVERY).is_multiple_of(RANDOM_EVERY) {
            let (features, label) = traffic.random_row(&mut rng);
            json!({"features": features, "correct_label": label, "source": "soak-random"})
        } else {
            json!({
                "features": row.input.features(),
                "correct_label": row.label,
                "prediction_id": prediction["prediction_id"],
                "source": "soak-user",
            })
        };
        match post(&client, &format!("{base}/feedback"), &body).await {
            Ok((201, answer)) => {
                tally.feedback.fetch_add(1, Ordering::Relaxed);
                let id = answer["feedback_id"].as_i64().expect("a feedback id");
                tally.acknowledged.lock().unwrap().push(id);
            }
            other => tally.fail(format!("feedback: {other:?}")),
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<(u16, Value), String> {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// The operator until `until`: a run after [`FIRST_RUN_AFTER`] and every
/// [`RUN_EVERY`] after it; a
/// promotion every [`PROMOTE_EVERY`], alternately back to the version below
/// the champion (a rollback) and forward to the newest version that is not
/// the champion.
pub async fn operator(api: &Process, until: Instant, tally: &Tally) {
    let start = Instant::now();
    let (mut next_run, mut next_promotion) = (start + FIRST_RUN_AFTER, start + PROMOTE_EVERY);
    let mut rollback = true;
    loop {
        let now = Instant::now();
        if now >= until {
            return;
        }
        if now >= next_run {
            next_run += RUN_EVERY;
            trigger(api, tally).await;
        }
        if now >= next_promotion {
            next_promotion += PROMOTE_EVERY;
            if promote(api, rollback, tally).await {
                rollback = !rollback;
            }
        }
        tokio::time::sleep_until(next_run.min(next_promotion).min(until)).await;
    }
}

async fn trigger(api: &Process, tally: &Tally) {
    let response = api.admin_post("/runs", json!({"reason": "soak: every 30 s"})).await;
    match response.status().as_u16() {
        201 => {
            tally.runs_created.fetch_add(1, Ordering::Relaxed);
        }
        // The previous run is still going: the engine answers with it.
        200 => {
            tally.runs_already_active.fetch_add(1, Ordering::Relaxed);
        }
        status => tally.operator_error(format!(
            "POST /runs: {status} {}",
            response.text().await.unwrap_or_default()
        )),
    }
}

/// `false` if fewer than two versions are stored yet (nothing to alternate).
async fn promote(api: &Process, rollback: bool, tally: &Tally) -> bool {
    let models = api.json("/models/wine-quality/versions").await;
    let mut versions: Vec<(i64, bool)> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["version"].as_i64().unwrap(),
                m["is_champion"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    versions.sort_unstable();
    let Some(champion) = versions.iter().find(|(_, c)| *c).map(|(v, _)| *v) else {
        tally.operator_error("no champion".into());
        return false;
    };
    let others: Vec<i64> = versions.iter().map(|(v, _)| *v).filter(|v| *v != champion).collect();
    let below = others.iter().copied().filter(|v| *v < champion).max();
    let target = match (rollback, below, others.last()) {
        (_, _, None) => return false,
        (true, Some(below), _) => below,
        (_, _, Some(&newest)) => newest,
    };
    let response = api
        .client
        .post(api.url(&format!("/models/wine-quality/versions/{target}/promote")))
        .bearer_auth(TOKEN)
        .header("x-retrain-actor", "soak@example.com")
        .json(&json!({"reason": "soak: promote or roll back every 20 s"}))
        .send()
        .await;
    match response {
        Ok(r) if r.status() == 200 => {
            let counter = if target < champion {
                &tally.rollbacks
            } else {
                &tally.promotions
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(r) => tally.operator_error(format!(
            "promote {target}: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        )),
        Err(e) => tally.operator_error(format!("promote {target}: {e}")),
    }
    true
}
