//! `POST /predict` and `POST /predict/batch`: answer from the served model
//! without touching the database; log each prediction in the background.

use super::input::{Body, check_features, served};
use crate::error::{ApiError, ErrorBody};
use crate::predlog::LoggedPrediction;
use crate::serving::ServedModel;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use utoipa::ToSchema;
use uuid::Uuid;

/// One input to classify.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The model's features, in the data set's order (11 for the wine data).
    #[schema(example = json!([7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]))]
    pub features: Vec<f64>,
}

/// A prediction, with what to cite when sending feedback about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PredictResponse {
    pub prediction_id: Uuid,
    pub label: i32,
    /// Share of the predicted class among the training rows of the leaf.
    pub confidence: f64,
    pub model_version: i32,
}

/// Several inputs at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Feature vectors, each as in `POST /predict`.
    pub instances: Vec<Vec<f64>>,
}

/// Predictions in the order of the instances, all from one model.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub predictions: Vec<PredictResponse>,
}

fn predict_one(state: &AppState, model: &ServedModel, features: Vec<f64>) -> Result<PredictResponse, ApiError> {
    check_features(&features, model)?;
    let prediction = model
        .model
        .predict(&features)
        .map_err(|e| ApiError::bad_request("invalid_features", e.to_string()))?;
    let id = Uuid::now_v7();
    state.metrics.count_prediction(model.version, prediction.label);
    state.predictions.record(LoggedPrediction {
        id,
        model_version: model.version,
        features,
        label: prediction.label,
        confidence: prediction.confidence,
        at: Utc::now(),
    });
    Ok(PredictResponse {
        prediction_id: id,
        label: prediction.label,
        confidence: prediction.confidence,
        model_version: model.version,
    })
}

/// Classify one input.
#[utoipa::path(post, path = "/predict", tag = "serving", request_body = PredictRequest,
    responses(
        (status = 200, body = PredictResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Wrong number of features, or not finite", body = ErrorBody),
        (status = 503, description = "No model loaded yet", body = ErrorBody),
    ))]
pub async fn predict(
    State(state): State<AppState>,
    Body(request): Body<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    let started = Instant::now();
    let model = served(&state)?;
    let response = predict_one(&state, &model, request.features)?;
    state
        .metrics
        .prediction_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(response))
}

/// Classify up to `RETRAIN_BATCH_MAX` inputs with one model.
#[utoipa::path(post, path = "/predict/batch", tag = "serving", request_body = BatchRequest,
    responses(
        (status = 200, body = BatchResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Empty or too large a batch, or an invalid instance", body = ErrorBody),
        (status = 503, description = "No model loaded yet", body = ErrorBody),
    ))]
pub async fn predict_batch(
    State(state): State<AppState>,
    Body(request): Body<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let started = Instant::now();
    let max = state.limits.batch_max;
    if request.instances.is_empty() || request.instances.len() > max {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("a batch holds 1 to {max} instances, got {}", request.instances.len()),
        ));
    }
    let model = served(&state)?;
    // Check everything first: a refused batch logs nothing.
    for (i, features) in request.instances.iter().enumerate() {
        check_features(features, &model)
            .map_err(|e| ApiError::bad_request("invalid_features", format!("instance {i}: {}", e.message)))?;
    }
    let predictions = request
        .instances
        .into_iter()
        .map(|features| predict_one(&state, &model, features))
        .collect::<Result<Vec<_>, _>>()?;
    state
        .metrics
        .prediction_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(BatchResponse { predictions }))
}
