//! The state changes of steps and runs, each written together with its audit
//! event in one statement. Callers hold the row locks (in a transaction) and
//! decide which change is due; the database's triggers refuse illegal ones.

use crate::status::{RunStatus, StepStatus};
use serde_json::Value;
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

/// Who made a change and why, for the event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Because<'a> {
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    pub detail: Option<&'a Value>,
}

/// What to write on a step leaving `running`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepExit<'a> {
    pub to: StepStatus,
    pub output: Option<&'a Value>,
    pub error: Option<&'a str>,
    /// For `pending`: when the next attempt may start.
    pub retry_in: Option<Duration>,
}

/// Moves a running step to `exit.to`, dropping its lease.
pub(crate) async fn leave_running(
    conn: &mut PgConnection,
    run_id: Uuid,
    position: i32,
    exit: StepExit<'_>,
    why: Because<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH upd AS (
            UPDATE steps SET
                status = $3,
                output = coalesce($4, output),
                last_error = coalesce($5, last_error),
                next_attempt_at = clock_timestamp() + coalesce($6, 0) * interval '1 millisecond',
                lease_owner = NULL,
                lease_expires_at = NULL,
                finished_at = CASE WHEN $3 = 'pending'::step_status THEN NULL ELSE clock_timestamp() END
            WHERE run_id = $1 AND position = $2 AND status = 'running'
            RETURNING run_id, name, attempt
        )
        INSERT INTO run_events (run_id, step, attempt, from_status, to_status, actor, reason, detail)
        SELECT run_id, name, attempt, 'running', $3::text, $7, $8, $9 FROM upd",
    )
    .bind(run_id)
    .bind(position)
    .bind(exit.to)
    .bind(exit.output)
    .bind(exit.error)
    .bind(exit.retry_in.map(|d| d.as_millis() as i64))
    .bind(why.actor)
    .bind(why.reason)
    .bind(why.detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the run to the next step (no status change, so no event).
pub(crate) async fn advance(conn: &mut PgConnection, run_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE runs SET current_step = current_step + 1 WHERE id = $1")
        .bind(run_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends a run `cancelled`, with its pending steps: the one way an operator's
/// cancel, a cancel at a step boundary and the sweep of stranded runs end it.
pub(crate) async fn cancel_run(
    conn: &mut PgConnection,
    run_id: Uuid,
    from: RunStatus,
    outcome: &Value,
    why: Because<'_>,
) -> Result<(), sqlx::Error> {
    finish_run(
        conn,
        run_id,
        from,
        RunStatus::Cancelled,
        Some(StepStatus::Cancelled),
        outcome,
        why,
    )
    .await
}

/// Ends a run in a terminal state. Its steps still pending become `rest`
/// (skipped or cancelled), each with an event; with `rest = None` they stay
/// pending, as for a failed run that an operator may retry.
pub(crate) async fn finish_run(
    conn: &mut PgConnection,
    run_id: Uuid,
    from: RunStatus,
    to: RunStatus,
    rest: Option<StepStatus>,
    outcome: &Value,
    why: Because<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH rest AS (
            UPDATE steps SET status = $4, finished_at = clock_timestamp()
            WHERE run_id = $1 AND status = 'pending' AND $4 IS NOT NULL
            RETURNING run_id, name, attempt, position
        ), run AS (
            UPDATE runs SET
                status = $3,
                outcome = $5,
                finished_at = clock_timestamp(),
                cancel_requested_at = NULL
            WHERE id = $1
            RETURNING id
        )
        INSERT INTO run_events (run_id, step, attempt, from_status, to_status, actor, reason, detail)
        SELECT * FROM (
            SELECT run_id, name, attempt, 'pending', $4::text, $6, $7, NULL::jsonb
            FROM rest ORDER BY position
        ) steps_first
        UNION ALL
        SELECT id, NULL, NULL, $2::text, $3::text, $6, $7, $8 FROM run",
    )
    .bind(run_id)
    .bind(from)
    .bind(to)
    .bind(rest)
    .bind(outcome)
    .bind(why.actor)
    .bind(why.reason)
    .bind(why.detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records an event that changes no status (a cancel request, say).
pub(crate) async fn note(
    conn: &mut PgConnection,
    run_id: Uuid,
    status: RunStatus,
    why: Because<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO run_events (run_id, from_status, to_status, actor, reason, detail)
         VALUES ($1, $2::text, $2::text, $3, $4, $5)",
    )
    .bind(run_id)
    .bind(status.as_str())
    .bind(why.actor)
    .bind(why.reason)
    .bind(why.detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// A fact worth auditing that changes no state, written by a step inside its
/// own transaction (a promotion, say), so the fact and its event commit together.
#[derive(Debug, Clone, Copy)]
pub struct Annotation<'a> {
    pub run_id: Uuid,
    pub step: &'a str,
    pub attempt: i32,
    pub actor: &'a str,
    pub reason: &'a str,
    pub detail: Option<&'a Value>,
}

/// Writes an [`Annotation`] as an event whose from and to are the step's
/// current status.
///
/// # Errors
/// The database's.
pub async fn annotate(conn: &mut PgConnection, note: Annotation<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO run_events (run_id, step, attempt, from_status, to_status, actor, reason, detail)
         SELECT run_id, name, $3, status::text, status::text, $4, $5, $6
         FROM steps WHERE run_id = $1 AND name = $2",
    )
    .bind(note.run_id)
    .bind(note.step)
    .bind(note.attempt)
    .bind(note.actor)
    .bind(note.reason)
    .bind(note.detail)
    .execute(conn)
    .await?;
    Ok(())
}
