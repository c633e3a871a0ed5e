//! `POST /predict` and `POST /predict/batch` (the default model), and the
//! same under `/models/{name}/`: answer from the served model without
//! touching the database; log each prediction in the background. A key is
//! needed only if `RETRAIN_PREDICT_OPEN` is off; a key that is presented is
//! checked either way and charged for each prediction.

use super::input::{Body, FeaturesValue, PathParam, model_input, served};
use crate::error::{ApiError, ErrorBody};
use crate::predlog::LoggedPrediction;
use crate::serving::ServedModel;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use utoipa::ToSchema;
use uuid::Uuid;

/// One input to classify: `features` for a tabular model, `text` for a text
/// model.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// A tabular model's features, in its column order (11 for the wine
    /// model) or as an object by column name.
    #[schema(example = json!([7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]))]
    pub features: Option<FeaturesValue>,
    /// A text model's input.
    pub text: Option<String>,
}

/// A prediction, with what to cite when sending feedback about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PredictResponse {
    pub prediction_id: Uuid,
    /// The predicted class name.
    pub label: String,
    /// The model's confidence in the class, in (0, 1].
    pub confidence: f64,
    /// The model that answered.
    pub model: String,
    pub model_version: i32,
}

/// Several inputs at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Inputs, each as the body of `POST /predict`, or (tabular models) a
    /// bare array of features in column order.
    pub instances: Vec<BatchInstance>,
}

/// One input of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BatchInstance {
    /// Features in the model's column order.
    Features(Vec<f64>),
    /// As the body of `POST /predict`.
    Input(PredictRequest),
}

impl BatchInstance {
    fn into_parts(self) -> (Option<FeaturesValue>, Option<String>) {
        match self {
            BatchInstance::Features(values) => (Some(FeaturesValue::Ordered(values)), None),
            BatchInstance::Input(request) => (request.features, request.text),
        }
    }
}

/// Predictions in the order of the instances, all from one model version.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub predictions: Vec<PredictResponse>,
}

/// Answers one checked input and logs it.
fn predict_one(
    state: &AppState,
    model: &ServedModel,
    input: retrain_steps::ml::Input,
) -> Result<PredictResponse, ApiError> {
    let prediction = model
        .classifier
        .predict(&input)
        .map_err(|e| ApiError::bad_request("invalid_input", e.to_string()))?;
    let id = Uuid::now_v7();
    state
        .metrics
        .count_prediction(&model.model, model.version, &prediction.label);
    state.predictions.record(LoggedPrediction {
        id,
        model_id: model.model_id,
        model_version: model.version,
        input,
        label: prediction.label.clone(),
        confidence: prediction.confidence,
        at: Utc::now(),
    });
    Ok(PredictResponse {
        prediction_id: id,
        label: prediction.label,
        confidence: prediction.confidence,
        model: model.model.clone(),
        model_version: model.version,
    })
}

/// Checks the caller's key, if any (and if the route needs one), and charges
/// it for `n` predictions.
async fn admit(state: &AppState, headers: &HeaderMap, model: &str, n: usize) -> Result<(), ApiError> {
    let caller = state
        .access
        .authorize(&state.pool, headers, crate::keys::Scope::Predict, Some(model))
        .await?;
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    state
        .access
        .spend(caller.as_deref(), crate::keys::limits::Spend::Predict(n))
}

/// Classifies one input with `model`'s champion.
async fn predict_with(
    state: &AppState,
    headers: &HeaderMap,
    model: &str,
    request: PredictRequest,
) -> Result<PredictResponse, ApiError> {
    admit(state, headers, model, 1).await?;
    let started = Instant::now();
    let served = served(state, model).await?;
    let input = model_input(&served, request.features, request.text)?;
    let response = predict_one(state, &served, input)?;
    state
        .metrics
        .prediction_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(response)
}

