//! The model registry over HTTP: every model with its champion, one model's
//! settings and their change, and what a replica serves for the default
//! model.

use super::input::{Body, PathParam, QueryParams, served};
use super::page::{self, Page, PageQuery};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use retrain_steps::ml::{InputKind, Learner};
use retrain_steps::store::models::{self, GateSettings, ModelSpec, Settings};
use retrain_steps::store::{feedback, promotions};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The version of a model this replica serves.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    /// The model's name.
    pub model: String,
    pub input_kind: InputKind,
    pub version: i32,
    /// The version's id.
    pub model_id: i64,
    /// The learner that trained it.
    pub kind: String,
    pub sha256: String,
    pub promoted_at: DateTime<Utc>,
    pub loaded_at: DateTime<Utc>,
    pub golden_accuracy: Option<f64>,
    pub training_rows: i64,
}

/// A registered model and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelSummary {
    pub name: String,
    pub kind: InputKind,
    /// Tabular models: the columns, in the order `features` lists them.
    pub feature_names: Vec<String>,
    /// Text models: the text field of the model's data files.
    pub text_column: Option<String>,
    pub classes: Vec<String>,
    pub learner: Learner,
    /// The version serving now, if any.
    pub champion_version: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// A model with its settings and the feedback waiting for its next run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub summary: ModelSummary,
    /// The gate's settings for this model (`{}`: the service's).
    pub gate: serde_json::Value,
    /// New feedback rows that start a run (`null`: the service's).
    pub threshold: Option<i32>,
    /// The model's own schedule: a 6-field cron expression (seconds first, UTC).
    pub cron: Option<String>,
    /// Feedback rows that count and wait for the next run.
    pub feedback_waiting: i64,
}

async fn summary(conn: &mut sqlx::PgConnection, spec: ModelSpec) -> Result<ModelSummary, ApiError> {
    let champion = promotions::champion(conn, spec.id).await?;
    Ok(ModelSummary {
        name: spec.name,
        kind: spec.kind,
        feature_names: spec.feature_names,
        text_column: spec.text_column,
        classes: spec.classes,
        learner: spec.learner.0,
        champion_version: champion.map(|(_, version)| version),
        created_at: spec.created_at,
    })
}

/// The version of the default model serving on this replica.
#[utoipa::path(get, path = "/model/info", tag = "models",
    responses((status = 200, body = ModelInfo), (status = 503, description = "No version loaded yet", body = ErrorBody),
              (status = 404, description = "This replica does not serve the default model (RETRAIN_MODELS)", body = ErrorBody)))]
pub async fn info(State(state): State<AppState>) -> Result<Json<ModelInfo>, ApiError> {
    let model = served(&state, &state.default_model).await?;
    Ok(Json(ModelInfo {
        model: model.model.clone(),
        input_kind: model.input_kind,
        version: model.version,
        model_id: model.version_id,
        kind: model.kind.clone(),
        sha256: model.sha256.clone(),
        promoted_at: model.promoted_at,
        loaded_at: model.loaded_at,
        golden_accuracy: model.golden_accuracy,
        training_rows: model.training_rows,
    }))
}

