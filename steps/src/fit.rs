//! Fitting a model on a training set and storing it in the registry: the one
//! path for bootstrap's first model and every run's candidate.

use crate::error::StepsError;
use crate::ml::{Model, TreeParams, evaluate};
use crate::store::models::{self, ModelRecord, NewModel};
use crate::trainset::TrainingSet;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Fits a tree on the set (off the async threads) and stores it with its
/// training figures under the next version.
///
/// # Errors
/// `Model` if training fails; `Database`.
pub async fn fit_and_store(
    conn: &mut PgConnection,
    set: TrainingSet,
    training_set_id: i64,
    run_id: Option<Uuid>,
    params: &TreeParams,
) -> Result<ModelRecord, StepsError> {
    fit_and_store_until(conn, set, training_set_id, run_id, params, CancellationToken::new()).await
}

/// [`fit_and_store`] that gives up as soon as `cancel` fires: the fit on
/// the blocking thread checks it between its units of work, and nothing is
/// stored.
///
/// # Errors
/// `Model(Stopped)` if cancelled; as [`fit_and_store`] otherwise.
pub async fn fit_and_store_until(
    conn: &mut PgConnection,
    set: TrainingSet,
    training_set_id: i64,
    run_id: Option<Uuid>,
    params: &TreeParams,
    cancel: CancellationToken,
) -> Result<ModelRecord, StepsError> {
    let params_for_fit = params.clone();
    let rows = set.examples.len();
    let (model, training_ms, train_metrics) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let model = Model::train_until(&set.examples, &params_for_fit, &|| cancel.is_cancelled())?;
        let training_ms = started.elapsed().as_millis() as i32;
        let (metrics, _) = evaluate(&model, &set.examples)?;
        Ok::<_, StepsError>((model, training_ms, metrics))
    })
    .await
    .map_err(|e| StepsError::Inconsistent(format!("training task failed: {e}")))??;
    // The version is numbered under a table lock, which needs a transaction:
    // opened only now, so no session sits idle in a transaction (holding
    // the lock) while the fit runs. Inside a caller's transaction this is a
    // savepoint.
    let mut tx = conn.begin().await?;
    let record = models::insert(
        &mut tx,
        NewModel {
            model: &model,
            hyperparams: serde_json::to_value(params).unwrap_or_default(),
            training_set_id,
            run_id,
            training_ms,
            training_metrics: json!({
                "rows": rows,
                "train_accuracy": train_metrics.accuracy,
                "train_macro_f1": train_metrics.macro_f1,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(record)
}
