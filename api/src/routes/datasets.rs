//! A model's data over HTTP: `POST /models` creates a model from its first
//! file and `POST /models/{name}/datasets` adds a data set version. Both
//! take the file as the request body (CSV or JSON lines; with the golden set
//! as a second file, `multipart/form-data` with the parts `data` and
//! `golden`), stream it into one transaction (nothing is half-imported), and
//! start a run that trains, validates and promotes on it.

use super::input::{PathParam, QueryParams, media_type};
use super::upload_parts;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use retrain_engine::{NewRun, Run, TriggerKind};
use retrain_steps::PIPELINE;
use retrain_steps::data::{
    DEFAULT_LABEL_COLUMN, DEFAULT_TEXT_COLUMN, Format, GoldenShare, ImportError, ImportSpec, InputColumns,
};
use retrain_steps::import::{self, GoldenSource, ImportFailure, Imported, NewModelFromFile, Upload};
use retrain_steps::ml::{InputKind, Learner};
use retrain_steps::pipeline::run_params;
use retrain_steps::store::models;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio_util::io::{StreamReader, SyncIoBridge};
use utoipa::{IntoParams, ToSchema};

/// How to read the uploaded file, and (creating a model) what the model is.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Creating: the model's name (lower case letters, digits, `._-`).
    pub name: Option<String>,
    /// Creating: `tabular` (named numeric columns) or `text` (one text column).
    pub kind: Option<InputKind>,
    /// Creating: `auto` (the default: chosen by cross-validation), `decision_tree`, `random_forest`,
    /// `logistic_regression` (tabular), `naive_bayes` or `text_linear` (text).
    pub learner: Option<String>,
    /// Creating: the learner's settings as a JSON object, over its defaults (e.g. `{"trees":300}`).
    pub learner_settings: Option<String>,
    /// Creating: new feedback rows that start a run (the service's setting if absent).
    pub threshold: Option<i32>,
    /// Creating: a 6-field cron expression (seconds first, UTC) on which the model's runs start.
    pub cron: Option<String>,
    /// `csv` or `jsonl`; from the Content-Type if absent (`text/csv`, `application/x-ndjson`).
    pub format: Option<String>,
    /// Where the rows come from, recorded with the data set (`upload` if absent; the CLI sends the file name).
    pub source: Option<String>,
    /// The label column (`label` if absent).
    pub label: Option<String>,
    /// Text models: the text column (`text` if absent).
    pub text: Option<String>,
    /// Tabular models: the feature columns, comma-separated, in order (every column but the label if absent).
    pub features: Option<String>,
    /// The share of rows, chosen by a hash of each row's input, held out as the golden set (0.2 if absent).
    pub golden_share: Option<f64>,
}

/// Rows of one class in each part.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClassRows {
    pub base: u64,
    pub golden: u64,
}

/// What was imported, and the run that trains on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResponse {
    pub model: String,
    pub kind: InputKind,
    pub dataset_version: i32,
    /// Tabular models: the feature columns, in order.
    pub feature_names: Vec<String>,
    /// Rows per class: `base` trains, `golden` only validates.
    pub classes: BTreeMap<String, ClassRows>,
    /// The run that trains, validates and promotes on the new data.
    pub run: Run,
}

