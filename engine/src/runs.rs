//! The engine handle and the run operations that read or create: create a run
//! (or find the active one), get one with its steps and history, list runs.

use crate::error::EngineError;
use crate::pipeline::Registry;
use crate::record::{Created, Run, RunDetail, RunEvent, StepRecord};
use crate::status::{RunStatus, TriggerKind};
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

/// The columns of `runs`, in `Run`'s order.
pub(crate) const RUN_COLUMNS: &str = "id, pipeline, status, trigger, params, requested_by, \
    current_step, cancel_requested_at, outcome, created_at, started_at, finished_at, updated_at";

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub pipeline: &'a str,
    pub trigger: TriggerKind,
    pub params: Value,
    /// Who asked: an API caller, `scheduler`, `threshold-check`.
    pub requested_by: &'a str,
}

/// Handle on the durable runs of the registered pipelines. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) pool: PgPool,
    pub(crate) registry: Arc<Registry>,
}

impl Engine {
    pub fn new(pool: PgPool, registry: Registry) -> Self {
        Self {
            pool,
            registry: Arc::new(registry),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Queues a run of a pipeline, or returns the pipeline's active run if it
    /// has one (the partial unique index decides, so concurrent callers in
    /// any number of processes get one run between them).
    ///
    /// # Errors
    /// `UnknownPipeline`, or `Database`.
    pub async fn create_run(&self, new: NewRun<'_>) -> Result<Created, EngineError> {
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
                INSERT INTO runs (id, pipeline, trigger, params, requested_by)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (pipeline) WHERE status IN ('queued', 'running') DO NOTHING
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
                .fetch_optional(&self.pool)
                .await?;
            if let Some(run) = inserted {
                return Ok(Created::New(run));
            }
            if let Some(active) = self.active_run(new.pipeline).await? {
                return Ok(Created::AlreadyActive(active));
            }
            // The active run finished between the two statements: try again.
        }
    }

    /// The pipeline's queued or running run, if any.
    ///
    /// # Errors
    /// `Database`.
    pub async fn active_run(&self, pipeline: &str) -> Result<Option<Run>, EngineError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = $1 AND status IN ('queued', 'running')");
        Ok(sqlx::query_as(&sql).bind(pipeline).fetch_optional(&self.pool).await?)
    }

    /// A run with its steps and its event history.
    ///
    /// # Errors
    /// `RunNotFound`, or `Database`.
    pub async fn get_run(&self, id: Uuid) -> Result<RunDetail, EngineError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let run: Run = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(EngineError::RunNotFound(id))?;
        let steps: Vec<StepRecord> = sqlx::query_as(
            "SELECT run_id, position, name, status, attempt, max_attempts, retry_base,
                    next_attempt_at, lease_owner, lease_expires_at, output, last_error,
                    started_at, finished_at
             FROM steps WHERE run_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let events = self.events(id).await?;
        Ok(RunDetail { run, steps, events })
    }

    /// A run's history, oldest first.
    ///
    /// # Errors
    /// `Database`.
    pub async fn events(&self, run_id: Uuid) -> Result<Vec<RunEvent>, EngineError> {
        Ok(sqlx::query_as(
            "SELECT id, run_id, step, attempt, from_status, to_status, actor, reason, detail, at
             FROM run_events WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest runs first, optionally only those in one status.
    ///
    /// # Errors
    /// `Database`.
    pub async fn list_runs(&self, status: Option<RunStatus>, limit: i64) -> Result<Vec<Run>, EngineError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE $1::run_status IS NULL OR status = $1
             ORDER BY created_at DESC, id LIMIT $2"
        );
        Ok(sqlx::query_as(&sql)
            .bind(status)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}
