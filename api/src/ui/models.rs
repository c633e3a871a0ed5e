//! The models pages: the registry with each model's champion, accuracy,
//! waiting feedback and last run; and one model with its versions and their
//! lineage, its promotions, its quarantines and its feedback per source.

use super::layout::{self, badge, csrf_field};
use super::session::{Operator, Viewer};
use super::{charts, format};
use crate::error::ApiError;
use crate::routes::input::PathParam;
use crate::routes::models::{ModelDetail, detail};
use crate::routes::versions::{self, VersionDetail, VersionSummary};
use crate::state::AppState;
use axum::extract::State;
use maud::{Markup, html};
use retrain_engine::{Engine, Run};
use retrain_steps::pipeline::outputs::{MergeOutput, ValidateOutput};
use retrain_steps::screening::SourceReport;
use retrain_steps::store::feedback::{self, QuarantineRule};
use retrain_steps::store::{models, promotions};
use std::collections::BTreeMap;

/// Versions a model's page and chart show, newest first.
const VERSIONS_SHOWN: i64 = 20;
/// Promotions a model's page shows, newest first.
const PROMOTIONS_SHOWN: i64 = 50;
/// Runs searched, newest first, for the last screening report or verdict.
const RUNS_SEARCHED: i64 = 10;

/// `GET /ui/models`.
pub async fn list(State(state): State<AppState>, Viewer(operator): Viewer) -> Result<Markup, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let mut rows = Vec::new();
    for spec in models::list(&mut conn).await? {
        let name = spec.name.clone();
        let model = detail(&mut conn, spec).await?;
        let versions = versions::summaries(&mut conn, &name, None, VERSIONS_SHOWN).await?;
        let last_run = state.engine.list_runs(None, Some(&name), None, None, 1).await?.pop();
        let recent = recent_accuracy(&state.engine, &name, model.summary.champion_version).await?;
        rows.push((model, versions, last_run, recent));
    }
    drop(conn);
    let live = rows
        .iter()
        .any(|(_, _, run, _)| run.as_ref().is_some_and(|r| r.status.is_active()));
    let body = html! {
        h1 { "Models" }
        div.scroll { table.models {
            thead { tr { th { "Model" } th { "Kind" } th { "Champion" } th { "Golden accuracy" } th { "Recent accuracy" }
                th { "Feedback waiting" } th { "Last run" } th { "Accuracy per version" } } }
            tbody { @for (model, versions, last_run, recent) in &rows {
                @let champion = versions.iter().find(|v| v.is_champion == Some(true));
                tr data-model=(model.summary.name) {
                    td { a href={ "/ui/models/" (model.summary.name) } { (model.summary.name) } }
                    td { (format!("{:?}", model.summary.kind).to_lowercase()) }
                    td { @match model.summary.champion_version { Some(v) => { "v" (v) }, None => { "none" } } }
                    td { (format::maybe_percent(champion.and_then(|v| v.golden_accuracy))) }
                    td { (format::maybe_percent(*recent)) }
                    td { (waiting(model)) }
                    td { @match last_run {
                        Some(run) => { a href={ "/ui/runs/" (run.id) } { (badge(run.status.as_str())) } " " (format::time(run.created_at)) }
                        None => { span.muted { "none yet" } }
                    } }
                    td { (charts::accuracy_line(&accuracy_points(versions))) }
                }
            } }
        } }
    };
    Ok(layout::page("Models", operator.as_ref(), live, body))
}

/// Feedback waiting against the model's threshold.
fn waiting(model: &ModelDetail) -> Markup {
    html! {
        (model.feedback_waiting) " of "
        @match model.threshold { Some(t) => { (t) }, None => { "the service's threshold" } }
    }
}

/// Scored versions, oldest first, for the accuracy chart.
fn accuracy_points(versions: &[VersionSummary]) -> Vec<(i32, f64)> {
    let mut points: Vec<(i32, f64)> = versions
        .iter()
        .filter_map(|v| Some((v.version, v.golden_accuracy?)))
        .collect();
    points.reverse();
    points
}

