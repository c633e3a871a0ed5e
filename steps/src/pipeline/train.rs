//! train: fit the candidate on the recorded training set and store it. A run
//! stores at most one model: a repeat attempt returns the stored one.

use super::{PipelineEnv, from_output};
use crate::fit::fit_and_store;
use crate::store::{datasets, models};
use crate::trainset;
use async_trait::async_trait;
use retrain_engine::{Step, StepContext, StepError, StepOutcome};
use serde_json::json;

/// The train step.
#[derive(Debug, Clone)]
pub struct Train(pub PipelineEnv);

#[async_trait]
impl Step for Train {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let training_set_id: i64 = from_output(&ctx, "merge", "training_set_id")?;
        let dataset_id: i32 = from_output(&ctx, "merge", "dataset_id")?;
        let watermark: i64 = from_output(&ctx, "collect", "watermark")?;
        let mut conn = self.0.pool.acquire().await?;
        let record = match models::of_run(&mut conn, ctx.run_id).await? {
            Some(stored) => stored,
            None => {
                let dataset = datasets::by_id(&mut conn, dataset_id).await?;
                let set = trainset::assemble(&mut conn, &dataset, watermark).await?;
                let mut tx = self.0.pool.begin().await?;
                let record =
                    fit_and_store(&mut tx, set, training_set_id, Some(ctx.run_id), &self.0.config.tree).await?;
                tx.commit().await?;
                record
            }
        };
        Ok(StepOutcome::Continue(json!({
            "model_id": record.id,
            "version": record.version,
            "sha256": record.sha256,
            "training_ms": record.training_ms,
            "training_metrics": record.training_metrics,
        })))
    }
}
