//! validate: evaluate champion and candidate on the golden set and on the
//! model's recent set (feedback held out of training), and apply the gate:
//! a paired non-inferiority test on each. A refused candidate ends the run
//! `rejected` with the failed checks as its reasons; the decision, in words,
//! is recorded with the verdict and as an event of the run.
//!
//! The first verdict recorded for a run is the run's verdict: a retry (after
//! a crash, or an operator's retry of the run) returns what was recorded,
//! never a verdict judged again against today's champion and gate.

use super::outputs::{self, MergeOutput, RecentScores, Scored, TrainOutput, ValidateOutput};
use super::{PipelineEnv, run_model};
use crate::ml::{Answers, Check, Classifier, Example, Metrics, Split, Verdict, compare, evaluate, judge};
use crate::store::evaluations::{self, EvalSet, Role};
use crate::store::validations::{self, NewValidation, Validation};
use crate::store::{datasets, promotions, versions};
use crate::trainset;
use async_trait::async_trait;
use retrain_engine::{Annotation, EarlyFinish, Step, StepContext, StepError, StepOutcome, annotate};
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
        self.judge_and_record(&mut conn, &ctx, &trained, &merged).await?;
        let recorded = validations::of_run(&mut conn, ctx.run_id)
            .await?
            .ok_or_else(|| StepError::fatal(format!("run {} recorded no verdict", ctx.run_id)))?;
        verdict_of(recorded)
    }
}

/// A model's figures on both sets, with each row's correctness.
struct Scores {
    golden: (Metrics, Vec<bool>),
    recent: Option<(Metrics, Vec<bool>)>,
}

impl Scores {
    /// Which recent rows the model got right (none without a recent set).
    fn right_on_recent(&self) -> &[bool] {
        self.recent.as_ref().map_or(&[][..], |(_, right)| right.as_slice())
    }
}

impl Validate {
    /// Scores both models on both sets, judges, and stores the evaluations,
    /// the verdict and its event in one transaction (a concurrent first
    /// decision wins).
    async fn judge_and_record(
        &self,
        conn: &mut PgConnection,
        ctx: &StepContext,
        trained: &TrainOutput,
        merged: &MergeOutput,
    ) -> Result<(), StepError> {
        let candidate_id = trained.version_id;
        let dataset_id = merged.dataset_id;
        let golden = datasets::examples(conn, dataset_id, Split::Golden).await?;
        if golden.is_empty() {
            return Err(StepError::fatal(format!("data set {dataset_id} has no golden rows")));
        }
        let model = run_model(conn, ctx).await?;
        let gate = &model.gate_or(&self.0.config.gate)?;
        // The feedback this run's training set held out, the newest rows
        // only: as train's rebuild chose them (with the set it hash-checked),
        // or chosen again from the set's lineage (a train output of an
        // earlier release or attempt, or a gate changed since).
        let recent = match trained.recent.as_ref().filter(|r| r.max_rows == gate.recent_max_rows) {
            Some(rows) => trainset::recent_of(conn, merged.training_set_id, &rows.ids).await?,
            None => trainset::recorded_recent(conn, merged.training_set_id, gate.recent_max_rows).await?,
        };

        let candidate = versions::load(conn, candidate_id).await?;
        let champion = match promotions::champion(conn, model.id).await? {
            Some((id, _)) => Some(versions::load(conn, id).await?),
            None => None,
        };
        let candidate_scores = scores(&candidate.classifier, &golden, &recent)?;
        let champion_scores = match &champion {
            Some(loaded) => Some(scores(&loaded.classifier, &golden, &recent)?),
            None => None,
        };
        let labels = |set: &[Example]| set.iter().map(|e| e.label.clone()).collect::<Vec<String>>();
        let (golden_labels, recent_labels) = (labels(&golden), labels(&recent));
        let verdict = judge(
            gate,
            &Answers {
                labels: &golden_labels,
                candidate: &candidate_scores.golden.1,
                champion: champion_scores.as_ref().map(|s| s.golden.1.as_slice()),
            },
            &Answers {
                labels: &recent_labels,
                candidate: candidate_scores.right_on_recent(),
                champion: champion_scores.as_ref().map(Scores::right_on_recent),
            },
        );
        let comparison = champion_scores
            .as_ref()
            .map(|s| compare(&s.golden.1, &candidate_scores.golden.1));

        let mut tx = self.0.pool.begin().await?;
        let mut evaluated = vec![(candidate_id, Role::Candidate, &candidate_scores)];
        if let (Some(loaded), Some(scores)) = (&champion, &champion_scores) {
            evaluated.push((loaded.record.id, Role::Champion, scores));
        }
        for (version_id, role, scores) in evaluated {
            let run = Some(ctx.run_id);
            evaluations::record(
                &mut tx,
                run,
                version_id,
                role,
                dataset_id,
                EvalSet::Golden,
                &scores.golden.0,
            )
            .await?;
            if let Some((metrics, _)) = &scores.recent {
                evaluations::record(&mut tx, run, version_id, role, dataset_id, EvalSet::Recent, metrics).await?;
            }
        }
        let decision = verdict.words();
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
                decision: decision.clone(),
                golden_lower_bound: verdict.evidence("not_worse_than_champion").map(|e| e.lower_bound),
                recent_lower_bound: verdict.evidence("not_worse_on_recent").map(|e| e.lower_bound),
                recent_rows: i32::try_from(recent.len()).unwrap_or(i32::MAX),
                margin: gate.margin,
                alpha: gate.alpha,
            },
        )
        .await?;
        annotate(
            &mut tx,
            Annotation {
                run_id: ctx.run_id,
                step: &ctx.step,
                attempt: ctx.attempt,
                actor: "gate",
                reason: &decision,
                detail: Some(&json!({"passed": verdict.passed, "checks": verdict.checks})),
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
        decision: recorded.decision,
        recent: recorded.recent_rows.map(|rows| RecentScores {
            rows,
            candidate_accuracy: recorded.candidate_recent_accuracy,
            champion_accuracy: recorded.champion_recent_accuracy,
        }),
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

fn scores(model: &Classifier, golden: &[Example], recent: &[Example]) -> Result<Scores, StepError> {
    let score = |set: &[Example]| evaluate(model, set).map_err(|e| StepError::fatal(format!("evaluation failed: {e}")));
    Ok(Scores {
        golden: score(golden)?,
        recent: if recent.is_empty() { None } else { Some(score(recent)?) },
    })
}
