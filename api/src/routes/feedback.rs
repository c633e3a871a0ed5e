//! `POST /feedback`: a user's correct label for an input, answered only after
//! the row is committed (group commit). Feedback citing a logged prediction
//! is checked against it. A cited prediction that is not in the log yet
//! (another replica served it and has not written it, or the log lost it)
//! is no reason to refuse: the row is stored with the prediction id and
//! links to the prediction by that id once it lands (`feedback_links`).

use super::input::{Body, check_features, check_label, check_text, served};
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::{self, Claim, KeyHeader, Scope, Stored};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use retrain_steps::store::feedback::NewFeedback;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The correct label for an input, optionally citing the prediction it corrects.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The input, as sent to `POST /predict`.
    pub features: Vec<f64>,
    /// The label the input should have had.
    pub correct_label: i32,
    /// The `prediction_id` of the prediction this corrects, if any. Checked
    /// against the prediction log when the prediction is in it; else stored
    /// as given, and linked once the prediction is logged.
    pub prediction_id: Option<Uuid>,
    /// The label that was predicted, if known.
    pub predicted_label: Option<i32>,
    /// Who or what sent it (an app, a team), for audit and quarantine: 1 to 200
    /// characters, no control characters but newline and tab; stored verbatim.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$")]
    pub source: Option<String>,
}

/// The stored row's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackResponse {
    pub feedback_id: i64,
}

#[derive(sqlx::FromRow)]
struct LoggedPrediction {
    model_version: i32,
    features: Vec<f64>,
    label: i32,
}

/// Store one piece of feedback.
///
/// With an `Idempotency-Key`, a retry gets the first answer (same status and
/// body, header `Idempotent-Replayed: true`) and stores nothing new.
#[utoipa::path(post, path = "/feedback", tag = "feedback", request_body = FeedbackRequest,
    params(super::docs::IdempotencyKeyParam),
    responses(
        (status = 201, body = FeedbackResponse, description = "Committed (or, for a retried Idempotency-Key, the first answer)"),
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
    KeyHeader(key): KeyHeader,
    Body(request): Body<FeedbackRequest>,
) -> Result<Response, ApiError> {
    let claim = key.map(|key| Claim::new(key, &request));
    if let Some(claim) = &claim {
        // A retry answers from the key even if the request would not pass now.
        let mut conn = state.pool.acquire().await?;
        if let Some(replay) = idempotency::lookup(&mut conn, Scope::Feedback, claim).await? {
            return Ok(replay.into_response());
        }
    }
    let model = served(&state)?;
    check_features(&request.features, &model)?;
    check_label(request.correct_label, &model, "correct_label")?;
    if let Some(predicted) = request.predicted_label {
        check_label(predicted, &model, "predicted_label")?;
    }
    if let Some(source) = &request.source {
        check_text(source, "source", 200, "invalid_source")?;
    }
    let (predicted_label, model_version) = match request.prediction_id {
        Some(id) => match find_prediction(&state, id).await? {
            Some(logged) => {
                if logged.features != request.features {
                    return Err(ApiError::bad_request(
                        "prediction_mismatch",
                        format!("prediction {id} was made for other features"),
                    ));
                }
                if request.predicted_label.is_some_and(|p| p != logged.label) {
                    return Err(ApiError::bad_request(
                        "prediction_mismatch",
                        format!(
                            "prediction {id} predicted {}, not {:?}",
                            logged.label, request.predicted_label
                        ),
                    ));
                }
                (Some(logged.label), Some(logged.model_version))
            }
            // Unchecked for now: stored as the client says, without a model version.
            None => (request.predicted_label, None),
        },
        None => (request.predicted_label, None),
    };
    let unlinked = request.prediction_id.is_some() && model_version.is_none();
    let verdict = match predicted_label {
        Some(p) if p == request.correct_label => "correct",
        Some(_) => "incorrect",
        None => "unknown",
    };
    let row = NewFeedback {
        features: request.features,
        correct_label: request.correct_label,
        prediction_id: request.prediction_id,
        predicted_label,
        model_version,
        source: request.source,
    };
    let id = match claim {
        None => state.feedback.store(row).await?,
        Some(claim) => match state.feedback.store_keyed(row, claim).await? {
            Stored::New(id) => id,
            Stored::Replay(replay) => return Ok(replay.into_response()),
        },
    };
    state.metrics.feedback.with_label_values(&[verdict]).inc();
    if unlinked {
        state.metrics.feedback_unlinked.inc();
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
        let found: Option<LoggedPrediction> =
            sqlx::query_as("SELECT model_version, features, label FROM predictions WHERE id = $1")
                .bind(id)
                .fetch_optional(&state.pool)
                .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
