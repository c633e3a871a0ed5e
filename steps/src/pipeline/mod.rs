//! The retrain pipeline as engine steps: collect -> merge -> train ->
//! validate -> promote. Each step is idempotent per run: re-running it after
//! a crash finds and returns what the first attempt stored.

mod collect;
mod merge;
pub mod outputs;
mod promote;
mod train;
mod validate;

use crate::config::PipelineConfig;
use crate::error::StepsError;
use crate::store::models::{self, ModelSpec};
use retrain_engine::{Pipeline, RetryPolicy, Step, StepContext, StepError};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;

pub use collect::Collect;
pub use merge::Merge;
pub use promote::Promote;
pub use train::Train;
pub use validate::Validate;

/// The pipeline's name in the engine.
pub const PIPELINE: &str = "retrain";

/// What every step needs: the database and the pipeline's settings.
#[derive(Debug, Clone)]
pub struct PipelineEnv {
    pub pool: PgPool,
    pub config: Arc<PipelineConfig>,
}

/// The model runs created before models had names act on.
pub const FIRST_MODEL: &str = "wine-quality";

/// The run parameters of a run of `model`.
pub fn run_params(model: &str) -> serde_json::Value {
    serde_json::json!({ "model": model })
}

/// The model a run acts on: named in its parameters ([`run_params`]); runs
/// created before models had names act on [`FIRST_MODEL`].
///
/// # Errors
/// Fatal if the model does not exist; retryable on database trouble.
pub async fn run_model(conn: &mut PgConnection, ctx: &StepContext) -> Result<ModelSpec, StepError> {
    let name = ctx.params.get("model").and_then(|m| m.as_str()).unwrap_or(FIRST_MODEL);
    models::by_name(conn, name).await.map_err(|e| match e {
        StepsError::Database(_) => e.into(),
        other => StepError::fatal(other),
    })
}

/// The step names, in order.
pub const STEPS: [&str; 5] = ["collect", "merge", "train", "validate", "promote"];

/// The retrain pipeline.
pub fn pipeline(env: PipelineEnv) -> Pipeline {
    pipeline_wrapping(env, |_, step| step)
}

/// The retrain pipeline with each step passed through `wrap` (by name), so
/// tests can inject faults around the real steps.
pub fn pipeline_wrapping(env: PipelineEnv, wrap: impl Fn(&str, Arc<dyn Step>) -> Arc<dyn Step>) -> Pipeline {
    let retry = RetryPolicy {
        max_attempts: 3,
        initial: Duration::from_secs(1),
        multiplier: 4.0,
        cap: Duration::from_secs(60),
    };
    let steps: [(&str, Arc<dyn Step>); 5] = [
        ("collect", Arc::new(Collect(env.clone()))),
        ("merge", Arc::new(Merge(env.clone()))),
        ("train", Arc::new(Train(env.clone()))),
        ("validate", Arc::new(Validate(env.clone()))),
        ("promote", Arc::new(Promote(env))),
    ];
    steps.into_iter().fold(Pipeline::new(PIPELINE), |p, (name, step)| {
        p.step(name, retry, wrap(name, step))
    })
}
