//! `Idempotency-Key` for `POST /feedback` and `POST /runs`: a client that
//! retries a request (after a timeout, a 503, a dropped connection) with the
//! same key gets the first answer again, same status and body, and nothing
//! new is stored. The same key with another body is refused with 409
//! `idempotency_key_reused`.
//!
//! Keys live in `idempotency_keys`, one row per (endpoint, key). A request
//! claims its key by inserting the row in the same transaction as what it
//! stores, and writes its answer there before committing; so a key is never
//! recorded without its effect, nor an effect without its key, and a
//! concurrent retry waits on the row's lock and then replays the committed
//! answer. A request that is refused or fails records nothing: the key stays
//! free for the retry.
//!
//! Keys answer for [`RETENTION_HOURS`]; an older row counts as absent (a new
//! request reclaims it) and is deleted by a lazy prune, at most every
//! [`PRUNE_EVERY`] per process.

use crate::error::ApiError;
use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use retrain_steps::store::feedback::{self, NewFeedback};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The request header carrying the key.
pub const HEADER: &str = "idempotency-key";
/// Set (`true`) on an answer replayed from an earlier request.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest key, in characters.
pub const MAX_KEY_LEN: usize = 200;
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

/// A valid key: 1 to 200 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// # Errors
    /// 422 `invalid_idempotency_key`.
    pub fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        if raw.is_empty() || raw.len() > MAX_KEY_LEN {
            return Err(invalid_key(format!(
                "Idempotency-Key must have 1 to {MAX_KEY_LEN} characters"
            )));
        }
        if !raw.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(invalid_key("Idempotency-Key must be printable ASCII".to_owned()));
        }
        // Checked ASCII above.
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn invalid_key(message: String) -> ApiError {
    ApiError::bad_request("invalid_idempotency_key", message)
}

/// The optional `Idempotency-Key` header, validated.
#[derive(Debug)]
pub struct KeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for KeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(invalid_key("send one Idempotency-Key header, not several".to_owned()));
        }
        Ok(Self(Some(IdempotencyKey::parse(value.as_bytes())?)))
    }
}

/// sha256 of a request's canonical JSON (the parsed request serialized
/// again), so whitespace or key order do not make a retry "another body".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHash(pub [u8; 32]);

impl RequestHash {
    pub fn of(request: &impl Serialize) -> Self {
        let bytes = serde_json::to_vec(request).unwrap_or_default();
        Self(Sha256::digest(&bytes).into())
    }
}

/// A keyed request: its key and what it asked.
#[derive(Debug, Clone)]
pub struct Claim {
    pub key: IdempotencyKey,
    pub hash: RequestHash,
}

impl Claim {
    pub fn new(key: IdempotencyKey, request: &impl Serialize) -> Self {
        Self {
            key,
            hash: RequestHash::of(request),
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

fn reused(key: &IdempotencyKey) -> ApiError {
    ApiError::conflict(
        "idempotency_key_reused",
        format!(
            "Idempotency-Key {:?} was used for another request; use a new key for a new request",
            key.0
        ),
    )
}

/// A stored key: its request hash, and its answer's status and body.
type StoredKey = (Vec<u8>, Option<i16>, Option<Value>);

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

fn stored_answer(
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
    let claimed: Option<i32> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3)
         ON CONFLICT (scope, key) DO UPDATE
             SET request_hash = EXCLUDED.request_hash, response_status = NULL, response_body = NULL,
                 created_at = clock_timestamp()
             WHERE idempotency_keys.created_at <= clock_timestamp() - make_interval(hours => $4)
         RETURNING 1",
    )
    .bind(scope.as_str())
    .bind(claim.key.as_str())
    .bind(claim.hash.0.as_slice())
    .bind(RETENTION_HOURS)
    .fetch_optional(&mut *conn)
    .await?;
    if claimed.is_some() {
        return Ok(None);
    }
    match lookup(conn, scope, claim).await? {
        Some(replay) => Ok(Some(replay)),
        None => Err(ApiError::conflict(
            "idempotency_key_in_use",
            "this Idempotency-Key is being used; retry shortly",
        )),
    }
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

/// What storing keyed feedback came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// A new row with this id.
    New(i64),
    /// The key's first answer; nothing stored.
    Replay(Replay),
}

type KeyedReply = oneshot::Sender<Result<Stored, ApiError>>;

/// Group commit for feedback with an `Idempotency-Key`: like the plain
/// feedback writer, but each batch is one transaction that claims the keys,
/// inserts the rows of the keys it claimed and records their answers.
#[derive(Debug, Clone)]
pub struct KeyedFeedbackWriter {
    queue: mpsc::Sender<(NewFeedback, Claim, KeyedReply)>,
    wait_limit: Duration,
}

/// Most keyed rows in one transaction.
const BATCH: usize = 500;

impl KeyedFeedbackWriter {
    /// Starts the writer task with a queue of `capacity` rows.
    pub fn start(pool: PgPool, capacity: usize, wait_limit: Duration, shutdown: CancellationToken) -> Self {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        tokio::spawn(write_keyed(pool, receiver, shutdown));
        Self { queue, wait_limit }
    }