/// `GET /ui/models/{name}`.
pub async fn page(
    State(state): State<AppState>,
    Viewer(operator): Viewer,
    PathParam(name): PathParam<String>,
) -> Result<Markup, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let spec = models::by_name(&mut conn, &name).await?;
    let model_id = spec.id;
    let mut versions = Vec::new();
    for summary in versions::summaries(&mut conn, &name, None, VERSIONS_SHOWN).await? {
        versions.push(versions::detail(&mut conn, &spec, summary.version).await?);
    }
    let model = detail(&mut conn, spec).await?;
    let history = promotions::history(&mut conn, model_id, PROMOTIONS_SHOWN).await?;
    let rules = feedback::quarantines(&mut conn, model_id).await?;
    drop(conn);
    let sources = last_screening(&state.engine, &name).await?;
    let champion = model.summary.champion_version;
    let body = html! {
        h1 { "Model " (name) }
        (facts(&model))
        @if let Some(operator) = &operator {
            details.action {
                summary { "Start a run of " (name) }
                form.stack method="post" action="/ui/runs" {
                    (csrf_field(operator))
                    input type="hidden" name="model" value=(name);
                    label { "Reason" input type="text" name="reason" maxlength="1000" placeholder="why now"; }
                    button type="submit" { "Start run" }
                }
            }
        }
        h2 { "Versions" }
        div.scroll { table.versions {
            thead { tr { th { "Version" } th { "Trained (UTC)" } th { "Run" } th { "Training set" } th { "Feedback ids" }
                th { "Rows dropped" } th { "Learner and settings" } th { "Golden accuracy" } th { "Gate" }
                @if operator.is_some() { th { "Promote" } } } }
            tbody { @for version in &versions { (version_row(version, champion, operator.as_ref())) } }
        } }
        h2 { "Promotions" }
        div.scroll { table.promotions {
            thead { tr { th { "At (UTC)" } th { "Kind" } th { "Version" } th { "From" } th { "By" } th { "Reason" } } }
            tbody { @for p in &history {
                tr data-promotion=(p.id) {
                    td { (format::time(p.promoted_at)) }
                    td { (format!("{:?}", p.kind).to_lowercase()) }
                    td { "v" (p.version) }
                    td { @if let Some(v) = p.previous_version { "v" (v) } }
                    td { (p.actor) @if let Some(run) = p.run_id { " (" a href={ "/ui/runs/" (run) } { "run " (format::short(run)) } ")" } }
                    td { (p.reason) }
                }
            } }
        } }
        h2 { "Quarantines" }
        @if let Some(operator) = &operator { (quarantine_form(operator, &name)) }
        @if rules.is_empty() { p.muted { "No feedback is quarantined." } } @else {
            div.scroll { table.quarantines {
                thead { tr { th { "#" } th { "Source" } th { "Received" } th { "Why" } th { "By" } th { "Evidence" } th { "Released" } } }
                tbody { @for rule in &rules { (rule_row(&name, rule, operator.as_ref())) } }
            } }
        }
        h2 { "Feedback per source" }
        @match &sources {
            Some((run, sources)) => {
                p.muted { "As screened in run " a href={ "/ui/runs/" (run.id) } { (format::short(run.id)) } "." }
                div.scroll { table.sources {
                    thead { tr { th { "Source" } th { "Rows sent" } th { "Flagged" } th { "Flagged share" } th { "Share of the set" } th { "Quarantined because" } } }
                    tbody { @for (source, report) in sources {
                        tr data-source=(source) {
                            td { (source) } td { (report.rows_sent) } td { (report.rows_flagged) }
                            td { (format::percent(report.flagged_share)) } td { (format::percent(report.training_share)) }
                            td { (report.quarantined_because.as_deref().unwrap_or("")) }
                        }
                    } }
                } }
            }
            None => { p.muted { "No run of this model has screened feedback yet." } }
        }
    };
    Ok(layout::page(&format!("Model {name}"), operator.as_ref(), false, body))
}

fn facts(model: &ModelDetail) -> Markup {
    let summary = &model.summary;
    html! {
        dl.facts {
            dt { "Kind" } dd { (format!("{:?}", summary.kind).to_lowercase()) }
            dt { "Classes" } dd { (summary.classes.join(", ")) }
            dt { "Learner" } dd { code { (serde_json::to_string(&summary.learner).unwrap_or_default()) } }
            dt { "Champion" } dd { @match summary.champion_version { Some(v) => { "v" (v) }, None => { "none" } } }
            dt { "Feedback waiting" } dd { (waiting(model)) }
            dt { "Schedule" } dd { (model.cron.as_deref().unwrap_or("none")) }
            dt { "Gate settings" } dd { code { (model.gate) } }
        }
    }
}

