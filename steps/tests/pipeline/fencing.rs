//! Issue 10, case 3 (pipeline side): a promotion commits only while its
//! attempt holds the step's lease and the run is not being cancelled,
//! checked under lock in the promotion's own transaction; and the long
//! step, train, stops on its cancellation signal.

use crate::support::*;
use async_trait::async_trait;
use retrain_engine::{
    EngineError, Registry, RunStatus, Step, StepContext, StepError, StepOutcome, Tick, Worker, WorkerConfig,
};
use retrain_steps::ml::Split;
use retrain_steps::pipeline_wrapping;
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A step that always asks to be tried later: the thief's stand-in for
/// promote, so that taking the lease over does not promote by itself.
struct Decline;

#[async_trait]
impl Step for Decline {
    async fn run(&self, _: StepContext) -> Result<StepOutcome, StepError> {
        Err(StepError::retryable("declined"))
    }
}

/// Runs the real promote only after its lease expired and another worker
/// took the step over, and keeps what the stale attempt returned.
struct PromoteAfterLosingTheLease {
    inner: Arc<dyn Step>,
    pool: PgPool,
    thief: Worker,
    returned: Arc<Mutex<Option<Result<StepOutcome, StepError>>>>,
}

#[async_trait]
impl Step for PromoteAfterLosingTheLease {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        sqlx::query(
            "UPDATE steps SET lease_expires_at = clock_timestamp() - interval '1 second'
             WHERE run_id = $1 AND name = $2",
        )
        .bind(ctx.run_id)
        .bind(&ctx.step)
        .execute(&self.pool)
        .await
        .unwrap();
        match self.thief.tick().await.unwrap() {
            Tick::Executed(execution) => assert_eq!(execution.step, "promote", "{execution:?}"),
            other => panic!("the thief did not take promote over: {other:?}"),
        }
        let result = self.inner.run(ctx).await;
        *self.returned.lock().unwrap() = Some(result.clone());
        result
    }
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_promote_attempt_whose_lease_was_reclaimed_commits_no_promotion(pool: PgPool) {
    let env = lenient(&pool).await;
    let thief = Worker::new(
        retrain_engine::Engine::new(
            pool.clone(),
            Registry::new().register(pipeline_wrapping(env.clone(), |name, step| match name {
                "promote" => Arc::new(Decline),
                _ => step,
            })),
        ),
        WorkerConfig::new("thief"),
    );
    let returned = Arc::new(Mutex::new(None));
    let engine = engine_for(
        &pool,
        pipeline_wrapping(env, |name, step| match name {
            "promote" => Arc::new(PromoteAfterLosingTheLease {
                inner: step,
                pool: pool.clone(),
                thief: thief.clone(),
                returned: returned.clone(),
            }),
            _ => step,
        }),
    );
    // No heartbeat during the test: nothing extends the lease behind our back.
    let mut config = WorkerConfig::new("slow-worker");
    config.heartbeat = Duration::from_secs(600);
    config.lease = Duration::from_secs(1200);
    let worker = Worker::new(engine.clone(), config);
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..25], "users").await;
    let run = trigger(&engine).await;
    run_steps(&worker, &["collect", "merge", "train", "validate"]).await;

    let tick = worker.tick().await;
    assert!(matches!(tick, Err(EngineError::LeaseLost { .. })), "{tick:?}");
    let stale = returned.lock().unwrap().take().expect("the stale attempt ran");
    assert!(
        matches!(&stale, Err(StepError::Retryable(message)) if message.starts_with("lease lost")),
        "{stale:?}"
    );
    assert_eq!(champion_version(&pool).await, Some(1));
    let promoted: i64 = sqlx::query_scalar("SELECT count(*) FROM promotions WHERE run_id = $1")
        .bind(run.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(promoted, 0);
}

/// Asks for the run's cancel, then runs the real step: a cancel that comes
/// in while the step works.
struct CancelThenRun {
    inner: Arc<dyn Step>,
    engine: Arc<Mutex<Option<retrain_engine::Engine>>>,
    signal_step: bool,
}

#[async_trait]
impl Step for CancelThenRun {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let engine = self.engine.lock().unwrap().clone().expect("engine set");
        let cancelled = engine.cancel_run(ctx.run_id, "ops@example.com").await.unwrap();
        assert!(
            matches!(cancelled, retrain_engine::Cancelled::Requested(_)),
            "{cancelled:?}"
        );
        if self.signal_step {
            // What the heartbeat does when it sees the cancel.
            ctx.cancel.cancel();
        }
        self.inner.run(ctx).await
    }
}

/// An engine whose `step` asks for its run's cancel first.
fn cancelling(
    pool: &PgPool,
    env: retrain_steps::PipelineEnv,
    step: &'static str,
    signal_step: bool,
) -> retrain_engine::Engine {
    let slot = Arc::new(Mutex::new(None));
    let engine = engine_for(
        pool,
        pipeline_wrapping(env, |name, inner| {
            if name == step {
                Arc::new(CancelThenRun {
                    inner,
                    engine: slot.clone(),
                    signal_step,
                })
            } else {
                inner
            }
        }),
    );
    *slot.lock().unwrap() = Some(engine.clone());
    engine
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_cancel_requested_while_promote_runs_leaves_the_champion_and_ends_cancelled(pool: PgPool) {
    let env = lenient(&pool).await;
    // The step's signal is left alone: the fence alone must catch the cancel.
    let engine = cancelling(&pool, env, "promote", false);
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..25], "users").await;
    let run = finish(&worker(&engine), &engine, trigger(&engine).await.id).await;
    assert_eq!(run.status, RunStatus::Cancelled, "{:?}", run.outcome);
    assert_eq!(champion_version(&pool).await, Some(1));
    assert_eq!(count(&pool, "SELECT count(*) FROM promotions").await, 1);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn train_stops_on_its_cancellation_signal_and_stores_no_model(pool: PgPool) {
    let env = bootstrapped(&pool).await;
    let engine = cancelling(&pool, env, "train", true);
    let worker = worker(&engine);
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..25], "users").await;
    let run = trigger(&engine).await;
    let executions = run_steps(&worker, &["collect", "merge", "train"]).await;
    assert_eq!(executions[2].error.as_deref(), Some("cancelled"), "{:?}", executions[2]);
    let run = engine.get_run(run.id).await.unwrap().run;
    assert_eq!(run.status, RunStatus::Cancelled, "{:?}", run.outcome);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM versions").await,
        1,
        "no candidate stored"
    );
}
