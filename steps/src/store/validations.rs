//! The gate's recorded decisions, one per run. The first decision stored is
//! the run's verdict: a retried validate returns it instead of judging
//! again, and promote checks it before acting.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// A decision to store.
#[derive(Debug, Clone)]
pub struct NewValidation {
    pub run_id: Uuid,
    pub candidate_id: i64,
    pub champion_id: Option<i64>,
    pub passed: bool,
    pub checks: Value,
    pub comparison: Option<Value>,
    pub gate_config: Value,
    /// The decision in words, every check's.
    pub decision: String,
    /// Lower confidence bounds on accuracy(candidate) - accuracy(champion)
    /// (`None`: not tested).
    pub golden_lower_bound: Option<f64>,
    pub recent_lower_bound: Option<f64>,
    /// Rows in the recent set.
    pub recent_rows: i32,
    pub margin: f64,
    pub alpha: f64,
}

/// Stores the decision unless the run has one (the first is kept).
pub async fn record(conn: &mut PgConnection, new: &NewValidation) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO validations (run_id, candidate_id, champion_id, passed, checks, comparison, gate_config,
                                  decision, golden_lower_bound, recent_lower_bound, recent_rows, margin, alpha,
                                  model_id)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, model_id FROM versions WHERE id = $2
         ON CONFLICT (run_id) DO NOTHING",
    )
    .bind(new.run_id)
    .bind(new.candidate_id)
    .bind(new.champion_id)
    .bind(new.passed)
    .bind(&new.checks)
    .bind(&new.comparison)
    .bind(&new.gate_config)
    .bind(&new.decision)
    .bind(new.golden_lower_bound)
    .bind(new.recent_lower_bound)
    .bind(new.recent_rows)
    .bind(new.margin)
    .bind(new.alpha)
    .execute(conn)
    .await?;
    Ok(())
}

/// A run's recorded decision with both models' recorded golden figures and
/// their recent-set accuracy.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Validation {
    pub passed: bool,
    pub checks: Value,
    pub comparison: Option<Value>,
    /// `None` in verdicts recorded before the statistical gate.
    pub decision: Option<String>,
    pub candidate_id: i64,
    pub candidate_version: i32,
    pub candidate_accuracy: f64,
    pub candidate_macro_f1: f64,
    /// The champion the candidate was judged against (`None`: there was none).
    pub champion_id: Option<i64>,
    pub champion_version: Option<i32>,
    pub champion_accuracy: Option<f64>,
    pub champion_macro_f1: Option<f64>,
    /// Rows in the recent set and each model's accuracy there (`None`: the
    /// set was empty, or the verdict predates it).
    pub recent_rows: Option<i32>,
    pub candidate_recent_accuracy: Option<f64>,
    pub champion_recent_accuracy: Option<f64>,
}

/// The run's recorded decision, if validate recorded one.
pub async fn of_run(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<Validation>, sqlx::Error> {
    sqlx::query_as(
        "SELECT v.passed, v.checks, v.comparison, v.decision,
                v.candidate_id, cm.version AS candidate_version,
                ce.accuracy AS candidate_accuracy, ce.macro_f1 AS candidate_macro_f1,
                v.champion_id, hm.version AS champion_version,
                he.accuracy AS champion_accuracy, he.macro_f1 AS champion_macro_f1,
                v.recent_rows, cr.accuracy AS candidate_recent_accuracy, hr.accuracy AS champion_recent_accuracy
         FROM validations v
         JOIN versions cm ON cm.id = v.candidate_id
         JOIN evaluations ce ON ce.run_id = v.run_id AND ce.role = 'candidate' AND ce.eval_set = 'golden'
         LEFT JOIN versions hm ON hm.id = v.champion_id
         LEFT JOIN evaluations he ON he.run_id = v.run_id AND he.role = 'champion' AND he.eval_set = 'golden'
         LEFT JOIN evaluations cr ON cr.run_id = v.run_id AND cr.role = 'candidate' AND cr.eval_set = 'recent'
         LEFT JOIN evaluations hr ON hr.run_id = v.run_id AND hr.role = 'champion' AND hr.eval_set = 'recent'
         WHERE v.run_id = $1",
    )
    .bind(run_id)
    .fetch_optional(conn)
    .await
}