fn version_row(version: &VersionDetail, champion: Option<i32>, operator: Option<&Operator>) -> Markup {
    let summary = &version.summary;
    let is_champion = champion == Some(summary.version);
    let dropped: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(version.dropped.clone()).unwrap_or_default();
    html! {
        tr data-version=(summary.version) {
            td { "v" (summary.version) @if is_champion { " " span.badge.status-succeeded { "champion" } } }
            td { (format::time(summary.trained_at)) }
            td { @if let Some(run) = summary.run_id { a href={ "/ui/runs/" (run) } { (format::short(run)) } } @else { "bootstrap" } }
            td { (summary.dataset) "@" (summary.dataset_version) ": " (version.base_rows) " base + " (version.feedback_rows) " feedback" }
            td { (summary.feedback_from) "–" (summary.feedback_to) }
            td { @if dropped.is_empty() { "none" } @else { @for (reason, rows) in &dropped { (reason) ": " (rows) br; } } }
            td { (summary.kind) " " code { (version.hyperparams) } }
            td { (format::maybe_percent(summary.golden_accuracy)) }
            td { @match summary.gate_passed { Some(true) => { "passed" }, Some(false) => { "rejected" }, None => { "–" } } }
            @if let Some(operator) = operator {
                td { @if !is_champion {
                    form.inline method="post" action={ "/ui/models/" (summary.model) "/versions/" (summary.version) "/promote" } {
                        (csrf_field(operator))
                        input type="text" name="reason" required maxlength="1000" placeholder="reason";
                        button type="submit" {
                            (if champion.is_some_and(|c| summary.version < c) { "Roll back" } else { "Promote" })
                        }
                    }
                } }
            }
        }
    }
}

fn rule_row(model: &str, rule: &QuarantineRule, operator: Option<&Operator>) -> Markup {
    html! {
        tr data-quarantine=(rule.id) {
            td { (rule.id) }
            td { (rule.source.as_deref().unwrap_or("any")) }
            td {
                @if let Some(from) = rule.received_from { "from " (format::time(from)) " " }
                @if let Some(until) = rule.received_until { "until " (format::time(until)) }
                @if rule.received_from.is_none() && rule.received_until.is_none() { "any time" }
            }
            td { (rule.reason) }
            td { (rule.actor) @if let Some(run) = rule.run_id { " (" a href={ "/ui/runs/" (run) } { "run " (format::short(run)) } ")" } }
            td { @if let Some(evidence) = &rule.evidence { code.evidence { (evidence) } } }
            td {
                @match (&rule.released_at, operator) {
                    (Some(at), _) => { (format::time(*at)) " by " (rule.released_by.as_deref().unwrap_or("")) ": " (rule.release_reason.as_deref().unwrap_or("")) }
                    (None, Some(operator)) => {
                        form.inline method="post" action={ "/ui/quarantine/" (rule.id) "/release" } {
                            (csrf_field(operator))
                            input type="hidden" name="model" value=(model);
                            input type="text" name="reason" required maxlength="1000" placeholder="reason";
                            button type="submit" { "Release" }
                        }
                    }
                    (None, None) => { "in force" }
                }
            }
        }
    }
}

fn quarantine_form(operator: &Operator, model: &str) -> Markup {
    html! {
        details.action {
            summary { "Quarantine a source" }
            form.stack method="post" action={ "/ui/models/" (model) "/quarantine" } {
                (csrf_field(operator))
                label { "Source" input type="text" name="source" required maxlength="200"; }
                label { "Reason" input type="text" name="reason" required maxlength="1000"; }
                button.danger type="submit" { "Quarantine" }
            }
        }
    }
}

/// The output of step `step` in the newest of the model's last runs that
/// has one it can read as `T`, with that run.
async fn latest_output<T: serde::de::DeserializeOwned>(
    engine: &Engine,
    model: &str,
    step: &str,
) -> Result<Option<(Run, T)>, ApiError> {
    for run in engine.list_runs(None, Some(model), None, None, RUNS_SEARCHED).await? {
        let detail = engine.get_run(run.id).await?;
        let output = detail
            .steps
            .iter()
            .find(|s| s.name == step)
            .and_then(|s| s.output.clone())
            .and_then(|output| serde_json::from_value::<T>(output).ok());
        if let Some(output) = output {
            return Ok(Some((detail.run, output)));
        }
    }
    Ok(None)
}

/// The per-source report of the model's last screened merge, with its run.
async fn last_screening(
    engine: &Engine,
    model: &str,
) -> Result<Option<(Run, BTreeMap<String, SourceReport>)>, ApiError> {
    let merged = latest_output::<MergeOutput>(engine, model, "merge").await?;
    Ok(merged.and_then(|(run, merged)| {
        let report = merged.lineage.get("screening").cloned()?;
        let report: retrain_steps::screening::Report = serde_json::from_value(report).ok()?;
        Some((run, report.sources))
    }))
}

/// The champion's accuracy on the recent set (held-out feedback) as the
/// model's last gate measured it, if that gate saw the champion there.
async fn recent_accuracy(engine: &Engine, model: &str, champion: Option<i32>) -> Result<Option<f64>, ApiError> {
    let Some(champion) = champion else { return Ok(None) };
    let judged = latest_output::<ValidateOutput>(engine, model, "validate").await?;
    Ok(judged.and_then(|(_, verdict)| {
        let recent = verdict.recent?;
        if verdict.candidate.version == champion {
            recent.candidate_accuracy
        } else if verdict.champion.is_some_and(|c| c.version == champion) {
            recent.champion_accuracy
        } else {
            None
        }
    }))
}
