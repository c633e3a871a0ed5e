//! Sustained mixed load on an API process and a worker process, each with a
//! pool of [`POOL`] connections.
//!
//! Connections: each process opens at most its pool's `max_connections`.
//! The fixed listener connections (the API's promotion listener, the
//! worker's run-queue listener; one each, see `api/src/serving/listener.rs`
//! and `engine/src/worker.rs`) come out of that pool: sqlx 0.8's
//! `PgListener::connect_with(&pool)` keeps a pooled connection. So the bound
//! per process is the pool size, and the sum the service opens is twice it.
//! The connections are counted every second, and printed every 10 s with
//! the resident memory.

use crate::load::{self, Tally, Traffic};
use crate::sample::{self, Sample};
use crate::scratch::ScratchDb;
use crate::support::{PASSING_GATE, Process, RETRAIN, Role, eventually, split_rows};
use retrain_steps::ml::Split;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// `RETRAIN_DB_POOL` of each process.
const POOL: i64 = 10;
const USERS: u64 = 8;
/// Predictions a second per user (fewer if the service is slower): 400 a
/// second in all, 100 feedback rows a second.
const PER_USER: f64 = 50.0;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const DEFAULT_SECS: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_connections_stay_bounded_under_sustained_mixed_load() {
    let secs: u64 = std::env::var("RETRAIN_SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("RETRAIN_SOAK_SECS is a number of seconds"))
        .unwrap_or(DEFAULT_SECS);
    assert!(
        secs >= 30,
        "RETRAIN_SOAK_SECS must be at least 30 (thirds of 10 s samples)"
    );
    let started = Instant::now();
    let db = ScratchDb::create().await;
    let observer = db.observer().await;
    let pool = POOL.to_string();
    let api = RETRAIN
        .start(Role::Api, &db.url("soak-api"), &[("RETRAIN_DB_POOL", &pool)])
        .await;
    let mut worker_env = PASSING_GATE.to_vec();
    worker_env.push(("RETRAIN_DB_POOL", &pool));
    let worker = RETRAIN.start(Role::Worker, &db.url("soak-worker"), &worker_env).await;
    let traffic = Arc::new(Traffic::new(split_rows(&observer, Split::Pool).await));
    eprintln!(
        "soak: {secs} s on database {}, RETRAIN_DB_POOL={POOL}, {USERS} users at {PER_USER}/s, api pid {}, worker pid {}",
        db.name,
        api.pid(),
        worker.pid()
    );

    let tally = Arc::new(Tally::default());
    let load_start = Instant::now();
    let until = load_start + Duration::from_secs(secs);
    let users: Vec<_> = (0..USERS)
        .map(|n| {
            tokio::spawn(load::user(
                n,
                api.base.clone(),
                traffic.clone(),
                PER_USER,
                until,
                tally.clone(),
            ))
        })
        .collect();
    let operator = load::operator(&api, until, &tally);
    let watch = watch(&api, &worker, &observer, &db.name, load_start, until);
    let ((), (samples, max_connections)) = tokio::join!(operator, watch);
    for user in users {
        user.await.expect("a user task");
    }
    let load_secs = load_start.elapsed().as_secs_f64();

    // The figures.
    eprintln!("soak: samples (every {} s):", SAMPLE_EVERY.as_secs());
    for sample in &samples {
        eprintln!("  {}", sample.line());
    }
    let predictions = tally.predictions.load(Ordering::Relaxed);
    let feedback = tally.feedback.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    eprintln!(
        "soak: {predictions} predictions ({:.0}/s), {feedback} feedback ({:.0}/s), {failed} failed, in {load_secs:.1} s",
        predictions as f64 / load_secs,
        feedback as f64 / load_secs
    );
    let runs: BTreeMap<String, i64> = sqlx::query_as("SELECT status::text, count(*) FROM runs GROUP BY 1")
        .fetch_all(&observer)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let promotions: BTreeMap<String, i64> = sqlx::query_as("SELECT kind::text, count(*) FROM promotions GROUP BY 1")
        .fetch_all(&observer)
        .await
        .unwrap()
        .into_iter()
        .collect();
    eprintln!(
        "soak: runs triggered {} (+{} while one was active), by status {runs:?}; operator promotions {}, rollbacks {}; promotions stored by kind {promotions:?}",
        tally.runs_created.load(Ordering::Relaxed),
        tally.runs_already_active.load(Ordering::Relaxed),
        tally.promotions.load(Ordering::Relaxed),
        tally.rollbacks.load(Ordering::Relaxed),
    );
    eprintln!("soak: most connections seen (1 s polls): {max_connections:?}");
    let api_rss: Vec<(u64, u64)> = samples.iter().map(|s| (s.secs, s.api_kib)).collect();
    let worker_rss: Vec<(u64, u64)> = samples.iter().map(|s| (s.secs, s.worker_kib)).collect();
    let api_flat = sample::flat(&api_rss, secs, 0);
    // The worker may hold the feedback rows stored since the first third.
    let rows_at = |secs: u64| {
        samples
            .iter()
            .filter(|s| s.secs <= secs)
            .map(|s| s.feedback_rows)
            .max()
            .unwrap_or(0)
    };
    let new_rows = (rows_at(u64::MAX) - rows_at(secs / 3)).max(0) as u64;
    let worker_flat = sample::flat(&worker_rss, secs, new_rows * sample::WORKER_BYTES_PER_ROW / 1024);
    eprintln!("soak: RSS api: {api_flat:?}; worker: {worker_flat:?}");

    // No failed request.
    assert_eq!(
        failed,
        0,
        "failed requests, first ones: {:#?}",
        tally.failures.lock().unwrap()
    );
    assert!(predictions > 0 && feedback > 0, "the load ran");
    let operator_errors = tally.operator_errors.lock().unwrap().clone();
    assert!(
        operator_errors.is_empty(),
        "operator calls failed: {operator_errors:#?}"
    );
    // Every acknowledged feedback row is stored, and nothing else of ours.
    let acknowledged = tally.acknowledged.lock().unwrap().clone();
    let (found, ours): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM feedback WHERE id = ANY($1)),
                (SELECT count(*) FROM feedback WHERE sub_label IN ('soak-user', 'soak-random'))",
    )
    .bind(&acknowledged)
    .fetch_one(&observer)
    .await
    .unwrap();
    assert_eq!(
        (found, ours),
        (acknowledged.len() as i64, acknowledged.len() as i64),
        "acknowledged feedback stored"
    );
    // The runs and promotions happened and none failed.
    let expected_runs = (secs - load::FIRST_RUN_AFTER.as_secs()).div_ceil(load::RUN_EVERY.as_secs());
    let triggered = tally.runs_created.load(Ordering::Relaxed) + tally.runs_already_active.load(Ordering::Relaxed);
    assert_eq!(triggered, expected_runs, "a run triggered every 30 s");
    assert_eq!(runs.get("failed"), None, "no run failed");
    assert!(
        runs.get("succeeded").copied().unwrap_or(0) >= 1,
        "runs went through: {runs:?}"
    );
    assert!(tally.rollbacks.load(Ordering::Relaxed) >= 1, "a rollback happened");
    assert!(
        tally.promotions.load(Ordering::Relaxed) >= 1,
        "a promotion forward happened"
    );
    // After all the swaps the API serves the champion (read again each
    // time: the last run may still promote).
    eventually(1.0, "the API serves the champion", || async {
        let champion: i32 =
            sqlx::query_scalar("SELECT m.version FROM champion c JOIN versions m ON m.id = c.version_id")
                .fetch_one(&observer)
                .await
                .unwrap();
        api.served_version().await == i64::from(champion)
    })
    .await;
    // Connections within the pools.
    for app in ["soak-api", "soak-worker"] {
        let most = max_connections.get(app).copied().unwrap_or(0);
        assert!(
            most <= POOL,
            "{app} held {most} connections, more than its pool of {POOL}"
        );
    }
    let unknown: Vec<&String> = max_connections
        .keys()
        .filter(|a| *a != "soak-api" && *a != "soak-worker")
        .collect();
    assert!(unknown.is_empty(), "connections from elsewhere: {unknown:?}");
    // Memory flat.
    api_flat.expect("the API's resident memory stays flat");
    worker_flat.expect("the worker's resident memory stays flat");

    drop(worker);
    drop(api);
    observer.close().await;
    drop(db);
    eprintln!("soak: done in {:.1} s", started.elapsed().as_secs_f64());
}

