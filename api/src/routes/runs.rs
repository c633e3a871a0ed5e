//! Retrain runs over HTTP: trigger, list, inspect, cancel and retry.

use super::input::{OptionalBody, PathParam, QueryParams, check_text};
use super::page::{self, Page};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::{self, Claim, KeyHeader, Scope};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use retrain_engine::{Cancelled, Created, NewRun, Run, RunDetail, RunStatus, TriggerKind};
use retrain_steps::PIPELINE;
use retrain_steps::pipeline::run_params;
use retrain_steps::store::models;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Why a run is asked for.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// The model to retrain (the default model if absent; `POST
    /// /models/{name}/runs` names it in the path).
    pub model: Option<String>,
    /// Stored in the run's params; 1 to 1,000 characters, no control characters but
    /// newline and tab.
    #[schema(min_length = 1, max_length = 1000, pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$")]
    pub reason: Option<String>,
}

/// Filters of `GET /runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs of this model.
    pub model: Option<String>,
    /// Only runs asked for by this kind of trigger.
    pub trigger: Option<TriggerKind>,
    /// Runs of the page (1 to 500, default 50), newest first.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The id of the previous page's last run (the `after` of its `Link: rel="next"` URL).
    pub after: Option<String>,
}

/// What a cancel did, with the run.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelResponse {
    /// `now`: the run ended cancelled; `requested`: it stops when its running step returns.
    pub cancel: String,
    pub run: Run,
}

/// Start a retrain run, or get the one already active.
///
/// With an `Idempotency-Key`, a retry gets the first answer (same status and
/// body, header `Idempotent-Replayed: true`) and starts nothing new.
#[utoipa::path(post, path = "/runs", tag = "runs", request_body(content = Option<TriggerRequest>, description = "Optional"),
    params(super::docs::IdempotencyKeyParam),
    security(("admin_token" = [])),
    responses((status = 201, body = Run, description = "A new run was queued"),
              (status = 200, body = Run, description = "A run was already active: that run"),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 400, description = "Malformed JSON", body = ErrorBody),
              (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
              (status = 408, description = "The body stalled", body = ErrorBody),
              (status = 409, description = "Idempotency-Key already used for another request", body = ErrorBody),
              (status = 413, description = "Body too large", body = ErrorBody),
              (status = 415, description = "A body that is not JSON", body = ErrorBody),
              (status = 422, description = "Invalid reason, actor or Idempotency-Key", body = ErrorBody),
              (status = 503, description = "Database unavailable; retry after the Retry-After delay", body = ErrorBody)))]
pub async fn trigger(
    State(state): State<AppState>,
    admin: Admin,
    key: KeyHeader,
    OptionalBody(body): OptionalBody<TriggerRequest>,
) -> Result<Response, ApiError> {
    let mut request = body.unwrap_or_default();
    let model = request.model.take().unwrap_or_else(|| state.default_model.to_string());
    trigger_for(&state, &admin, &model, key, request).await
}

/// Start a retrain run of the named model, or get the one already active.
///
/// With an `Idempotency-Key`, a retry gets the first answer (same status and
/// body, header `Idempotent-Replayed: true`) and starts nothing new.
#[utoipa::path(post, path = "/models/{name}/runs", tag = "runs",
    request_body(content = Option<TriggerRequest>, description = "Optional"),
    params(("name" = String, Path, description = "The model's name"), super::docs::IdempotencyKeyParam),
    security(("admin_token" = [])),
    responses((status = 201, body = Run, description = "A new run was queued"),
              (status = 200, body = Run, description = "A run of the model was already active: that run"),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 409, description = "Idempotency-Key already used for another request", body = ErrorBody),
              (status = 422, description = "Invalid reason, actor or Idempotency-Key", body = ErrorBody),
              (status = 503, description = "Database unavailable; retry after the Retry-After delay", body = ErrorBody)))]
pub async fn trigger_named(
    State(state): State<AppState>,
    admin: Admin,
    PathParam(name): PathParam<String>,
    key: KeyHeader,
    OptionalBody(body): OptionalBody<TriggerRequest>,
) -> Result<Response, ApiError> {
    let mut request = body.unwrap_or_default();
    let model = request.model.take().unwrap_or(name);
    trigger_for(&state, &admin, &model, key, request).await
}

async fn trigger_for(
    state: &AppState,
    admin: &Admin,
    model: &str,
    KeyHeader(key): KeyHeader,
    request: TriggerRequest,
) -> Result<Response, ApiError> {
    let new = manual_run(state, &admin.actor, model, request.reason.as_deref()).await?;
    let Some(key) = key else {
        let (status, run) = answer(state.engine.create_run(new).await?);
        return Ok((status, Json(run)).into_response());
    };
    // One transaction on one connection claims the key, creates the run and
    // records the answer: they commit together or not at all, so a retry
    // after any failure finds either both or neither. The key's row stays
    // locked until then: a concurrent retry waits for it, then replays.
    let claim = Claim::new(key, &(model, &request));
    idempotency::prune_lazily(&state.pool);
    let mut tx = state.pool.begin().await?;
    if let Some(replay) = idempotency::claim(&mut tx, Scope::Runs, &claim).await? {
        return Ok(replay.into_response());
    }
    let (status, run) = answer(state.engine.create_run_in(&mut tx, new).await?);
    let body = serde_json::to_value(&run).map_err(|e| ApiError::internal(&e))?;
    idempotency::complete(&mut tx, Scope::Runs, &claim.key, status, &body).await?;
    tx.commit().await?;
    Ok((status, Json(body)).into_response())
}

