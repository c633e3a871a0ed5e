//! The model registry: artifacts with their hash, hyper-parameters, lineage
//! and training figures. Versions are consecutive integers from 1.

use crate::error::StepsError;
use crate::ml::{Model, sha256_hex};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// A stored model without its artifact bytes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ModelRecord {
    pub id: i64,
    pub version: i32,
    pub kind: String,
    pub sha256: String,
    pub hyperparams: Value,
    pub training_set_id: i64,
    pub run_id: Option<Uuid>,
    pub training_ms: i32,
    pub training_metrics: Value,
    pub created_at: DateTime<Utc>,
}

const RECORD_COLUMNS: &str = "id, version, kind, sha256, hyperparams, training_set_id, run_id, \
    training_ms, training_metrics, created_at";

/// A model to store.
#[derive(Debug)]
pub struct NewModel<'a> {
    pub model: &'a Model,
    pub hyperparams: Value,
    pub training_set_id: i64,
    pub run_id: Option<Uuid>,
    pub training_ms: i32,
    pub training_metrics: Value,
}

/// Stores a model under the next version number.
pub async fn insert(conn: &mut PgConnection, new: NewModel<'_>) -> Result<ModelRecord, sqlx::Error> {
    let artifact = new.model.to_bytes();
    let sql = format!(
        "INSERT INTO models (version, kind, artifact, sha256, hyperparams, training_set_id, run_id,
                             training_ms, training_metrics)
         SELECT coalesce(max(version), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8 FROM models
         RETURNING {RECORD_COLUMNS}"
    );
    // Versions are assigned by max + 1: serialize writers so two never collide.
    sqlx::query("LOCK TABLE models IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(&sql)
        .bind(new.model.kind().as_str())
        .bind(&artifact)
        .bind(sha256_hex(&artifact))
        .bind(&new.hyperparams)
        .bind(new.training_set_id)
        .bind(new.run_id)
        .bind(new.training_ms)
        .bind(&new.training_metrics)
        .fetch_one(conn)
        .await
}

/// The model a run trained, if it trained one.
pub async fn of_run(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<ModelRecord>, sqlx::Error> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM models WHERE run_id = $1");
    sqlx::query_as(&sql).bind(run_id).fetch_optional(conn).await
}

/// A model's record by version.
///
/// # Errors
/// `ModelNotFound`, `Database`.
pub async fn by_version(conn: &mut PgConnection, version: i32) -> Result<ModelRecord, StepsError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM models WHERE version = $1");
    sqlx::query_as(&sql)
        .bind(version)
        .fetch_optional(conn)
        .await?
        .ok_or(StepsError::ModelNotFound(version))
}

/// All models, newest first.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<ModelRecord>, sqlx::Error> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM models ORDER BY version DESC");
    sqlx::query_as(&sql).fetch_all(conn).await
}

/// A stored model loaded for use: its record and the deserialized artifact,
/// whose bytes were checked against the stored sha256.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub record: ModelRecord,
    pub model: Model,
}

/// Loads a model's artifact by id and checks its hash.
///
/// # Errors
/// `Inconsistent` if the bytes do not match their hash; `Model` if they do
/// not deserialize; `Database`.
pub async fn load(conn: &mut PgConnection, id: i64) -> Result<LoadedModel, StepsError> {
    let sql = format!("SELECT {RECORD_COLUMNS}, artifact FROM models WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_one(&mut *conn).await?;
    let record = <ModelRecord as sqlx::FromRow<_>>::from_row(&row)?;
    let artifact: Vec<u8> = sqlx::Row::try_get(&row, "artifact")?;
    if sha256_hex(&artifact) != record.sha256 {
        return Err(StepsError::Inconsistent(format!(
            "artifact of model version {} does not match its sha256",
            record.version
        )));
    }
    let model = Model::from_bytes(&artifact)?;
    Ok(LoadedModel { record, model })
}
