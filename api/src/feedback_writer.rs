//! Group commit for feedback: each request hands its row to a writer task and
//! waits; the writer stores every row queued meanwhile in one statement and
//! answers each request only after that commit. Thousands of acknowledged
//! rows a second cost a handful of disk flushes, and nothing acknowledged is
//! ever lost.

use crate::error::ApiError;
use crate::held_connection::HeldConnection;
use crate::idempotency::{Claim, KeyedFeedbackWriter, Stored};
use retrain_steps::store::feedback::{self, NewFeedback};
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type Reply = oneshot::Sender<Result<i64, ApiError>>;

/// The request side of the group commit.
#[derive(Debug, Clone)]
pub struct FeedbackWriter {
    queue: mpsc::Sender<(NewFeedback, Reply)>,
    wait_limit: Duration,
    /// Rows with an Idempotency-Key: claimed and stored in one transaction.
    keyed: KeyedFeedbackWriter,
}

/// Most rows in one commit.
const BATCH: usize = 1_000;

impl FeedbackWriter {
    /// Starts `writers` writer tasks sharing one queue of `capacity` rows.
    /// After `stop` they write what is queued, then end (stop them once no
    /// request can queue more: after the HTTP server drained).
    pub fn start(
        pool: PgPool,
        writers: usize,
        capacity: usize,
        wait_limit: Duration,
        stop: CancellationToken,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let (queue, receiver) = mpsc::channel(capacity);
        let receiver = std::sync::Arc::new(tokio::sync::Mutex::new(receiver));
        let tasks = (0..writers.max(1))
            .map(|_| tokio::spawn(write_batches(pool.clone(), receiver.clone(), stop.clone())))
            .collect();
        let keyed = KeyedFeedbackWriter::start(pool, capacity, wait_limit, stop);
        (
            Self {
                queue,
                wait_limit,
                keyed,
            },
            tasks,
        )
    }

    /// Stores one row with an Idempotency-Key, or finds the key's first
    /// answer (see [`crate::idempotency`]).
    ///
    /// # Errors
    /// 409 if the key was used for another request; as [`Self::store`].
    pub async fn store_keyed(&self, row: NewFeedback, claim: Claim) -> Result<Stored, ApiError> {
        self.keyed.store(row, claim).await
    }

    /// Stores one row; returns its id once committed.
    ///
    /// # Errors
    /// 503 with Retry-After if the queue is full, the database is away or the
    /// commit does not come within the wait limit (the row may then still be
    /// stored: clients retry with an Idempotency-Key to be safe).
    pub async fn store(&self, row: NewFeedback) -> Result<i64, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send((row, reply))
            .map_err(|_| ApiError::unavailable("feedback queue full; retry shortly"))?;
        match tokio::time::timeout(self.wait_limit, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ApiError::unavailable("feedback writer stopped; retry shortly")),
            Err(_) => Err(ApiError::unavailable("feedback not committed in time; retry shortly")),
        }
    }
}

async fn write_batches(
    pool: PgPool,
    receiver: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<(NewFeedback, Reply)>>>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut conn = HeldConnection::new(pool);
    loop {
        batch.clear();
        let received = {
            let mut receiver = receiver.lock().await;
            // Queued rows first: after `stop` a writer ends only on an empty queue.
            tokio::select! {
                biased;
                n = receiver.recv_many(&mut batch, BATCH) => n,
                () = stop.cancelled() => 0,
            }
        };
        if received == 0 {
            return;
        }
        // Requests that gave up waiting need no row.
        batch.retain(|(_, reply)| !reply.is_closed());
        let (rows, replies): (Vec<NewFeedback>, Vec<Reply>) = batch.drain(..).unzip();
        if rows.is_empty() {
            continue;
        }
        // One statement for the batch, whatever models and input kinds it mixes.
        let result = conn.run(async |c| feedback::insert_many(c, &rows).await).await;
        let away = result.as_ref().is_err_and(crate::error::is_database_away);
        for (i, reply) in replies.into_iter().enumerate() {
            let answer = match &result {
                Ok(ids) => Ok(ids[i]),
                Err(err) => Err(ApiError::from_database_error(err)),
            };
            let _ = reply.send(answer);
        }
        if away {
            refuse_queued(&receiver);
        }
    }
}

/// The database is away: every row queued meanwhile would wait out another
/// connection timeout before its 503, one batch after another. Refuse them
/// all now, so a request waits at most about one timeout; clients retry
/// after Retry-After. (If another writer holds the queue, it is waiting on
/// an empty one, so there is nothing to refuse.)
fn refuse_queued(receiver: &tokio::sync::Mutex<mpsc::Receiver<(NewFeedback, Reply)>>) {
    let Ok(mut receiver) = receiver.try_lock() else {
        return;
    };
    while let Ok((_, reply)) = receiver.try_recv() {
        let _ = reply.send(Err(ApiError::unavailable("the database is unavailable; retry shortly")));
    }
}
