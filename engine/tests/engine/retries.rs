//! Retryable errors back off and retry; fatal errors fail the run, and an
//! operator's retry resumes at the failed step with the earlier outputs.

use crate::support::*;
use retrain_engine::{EngineError, Pipeline, RunStatus, StepError, StepStatus};
use sqlx::PgPool;
use std::sync::atomic::AtomicU32;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn retryable_failures_back_off_with_growing_delays_then_succeed(pool: PgPool) {
    let journal = journal();
    let flaky = FailFirst {
        times: 2,
        error: StepError::retryable("connection reset"),
        calls: AtomicU32::new(0),
        journal: journal.clone(),
    };
    let pipeline =
        Pipeline::new("p")
            .step("a", fast_retry(3), Echo(journal.clone()))
            .step("flaky", fast_retry(3), flaky);
    let engine = engine(&pool, vec![pipeline]);
    let worker = worker(&engine, "w");
    let run = create(&engine, "p").await;

    let run = drive_to_end(&worker, &engine, run.id).await;
    assert_status(&run, RunStatus::Succeeded);

    let detail = engine.get_run(run.id).await.unwrap();
    assert_eq!(detail.steps[1].attempt, 3);
    assert_eq!(detail.steps[1].last_error.as_deref(), Some("connection reset"));
    let retries: Vec<u64> = detail
        .events
        .iter()
        .filter(|e| e.step.as_deref() == Some("flaky") && e.to_status == "pending")
        .map(|e| e.detail.as_ref().unwrap()["retry_in_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(retries.len(), 2, "two retries scheduled");
    // 40 ms then 160 ms before equal jitter: [20, 40] then [80, 160].
    assert!((20..=40).contains(&retries[0]), "{retries:?}");
    assert!((80..=160).contains(&retries[1]), "{retries:?}");
    // The waits happened: each attempt started no earlier than its retry time.
    let starts: Vec<_> = detail
        .events
        .iter()
        .filter(|e| e.step.as_deref() == Some("flaky") && e.to_status == "running")
        .map(|e| e.at)
        .collect();
    assert_eq!(starts.len(), 3);
    assert!((starts[2] - starts[1]).num_milliseconds() >= retries[1] as i64);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn exhausted_attempts_fail_the_run(pool: PgPool) {
    let journal = journal();
    let always = FailFirst {
        times: u32::MAX,
        error: StepError::retryable("still down"),
        calls: AtomicU32::new(0),
        journal: journal.clone(),
    };
    let engine = engine(&pool, vec![Pipeline::new("p").step("a", fast_retry(2), always)]);
    let run = create(&engine, "p").await;
    let run = drive_to_end(&worker(&engine, "w"), &engine, run.id).await;
    assert_status(&run, RunStatus::Failed);
    let outcome = run.outcome.unwrap();
    assert_eq!(
        (outcome["error"].as_str(), outcome["class"].as_str()),
        (Some("still down"), Some("attempts exhausted"))
    );
    assert_eq!(engine.get_run(run.id).await.unwrap().steps[0].attempt, 2);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_fatal_error_fails_at_once_and_retry_resumes_there(pool: PgPool) {
    let journal = journal();
    let broken_once = FailFirst {
        times: 1,
        error: StepError::fatal("schema mismatch"),
        calls: AtomicU32::new(0),
        journal: journal.clone(),
    };
    let pipeline = Pipeline::new("p")
        .step("a", fast_retry(3), Echo(journal.clone()))
        .step("b", fast_retry(3), broken_once)
        .step("c", fast_retry(3), Echo(journal.clone()));
    let engine = engine(&pool, vec![pipeline]);
    let worker = worker(&engine, "w");
    let run = create(&engine, "p").await;

    let failed = drive_to_end(&worker, &engine, run.id).await;
    assert_status(&failed, RunStatus::Failed);
    let detail = engine.get_run(run.id).await.unwrap();
    assert_eq!(detail.steps[1].status, StepStatus::Failed);
    assert_eq!(detail.steps[1].attempt, 1, "a fatal error is not retried");
    assert_eq!(detail.steps[2].status, StepStatus::Pending);
    let a_output = detail.steps[0].output.clone();

    // Only a failed run can be retried.
    let err = engine.cancel_run(run.id, "ops").await.unwrap_err();
    assert!(matches!(err, EngineError::InvalidState { .. }), "{err}");

    let requeued = engine.retry_run(run.id, "ops").await.unwrap();
    assert_status(&requeued, RunStatus::Queued);
    let run = drive_to_end(&worker, &engine, run.id).await;
    assert_status(&run, RunStatus::Succeeded);

    let detail = engine.get_run(run.id).await.unwrap();
    assert_eq!(detail.steps[0].output, a_output, "a's output kept");
    assert_eq!(detail.steps[1].attempt, 2);
    let calls: Vec<String> = journal.lock().unwrap().iter().map(|(_, s, _)| s.clone()).collect();
    assert_eq!(
        calls,
        vec!["a", "b", "c"],
        "a ran once; b's failed attempt journals nothing"
    );
    let tail: Vec<_> = transitions(&engine, run.id).await.into_iter().skip(7).collect();
    assert_eq!(
        tail,
        vec![
            t("run", "failed", "queued"),
            t("b", "failed", "pending"),
            t("run", "queued", "running"),
            t("b", "pending", "running"),
            t("b", "running", "succeeded"),
            t("c", "pending", "running"),
            t("c", "running", "succeeded"),
            t("run", "running", "succeeded"),
        ]
    );
    let retried_by = engine.events(run.id).await.unwrap()[7].actor.clone();
    assert_eq!(retried_by, "ops");
}