/// Samples every [`SAMPLE_EVERY`] from the start of the load to its end
/// (the last one at `until`), and counts the connections every second in
/// between; returns the samples and the most connections seen per
/// application.
async fn watch(
    api: &Process,
    worker: &Process,
    observer: &sqlx::PgPool,
    db: &str,
    start: Instant,
    until: Instant,
) -> (Vec<Sample>, BTreeMap<String, i64>) {
    let mut samples = Vec::new();
    let mut most: BTreeMap<String, i64> = BTreeMap::new();
    let mut next_sample = start;
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    loop {
        poll.tick().await;
        let now = Instant::now();
        let last = now + Duration::from_millis(500) >= until;
        if now >= next_sample || last {
            let secs = (now - start).as_secs_f64().round() as u64;
            let sample = Sample::take(secs, api, worker, observer, db).await;
            eprintln!("  {}", sample.line());
            for (app, n) in &sample.connections {
                let entry = most.entry(app.clone()).or_default();
                *entry = (*entry).max(*n);
            }
            samples.push(sample);
            next_sample += SAMPLE_EVERY;
        } else {
            for (app, n) in sample::connections(observer, db).await {
                let entry = most.entry(app).or_default();
                *entry = (*entry).max(n);
            }
        }
        if last {
            return (samples, most);
        }
    }
}
