//! A model's versions over HTTP: every version with its lineage and scores,
//! one version with its training figures, learner selection and
//! promotions, promotion or rollback to any of them, and a reproduction
//! that refits a version and compares its bytes.

use super::input::{Body, PathParam, QueryParams, check_text};
use super::page::{self, Page, PageQuery};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use retrain_steps::reproduce::{self, Reproduction};
use retrain_steps::store::promotions::{self, Promotion, PromotionKind, PromotionRequest};
use retrain_steps::store::{models, versions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A stored version with its lineage and scores.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct VersionSummary {
    /// The model it is a version of.
    pub model: String,
    pub version: i32,
    /// The version's id.
    pub model_id: i64,
    /// The learner that trained it.
    pub kind: String,
    pub sha256: String,
    pub trained_at: DateTime<Utc>,
    /// The run that trained it (none for a bootstrap version).
    pub run_id: Option<Uuid>,
    pub dataset: String,
    pub dataset_version: i32,
    pub feedback_from: i64,
    pub feedback_to: i64,
    pub total_rows: i32,
    pub golden_accuracy: Option<f64>,
    pub golden_macro_f1: Option<f64>,
    pub gate_passed: Option<bool>,
    pub first_promoted_at: Option<DateTime<Utc>>,
    pub is_champion: Option<bool>,
}

/// A version with everything stored about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDetail {
    #[serde(flatten)]
    pub summary: VersionSummary,
    pub hyperparams: Value,
    pub training_ms: i32,
    pub training_metrics: Value,
    pub base_rows: i32,
    pub feedback_rows: i32,
    /// Rows left out of the training set, by reason.
    pub dropped: Value,
    pub training_set_sha256: String,
    /// How the learner was chosen: the winner and its settings, every
    /// candidate's cross-validation fold accuracies, the folds and the seed
    /// (none for versions trained before selection).
    pub selection: Option<Value>,
    /// Every promotion of this version, newest first.
    pub promotions: Vec<Promotion>,
}

/// Why to promote.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Recorded in the promotion history; 1 to 1,000 characters, no control characters
    /// but newline and tab.
    #[schema(min_length = 1, max_length = 1000, pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$")]
    pub reason: String,
}

const SUMMARY_COLUMNS: &str = "model, version, version_id AS model_id, kind, sha256, trained_at, run_id, dataset, \
    dataset_version, feedback_from, feedback_to, total_rows, golden_accuracy, golden_macro_f1, gate_passed, \
    first_promoted_at, is_champion";

/// The query of a page of versions: model `$1`, versions below `$2`
/// (all if null), at most `$3`, newest first.
pub fn list_sql() -> String {
    format!(
        "SELECT {SUMMARY_COLUMNS} FROM audit_model_lineage
         WHERE model = $1 AND version < coalesce($2, 2147483647) ORDER BY version DESC LIMIT $3"
    )
}