/// Classifies a batch with one version of `model`'s champion; a refused
/// instance refuses the batch and logs nothing.
async fn predict_batch_with(
    state: &AppState,
    headers: &HeaderMap,
    model: &str,
    request: BatchRequest,
) -> Result<BatchResponse, ApiError> {
    admit(state, headers, model, request.instances.len()).await?;
    let started = Instant::now();
    let max = state.limits.batch_max;
    if request.instances.is_empty() || request.instances.len() > max {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("a batch holds 1 to {max} instances, got {}", request.instances.len()),
        ));
    }
    let served = served(state, model).await?;
    let inputs = request
        .instances
        .into_iter()
        .enumerate()
        .map(|(i, instance)| {
            let (features, text) = instance.into_parts();
            model_input(&served, features, text)
                .map_err(|e| ApiError::bad_request(e.code, format!("instance {i}: {}", e.message)))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let predictions = inputs
        .into_iter()
        .map(|input| predict_one(state, &served, input))
        .collect::<Result<Vec<_>, _>>()?;
    state
        .metrics
        .prediction_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(BatchResponse { predictions })
}

/// Classify one input with the default model.
#[utoipa::path(post, path = "/predict", tag = "serving", request_body = PredictRequest,
    security((), ("predict_key" = [])),
    responses(
        (status = 200, body = PredictResponse),
        (status = 401, description = "An unknown or revoked key, or none where predictions need one", body = ErrorBody),
        (status = 403, description = "The key lacks the predict scope or is for another model", body = ErrorBody),
        (status = 429, description = "The key's prediction rate is spent; retry after the Retry-After delay", body = ErrorBody),
        (status = 404, description = "This replica does not serve the default model (RETRAIN_MODELS)", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "The other input kind, wrong features or empty text", body = ErrorBody),
        (status = 503, description = "No version loaded yet", body = ErrorBody),
    ))]
pub async fn predict(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(request): Body<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    let model = state.default_model.clone();
    Ok(Json(predict_with(&state, &headers, &model, request).await?))
}

/// Classify one input with the named model.
#[utoipa::path(post, path = "/models/{name}/predict", tag = "serving", request_body = PredictRequest,
    params(("name" = String, Path, description = "The model's name")),
    security((), ("predict_key" = [])),
    responses(
        (status = 200, body = PredictResponse),
        (status = 401, description = "An unknown or revoked key, or none where predictions need one", body = ErrorBody),
        (status = 403, description = "The key lacks the predict scope or is for another model", body = ErrorBody),
        (status = 429, description = "The key's prediction rate is spent; retry after the Retry-After delay", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such model, or this replica does not serve it", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "The other input kind, wrong features or empty text", body = ErrorBody),
        (status = 503, description = "No version loaded yet", body = ErrorBody),
    ))]
pub async fn predict_named(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
    Body(request): Body<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    Ok(Json(predict_with(&state, &headers, &name, request).await?))
}

/// Classify up to `RETRAIN_BATCH_MAX` inputs with one version of the
/// default model.
#[utoipa::path(post, path = "/predict/batch", tag = "serving", request_body = BatchRequest,
    security((), ("predict_key" = [])),
    responses(
        (status = 200, body = BatchResponse),
        (status = 401, description = "An unknown or revoked key, or none where predictions need one", body = ErrorBody),
        (status = 403, description = "The key lacks the predict scope or is for another model", body = ErrorBody),
        (status = 429, description = "The key's prediction rate is spent; retry after the Retry-After delay", body = ErrorBody),
        (status = 404, description = "This replica does not serve the default model (RETRAIN_MODELS)", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Empty or too large a batch, or an invalid instance", body = ErrorBody),
        (status = 503, description = "No version loaded yet", body = ErrorBody),
    ))]
pub async fn predict_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(request): Body<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let model = state.default_model.clone();
    Ok(Json(predict_batch_with(&state, &headers, &model, request).await?))
}

/// Classify up to `RETRAIN_BATCH_MAX` inputs with one version of the named
/// model.
#[utoipa::path(post, path = "/models/{name}/predict/batch", tag = "serving", request_body = BatchRequest,
    params(("name" = String, Path, description = "The model's name")),
    security((), ("predict_key" = [])),
    responses(
        (status = 200, body = BatchResponse),
        (status = 401, description = "An unknown or revoked key, or none where predictions need one", body = ErrorBody),
        (status = 403, description = "The key lacks the predict scope or is for another model", body = ErrorBody),
        (status = 429, description = "The key's prediction rate is spent; retry after the Retry-After delay", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such model, or this replica does not serve it", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Empty or too large a batch, or an invalid instance", body = ErrorBody),
        (status = 503, description = "No version loaded yet", body = ErrorBody),
    ))]
pub async fn predict_batch_named(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
    Body(request): Body<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    Ok(Json(predict_batch_with(&state, &headers, &name, request).await?))
}
