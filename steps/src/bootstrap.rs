//! Bootstrap: store the default data set's split once, and train and promote
//! the first model through the same code the pipeline uses. Running it again
//! changes nothing; concurrent callers serialize on an advisory lock.

use crate::config::PipelineConfig;
use crate::error::StepsError;
use crate::fit::fit_and_store;
use crate::ml::{Split, evaluate, winequality};
use crate::store::datasets::{self, DEFAULT_DATASET, Dataset};
use crate::store::evaluations::{self, Role};
use crate::store::models::ModelRecord;
use crate::store::promotions::{self, PromotionKind, PromotionRequest};
use crate::trainset;
use serde_json::json;
use sqlx::{PgConnection, PgPool};

/// What bootstrap found or did.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrapped {
    pub dataset: Dataset,
    /// Whether this call stored the split.
    pub stored_split: bool,
    /// The first model, if this call trained and promoted it.
    pub first_model: Option<ModelRecord>,
    /// The version serving after bootstrap.
    pub champion_version: i32,
}

/// Who bootstrap's promotion is attributed to.
pub const BOOTSTRAP_ACTOR: &str = "bootstrap";

/// Makes an empty database ready to serve; a no-op on a bootstrapped one.
///
/// # Errors
/// `Model` if the first model cannot be trained; `Database`.
pub async fn bootstrap(pool: &PgPool, config: &PipelineConfig) -> Result<Bootstrapped, StepsError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('retrain.bootstrap'))")
        .execute(&mut *tx)
        .await?;
    let (dataset, stored_split) = match datasets::current(&mut tx, DEFAULT_DATASET).await? {
        Some(dataset) => (dataset, false),
        None => (store_default_split(&mut tx).await?, true),
    };
    if let Some((_, version)) = promotions::champion(&mut tx).await? {
        tx.commit().await?;
        return Ok(Bootstrapped {
            dataset,
            stored_split,
            first_model: None,
            champion_version: version,
        });
    }
    // The first model sees the base split only (feedback watermark 0).
    let set = trainset::assemble(&mut tx, &dataset, 0).await?;
    let training_set_id = trainset::record(&mut tx, None, &set.lineage).await?;
    let model = fit_and_store(&mut tx, set, training_set_id, None, &config.tree).await?;
    let golden = datasets::examples(&mut tx, dataset.id, Split::Golden).await?;
    let loaded = crate::store::models::load(&mut tx, model.id).await?;
    let (metrics, _) = evaluate(&loaded.model, &golden)?;
    evaluations::record(&mut tx, None, model.id, Role::Champion, dataset.id, &metrics).await?;
    let reason = format!(
        "first model, trained on the base split (golden accuracy {:.4})",
        metrics.accuracy
    );
    promotions::promote_in(
        &mut tx,
        PromotionRequest {
            model_id: model.id,
            kind: PromotionKind::Bootstrap,
            actor: BOOTSTRAP_ACTOR,
            reason: &reason,
            by_run: None,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        version = model.version,
        accuracy = metrics.accuracy,
        "bootstrapped the first model"
    );
    Ok(Bootstrapped {
        dataset,
        stored_split,
        champion_version: model.version,
        first_model: Some(model),
    })
}

async fn store_default_split(conn: &mut PgConnection) -> Result<Dataset, StepsError> {
    let rows = winequality::split();
    let spec = json!({
        "source": "linfa-datasets winequality (red)",
        "method": "stratified by class; order within a class by sha256 of the seed and the features; duplicate rows kept together",
        "seed": winequality::SEED,
        "proportions": {"base": 0.6, "golden": 0.2, "pool": 0.2},
    });
    Ok(datasets::insert(conn, DEFAULT_DATASET, &winequality::FEATURE_NAMES, &spec, &rows).await?)
}
