//! promote: make the validated candidate champion through the one promotion
//! path; a run promotes at most once, however often this step runs.

use super::{PipelineEnv, from_output};
use crate::store::promotions::{self, ByRun, PromotionKind, PromotionRequest};
use async_trait::async_trait;
use retrain_engine::{Step, StepContext, StepError, StepOutcome};
use serde_json::json;

/// The promote step.
#[derive(Debug, Clone)]
pub struct Promote(pub PipelineEnv);

/// Who the pipeline's promotions are attributed to.
pub const PIPELINE_ACTOR: &str = "pipeline";

#[async_trait]
impl Step for Promote {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let model_id: i64 = from_output(&ctx, "train", "model_id")?;
        let candidate_accuracy: f64 = from_output(&ctx, "validate", "candidate")
            .map(|c: serde_json::Value| c["accuracy"].as_f64().unwrap_or_default())?;
        let reason = format!(
            "run {} passed the validation gate (golden accuracy {:.4})",
            ctx.run_id, candidate_accuracy
        );
        let promotion = promotions::promote(
            &self.0.pool,
            PromotionRequest {
                model_id,
                kind: PromotionKind::Pipeline,
                actor: PIPELINE_ACTOR,
                reason: &reason,
                by_run: Some(ByRun {
                    run_id: ctx.run_id,
                    step: &ctx.step,
                    attempt: ctx.attempt,
                }),
            },
        )
        .await?;
        Ok(StepOutcome::Continue(json!({
            "promotion_id": promotion.id,
            "version": promotion.version,
            "previous_version": promotion.previous_version,
        })))
    }
}
