//! The runs page: every run, newest first, filtered by model, status and
//! trigger, a page at a time, reloading itself while a run on it is active.
//! An operator also gets the form that starts a run.

use super::format;
use super::layout::{self, badge, csrf_field};
use super::session::{Operator, Viewer};
use crate::error::ApiError;
use crate::routes::input::QueryParams;
use crate::routes::page::Page;
use crate::state::AppState;
use axum::extract::State;
use maud::{Markup, html};
use retrain_engine::{Run, RunStatus, TriggerKind};
use retrain_steps::store::models;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// Runs on a page.
const PAGE_SIZE: i64 = 25;

/// The filters as the form sends them: an empty field means any.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default)]
    model: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    trigger: String,
    #[serde(default)]
    after: String,
}

impl Filters {
    /// The query string of these filters with the cursor `after`.
    fn query(&self, after: Option<Uuid>) -> String {
        let mut pairs = Vec::new();
        for (key, value) in [
            ("model", &self.model),
            ("status", &self.status),
            ("trigger", &self.trigger),
        ] {
            if !value.is_empty() {
                pairs.push(format!("{key}={value}"));
            }
        }
        if let Some(after) = after {
            pairs.push(format!("after={after}"));
        }
        pairs.join("&")
    }
}

/// A filter's value as its enum, `None` if empty.
///
/// # Errors
/// 400 `invalid_query` for a value the enum does not have.
fn parse<T: DeserializeOwned>(field: &str, value: &str) -> Result<Option<T>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map(Some)
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{field} {value:?} is not one of the choices"),
            )
        })
}

const STATUSES: [RunStatus; 7] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::Skipped,
    RunStatus::Rejected,
];
const TRIGGERS: [TriggerKind; 3] = [TriggerKind::Manual, TriggerKind::Schedule, TriggerKind::Threshold];

/// `GET /ui/runs`.
pub async fn page(
    State(state): State<AppState>,
    Viewer(operator): Viewer,
    QueryParams(filters): QueryParams<Filters>,
) -> Result<Markup, ApiError> {
    let status: Option<RunStatus> = parse("status", &filters.status)?;
    let trigger: Option<TriggerKind> = parse("trigger", &filters.trigger)?;
    let page = Page::<Uuid>::of(Some(PAGE_SIZE), Some(filters.after.as_str()).filter(|a| !a.is_empty()))?;
    let model = Some(filters.model.as_str()).filter(|m| !m.is_empty());
    let mut runs = state
        .engine
        .list_runs(status, model, trigger, page.after, page.fetch())
        .await?;
    let more = runs.len() as i64 > page.limit;
    runs.truncate(page.limit as usize);
    let names: Vec<String> = models::list(&mut *state.pool.acquire().await?)
        .await?
        .into_iter()
        .map(|m| m.name)
        .collect();
    let live = runs.iter().any(|run| run.status.is_active());
    let body = html! {
        h1 { "Runs" }
        @if let Some(operator) = &operator { (trigger_form(operator, &names)) }
        form.filters method="get" action="/ui/runs" {
            label { "Model" select name="model" {
                option value="" { "any" }
                @for name in &names { option value=(name) selected[*name == filters.model] { (name) } }
            } }
            label { "Status" select name="status" {
                option value="" { "any" }
                @for s in STATUSES { option value=(s.as_str()) selected[s.as_str() == filters.status] { (s.as_str()) } }
            } }
            label { "Trigger" select name="trigger" {
                option value="" { "any" }
                @for t in TRIGGERS { option value=(t.as_str()) selected[t.as_str() == filters.trigger] { (t.as_str()) } }
            } }
            button type="submit" { "Filter" }
        }
        @if runs.is_empty() {
            p.muted { "No runs match." }
        } @else {
            div.scroll { table.runs {
                thead { tr { th { "Run" } th { "Model" } th { "Status" } th { "Trigger" } th { "Asked by" }
                    th { "Created (UTC)" } th { "Took" } th { "Outcome" } } }
                tbody { @for run in &runs { (row(run)) } }
            } }
        }
        @if more {
            @if let Some(last) = runs.last() {
                p { a.next rel="next" href={ "/ui/runs?" (filters.query(Some(last.id))) } { "Older runs →" } }
            }
        }
    };
    Ok(layout::page("Runs", operator.as_ref(), live, body))
}

fn row(run: &Run) -> Markup {
    html! {
        tr data-run=(run.id) data-status=(run.status) {
            td { a href={ "/ui/runs/" (run.id) } { code { (format::short(run.id)) } } }
            td { a href={ "/ui/models/" (run.subject) } { (run.subject) } }
            td { (badge(run.status.as_str())) }
            td { (run.trigger) }
            td { (run.requested_by) }
            td { (format::time(run.created_at)) }
            td { (format::between(run.started_at, run.finished_at)) }
            td.outcome { (outcome_words(run)) }
        }
    }
}

/// Why a run ended as it did, in a line: the reason or error its outcome
/// records.
pub fn outcome_words(run: &Run) -> String {
    let Some(outcome) = &run.outcome else {
        return String::new();
    };
    ["reason", "error"]
        .iter()
        .find_map(|key| outcome.get(*key).and_then(|v| v.as_str()))
        .unwrap_or_default()
        .to_owned()
}

fn trigger_form(operator: &Operator, names: &[String]) -> Markup {
    html! {
        details.action {
            summary { "Start a run" }
            form.stack method="post" action="/ui/runs" {
                (csrf_field(operator))
                label { "Model" select name="model" required {
                    @for name in names { option value=(name) { (name) } }
                } }
                label { "Reason" input type="text" name="reason" maxlength="1000" placeholder="why now"; }
                button type="submit" { "Start run" }
            }
        }
    }
}
