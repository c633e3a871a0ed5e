//! Loading a model's champion for serving: fetch the artifact, check its
//! sha256, answer one golden example with it, and only then swap it in. A
//! replica serves every model (or those named in `RETRAIN_MODELS`), each in
//! its own slot of one map swapped whole; a request clones its model's
//! pointer and finishes on the version it started with.

use super::freshness::Freshness;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use retrain_steps::StepsError;
use retrain_steps::ml::{Classifier, InputKind, Split};
use retrain_steps::store::models::ModelSpec;
use retrain_steps::store::{datasets, evaluations, versions};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A model's champion ready to answer, with what `/model/info` reports.
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// The model's name.
    pub model: String,
    pub model_id: i32,
    pub input_kind: InputKind,
    /// Tabular models: the feature columns, in order.
    pub feature_names: Vec<String>,
    /// Class names feedback may carry (the model's classes).
    pub labels: Vec<String>,
    pub version_id: i64,
    pub version: i32,
    pub kind: String,
    pub sha256: String,
    pub promoted_at: DateTime<Utc>,
    pub loaded_at: DateTime<Utc>,
    pub golden_accuracy: Option<f64>,
    pub training_rows: i64,
    pub classifier: Classifier,
}

/// What this replica serves: each model's champion, by model name.
#[derive(Debug, Default)]
pub struct Serving {
    models: ArcSwap<BTreeMap<String, Arc<ServedModel>>>,
    /// Woken at each swap, for those waiting for a model.
    swapped: Notify,
    /// Whether every model served is its champion.
    pub freshness: Freshness,
}

impl Serving {
    /// An empty replica that reports not ready once it has failed to load a
    /// champion for `stale_after`.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            freshness: Freshness::new(stale_after),
            ..Self::default()
        }
    }

    /// The version of `model` serving now; cheap (an atomic load, a map
    /// look-up and a reference count).
    pub fn current(&self, model: &str) -> Option<Arc<ServedModel>> {
        self.models.load().get(model).cloned()
    }

    /// Every model served, by name.
    pub fn all(&self) -> Arc<BTreeMap<String, Arc<ServedModel>>> {
        self.models.load_full()
    }

    /// Serves `served` for its model from now on; in-flight requests finish
    /// on the version they started with.
    pub fn swap(&self, served: ServedModel) {
        let served = Arc::new(served);
        self.models.rcu(|models| {
            let mut models = BTreeMap::clone(models);
            models.insert(served.model.clone(), Arc::clone(&served));
            models
        });
        self.swapped.notify_waiters();
    }

    /// Returns once `model` is served.
    pub async fn loaded(&self, model: &str) {
        loop {
            // Registered before the check, so a swap in between still wakes us.
            let swapped = self.swapped.notified();
            if self.models.load().contains_key(model) {
                return;
            }
            swapped.await;
        }
    }

    /// The version of `model` served, if any.
    pub fn version(&self, model: &str) -> Option<i32> {
        self.models.load().get(model).map(|m| m.version)
    }
}

#[derive(sqlx::FromRow)]
struct ChampionRow {
    version_id: i64,
    promoted_at: DateTime<Utc>,
    training_rows: i32,
    dataset_id: i32,
}

/// Loads the model's champion unless it is `serving_id` already; `None` if
/// the model has no champion or it is the one served.
///
/// # Errors
/// `Inconsistent` if the artifact fails its hash or its golden check;
/// `Model`; `Database`.
pub async fn load_champion(
    pool: &PgPool,
    model: &ModelSpec,
    serving_id: Option<i64>,
) -> Result<Option<ServedModel>, StepsError> {
    let mut conn = pool.acquire().await?;
    let champion: Option<ChampionRow> = sqlx::query_as(
        "SELECT c.version_id, p.promoted_at, ts.total_rows AS training_rows, ts.dataset_id
         FROM champion c
         JOIN promotions p ON p.id = c.promotion_id
         JOIN versions m ON m.id = c.version_id
         JOIN training_sets ts ON ts.id = m.training_set_id
         WHERE c.model_id = $1",
    )
    .bind(model.id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(champion) = champion else {
        return Ok(None);
    };
    if Some(champion.version_id) == serving_id {
        return Ok(None);
    }
    let loaded = versions::load(&mut conn, champion.version_id).await?;
    let golden = datasets::examples(&mut conn, champion.dataset_id, Split::Golden).await?;
    let probe = golden
        .first()
        .ok_or_else(|| StepsError::Inconsistent("no golden example to check the model with".into()))?;
    loaded.classifier.predict(&probe.input)?;
    let golden_accuracy = evaluations::latest_accuracy(&mut conn, champion.version_id).await?;
    Ok(Some(ServedModel {
        model: model.name.clone(),
        model_id: model.id,
        input_kind: model.kind,
        feature_names: model.feature_names.clone(),
        labels: model.classes.clone(),
        version_id: loaded.record.id,
        version: loaded.record.version,
        kind: loaded.record.kind,
        sha256: loaded.record.sha256,
        promoted_at: champion.promoted_at,
        loaded_at: Utc::now(),
        golden_accuracy,
        training_rows: i64::from(champion.training_rows),
        classifier: loaded.classifier,
    }))
}
