//! The prediction log: predictions are queued without waiting and written in
//! batches by a background task, so logging never blocks or fails a
//! prediction. Rows that cannot be queued or written are counted by reason.

use crate::held_connection::HeldConnection;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use retrain_steps::ml::Input;
use retrain_steps::store::feedback::InputColumns;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One served prediction.
#[derive(Debug, Clone)]
pub struct LoggedPrediction {
    pub id: Uuid,
    pub model_id: i32,
    pub model_version: i32,
    pub input: Input,
    pub label: String,
    pub confidence: f64,
    pub at: DateTime<Utc>,
}

enum Message {
    Row(LoggedPrediction),
    /// Answered once everything queued before it was written (or given up on).
    Flush(oneshot::Sender<()>),
}

/// The producer side, held by request handlers (cloned with the state for
/// every request, so it is one reference count).
#[derive(Debug, Clone)]
pub struct PredictionLog {
    inner: Arc<Producer>,
}

#[derive(Debug)]
struct Producer {
    queue: mpsc::Sender<Message>,
    metrics: Metrics,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Row(row) => write!(f, "Row({})", row.id),
            Self::Flush(_) => f.write_str("Flush"),
        }
    }
}

/// Most rows written in one statement.
const BATCH: usize = 2_000;

impl PredictionLog {
    /// Starts the writer; after `stop` it writes what is queued and ends.
    /// Await its handle on shutdown, or the queued rows are lost.
    pub fn start(
        pool: PgPool,
        metrics: Metrics,
        capacity: usize,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(capacity);
        let writer = tokio::spawn(write_batches(pool, metrics.clone(), receiver, stop));
        (
            Self {
                inner: Arc::new(Producer { queue, metrics }),
            },
            writer,
        )
    }

    /// Queues a row without waiting; a full queue counts it as lost.
    pub fn record(&self, row: LoggedPrediction) {
        if self.inner.queue.try_send(Message::Row(row)).is_err() {
            self.inner
                .metrics
                .prediction_log_failed
                .with_label_values(&["queue_full"])
                .inc();
        }
    }

    /// Waits until every row queued so far has been written (or given up on).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_batches(pool: PgPool, metrics: Metrics, mut receiver: mpsc::Receiver<Message>, stop: CancellationToken) {
    let mut messages = Vec::with_capacity(BATCH);
    let mut conn = HeldConnection::new(pool);
    loop {
        messages.clear();
        let received = tokio::select! {
            n = receiver.recv_many(&mut messages, BATCH) => n,
            _ = stop.cancelled() => {
                receiver.close();
                receiver.recv_many(&mut messages, usize::MAX).await
            }
        };
        if received == 0 {
            return;
        }
        let mut rows = Vec::with_capacity(messages.len());
        let mut flushes = Vec::new();
        for message in messages.drain(..) {
            match message {
                Message::Row(row) => rows.push(row),
                Message::Flush(done) => flushes.push(done),
            }
        }
        if !rows.is_empty() {
            write_with_retries(&mut conn, &metrics, &rows).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
        if stop.is_cancelled() && receiver.is_closed() && receiver.is_empty() {
            return;
        }
    }
}

/// Tries a batch a few times (the database may be restarting), then counts it lost.
async fn write_with_retries(conn: &mut HeldConnection, metrics: &Metrics, rows: &[LoggedPrediction]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match conn.run(async |c| insert(c, rows, attempt > 1).await).await {
            Ok(()) => {
                metrics.prediction_log_written.inc_by(rows.len() as u64);
                return;
            }
            Err(err) if attempt < 5 => {
                tracing::warn!(error = %err, attempt, rows = rows.len(), "prediction log write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(err) => {
                tracing::error!(error = %err, rows = rows.len(), "prediction log rows lost");
                metrics
                    .prediction_log_failed
                    .with_label_values(&["database"])
                    .inc_by(rows.len() as u64);
            }
        }
    }
}

/// Rows of any models and input kinds in one statement: features travel
/// flat with each row's start and length, texts beside them
/// ([`InputColumns`]).
const INSERT: &str = "INSERT INTO predictions (id, model_id, model_version, features, text, label, confidence,
                                              predicted_at)
     SELECT id, model, version, CASE WHEN flen IS NULL THEN NULL ELSE $1[fstart : fstart + flen - 1] END, txt,
            label, confidence, at
     FROM unnest($2::uuid[], $3::int[], $4::int[], $5::int[], $6::int[], $7::text[], $8::text[], $9::float8[],
                 $10::timestamptz[])
          WITH ORDINALITY AS t(id, model, version, fstart, flen, txt, label, confidence, at, i)";

/// A logged prediction by id, as feedback citing it reads it. Predictions are
/// partitioned by day and the id says nothing of the day, so this probes
/// each kept day's primary key index (about 30 at the default retention); a
/// pruned prediction reads as one never logged.
pub const FIND_BY_ID: &str = "SELECT model_id, model_version, features, text, label FROM predictions WHERE id = $1";

/// Writes a batch. Its ids are fresh, so a first attempt cannot conflict and
/// skips the cost of ON CONFLICT (about a fifth of PostgreSQL's work per
/// row); a retry may find rows of an attempt that committed after all (the
/// key holds the day, which a retried row keeps).
async fn insert(conn: &mut PgConnection, rows: &[LoggedPrediction], retry: bool) -> Result<(), sqlx::Error> {
    let inputs = InputColumns::of(rows.iter().map(|r| &r.input));
    let sql = if retry {
        std::borrow::Cow::Owned(format!("{INSERT} ON CONFLICT (id, predicted_at) DO NOTHING"))
    } else {
        std::borrow::Cow::Borrowed(INSERT)
    };
    sqlx::query(&sql)
        .bind(&inputs.flat)
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.model_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.model_version).collect::<Vec<_>>())
        .bind(&inputs.starts)
        .bind(&inputs.lengths)
        .bind(&inputs.texts)
        .bind(rows.iter().map(|r| r.label.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.confidence).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}
