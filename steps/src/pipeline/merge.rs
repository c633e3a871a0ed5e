//! merge: build the training set (base data + feedback up to the watermark,
//! latest label wins, quarantined rows left out) and record it: its lineage,
//! the quarantine rules it was screened by and its content hash, enough for
//! train to rebuild exactly this set.

use super::outputs::{self, CollectOutput, MergeOutput};
use super::{PipelineEnv, run_model};
use crate::store::datasets;
use crate::trainset;
use async_trait::async_trait;
use retrain_engine::{Step, StepContext, StepError, StepOutcome};

/// The merge step.
#[derive(Debug, Clone)]
pub struct Merge(pub PipelineEnv);

#[async_trait]
impl Step for Merge {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let collected: CollectOutput = outputs::read(&ctx, "collect")?;
        let mut conn = self.0.pool.acquire().await?;
        // A repeat attempt reports the set recorded first and assembles
        // nothing (a quarantine in between would make a new one differ).
        let id = match trainset::of_run(&mut conn, ctx.run_id).await? {
            Some(id) => id,
            None => {
                let model = run_model(&mut conn, &ctx).await?;
                let dataset = datasets::current(&mut conn, model.id)
                    .await?
                    .ok_or_else(|| StepError::fatal(format!("model {:?} has no data set: import one", model.name)))?;
                let recent_share = model.gate_or(&self.0.config.gate)?.recent_share;
                let set = trainset::assemble(&mut conn, &dataset, collected.watermark, recent_share).await?;
                trainset::record(&mut conn, Some(ctx.run_id), &set.lineage).await?
            }
        };
        let lineage = trainset::recorded_lineage(&mut conn, id).await?;
        let dataset_id: i32 = lineage["dataset_id"]
            .as_i64()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| StepError::fatal(format!("training set {id} has no usable dataset_id")))?;
        let recorded = datasets::by_id(&mut conn, dataset_id).await?;
        Ok(StepOutcome::Continue(outputs::write(&MergeOutput {
            training_set_id: id,
            dataset_id,
            dataset: format!("{}@{}", recorded.name, recorded.version),
            lineage,
        })))
    }
}
