//! The real `retrain` binary in child processes, and what the tests say to it.
//!
//! Each process is [`RETRAIN`]`.start(role, ...)`: `retrain serve --role
//! api|worker` as `retrain_testkit::process` starts it.

use retrain_steps::ml::{Example, Split};
pub use retrain_testkit::process::{Binary, Process, Role};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::{Duration, Instant};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use uuid::Uuid;

pub const TOKEN: &str = "faults-admin-token-0123456789abcdef";

/// The tests of this binary share the machine, except the database restart,
/// whose latency checks want it to themselves. (Each test has a runtime of
/// its own; tokio's lock works across runtimes.)
static MACHINE: RwLock<()> = RwLock::const_new(());

/// Run alongside the other shared tests.
pub async fn shared_machine() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// Run with no other test of this binary.
pub async fn whole_machine() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// The URL a child process connects with.
pub fn database_url(connect: &PgConnectOptions) -> String {
    retrain_testkit::db::url_of(connect)
}

/// The test's own pool; short waits, so a test fails instead of hanging.
pub async fn pool(connect: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(connect.clone())
        .await
        .expect("the test connects to PostgreSQL")
}

/// The binary under test, started with this binary's admin token.
pub const RETRAIN: Binary = Binary {
    path: env!("CARGO_BIN_EXE_retrain"),
    token: TOKEN,
};

/// Workers with a gate that passes every candidate, so each run goes
/// through all five steps (a rejection would end it before promote).
pub const PASSING_GATE: [(&str, &str); 3] = [
    ("RETRAIN_GATE_FLOOR", "0"),
    ("RETRAIN_GATE_RECALL_MARGIN", "1"),
    ("RETRAIN_GATE_MARGIN", "1"),
];

/// Rows of a split of the stored data set (bootstrapped by the service).
pub async fn split_rows(pool: &PgPool, split: Split) -> Vec<Example> {
    retrain_testkit::fixtures::split_rows(pool, split).await
}

/// Stores another model (not promoted); returns its version.
pub async fn another_model(pool: &PgPool, max_depth: usize) -> i64 {
    i64::from(retrain_testkit::fixtures::another_model(pool, max_depth).await)
}

pub async fn scalar_i64(pool: &PgPool, sql: &str, run: Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(run).fetch_one(pool).await.unwrap()
}

pub async fn run_status(pool: &PgPool, run: Uuid) -> String {
    sqlx::query_scalar("SELECT status::text FROM runs WHERE id = $1")
        .bind(run)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the run ends; returns its status.
pub async fn finished(pool: &PgPool, run: Uuid, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let status = run_status(pool, run).await;
        if status != "queued" && status != "running" {
            return status;
        }
        assert!(Instant::now() < deadline, "run {run} still {status} after {secs} s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `check` holds, or panics after `secs`.
pub async fn eventually<F, Fut>(secs: f64, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    retrain_testkit::eventually(Duration::from_secs_f64(secs), what, check).await;
}

/// Every (run, step, attempt) started exactly once (one `pending -> running`
/// event), and every started attempt left `running` exactly once, by the
/// worker that started it unless a reclaim took it back. Returns the
/// violations, empty if none.
pub async fn attempt_violations(pool: &PgPool) -> Vec<String> {
    let rows: Vec<(Uuid, String, i32, i64, i64, i64)> = sqlx::query_as(
        "WITH starts AS (
            SELECT run_id, step, attempt, count(*) AS starts, min(actor) AS starter
            FROM run_events WHERE from_status = 'pending' AND to_status = 'running'
            GROUP BY run_id, step, attempt
        ), exits AS (
            SELECT run_id, step, attempt, count(*) AS exits,
                   count(*) FILTER (WHERE to_status <> 'pending' OR reason NOT LIKE 'lease of % expired%') AS own_exits,
                   min(actor) AS finisher
            FROM run_events WHERE from_status = 'running' AND to_status <> 'running'
            GROUP BY run_id, step, attempt
        )
        SELECT s.run_id, s.step, s.attempt, s.starts, coalesce(e.exits, 0),
               CASE WHEN e.own_exits > 0 AND e.finisher <> s.starter THEN 1 ELSE 0 END::bigint
        FROM starts s LEFT JOIN exits e USING (run_id, step, attempt)
        WHERE s.starts <> 1 OR coalesce(e.exits, 0) <> 1 OR (e.own_exits > 0 AND e.finisher <> s.starter)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(run, step, attempt, starts, exits, foreign)| {
            format!("run {run} step {step} attempt {attempt}: {starts} starts, {exits} exits, finished by another worker: {}", foreign == 1)
        })
        .collect()
}

/// One line of a run's history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub step: Option<String>,
    pub attempt: Option<i32>,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub reason: Option<String>,
}

impl Event {
    pub fn is_step(&self, step: &str) -> bool {
        self.step.as_deref() == Some(step)
    }

    /// A step handed back from `running` to `pending` (retry or reclaim).
    pub fn is_retry(&self) -> bool {
        self.from_status.as_deref() == Some("running") && self.to_status == "pending"
    }
}

/// A run's history, oldest first.
pub async fn history(pool: &PgPool, run: Uuid) -> Vec<Event> {
    sqlx::query_as(
        "SELECT step, attempt, from_status, to_status, actor, reason FROM run_events WHERE run_id = $1 ORDER BY id",
    )
    .bind(run)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The history as text, for assertion messages.
pub fn show(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} #{} {} -> {} by {}: {}",
                e.step.as_deref().unwrap_or("(run)"),
                e.attempt.map_or("-".into(), |a| a.to_string()),
                e.from_status.as_deref().unwrap_or("-"),
                e.to_status,
                e.actor,
                e.reason.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
