//! Three worker processes competing for the steps of 200 runs on one
//! database. Only one run of the pipeline may be active, so the runs follow
//! each other; within each, every step is up for grabs by all three
//! workers, woken together by the same NOTIFY. Most runs get 20 new
//! feedback rows first and go through all five steps; every fifth gets none
//! and ends `skipped` at collect. The history must show each step attempt
//! started once and finished once, no run stuck and none lost.

use crate::support::*;
use retrain_steps::ml::Split;
use retrain_steps::store::feedback::{self, NewFeedback};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;
use uuid::Uuid;

const RUNS: usize = 200;
/// Runs with no new feedback (collect skips them): one in this many.
const SKIP_EVERY: usize = 5;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn three_workers_run_200_runs_executing_each_step_attempt_once(_: PgPoolOptions, connect: PgConnectOptions) {
    let _machine = shared_machine().await;
    let started = Instant::now();
    let url = database_url(&connect);
    let pool = pool(&connect).await;
    let api = RETRAIN.start(Role::Api, &url, &[]).await;
    let workers = [
        RETRAIN.start(Role::Worker, &url, &PASSING_GATE).await,
        RETRAIN.start(Role::Worker, &url, &PASSING_GATE).await,
        RETRAIN.start(Role::Worker, &url, &PASSING_GATE).await,
    ];
    let wine = retrain_steps::store::models::by_name(&mut *pool.acquire().await.unwrap(), "wine-quality")
        .await
        .unwrap();
    let rows: Vec<NewFeedback> = split_rows(&pool, Split::Pool)
        .await
        .into_iter()
        .map(|e| NewFeedback {
            model_id: wine.id,
            input: e.input,
            correct_label: e.label,
            prediction_id: None,
            predicted_label: None,
            model_version: None,
            source: Some("many-workers".into()),
            sub_label: None,
        })
        .collect();

    let mut created = Vec::with_capacity(RUNS);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..RUNS {
        let full = i % SKIP_EVERY != SKIP_EVERY - 1;
        if full {
            let start = (i * 20) % (rows.len() - 20);
            let mut conn = pool.acquire().await.unwrap();
            feedback::insert_many(&mut conn, &rows[start..start + 20])
                .await
                .unwrap();
        }
        let run = api.trigger().await;
        let status = finished(&pool, run, 60).await;
        let expected = if full { "succeeded" } else { "skipped" };
        assert_eq!(status, expected, "run {i} ({run})");
        *outcomes.entry(status).or_default() += 1;
        created.push(run);
    }

    // None lost, none stuck: every run the API created is stored and ended.
    let stored: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, status::text FROM runs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), RUNS);
    let ids: HashSet<Uuid> = stored.iter().map(|(id, _)| *id).collect();
    assert!(created.iter().all(|id| ids.contains(id)), "every created run is stored");
    assert!(
        stored.iter().all(|(_, s)| s == "succeeded" || s == "skipped"),
        "every run ended"
    );
    // Ended runs left no step running or pending.
    let unfinished: i64 = sqlx::query_scalar("SELECT count(*) FROM steps WHERE status IN ('running', 'pending')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unfinished, 0);

    // Each step attempt started once and ended once, by its own worker, and
    // with no faults no step needed a second attempt.
    assert_eq!(attempt_violations(&pool).await, Vec::<String>::new());
    let retried: i64 = sqlx::query_scalar("SELECT count(*) FROM steps WHERE attempt > 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(retried, 0, "no step attempt was lost or repeated");
    let full_runs = outcomes["succeeded"] as i64;
    let executed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM run_events WHERE from_status = 'pending' AND to_status = 'running'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        executed,
        full_runs * 5 + (RUNS as i64 - full_runs),
        "five steps per full run, collect alone otherwise"
    );

    // One model and one promotion per full run.
    let per_run: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM versions WHERE run_id IS NOT NULL),
                (SELECT count(DISTINCT run_id) FROM versions WHERE run_id IS NOT NULL),
                (SELECT count(*) FROM promotions WHERE run_id IS NOT NULL),
                (SELECT count(DISTINCT run_id) FROM promotions WHERE run_id IS NOT NULL)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(per_run, (full_runs, full_runs, full_runs, full_runs));

    // The work really was shared.
    let by_worker: Vec<(String, i64)> = sqlx::query_as(
        "SELECT actor, count(*) FROM run_events WHERE from_status = 'pending' AND to_status = 'running'
         GROUP BY actor ORDER BY actor",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (actor, _) in &by_worker {
        assert!(
            workers.iter().any(|w| actor.starts_with(&w.worker_prefix())),
            "{actor} is one of ours"
        );
    }
    eprintln!(
        "{RUNS} runs ({outcomes:?}) by three workers in {:?}; step attempts by worker: {by_worker:?}",
        started.elapsed()
    );
    drop(workers);
    drop(api);
    pool.close().await;
}
