//! Errors of the pipeline's operations (bootstrap, promotion, the model
//! registry), and how a step classes them for the engine.

use crate::ml::ModelError;
use retrain_engine::StepError;

/// What a pipeline operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StepsError {
    /// The database refused or could not be reached; usually transient.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Training, loading or running a model failed.
    #[error("model error: {0}")]
    Model(#[from] ModelError),
    /// No model has that version.
    #[error("model version {0} not found")]
    ModelNotFound(i32),
    /// The model asked for is already the champion.
    #[error("model version {0} is already the champion")]
    AlreadyChampion(i32),
    /// The stored data contradicts itself (a missing split, a bad artifact).
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
}

impl From<StepsError> for StepError {
    /// Database trouble is retried; everything else would fail the same way again.
    fn from(err: StepsError) -> Self {
        match err {
            StepsError::Database(e) => StepError::retryable(format!("database error: {e}")),
            other => StepError::fatal(other),
        }
    }
}
