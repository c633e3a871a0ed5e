//! The HTTP routes, their limits and the OpenAPI document.

mod docs;
pub mod feedback;
pub mod health;
mod input;
pub mod models;
pub mod predict;
pub mod quarantine;
pub mod runs;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;

pub use docs::ApiDoc;

/// The API's router with every route, limit and the docs.
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.body_limit;
    Router::new()
        .route("/predict", post(predict::predict))
        .route("/predict/batch", post(predict::predict_batch))
        .route("/feedback", post(feedback::feedback))
        .route("/feedback/quarantine", post(quarantine::quarantine))
        .route("/model/info", get(models::info))
        .route("/models", get(models::list))
        .route("/models/{version}", get(models::show))
        .route("/models/{version}/promote", post(models::promote))
        .route("/runs", post(runs::trigger).get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/runs/{id}/retry", post(runs::retry))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .merge(docs::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .with_state(state)
}

/// What a worker-only process serves: liveness and its metrics.
pub fn worker_router(metrics: crate::metrics::Metrics) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { health::exposition(&metrics) }
            }),
        )
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /docs")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /docs",
    )
}
