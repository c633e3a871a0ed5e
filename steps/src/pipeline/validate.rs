//! validate: evaluate champion and candidate on the golden set, compare them
//! pairwise (McNemar), and apply the gate. A refused candidate ends the run
//! `rejected` with the failed checks as its reasons.
//!
//! The first verdict recorded for a run is the run's verdict: a retry (after
//! a crash, or an operator's retry of the run) returns what was recorded,
//! never a verdict judged again against today's champion and gate.

use super::outputs::{self, MergeOutput, Scored, TrainOutput, ValidateOutput};
use super::{PipelineEnv, run_model};
use crate::ml::{Check, Classifier, Example, Metrics, Split, Verdict, compare, evaluate, judge};
use crate::store::evaluations::{self, Role};
use crate::store::validations::{self, NewValidation, Validation};
use crate::store::{datasets, promotions, versions};
use async_trait::async_trait;
use retrain_engine::{EarlyFinish, Step, StepContext, StepError, StepOutcome};
use serde_json::json;
use sqlx::PgConnection;

/// The validate step.
#[derive(Debug, Clone)]
pub struct Validate(pub PipelineEnv);

#[async_trait]
impl Step for Validate {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let mut conn = self.0.pool.acquire().await?;
        if let Some(recorded) = validations::of_run(&mut conn, ctx.run_id).await? {
            return verdict_of(recorded);
        }
        let trained: TrainOutput = outputs::read(&ctx, "train")?;
        let merged: MergeOutput = outputs::read(&ctx, "merge")?;
        self.judge_and_record(&mut conn, &ctx, trained.version_id, merged.dataset_id)
            .await?;
        let recorded = validations::of_run(&mut conn, ctx.run_id)
            .await?
            .ok_or_else(|| StepError::fatal(format!("run {} recorded no verdict", ctx.run_id)))?;
        verdict_of(recorded)
    }
}

impl Validate {
    /// Scores both models, judges, and stores the evaluations and the
    /// verdict in one transaction (a concurrent first decision wins).
    async fn judge_and_record(
        &self,
        conn: &mut PgConnection,
        ctx: &StepContext,
        candidate_id: i64,
        dataset_id: i32,
    ) -> Result<(), StepError> {
        let golden = datasets::examples(conn, dataset_id, Split::Golden).await?;
        if golden.is_empty() {
            return Err(StepError::fatal(format!("data set {dataset_id} has no golden rows")));
        }
        let model = run_model(conn, ctx).await?;
        let candidate = versions::load(conn, candidate_id).await?;
        let champion = match promotions::champion(conn, model.id).await? {
            Some((id, _)) => Some(versions::load(conn, id).await?),
            None => None,
        };
        let (candidate_metrics, candidate_right) = score(&candidate.classifier, &golden)?;
        let champion_scored = match &champion {
            Some(loaded) => Some(score(&loaded.classifier, &golden)?),
            None => None,
        };
        let gate = &model.gate_or(&self.0.config.gate)?;
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
        validations::record(
            &mut tx,
            &NewValidation {
                run_id: ctx.run_id,
                candidate_id,
                champion_id: champion.as_ref().map(|c| c.record.id),
                passed: verdict.passed,
                checks: json!(verdict.checks),
                comparison: comparison.as_ref().map(|c| json!(c)),
                gate_config: json!(gate),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The step's result from the recorded verdict.
fn verdict_of(recorded: Validation) -> Result<StepOutcome, StepError> {
    let checks: Vec<Check> = serde_json::from_value(recorded.checks)
        .map_err(|e| StepError::fatal(format!("recorded checks do not read back: {e}")))?;
    let champion = match (
        recorded.champion_id,
        recorded.champion_version,
        recorded.champion_accuracy,
        recorded.champion_macro_f1,
    ) {
        (Some(version_id), Some(version), Some(accuracy), Some(macro_f1)) => Some(Scored {
            version_id,
            version,
            accuracy,
            macro_f1,
        }),
        (None, ..) => None,
        (Some(id), ..) => {
            return Err(StepError::fatal(format!(
                "the recorded verdict names champion version {id} without its evaluation"
            )));
        }
    };
    let reasons = Verdict {
        passed: recorded.passed,
        checks: checks.clone(),
    }
    .reasons();
    let output = ValidateOutput {
        passed: recorded.passed,
        candidate: Scored {
            version_id: recorded.candidate_id,
            version: recorded.candidate_version,
            accuracy: recorded.candidate_accuracy,
            macro_f1: recorded.candidate_macro_f1,
        },
        champion,
        comparison: recorded.comparison,
        checks,
    };
    if output.passed {
        return Ok(StepOutcome::Continue(outputs::write(&output)));
    }
    Ok(StepOutcome::Finish {
        how: EarlyFinish::Rejected,
        reason: reasons.join("; "),
        output: outputs::write(&output),
    })
}

fn score(model: &Classifier, golden: &[Example]) -> Result<(Metrics, Vec<bool>), StepError> {
    evaluate(model, golden).map_err(|e| StepError::fatal(format!("evaluation failed: {e}")))
}
