//! Liveness, readiness and the metrics endpoint.

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// The process is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The replica can serve: the database answers and the champion is loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub status: &'static str,
    /// The default model's version served, if this replica serves it.
    pub model_version: Option<i32>,
    /// Every model served, with its version.
    pub models: std::collections::BTreeMap<String, i32>,
}

/// Liveness: answers as long as the process runs.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers within 1 s, a model is loaded, and the
/// replica has not failed to load a champion for longer than its bound
/// (`RETRAIN_STALE_AFTER_MS`, 10 s by default).
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Ready), (status = 503, description = "Not ready: why", body = ErrorBody)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let ping = tokio::time::timeout(Duration::from_secs(1), sqlx::query("SELECT 1").execute(&state.pool)).await;
    if !matches!(ping, Ok(Ok(_))) {
        return Err(ApiError::unavailable("the database does not answer"));
    }
    let models: std::collections::BTreeMap<String, i32> = state
        .serving
        .all()
        .iter()
        .map(|(name, served)| (name.clone(), served.version))
        .collect();
    if models.is_empty() {
        return Err(ApiError::unavailable("no model is loaded yet"));
    }
    if let Some(behind) = state.serving.freshness.stale() {
        return Err(ApiError::unavailable(format!(
            "behind a champion for {} s: {}",
            behind.since.elapsed().as_secs(),
            behind.reason
        )));
    }
    Ok(Json(Ready {
        status: "ready",
        model_version: models.get(&*state.default_model).copied(),
        models,
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    exposition(&state.metrics)
}

/// The metrics as a text exposition response.
pub fn exposition(metrics: &crate::metrics::Metrics) -> impl IntoResponse + use<> {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
}
