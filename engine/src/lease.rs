//! Keeping a lease alive while a step runs: a heartbeat extends it, and
//! signals the step to stop when the lease is lost or the run is cancelled.

use crate::claim::ClaimedStep;
use sqlx::PgPool;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Extends the lease if this worker still holds it. `Ok(None)`: the lease is
/// lost. `Ok(Some(cancel_requested))` otherwise.
pub(crate) async fn extend(pool: &PgPool, claimed: &ClaimedStep, lease: Duration) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE steps s SET lease_expires_at = clock_timestamp() + $5 * interval '1 millisecond'
         FROM runs r
         WHERE s.run_id = $1 AND s.position = $2 AND s.lease_owner = $3 AND s.attempt = $4
           AND s.status = 'running' AND r.id = s.run_id
         RETURNING r.cancel_requested_at IS NOT NULL",
    )
    .bind(claimed.run_id)
    .bind(claimed.position)
    .bind(&claimed.lease_owner)
    .bind(claimed.attempt)
    .bind(lease.as_millis() as i64)
    .fetch_optional(pool)
    .await
}

/// Heartbeats every `every` until `stop` fires. Fires `step_cancel` when the
/// run is being cancelled or the lease was lost.
pub(crate) fn spawn_heartbeat(
    pool: PgPool,
    claimed: ClaimedStep,
    lease: Duration,
    every: Duration,
    step_cancel: CancellationToken,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match extend(&pool, &claimed, lease).await {
                Ok(Some(false)) => {}
                Ok(Some(true)) => step_cancel.cancel(),
                Ok(None) => {
                    tracing::warn!(run_id = %claimed.run_id, step = %claimed.step,
                        attempt = claimed.attempt, "lease lost; signalling the step to stop");
                    step_cancel.cancel();
                    return;
                }
                Err(err) => tracing::warn!(run_id = %claimed.run_id, step = %claimed.step,
                    error = %err, "heartbeat failed; will try again"),
            }
        }
    })
}
