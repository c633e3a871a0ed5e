//! Cancelling: a queued run ends at once; a running run stops at the next
//! step boundary, with its running step signalled and no further step started.

use crate::support::*;
use retrain_engine::{Cancelled, EngineError, Pipeline, RunStatus, StepStatus, Tick};
use sqlx::PgPool;
use std::time::Duration;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn cancelling_a_running_run_stops_it_before_the_next_step(pool: PgPool) {
    let journal = journal();
    let gate = Gate::new(OnSignal::Stop);
    let pipeline = Pipeline::new("p")
        .step("a", fast_retry(3), Echo(journal.clone()))
        .step("wait", fast_retry(3), gate.clone())
        .step("c", fast_retry(3), Echo(journal.clone()));
    let engine = engine(&pool, vec![pipeline]);
    let worker = worker(&engine, "w");
    let run = create(&engine, "p").await;
    assert!(matches!(worker.tick().await.unwrap(), Tick::Executed(_)));

    // Step "wait" runs in the background until it is told to stop.
    let background = worker.clone();
    let waiting = tokio::spawn(async move { background.tick().await });
    gate.started().await;

    let cancelled = engine.cancel_run(run.id, "ops").await.unwrap();
    assert!(matches!(cancelled, Cancelled::Requested(_)), "{cancelled:?}");
    // A second cancel while the request stands changes nothing.
    assert!(matches!(
        engine.cancel_run(run.id, "ops").await.unwrap(),
        Cancelled::Requested(_)
    ));

    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the heartbeat signals the step")
        .unwrap()
        .unwrap();
    let detail = engine.get_run(run.id).await.unwrap();
    assert_status(&detail.run, RunStatus::Cancelled);
    let statuses: Vec<StepStatus> = detail.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![StepStatus::Succeeded, StepStatus::Cancelled, StepStatus::Cancelled]
    );
    assert_eq!(journal.lock().unwrap().len(), 1, "c never started");
    assert_eq!(worker.tick().await.unwrap(), Tick::Idle);

    let requested = detail
        .events
        .iter()
        .find(|e| e.actor == "ops")
        .expect("the request is audited");
    assert!(requested.reason.as_deref().unwrap().contains("cancel requested"));
    assert_eq!(detail.events.last().unwrap().to_status, "cancelled");

    // A finished run cannot be cancelled again.
    let err = engine.cancel_run(run.id, "ops").await.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidState {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{err}"
    );
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn cancelling_a_queued_run_ends_it_at_once(pool: PgPool) {
    let journal = journal();
    let engine = engine(&pool, vec![echo_pipeline("p", 2, &journal)]);
    let run = create(&engine, "p").await;

    let cancelled = engine.cancel_run(run.id, "ops").await.unwrap();
    assert!(matches!(cancelled, Cancelled::Now(_)));
    assert_status(cancelled.run(), RunStatus::Cancelled);
    assert_eq!(worker(&engine, "w").tick().await.unwrap(), Tick::Idle);
    assert!(journal.lock().unwrap().is_empty());
    assert_eq!(
        transitions(&engine, run.id).await,
        vec![
            t("run", "", "queued"),
            t("a", "pending", "cancelled"),
            t("b", "pending", "cancelled"),
            t("run", "queued", "cancelled"),
        ]
    );
    // The pipeline is free for a new run.
    assert_ne!(create(&engine, "p").await.id, run.id);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn cancelling_an_unknown_run_says_so(pool: PgPool) {
    let engine = engine(&pool, vec![]);
    let id = uuid::Uuid::new_v4();
    let err = engine.cancel_run(id, "ops").await.unwrap_err();
    assert!(matches!(err, EngineError::RunNotFound(found) if found == id), "{err}");
}

/// A cancel that arrives while the last step runs is too late once that step
/// finishes its work: the run succeeded (its last step's effect, such as a
/// promotion, is committed), and the audit says the cancel came too late
/// rather than calling the run cancelled.
#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_cancel_during_the_last_step_that_finishes_its_work_leaves_the_run_succeeded(pool: PgPool) {
    let journal = journal();
    let gate = Gate::new(OnSignal::Finish);
    let pipeline =
        Pipeline::new("p")
            .step("a", fast_retry(3), Echo(journal.clone()))
            .step("last", fast_retry(3), gate.clone());
    let engine = engine(&pool, vec![pipeline]);
    let worker = worker(&engine, "w");
    let run = create(&engine, "p").await;
    assert!(matches!(worker.tick().await.unwrap(), Tick::Executed(_)));

    let background = worker.clone();
    let last = tokio::spawn(async move { background.tick().await });
    gate.started().await;
    let cancelled = engine.cancel_run(run.id, "ops").await.unwrap();
    assert!(matches!(cancelled, Cancelled::Requested(_)), "{cancelled:?}");
    tokio::time::timeout(Duration::from_secs(5), last)
        .await
        .expect("the heartbeat signals the step")
        .unwrap()
        .unwrap();

    let detail = engine.get_run(run.id).await.unwrap();
    assert_status(&detail.run, RunStatus::Succeeded);
    let statuses: Vec<StepStatus> = detail.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec![StepStatus::Succeeded, StepStatus::Succeeded]);
    let end = detail.events.last().unwrap();
    assert_eq!(end.to_status, "succeeded");
    assert!(end.reason.as_deref().unwrap().contains("too late"), "{end:?}");
}
