//! The model registry: named models with their input kind, class names,
//! learner and settings. Every other table of the pipeline keys its rows by
//! a model's id, so models never see each other's data.

use crate::error::StepsError;
use crate::ml::{GateConfig, InputKind, Learner};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use sqlx::types::Json;

/// A registered model.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ModelSpec {
    pub id: i32,
    /// Lower case letters, digits and `._-`; appears in URLs and metrics.
    pub name: String,
    /// What the model reads.
    pub kind: InputKind,
    /// Tabular models: the feature columns, in the order the model reads them.
    pub feature_names: Vec<String>,
    /// Text models: the text field's name in the model's data files.
    pub text_column: Option<String>,
    /// The class names, sorted.
    pub classes: Vec<String>,
    /// The learner that trains the model's versions, with its settings.
    #[cfg_attr(feature = "openapi", schema(value_type = Learner))]
    pub learner: Json<Learner>,
    /// The gate's settings for this model (`{}`: the service's).
    pub gate: serde_json::Value,
    /// New feedback rows that start a run (`None`: the service's).
    pub threshold: Option<i32>,
    /// A 6-field cron expression (seconds first, UTC) on which a run starts.
    pub cron: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl ModelSpec {
    /// The gate's settings for this model: `default` (the service's) with
    /// the model's own settings over it.
    ///
    /// # Errors
    /// `Inconsistent` if the stored settings do not parse.
    pub fn gate_or(&self, default: &GateConfig) -> Result<GateConfig, StepsError> {
        let mut merged = serde_json::to_value(default).expect("a gate config serializes");
        if let (Some(merged), Some(own)) = (merged.as_object_mut(), self.gate.as_object()) {
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        serde_json::from_value(merged)
            .map_err(|e| StepsError::Inconsistent(format!("gate settings of model {:?}: {e}", self.name)))
    }

    /// New feedback rows that start a run: its own threshold, or `default`.
    pub fn threshold_or(&self, default: i64) -> i64 {
        self.threshold.map_or(default, i64::from)
    }
}

const COLUMNS: &str = "id, name, kind, feature_names, text_column, classes, learner, gate, threshold, cron, created_at";

/// Why a name cannot name a model, if it cannot: 1 to 64 lower case
/// letters, digits and `._-`, starting with a letter or a digit.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if name.is_empty() || name.len() > 64 {
        Some("a model name is 1 to 64 characters")
    } else if !first_ok || !rest_ok {
        Some("a model name is lower case letters, digits and . _ -, starting with a letter or a digit")
    } else {
        None
    }
}

/// A model to register.
#[derive(Debug, Clone)]
pub struct NewModel<'a> {
    pub name: &'a str,
    pub kind: InputKind,
    pub feature_names: &'a [String],
    pub text_column: Option<&'a str>,
    pub classes: &'a [String],
    pub learner: &'a Learner,
    pub threshold: Option<i32>,
    pub cron: Option<&'a str>,
}

/// Registers a model.
///
/// # Errors
/// `ModelExists` if the name is taken; `Database`.
pub async fn create(conn: &mut PgConnection, new: NewModel<'_>) -> Result<ModelSpec, StepsError> {
    let sql = format!(
        "INSERT INTO models (name, kind, feature_names, text_column, classes, learner, threshold, cron)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (name) DO NOTHING
         RETURNING {COLUMNS}"
    );
    let mut classes = new.classes.to_vec();
    classes.sort_unstable();
    classes.dedup();
    sqlx::query_as(&sql)
        .bind(new.name)
        .bind(new.kind)
        .bind(new.feature_names)
        .bind(new.text_column)
        .bind(&classes)
        .bind(Json(new.learner))
        .bind(new.threshold)
        .bind(new.cron)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StepsError::ModelExists(new.name.to_owned()))
}

/// The model named `name`.
///
/// # Errors
/// `UnknownModel`; `Database`.
pub async fn by_name(conn: &mut PgConnection, name: &str) -> Result<ModelSpec, StepsError> {
    // A name no model can have (a NUL byte, say) is not looked up.
    if name_problem(name).is_some() {
        return Err(StepsError::UnknownModel(name.to_owned()));
    }
    let sql = format!("SELECT {COLUMNS} FROM models WHERE name = $1");
    sqlx::query_as(&sql)
        .bind(name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StepsError::UnknownModel(name.to_owned()))
}