/// A model's versions, newest first, a page at a time (see the `Link` header).
#[utoipa::path(get, path = "/models/{name}/versions", tag = "models",
    params(("name" = String, Path, description = "The model's name"), PageQuery),
    responses((status = 200, body = Vec<VersionSummary>, headers(("Link" = String, description = "`<URL>; rel=\"next\"`: the next page, if any"))),
              (status = 400, description = "Invalid limit or cursor (a version number)", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    uri: Uri,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = Page::<i32>::of(query.limit, query.after.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    models::by_name(&mut conn, &name).await?;
    let rows = summaries(&mut conn, &name, page.after, page.fetch()).await?;
    Ok(page::answer(&page, rows, &uri, |row| row.version.to_string()))
}

/// At most `limit` versions of model `name` below version `before` (all if
/// `None`), newest first.
pub(crate) async fn summaries(
    conn: &mut sqlx::PgConnection,
    name: &str,
    before: Option<i32>,
    limit: i64,
) -> Result<Vec<VersionSummary>, sqlx::Error> {
    sqlx::query_as(&list_sql())
        .bind(name)
        .bind(before)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// One version with its lineage, training figures and promotions.
#[utoipa::path(get, path = "/models/{name}/versions/{version}", tag = "models",
    params(("name" = String, Path, description = "The model's name"), ("version" = i32, Path, description = "Version number")),
    responses((status = 200, body = VersionDetail), (status = 400, description = "Not a version number", body = ErrorBody),
              (status = 404, description = "No such model or version", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    PathParam((name, version)): PathParam<(String, i32)>,
) -> Result<Json<VersionDetail>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let model = models::by_name(&mut conn, &name).await?;
    Ok(Json(detail(&mut conn, &model, version).await?))
}

/// Version `version` of `model` with its lineage, training figures and
/// promotions.
///
/// # Errors
/// 404 for no such version; 503 without the database.
pub(crate) async fn detail(
    conn: &mut sqlx::PgConnection,
    model: &models::ModelSpec,
    version: i32,
) -> Result<VersionDetail, ApiError> {
    use sqlx::Row;
    let record = versions::by_version(conn, model.id, version).await?;
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, hyperparams, training_ms, base_rows, feedback_rows, dropped, training_set_sha256
         FROM audit_model_lineage WHERE version_id = $1"
    );
    let row = sqlx::query(&sql).bind(record.id).fetch_one(&mut *conn).await?;
    let summary = <VersionSummary as sqlx::FromRow<_>>::from_row(&row)?;
    let promotions = promotions::history(conn, model.id, i64::MAX)
        .await?
        .into_iter()
        .filter(|p| p.version_id == record.id)
        .collect();
    Ok(VersionDetail {
        summary,
        hyperparams: row.try_get("hyperparams")?,
        training_ms: row.try_get("training_ms")?,
        training_metrics: record.training_metrics,
        selection: record.selection,
        base_rows: row.try_get("base_rows")?,
        feedback_rows: row.try_get("feedback_rows")?,
        dropped: row.try_get("dropped")?,
        training_set_sha256: row.try_get("training_set_sha256")?,
        promotions,
    })
}

/// Make a stored version its model's champion: a rollback if it is older
/// than the champion, a manual promotion otherwise. Every replica follows.
#[utoipa::path(post, path = "/models/{name}/versions/{version}/promote", tag = "models", request_body = PromoteRequest,
    params(("name" = String, Path, description = "The model's name"), ("version" = i32, Path, description = "Version number")),
    security(("admin_token" = [])),
    responses((status = 200, body = Promotion), (status = 400, description = "Malformed request", body = ErrorBody),
              (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
              (status = 404, description = "No such model or version", body = ErrorBody),
              (status = 409, description = "Already the champion", body = ErrorBody),
              (status = 422, description = "Invalid reason", body = ErrorBody)))]
pub async fn promote(
    State(state): State<AppState>,
    admin: Admin,
    PathParam((name, version)): PathParam<(String, i32)>,
    Body(request): Body<PromoteRequest>,
) -> Result<Json<Promotion>, ApiError> {
    let promotion = promote_to(&state, &admin.actor, &name, version, &request.reason).await?;
    Ok(Json(promotion))
}

/// Makes `version` of model `name` its champion for `actor`: a rollback if
/// it is older than the champion, a manual promotion otherwise.
///
/// # Errors
/// 422 `invalid_reason`; 404 for no such model or version; 409
/// `already_champion`; 503 without the database.
pub(crate) async fn promote_to(
    state: &AppState,
    actor: &str,
    name: &str,
    version: i32,
    reason: &str,
) -> Result<Promotion, ApiError> {
    check_text(reason, "reason", 1_000, "invalid_reason")?;
    let mut conn = state.pool.acquire().await?;
    let model = models::by_name(&mut conn, name).await?;
    let target = versions::by_version(&mut conn, model.id, version).await?;
    let champion = promotions::champion(&mut conn, model.id).await?;
    drop(conn);
    let kind = match champion {
        Some((_, current)) if version < current => PromotionKind::Rollback,
        _ => PromotionKind::Manual,
    };
    let promotion = promotions::promote(
        &state.pool,
        PromotionRequest {
            version_id: target.id,
            kind,
            actor,
            reason,
            by_run: None,
        },
    )
    .await?;
    tracing::info!(model = %name, version, actor = %actor, ?kind, "version promoted by an operator");
    Ok(promotion)
}

/// Refit a version from its stored training set with the learner and
/// settings it was trained with, and compare the artifact's bytes: a match,
/// or the first differing byte offset and both sha256.
#[utoipa::path(post, path = "/models/{name}/versions/{version}/reproduce", tag = "models",
    params(("name" = String, Path, description = "The model's name"), ("version" = i32, Path, description = "Version number")),
    security(("admin_token" = [])),
    responses((status = 200, body = Reproduction), (status = 400, description = "Not a version number", body = ErrorBody),
              (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
              (status = 404, description = "No such model or version", body = ErrorBody)))]
pub async fn reproduce(
    State(state): State<AppState>,
    admin: Admin,
    PathParam((name, version)): PathParam<(String, i32)>,
) -> Result<Json<Reproduction>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let model = models::by_name(&mut conn, &name).await?;
    let record = versions::by_version(&mut conn, model.id, version).await?;
    let outcome = reproduce::reproduce(&mut conn, &record, tokio_util::sync::CancellationToken::new()).await?;
    tracing::info!(model = %name, version, actor = %admin.actor, matches = outcome.matches, "version reproduced");
    Ok(Json(outcome))
}
