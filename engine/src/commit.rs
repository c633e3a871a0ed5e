//! Deciding and writing what follows a step's attempt: advance, finish the run
//! (succeeded, skipped, rejected, failed, cancelled) or schedule a retry.
//! One function serves workers' results and reclaimed leases alike.

use crate::claim::ClaimedStep;
use crate::error::StepError;
use crate::pipeline::{EarlyFinish, StepOutcome};
use crate::retry::RetryPolicy;
use crate::status::{RunStatus, StepStatus};
use crate::transition::{self, Because, StepExit};
use serde_json::{Value, json};
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

/// A running step with its run, locked (`FOR UPDATE`) by the caller's transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct LockedStep {
    pub run_id: Uuid,
    pub position: i32,
    pub name: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub retry_base: i32,
    pub backoff_initial_ms: i32,
    pub backoff_multiplier: f64,
    pub backoff_cap_ms: i32,
    pub lease_owner: Option<String>,
    pub run_status: RunStatus,
    pub cancel_requested: bool,
    pub step_count: i32,
}

/// Selects a running step and its run for [`apply`]; the caller appends the
/// filter and locking clause.
pub(crate) const LOCKED_STEP_SELECT: &str = "SELECT s.run_id, s.position, s.name, s.attempt,
        s.max_attempts, s.retry_base, s.backoff_initial_ms, s.backoff_multiplier,
        s.backoff_cap_ms, s.lease_owner, r.status AS run_status,
        r.cancel_requested_at IS NOT NULL AS cancel_requested,
        (SELECT count(*) FROM steps x WHERE x.run_id = s.run_id)::int AS step_count
    FROM steps s JOIN runs r ON r.id = s.run_id";

/// Locks a claimed step and its run for [`apply`] if this attempt still
/// holds the step's lease: `None` if it does not.
pub(crate) async fn lock_fenced(
    conn: &mut PgConnection,
    claimed: &ClaimedStep,
) -> Result<Option<LockedStep>, sqlx::Error> {
    let sql = format!(
        "{LOCKED_STEP_SELECT}
         WHERE s.run_id = $1 AND s.position = $2 AND s.status = 'running'
           AND s.lease_owner = $3 AND s.attempt = $4
         FOR UPDATE OF s, r"
    );
    sqlx::query_as(&sql)
        .bind(claimed.run_id)
        .bind(claimed.position)
        .bind(&claimed.lease_owner)
        .bind(claimed.attempt)
        .fetch_optional(conn)
        .await
}

impl LockedStep {
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts as u32,
            initial: Duration::from_millis(self.backoff_initial_ms as u64),
            multiplier: self.backoff_multiplier,
            cap: Duration::from_millis(self.backoff_cap_ms as u64),
        }
    }
}

/// What the engine did with a step's attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepCommit {
    /// The step succeeded and the run moved to its next step.
    Advanced,
    /// The run ended, in this status.
    RunFinished(RunStatus),
    /// The attempt failed and the step waits for another, after this delay.
    RetryScheduled(Duration),
}

/// When a retryable failure may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryTiming {
    /// After the step's backoff.
    Backoff,
    /// At once (the attempt was lost with its worker, not failed by the step).
    Immediately,
}

