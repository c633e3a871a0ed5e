//! The engine's error type: what an operation or a worker can fail with, and
//! what a step can fail with (its retry class is part of the type).

use crate::status::RunStatus;
use uuid::Uuid;

/// Errors of engine operations and of the worker.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database refused or could not be reached; usually transient.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// No pipeline of that name is registered with this engine.
    #[error("unknown pipeline {0:?}")]
    UnknownPipeline(String),
    /// No run has that id.
    #[error("run {0} not found")]
    RunNotFound(Uuid),
    /// The run is not in a state that allows the operation.
    #[error("run {id} is {status}: cannot {action}")]
    InvalidState {
        id: Uuid,
        status: RunStatus,
        action: &'static str,
    },
    /// Another run of the pipeline is active, so this one cannot be re-queued.
    #[error("run {active} of pipeline {pipeline:?} is already active")]
    ActiveRunExists { pipeline: String, active: Uuid },
    /// The worker no longer holds the step's lease (it expired and another
    /// worker reclaimed the step, or the step moved on): its result is discarded.
    #[error("lease lost on run {run_id} step {step:?} attempt {attempt}")]
    LeaseLost { run_id: Uuid, step: String, attempt: i32 },
}

/// Whether a database error means the database is away (no connection, a
/// broken one, the server shutting down or starting up: SQLSTATE class 08
/// and 57P01..57P03) rather than refusing the statement. Such an error says
/// nothing about the work, so retrying the same thing later is right.
pub fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// How a step failed, which decides what the engine does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Worth trying again after a backoff (a timeout, a lost connection).
    #[error("{0}")]
    Retryable(String),
    /// Trying again cannot help (bad input, a broken invariant): the run fails.
    #[error("{0}")]
    Fatal(String),
    /// The step stopped because its cancellation signal fired.
    #[error("cancelled")]
    Cancelled,
}

impl StepError {
    pub fn retryable(err: impl std::fmt::Display) -> Self {
        Self::Retryable(err.to_string())
    }

    pub fn fatal(err: impl std::fmt::Display) -> Self {
        Self::Fatal(err.to_string())
    }
}

impl From<sqlx::Error> for StepError {
    /// Database errors inside a step are retried: most are connection trouble.
    /// A step that knows better maps the error itself.
    fn from(err: sqlx::Error) -> Self {
        Self::Retryable(format!("database error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::database_unavailable;

    #[test]
    fn connection_trouble_is_the_database_being_away_and_refusals_are_not() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(database_unavailable(&sqlx::Error::Io(refused)));
        assert!(database_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(database_unavailable(&sqlx::Error::Protocol("unexpected EOF".into())));
        assert!(!database_unavailable(&sqlx::Error::RowNotFound));
        assert!(!database_unavailable(&sqlx::Error::PoolClosed));
    }
}
