//! A run's normal life: queued, each step in order, succeeded; early finishes;
//! one active run per pipeline; the worker loop woken by NOTIFY.

use crate::support::*;
use async_trait::async_trait;
use retrain_engine::{
    EarlyFinish, NewRun, Pipeline, RunStatus, Step, StepContext, StepError, StepOutcome, StepStatus, TriggerKind,
};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn three_steps_run_in_order_with_one_event_per_transition(pool: PgPool) {
    let journal = journal();
    let engine = engine(&pool, vec![echo_pipeline("p", 3, &journal)]);
    let worker = worker(&engine, "w");
    let run = create(&engine, "p").await;
    assert_status(&run, RunStatus::Queued);

    let run = drive_to_end(&worker, &engine, run.id).await;
    assert_status(&run, RunStatus::Succeeded);
    assert!(run.finished_at.is_some() && run.started_at.is_some());

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
        detail
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Succeeded && s.attempt == 1)
    );
    // Each step saw the persisted outputs of the steps before it.
    assert_eq!(
        output_of(&detail.steps[2].output),
        json!({"step": "c", "saw": ["a", "b"]})
    );
    assert!(
        detail
            .events
            .iter()
            .all(|e| e.actor == worker.id() || e.actor == "tester")
    );
    assert_eq!(journal.lock().unwrap().len(), 3);
}

struct SkipAlways;

#[async_trait]
impl Step for SkipAlways {
    async fn run(&self, _ctx: StepContext) -> Result<StepOutcome, StepError> {
        Ok(StepOutcome::Finish {
            how: EarlyFinish::Skipped,
            reason: "only 3 new rows, threshold 20".into(),
            output: json!({"new_rows": 3, "threshold": 20}),
        })
    }
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn an_early_finish_skips_the_remaining_steps_with_the_reason(pool: PgPool) {
    let journal = journal();
    let pipeline = Pipeline::new("p").step("collect", fast_retry(1), SkipAlways).step(
        "train",
        fast_retry(1),
        Echo(journal.clone()),
    );
    let engine = engine(&pool, vec![pipeline]);
    let worker = worker(&engine, "w");
    let run = create(&engine, "p").await;

    let run = drive_to_end(&worker, &engine, run.id).await;
    assert_status(&run, RunStatus::Skipped);
    let outcome = run.outcome.unwrap();
    assert_eq!(outcome["reason"], "only 3 new rows, threshold 20");
    assert_eq!(outcome["detail"]["threshold"], 20);
    assert!(journal.lock().unwrap().is_empty(), "train must not run");
    let detail = engine.get_run(run.id).await.unwrap();
    assert_eq!(detail.steps[1].status, StepStatus::Skipped);
    let last = detail.events.last().unwrap();
    assert_eq!(
        (last.to_status.as_str(), last.reason.as_deref()),
        ("skipped", Some("only 3 new rows, threshold 20"))
    );
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn creating_a_run_while_one_is_active_returns_the_active_run(pool: PgPool) {
    let journal = journal();
    let engine = engine(
        &pool,
        vec![echo_pipeline("p", 2, &journal), echo_pipeline("other", 1, &journal)],
    );
    let first = create(&engine, "p").await;

    // Many concurrent triggers: all get the same run.
    let attempts = (0..8).map(|_| {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .create_run(NewRun {
                    pipeline: "p",
                    subject: "",
                    trigger: TriggerKind::Threshold,
                    params: json!({}),
                    requested_by: "threshold-check",
                })
                .await
                .unwrap()
        })
    });
    for attempt in attempts {
        let created = attempt.await.unwrap();
        assert!(!created.is_new());
        assert_eq!(created.run().id, first.id);
    }
    // Another pipeline is independent.
    assert_ne!(create(&engine, "other").await.id, first.id);

