//! Operator controls over a run: cancel it, or retry a failed one from the
//! step that failed. Both lock the run row, so they serialize with workers.

use crate::error::EngineError;
use crate::record::Run;
use crate::runs::{Engine, RUN_COLUMNS};
use crate::status::RunStatus;
use crate::transition::{self, Because};
use serde_json::json;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

/// What a cancel did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// The run ended `cancelled` at once.
    Now(Run),
    /// A step is running: it was signalled, and the run ends `cancelled` when
    /// that step returns (no further step starts).
    Requested(Run),
}

impl Cancelled {
    pub fn run(&self) -> &Run {
        match self {
            Self::Now(run) | Self::Requested(run) => run,
        }
    }
}

impl Engine {
    /// Cancels a queued or running run.
    ///
    /// # Errors
    /// `RunNotFound`; `InvalidState` if the run already ended; `Database`.
    pub async fn cancel_run(&self, id: Uuid, actor: &str) -> Result<Cancelled, EngineError> {
        let mut tx = self.pool.begin().await?;
        let run = lock_run(&mut tx, id).await?;
        if !run.status.is_active() {
            return Err(EngineError::InvalidState {
                id,
                status: run.status,
                action: "cancel",
            });
        }
        if run.cancel_requested_at.is_some() {
            return Ok(Cancelled::Requested(run));
        }
        let step_running: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND status = 'running')")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let why = Because {
            actor,
            reason: Some("cancelled by operator"),
            detail: None,
        };
        let cancelled = if step_running {
            sqlx::query("UPDATE runs SET cancel_requested_at = clock_timestamp() WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let why = Because {
                reason: Some("cancel requested by operator; the run stops when its running step returns"),
                ..why
            };
            transition::note(&mut tx, id, run.status, why).await?;
            Cancelled::Requested(reload(&mut tx, id).await?)
        } else {
            let outcome = json!({"cancelled_by": actor});
            transition::cancel_run(&mut tx, id, run.status, &outcome, why).await?;
            Cancelled::Now(reload(&mut tx, id).await?)
        };
        tx.commit().await?;
        Ok(cancelled)
    }

    /// Re-queues a failed run at the step that failed; the outputs of the
    /// steps before it are kept and reused, and the step gets a fresh round
    /// of attempts.
    ///
    /// # Errors
    /// `RunNotFound`; `InvalidState` unless the run failed;
    /// `ActiveRunExists` if another run of the pipeline is active; `Database`.
    pub async fn retry_run(&self, id: Uuid, actor: &str) -> Result<Run, EngineError> {
        let mut tx = self.pool.begin().await?;
        let run = lock_run(&mut tx, id).await?;
        if run.status != RunStatus::Failed {
            return Err(EngineError::InvalidState {
                id,
                status: run.status,
                action: "retry",
            });
        }
        if let Some(active) = self.active_run(&run.pipeline, &run.subject).await? {
            return Err(EngineError::ActiveRunExists {
                pipeline: run.pipeline,
                active: active.id,
            });
        }
        let requeue = sqlx::query(
            "WITH step AS (
                UPDATE steps SET status = 'pending', retry_base = attempt,
                       next_attempt_at = clock_timestamp(), finished_at = NULL
                WHERE run_id = $1 AND position = $2 AND status = 'failed'
                RETURNING run_id, name, attempt
            ), run AS (
                UPDATE runs SET status = 'queued', outcome = NULL, finished_at = NULL
                WHERE id = $1
                RETURNING id
            )
            INSERT INTO run_events (run_id, step, attempt, from_status, to_status, actor, reason)
            SELECT id, NULL, NULL, 'failed', 'queued', $3, 'retried by operator' FROM run
            UNION ALL
            SELECT run_id, name, attempt, 'failed', 'pending', $3, 'retried by operator' FROM step",
        )
        .bind(id)
        .bind(run.current_step)
        .bind(actor)
        .execute(&mut *tx)
        .await;
        match requeue {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                // Another run became active after our check.
                let active = self.active_run(&run.pipeline, &run.subject).await?;
                return Err(EngineError::ActiveRunExists {
                    pipeline: run.pipeline,
                    active: active.map(|r| r.id).unwrap_or_default(),
                });
            }
            other => other?,
        };
        let run = reload(&mut tx, id).await?;
        tx.commit().await?;
        Ok(run)
    }
}

async fn lock_run(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<Run, EngineError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1 FOR UPDATE");
    sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(EngineError::RunNotFound(id))
}

async fn reload(conn: &mut PgConnection, id: Uuid) -> Result<Run, sqlx::Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
    sqlx::query_as(&sql).bind(id).fetch_one(conn).await
}
