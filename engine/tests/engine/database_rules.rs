//! Rules the database keeps whoever writes: no illegal transition, and an
//! append-only history.

use crate::support::*;
use sqlx::PgPool;

async fn refused(pool: &PgPool, sql: &str) -> String {
    match sqlx::query(sql).execute(pool).await {
        Ok(done) => panic!("{sql} was accepted ({} rows)", done.rows_affected()),
        Err(err) => err.to_string(),
    }
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn illegal_transitions_written_in_sql_are_refused(pool: PgPool) {
    let journal = journal();
    let engine = engine(&pool, vec![echo_pipeline("p", 2, &journal)]);
    let run = create(&engine, "p").await;

    let err = refused(
        &pool,
        &format!("UPDATE runs SET status = 'succeeded' WHERE id = '{}'", run.id),
    )
    .await;
    assert!(err.contains("illegal run transition queued -> succeeded"), "{err}");
    let err = refused(
        &pool,
        &format!(
            "UPDATE steps SET status = 'succeeded' WHERE run_id = '{}' AND position = 0",
            run.id
        ),
    )
    .await;
    assert!(err.contains("illegal step transition pending -> succeeded"), "{err}");
    let err = refused(
        &pool,
        "INSERT INTO runs (id, pipeline, status, trigger, requested_by)
         VALUES (gen_random_uuid(), 'q', 'succeeded', 'manual', 'me')",
    )
    .await;
    assert!(err.contains("a run starts queued"), "{err}");

    // A finished run stays finished.
    drive_to_end(&worker(&engine, "w"), &engine, run.id).await;
    let err = refused(
        &pool,
        &format!("UPDATE runs SET status = 'running' WHERE id = '{}'", run.id),
    )
    .await;
    assert!(err.contains("illegal run transition succeeded -> running"), "{err}");
    // A legal one goes through (failed -> queued is how retry works).
    let legal = sqlx::query("SELECT 1 FROM run_transitions WHERE from_status = 'failed' AND to_status = 'queued'")
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert!(legal.is_some());
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn run_events_refuse_update_delete_and_truncate(pool: PgPool) {
    let journal = journal();
    let engine = engine(&pool, vec![echo_pipeline("p", 1, &journal)]);
    let run = create(&engine, "p").await;
    drive_to_end(&worker(&engine, "w"), &engine, run.id).await;
    let before = engine.events(run.id).await.unwrap();

    for sql in [
        "UPDATE run_events SET reason = 'rewritten'",
        "DELETE FROM run_events",
        "TRUNCATE run_events",
    ] {
        let err = refused(&pool, sql).await;
        assert!(err.contains("run_events is append-only"), "{sql}: {err}");
    }
    assert_eq!(engine.events(run.id).await.unwrap(), before);
}
