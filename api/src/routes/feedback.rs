//! `POST /feedback`: a user's correct label for an input, answered only after
//! the row is committed (group commit). Feedback citing a logged prediction
//! is checked against it. A cited prediction that is not in the log yet
//! (another replica served it and has not written it, the log lost it, or
//! retention dropped its day) is no reason to refuse: a pruned id and one
//! never logged read the same, and the row is stored with the prediction id and
//! links to the prediction by that id once it lands (`feedback_links`).
//!
//! The row's `source`, which quarantine and screening go by, is the sending
//! key's name, set here; the body's `source` is kept as the row's
//! `sub_label`, the client's own bookkeeping, and never identifies anyone.

use super::input::{Body, FeaturesValue, LabelValue, PathParam, check_label, check_text, model_input, served};
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::{self, Claim, KeyHeader, Scope, Stored};
use crate::keys::limits::Spend;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use retrain_steps::ml::Input;
use retrain_steps::store::datasets::stored_input;
use retrain_steps::store::feedback::NewFeedback;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The correct label for an input, optionally citing the prediction it corrects.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// A tabular model's input, as sent to `POST /predict`.
    pub features: Option<FeaturesValue>,
    /// A text model's input, as sent to `POST /predict`.
    pub text: Option<String>,
    /// The class the input should have had (a JSON integer means its
    /// decimal string).
    pub correct_label: LabelValue,
    /// The `prediction_id` of the prediction this corrects, if any. Checked
    /// against the prediction log when the prediction is in it; else stored
    /// as given, and linked once the prediction is logged.
    pub prediction_id: Option<Uuid>,
    /// The class that was predicted, if known.
    pub predicted_label: Option<LabelValue>,
    /// A label of the client's own (an app, a team), stored verbatim as the
    /// row's `sub_label`: 1 to 200 characters, no control characters but
    /// newline and tab. Not the row's source: that is the key's name.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$")]
    pub source: Option<String>,
}

/// The stored row's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackResponse {
    pub feedback_id: i64,
}

struct LoggedPrediction {
    model_id: i32,
    model_version: i32,
    input: Input,
    label: String,
}

/// Store one piece of feedback for the default model.
///
/// With an `Idempotency-Key`, a retry gets the first answer (same status and
/// body, header `Idempotent-Replayed: true`) and stores nothing new.
#[utoipa::path(post, path = "/feedback", tag = "feedback", request_body = FeedbackRequest,
    params(super::docs::IdempotencyKeyParam),
    security(("feedback_key" = [])),
    responses(
        (status = 201, body = FeedbackResponse, description = "Committed (or, for a retried Idempotency-Key, the first answer)"),
        (status = 401, description = "No key, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The key lacks the feedback scope or is for another model", body = ErrorBody),
        (status = 429, description = "The key's rate or hourly cap is spent; retry after the Retry-After delay", body = ErrorBody),
        (status = 404, description = "This replica does not serve the default model (RETRAIN_MODELS)", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 409, description = "Idempotency-Key already used for another request", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid features, unknown label, invalid source or Idempotency-Key, or a logged prediction that does not match", body = ErrorBody),
        (status = 503, description = "Database unavailable or no model loaded; retry after the Retry-After delay", body = ErrorBody),
    ))]
pub async fn feedback(
    State(state): State<AppState>,
    headers: HeaderMap,
    key: KeyHeader,
    Body(request): Body<FeedbackRequest>,
) -> Result<Response, ApiError> {
    let model = state.default_model.clone();
    feedback_for(&state, &model, &headers, key, request).await
}

/// Store one piece of feedback for the named model.
///
/// With an `Idempotency-Key`, a retry gets the first answer (same status and
/// body, header `Idempotent-Replayed: true`) and stores nothing new.
#[utoipa::path(post, path = "/models/{name}/feedback", tag = "feedback", request_body = FeedbackRequest,
    params(("name" = String, Path, description = "The model's name"), super::docs::IdempotencyKeyParam),
    security(("feedback_key" = [])),
    responses(
        (status = 201, body = FeedbackResponse, description = "Committed (or, for a retried Idempotency-Key, the first answer)"),
        (status = 401, description = "No key, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The key lacks the feedback scope or is for another model", body = ErrorBody),
        (status = 429, description = "The key's rate or hourly cap is spent; retry after the Retry-After delay", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such model, or this replica does not serve it", body = ErrorBody),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 409, description = "Idempotency-Key already used for another request", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "The other input kind, invalid features or text, unknown label, invalid source or Idempotency-Key, or a logged prediction that does not match", body = ErrorBody),
        (status = 503, description = "Database unavailable or no version loaded; retry after the Retry-After delay", body = ErrorBody),
    ))]
