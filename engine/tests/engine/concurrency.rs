//! Two workers on one database over many runs: every step attempt is executed
//! exactly once, checked from the audit events and from the handlers' journal.

use crate::support::*;
use retrain_engine::{RunStatus, Worker, WorkerConfig};
use sqlx::PgPool;
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn two_workers_never_execute_the_same_step_attempt_twice(pool: PgPool) {
    const PIPELINES: usize = 8;
    const RUNS_EACH: usize = 6;
    let journal = journal();
    let pipelines = (0..PIPELINES)
        .map(|i| echo_pipeline(&format!("p{i}"), 3, &journal))
        .collect();
    let engine = engine(&pool, pipelines);
    let shutdown = CancellationToken::new();
    let workers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|label| {
            let mut config = WorkerConfig::new(label);
            config.poll_interval = Duration::from_millis(20);
            tokio::spawn(Worker::new(engine.clone(), config).run(shutdown.clone()))
        })
        .collect();

    // Each pipeline runs its runs one after another; pipelines overlap.
    let producers: Vec<_> = (0..PIPELINES)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..RUNS_EACH {
                    let run = create(&engine, &format!("p{i}")).await;
                    loop {
                        let status = engine.get_run(run.id).await.unwrap().run.status;
                        if !status.is_active() {
                            assert_eq!(status, RunStatus::Succeeded);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    ids.push(run.id);
                }
                ids
            })
        })
        .collect();
    let mut run_ids = Vec::new();
    for producer in producers {
        run_ids.extend(
            tokio::time::timeout(Duration::from_secs(60), producer)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap();
    }

    assert_eq!(run_ids.len(), PIPELINES * RUNS_EACH);
    // From the events: each (run, step, attempt) started exactly once.
    let starts: Vec<(uuid::Uuid, String, i32, i64)> = sqlx::query_as(
        "SELECT run_id, step, attempt, count(*) FROM run_events
         WHERE step IS NOT NULL AND to_status = 'running'
         GROUP BY run_id, step, attempt",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(starts.len(), PIPELINES * RUNS_EACH * 3);
    assert!(starts.iter().all(|(.., n)| *n == 1), "an attempt started twice");
    // From the handlers: no attempt executed twice.
    let calls = journal.lock().unwrap().clone();
    let distinct: HashSet<_> = calls.iter().cloned().collect();
    assert_eq!(calls.len(), distinct.len());
    assert_eq!(calls.len(), PIPELINES * RUNS_EACH * 3);
}
