//! Shared setup: a bootstrapped database, an engine with the real pipeline,
//! and feedback drawn from the stored split.

use retrain_engine::{Engine, NewRun, Registry, Run, TriggerKind, Worker, WorkerConfig};
use retrain_steps::ml::{Example, Split};
use retrain_steps::store::feedback::{self, NewFeedback};
use retrain_steps::{PipelineConfig, PipelineEnv, bootstrap::bootstrap};
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub fn env(pool: &PgPool) -> PipelineEnv {
    retrain_testkit::telemetry::init();
    PipelineEnv {
        pool: pool.clone(),
        config: Arc::new(PipelineConfig::default()),
    }
}

pub async fn bootstrapped(pool: &PgPool) -> PipelineEnv {
    let env = env(pool);
    bootstrap(pool, &env.config).await.expect("bootstrap");
    env
}

pub fn engine_for(pool: &PgPool, pipeline: retrain_engine::Pipeline) -> Engine {
    Engine::new(pool.clone(), Registry::new().register(pipeline))
}

pub fn worker(engine: &Engine) -> Worker {
    let mut config = WorkerConfig::new("test-worker");
    config.heartbeat = Duration::from_millis(500);
    Worker::new(engine.clone(), config)
}

pub async fn trigger(engine: &Engine) -> Run {
    engine
        .create_run(NewRun {
            pipeline: retrain_steps::PIPELINE,
            trigger: TriggerKind::Manual,
            params: json!({}),
            requested_by: "tester",
        })
        .await
        .unwrap()
        .run()
        .clone()
}

/// Drives the run to its end with ticks (waiting out backoffs), 60 s at most.
pub async fn finish(worker: &Worker, engine: &Engine, run_id: Uuid) -> Run {
    retrain_testkit::drive_to_end(worker, engine, run_id, Duration::from_secs(60)).await
}

pub async fn split_rows(pool: &PgPool, split: Split) -> Vec<Example> {
    retrain_testkit::fixtures::split_rows(pool, split).await
}

pub async fn send_feedback(pool: &PgPool, rows: &[Example], source: &str) -> Vec<i64> {
    let rows: Vec<NewFeedback> = rows
        .iter()
        .map(|e| NewFeedback {
            features: e.features.clone(),
            correct_label: e.label,
            prediction_id: None,
            predicted_label: None,
            model_version: None,
            source: Some(source.to_owned()),
        })
        .collect();
    let mut conn = pool.acquire().await.unwrap();
    feedback::insert_many(&mut conn, &rows).await.unwrap()
}

/// Base rows whose labels 5 and 6 are swapped: a label-flipping attack on the
/// two majority classes.
pub async fn poison(pool: &PgPool, rows: usize) -> Vec<Example> {
    retrain_testkit::fixtures::label_flipped(split_rows(pool, Split::Base).await, rows)
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    retrain_testkit::db::count(pool, sql).await
}

/// How many distinct inputs the rows hold (later duplicates supersede earlier ones).
pub fn distinct_inputs(rows: &[Example]) -> i32 {
    let keys: std::collections::HashSet<Vec<u64>> = rows
        .iter()
        .map(|e| e.features.iter().map(|x| x.to_bits()).collect())
        .collect();
    keys.len() as i32
}
