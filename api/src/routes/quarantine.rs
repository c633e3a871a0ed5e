//! `POST /feedback/quarantine`: leave poisoned feedback out of every future
//! training set, by source and/or time received. The feedback stays stored.
//! `GET /feedback/quarantine` lists a model's rules (an operator's, or the
//! pipeline's own from screening, with its evidence and run), and
//! `POST /feedback/quarantine/{id}/release` ends one, audited: who, when
//! and why, as a release row beside the rule, never a delete.

use super::input::{Body, PathParam, QueryParams, check_text};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use retrain_steps::store::feedback::{self, NewQuarantine, QuarantineRule, Released};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Which feedback to quarantine; at least one criterion.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuarantineRequest {
    /// The model whose feedback to quarantine (the default model if absent).
    pub model: Option<String>,
    /// Feedback from this source: the name of the key that sent it (1 to 200 characters,
    /// no control characters but newline and tab). What a body said as its `source` is a
    /// sub-label and never matches.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$")]
    pub source: Option<String>,
    /// Feedback received at or after this time (RFC 3339).
    pub received_from: Option<DateTime<Utc>>,
    /// Feedback received before this time (RFC 3339).
    pub received_until: Option<DateTime<Utc>>,
    /// Why; recorded for audit. 1 to 1,000 characters, no control characters but
    /// newline and tab.
    #[schema(min_length = 1, max_length = 1000, pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$")]
    pub reason: String,
}

/// The rule and how many stored rows it covers now.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineResponse {
    pub quarantine_id: i64,
    pub matched_rows: i64,
}

/// Quarantine feedback by source and/or time range.
#[utoipa::path(post, path = "/feedback/quarantine", tag = "feedback", request_body = QuarantineRequest,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = QuarantineResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 422, description = "No criterion, an empty range or an invalid reason", body = ErrorBody),
    ))]
pub async fn quarantine(
    State(state): State<AppState>,
    admin: Admin,
    Body(request): Body<QuarantineRequest>,
) -> Result<(StatusCode, Json<QuarantineResponse>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(add_rule(&state, &admin.actor, request).await?),
    ))
}

/// Stores `actor`'s quarantine rule after checking it.
///
/// # Errors
/// 422 `invalid_reason`, `invalid_source` or `invalid_quarantine`; 404 for
/// no such model; 503 without the database.
pub(crate) async fn add_rule(
    state: &AppState,
    actor: &str,
    request: QuarantineRequest,
) -> Result<QuarantineResponse, ApiError> {
    check_text(&request.reason, "reason", 1_000, "invalid_reason")?;
    if let Some(source) = &request.source {
        check_text(source, "source", 200, "invalid_source")?;
    }
    if request.source.is_none() && request.received_from.is_none() && request.received_until.is_none() {
        return Err(ApiError::bad_request(
            "invalid_quarantine",
            "give a source, a time range, or both",
        ));
    }
    if let (Some(from), Some(until)) = (request.received_from, request.received_until)
        && from >= until
    {
        return Err(ApiError::bad_request(
            "invalid_quarantine",
            "received_from must be before received_until",
        ));
    }
    let mut conn = state.pool.acquire().await?;
    let model_name = request.model.as_deref().unwrap_or(&state.default_model);
    let model = retrain_steps::store::models::by_name(&mut conn, model_name).await?;
    let (id, matched) = feedback::quarantine(
        &mut conn,
        &NewQuarantine {
            model_id: model.id,
            source: request.source,
            received_from: request.received_from,
            received_until: request.received_until,
            reason: request.reason,
            actor: actor.to_owned(),
            run_id: None,
            evidence: None,
        },
    )
    .await?;
    tracing::info!(model = %model.name, quarantine_id = id, matched, actor = %actor, "feedback quarantined");
    Ok(QuarantineResponse {
        quarantine_id: id,
        matched_rows: matched,
    })
}

/// Whose quarantine rules to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The model (the default model if absent).
    pub model: Option<String>,
}

/// A model's quarantine rules, newest first, each with its release if any.
#[utoipa::path(get, path = "/feedback/quarantine", tag = "feedback", params(ListQuery),
    responses(
        (status = 200, body = Vec<QuarantineRule>),
        (status = 404, description = "No such model", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Vec<QuarantineRule>>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let model_name = query.model.as_deref().unwrap_or(&state.default_model);
    let model = retrain_steps::store::models::by_name(&mut conn, model_name).await?;
    Ok(Json(feedback::quarantines(&mut conn, model.id).await?))
}

/// Why a rule is released.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Why; recorded for audit. 1 to 1,000 characters, no control characters but
    /// newline and tab.
    #[schema(min_length = 1, max_length = 1000, pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$")]
    pub reason: String,
}

/// Release a quarantine rule: the feedback it covered trains again from the
/// next run on. Training sets merged before keep it, so they still rebuild.
#[utoipa::path(post, path = "/feedback/quarantine/{id}/release", tag = "feedback", request_body = ReleaseRequest,
    params(("id" = i64, Path, description = "The quarantine rule's id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Released; the rule with its release", body = QuarantineRule),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 409, description = "Released before", body = ErrorBody),
        (status = 422, description = "An invalid reason", body = ErrorBody),
    ))]
pub async fn release(
    State(state): State<AppState>,
    admin: Admin,
    PathParam(id): PathParam<i64>,
    Body(request): Body<ReleaseRequest>,
) -> Result<Json<QuarantineRule>, ApiError> {
    Ok(Json(release_rule(&state, &admin.actor, id, &request.reason).await?))
}

/// Releases rule `id` for `actor`.
///
/// # Errors
/// 422 `invalid_reason`; 404 for no such rule; 409 `already_released`;
/// 503 without the database.
pub(crate) async fn release_rule(
    state: &AppState,
    actor: &str,
    id: i64,
    reason: &str,
) -> Result<QuarantineRule, ApiError> {
    check_text(reason, "reason", 1_000, "invalid_reason")?;
    let mut conn = state.pool.acquire().await?;
    match feedback::release(&mut conn, id, reason, actor).await? {
        Released::Now(rule) => {
            tracing::info!(quarantine_id = id, actor = %actor, "quarantine released");
            Ok(rule)
        }
        Released::Already(rule) => Err(ApiError::conflict(
            "already_released",
            format!(
                "quarantine {id} was released by {} at {}",
                rule.released_by.unwrap_or_default(),
                rule.released_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
        )),
        Released::NoSuchRule => Err(ApiError::not_found(format!("no quarantine rule {id}"))),
    }
}
