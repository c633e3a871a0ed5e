//! Client keys in the database: created and revoked with an audit event in
//! the same transaction, listed without their secrets, and looked up by the
//! hash of a presented key.

use super::{Caller, Scope, Secret};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

/// A key as listed: everything but the secret.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct KeyRecord {
    pub name: String,
    /// The key's first characters, to tell keys apart; not enough to use it.
    pub prefix: String,
    pub scopes: Vec<String>,
    /// The one model the key may predict for and send feedback to (null: any).
    pub model: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

const RECORD: &str =
    "SELECT name, prefix, scopes, model, created_at, created_by, revoked_at, revoked_by FROM client_keys";

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    pub name: &'a str,
    pub scopes: &'a [Scope],
    pub model: Option<&'a str>,
    pub actor: &'a str,
}

/// Stores a new key with its `create` event; returns its record. `None` if
/// the name is taken (by a live or a revoked key: a name means one key).
pub async fn create(pool: &PgPool, key: &NewKey<'_>, secret: &Secret) -> Result<Option<KeyRecord>, sqlx::Error> {
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    let mut tx = pool.begin().await?;
    let record: Option<KeyRecord> = sqlx::query_as(
        "WITH k AS (
            INSERT INTO client_keys (name, prefix, key_hash, scopes, model, created_by)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING
            RETURNING name, prefix, scopes, model, created_at, created_by, revoked_at, revoked_by
        ) SELECT * FROM k",
    )
    .bind(key.name)
    .bind(super::prefix(secret.expose()))
    .bind(super::hash(secret.expose()).as_slice())
    .bind(&scopes)
    .bind(key.model)
    .bind(key.actor)
    .fetch_optional(&mut *tx)
    .await?;
    if record.is_some() {
        event(&mut tx, key.name, "create", key.actor).await?;
    }
    tx.commit().await?;
    Ok(record)
}

/// Every key, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<KeyRecord>, sqlx::Error> {
    sqlx::query_as(&format!("{RECORD} ORDER BY created_at DESC, name"))
        .fetch_all(pool)
        .await
}

/// What revoking came to.
#[derive(Debug)]
pub enum Revoked {
    Now(KeyRecord),
    Already(KeyRecord),
    NoSuchKey,
}

/// Revokes the key `name` with its `revoke` event (once: revoking again
/// changes nothing).
pub async fn revoke(pool: &PgPool, name: &str, actor: &str) -> Result<Revoked, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE client_keys SET revoked_at = clock_timestamp(), revoked_by = $2 WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .bind(actor)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 1 {
        event(&mut tx, name, "revoke", actor).await?;
    }
    let record: Option<KeyRecord> = sqlx::query_as(&format!("{RECORD} WHERE name = $1"))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(match (record, changed) {
        (None, _) => Revoked::NoSuchKey,
        (Some(record), 1) => Revoked::Now(record),
        (Some(record), _) => Revoked::Already(record),
    })
}

async fn event(conn: &mut PgConnection, name: &str, action: &str, actor: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO client_key_events (key_name, action, actor) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(action)
        .bind(actor)
        .execute(conn)
        .await
        .map(drop)
}

/// The live (not revoked) key with this hash, if any, and whether a
/// quarantine rule in force names it as its source.
pub async fn find(pool: &PgPool, hash: &[u8; 32]) -> Result<Option<Caller>, sqlx::Error> {
    let row: Option<(String, Vec<String>, Option<String>, bool)> = sqlx::query_as(
        "SELECT k.name, k.scopes, k.model,
                EXISTS (SELECT 1 FROM feedback_quarantines q
                        WHERE q.source = k.name
                          AND NOT EXISTS (SELECT 1 FROM quarantine_releases r WHERE r.quarantine_id = q.id))
         FROM client_keys k WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
    )
    .bind(hash.as_slice())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(name, scopes, model, flagged)| Caller {
        name: name.into(),
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        model,
        flagged,
    }))
}
