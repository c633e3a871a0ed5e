//! A worker that stops heartbeating loses its lease: another worker reclaims
//! the step and finishes the run, and the first worker's late commit is refused.
//! A worker that cannot heartbeat stops its step and commits nothing.

use crate::support::*;
use async_trait::async_trait;
use retrain_engine::{
    EngineError, Pipeline, RunStatus, Step, StepContext, StepError, StepOutcome, Tick, Worker, WorkerConfig,
};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn an_expired_lease_is_reclaimed_and_the_late_commit_refused(pool: PgPool) {
    let journal = journal();
    let engine = engine(&pool, vec![echo_pipeline("p", 3, &journal)]);
    let mut config = WorkerConfig::new("crashing");
    config.lease = Duration::from_millis(300);
    let crashing = Worker::new(engine.clone(), config);
    let survivor = worker(&engine, "survivor");
    let run = create(&engine, "p").await;

    // The first worker claims step a and then "crashes": no heartbeat, no commit.
    let claimed = crashing.claim().await.unwrap().expect("a step is due");
    assert_eq!((claimed.step.as_str(), claimed.attempt), ("a", 1));
    // While the lease holds, nobody else can take the step.
    assert_eq!(survivor.tick().await.unwrap(), Tick::Idle);

    // The survivor keeps ticking until the lease has expired and it can reclaim.
    let run = drive_to_end(&survivor, &engine, run.id).await;
    assert_status(&run, RunStatus::Succeeded);

    // The crashed worker wakes up and tries to commit its stale attempt.
    let late = crashing
        .complete(&claimed, Ok(StepOutcome::Continue(json!({"stale": true}))))
        .await;
    assert!(
        matches!(late, Err(EngineError::LeaseLost { attempt: 1, .. })),
        "{late:?}"
    );

    let detail = engine.get_run(run.id).await.unwrap();
    assert_eq!(detail.steps[0].attempt, 2);
    assert_ne!(detail.steps[0].output, Some(json!({"stale": true})));
    let reclaim = detail
        .events
        .iter()
        .find(|e| e.step.as_deref() == Some("a") && e.to_status == "pending")
        .expect("a reclaim event");
    assert_eq!(reclaim.actor, survivor.id());
    let reason = reclaim.reason.as_deref().unwrap();
    assert!(
        reason.contains(&format!("lease of {} expired", crashing.id())),
        "{reason}"
    );
    let a_runs: Vec<_> = transitions(&engine, run.id)
        .await
        .into_iter()
        .filter(|(step, ..)| step == "a")
        .collect();
    assert_eq!(
        a_runs,
        vec![
            t("a", "pending", "running"),
            t("a", "running", "pending"),
            t("a", "pending", "running"),
            t("a", "running", "succeeded"),
        ]
    );
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_heartbeat_keeps_a_long_step_leased(pool: PgPool) {
    struct Slow;
    #[async_trait]
    impl Step for Slow {
        async fn run(&self, _ctx: StepContext) -> Result<StepOutcome, StepError> {
            tokio::time::sleep(Duration::from_millis(3_000)).await;
            Ok(StepOutcome::Continue(json!({})))
        }
    }
    let engine = engine(&pool, vec![Pipeline::new("p").step("slow", fast_retry(1), Slow)]);
    let mut config = WorkerConfig::new("beating");
    // A heartbeat every 100 ms keeps a 1 s lease alive even on a loaded machine.
    config.lease = Duration::from_secs(1);
    config.heartbeat = Duration::from_millis(100);
    let beating = Worker::new(engine.clone(), config);
    let other = worker(&engine, "other");
    let run = create(&engine, "p").await;

    let busy = tokio::spawn(async move { beating.tick().await });
    // The step runs three times longer than the lease; the other worker keeps
    // looking and must never take it.
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(other.tick().await.unwrap(), Tick::Idle);
    }
    busy.await.unwrap().unwrap();
    assert_status(&engine.get_run(run.id).await.unwrap().run, RunStatus::Succeeded);
}

/// Takes its worker's only pool connection and holds it, so that worker's
/// heartbeat cannot reach the database; reports its stop signal, and once
/// the test lets it, returns `late`.
struct HogsThePool {
    pool: PgPool,
    late: Result<StepOutcome, StepError>,
    started: Notify,
    signalled: Notify,
    finish: Notify,
}

#[async_trait]
impl Step for HogsThePool {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let conn = self.pool.acquire().await?;
        self.started.notify_one();
        ctx.cancel.cancelled().await;
        self.signalled.notify_one();
        self.finish.notified().await;
        drop(conn);
        self.late.clone()
    }
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_worker_that_cannot_heartbeat_stops_its_step_and_its_late_result_is_refused(pool: PgPool) {
    // A step that returns a result after all, and one that stops on the signal.
    let lates = [
        Ok(StepOutcome::Continue(json!({"late": true}))),
        Err(StepError::Cancelled),
    ];
    for late in lates {
        // The blind worker has a pool of one connection, which its step holds.
        let blind_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let hog = Arc::new(HogsThePool {
            pool: blind_pool.clone(),
            late,
            started: Notify::new(),
            signalled: Notify::new(),
            finish: Notify::new(),
        });
        let blind_engine = engine(
            &blind_pool,
            vec![Pipeline::new("p").step("s", fast_retry(3), hog.clone())],
        );
        let mut config = WorkerConfig::new("blind");
        config.lease = Duration::from_secs(1);
        config.heartbeat = Duration::from_millis(100);
        let blind = Worker::new(blind_engine, config);
        let blind_id = blind.id().to_owned();
        // Another worker runs the same step, and succeeds.
        let journal = journal();
        let engine = engine(
            &pool,
            vec![Pipeline::new("p").step("s", fast_retry(3), Echo(journal.clone()))],
        );
        let survivor = worker(&engine, "survivor");
        let run = create(&engine, "p").await;

        let busy = tokio::spawn(async move { blind.tick().await });
        tokio::time::timeout(Duration::from_secs(10), hog.started.notified())
            .await
            .expect("the step starts");
        tokio::time::timeout(Duration::from_secs(10), hog.signalled.notified())
            .await
            .expect("a worker that cannot extend its lease signals its step to stop");

        let run = drive_to_end(&survivor, &engine, run.id).await;
        assert_status(&run, RunStatus::Succeeded);
        // The blind step returns late; nothing of it is committed.
        hog.finish.notify_one();
        let refused = tokio::time::timeout(Duration::from_secs(10), busy)
            .await
            .expect("the blind worker returns")
            .unwrap();
        assert!(
            matches!(refused, Err(EngineError::LeaseLost { attempt: 1, .. })),
            "{:?}: {refused:?}",
            hog.late
        );

        let detail = engine.get_run(run.id).await.unwrap();
        assert_eq!(detail.steps[0].attempt, 2);
        assert_eq!(detail.steps[0].output, Some(json!({"step": "s", "saw": []})));
        // The stopped step was a lost lease, not the run's cancel.
        assert!(detail.events.iter().all(|e| e.to_status != "cancelled"));
        let reclaim = detail
            .events
            .iter()
            .find(|e| e.to_status == "pending")
            .expect("a reclaim event");
        assert_eq!(reclaim.actor, survivor.id());
        assert!(
            reclaim
                .reason
                .as_deref()
                .unwrap()
                .contains(&format!("lease of {blind_id} expired")),
            "{reclaim:?}"
        );
        assert_eq!(journal.lock().unwrap().len(), 1);
        blind_pool.close().await;
    }
}