/// An operator's run of `model`, checked: the reason's text and the model's
/// existence.
///
/// # Errors
/// 422 `invalid_reason`, 404 `unknown_model`, 503 without the database.
pub(crate) async fn manual_run<'a>(
    state: &AppState,
    actor: &'a str,
    model: &'a str,
    reason: Option<&str>,
) -> Result<NewRun<'a>, ApiError> {
    if let Some(reason) = reason {
        check_text(reason, "reason", 1_000, "invalid_reason")?;
    }
    models::by_name(&mut *state.pool.acquire().await?, model).await?;
    let mut params = run_params(model);
    params["reason"] = serde_json::json!(reason);
    Ok(NewRun {
        pipeline: PIPELINE,
        subject: model,
        trigger: TriggerKind::Manual,
        params,
        requested_by: actor,
    })
}

/// A new run is answered 201; the run already active, 200.
fn answer(created: Created) -> (StatusCode, Run) {
    match created {
        Created::New(run) => (StatusCode::CREATED, run),
        Created::AlreadyActive(run) => (StatusCode::OK, run),
    }
}

/// Runs, newest first, a page at a time (see the `Link` header).
#[utoipa::path(get, path = "/runs", tag = "runs", params(ListQuery),
    responses((status = 200, body = Vec<Run>, headers(("Link" = String, description = "`<URL>; rel=\"next\"`: the next page, if any"))),
              (status = 400, description = "Invalid filter, limit or cursor", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    uri: Uri,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    list_page(&state, &uri, query).await
}

/// A model's runs, newest first, a page at a time (see the `Link` header);
/// the path names the model.
#[utoipa::path(get, path = "/models/{name}/runs", tag = "runs",
    params(("name" = String, Path, description = "The model's name"), ListQuery),
    responses((status = 200, body = Vec<Run>, headers(("Link" = String, description = "`<URL>; rel=\"next\"`: the next page, if any"))),
              (status = 400, description = "Invalid filter, limit or cursor", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody)))]
pub async fn list_named(
    State(state): State<AppState>,
    uri: Uri,
    PathParam(name): PathParam<String>,
    QueryParams(mut query): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    models::by_name(&mut *state.pool.acquire().await?, &name).await?;
    query.model = Some(name);
    list_page(&state, &uri, query).await
}

async fn list_page(state: &AppState, uri: &Uri, query: ListQuery) -> Result<Response, ApiError> {
    let page = Page::<Uuid>::of(query.limit, query.after.as_deref())?;
    let runs = state
        .engine
        .list_runs(
            query.status,
            query.model.as_deref(),
            query.trigger,
            page.after,
            page.fetch(),
        )
        .await?;
    Ok(page::answer(&page, runs, uri, |run| run.id.to_string()))
}

/// A run with its steps and its event history.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = Uuid, Path, description = "Run id")),
    responses((status = 200, body = RunDetail), (status = 400, description = "Not a run id", body = ErrorBody),
              (status = 404, description = "No such run", body = ErrorBody)))]
pub async fn show(State(state): State<AppState>, PathParam(id): PathParam<Uuid>) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(state.engine.get_run(id).await?))
}

/// Cancel a queued or running run; no further step starts.
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs", params(("id" = Uuid, Path, description = "Run id")),
    security(("admin_token" = [])),
    responses((status = 200, body = CancelResponse), (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
              (status = 404, description = "No such run", body = ErrorBody),
              (status = 409, description = "The run already ended", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    admin: Admin,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<CancelResponse>, ApiError> {
    let response = match state.engine.cancel_run(id, &admin.actor).await? {
        Cancelled::Now(run) => CancelResponse {
            cancel: "now".into(),
            run,
        },
        Cancelled::Requested(run) => CancelResponse {
            cancel: "requested".into(),
            run,
        },
    };
    Ok(Json(response))
}

/// Re-queue a failed run at its failed step, keeping earlier outputs.
#[utoipa::path(post, path = "/runs/{id}/retry", tag = "runs", params(("id" = Uuid, Path, description = "Run id")),
    security(("admin_token" = [])),
    responses((status = 200, body = Run), (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
              (status = 404, description = "No such run", body = ErrorBody),
              (status = 409, description = "The run did not fail, or another run is active", body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    admin: Admin,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(state.engine.retry_run(id, &admin.actor).await?))
}