/// Writes the consequences of one attempt's result.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    step: &LockedStep,
    result: Result<StepOutcome, StepError>,
    actor: &str,
    timing: RetryTiming,
) -> Result<StepCommit, sqlx::Error> {
    let because = |reason: Option<&'static str>| Because {
        actor,
        reason,
        detail: None,
    };
    match result {
        Ok(StepOutcome::Continue(output)) => {
            let exit = StepExit {
                to: StepStatus::Succeeded,
                output: Some(&output),
                error: None,
                retry_in: None,
            };
            transition::leave_running(conn, step.run_id, step.position, exit, because(None)).await?;
            let last = step.position + 1 >= step.step_count;
            // A cancel stops the run at the next step boundary. After the last
            // step there is none: its work is done (a promotion committed), so
            // calling the run cancelled would make the audit disagree with
            // what happened.
            if step.cancel_requested && !last {
                return cancel_run(conn, step, actor).await;
            }
            if last {
                let outcome = json!({"steps": step.step_count});
                let reason = if step.cancel_requested {
                    "all steps succeeded; the cancel came after the last step had started and was too late"
                } else {
                    "all steps succeeded"
                };
                transition::finish_run(
                    conn,
                    step.run_id,
                    step.run_status,
                    RunStatus::Succeeded,
                    None,
                    &outcome,
                    because(Some(reason)),
                )
                .await?;
                return Ok(StepCommit::RunFinished(RunStatus::Succeeded));
            }
            transition::advance(conn, step.run_id).await?;
            Ok(StepCommit::Advanced)
        }
        Ok(StepOutcome::Finish { how, reason, output }) => {
            let to = match how {
                EarlyFinish::Skipped => RunStatus::Skipped,
                EarlyFinish::Rejected => RunStatus::Rejected,
            };
            let exit = StepExit {
                to: StepStatus::Succeeded,
                output: Some(&output),
                error: None,
                retry_in: None,
            };
            let why = Because {
                actor,
                reason: Some(reason.as_str()),
                detail: Some(&output),
            };
            transition::leave_running(conn, step.run_id, step.position, exit, why).await?;
            let outcome = json!({"step": step.name, "reason": &reason, "detail": &output});
            transition::finish_run(
                conn,
                step.run_id,
                step.run_status,
                to,
                Some(StepStatus::Skipped),
                &outcome,
                why,
            )
            .await?;
            Ok(StepCommit::RunFinished(to))
        }
        Err(err) if step.cancel_requested => {
            // Whatever stopped the step (its signal, a failure, an expired
            // lease), a cancel was asked for: the run ends here. The event
            // keeps what stopped it, unless that was the cancel signal itself.
            let reason = match err {
                StepError::Cancelled => "run cancelled".to_owned(),
                other => format!("run cancelled; the step ended with: {other}"),
            };
            let exit = StepExit {
                to: StepStatus::Cancelled,
                output: None,
                error: Some("cancelled"),
                retry_in: None,
            };
            let why = Because {
                actor,
                reason: Some(&reason),
                detail: None,
            };
            transition::leave_running(conn, step.run_id, step.position, exit, why).await?;
            cancel_run(conn, step, actor).await
        }
        Err(StepError::Fatal(message)) => fail(conn, step, &message, actor, "fatal error").await,
        Err(err @ (StepError::Retryable(_) | StepError::Cancelled)) => {
            let message = match err {
                StepError::Cancelled => "step stopped on its cancellation signal".to_owned(),
                other => other.to_string(),
            };
            let failures = (step.attempt - step.retry_base).max(1) as u32;
            if failures >= step.max_attempts as u32 {
                return fail(conn, step, &message, actor, "attempts exhausted").await;
            }
            let delay = match timing {
                RetryTiming::Backoff => step.policy().delay_after(failures, &mut rand::thread_rng()),
                RetryTiming::Immediately => Duration::ZERO,
            };
            let detail = json!({"retry_in_ms": delay.as_millis() as u64, "error": message});
            let exit = StepExit {
                to: StepStatus::Pending,
                output: None,
                error: Some(message.as_str()),
                retry_in: Some(delay),
            };
            let why = Because {
                actor,
                reason: Some(message.as_str()),
                detail: Some(&detail),
            };
            transition::leave_running(conn, step.run_id, step.position, exit, why).await?;
            Ok(StepCommit::RetryScheduled(delay))
        }
    }
}

async fn fail(
    conn: &mut PgConnection,
    step: &LockedStep,
    message: &str,
    actor: &str,
    class: &str,
) -> Result<StepCommit, sqlx::Error> {
    let exit = StepExit {
        to: StepStatus::Failed,
        output: None,
        error: Some(message),
        retry_in: None,
    };
    let reason = format!("{class}: {message}");
    let why = Because {
        actor,
        reason: Some(reason.as_str()),
        detail: None,
    };
    transition::leave_running(conn, step.run_id, step.position, exit, why).await?;
    let outcome: Value = json!({"step": step.name, "error": message, "attempt": step.attempt, "class": class});
    transition::finish_run(
        conn,
        step.run_id,
        step.run_status,
        RunStatus::Failed,
        None,
        &outcome,
        why,
    )
    .await?;
    Ok(StepCommit::RunFinished(RunStatus::Failed))
}

async fn cancel_run(conn: &mut PgConnection, step: &LockedStep, actor: &str) -> Result<StepCommit, sqlx::Error> {
    let outcome = json!({"stopped_after_step": step.name});
    let why = Because {
        actor,
        reason: Some("cancel requested; stopped at the step boundary"),
        detail: None,
    };
    transition::cancel_run(conn, step.run_id, step.run_status, &outcome, why).await?;
    Ok(StepCommit::RunFinished(RunStatus::Cancelled))
}
