//! The sweep a worker makes before a claim, at most once per
//! `WorkerConfig::sweep_every`, so that no run stays active with nothing a
//! worker could claim. An active run's current step is either
//! pending (claimable, unless a cancel was requested) or running (reclaimable
//! once its lease expires). The sweep takes back the expired leases, and
//! ends the one combination no claim can ever take: a cancel-requested run
//! with no step running (left by a worker of an older version that released
//! its step at shutdown, or by hand in psql).

use crate::commit::{self, LOCKED_STEP_SELECT, LockedStep, RetryTiming};
use crate::error::StepError;
use crate::status::RunStatus;
use crate::transition::{self, Because};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// When a worker (and its clones) last swept. Sweeping before every claim
/// cost a transaction and four round trips per step, about half a
/// millisecond each (BENCHMARKS.md, "Engine overhead"); what it finds is
/// rare (a dead worker's lease, a stranded cancel) and may wait a second.
#[derive(Debug, Clone)]
pub(crate) struct SweepClock {
    every: Duration,
    last: Arc<Mutex<Option<Instant>>>,
}

impl SweepClock {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether a sweep is due: never swept yet, or not for `every`.
    pub(crate) fn due(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_none_or(|last| last.elapsed() >= self.every)
    }

    /// Records a sweep that completed.
    pub(crate) fn swept(&self) {
        *self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }
}

/// Reclaims expired leases, then cancels stranded cancel-requested runs, in
/// one transaction. Rows another worker has locked are skipped, never waited
/// on: that worker is acting on them.
pub(crate) async fn sweep(pool: &PgPool, pipelines: &[String], worker: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    reclaim_expired(&mut tx, pipelines, worker).await?;
    cancel_stranded(&mut tx, pipelines, worker).await?;
    tx.commit().await
}

/// Takes back steps whose lease expired (their worker died, hung, or lost
/// the database): each counts as a failed attempt, retried at once while
/// attempts remain, and ends the run if a cancel was requested. The event
/// names the worker that lost the lease.
async fn reclaim_expired(conn: &mut PgConnection, pipelines: &[String], worker: &str) -> Result<(), sqlx::Error> {
    let sql = format!(
        "{LOCKED_STEP_SELECT}
         WHERE s.status = 'running' AND s.lease_expires_at < clock_timestamp()
           AND r.pipeline = ANY($1)
         ORDER BY s.lease_expires_at
         LIMIT 16
         FOR UPDATE OF s, r SKIP LOCKED"
    );
    let expired: Vec<LockedStep> = sqlx::query_as(&sql)
        .bind(pipelines)
        // Planned afresh each time, as the claim is (claim.rs).
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    for step in &expired {
        let owner = step.lease_owner.as_deref().unwrap_or("?");
        let lost = StepError::Retryable(format!(
            "lease of {owner} expired (attempt {}); reclaimed by {worker}",
            step.attempt
        ));
        let commit = commit::apply(&mut *conn, step, Err(lost), worker, RetryTiming::Immediately).await?;
        tracing::warn!(run_id = %step.run_id, step = %step.name, attempt = step.attempt, owner, ?commit,
            "lease expired; step reclaimed");
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Stranded {
    id: Uuid,
    status: RunStatus,
    step: Option<String>,
}

/// Ends as `cancelled` every active, cancel-requested run of these pipelines
/// with no step running: no worker holds it and no claim will take it.
async fn cancel_stranded(conn: &mut PgConnection, pipelines: &[String], worker: &str) -> Result<(), sqlx::Error> {
    // At most one active run per pipeline (the partial unique index), so this
    // reads that index and a handful of rows, whatever the history's size:
    // 0.05 ms to execute, 0.3 ms to plan, beside 20,000 finished runs (PG 15,
    // EXPLAIN ANALYZE, generic plan the same as the custom one).
    let stranded: Vec<Stranded> = sqlx::query_as(
        "SELECT r.id, r.status, s.name AS step
         FROM runs r LEFT JOIN steps s ON s.run_id = r.id AND s.position = r.current_step
         WHERE r.status IN ('queued', 'running') AND r.cancel_requested_at IS NOT NULL
           AND r.pipeline = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM steps x WHERE x.run_id = r.id AND x.status = 'running')
         FOR UPDATE OF r SKIP LOCKED",
    )
    .bind(pipelines)
    .fetch_all(&mut *conn)
    .await?;
    for run in &stranded {
        let step = run.step.as_deref().unwrap_or("");
        let why = Because {
            actor: worker,
            reason: Some("cancel requested and no step running: ended by the sweep"),
            detail: None,
        };
        let outcome = json!({"stopped_before_step": step});
        transition::cancel_run(&mut *conn, run.id, run.status, &outcome, why).await?;
        tracing::warn!(run_id = %run.id, step, "cancel-requested run had no step running; cancelled it");
    }
    Ok(())
}
