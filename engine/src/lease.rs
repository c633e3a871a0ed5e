//! Keeping a lease alive while a step runs: a heartbeat extends it, and
//! signals the step to stop when the run is cancelled, when the lease is lost,
//! or when it cannot be extended before it would expire (the database is away
//! from this worker, or its pool is exhausted): a worker that cannot confirm
//! its lease stops working rather than carry on blind.

use crate::claim::ClaimedStep;
use sqlx::PgPool;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
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

/// Whether this worker could vouch for its lease until its step returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// Confirmed until after the step returned.
    Held,
    /// Taken by another worker, moved on, or not extended before it would
    /// have expired: the step was signalled to stop. If it stopped, there
    /// is nothing to commit and the lease's expiry hands the step on; a
    /// result it returned all the same is committed only if the fence
    /// (commit.rs) finds the step still this attempt's.
    Lost,
}

/// The heartbeat task of one attempt. Dropping it stops the heartbeat, so a
/// worker whose future is dropped (aborted, timed out) lets its lease expire
/// instead of keeping an abandoned step leased for ever.
pub(crate) struct Heartbeat {
    task: JoinHandle<Lease>,
    stop: CancellationToken,
}

impl Heartbeat {
    /// Stops heartbeating and says whether the lease held to this point.
    pub(crate) async fn stop(mut self) -> Lease {
        self.stop.cancel();
        (&mut self.task).await.unwrap_or(Lease::Lost)
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// When a lease is next extended, and until when it is known to hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub lease: Duration,
    pub every: Duration,
    /// When the request that took or last extended the lease was sent: the
    /// database's expiry is at least `lease` after it.
    pub asked: Instant,
}

/// Heartbeats every `timing.every` until stopped. Fires `step_cancel` when
/// the run is being cancelled, and when the lease is lost or was not extended
/// before it would expire.
pub(crate) fn spawn_heartbeat(
    pool: PgPool,
    claimed: ClaimedStep,
    timing: Timing,
    step_cancel: CancellationToken,
) -> Heartbeat {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        // Measured from our side before the request went out, so it is
        // never later than the expiry the database holds.
        let mut held_until = timing.asked + timing.lease;
        loop {
            let next = (Instant::now() + timing.every).min(held_until);
            tokio::select! {
                _ = stopped.cancelled() => return lease_at_stop(held_until),
                _ = tokio::time::sleep_until(next) => {}
            }
            let asked = Instant::now();
            let extended = tokio::select! {
                _ = stopped.cancelled() => return lease_at_stop(held_until),
                extended = tokio::time::timeout_at(held_until, extend(&pool, &claimed, timing.lease)) => extended,
            };
            match extended {
                Ok(Ok(Some(cancel_requested))) => {
                    held_until = asked + timing.lease;
                    if cancel_requested {
                        step_cancel.cancel();
                    }
                }
                Ok(Ok(None)) => {
                    tracing::warn!(run_id = %claimed.run_id, step = %claimed.step,
                        "lease lost to another worker; signalling the step to stop");
                    step_cancel.cancel();
                    return Lease::Lost;
                }
                Ok(Err(err)) if Instant::now() < held_until => {
                    tracing::warn!(run_id = %claimed.run_id, step = %claimed.step, error = %err,
                        "heartbeat failed; trying again before the lease expires");
                }
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!(run_id = %claimed.run_id, step = %claimed.step,
                        lease_ms = timing.lease.as_millis() as u64,
                        "lease not extended before it expired; signalling the step to stop");
                    step_cancel.cancel();
                    return Lease::Lost;
                }
            }
        }
    });
    Heartbeat { task, stop }
}

fn lease_at_stop(held_until: Instant) -> Lease {
    if Instant::now() < held_until {
        Lease::Held
    } else {
        Lease::Lost
    }
}
