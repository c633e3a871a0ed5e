//! The model registry over HTTP: what serves now, every stored model with
//! its lineage, and promotion or rollback to any of them.

use super::input::{Body, PathParam, check_text};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use retrain_steps::store::models;
use retrain_steps::store::promotions::{self, Promotion, PromotionKind, PromotionRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// The model this replica serves.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub version: i32,
    pub model_id: i64,
    pub kind: String,
    pub sha256: String,
    pub promoted_at: DateTime<Utc>,
    pub loaded_at: DateTime<Utc>,
    pub golden_accuracy: Option<f64>,
    pub training_rows: i64,
}

/// A stored model with its lineage and scores.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ModelSummary {
    pub version: i32,
    pub model_id: i64,
    pub kind: String,
    pub sha256: String,
    pub trained_at: DateTime<Utc>,
    /// The run that trained it (none for the bootstrap model).
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

/// A model with everything stored about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub summary: ModelSummary,
    pub hyperparams: Value,
    pub training_ms: i32,
    pub training_metrics: Value,
    pub base_rows: i32,
    pub feedback_rows: i32,
    /// Rows left out of the training set, by reason.
    pub dropped: Value,
    pub training_set_sha256: String,
    /// Every promotion of this model, newest first.
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

const SUMMARY_COLUMNS: &str = "version, model_id, kind, sha256, trained_at, run_id, dataset, dataset_version, \
    feedback_from, feedback_to, total_rows, golden_accuracy, golden_macro_f1, gate_passed, first_promoted_at, \
    is_champion";

/// The model serving on this replica.
#[utoipa::path(get, path = "/model/info", tag = "models",
    responses((status = 200, body = ModelInfo), (status = 503, description = "No model loaded yet", body = ErrorBody)))]
pub async fn info(State(state): State<AppState>) -> Result<Json<ModelInfo>, ApiError> {
    let model = super::input::served(&state)?;
    Ok(Json(ModelInfo {
        version: model.version,
        model_id: model.model_id,
        kind: model.kind.clone(),
        sha256: model.sha256.clone(),
        promoted_at: model.promoted_at,
        loaded_at: model.loaded_at,
        golden_accuracy: model.golden_accuracy,
        training_rows: model.training_rows,
    }))
}

/// Every stored model, newest first.
#[utoipa::path(get, path = "/models", tag = "models",
    responses((status = 200, body = Vec<ModelSummary>), (status = 503, description = "Database unavailable", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<ModelSummary>>, ApiError> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM audit_model_lineage ORDER BY version DESC");
    Ok(Json(sqlx::query_as(&sql).fetch_all(&state.pool).await?))
}

/// One model with its lineage, training figures and promotions.
#[utoipa::path(get, path = "/models/{version}", tag = "models",
    params(("version" = i32, Path, description = "Model version")),
    responses((status = 200, body = ModelDetail), (status = 400, description = "Not a version number", body = ErrorBody),
              (status = 404, description = "No such version", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    PathParam(version): PathParam<i32>,
) -> Result<Json<ModelDetail>, ApiError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, hyperparams, training_ms, base_rows, feedback_rows, dropped, training_set_sha256
         FROM audit_model_lineage WHERE version = $1"
    );
    let row = sqlx::query(&sql)
        .bind(version)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no model version {version}")))?;
    let summary = <ModelSummary as sqlx::FromRow<_>>::from_row(&row)?;
    use sqlx::Row;
    let mut conn = state.pool.acquire().await?;
    let record = models::by_version(&mut conn, version).await?;
    let promotions = promotions::history(&mut conn, i64::MAX)
        .await?
        .into_iter()
        .filter(|p| p.model_id == record.id)
        .collect();
    Ok(Json(ModelDetail {
        summary,
        hyperparams: row.try_get("hyperparams")?,
        training_ms: row.try_get("training_ms")?,
        training_metrics: record.training_metrics,
        base_rows: row.try_get("base_rows")?,
        feedback_rows: row.try_get("feedback_rows")?,
        dropped: row.try_get("dropped")?,
        training_set_sha256: row.try_get("training_set_sha256")?,
        promotions,
    }))
}

/// Make a stored model the champion: a rollback if it is older than the
/// champion, a manual promotion otherwise. Every replica follows.
#[utoipa::path(post, path = "/models/{version}/promote", tag = "models", request_body = PromoteRequest,
    params(("version" = i32, Path, description = "Model version")),
    security(("admin_token" = [])),
    responses((status = 200, body = Promotion), (status = 400, description = "Malformed request", body = ErrorBody),
              (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
              (status = 404, description = "No such version", body = ErrorBody),
              (status = 409, description = "Already the champion", body = ErrorBody),
              (status = 422, description = "Invalid reason", body = ErrorBody)))]
pub async fn promote(
    State(state): State<AppState>,
    admin: Admin,
    PathParam(version): PathParam<i32>,
    Body(request): Body<PromoteRequest>,
) -> Result<Json<Promotion>, ApiError> {
    check_text(&request.reason, "reason", 1_000, "invalid_reason")?;
    let mut conn = state.pool.acquire().await?;
    let target = models::by_version(&mut conn, version).await?;
    let champion = promotions::champion(&mut conn).await?;
    drop(conn);
    let kind = match champion {
        Some((_, current)) if version < current => PromotionKind::Rollback,
        _ => PromotionKind::Manual,
    };
    let promotion = promotions::promote(
        &state.pool,
        PromotionRequest {
            model_id: target.id,
            kind,
            actor: &admin.actor,
            reason: &request.reason,
            by_run: None,
        },
    )
    .await?;
    tracing::info!(version, actor = %admin.actor, ?kind, "model promoted by an operator");
    Ok(Json(promotion))
}
