//! Promotion: the one path by which a version becomes its model's champion,
//! for the pipeline, bootstrap, manual promotion and rollback alike. One transaction
//! writes the promotion, moves the champion pointer and (for a run) the
//! run's event; the database then NOTIFYs serving replicas on commit.
//!
//! Lock order, the same on every path: the promotion advisory lock
//! ([`serialize`]) first, then a run step's own rows (`hold_lease` in the
//! engine, for a pipeline promotion), then the champion row.

use crate::error::StepsError;
use chrono::{DateTime, Utc};
use retrain_engine::{Annotation, annotate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The channel promotions are announced on (see the migrations).
pub const PROMOTED_CHANNEL: &str = "retrain_model_promoted";

/// Why a promotion happened.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "promotion_kind", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum PromotionKind {
    Bootstrap,
    Pipeline,
    Manual,
    Rollback,
}

/// A promotion as stored, with the versions it moved between.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Promotion {
    pub id: i64,
    /// The model whose champion moved.
    pub model: String,
    pub version_id: i64,
    pub version: i32,
    pub previous_version_id: Option<i64>,
    pub previous_version: Option<i32>,
    pub run_id: Option<Uuid>,
    pub kind: PromotionKind,
    pub reason: String,
    pub actor: String,
    pub promoted_at: DateTime<Utc>,
}

/// The run step asking for a promotion, so its event is written with it.
#[derive(Debug, Clone, Copy)]
pub struct ByRun<'a> {
    pub run_id: Uuid,
    pub step: &'a str,
    pub attempt: i32,
    /// The champion version the run's gate judged the candidate against
    /// (`None`: there was none). The promotion is refused unless it still
    /// serves.
    pub judged_against: Option<i64>,
}

/// A promotion to make.
#[derive(Debug, Clone, Copy)]
pub struct PromotionRequest<'a> {
    /// The version to make champion of its model.
    pub version_id: i64,
    pub kind: PromotionKind,
    pub actor: &'a str,
    pub reason: &'a str,
    pub by_run: Option<ByRun<'a>>,
}

const SELECT_PROMOTION: &str = "SELECT p.id, mo.name AS model, p.version_id, m.version, p.previous_version_id,
        pm.version AS previous_version, p.run_id, p.kind, p.reason, p.actor, p.promoted_at
    FROM promotions p JOIN versions m ON m.id = p.version_id
    JOIN models mo ON mo.id = p.model_id
    LEFT JOIN versions pm ON pm.id = p.previous_version_id";

/// The model's champion: its version id and number, if it has one.
pub async fn champion(conn: &mut PgConnection, model_id: i32) -> Result<Option<(i64, i32)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.version_id, m.version FROM champion c JOIN versions m ON m.id = c.version_id
         WHERE c.model_id = $1",
    )
    .bind(model_id)
    .fetch_optional(conn)
    .await
}

/// Promotes in a transaction of its own. See [`promote_in`].
///
/// # Errors
/// As [`promote_in`].
pub async fn promote(pool: &PgPool, request: PromotionRequest<'_>) -> Result<Promotion, StepsError> {
    let mut tx = pool.begin().await?;
    let promotion = promote_in(&mut tx, request).await?;
    tx.commit().await?;
    Ok(promotion)
}

/// Takes the promotion lock for the rest of the caller's transaction.
/// Promotions are rare: serializing them all makes "previous" exact. Taking
/// it again in the same transaction is harmless.
pub async fn serialize(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('retrain.promotion'))")
        .execute(conn)
        .await?;
    Ok(())
}

/// Makes the version its model's champion inside the caller's transaction. A run promotes
/// at most once: asking again returns its first promotion unchanged.
///
/// # Errors
/// `AlreadyChampion` if the model serves already; `StaleGate` if a run's
/// gate judged against another champion than the one serving; `Database`.
pub async fn promote_in(conn: &mut PgConnection, request: PromotionRequest<'_>) -> Result<Promotion, StepsError> {
    serialize(conn).await?;
    if let Some(run) = request.by_run {
        let sql = format!("{SELECT_PROMOTION} WHERE p.run_id = $1");
        let earlier: Option<Promotion> = sqlx::query_as(&sql).bind(run.run_id).fetch_optional(&mut *conn).await?;
        if let Some(earlier) = earlier {
            return Ok(earlier);
        }
    }
    let model_id: i32 = sqlx::query_scalar("SELECT model_id FROM versions WHERE id = $1")
        .bind(request.version_id)
        .fetch_one(&mut *conn)
        .await?;
    let current = champion(conn, model_id).await?;
    if let Some((version_id, version)) = current
        && version_id == request.version_id
    {
        return Err(StepsError::AlreadyChampion(version));
    }
    if let Some(run) = request.by_run
        && current.map(|(id, _)| id) != run.judged_against
    {
        let judged = match run.judged_against {
            Some(id) => Some((id, version_of(conn, id).await?)),
            None => None,
        };
        return Err(StepsError::StaleGate {
            judged,
            serving: current,
        });
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO promotions (version_id, previous_version_id, run_id, kind, reason, actor, model_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(request.version_id)
    .bind(current.map(|(id, _)| id))
    .bind(request.by_run.map(|r| r.run_id))
    .bind(request.kind)
    .bind(request.reason)
    .bind(request.actor)
    .bind(model_id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO champion (model_id, version_id, promotion_id) VALUES ($1, $2, $3)
         ON CONFLICT (model_id) DO UPDATE
         SET version_id = EXCLUDED.version_id, promotion_id = EXCLUDED.promotion_id, updated_at = clock_timestamp()",
    )
    .bind(model_id)
    .bind(request.version_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let sql = format!("{SELECT_PROMOTION} WHERE p.id = $1");
    let promotion: Promotion = sqlx::query_as(&sql).bind(id).fetch_one(&mut *conn).await?;
    if let Some(run) = request.by_run {
        let detail = json!({"promotion_id": promotion.id, "version": promotion.version,
                            "previous_version": promotion.previous_version});
        let reason = format!(
            "promoted version {} (previous {})",
            promotion.version,
            promotion.previous_version.map_or("none".to_owned(), |v| v.to_string())
        );
        annotate(
            conn,
            Annotation {
                run_id: run.run_id,
                step: run.step,
                attempt: run.attempt,
                actor: request.actor,
                reason: &reason,
                detail: Some(&detail),
            },
        )
        .await?;
    }
    Ok(promotion)
}

async fn version_of(conn: &mut PgConnection, version_id: i64) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM versions WHERE id = $1")
        .bind(version_id)
        .fetch_one(conn)
        .await
}

/// The model's promotion history, newest first.
pub async fn history(conn: &mut PgConnection, model_id: i32, limit: i64) -> Result<Vec<Promotion>, sqlx::Error> {
    let sql = format!("{SELECT_PROMOTION} WHERE p.model_id = $1 ORDER BY p.id DESC LIMIT $2");
    sqlx::query_as(&sql).bind(model_id).bind(limit).fetch_all(conn).await
}