/// Models by name, a page at a time (see the `Link` header).
#[utoipa::path(get, path = "/models", tag = "models", params(PageQuery),
    responses((status = 200, body = Vec<ModelSummary>, headers(("Link" = String, description = "`<URL>; rel=\"next\"`: the next page, if any"))),
              (status = 400, description = "Invalid limit or cursor (a model name)", body = ErrorBody),
              (status = 503, description = "Database unavailable", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    uri: Uri,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = Page::<String>::of(query.limit, query.after.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let mut out = Vec::new();
    for spec in models::page(&mut conn, page.after.as_deref(), page.fetch()).await? {
        out.push(summary(&mut conn, spec).await?);
    }
    Ok(page::answer(&page, out, &uri, |model| model.name.clone()))
}

/// One model: its input, classes, learner, gate, threshold and champion.
#[utoipa::path(get, path = "/models/{name}", tag = "models",
    params(("name" = String, Path, description = "The model's name")),
    responses((status = 200, body = ModelDetail), (status = 404, description = "No such model", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> Result<Json<ModelDetail>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let spec = models::by_name(&mut conn, &name).await?;
    Ok(Json(detail(&mut conn, spec).await?))
}

/// A model with its settings and waiting feedback, as the routes answer it.
pub(crate) async fn detail(conn: &mut sqlx::PgConnection, spec: ModelSpec) -> Result<ModelDetail, ApiError> {
    let (gate, threshold, cron, id) = (spec.gate.clone(), spec.threshold, spec.cron.clone(), spec.id);
    let feedback_waiting = feedback::waiting(conn, id).await?;
    Ok(ModelDetail {
        summary: summary(conn, spec).await?,
        gate,
        threshold,
        cron,
        feedback_waiting,
    })
}

/// A change of a model's settings; an absent field keeps its value, `null`
/// returns a threshold or cron to the service's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelChange {
    /// New feedback rows that start a run (at least 1; `null`: the service's).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub threshold: Option<Option<i32>>,
    /// A 6-field cron expression (seconds first, UTC) for the model's runs (`null`: none).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub cron: Option<Option<String>>,
    /// The model's own gate settings, replacing the ones it has (`{}`: the service's).
    pub gate: Option<GateSettings>,
    /// The learner that trains the model's next versions, with its settings
    /// over the learner's defaults, e.g. `{"name": "random_forest",
    /// "settings": {"trees": 300}}`.
    pub learner: Option<LearnerChoice>,
}

/// A learner by name, with the settings that differ from its defaults.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnerChoice {
    /// `auto`, `decision_tree`, `random_forest`, `logistic_regression`
    /// (tabular), `naive_bayes` or `text_linear` (text).
    pub name: String,
    /// The settings to change, e.g. `{"trees": 300}` (the learner's
    /// defaults if absent).
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// A field that is present, `null` or not.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Change a model's threshold, cron, gate settings or learner.
#[utoipa::path(patch, path = "/models/{name}", tag = "models", request_body = ModelChange,
    params(("name" = String, Path, description = "The model's name")),
    security(("admin_token" = [])),
    responses((status = 200, body = ModelDetail), (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 422, description = "A setting out of range, not a cron expression, or a learner that does not read the model's input", body = ErrorBody)))]
pub async fn change(
    State(state): State<AppState>,
    admin: Admin,
    PathParam(name): PathParam<String>,
    Body(change): Body<ModelChange>,
) -> Result<Json<ModelDetail>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let spec = models::by_name(&mut conn, &name).await?;
    let threshold = change.threshold.unwrap_or(spec.threshold);
    let cron = change.cron.unwrap_or_else(|| spec.cron.clone());
    let gate: GateSettings = match change.gate {
        Some(gate) => gate,
        None => serde_json::from_value(spec.gate.clone()).unwrap_or_default(),
    };
    let invalid = |message: String| ApiError::bad_request("invalid_settings", message);
    if threshold.is_some_and(|t| t < 1) {
        return Err(invalid("threshold is at least 1".into()));
    }
    if let Some(problem) = cron.as_deref().and_then(retrain_steps::triggers::cron_problem) {
        return Err(invalid(problem));
    }
    if let Some(problem) = gate.problem() {
        return Err(invalid(problem.into()));
    }
    let learner = match change.learner {
        Some(choice) => Learner::parse(&choice.name, choice.settings).map_err(|e| invalid(e.to_string()))?,
        None => spec.learner.0.clone(),
    };
    if !learner.reads(spec.kind) {
        return Err(invalid(format!(
            "the learner {} does not read {} input",
            learner.name(),
            spec.kind
        )));
    }
    let settings = Settings {
        threshold,
        cron: cron.as_deref(),
        gate: &gate,
        learner: &learner,
    };
    let spec = models::set_settings(&mut conn, spec.id, settings).await?;
    tracing::info!(model = %name, actor = %admin.actor, "model settings changed");
    Ok(Json(detail(&mut conn, spec).await?))
}
