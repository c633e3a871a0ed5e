//! train: fit the candidate on exactly the training set merge recorded,
//! rebuilt row for row and checked against its recorded hash, and store it.
//! A run stores at most one model: a repeat attempt returns the stored one.
//! It also hands validate the ids of the set's newest recent rows, which
//! its rebuild chose anyway.
//! The fit stops when the step's cancellation signal fires.

use super::outputs::{self, MergeOutput, RecentRows, TrainOutput};
use super::{PipelineEnv, run_model};
use crate::fit::{FitRequest, fit_and_store};
use crate::incumbent;
use crate::recent;
use crate::store::versions;
use crate::trainset::{self, Keep};
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
        let (record, recent) = match versions::of_run(&mut conn, ctx.run_id).await? {
            Some(stored) => (stored, None),
            None => {
                let model = run_model(&mut conn, &ctx).await?;
                let max_rows = model.gate_or(&self.0.config.gate)?.recent_max_rows;
                let mut set = trainset::rebuild_recorded(&mut conn, merged.training_set_id, Keep::Training).await?;
                // Chosen here, so validate need not read the feedback again.
                let recent = RecentRows {
                    max_rows,
                    ids: recent::capped(std::mem::take(&mut set.recent_ids), max_rows),
                };
                let request = FitRequest {
                    model_id: model.id,
                    learner: &model.learner,
                    incumbent: incumbent::champion_learner(&mut conn, &model).await?,
                    training_set_id: merged.training_set_id,
                    run_id: Some(ctx.run_id),
                };
                (
                    fit_and_store(&mut conn, set, request, ctx.cancel.clone()).await?,
                    Some(recent),
                )
            }
        };
        Ok(StepOutcome::Continue(outputs::write(&TrainOutput {
            version_id: record.id,
            version: record.version,
            sha256: record.sha256,
            training_ms: record.training_ms,
            training_metrics: record.training_metrics,
            recent,
        })))
    }
}
