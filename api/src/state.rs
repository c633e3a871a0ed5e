//! What every request handler shares: the database, the engine, the served
//! model, the metrics and the background writers.

use crate::feedback_writer::FeedbackWriter;
use crate::metrics::Metrics;
use crate::predlog::PredictionLog;
use crate::serving::Serving;
use retrain_engine::Engine;
use sqlx::PgPool;
use std::sync::Arc;

/// Shared state of the HTTP API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub engine: Engine,
    pub serving: Arc<Serving>,
    /// The model the seed-shaped routes (`/predict`, `/feedback`,
    /// `/model/info`) act on (`RETRAIN_DEFAULT_MODEL`).
    pub default_model: Arc<str>,
    /// The models this replica serves (`RETRAIN_MODELS`).
    pub serves: crate::serving::ModelFilter,
    pub metrics: Metrics,
    pub predictions: PredictionLog,
    pub feedback: FeedbackWriter,
    /// Client keys (the admin token among them), what they may do, their limits.
    pub access: Arc<crate::keys::Access>,
    /// Whether the console's pages need an admin key for reading too.
    pub ui_requires_token: bool,
    pub limits: Limits,
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most instances in a batch prediction.
    pub batch_max: usize,
    /// Largest request body, in bytes.
    pub body_limit: usize,
}
