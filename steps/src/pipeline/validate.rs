//! validate: evaluate champion and candidate on the golden set, compare them
//! pairwise (McNemar), and apply the gate. A refused candidate ends the run
//! `rejected` with the failed checks as its reasons.

use super::{PipelineEnv, from_output};
use crate::ml::{Example, Metrics, Split, compare, evaluate, judge};
use crate::store::evaluations::{self, Role};
use crate::store::{datasets, models, promotions};
use async_trait::async_trait;
use retrain_engine::{EarlyFinish, Step, StepContext, StepError, StepOutcome};
use serde_json::json;

/// The validate step.
#[derive(Debug, Clone)]
pub struct Validate(pub PipelineEnv);

#[async_trait]
impl Step for Validate {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let candidate_id: i64 = from_output(&ctx, "train", "model_id")?;
        let dataset_id: i32 = from_output(&ctx, "merge", "dataset_id")?;
        let mut conn = self.0.pool.acquire().await?;
        let golden = datasets::examples(&mut conn, dataset_id, Split::Golden).await?;
        if golden.is_empty() {
            return Err(StepError::fatal(format!("data set {dataset_id} has no golden rows")));
        }
        let candidate = models::load(&mut conn, candidate_id).await?;
        let champion = match promotions::champion(&mut conn).await? {
            Some((id, _)) => Some(models::load(&mut conn, id).await?),
            None => None,
        };
        let (candidate_metrics, candidate_right) = score(&candidate.model, &golden)?;
        let champion_scored = match &champion {
            Some(loaded) => Some(score(&loaded.model, &golden)?),
            None => None,
        };
        let gate = &self.0.config.gate;
        let verdict = judge(gate, champion_scored.as_ref().map(|(m, _)| m), &candidate_metrics);
        let comparison = champion_scored
            .as_ref()
            .map(|(_, champion_right)| compare(champion_right, &candidate_right));

        let mut tx = self.0.pool.begin().await?;
        evaluations::record(
            &mut tx,
            Some(ctx.run_id),
            candidate_id,
            Role::Candidate,
            dataset_id,
            &candidate_metrics,
        )
        .await?;
        if let (Some(loaded), Some((metrics, _))) = (&champion, &champion_scored) {
            evaluations::record(
                &mut tx,
                Some(ctx.run_id),
                loaded.record.id,
                Role::Champion,
                dataset_id,
                metrics,
            )
            .await?;
        }
        sqlx::query(
            "INSERT INTO validations (run_id, candidate_id, champion_id, passed, checks, comparison, gate_config)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (run_id) DO NOTHING",
        )
        .bind(ctx.run_id)
        .bind(candidate_id)
        .bind(champion.as_ref().map(|c| c.record.id))
        .bind(verdict.passed)
        .bind(json!(verdict.checks))
        .bind(comparison.as_ref().map(|c| json!(c)))
        .bind(json!(gate))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        let output = json!({
            "passed": verdict.passed,
            "candidate": {"model_id": candidate_id, "version": candidate.record.version,
                          "accuracy": candidate_metrics.accuracy, "macro_f1": candidate_metrics.macro_f1},
            "champion": champion.as_ref().zip(champion_scored.as_ref()).map(|(c, (m, _))| json!({
                "model_id": c.record.id, "version": c.record.version,
                "accuracy": m.accuracy, "macro_f1": m.macro_f1})),
            "comparison": comparison,
            "checks": verdict.checks,
        });
        if verdict.passed {
            return Ok(StepOutcome::Continue(output));
        }
        Ok(StepOutcome::Finish {
            how: EarlyFinish::Rejected,
            reason: verdict.reasons().join("; "),
            output,
        })
    }
}

fn score(model: &crate::ml::Model, golden: &[Example]) -> Result<(Metrics, Vec<bool>), StepError> {
    evaluate(model, golden).map_err(|e| StepError::fatal(format!("evaluation failed: {e}")))
}
