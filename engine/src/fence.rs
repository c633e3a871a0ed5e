//! Fencing a step's side effects: a write that changes what is served (a
//! promotion) must commit only while its attempt still holds the lease and
//! the run is not being cancelled, checked in the writer's own transaction.

use crate::error::StepError;
use crate::pipeline::StepContext;
use sqlx::PgConnection;

/// Locks the step's row and its run (`FOR UPDATE`) inside the caller's
/// transaction and checks that this attempt still holds the lease and that
/// the run is not being cancelled. The locks are held until the caller
/// commits, so a reclaim or a cancel cannot slip in between the check and
/// the write it guards.
///
/// # Errors
/// `Cancelled` if a cancel was requested; `Retryable` if the lease is no
/// longer this attempt's (its result will be discarded by the engine) or the
/// database failed.
pub async fn hold_lease(conn: &mut PgConnection, ctx: &StepContext) -> Result<(), StepError> {
    let cancel_requested: Option<bool> = sqlx::query_scalar(
        "SELECT r.cancel_requested_at IS NOT NULL
         FROM steps s JOIN runs r ON r.id = s.run_id
         WHERE s.run_id = $1 AND s.name = $2 AND s.status = 'running'
           AND s.lease_owner = $3 AND s.attempt = $4
         FOR UPDATE OF s, r",
    )
    .bind(ctx.run_id)
    .bind(&ctx.step)
    .bind(&ctx.lease_owner)
    .bind(ctx.attempt)
    .fetch_optional(conn)
    .await?;
    match cancel_requested {
        None => Err(StepError::Retryable(format!(
            "lease lost: attempt {} of step {:?} is no longer held by {}",
            ctx.attempt, ctx.step, ctx.lease_owner
        ))),
        Some(true) => Err(StepError::Cancelled),
        Some(false) => Ok(()),
    }
}
