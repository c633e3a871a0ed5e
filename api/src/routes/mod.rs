//! The HTTP routes, their limits and the OpenAPI document.

pub mod datasets;
mod docs;
pub mod feedback;
pub mod health;
pub(crate) mod input;
pub mod keys;
pub mod models;
pub mod page;
pub mod predict;
pub mod quarantine;
pub mod request_id;
pub mod runs;
mod upload_parts;
pub mod versions;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::time::Duration;

pub use docs::ApiDoc;

/// The API's router with every route, limit and the docs.
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.body_limit;
    let metrics = state.metrics.clone();
    let router = Router::new()
        .route("/predict", post(predict::predict))
        .route("/predict/batch", post(predict::predict_batch))
        .route("/feedback", post(feedback::feedback))
        .route("/models/{name}/predict", post(predict::predict_named))
        .route("/models/{name}/predict/batch", post(predict::predict_batch_named))
        .route("/models/{name}/feedback", post(feedback::feedback_named))
        .route("/models/{name}/runs", post(runs::trigger_named).get(runs::list_named))
        .route(
            "/feedback/quarantine",
            post(quarantine::quarantine).get(quarantine::list),
        )
        .route("/feedback/quarantine/{id}/release", post(quarantine::release))
        .route("/keys", post(keys::create).get(keys::list))
        .route("/keys/{name}/revoke", post(keys::revoke))
        .route("/model/info", get(models::info))
        .route("/models", get(models::list))
        .route("/models/{name}", get(models::show).patch(models::change))
        .route("/models/{name}/versions", get(versions::list))
        .route("/models/{name}/versions/{version}", get(versions::show))
        .route("/models/{name}/versions/{version}/promote", post(versions::promote))
        .route("/models/{name}/versions/{version}/reproduce", post(versions::reproduce))
        .route("/runs", post(runs::trigger).get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/runs/{id}/retry", post(runs::retry))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .merge(docs::routes())
        .merge(crate::ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |request, next| {
            count_request(metrics.clone(), request, next)
        }))
        .layer(middleware::from_fn(deadline));
    // Uploads stream as long as they take and are bounded by the import's
    // own size limit, so they have neither the body limit nor the deadline.
    let metrics = state.metrics.clone();
    let uploads = Router::new()
        .route("/models", post(datasets::create))
        .route("/models/{name}/datasets", post(datasets::import))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(move |request, next| {
            count_request(metrics.clone(), request, next)
        }));
    request_id::traced(router.merge(uploads)).with_state(state)
}

/// Longest a request may take, body included.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// Answers 503 (in the API's error shape, with Retry-After) for a request
/// that takes longer than [`REQUEST_DEADLINE`].
async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable("the request took too long; retry shortly").into_response(),
    }
}

/// What a worker-only process serves: liveness and its metrics.
pub fn worker_router(metrics: crate::metrics::Metrics) -> Router {
    let router = Router::new()
        .route("/health", get(health::health))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { health::exposition(&metrics) }
            }),
        )
        .fallback(not_found);
    request_id::traced(router)
}

/// Counts every answer by route template and status class.
async fn count_request(metrics: crate::metrics::Metrics, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics.http_requests.with_label_values(&[&route, class]).inc();
    response
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
