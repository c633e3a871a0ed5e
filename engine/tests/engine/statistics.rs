//! A worker keeps the planner's statistics of the engine's tables current
//! (autovacuum may be off), so that no cached plan made for empty tables
//! stays in use as history grows.

use crate::support::*;
use sqlx::PgPool;

async fn recorded_pages(pool: &PgPool) -> i32 {
    sqlx::query_scalar("SELECT relpages FROM pg_class WHERE oid = 'run_events'::regclass")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_worker_analyzes_a_table_that_has_doubled(pool: PgPool) {
    let journal = journal();
    let engine = engine(&pool, vec![echo_pipeline("p", 1, &journal)]);
    let run = create(&engine, "p").await;
    assert_eq!(recorded_pages(&pool).await, 0, "a fresh table was never analyzed");
    // History far past 16 pages, which the planner has not seen.
    sqlx::query(
        "INSERT INTO run_events (run_id, to_status, actor, reason)
         SELECT $1, 'queued', 'tester', repeat('x', 100) FROM generate_series(1, 5000)",
    )
    .bind(run.id)
    .execute(&pool)
    .await
    .unwrap();

    // A worker's first tick sweeps, and analyzes what has grown.
    worker(&engine, "w").tick().await.unwrap();
    assert!(recorded_pages(&pool).await > 16);
}
