//! Loading the champion for serving: fetch the artifact, check its sha256,
//! answer one golden example with it, and only then swap it in. A request
//! clones the pointer and finishes on the model it started with.

use super::freshness::Freshness;
use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use retrain_steps::StepsError;
use retrain_steps::ml::{Model, Split};
use retrain_steps::store::{datasets, models};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A model ready to answer, with what `/model/info` reports about it.
#[derive(Debug, Clone)]
pub struct ServedModel {
    pub model_id: i64,
    pub version: i32,
    pub kind: String,
    pub sha256: String,
    pub promoted_at: DateTime<Utc>,
    pub loaded_at: DateTime<Utc>,
    pub golden_accuracy: Option<f64>,
    pub training_rows: i64,
    /// Labels feedback may carry (the data set's classes).
    pub labels: Vec<i32>,
    pub model: Model,
}

/// The serving slot: empty until the first model is loaded.
#[derive(Debug, Default)]
pub struct Serving {
    current: ArcSwapOption<ServedModel>,
    /// Woken at each swap, for those waiting for the first model.
    swapped: Notify,
    /// Whether the model served is the champion.
    pub freshness: Freshness,
}

impl Serving {
    /// An empty slot whose replica reports not ready once it has failed to
    /// load the champion for `stale_after`.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            freshness: Freshness::new(stale_after),
            ..Self::default()
        }
    }

    /// The model serving now; cheap (an atomic load and a reference count).
    pub fn current(&self) -> Option<Arc<ServedModel>> {
        self.current.load_full()
    }

    /// Serves `model` from now on; in-flight requests finish on the old one.
    pub fn swap(&self, model: ServedModel) {
        self.current.store(Some(Arc::new(model)));
        self.swapped.notify_waiters();
    }

    /// Returns once a model is served.
    pub async fn loaded(&self) {
        loop {
            // Registered before the check, so a swap in between still wakes us.
            let swapped = self.swapped.notified();
            if self.current.load().is_some() {
                return;
            }
            swapped.await;
        }
    }

    pub fn version(&self) -> Option<i32> {
        self.current.load().as_ref().map(|m| m.version)
    }
}

#[derive(sqlx::FromRow)]
struct ChampionRow {
    model_id: i64,
    promoted_at: DateTime<Utc>,
    training_rows: i32,
    dataset_id: i32,
}

/// Loads the current champion unless it is `serving_id` already; `None` if
/// there is no champion or it is the one served.
///
/// # Errors
/// `Inconsistent` if the artifact fails its hash or its golden check;
/// `Model`; `Database`.
pub async fn load_champion(pool: &PgPool, serving_id: Option<i64>) -> Result<Option<ServedModel>, StepsError> {
    let mut conn = pool.acquire().await?;
    let champion: Option<ChampionRow> = sqlx::query_as(
        "SELECT c.model_id, p.promoted_at, ts.total_rows AS training_rows, ts.dataset_id
         FROM champion c
         JOIN promotions p ON p.id = c.promotion_id
         JOIN models m ON m.id = c.model_id
         JOIN training_sets ts ON ts.id = m.training_set_id",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(champion) = champion else {
        return Ok(None);
    };
    if Some(champion.model_id) == serving_id {
        return Ok(None);
    }
    let loaded = models::load(&mut conn, champion.model_id).await?;
    let dataset = datasets::by_id(&mut conn, champion.dataset_id).await?;
    let golden = datasets::examples(&mut conn, dataset.id, Split::Golden).await?;
    let probe = golden
        .first()
        .ok_or_else(|| StepsError::Inconsistent("no golden example to check the model with".into()))?;
    loaded.model.predict(&probe.features)?;
    let golden_accuracy = retrain_steps::store::evaluations::latest_accuracy(&mut conn, champion.model_id).await?;
    Ok(Some(ServedModel {
        model_id: loaded.record.id,
        version: loaded.record.version,
        kind: loaded.record.kind,
        sha256: loaded.record.sha256,
        promoted_at: champion.promoted_at,
        loaded_at: Utc::now(),
        golden_accuracy,
        training_rows: i64::from(champion.training_rows),
        labels: dataset.labels,
        model: loaded.model,
    }))
}