    // Once the run ends, a new one can be created.
    drive_to_end(&worker(&engine, "w"), &engine, first.id).await;
    let second = engine
        .create_run(NewRun {
            pipeline: "p",
            subject: "",
            trigger: TriggerKind::Manual,
            params: json!({}),
            requested_by: "tester",
        })
        .await
        .unwrap();
    assert!(second.is_new());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE pipeline = 'p'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn one_run_is_active_per_subject_and_subjects_run_side_by_side(pool: PgPool) {
    let journal = journal();
    let engine = engine(&pool, vec![echo_pipeline("p", 1, &journal)]);
    let new_run = |subject| NewRun {
        pipeline: "p",
        subject,
        trigger: TriggerKind::Manual,
        params: json!({}),
        requested_by: "tester",
    };
    let wine = engine.create_run(new_run("wine")).await.unwrap();
    let tickets = engine.create_run(new_run("tickets")).await.unwrap();
    assert!(wine.is_new() && tickets.is_new(), "two subjects each get a run");
    assert_ne!(wine.run().id, tickets.run().id);
    assert_eq!(tickets.run().subject, "tickets");

    let again = engine.create_run(new_run("wine")).await.unwrap();
    assert!(!again.is_new(), "a second trigger for one subject joins its active run");
    assert_eq!(again.run().id, wine.run().id);
    assert_eq!(
        engine.active_run("p", "tickets").await.unwrap().map(|r| r.id),
        Some(tickets.run().id)
    );
    let listed = engine.list_runs(None, Some("wine"), None, None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![wine.run().id]);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn an_unknown_pipeline_is_refused(pool: PgPool) {
    let engine = engine(&pool, vec![]);
    let err = engine
        .create_run(NewRun {
            pipeline: "nope",
            subject: "",
            trigger: TriggerKind::Manual,
            params: json!({}),
            requested_by: "tester",
        })
        .await
        .unwrap_err();
    assert!(matches!(err, retrain_engine::EngineError::UnknownPipeline(_)), "{err}");
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_running_worker_wakes_on_notify_and_shuts_down_when_asked(pool: PgPool) {
    let journal = journal();
    // The worker has a pool of its own, named, so the test can see from
    // pg_stat_activity when its first claim has come back empty.
    let options = (*pool.connect_options()).clone().application_name("notify-test-worker");
    let worker_pool = PgPoolOptions::new().connect_with(options).await.unwrap();
    let engine = engine(&worker_pool, vec![echo_pipeline("p", 5, &journal)]);
    let mut config = retrain_engine::WorkerConfig::new("loop");
    // A long poll interval: only the notification can wake it quickly.
    config.poll_interval = Duration::from_secs(60);
    let worker = retrain_engine::Worker::new(engine.clone(), config);
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    // It listens before its first tick; once that tick's claim has returned,
    // the run below can only be found by a tick that a notification wakes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                        WHERE application_name = 'notify-test-worker' AND state = 'idle'
                          AND query LIKE 'WITH candidate AS%')",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
    {
        assert!(std::time::Instant::now() < deadline, "the worker never claimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let run = create(&engine, "p").await;
    assert_status(&ended(&engine, run.id).await, RunStatus::Succeeded);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("worker stops promptly")
        .unwrap();
    worker_pool.close().await;
}

/// Runs a worker loop on a one-step pipeline whose step is `gate`, shuts it
/// down once the step has started, and returns the step's record.
async fn shut_down_during(pool: &PgPool, gate: Gate) -> retrain_engine::StepRecord {
    let engine = engine(pool, vec![Pipeline::new("p").step("s", fast_retry(3), gate.clone())]);
    let mut config = retrain_engine::WorkerConfig::new("stopping");
    config.shutdown_grace = Duration::from_millis(500);
    config.poll_interval = Duration::from_millis(20);
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(retrain_engine::Worker::new(engine.clone(), config).run(shutdown.clone()));
    let run = create(&engine, "p").await;
    gate.started().await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stops within the grace")
        .unwrap();
    engine.get_run(run.id).await.unwrap().steps.remove(0)
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn at_shutdown_a_step_finishing_within_the_grace_commits(pool: PgPool) {
    let step = shut_down_during(&pool, Gate::new(OnSignal::Finish)).await;
    assert_eq!(step.status, StepStatus::Succeeded);
    assert_eq!(step.output, Some(json!({"finished_after_signal": true})));
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn at_shutdown_a_step_past_the_grace_is_released_without_spending_an_attempt(pool: PgPool) {
    let step = shut_down_during(&pool, Gate::new(OnSignal::Ignore)).await;
    assert_eq!(step.status, StepStatus::Pending);
    assert_eq!(
        (step.attempt, step.retry_base),
        (1, 1),
        "the abandoned attempt is refunded"
    );
    assert!(step.lease_owner.is_none());
    let released: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM run_events WHERE reason = 'released unfinished: worker shutting down'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(released, 1);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn at_shutdown_a_step_stopping_on_its_signal_is_released(pool: PgPool) {
    let step = shut_down_during(&pool, Gate::new(OnSignal::Stop)).await;
    assert_eq!(step.status, StepStatus::Pending);
    assert_eq!((step.attempt, step.retry_base), (1, 1));
}
