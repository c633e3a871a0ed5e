//! Parsing request bodies into values that cannot be invalid: JSON with our
//! error shape, and model inputs checked against the served model.

use crate::error::ApiError;
use crate::serving::ServedModel;
use axum::extract::{FromRequest, FromRequestParts};
use retrain_steps::ml::{Input, InputKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

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
    let essence = media_type(headers);
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The Content-Type's media type, lower case, without parameters (empty if
/// none).
pub fn media_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
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

/// Tabular input as a request sends it: values in the model's column order,
/// or by column name.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(
    untagged,
    expecting = "an array of numbers in the model's column order, or an object of column name to number"
)]
pub enum FeaturesValue {
    /// `[7.4, 0.7, ...]`, in the model's column order.
    Ordered(Vec<f64>),
    /// `{"alcohol": 9.4, ...}`, every column by name.
    Named(BTreeMap<String, f64>),
}

/// A class name as a request sends it: a string, or a JSON integer meaning
/// its decimal string (so `"correct_label": 5` names class `"5"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(untagged, expecting = "a class name: a string, or an integer")]
pub enum LabelValue {
    Name(String),
    Integer(i64),
}

impl LabelValue {
    /// The class name.
    pub fn into_name(self) -> String {
        match self {
            LabelValue::Name(name) => name,
            LabelValue::Integer(integer) => integer.to_string(),
        }
    }
}

/// The input a request gives (`features` or `text`), checked against the
/// model: the input kind it reads, its columns, finite numbers, non-empty
/// text.
///
/// # Errors
/// 422 `wrong_input` for the other kind or neither; 422 `invalid_features`
/// or `invalid_text` for a bad value.
pub fn model_input(
    model: &ServedModel,
    features: Option<FeaturesValue>,
    text: Option<String>,
) -> Result<Input, ApiError> {
    match (model.input_kind, features, text) {
        (InputKind::Tabular, Some(features), None) => {
            let features = ordered(model, features)?;
            check_features(&features, model)?;
            Ok(Input::Tabular(features))
        }
        (InputKind::Text, None, Some(text)) => {
            if text.trim().is_empty() {
                return Err(ApiError::bad_request("invalid_text", "text must not be empty"));
            }
            Ok(Input::Text(text))
        }
        (InputKind::Tabular, ..) => Err(ApiError::bad_request(
            "wrong_input",
            format!(
                "model {:?} is tabular: send \"features\" ({} numbers, or an object of {}), not \"text\"",
                model.model,
                model.feature_names.len(),
                model.feature_names.join(", ")
            ),
        )),
        (InputKind::Text, ..) => Err(ApiError::bad_request(
            "wrong_input",
            format!("model {:?} reads text: send \"text\", not \"features\"", model.model),
        )),
    }
}

/// Features in the model's column order.
fn ordered(model: &ServedModel, features: FeaturesValue) -> Result<Vec<f64>, ApiError> {
    match features {
        FeaturesValue::Ordered(values) => Ok(values),
        FeaturesValue::Named(mut named) => {
            let values = model
                .feature_names
                .iter()
                .map(|name| {
                    named.remove(name).ok_or_else(|| {
                        ApiError::bad_request("invalid_features", format!("feature {name:?} is missing"))
                    })
                })
                .collect::<Result<Vec<f64>, ApiError>>()?;
            if let Some(unknown) = named.keys().next() {
                return Err(ApiError::bad_request(
                    "invalid_features",
                    format!("model {:?} has no feature {unknown:?}", model.model),
                ));
            }
            Ok(values)
        }
    }
}

/// Checks tabular features: the model's width, finite numbers only.
///
/// # Errors
/// 422 `invalid_features`.
pub fn check_features(features: &[f64], model: &ServedModel) -> Result<(), ApiError> {
    let expected = model.feature_names.len();
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

/// Checks a class name against the model's classes.
///
/// # Errors
/// 422 `unknown_label`.
pub fn check_label(label: &str, model: &ServedModel, field: &str) -> Result<(), ApiError> {
    if model.labels.iter().any(|l| l == label) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "unknown_label",
        format!(
            "{field} {label:?} is not one of the classes {:?} of model {:?}",
            model.labels, model.model
        ),
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

/// The version of `model` serving now: 404 for a model this service does
/// not have, 503 while its champion is not loaded.
///
/// # Errors
/// 404 `unknown_model`; 503 `unavailable`; 503 if the registry cannot be read.
pub async fn served(state: &crate::state::AppState, model: &str) -> Result<std::sync::Arc<ServedModel>, ApiError> {
    if let Some(served) = state.serving.current(model) {
        return Ok(served);
    }
    if !state.serves.serves(model) {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_served",
            format!("this replica does not serve model {model:?} (RETRAIN_MODELS)"),
        ));
    }
    let mut conn = state.pool.acquire().await?;
    match retrain_steps::store::models::by_name(&mut conn, model).await {
        Ok(_) => Err(ApiError::unavailable(format!(
            "model {model:?} has no version loaded yet; retry shortly"
        ))),
        Err(other) => Err(other.into()),
    }
}
