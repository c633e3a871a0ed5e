//! train: fit the candidate on exactly the training set merge recorded,
//! rebuilt row for row and checked against its recorded hash, and store it.
//! A run stores at most one model: a repeat attempt returns the stored one.
//! The fit stops when the step's cancellation signal fires.

use super::PipelineEnv;
use super::outputs::{self, MergeOutput, TrainOutput};
use crate::fit::fit_and_store_until;
use crate::store::models;
use crate::trainset;
use async_trait::async_trait;
use retrain_engine::{Step, StepContext, StepError, StepOutcome};

/// The train step.
#[derive(Debug, Clone)]
pub struct Train(pub PipelineEnv);

#[async_trait]
impl Step for Train {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let merged: MergeOutput = outputs::read(&ctx, "merge")?;
        let mut conn = self.0.pool.acquire().await?;
        let record = match models::of_run(&mut conn, ctx.run_id).await? {
            Some(stored) => stored,
            None => {
                let set = trainset::rebuild_recorded(&mut conn, merged.training_set_id).await?;
                fit_and_store_until(
                    &mut conn,
                    set,
                    merged.training_set_id,
                    Some(ctx.run_id),
                    &self.0.config.tree,
                    ctx.cancel.clone(),
                )
                .await?
            }
        };
        Ok(StepOutcome::Continue(outputs::write(&TrainOutput {
            model_id: record.id,
            version: record.version,
            sha256: record.sha256,
            training_ms: record.training_ms,
            training_metrics: record.training_metrics,
        })))
    }
}