/// The model with id `id`.
pub async fn by_id(conn: &mut PgConnection, id: i32) -> Result<ModelSpec, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM models WHERE id = $1");
    sqlx::query_as(&sql).bind(id).fetch_one(conn).await
}

/// Every model, by name.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<ModelSpec>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM models ORDER BY name");
    sqlx::query_as(&sql).fetch_all(conn).await
}

/// The query of [`page`]: models by name after `$1`, at most `$2`.
pub fn page_sql() -> String {
    format!("SELECT {COLUMNS} FROM models WHERE name > $1 ORDER BY name LIMIT $2")
}

/// A page of models by name: at most `limit` after the name `after`.
pub async fn page(conn: &mut PgConnection, after: Option<&str>, limit: i64) -> Result<Vec<ModelSpec>, sqlx::Error> {
    sqlx::query_as(&page_sql())
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Adds class names a new data set brought (the model then answers them
/// too); returns the model as it is now.
pub async fn add_classes(conn: &mut PgConnection, id: i32, classes: &[String]) -> Result<ModelSpec, sqlx::Error> {
    let sql = format!(
        "UPDATE models SET classes = (SELECT array_agg(DISTINCT c ORDER BY c) FROM unnest(classes || $2::text[]) c)
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql).bind(id).bind(classes).fetch_one(conn).await
}

/// A model's own gate settings, each optional (absent: the service's).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GateSettings {
    /// Lowest golden accuracy a candidate may have, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_floor: Option<f64>,
    /// How much lower than the champion's any class's recall may be, 0 to 1
    /// (`recall_tolerance` in settings stored before the statistical gate).
    #[serde(skip_serializing_if = "Option::is_none", alias = "recall_tolerance")]
    pub recall_margin: Option<f64>,
    /// Classes with fewer golden rows are not checked for recall.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_class_support: Option<usize>,
    /// How much lower than the champion's the candidate's accuracy may be
    /// (golden and recent sets), -1 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// Significance level of the non-inferiority bounds, above 0 and below 0.5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Share of new feedback held out as the recent set, 0 to 0.5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_share: Option<f64>,
    /// The recent set is at most this many of the latest held-out rows, at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_max_rows: Option<usize>,
    /// With fewer recent rows the recent check is skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_min_rows: Option<usize>,
}

impl GateSettings {
    /// Why the settings cannot gate, if they cannot.
    pub fn problem(&self) -> Option<&'static str> {
        let within = |v: Option<f64>, lo: f64, hi: f64| v.is_none_or(|v| v.is_finite() && (lo..=hi).contains(&v));
        if !within(self.accuracy_floor, 0.0, 1.0) {
            Some("accuracy_floor is between 0 and 1")
        } else if !within(self.recall_margin, 0.0, 1.0) {
            Some("recall_margin is between 0 and 1")
        } else if !within(self.margin, -1.0, 1.0) {
            Some("margin is between -1 and 1")
        } else if self.alpha.is_some_and(|a| !(a.is_finite() && a > 0.0 && a < 0.5)) {
            Some("alpha is above 0 and below 0.5")
        } else if !within(self.recent_share, 0.0, 0.5) {
            Some("recent_share is between 0 and 0.5")
        } else if self.recent_max_rows == Some(0) {
            Some("recent_max_rows is at least 1")
        } else {
            None
        }
    }
}

/// A model's settings after a change: its threshold, cron, gate and learner.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    pub threshold: Option<i32>,
    pub cron: Option<&'a str>,
    pub gate: &'a GateSettings,
    pub learner: &'a Learner,
}

/// Replaces a model's threshold, cron, gate settings and learner (its next
/// versions train with it); returns the model as it is now.
pub async fn set_settings(conn: &mut PgConnection, id: i32, settings: Settings<'_>) -> Result<ModelSpec, sqlx::Error> {
    let sql = format!(
        "UPDATE models SET threshold = $2, cron = $3, gate = $4, learner = $5 WHERE id = $1 RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql)
        .bind(id)
        .bind(settings.threshold)
        .bind(settings.cron)
        .bind(Json(settings.gate))
        .bind(Json(settings.learner))
        .fetch_one(conn)
        .await
}
