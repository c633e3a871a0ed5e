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
    /// No model has that name.
    #[error("no model is named {0:?}")]
    UnknownModel(String),
    /// A model with that name exists already.
    #[error("a model named {0:?} exists already")]
    ModelExists(String),
    /// The model has no such version.
    #[error("model version {0} not found")]
    VersionNotFound(i32),
    /// The model asked for is already the champion.
    #[error("model version {0} is already the champion")]
    AlreadyChampion(i32),
    /// The stored data contradicts itself (a missing split, a bad artifact).
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
    /// A run's promotion was refused: the champion the validation gate
    /// judged the candidate against no longer serves (a rollback, or a newer
    /// run's promotion, came in between), so the verdict does not apply.
    #[error(
        "the gate judged the candidate against {} but {} serves now; nothing was promoted",
        champion_words(.judged),
        champion_words(.serving)
    )]
    StaleGate {
        /// The champion at validation: (model id, version); `None` if none.
        judged: Option<(i64, i32)>,
        /// The champion now.
        serving: Option<(i64, i32)>,
    },
}

/// A champion in words, for reasons people read.
fn champion_words(champion: &Option<(i64, i32)>) -> String {
    match champion {
        Some((_, version)) => format!("champion version {version}"),
        None => "no champion".to_owned(),
    }
}

impl From<StepsError> for StepError {
    /// Database trouble is retried; a stopped fit is the step honouring its
    /// cancellation; everything else would fail the same way again.
    fn from(err: StepsError) -> Self {
        match err {
            StepsError::Database(e) => StepError::retryable(format!("database error: {e}")),
            StepsError::Model(ModelError::Stopped) => StepError::Cancelled,
            other => StepError::fatal(other),
        }
    }
}
