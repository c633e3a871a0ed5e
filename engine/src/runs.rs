//! The engine handle and the run operations that read or create: create a run
//! (or find the active one), get one with its steps and history, list runs.

use crate::create_in::active_run_in;
use crate::error::EngineError;
use crate::pipeline::Registry;
use crate::record::{Created, Run, RunDetail, RunEvent, StepRecord};
use crate::status::{RunStatus, TriggerKind};
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

/// The columns of `runs`, in `Run`'s order.
pub(crate) const RUN_COLUMNS: &str = "id, pipeline, subject, status, trigger, params, requested_by, \
    current_step, cancel_requested_at, outcome, created_at, started_at, finished_at, updated_at";

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub pipeline: &'a str,
    /// What the run acts on (the retrain pipeline's model name); `""` for
    /// pipelines without subjects. One run per pipeline and subject is active.
    pub subject: &'a str,
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
        let mut conn = self.pool.acquire().await?;
        self.create_run_in(&mut conn, new).await
    }

    /// The queued or running run of a pipeline for a subject, if any.
    ///
    /// # Errors
    /// `Database`.
    pub async fn active_run(&self, pipeline: &str, subject: &str) -> Result<Option<Run>, EngineError> {
        active_run_in(&mut *self.pool.acquire().await?, pipeline, subject).await
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

    /// A page of runs, newest first: at most `limit`, optionally only those
    /// in one status, of one subject and asked for by one kind of trigger,
    /// and only those after the run `after` in that order (none if there is
    /// no such run).
    ///
    /// # Errors
    /// `Database`.
    pub async fn list_runs(
        &self,
        status: Option<RunStatus>,
        subject: Option<&str>,
        trigger: Option<TriggerKind>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Run>, EngineError> {
        let sql = list_runs_sql(status.is_some(), subject.is_some(), trigger.is_some(), after.is_some());
        let mut query = sqlx::query_as(&sql).bind(limit);
        if let Some(status) = status {
            query = query.bind(status);
        }
        if let Some(subject) = subject {
            query = query.bind(subject);
        }
        if let Some(trigger) = trigger {
            query = query.bind(trigger);
        }
        if let Some(after) = after {
            query = query.bind(after);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }
}

/// The query of [`Engine::list_runs`] with the filters given: `$1` the
/// limit, then the status, the subject, the trigger and the cursor's run
/// id, each only if given. Each shape has its own text, so every one is
/// planned for its own index (`runs_by_created`, `runs_by_status_created`,
/// `runs_by_subject_created`, all ending in `created_at, id`), in custom and
/// generic plans alike. The trigger has no index of its own: it filters the
/// rows one of those indexes yields (three kinds, each common).
pub fn list_runs_sql(status: bool, subject: bool, trigger: bool, after: bool) -> String {
    let mut conditions = Vec::new();
    let mut n = 1;
    if status {
        n += 1;
        conditions.push(format!("status = ${n}"));
    }
    if subject {
        n += 1;
        conditions.push(format!("subject = ${n}"));
    }
    if trigger {
        n += 1;
        conditions.push(format!("trigger = ${n}"));
    }
    if after {
        n += 1;
        conditions.push(format!(
            "(created_at, id) < ((SELECT created_at FROM runs WHERE id = ${n}), ${n})"
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    format!("SELECT {RUN_COLUMNS} FROM runs {filter} ORDER BY created_at DESC, id DESC LIMIT $1")
}