    /// Stores one keyed row, or finds the key's first answer.
    ///
    /// # Errors
    /// 409 `idempotency_key_reused`; 503 as the plain writer (queue full,
    /// database away, no commit within the wait limit).
    pub async fn store(&self, row: NewFeedback, claim: Claim) -> Result<Stored, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send((row, claim, reply))
            .map_err(|_| ApiError::unavailable("feedback queue full; retry shortly"))?;
        match tokio::time::timeout(self.wait_limit, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ApiError::unavailable("feedback writer stopped; retry shortly")),
            Err(_) => Err(ApiError::unavailable(
                "feedback not committed in time; retry with the same Idempotency-Key",
            )),
        }
    }
}

async fn write_keyed(
    pool: PgPool,
    mut receiver: mpsc::Receiver<(NewFeedback, Claim, KeyedReply)>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        let received = tokio::select! {
            n = receiver.recv_many(&mut batch, BATCH) => n,
            () = shutdown.cancelled() => return,
        };
        if received == 0 {
            return;
        }
        // Requests that gave up waiting need no row (their retry stores it).
        batch.retain(|(_, _, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (jobs, replies): (Vec<(NewFeedback, Claim)>, Vec<KeyedReply>) =
            batch.drain(..).map(|(row, claim, reply)| ((row, claim), reply)).unzip();
        match store_keyed_batch(&pool, &jobs).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(err) => {
                let away = crate::error::is_database_away(&err);
                let err = ApiError::from_database_error(&err);
                for reply in replies {
                    let _ = reply.send(Err(ApiError {
                        status: err.status,
                        code: err.code,
                        message: err.message.clone(),
                        retry_after: err.retry_after,
                    }));
                }
                // As the plain writer does: with the database away, refuse
                // what queued meanwhile now rather than one timeout each.
                while away && let Ok((_, _, reply)) = receiver.try_recv() {
                    let _ = reply.send(Err(ApiError::unavailable("the database is unavailable; retry shortly")));
                }
            }
        }
    }
}

/// One transaction for a batch of keyed rows. The first row of each key
/// leads; later rows of the same key in the batch get the leader's answer
/// (or 409 if they asked something else).
async fn store_keyed_batch(
    pool: &PgPool,
    jobs: &[(NewFeedback, Claim)],
) -> Result<Vec<Result<Stored, ApiError>>, sqlx::Error> {
    let mut leader_of: HashMap<&str, usize> = HashMap::new();
    for (i, (_, claim)) in jobs.iter().enumerate() {
        leader_of.entry(claim.key.as_str()).or_insert(i);
    }
    // Claim in key order, so concurrent transactions lock keys in one order
    // and cannot deadlock.
    let mut leaders: Vec<usize> = leader_of.values().copied().collect();
    leaders.sort_by(|a, b| jobs[*a].1.key.as_str().cmp(jobs[*b].1.key.as_str()));
    let scope = Scope::Feedback.as_str();
    prune_lazily(pool);
    let mut tx = pool.begin().await?;
    let claimed: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (scope, key, request_hash)
         SELECT $1, k, h FROM unnest($2::text[], $3::bytea[]) WITH ORDINALITY AS t(k, h, i) ORDER BY i
         ON CONFLICT (scope, key) DO UPDATE
             SET request_hash = EXCLUDED.request_hash, response_status = NULL, response_body = NULL,
                 created_at = clock_timestamp()
             WHERE idempotency_keys.created_at <= clock_timestamp() - make_interval(hours => $4)
         RETURNING key",
    )
    .bind(scope)
    .bind(leaders.iter().map(|&i| jobs[i].1.key.as_str()).collect::<Vec<_>>())
    .bind(leaders.iter().map(|&i| jobs[i].1.hash.0.to_vec()).collect::<Vec<_>>())
    .bind(RETENTION_HOURS)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();

    // Insert the claimed leaders' rows, one statement per feature width.
    let mut by_width: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in leaders.iter().filter(|&&i| claimed.contains(jobs[i].1.key.as_str())) {
        by_width.entry(jobs[i].0.features.len()).or_default().push(i);
    }
    let mut new_ids: HashMap<usize, i64> = HashMap::new();
    for group in by_width.values() {
        let rows: Vec<NewFeedback> = group.iter().map(|&i| jobs[i].0.clone()).collect();
        let ids = feedback::insert_many(&mut tx, &rows).await?;
        new_ids.extend(group.iter().copied().zip(ids));
    }
    let (keys, ids): (Vec<&str>, Vec<i64>) = new_ids.iter().map(|(&i, &id)| (jobs[i].1.key.as_str(), id)).unzip();
    sqlx::query(
        "UPDATE idempotency_keys k SET response_status = 201, response_body = jsonb_build_object('feedback_id', t.id)
         FROM unnest($2::text[], $3::int8[]) AS t(key, id)
         WHERE k.scope = $1 AND k.key = t.key",
    )
    .bind(scope)
    .bind(&keys)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;

    // The answers of keys stored before this batch.
    let earlier: Vec<&str> = leaders
        .iter()
        .map(|&i| jobs[i].1.key.as_str())
        .filter(|k| !claimed.contains(*k))
        .collect();
    let stored: HashMap<String, StoredKey> = sqlx::query_as::<_, (String, Vec<u8>, Option<i16>, Option<Value>)>(
        "SELECT key, request_hash, response_status, response_body FROM idempotency_keys
         WHERE scope = $1 AND key = ANY($2)",
    )
    .bind(scope)
    .bind(&earlier)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(key, hash, status, body)| (key, (hash, status, body)))
    .collect();
    tx.commit().await?;

    let claims: Vec<&Claim> = jobs.iter().map(|(_, claim)| claim).collect();
    Ok(answer_batch(&claims, &new_ids, &stored))
}

