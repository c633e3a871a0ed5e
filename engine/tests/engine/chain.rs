//! A running worker carries a run from step to step: the commit of a step
//! that succeeds also leases the run's next step to the same worker, with
//! the same events as a claim would write. A step leased that way when
//! shutdown comes is handed back unspent.

use crate::support::*;
use retrain_engine::{Pipeline, RunStatus, StepStatus, Worker, WorkerConfig};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The transaction that wrote each event of the run, as (step, to, xid).
async fn commits(pool: &PgPool, run_id: uuid::Uuid) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT coalesce(step, 'run'), to_status, xmin::text FROM run_events WHERE run_id = $1 ORDER BY id")
        .bind(run_id)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_running_worker_leases_the_next_step_in_the_commit_of_the_step_before(pool: PgPool) {
    let journal = journal();
    let engine = engine(&pool, vec![echo_pipeline("p", 3, &journal)]);
    let mut config = WorkerConfig::new("carrier");
    config.poll_interval = Duration::from_millis(20);
    let worker = Worker::new(engine.clone(), config);
    let id = worker.id().to_owned();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    let run = create(&engine, "p").await;
    assert_status(&ended(&engine, run.id).await, RunStatus::Succeeded);
    shutdown.cancel();
    handle.await.unwrap();

    // The same history as a claim per step would write.
    assert_eq!(
        transitions(&engine, run.id).await,
        vec![
            t("run", "", "queued"),
            t("run", "queued", "running"),
            t("a", "pending", "running"),
            t("a", "running", "succeeded"),
            t("b", "pending", "running"),
            t("b", "running", "succeeded"),
            t("c", "pending", "running"),
            t("c", "running", "succeeded"),
            t("run", "running", "succeeded"),
        ]
    );
    let detail = engine.get_run(run.id).await.unwrap();
    assert!(
        detail.events.iter().skip(1).all(|e| e.actor == id),
        "{:?}",
        detail.events
    );
    assert_eq!(
        output_of(&detail.steps[2].output),
        serde_json::json!({"step": "c", "saw": ["a", "b"]})
    );
    // Five commits: create; claim of a (the run starts); a succeeded + b
    // leased; b succeeded + c leased; c succeeded + run succeeded.
    let xids: Vec<String> = commits(&pool, run.id).await.into_iter().map(|(.., xid)| xid).collect();
    let groups: Vec<usize> = xids.chunk_by(|a, b| a == b).map(<[String]>::len).collect();
    assert_eq!(groups, vec![1, 2, 2, 2, 2], "{xids:?}");
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn at_shutdown_the_step_leased_by_the_last_commit_is_handed_back_unspent(pool: PgPool) {
    // Step a finishes on the shutdown signal, so its commit leases b just as
    // the worker is stopping.
    let gate = Gate::new(OnSignal::Finish);
    let journal = journal();
    let pipeline =
        Pipeline::new("p")
            .step("a", fast_retry(3), gate.clone())
            .step("b", fast_retry(3), Echo(journal.clone()));
    let engine = engine(&pool, vec![pipeline]);
    let mut config = WorkerConfig::new("stopping");
    config.poll_interval = Duration::from_millis(20);
    config.shutdown_grace = Duration::from_secs(5);
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(Worker::new(engine.clone(), config).run(shutdown.clone()));
    let run = create(&engine, "p").await;
    gate.started().await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the worker stops")
        .unwrap();

    let detail = engine.get_run(run.id).await.unwrap();
    assert_eq!(detail.run.status, RunStatus::Running);
    let b = &detail.steps[1];
    assert_eq!(detail.steps[0].status, StepStatus::Succeeded);
    assert_eq!(b.status, StepStatus::Pending);
    assert_eq!((b.attempt, b.retry_base), (1, 1), "the handed-back attempt is refunded");
    assert!(journal.lock().unwrap().is_empty(), "b never ran");
    assert_eq!(
        transitions(&engine, run.id).await[4..],
        [t("b", "pending", "running"), t("b", "running", "pending")]
    );

    // Another worker takes b up and finishes the run.
    let run = drive_to_end(&worker(&engine, "next"), &engine, run.id).await;
    assert_status(&run, RunStatus::Succeeded);
    assert_eq!(journal.lock().unwrap().len(), 1);
}
