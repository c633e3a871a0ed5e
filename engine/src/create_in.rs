//! Creating a run on the caller's connection, inside the caller's
//! transaction: whatever the caller records about the run in that
//! transaction (an API request's idempotency key and answer) commits with the
//! run or not at all, and the caller needs no second connection.

use crate::error::EngineError;
use crate::record::{Created, Run};
use crate::runs::{Engine, NewRun, RUN_COLUMNS};
use sqlx::PgConnection;
use uuid::Uuid;

impl Engine {
    /// Queues a run of a pipeline, or returns the pipeline's active run if it
    /// has one, as [`Engine::create_run`] does, but on `conn`: inside the
    /// caller's transaction if it has one open. The run's insert then waits
    /// for, and is decided by, the partial unique index as usual; workers see
    /// the run when the caller commits.
    ///
    /// # Errors
    /// `UnknownPipeline`, or `Database`.
    pub async fn create_run_in(&self, conn: &mut PgConnection, new: NewRun<'_>) -> Result<Created, EngineError> {
        let pipeline = self
            .registry
            .get(new.pipeline)
            .ok_or_else(|| EngineError::UnknownPipeline(new.pipeline.to_owned()))?;
        let names: Vec<&str> = pipeline.steps.iter().map(|s| s.name.as_str()).collect();
        let max_attempts: Vec<i32> = pipeline.steps.iter().map(|s| s.retry.max_attempts as i32).collect();
        let initial_ms: Vec<i32> = pipeline
            .steps
            .iter()
            .map(|s| s.retry.initial.as_millis() as i32)
            .collect();
        let multiplier: Vec<f64> = pipeline.steps.iter().map(|s| s.retry.multiplier).collect();
        let cap_ms: Vec<i32> = pipeline.steps.iter().map(|s| s.retry.cap.as_millis() as i32).collect();
        let reason = format!("{} trigger", new.trigger);
        // One statement: the run, its steps and its first event commit together.
        let insert = format!(
            "WITH run AS (
                INSERT INTO runs (id, pipeline, subject, trigger, params, requested_by)
                VALUES ($1, $2, $12, $3, $4, $5)
                ON CONFLICT (pipeline, subject) WHERE status IN ('queued', 'running') DO NOTHING
                RETURNING {RUN_COLUMNS}
            ), steps AS (
                INSERT INTO steps (run_id, position, name, max_attempts, backoff_initial_ms,
                                   backoff_multiplier, backoff_cap_ms)
                SELECT run.id, s.ord - 1, s.name, s.max_attempts, s.initial_ms, s.multiplier, s.cap_ms
                FROM run, unnest($6::text[], $7::int[], $8::int[], $9::float8[], $10::int[])
                    WITH ORDINALITY AS s(name, max_attempts, initial_ms, multiplier, cap_ms, ord)
            ), event AS (
                INSERT INTO run_events (run_id, to_status, actor, reason, detail)
                SELECT id, 'queued', requested_by, $11, jsonb_build_object('trigger', trigger)
                FROM run
            )
            SELECT {RUN_COLUMNS} FROM run"
        );
        loop {
            let inserted: Option<Run> = sqlx::query_as(&insert)
                .bind(Uuid::new_v4())
                .bind(new.pipeline)
                .bind(new.trigger)
                .bind(&new.params)
                .bind(new.requested_by)
                .bind(&names)
                .bind(&max_attempts)
                .bind(&initial_ms)
                .bind(&multiplier)
                .bind(&cap_ms)
                .bind(&reason)
                .bind(new.subject)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(run) = inserted {
                return Ok(Created::New(run));
            }
            if let Some(active) = active_run_in(conn, new.pipeline, new.subject).await? {
                return Ok(Created::AlreadyActive(active));
            }
            // The active run finished between the two statements: try again.
        }
    }
}

/// The queued or running run of a pipeline for a subject on `conn`, if any.
pub(crate) async fn active_run_in(
    conn: &mut PgConnection,
    pipeline: &str,
    subject: &str,
) -> Result<Option<Run>, EngineError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = $1 AND subject = $2 AND status IN ('queued', 'running')"
    );
    Ok(sqlx::query_as(&sql)
        .bind(pipeline)
        .bind(subject)
        .fetch_optional(conn)
        .await?)
}
