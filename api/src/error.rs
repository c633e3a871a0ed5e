//! The one error shape every endpoint answers with:
//! `{"error": {"code": "...", "message": "..."}}`, with a stable
//! machine-readable code. Internal details are logged, never sent.

use crate::routes::request_id;
use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use retrain_engine::EngineError;
use retrain_steps::StepsError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable identifier, e.g. `invalid_features`, `not_found`, `unauthorized`.
    pub code: &'static str,
    pub message: String,
}

/// An error an endpoint returns.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds a client should wait before retrying (503s).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// A fault of ours: logged in full, answered with a generic message.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(request_id = %request_id::current(), error = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(request_id = %request_id::current(), status = %self.status, code = self.code,
                message = %self.message, "request failed");
        } else {
            tracing::debug!(request_id = %request_id::current(), status = %self.status, code = self.code,
                message = %self.message, "request refused");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, code) = match rejection {
            JsonRejection::BytesRejection(bytes) => return bytes.into(),
            JsonRejection::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            _ => (StatusCode::BAD_REQUEST, "invalid_body"),
        };
        Self::new(status, code, rejection.body_text())
    }
}

/// Reading the body failed: too large (413), stalled past the server's body
/// read timeout (408), or the client went wrong mid-body (400).
impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
        while let Some(err) = source {
            if err.is::<tower_http::timeout::TimeoutError>() {
                return Self::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body stalled; send it without pausing",
                );
            }
            source = err.source();
        }
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", rejection.body_text());
        }
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", rejection.body_text())
    }
}

impl ApiError {
    /// Database trouble is the database being away far more often than a bug:
    /// answer 503 with Retry-After so clients back off and retry.
    pub fn from_database_error(err: &sqlx::Error) -> ApiError {
        if is_database_away(err) {
            tracing::warn!(request_id = %request_id::current(), error = %err, "database unavailable");
            return ApiError::unavailable("the database is unavailable; retry shortly");
        }
        if is_server_timeout(err) {
            tracing::warn!(request_id = %request_id::current(), error = %err, "database statement timed out");
            return ApiError::unavailable("the database is busy; retry shortly");
        }
        ApiError::internal(err)
    }
}

/// The database is away or going away, rather than refusing this request
/// (see [`retrain_engine::database_unavailable`]), or this process's pool is
/// closing.
pub fn is_database_away(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::PoolClosed) || retrain_engine::database_unavailable(err)
}

/// The server cancelled the statement: it ran past `statement_timeout`
/// (57014) or waited past `lock_timeout` (55P03). Nothing was stored, and a
/// retry may well pass once the contention is gone.
fn is_server_timeout(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|code| matches!(code.as_ref(), "57014" | "55P03")))
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_database_error(&err)
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Database(e) => Self::from_database_error(&e),
            EngineError::RunNotFound(id) => Self::not_found(format!("no run {id}")),
            EngineError::UnknownPipeline(name) => Self::not_found(format!("no pipeline {name:?}")),
            e @ EngineError::InvalidState { .. } => Self::conflict("invalid_state", e.to_string()),
            e @ EngineError::ActiveRunExists { .. } => Self::conflict("run_active", e.to_string()),
            e @ EngineError::LeaseLost { .. } => Self::internal(&e),
        }
    }
}

impl From<StepsError> for ApiError {
    fn from(err: StepsError) -> Self {
        match err {
            StepsError::Database(e) => Self::from_database_error(&e),
            StepsError::VersionNotFound(version) => Self::not_found(format!("no model version {version}")),
            StepsError::UnknownModel(name) => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_model",
                format!("there is no model named {name:?}"),
            ),
            e @ StepsError::ModelExists(_) => Self::conflict("model_exists", e.to_string()),
            e @ StepsError::AlreadyChampion(_) => Self::conflict("already_champion", e.to_string()),
            other => Self::internal(&other),
        }
    }
}
