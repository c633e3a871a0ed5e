//! The keyed feedback writer: group commit for `POST /feedback` with an
//! `Idempotency-Key`. Like the plain writer (`feedback_writer`), but each
//! batch is one transaction that claims the keys, inserts the rows of the keys
//! it claimed and records their answers; so ten concurrent duplicates on two
//! replicas store one row and all get its `feedback_id`.

use super::key::Claim;
use super::store::{Replay, Scope, StoredKey, claim_all, in_use, prune_lazily, reused, stored_answer};
use crate::error::ApiError;
use axum::http::StatusCode;
use retrain_steps::store::feedback::{self, NewFeedback};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

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
    let leading: Vec<&Claim> = leaders.iter().map(|&i| &jobs[i].1).collect();
    let claimed = claim_all(&mut tx, Scope::Feedback, &leading).await?;

    // Insert the claimed leaders' rows in one statement.
    let inserted: Vec<usize> = leaders
        .iter()
        .copied()
        .filter(|&i| claimed.contains(jobs[i].1.key.as_str()))
        .collect();
    let rows: Vec<NewFeedback> = inserted.iter().map(|&i| jobs[i].0.clone()).collect();
    let ids = if rows.is_empty() {
        Vec::new()
    } else {
        feedback::insert_many(&mut tx, &rows).await?
    };
    let new_ids: HashMap<usize, i64> = inserted.into_iter().zip(ids).collect();
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
                None => Err(in_use()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idempotency::IdempotencyKey;

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
}