/// Create a model from its first data file (the request body), and start the
/// run that trains, validates and promotes its version 1; or, with no body,
/// register it empty (answering the model) for `POST /models/{name}/datasets`.
#[utoipa::path(post, path = "/models", tag = "models", params(ImportQuery),
    request_body(content = String, description = "The data: CSV with a header row, or JSON lines", content_type = "text/csv"),
    security(("admin_token" = [])),
    responses((status = 201, body = ImportResponse, description = "Imported; the run is queued (with no body: the model, registered empty)"),
              (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
              (status = 409, description = "A model with that name exists", body = ErrorBody),
              (status = 413, description = "The file is over the size limit", body = ErrorBody),
              (status = 422, description = "A bad file (the message names the line and column) or bad settings", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    QueryParams(query): QueryParams<ImportQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let name = query
        .name
        .clone()
        .ok_or_else(|| invalid("give the model's name: ?name=..."))?;
    let kind = query
        .kind
        .ok_or_else(|| invalid("give the model's kind: ?kind=tabular or ?kind=text"))?;
    if let Some(problem) = models::name_problem(&name) {
        return Err(invalid(problem));
    }
    let learner = match (&query.learner, &query.learner_settings) {
        (None, None) => None,
        (None, Some(_)) => return Err(invalid("learner_settings needs a learner: ?learner=...")),
        (Some(learner), settings) => {
            let settings = settings
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| invalid(format!("learner_settings is not JSON: {e}")))?;
            Some(Learner::parse(learner, settings).map_err(|e| invalid(e.to_string()))?)
        }
    };
    if query.threshold.is_some_and(|t| t < 1) {
        return Err(invalid("threshold must be at least 1"));
    }
    if let Some(problem) = query.cron.as_deref().and_then(retrain_steps::triggers::cron_problem) {
        return Err(invalid(problem));
    }
    if is_empty(&request) {
        return create_empty(&state, &admin, &query, name, kind, learner).await;
    }
    let upload = upload(&query, kind, request).await?;
    let new = NewModelFromFile {
        name: &name,
        kind,
        learner,
        threshold: query.threshold,
        cron: query.cron.as_deref(),
    };
    let imported = import::create_model(&state.pool, new, upload, progress(name.clone()))
        .await
        .map_err(refusal)?;
    Ok(answer(&state, &admin, imported).await?.into_response())
}

/// A request without a body (no Content-Type, no length): the model is
/// registered empty, and its data comes later through
/// `POST /models/{name}/datasets`.
fn is_empty(request: &Request) -> bool {
    let headers = request.headers();
    headers.get(header::CONTENT_TYPE).is_none()
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0")
}

/// Registers a model without data; answers 201 with the model.
async fn create_empty(
    state: &AppState,
    admin: &Admin,
    query: &ImportQuery,
    name: String,
    kind: InputKind,
    learner: Option<Learner>,
) -> Result<Response, ApiError> {
    let learner = learner.unwrap_or_else(|| Learner::default_for(kind));
    if !learner.reads(kind) {
        return Err(invalid(format!(
            "the learner {} does not read {kind} input",
            learner.name()
        )));
    }
    let text_column = match kind {
        InputKind::Text => Some(query.text.clone().unwrap_or_else(|| DEFAULT_TEXT_COLUMN.to_owned())),
        InputKind::Tabular => None,
    };
    let mut conn = state.pool.acquire().await?;
    let spec = models::create(
        &mut conn,
        models::NewModel {
            name: &name,
            kind,
            feature_names: &[],
            text_column: text_column.as_deref(),
            classes: &[],
            learner: &learner,
            threshold: query.threshold,
            cron: query.cron.as_deref(),
        },
    )
    .await?;
    tracing::info!(model = %name, actor = %admin.actor, "model registered without data");
    let detail = super::models::detail(&mut conn, spec).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

/// Add a data set version to a model (the request body), and start the run
/// that trains on it.
#[utoipa::path(post, path = "/models/{name}/datasets", tag = "models",
    params(("name" = String, Path, description = "The model's name"), ImportQuery),
    request_body(content = String, description = "The data: CSV with a header row, or JSON lines", content_type = "text/csv"),
    security(("admin_token" = [])),
    responses((status = 201, body = ImportResponse, description = "Imported; the run is queued"),
              (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 413, description = "The file is over the size limit", body = ErrorBody),
              (status = 422, description = "A bad file (the message names the line and column)", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    admin: Admin,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<ImportQuery>,
    request: Request,
) -> Result<(StatusCode, Json<ImportResponse>), ApiError> {
    if query.name.is_some()
        || query.kind.is_some()
        || query.learner.is_some()
        || query.learner_settings.is_some()
        || query.threshold.is_some()
        || query.cron.is_some()
    {
        return Err(invalid(
            "name, kind, learner, threshold and cron are set when a model is created",
        ));
    }
    let model = models::by_name(&mut *state.pool.acquire().await?, &name).await?;
    let mut query = query;
    if query.text.is_none() {
        query.text = model.text_column.clone();
    }
    let upload = upload(&query, model.kind, request).await?;
    let imported = import::import_dataset(&state.pool, model, upload, progress(name))
        .await
        .map_err(refusal)?;
    answer(&state, &admin, imported).await
}

/// Queues the run that trains on the import, and answers.
async fn answer(
    state: &AppState,
    admin: &Admin,
    imported: Imported,
) -> Result<(StatusCode, Json<ImportResponse>), ApiError> {
    let Imported {
        model,
        dataset,
        summary,
    } = imported;
    let mut params = run_params(&model.name);
    params["reason"] = format!("data set version {} imported", dataset.version).into();
    let run = state
        .engine
        .create_run(NewRun {
            pipeline: PIPELINE,
            subject: &model.name,
            trigger: TriggerKind::Manual,
            params,
            requested_by: &admin.actor,
        })
        .await?
        .run()
        .clone();
    tracing::info!(model = %model.name, version = dataset.version, actor = %admin.actor, "data set imported");
    Ok((
        StatusCode::CREATED,
        Json(ImportResponse {
            model: model.name,
            kind: model.kind,
            dataset_version: dataset.version,
            feature_names: dataset.feature_names,
            classes: summary
                .classes
                .into_iter()
                .map(|(class, count)| {
                    (
                        class,
                        ClassRows {
                            base: count.base,
                            golden: count.golden,
                        },
                    )
                })
                .collect(),
            run,
        }),
    ))
}

/// The upload, read as the query says: the body as a blocking reader, or,
/// for `multipart/form-data`, its parts `data` and `golden` (the golden set
/// given as a file).
async fn upload(query: &ImportQuery, kind: InputKind, request: Request) -> Result<Upload, ApiError> {
    let multipart = media_type(request.headers()) == "multipart/form-data";
    let format = match query.format.as_deref() {
        Some("csv") => Format::Csv,
        Some("jsonl" | "ndjson") => Format::JsonLines,
        Some(other) => return Err(invalid(format!("unknown format {other:?}: csv or jsonl"))),
        None if multipart => return Err(invalid("with a multipart upload, say ?format=csv or ?format=jsonl")),
        None => format_of(request.headers())?,
    };
    let input = match kind {
        InputKind::Text => {
            if query.features.is_some() {
                return Err(invalid(
                    "a text model reads one text column: give ?text=, not ?features=",
                ));
            }
            InputColumns::Text {
                column: query.text.clone().unwrap_or_else(|| DEFAULT_TEXT_COLUMN.to_owned()),
            }
        }
        InputKind::Tabular => {
            if query.text.is_some() {
                return Err(invalid(
                    "a tabular model reads numeric columns: give ?features=, not ?text=",
                ));
            }
            InputColumns::Tabular {
                features: query
                    .features
                    .as_ref()
                    .map(|list| list.split(',').map(|c| c.trim().to_owned()).collect()),
            }
        }
    };
    let mut spec = ImportSpec::new(format, input);
    spec.label = query.label.clone().unwrap_or_else(|| DEFAULT_LABEL_COLUMN.to_owned());
    if multipart {
        if query.golden_share.is_some() {
            return Err(invalid("the golden set comes either as a file or as a share, not both"));
        }
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad_request("invalid_import", e.body_text()))?;
        let parts = upload_parts::split(multipart);
        return Ok(Upload {
            name: source_name(query)?,
            spec,
            data: Box::new(parts.data),
            golden: GoldenSource::File(Box::new(parts.golden)),
        });
    }
    let share = GoldenShare::new(query.golden_share.unwrap_or(GoldenShare::DEFAULT.get()))
        .map_err(|e| ApiError::bad_request("invalid_data", e.to_string()))?;
    let stream = request.into_body().into_data_stream().map_err(std::io::Error::other);
    Ok(Upload {
        name: source_name(query)?,
        spec,
        data: Box::new(SyncIoBridge::new(StreamReader::new(stream))),
        golden: GoldenSource::Share(share),
    })
}

/// The data set's recorded source: 1 to 200 characters of text.
fn source_name(query: &ImportQuery) -> Result<String, ApiError> {
    let name = query.source.clone().unwrap_or_else(|| "upload".to_owned());
    super::input::check_text(&name, "source", 200, "invalid_import")?;
    Ok(name)
}

/// The file format a Content-Type names.
fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    match media_type(headers).as_str() {
        "text/csv" => Ok(Format::Csv),
        "application/x-ndjson" | "application/jsonl" | "application/json-lines" => Ok(Format::JsonLines),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the data as text/csv or application/x-ndjson (or say ?format=csv|jsonl); \
             with a golden file, as multipart/form-data with the parts data and golden",
        )),
    }
}

/// Logs progress every 100,000 rows of a long import.
fn progress(model: String) -> impl Fn(u64) + Send + 'static {
    move |rows| {
        if rows % 100_000 == 0 {
            tracing::info!(model = %model, rows, "importing");
        }
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_import", message)
}

/// A refused import in the API's error shape: the file's faults are 422
/// (413 past the size limit), the rest as usual.
fn refusal(failure: ImportFailure) -> ApiError {
    match failure {
        ImportFailure::File(e @ ImportError::TooLarge { .. }) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.to_string())
        }
        ImportFailure::File(ImportError::Io(e)) => {
            ApiError::bad_request("invalid_data", format!("the upload broke off: {e}"))
        }
        ImportFailure::File(e) => ApiError::bad_request("invalid_data", e.to_string()),
        ImportFailure::Steps(retrain_steps::StepsError::Inconsistent(message)) => invalid(message),
        ImportFailure::Steps(e) => e.into(),
    }
}
