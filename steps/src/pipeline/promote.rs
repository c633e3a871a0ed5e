//! promote: make the validated candidate champion through the one promotion
//! path; a run promotes at most once, however often this step runs.
//!
//! Two guards, checked in the promotion's own transaction so nothing can
//! slip in between the check and the write:
//! - the fence: this attempt still holds the step's lease and the run is not
//!   being cancelled (`hold_lease`, rows locked until commit). A lost lease
//!   is retried by the engine (the attempt's result is discarded); a cancel
//!   ends the run `cancelled` with the champion unchanged.
//! - the verdict still applies: the champion serving is the one the gate
//!   judged against. If a rollback or a newer run's promotion came in
//!   between (or an operator retried an old run), the run ends `rejected`
//!   with both champions named. Rejecting rather than re-validating keeps
//!   one verdict per run, the recorded one; a fresh run judges afresh.

use super::PipelineEnv;
use super::outputs::{self, PromoteOutput, PromoteRefused, TrainOutput};
use crate::error::StepsError;
use crate::store::promotions::{self, ByRun, PromotionKind, PromotionRequest};
use crate::store::validations;
use async_trait::async_trait;
use retrain_engine::{EarlyFinish, Step, StepContext, StepError, StepOutcome, hold_lease};

/// The promote step.
#[derive(Debug, Clone)]
pub struct Promote(pub PipelineEnv);

/// Who the pipeline's promotions are attributed to.
pub const PIPELINE_ACTOR: &str = "pipeline";

#[async_trait]
impl Step for Promote {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let trained: TrainOutput = outputs::read(&ctx, "train")?;
        let mut tx = self.0.pool.begin().await?;
        // Lock order: the promotion lock, then the step and run rows.
        promotions::serialize(&mut tx).await?;
        hold_lease(&mut tx, &ctx).await?;
        let verdict = validations::of_run(&mut tx, ctx.run_id)
            .await?
            .ok_or_else(|| StepError::fatal(format!("run {} has no recorded verdict", ctx.run_id)))?;
        if !verdict.passed || verdict.candidate_id != trained.version_id {
            return Err(StepError::fatal(format!(
                "the recorded verdict (passed = {}, candidate version id {}) does not allow promoting version id {}",
                verdict.passed, verdict.candidate_id, trained.version_id
            )));
        }
        let reason = format!(
            "run {} passed the validation gate (golden accuracy {:.4})",
            ctx.run_id, verdict.candidate_accuracy
        );
        let promoted = promotions::promote_in(
            &mut tx,
            PromotionRequest {
                version_id: trained.version_id,
                kind: PromotionKind::Pipeline,
                actor: PIPELINE_ACTOR,
                reason: &reason,
                by_run: Some(ByRun {
                    run_id: ctx.run_id,
                    step: &ctx.step,
                    attempt: ctx.attempt,
                    judged_against: verdict.champion_id,
                }),
            },
        )
        .await;
        let promotion = match promoted {
            Ok(promotion) => promotion,
            Err(stale @ StepsError::StaleGate { judged, serving }) => {
                // Nothing was written: the transaction rolls back on drop.
                return Ok(StepOutcome::Finish {
                    how: EarlyFinish::Rejected,
                    reason: stale.to_string(),
                    output: outputs::write(&PromoteRefused {
                        candidate: (trained.version_id, trained.version).into(),
                        judged_against: judged.map(Into::into),
                        serving: serving.map(Into::into),
                    }),
                });
            }
            Err(other) => return Err(other.into()),
        };
        tx.commit().await?;
        Ok(StepOutcome::Continue(outputs::write(&PromoteOutput {
            promotion_id: promotion.id,
            version: promotion.version,
            previous_version: promotion.previous_version,
        })))
    }
}