/// Answers each row of a batch against what its key now records: the row
/// this batch stored for it (`new_ids`, by the index of the key's first row),
/// or the answer stored before (`stored`).
fn answer_batch(
    claims: &[&Claim],
    new_ids: &HashMap<usize, i64>,
    stored: &HashMap<String, StoredKey>,
) -> Vec<Result<Stored, ApiError>> {
    let mut leader_of: HashMap<&str, usize> = HashMap::new();
    for (i, claim) in claims.iter().enumerate() {
        leader_of.entry(claim.key.as_str()).or_insert(i);
    }
    claims
        .iter()
        .enumerate()
        .map(|(i, claim)| {
            let leader = leader_of[claim.key.as_str()];
            if let Some(&id) = new_ids.get(&leader) {
                if i == leader {
                    return Ok(Stored::New(id));
                }
                if claims[leader].hash != claim.hash {
                    return Err(reused(&claim.key));
                }
                return Ok(Stored::Replay(Replay {
                    status: StatusCode::CREATED,
                    body: json!({"feedback_id": id}),
                }));
            }
            match stored.get(claim.key.as_str()) {
                Some((hash, status, body)) => {
                    stored_answer(&claim.key, &claim.hash, hash, *status, body.clone()).map(Stored::Replay)
                }
                None => Err(ApiError::conflict(
                    "idempotency_key_in_use",
                    "this Idempotency-Key is being used; retry shortly",
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(key: &str, body: &str) -> Claim {
        Claim::new(IdempotencyKey::parse(key.as_bytes()).unwrap(), &body)
    }

    fn outcome(answer: &Result<Stored, ApiError>) -> String {
        match answer {
            Ok(Stored::New(id)) => format!("new {id}"),
            Ok(Stored::Replay(replay)) => format!("replay {} {}", replay.status.as_u16(), replay.body),
            Err(err) => err.code.to_owned(),
        }
    }

    #[test]
    fn each_row_is_answered_against_what_its_key_records() {
        let rows = [
            claim("a", "x"), // stores
            claim("a", "x"), // same body: the stored row
            claim("a", "y"), // another body: refused
            claim("b", "y"), // the key holds an answer for "x" already: refused ...
            claim("b", "x"), // ... though a row with the body it recorded replays it
            claim("c", "z"), // nothing stored and not claimed: in use elsewhere
        ];
        let claims: Vec<&Claim> = rows.iter().collect();
        let new_ids = HashMap::from([(0, 7)]);
        let stored = HashMap::from([(
            "b".to_owned(),
            (
                claim("b", "x").hash.0.to_vec(),
                Some(201),
                Some(json!({"feedback_id": 3})),
            ),
        )]);
        let answers: Vec<String> = answer_batch(&claims, &new_ids, &stored).iter().map(outcome).collect();
        assert_eq!(
            answers,
            [
                "new 7",
                r#"replay 201 {"feedback_id":7}"#,
                "idempotency_key_reused",
                "idempotency_key_reused",
                r#"replay 201 {"feedback_id":3}"#,
                "idempotency_key_in_use",
            ]
        );
    }

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse(b"2b6f0cc9-1e6b-4a33-9a1c-5f1e0e8e7a11").is_ok());
        assert!(IdempotencyKey::parse(" ~".repeat(100).as_bytes()).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 201][..],
            b"tab\t",
            b"nul\0",
            "caf\u{e9}".as_bytes(),
            b"\x7f",
        ] {
            assert_eq!(
                IdempotencyKey::parse(bad).unwrap_err().code,
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
    }
}
