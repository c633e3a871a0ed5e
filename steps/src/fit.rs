//! Fitting a model's learner on a training set and storing the result as
//! the model's next version: the one path for every model's first version
//! and every run's candidate. `auto`'s candidates are cross-validated
//! on the training set first (an explicit learner is fitted as asked); the
//! winner's settings are the version's
//! hyperparams and the whole choice its selection record.

use crate::error::StepsError;
use crate::ml::selection::select_and_fit;
use crate::ml::{Learner, evaluate_rows};
use crate::store::versions::{self, NewVersion, VersionRecord};
use crate::trainset::TrainingSet;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What to fit and where it belongs.
#[derive(Debug, Clone)]
pub struct FitRequest<'a> {
    pub model_id: i32,
    pub learner: &'a Learner,
    /// The champion's learner, which selection keeps unless clearly beaten.
    pub incumbent: Option<Learner>,
    pub training_set_id: i64,
    pub run_id: Option<Uuid>,
}

/// Fits the learner on the set (off the async threads) and stores the
/// result with its training figures under the model's next version. Gives
/// up as soon as `cancel` fires: the fit on the blocking thread checks it
/// between its units of work, and nothing is stored.
///
/// # Errors
/// `Model(Stopped)` if cancelled; `Model` if training fails; `Database`.
pub async fn fit_and_store(
    conn: &mut PgConnection,
    set: TrainingSet,
    request: FitRequest<'_>,
    cancel: CancellationToken,
) -> Result<VersionRecord, StepsError> {
    let (learner, incumbent) = (request.learner.clone(), request.incumbent.clone());
    let rows = set.table.len();
    let (classifier, selection, training_ms, train_metrics) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let (classifier, selection) =
            select_and_fit(&learner, set.table.all(), incumbent.as_ref(), &|| cancel.is_cancelled())?;
        let training_ms = started.elapsed().as_millis() as i32;
        let metrics = evaluate_rows(&classifier, set.table.all())?;
        Ok::<_, StepsError>((classifier, selection, training_ms, metrics))
    })
    .await
    .map_err(|e| StepsError::Inconsistent(format!("training task failed: {e}")))??;
    // The version is numbered under the model's row lock, which needs a
    // transaction: opened only now, so no session sits idle in a
    // transaction (holding the lock) while the fit runs. Inside a caller's
    // transaction this is a savepoint.
    let mut tx = conn.begin().await?;
    let record = versions::insert(
        &mut tx,
        NewVersion {
            model_id: request.model_id,
            classifier: &classifier,
            hyperparams: selection.chosen.settings(),
            training_set_id: request.training_set_id,
            run_id: request.run_id,
            training_ms,
            training_metrics: json!({
                "rows": rows,
                "train_accuracy": train_metrics.accuracy,
                "train_macro_f1": train_metrics.macro_f1,
            }),
            selection: Some(serde_json::to_value(&selection).expect("a selection always serializes")),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(record)
}
