//! Shared setup: a bootstrapped database, an engine with the real pipeline,
//! and feedback drawn from the stored split.

use retrain_engine::{Engine, NewRun, Registry, Run, StepContext, Tick, TriggerKind, Worker, WorkerConfig};
use retrain_steps::data::input_hash;
use retrain_steps::ml::{Example, GateConfig, Split};
use retrain_steps::pipeline::{FIRST_MODEL, run_params};
use retrain_steps::store::feedback::{self, NewFeedback};
use retrain_steps::store::models;
use retrain_steps::{PipelineConfig, PipelineEnv, bootstrap::bootstrap, recent};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub fn env(pool: &PgPool) -> PipelineEnv {
    retrain_testkit::telemetry::init();
    PipelineEnv {
        pool: pool.clone(),
        config: Arc::new(PipelineConfig::default()),
    }
}

/// `env` with merge's screening off, to test what comes after it alone.
pub fn screening_off(env: PipelineEnv) -> PipelineEnv {
    let mut config = (*env.config).clone();
    config.screening.enabled = false;
    PipelineEnv {
        config: Arc::new(config),
        ..env
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
            subject: FIRST_MODEL,
            trigger: TriggerKind::Manual,
            params: run_params(FIRST_MODEL),
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

/// The wine model's id.
pub async fn wine_id(pool: &PgPool) -> i32 {
    models::by_name(&mut *pool.acquire().await.unwrap(), FIRST_MODEL)
        .await
        .expect("the wine model is registered")
        .id
}

/// Stores `rows` as the wine model's feedback from `source`.
pub async fn send_feedback(pool: &PgPool, rows: &[Example], source: &str) -> Vec<i64> {
    send_feedback_to(pool, wine_id(pool).await, rows, source).await
}

/// Stores `rows` as feedback of the model `model_id` from `source`.
pub async fn send_feedback_to(pool: &PgPool, model_id: i32, rows: &[Example], source: &str) -> Vec<i64> {
    let rows: Vec<NewFeedback> = rows
        .iter()
        .map(|e| NewFeedback {
            model_id,
            input: e.input.clone(),
            correct_label: e.label.clone(),
            prediction_id: None,
            predicted_label: None,
            model_version: None,
            source: Some(source.to_owned()),
            sub_label: None,
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

/// How many of the rows' distinct (normalized) inputs train: those the
/// default recent share does not hold out of training.
pub fn trained_inputs(rows: &[Example]) -> i32 {
    let share = PipelineConfig::default().gate.recent_share;
    let kept: std::collections::HashSet<_> = rows
        .iter()
        .map(|e| input_hash(&e.input))
        .filter(|hash| !recent::held_out(hash, share))
        .collect();
    kept.len() as i32
}

/// How many distinct inputs the rows hold (later duplicates supersede earlier ones).
pub fn distinct_inputs(rows: &[Example]) -> i32 {
    let keys: std::collections::HashSet<Vec<u64>> = rows
        .iter()
        .map(|e| {
            let features = e.input.features().expect("wine rows are tabular");
            features.iter().map(|x| x.to_bits()).collect()
        })
        .collect();
    keys.len() as i32
}

/// Settings whose gate passes any candidate: for tests of what happens
/// around the verdict rather than of the verdict itself.
pub fn lenient_config() -> PipelineConfig {
    PipelineConfig {
        gate: GateConfig {
            accuracy_floor: 0.0,
            recall_margin: 1.0,
            min_class_support: usize::MAX,
            margin: 1.0,
            ..GateConfig::default()
        },
        ..PipelineConfig::default()
    }
}

/// A bootstrapped database whose pipeline has the [`lenient_config`] gate.
pub async fn lenient(pool: &PgPool) -> PipelineEnv {
    let env = PipelineEnv {
        pool: pool.clone(),
        config: Arc::new(lenient_config()),
    };
    bootstrap(pool, &env.config).await.expect("bootstrap");
    env
}

/// Ticks until each named step has executed once, in order (polling while
/// idle, 60 s at most), and returns the executions.
pub async fn run_steps(worker: &Worker, steps: &[&str]) -> Vec<retrain_engine::Execution> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done = Vec::new();
    for step in steps {
        loop {
            assert!(Instant::now() < deadline, "step {step} never ran");
            match worker.tick().await.unwrap() {
                Tick::Executed(execution) => {
                    assert_eq!(execution.step, *step, "{execution:?}");
                    done.push(execution);
                    break;
                }
                Tick::Idle => tokio::time::sleep(Duration::from_millis(20)).await,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    done
}

/// The context a worker would give `step` of the run now (with the persisted
/// outputs of the steps before it), for calling a step directly.
pub async fn context_of(engine: &Engine, run_id: Uuid, step: &str) -> StepContext {
    let detail = engine.get_run(run_id).await.unwrap();
    let record = detail.steps.iter().find(|s| s.name == step).expect("the step exists");
    StepContext {
        run_id,
        pipeline: detail.run.pipeline.clone(),
        step: step.to_owned(),
        trigger: detail.run.trigger,
        params: detail.run.params.clone(),
        outputs: detail
            .steps
            .iter()
            .filter(|s| s.position < record.position)
            .filter_map(|s| Some((s.name.clone(), s.output.clone()?)))
            .collect(),
        attempt: record.attempt,
        lease_owner: record.lease_owner.clone().unwrap_or_default(),
        cancel: CancellationToken::new(),
    }
}

/// The wine model's champion version now.
pub async fn champion_version(pool: &PgPool) -> Option<i32> {
    champion_version_of(pool, wine_id(pool).await).await
}

/// A model's champion version now.
pub async fn champion_version_of(pool: &PgPool, model_id: i32) -> Option<i32> {
    let mut conn = pool.acquire().await.unwrap();
    retrain_steps::store::promotions::champion(&mut conn, model_id)
        .await
        .unwrap()
        .map(|(_, version)| version)
}

/// The wine model as registered.
pub async fn wine_model(pool: &PgPool) -> models::ModelSpec {
    models::by_name(&mut *pool.acquire().await.unwrap(), FIRST_MODEL)
        .await
        .expect("the wine model is registered")
}