pub async fn feedback_named(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
    key: KeyHeader,
    Body(request): Body<FeedbackRequest>,
) -> Result<Response, ApiError> {
    feedback_for(&state, &name, &headers, key, request).await
}

async fn feedback_for(
    state: &AppState,
    model: &str,
    headers: &HeaderMap,
    KeyHeader(key): KeyHeader,
    request: FeedbackRequest,
) -> Result<Response, ApiError> {
    let caller = state
        .access
        .authorize(&state.pool, headers, crate::keys::Scope::Feedback, Some(model))
        .await?;
    let source = caller.as_ref().map_or(crate::keys::ANONYMOUS, |c| &*c.name);
    // The key covers the model and the sender too: the same body for two
    // models, or from two clients, is two requests.
    let claim = key.map(|key| Claim::new(key, &(model, source, &request)));
    if let Some(claim) = &claim {
        // A retry answers from the key even if the request would not pass now.
        let mut conn = state.pool.acquire().await?;
        if let Some(replay) = idempotency::lookup(&mut conn, Scope::Feedback, claim).await? {
            return Ok(replay.into_response());
        }
    }
    let served = served(state, model).await?;
    let input = model_input(&served, request.features, request.text)?;
    let correct_label = request.correct_label.into_name();
    check_label(&correct_label, &served, "correct_label")?;
    let claimed_label = request.predicted_label.map(LabelValue::into_name);
    if let Some(predicted) = &claimed_label {
        check_label(predicted, &served, "predicted_label")?;
    }
    if let Some(source) = &request.source {
        check_text(source, "source", 200, "invalid_source")?;
    }
    let (predicted_label, model_version) = match request.prediction_id {
        Some(id) => match find_prediction(state, id).await? {
            Some(logged) => {
                if logged.model_id != served.model_id {
                    return Err(ApiError::bad_request(
                        "prediction_mismatch",
                        format!("prediction {id} was made by another model"),
                    ));
                }
                if logged.input != input {
                    return Err(ApiError::bad_request(
                        "prediction_mismatch",
                        format!("prediction {id} was made for another input"),
                    ));
                }
                if claimed_label.as_ref().is_some_and(|p| *p != logged.label) {
                    return Err(ApiError::bad_request(
                        "prediction_mismatch",
                        format!("prediction {id} predicted {:?}, not {:?}", logged.label, claimed_label),
                    ));
                }
                (Some(logged.label), Some(logged.model_version))
            }
            // Unchecked for now: stored as the client says, without a model version.
            None => (claimed_label, None),
        },
        None => (claimed_label, None),
    };
    let unlinked = request.prediction_id.is_some() && model_version.is_none();
    let verdict = match &predicted_label {
        Some(p) if *p == correct_label => "correct",
        Some(_) => "incorrect",
        None => "unknown",
    };
    let row = NewFeedback {
        model_id: served.model_id,
        input,
        correct_label,
        prediction_id: request.prediction_id,
        predicted_label,
        model_version,
        source: Some(source.to_owned()),
        sub_label: request.source,
    };
    state.access.spend(caller.as_deref(), Spend::Feedback)?;
    let id = match claim {
        None => state.feedback.store(row).await?,
        Some(claim) => match state.feedback.store_keyed(row, claim).await? {
            Stored::New(id) => id,
            Stored::Replay(replay) => return Ok(replay.into_response()),
        },
    };
    state.metrics.feedback.with_label_values(&[model, verdict]).inc();
    if unlinked {
        state.metrics.feedback_unlinked.with_label_values(&[model]).inc();
    }
    Ok((StatusCode::CREATED, Json(FeedbackResponse { feedback_id: id })).into_response())
}

/// The logged prediction, if it is in the log. The log is written in
/// batches, so a miss waits for this replica's log to flush and looks again;
/// another replica's rows may still be on their way.
async fn find_prediction(state: &AppState, id: Uuid) -> Result<Option<LoggedPrediction>, ApiError> {
    for flushed in [false, true] {
        if flushed {
            state.predictions.flush().await;
        }
        let found: Option<(i32, i32, Option<Vec<f64>>, Option<String>, String)> =
            sqlx::query_as(crate::predlog::FIND_BY_ID)
                .bind(id)
                .fetch_optional(&state.pool)
                .await?;
        if let Some((model_id, model_version, features, text, label)) = found {
            return Ok(Some(LoggedPrediction {
                model_id,
                model_version,
                input: stored_input(features, text)?,
                label,
            }));
        }
    }
    Ok(None)
}
