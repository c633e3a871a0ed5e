//! Claiming work: the one statement that takes a due step under a lease
//! (`FOR UPDATE SKIP LOCKED`). What a claim cannot take is swept (sweep.rs).

use crate::status::TriggerKind;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// A step this worker holds the lease of, with everything its handler needs.
/// (lease_owner, attempt) fences every write made on its behalf.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedStep {
    pub run_id: Uuid,
    pub pipeline: String,
    /// What the run acts on (`""` for pipelines without subjects).
    pub subject: String,
    pub position: i32,
    pub step: String,
    pub attempt: i32,
    pub lease_owner: String,
    pub trigger: TriggerKind,
    pub params: Value,
    pub outputs: BTreeMap<String, Value>,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    run_id: Uuid,
    pipeline: String,
    subject: String,
    position: i32,
    name: String,
    attempt: i32,
    lease_owner: String,
    trigger: TriggerKind,
    params: Value,
    outputs: Value,
}

/// Takes the most overdue runnable step of the given pipelines, if any: the
/// run's current step, pending and due, of a run not being cancelled. The run
/// becomes `running` if it was queued. Locks are skipped, never waited on.
pub(crate) async fn claim(
    pool: &PgPool,
    pipelines: &[String],
    worker: &str,
    lease: Duration,
) -> Result<Option<ClaimedStep>, sqlx::Error> {
    let row: Option<ClaimRow> = sqlx::query_as(
        "WITH candidate AS (
            SELECT s.run_id, s.position, r.status AS run_status
            FROM steps s JOIN runs r ON r.id = s.run_id AND r.current_step = s.position
            WHERE s.status = 'pending' AND s.next_attempt_at <= clock_timestamp()
              AND r.status IN ('queued', 'running') AND r.cancel_requested_at IS NULL
              AND r.pipeline = ANY($1)
            ORDER BY s.next_attempt_at
            LIMIT 1
            FOR UPDATE OF s, r SKIP LOCKED
        ), claimed AS (
            UPDATE steps s SET
                status = 'running',
                attempt = s.attempt + 1,
                lease_owner = $2,
                lease_expires_at = clock_timestamp() + $3 * interval '1 millisecond',
                started_at = clock_timestamp(),
                finished_at = NULL
            FROM candidate c
            WHERE s.run_id = c.run_id AND s.position = c.position
            RETURNING s.run_id, s.position, s.name, s.attempt, s.lease_owner
        ), started AS (
            UPDATE runs r SET status = 'running', started_at = coalesce(r.started_at, clock_timestamp())
            FROM candidate c
            WHERE r.id = c.run_id AND c.run_status = 'queued'
            RETURNING r.id
        ), events AS (
            INSERT INTO run_events (run_id, step, attempt, from_status, to_status, actor, reason)
            SELECT id, NULL, NULL, 'queued', 'running', $2, 'first step claimed' FROM started
            UNION ALL
            SELECT run_id, name, attempt, 'pending', 'running', $2, NULL FROM claimed
        )
        SELECT c.run_id, r.pipeline, r.subject, c.position, c.name, c.attempt, c.lease_owner, r.trigger, r.params,
               coalesce((SELECT jsonb_object_agg(p.name, p.output) FROM steps p
                         WHERE p.run_id = c.run_id AND p.position < c.position
                           AND p.output IS NOT NULL), '{}'::jsonb) AS outputs
        FROM claimed c JOIN runs r ON r.id = c.run_id",
    )
    .bind(pipelines)
    .bind(worker)
    .bind(lease.as_millis() as i64)
    // Prepared once per connection. A generic plan cached while the tables
    // were empty would stay a pair of sequential scans as history grows (68
    // ms a claim after 3,000 runs); the sweep's ANALYZE of grown tables
    // invalidates it (statistics.rs). Planning afresh each time instead
    // cost a second round trip and about 0.5 ms a claim (BENCHMARKS.md).
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| ClaimedStep {
        run_id: row.run_id,
        pipeline: row.pipeline,
        subject: row.subject,
        position: row.position,
        step: row.name,
        attempt: row.attempt,
        lease_owner: row.lease_owner,
        trigger: row.trigger,
        params: row.params,
        outputs: match row.outputs {
            Value::Object(map) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        },
    }))
}
