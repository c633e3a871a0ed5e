//! One run's page: what it is, its timeline, its steps, the gate's evidence
//! and every event in order with its reason. An operator gets cancel while
//! it is active and retry once it failed.

use super::layout::{self, badge, csrf_field};
use super::session::{Operator, Viewer};
use super::{evidence, format, runs, timeline};
use crate::error::ApiError;
use crate::routes::input::PathParam;
use crate::state::AppState;
use axum::extract::State;
use maud::{Markup, html};
use retrain_engine::{Run, RunDetail, RunStatus};
use retrain_steps::store::evaluations;
use uuid::Uuid;

/// `GET /ui/runs/{id}`.
pub async fn page(
    State(state): State<AppState>,
    Viewer(operator): Viewer,
    PathParam(id): PathParam<Uuid>,
) -> Result<Markup, ApiError> {
    let RunDetail { run, steps, events } = state.engine.get_run(id).await?;
    let evaluations = evaluations::of_run(&mut *state.pool.acquire().await?, id).await?;
    let attempts = timeline::attempts(&events);
    let body = html! {
        h1 { "Run " code { (format::short(run.id)) } " " (badge(run.status.as_str())) }
        (facts(&run))
        @if let Some(operator) = &operator { (actions(operator, &run)) }
        h2 { "Timeline" }
        div.scroll { (timeline::gantt(&steps, &attempts, chrono::Utc::now())) }
        h2 { "Steps" }
        div.scroll { table.steps {
            thead { tr { th { "#" } th { "Step" } th { "Status" } th { "Attempts" } th { "Took" } th { "Last error" } } }
            tbody { @for step in &steps {
                tr data-step=(step.name) data-status=(step.status) {
                    td { (step.position) }
                    td { (step.name) }
                    td { (badge(step.status.as_str())) }
                    td { (step.attempt) " of " (step.max_attempts) }
                    td { (format::between(step.started_at, step.finished_at)) }
                    td.error { (step.last_error.as_deref().unwrap_or("")) }
                }
            } }
        } }
        @if let Some(section) = evidence::section(&steps, &evaluations) { (section) }
        h2 { "Events" }
        div.scroll { table.events {
            thead { tr { th { "At (UTC)" } th { "Step" } th { "Attempt" } th { "Change" } th { "By" } th { "Reason" } } }
            tbody { @for event in &events {
                tr data-event=(event.id) {
                    td { (format::time(event.at)) }
                    td { (event.step.as_deref().unwrap_or("run")) }
                    td { (event.attempt.map(|a| a.to_string()).unwrap_or_default()) }
                    td { (event.from_status.as_deref().unwrap_or("·")) " → " (event.to_status) }
                    td { (event.actor) }
                    td.reason { (event.reason.as_deref().unwrap_or("")) }
                }
            } }
        } }
    };
    let title = format!("Run {}", format::short(run.id));
    Ok(layout::page(&title, operator.as_ref(), run.status.is_active(), body))
}

fn facts(run: &Run) -> Markup {
    let reason = run.params.get("reason").and_then(|r| r.as_str());
    html! {
        dl.facts {
            dt { "Model" } dd { a href={ "/ui/models/" (run.subject) } { (run.subject) } }
            dt { "Trigger" } dd { (run.trigger) " by " (run.requested_by) }
            @if let Some(reason) = reason { dt { "Why" } dd { (reason) } }
            dt { "Created" } dd { (format::time(run.created_at)) " UTC" }
            dt { "Took" } dd { (format::between(run.started_at, run.finished_at)) }
            @let outcome = runs::outcome_words(run);
            @if !outcome.is_empty() { dt { "Outcome" } dd.outcome { (outcome) } }
            dt { "Id" } dd { code { (run.id) } }
        }
    }
}

fn actions(operator: &Operator, run: &Run) -> Markup {
    html! {
        @if run.status.is_active() {
            form.inline method="post" action={ "/ui/runs/" (run.id) "/cancel" } {
                (csrf_field(operator))
                button.danger type="submit" { "Cancel run" }
            }
        }
        @if run.status == RunStatus::Failed {
            form.inline method="post" action={ "/ui/runs/" (run.id) "/retry" } {
                (csrf_field(operator))
                button type="submit" { "Retry from the failed step" }
            }
        }
    }
}
