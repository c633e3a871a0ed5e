//! A model's versions: artifacts with their hash, learner settings, lineage
//! and training figures. Versions are consecutive integers from 1 per model.

use crate::error::StepsError;
use crate::ml::{Classifier, ModelKind, sha256_hex};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// A stored version without its artifact bytes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct VersionRecord {
    pub id: i64,
    /// The model this is a version of.
    pub model_id: i32,
    pub version: i32,
    pub kind: String,
    pub sha256: String,
    pub hyperparams: Value,
    pub training_set_id: i64,
    pub run_id: Option<Uuid>,
    pub training_ms: i32,
    pub training_metrics: Value,
    /// How the learner was chosen (a [`crate::ml::selection::Selection`]);
    /// none for versions trained before selection existed.
    pub selection: Option<Value>,
    pub created_at: DateTime<Utc>,
}

const RECORD_COLUMNS: &str = "id, model_id, version, kind, sha256, hyperparams, training_set_id, run_id, \
    training_ms, training_metrics, selection, created_at";

/// A version to store.
#[derive(Debug)]
pub struct NewVersion<'a> {
    pub model_id: i32,
    pub classifier: &'a Classifier,
    pub hyperparams: Value,
    pub training_set_id: i64,
    pub run_id: Option<Uuid>,
    pub training_ms: i32,
    pub training_metrics: Value,
    pub selection: Option<Value>,
}

/// Stores a version under the model's next version number.
pub async fn insert(conn: &mut PgConnection, new: NewVersion<'_>) -> Result<VersionRecord, sqlx::Error> {
    let artifact = new.classifier.to_bytes();
    let sql = format!(
        "INSERT INTO versions (model_id, version, kind, artifact, sha256, hyperparams, training_set_id, run_id,
                               training_ms, training_metrics, selection)
         SELECT $9, coalesce(max(version), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $10 FROM versions WHERE model_id = $9
         RETURNING {RECORD_COLUMNS}"
    );
    // Versions are assigned by max + 1: serialize writers of this model so
    // two never collide (the model's row lock; other models go on).
    sqlx::query("SELECT 1 FROM models WHERE id = $1 FOR UPDATE")
        .bind(new.model_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(&sql)
        .bind(new.classifier.kind().as_str())
        .bind(&artifact)
        .bind(sha256_hex(&artifact))
        .bind(&new.hyperparams)
        .bind(new.training_set_id)
        .bind(new.run_id)
        .bind(new.training_ms)
        .bind(&new.training_metrics)
        .bind(new.model_id)
        .bind(&new.selection)
        .fetch_one(conn)
        .await
}

/// The version a run trained, if it trained one.
pub async fn of_run(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<VersionRecord>, sqlx::Error> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM versions WHERE run_id = $1");
    sqlx::query_as(&sql).bind(run_id).fetch_optional(conn).await
}

/// A model's version by number.
///
/// # Errors
/// `VersionNotFound`, `Database`.
pub async fn by_version(conn: &mut PgConnection, model_id: i32, version: i32) -> Result<VersionRecord, StepsError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM versions WHERE model_id = $1 AND version = $2");
    sqlx::query_as(&sql)
        .bind(model_id)
        .bind(version)
        .fetch_optional(conn)
        .await?
        .ok_or(StepsError::VersionNotFound(version))
}

/// A model's versions, newest first, at most `limit` of them.
pub async fn list(conn: &mut PgConnection, model_id: i32, limit: i64) -> Result<Vec<VersionRecord>, sqlx::Error> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM versions WHERE model_id = $1 ORDER BY version DESC LIMIT $2");
    sqlx::query_as(&sql).bind(model_id).bind(limit).fetch_all(conn).await
}

/// A stored version loaded for use: its record and the decoded artifact,
/// whose bytes were checked against the stored sha256.
#[derive(Debug, Clone)]
pub struct LoadedVersion {
    pub record: VersionRecord,
    pub classifier: Classifier,
}

/// A version's artifact bytes as stored, unchecked.
pub async fn artifact(conn: &mut PgConnection, id: i64) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query_scalar("SELECT artifact FROM versions WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Loads a version's artifact by id and checks its hash.
///
/// # Errors
/// `Inconsistent` if the bytes do not match their hash; `Model` if they do
/// not deserialize; `Database`.
pub async fn load(conn: &mut PgConnection, id: i64) -> Result<LoadedVersion, StepsError> {
    let sql = format!("SELECT {RECORD_COLUMNS}, artifact FROM versions WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_one(&mut *conn).await?;
    let record = <VersionRecord as sqlx::FromRow<_>>::from_row(&row)?;
    let artifact: Vec<u8> = sqlx::Row::try_get(&row, "artifact")?;
    if sha256_hex(&artifact) != record.sha256 {
        return Err(StepsError::Inconsistent(format!(
            "artifact of model version {} does not match its sha256",
            record.version
        )));
    }
    let kind = ModelKind::parse(&record.kind).ok_or_else(|| {
        StepsError::Inconsistent(format!("version {} has unknown kind {:?}", record.version, record.kind))
    })?;
    let classifier = Classifier::from_bytes(kind, &artifact)?;
    Ok(LoadedVersion { record, classifier })
}
