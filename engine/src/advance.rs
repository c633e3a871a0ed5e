//! The common commit in one statement: a step returned `Continue`, so it
//! succeeds and the run moves on to its next step (leased at once to the same
//! worker, if it asks) or ends `succeeded` after its last. Every other result,
//! and a run with a cancel requested, takes the general path in a
//! transaction (commit.rs); this statement then writes nothing.
//!
//! One autocommit statement instead of BEGIN, a locking SELECT, two or three
//! writes and COMMIT saves four round trips a step, and leasing the next step
//! here saves its claim and that claim's commit (BENCHMARKS.md, "Engine
//! overhead"). The writes and events are the same as the general path's.

use crate::claim::ClaimedStep;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;

/// What the one statement did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Succeeded {
    /// The fence failed: this attempt no longer holds the lease. Nothing written.
    LeaseLost,
    /// A cancel was requested: nothing written; the general path decides.
    CancelRequested,
    /// The run moved on; its next step leased to this worker, if asked for
    /// and due.
    Advanced(Option<ClaimedStep>),
    /// That was the last step: the run ended `succeeded`.
    Finished,
}

#[derive(sqlx::FromRow)]
struct Row {
    cancel_requested: bool,
    last: bool,
    next_position: Option<i32>,
    next_name: Option<String>,
    next_attempt: Option<i32>,
}

/// Commits `claimed`'s success with `output`, fenced by (lease owner,
/// attempt) as the general path is. With `lease_next`, the next step is
/// leased to `actor` for that long in the same commit, as a claim would.
pub(crate) async fn succeed(
    pool: &PgPool,
    claimed: &ClaimedStep,
    output: &Value,
    actor: &str,
    lease_next: Option<Duration>,
) -> Result<Succeeded, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(
        "WITH fenced AS (
            SELECT s.run_id, s.position, r.status AS run_status,
                   r.cancel_requested_at IS NOT NULL AS cancel_requested,
                   NOT EXISTS (SELECT 1 FROM steps n
                               WHERE n.run_id = s.run_id AND n.position = s.position + 1) AS last
            FROM steps s JOIN runs r ON r.id = s.run_id
            WHERE s.run_id = $1 AND s.position = $2 AND s.status = 'running'
              AND s.lease_owner = $3 AND s.attempt = $4
            FOR UPDATE OF s, r
        ), go AS (
            SELECT * FROM fenced WHERE NOT cancel_requested
        ), done AS (
            UPDATE steps s SET
                status = 'succeeded',
                output = $5,
                next_attempt_at = clock_timestamp(),
                lease_owner = NULL,
                lease_expires_at = NULL,
                finished_at = clock_timestamp()
            FROM go
            WHERE s.run_id = go.run_id AND s.position = go.position
            RETURNING s.run_id, s.name, s.attempt
        ), advanced AS (
            UPDATE runs r SET current_step = r.current_step + 1
            FROM go
            WHERE r.id = go.run_id AND NOT go.last
            RETURNING r.id
        ), finished AS (
            UPDATE runs r SET
                status = 'succeeded',
                outcome = jsonb_build_object('steps', go.position + 1),
                finished_at = clock_timestamp(),
                cancel_requested_at = NULL
            FROM go
            WHERE r.id = go.run_id AND go.last
            RETURNING r.id, go.run_status
        ), leased AS (
            UPDATE steps n SET
                status = 'running',
                attempt = n.attempt + 1,
                lease_owner = $6,
                lease_expires_at = clock_timestamp() + $7::bigint * interval '1 millisecond',
                started_at = clock_timestamp(),
                finished_at = NULL
            FROM go
            WHERE $7::bigint IS NOT NULL AND NOT go.last
              AND n.run_id = go.run_id AND n.position = go.position + 1
              AND n.status = 'pending' AND n.next_attempt_at <= clock_timestamp()
            RETURNING n.run_id, n.position, n.name, n.attempt
        ), events AS (
            INSERT INTO run_events (run_id, step, attempt, from_status, to_status, actor, reason)
            SELECT * FROM (
                SELECT run_id, name, attempt, 'running', 'succeeded', $6, NULL::text FROM done
                UNION ALL
                SELECT run_id, name, attempt, 'pending', 'running', $6, NULL FROM leased
                UNION ALL
                SELECT id, NULL, NULL, run_status::text, 'succeeded', $6, 'all steps succeeded' FROM finished
            ) in_order
        )
        SELECT f.cancel_requested, f.last, l.position AS next_position, l.name AS next_name,
               l.attempt AS next_attempt
        FROM fenced f LEFT JOIN leased l ON true",
    )
    .bind(claimed.run_id)
    .bind(claimed.position)
    .bind(&claimed.lease_owner)
    .bind(claimed.attempt)
    .bind(output)
    .bind(actor)
    .bind(lease_next.map(|lease| lease.as_millis() as i64))
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => Succeeded::LeaseLost,
        Some(row) if row.cancel_requested => Succeeded::CancelRequested,
        Some(row) if row.last => Succeeded::Finished,
        Some(row) => Succeeded::Advanced(next_step(claimed, output, actor, row)),
    })
}

/// The leased next step, with what its handler needs: the run's trigger and
/// params (which never change) and the outputs before it (the earlier ones,
/// read at the claim, and this step's).
fn next_step(claimed: &ClaimedStep, output: &Value, actor: &str, row: Row) -> Option<ClaimedStep> {
    let (position, step, attempt) = (row.next_position?, row.next_name?, row.next_attempt?);
    let mut outputs = claimed.outputs.clone();
    outputs.insert(claimed.step.clone(), output.clone());
    Some(ClaimedStep {
        run_id: claimed.run_id,
        pipeline: claimed.pipeline.clone(),
        subject: claimed.subject.clone(),
        position,
        step,
        attempt,
        lease_owner: actor.to_owned(),
        trigger: claimed.trigger,
        params: claimed.params.clone(),
        outputs,
    })
}
