//! The key store: `idempotency_keys`, one row per (endpoint, key). A request
//! claims its key inside the transaction that stores its effect and records
//! its answer there before committing, so a key is never recorded without its
//! effect, nor an effect without its key. Rows older than the retention count
//! as absent and are deleted lazily.

use super::key::{Claim, IdempotencyKey, RequestHash};
use crate::error::ApiError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Set (`true`) on an answer replayed from an earlier request.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a key answers.
pub const RETENTION_HOURS: i32 = 24;
/// How often a process deletes expired keys.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The endpoint a key belongs to: the same key may be used on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Feedback,
    Runs,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Feedback => "POST /feedback",
            Self::Runs => "POST /runs",
        }
    }
}

/// The first answer to a key, sent again.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub status: StatusCode,
    pub body: Value,
}

impl IntoResponse for Replay {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        response
    }
}

pub(super) fn reused(key: &IdempotencyKey) -> ApiError {
    ApiError::conflict(
        "idempotency_key_reused",
        format!(
            "Idempotency-Key {:?} was used for another request; use a new key for a new request",
            key.as_str()
        ),
    )
}

pub(super) fn in_use() -> ApiError {
    ApiError::conflict(
        "idempotency_key_in_use",
        "this Idempotency-Key is being used; retry shortly",
    )
}

/// A stored key: its request hash, and its answer's status and body.
pub(super) type StoredKey = (Vec<u8>, Option<i16>, Option<Value>);

/// The stored answer for a key, if it has one that has not expired.
///
/// # Errors
/// 409 `idempotency_key_reused` if the key was used for another request;
/// the database's.
pub async fn lookup(conn: &mut PgConnection, scope: Scope, claim: &Claim) -> Result<Option<Replay>, ApiError> {
    let row: Option<StoredKey> = sqlx::query_as(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys
         WHERE scope = $1 AND key = $2 AND created_at > clock_timestamp() - make_interval(hours => $3)",
    )
    .bind(scope.as_str())
    .bind(claim.key.as_str())
    .bind(RETENTION_HOURS)
    .fetch_optional(conn)
    .await?;
    let Some((hash, status, body)) = row else {
        return Ok(None);
    };
    stored_answer(&claim.key, &claim.hash, &hash, status, body).map(Some)
}

/// The answer a key records, for a request that asked `asked`.
pub(super) fn stored_answer(
    key: &IdempotencyKey,
    asked: &RequestHash,
    hash: &[u8],
    status: Option<i16>,
    body: Option<Value>,
) -> Result<Replay, ApiError> {
    if hash != asked.0 {
        return Err(reused(key));
    }
    match (status.and_then(|s| StatusCode::from_u16(s as u16).ok()), body) {
        (Some(status), Some(body)) => Ok(Replay { status, body }),
        // Committed keys always carry their answer; be safe anyway.
        _ => Err(ApiError::conflict(
            "idempotency_key_in_use",
            "this Idempotency-Key's request has no answer yet",
        )),
    }
}

/// Claims a key inside the caller's transaction: `None` if this request
/// owns it now (complete it with [`complete`] before committing), else the
/// first request's answer. A concurrent claim of the same key waits here
/// until the other transaction ends.
///
/// # Errors
/// 409 `idempotency_key_reused`; the database's.
pub async fn claim(conn: &mut PgConnection, scope: Scope, claim: &Claim) -> Result<Option<Replay>, ApiError> {
    if !claim_all(conn, scope, &[claim]).await?.is_empty() {
        return Ok(None);
    }
    lookup(conn, scope, claim).await?.map(Some).ok_or_else(in_use)
}

/// Claims the keys that are free (never used, or expired) inside the
/// caller's transaction, in the order given; returns those it claimed. The
/// others' rows are left as they are. Callers pass keys sorted, so that
/// concurrent transactions lock keys in one order and cannot deadlock.
///
/// # Errors
/// The database's.
pub(super) async fn claim_all(
    conn: &mut PgConnection,
    scope: Scope,
    claims: &[&Claim],
) -> Result<HashSet<String>, sqlx::Error> {
    let claimed: Vec<String> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (scope, key, request_hash)
         SELECT $1, k, h FROM unnest($2::text[], $3::bytea[]) WITH ORDINALITY AS t(k, h, i) ORDER BY i
         ON CONFLICT (scope, key) DO UPDATE
             SET request_hash = EXCLUDED.request_hash, response_status = NULL, response_body = NULL,
                 created_at = clock_timestamp()
             WHERE idempotency_keys.created_at <= clock_timestamp() - make_interval(hours => $4)
         RETURNING key",
    )
    .bind(scope.as_str())
    .bind(claims.iter().map(|c| c.key.as_str()).collect::<Vec<_>>())
    .bind(claims.iter().map(|c| c.hash.0.to_vec()).collect::<Vec<_>>())
    .bind(RETENTION_HOURS)
    .fetch_all(conn)
    .await?;
    Ok(claimed.into_iter().collect())
}

/// Records the answer of a claimed key, in the claiming transaction.
///
/// # Errors
/// The database's.
pub async fn complete(
    conn: &mut PgConnection,
    scope: Scope,
    key: &IdempotencyKey,
    status: StatusCode,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE scope = $1 AND key = $2")
        .bind(scope.as_str())
        .bind(key.as_str())
        .bind(status.as_u16() as i16)
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes expired keys in the background, at most every [`PRUNE_EVERY`]
/// per process; a failure is logged and tried again next time.
pub fn prune_lazily(pool: &PgPool) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    if now.saturating_sub(last) < PRUNE_EVERY.as_secs()
        || LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let pool = pool.clone();
    tokio::spawn(async move {
        match prune(&pool).await {
            Ok(deleted) => tracing::debug!(deleted, "expired idempotency keys deleted"),
            Err(err) => {
                tracing::warn!(error = %err, "cannot delete expired idempotency keys");
                LAST.store(0, Ordering::Relaxed);
            }
        }
    });
}

/// Deletes keys older than the retention; returns how many.
///
/// # Errors
/// The database's.
pub async fn prune(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= clock_timestamp() - make_interval(hours => $1)")
            .bind(RETENTION_HOURS)
            .execute(pool)
            .await?;
    Ok(done.rows_affected())
}
