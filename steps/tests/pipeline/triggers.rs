//! The threshold check and the scheduler start runs only when due, and a
//! duplicate trigger returns the active run.

use crate::support::*;
use retrain_engine::TriggerKind;
use retrain_steps::ml::Split;
use retrain_steps::pipeline;
use retrain_steps::pipeline::FIRST_MODEL;
use retrain_steps::triggers::{self, TriggerConfig, check_threshold};
use sqlx::PgPool;
use std::time::{Duration, Instant};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_threshold_check_creates_a_run_only_when_enough_feedback_waits(pool: PgPool) {
    let env = bootstrapped(&pool).await;
    let engine = engine_for(&pool, pipeline(env));
    let wine = wine_model(&pool).await;
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..19], "users").await;
    assert!(check_threshold(&engine, &wine, 20).await.unwrap().is_none());

    send_feedback(&pool, &traffic[19..21], "users").await;
    let created = check_threshold(&engine, &wine, 20).await.unwrap().expect("a run");
    assert!(created.is_new());
    assert_eq!(created.run().trigger, TriggerKind::Threshold);
    assert_eq!(created.run().params["waiting_feedback"], 21);
    assert_eq!(created.run().params["model"], FIRST_MODEL);
    assert_eq!(created.run().subject, FIRST_MODEL);
    // Checked again while that run is active: the same run.
    let again = check_threshold(&engine, &wine, 20).await.unwrap().unwrap();
    assert!(!again.is_new());
    assert_eq!(again.run().id, created.run().id);

    // Once a run passed collect, its feedback no longer waits.
    finish(&worker(&engine), &engine, created.run().id).await;
    assert!(check_threshold(&engine, &wine, 20).await.unwrap().is_none());
}

/// Starts the scheduler and waits for its first run; returns that run's trigger.
async fn first_scheduled_run(pool: &PgPool, feedback: usize, cron: Option<&str>) -> TriggerKind {
    let env = bootstrapped(pool).await;
    let engine = engine_for(pool, pipeline(env));
    let traffic = split_rows(pool, Split::Pool).await;
    send_feedback(pool, &traffic[..feedback], "users").await;
    let mut scheduler = triggers::start(
        engine.clone(),
        TriggerConfig {
            threshold: 20,
            check_every: Duration::from_millis(500),
            first_check_after: Duration::from_millis(200),
            cron: cron.map(str::to_owned),
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(run) = engine.list_runs(None, None, None, None, 10).await.unwrap().pop() {
            break run;
        }
        assert!(Instant::now() < deadline, "no run was triggered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The triggers go on firing while that run is active: still one run.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    scheduler.shutdown().await.unwrap();
    let runs = engine.list_runs(None, None, None, None, 10).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].id, first.id);
    first.trigger
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_scheduler_checks_the_threshold_soon_after_start(pool: PgPool) {
    assert_eq!(first_scheduled_run(&pool, 25, None).await, TriggerKind::Threshold);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_cron_schedule_starts_runs_without_waiting_feedback(pool: PgPool) {
    assert_eq!(
        first_scheduled_run(&pool, 0, Some("*/1 * * * * *")).await,
        TriggerKind::Schedule
    );
}
