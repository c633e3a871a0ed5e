//! Parsing request bodies into values that cannot be invalid: JSON with our
//! error shape, and model inputs checked against the served model.

use crate::error::ApiError;
use crate::serving::ServedModel;
use axum::extract::{FromRequest, FromRequestParts};

/// A JSON object body (`application/json`), refused in the API's error
/// shape: 415 for another content type, 400 for malformed JSON, 413 past the
/// body limit, 408 if it stalls, 422 for anything but an object of the
/// expected shape. (serde would also take a struct as a JSON array; the
/// documented shape is an object, so only an object is taken.)
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(not_json());
        }
        let bytes = axum::body::Bytes::from_request(request, state).await?;
        Ok(Self(object(&bytes)?))
    }
}

/// A JSON body that may be absent (an empty body, or `null`); present, it
/// is checked like [`Body`].
#[derive(Debug)]
pub struct OptionalBody<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(request.headers());
        let bytes = axum::body::Bytes::from_request(request, state).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !is_json {
            return Err(not_json());
        }
        if bytes.trim_ascii() == b"null" {
            return Ok(Self(None));
        }
        Ok(Self(Some(object(&bytes)?)))
    }
}

/// `application/json` or `application/<anything>+json`, parameters aside.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn not_json() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as application/json",
    )
}

/// Parses a JSON object into `T`.
fn object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let axum::Json(value) = axum::Json::<T>::from_bytes(bytes)?;
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request("invalid_body", "the body must be a JSON object"));
    }
    Ok(value)
}

/// `axum::extract::Path` whose rejections answer in the API's error shape.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParam<T>(pub T);

/// `axum::extract::Query` whose rejections answer in the API's error shape.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

/// Checks a model input: the served model's width, finite numbers only.
///
/// # Errors
/// 422 `invalid_features`.
pub fn check_features(features: &[f64], model: &ServedModel) -> Result<(), ApiError> {
    let expected = model.model.n_features();
    if features.len() != expected {
        return Err(ApiError::bad_request(
            "invalid_features",
            format!("expected {expected} features, got {}", features.len()),
        ));
    }
    if let Some(i) = features.iter().position(|x| !x.is_finite()) {
        return Err(ApiError::bad_request(
            "invalid_features",
            format!("feature {i} is not a finite number"),
        ));
    }
    Ok(())
}

/// Checks a label against the data set's classes.
///
/// # Errors
/// 422 `unknown_label`.
pub fn check_label(label: i32, model: &ServedModel, field: &str) -> Result<(), ApiError> {
    if model.labels.contains(&label) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "unknown_label",
        format!("{field} {label} is not one of the known labels {:?}", model.labels),
    ))
}

/// Checks free text stored for audit: bounded length, no control characters.
///
/// # Errors
/// 422 with `code`.
pub fn check_text(text: &str, field: &str, max_chars: usize, code: &'static str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(code, format!("{field} must not be empty")));
    }
    if text.chars().count() > max_chars {
        return Err(ApiError::bad_request(
            code,
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ApiError::bad_request(
            code,
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}

/// The model serving now, or 503 while none is loaded.
///
/// # Errors
/// 503 `unavailable`.
pub fn served(state: &crate::state::AppState) -> Result<std::sync::Arc<ServedModel>, ApiError> {
    state
        .serving
        .current()
        .ok_or_else(|| ApiError::unavailable("no model is loaded yet; retry shortly"))
}
