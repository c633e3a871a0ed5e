//! Evaluations of versions, stored per run, role and set: the golden set
//! (the data set's fixed rows, which guard against forgetting) or the
//! model's recent set (held-out feedback, which follows the traffic).

use crate::ml::Metrics;
use serde::Serialize;
use sqlx::PgConnection;

/// Whose metrics these are within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "evaluation_role", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Candidate,
    Champion,
}

/// Which rows the metrics are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "evaluation_set", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum EvalSet {
    Golden,
    Recent,
}

/// Stores a version's metrics; for a run, once per role and set (a repeat
/// keeps the first).
pub async fn record(
    conn: &mut PgConnection,
    run_id: Option<uuid::Uuid>,
    version_id: i64,
    role: Role,
    dataset_id: i32,
    set: EvalSet,
    metrics: &Metrics,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO evaluations (run_id, version_id, role, dataset_id, n, accuracy, macro_f1, metrics, eval_set, model_id)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, model_id FROM versions WHERE id = $2
         ON CONFLICT (run_id, role, eval_set) DO NOTHING",
    )
    .bind(run_id)
    .bind(version_id)
    .bind(role)
    .bind(dataset_id)
    .bind(metrics.n as i32)
    .bind(metrics.accuracy)
    .bind(metrics.macro_f1)
    .bind(serde_json::to_value(metrics).unwrap_or_default())
    .bind(set)
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest golden accuracy measured for a version, if any.
pub async fn latest_accuracy(conn: &mut PgConnection, version_id: i64) -> Result<Option<f64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT accuracy FROM evaluations WHERE version_id = $1 AND eval_set = 'golden' ORDER BY id DESC LIMIT 1",
    )
    .bind(version_id)
    .fetch_optional(conn)
    .await
}

/// One evaluation of a run: whose, on which set, and its full metrics.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunEvaluation {
    pub role: Role,
    pub eval_set: EvalSet,
    pub metrics: sqlx::types::Json<Metrics>,
}

/// The evaluations a run's validate step stored (candidate first, golden
/// before recent); none before validate.
pub async fn of_run(conn: &mut PgConnection, run_id: uuid::Uuid) -> Result<Vec<RunEvaluation>, sqlx::Error> {
    sqlx::query_as("SELECT role, eval_set, metrics FROM evaluations WHERE run_id = $1 ORDER BY role, eval_set")
        .bind(run_id)
        .fetch_all(conn)
        .await
}
