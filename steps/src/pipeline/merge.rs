//! merge: build the training set (base data + feedback up to the watermark,
//! latest label wins) and record its lineage.

use super::{PipelineEnv, from_output};
use crate::store::datasets::{self, DEFAULT_DATASET};
use crate::trainset;
use async_trait::async_trait;
use retrain_engine::{Step, StepContext, StepError, StepOutcome};
use serde_json::json;

/// The merge step.
#[derive(Debug, Clone)]
pub struct Merge(pub PipelineEnv);

#[async_trait]
impl Step for Merge {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let watermark: i64 = from_output(&ctx, "collect", "watermark")?;
        let mut conn = self.0.pool.acquire().await?;
        let dataset = datasets::current(&mut conn, DEFAULT_DATASET)
            .await?
            .ok_or_else(|| StepError::fatal("no base data set: run bootstrap first"))?;
        let set = trainset::assemble(&mut conn, &dataset, watermark).await?;
        let id = trainset::record(&mut conn, Some(ctx.run_id), &set.lineage).await?;
        Ok(StepOutcome::Continue(json!({
            "training_set_id": id,
            "dataset_id": dataset.id,
            "dataset": format!("{}@{}", dataset.name, dataset.version),
            "lineage": set.lineage,
        })))
    }
}
