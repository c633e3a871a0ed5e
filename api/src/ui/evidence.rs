//! The gate's evidence on a run's page: champion and candidate side by side,
//! each check with its numbers, the paired comparison, both confusion
//! matrices and the per-class recall, and the decision in words. It reads
//! what validate recorded (its step output and the run's evaluations), so
//! it shows what the gate saw, not a recomputation.

use super::{charts, format};
use maud::{Markup, html};
use retrain_engine::StepRecord;
use retrain_steps::ml::PairedComparison;
use retrain_steps::pipeline::outputs::ValidateOutput;
use retrain_steps::store::evaluations::{EvalSet, Role, RunEvaluation};

/// The evidence section, or `None` if validate has recorded no verdict.
pub fn section(steps: &[StepRecord], evaluations: &[RunEvaluation]) -> Option<Markup> {
    let output = steps.iter().find(|s| s.name == "validate")?.output.clone()?;
    let verdict: ValidateOutput = serde_json::from_value(output).ok()?;
    let golden = |role: Role| {
        evaluations
            .iter()
            .find(|e| e.role == role && e.eval_set == EvalSet::Golden)
            .map(|e| &e.metrics.0)
    };
    let (candidate, champion) = (golden(Role::Candidate), golden(Role::Champion));
    let comparison: Option<PairedComparison> = verdict
        .comparison
        .clone()
        .and_then(|value| serde_json::from_value(value).ok());
    Some(html! {
        section.evidence id="gate" {
            h2 { "Gate evidence" }
            p.decision class=(if verdict.passed { "passed" } else { "rejected" }) {
                strong { (if verdict.passed { "Passed." } else { "Rejected." }) }
                " " (verdict.decision.clone().unwrap_or_else(|| "The verdict predates the gate's decision in words.".into()))
            }
            (scores(&verdict))
            h3 { "Checks" }
            div.scroll { table.checks {
                thead { tr { th { "Check" } th { "Result" } th { "What was compared" } th { "Lower bound" } } }
                tbody { @for check in &verdict.checks {
                    tr data-check=(check.name) data-passed=(check.passed) {
                        td { code { (check.name) } }
                        td { (super::layout::badge(if check.passed { "passed" } else { "failed" })) }
                        td { (check.detail) }
                        td { @if let Some(e) = &check.evidence {
                            (format!("{:+.2}", e.lower_bound * 100.0)) " pts (margin " (format!("{:.2}", e.margin * 100.0)) ", α " (e.alpha) ")"
                        } @else { "–" } }
                    }
                } }
            } }
            @if let Some(c) = &comparison { (paired(c)) }
            div.charts {
                @if let Some(champion) = champion { (charts::heat_map("confusion-champion", &format!("Champion v{}: golden confusion matrix", verdict.champion.as_ref().map_or(0, |c| c.version)), &champion.confusion)) }
                @if let Some(candidate) = candidate { (charts::heat_map("confusion-candidate", &format!("Candidate v{}: golden confusion matrix", verdict.candidate.version), &candidate.confusion)) }
            }
            @if let Some(candidate) = candidate { (charts::recall_bars(champion, candidate)) }
            @if candidate.is_none() { p.muted { "No evaluation of this run is stored." } }
        }
    })
}

/// Both models' figures, side by side, with the difference.
fn scores(verdict: &ValidateOutput) -> Markup {
    let champion = verdict.champion.as_ref();
    let recent = verdict.recent.as_ref();
    let rows: [(&str, Option<f64>, Option<f64>); 3] = [
        (
            "Golden accuracy",
            champion.map(|c| c.accuracy),
            Some(verdict.candidate.accuracy),
        ),
        (
            "Golden macro-F1",
            champion.map(|c| c.macro_f1),
            Some(verdict.candidate.macro_f1),
        ),
        (
            "Recent accuracy",
            recent.and_then(|r| r.champion_accuracy),
            recent.and_then(|r| r.candidate_accuracy),
        ),
    ];
    html! {
        div.scroll { table.scores {
            thead { tr {
                th { "" }
                th { "Champion" @if let Some(c) = champion { " v" (c.version) } }
                th { "Candidate v" (verdict.candidate.version) }
                th { "Difference" }
            } }
            tbody { @for (name, was, now) in rows {
                tr {
                    th { (name) @if name.starts_with("Recent") { @if let Some(r) = recent { " (" (r.rows) " rows)" } } }
                    td { (format::maybe_percent(was)) }
                    td { (format::maybe_percent(now)) }
                    td { @match (was, now) {
                        (Some(was), Some(now)) => { (format!("{:+.1}", (now - was) * 100.0)) " pts" }
                        _ => { "–" }
                    } }
                }
            } }
        } }
    }
}

/// The paired comparison on the golden rows: where the two models agree
/// and where only one is right, with McNemar's p-value.
fn paired(c: &PairedComparison) -> Markup {
    html! {
        h3 { "Paired comparison on " (c.n) " golden rows" }
        table.paired {
            thead { tr { th { "" } th { "Candidate right" } th { "Candidate wrong" } } }
            tbody {
                tr { th { "Champion right" } td data-cell="both_right" { (c.both_right) } td data-cell="only_champion_right" { (c.only_champion_right) } }
                tr { th { "Champion wrong" } td data-cell="only_candidate_right" { (c.only_candidate_right) } td data-cell="both_wrong" { (c.both_wrong) } }
            }
        }
        p.muted { "McNemar's exact two-sided p = " (format!("{:.4}", c.p_value)) ": "
            (if c.p_value < 0.05 { "the models' disagreements lean to one side more than chance would." }
             else { "the disagreements could be chance." }) }
    }
}
