//! Feedback rows: the watermark, what waits for the next run, and reading
//! everything up to a watermark for a training set.

use crate::ml::Example;
use futures_util::TryStreamExt;
use sqlx::PgConnection;

/// The highest feedback id a run that passed collect included (0 if none).
pub async fn last_watermark(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(watermark), 0)::bigint FROM collections WHERE passed")
        .fetch_one(conn)
        .await
}

/// The highest feedback id stored now (0 if none).
pub async fn high_watermark(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(id), 0)::bigint FROM feedback")
        .fetch_one(conn)
        .await
}

/// Feedback rows with ids in `(after, upto]` that count toward a run (not
/// quarantined). The SQL function is the one definition the threshold, the
/// backlog gauge and collect share (migrations/0006).
pub async fn count_between(conn: &mut PgConnection, after: i64, upto: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT feedback_counted_between($1, $2)")
        .bind(after)
        .bind(upto)
        .fetch_one(conn)
        .await
}

/// Feedback rows that count and wait for the next run that passes collect.
pub async fn waiting(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT feedback_waiting()").fetch_one(conn).await
}

/// The ids of the quarantine rules stored now, ascending: the rules a
/// training set merged now is made under.
pub async fn quarantine_rules(conn: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM feedback_quarantines ORDER BY id")
        .fetch_all(conn)
        .await
}

/// One stored feedback row as a training example, with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackExample {
    pub id: i64,
    pub example: Example,
    /// Excluded from training by a quarantine rule.
    pub quarantined: bool,
}

/// All feedback up to the watermark, oldest first, streamed from the
/// server, flagged as quarantined under the given rules only.
pub async fn up_to(
    conn: &mut PgConnection,
    watermark: i64,
    rules: &[i64],
) -> Result<Vec<FeedbackExample>, sqlx::Error> {
    // The same predicate as the counts, restricted to the set's own rules.
    let mut rows = sqlx::query_as::<_, (i64, Vec<f64>, i32, bool)>(
        "SELECT f.id, f.features, f.correct_label,
                EXISTS (SELECT 1 FROM feedback_quarantines) AND feedback_quarantined_under(f, $1)
         FROM feedback f WHERE f.id <= $2 ORDER BY f.id",
    )
    .bind(rules)
    .bind(watermark)
    .fetch(conn);
    let mut out = Vec::new();
    while let Some((id, features, label, quarantined)) = rows.try_next().await? {
        out.push(FeedbackExample {
            id,
            example: Example { features, label },
            quarantined,
        });
    }
    Ok(out)
}

/// A quarantine rule to add: feedback from `source` and/or received in
/// `[received_from, received_until)` is left out of training from now on.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQuarantine {
    pub source: Option<String>,
    pub received_from: Option<chrono::DateTime<chrono::Utc>>,
    pub received_until: Option<chrono::DateTime<chrono::Utc>>,
    pub reason: String,
    pub actor: String,
}

/// Adds a quarantine rule; returns its id and how many stored rows it covers.
pub async fn quarantine(conn: &mut PgConnection, rule: &NewQuarantine) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "WITH rule AS (
            INSERT INTO feedback_quarantines (source, received_from, received_until, reason, actor)
            VALUES ($1, $2, $3, $4, $5) RETURNING id
        )
        SELECT (SELECT id FROM rule),
               (SELECT count(*) FROM feedback f
                WHERE ($1::text IS NULL OR f.source = $1)
                  AND ($2::timestamptz IS NULL OR f.received_at >= $2)
                  AND ($3::timestamptz IS NULL OR f.received_at < $3))",
    )
    .bind(&rule.source)
    .bind(rule.received_from)
    .bind(rule.received_until)
    .bind(&rule.reason)
    .bind(&rule.actor)
    .fetch_one(conn)
    .await
}

/// Feedback as accepted at the edge (validated there).
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeedback {
    pub features: Vec<f64>,
    pub correct_label: i32,
    pub prediction_id: Option<uuid::Uuid>,
    pub predicted_label: Option<i32>,
    pub model_version: Option<i32>,
    pub source: Option<String>,
}

/// Stores feedback rows in one statement and returns their ids, in order.
pub async fn insert_many(conn: &mut PgConnection, rows: &[NewFeedback]) -> Result<Vec<i64>, sqlx::Error> {
    let width = rows.first().map_or(0, |r| r.features.len());
    // Postgres arrays are rectangular: ship the features flat and cut them again.
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.features.iter().copied()).collect();
    if rows.iter().any(|r| r.features.len() != width) {
        return Err(sqlx::Error::Protocol(
            "feedback rows of different widths in one batch".into(),
        ));
    }
    sqlx::query_scalar(
        "INSERT INTO feedback (features, correct_label, prediction_id, predicted_label, model_version, source)
         SELECT $1[(i - 1) * $2 + 1 : i * $2], label, pid, plabel, mversion, src
         FROM unnest($3::int[], $4::uuid[], $5::int[], $6::int[], $7::text[])
              WITH ORDINALITY AS t(label, pid, plabel, mversion, src, i)
         ORDER BY i
         RETURNING id",
    )
    .bind(&flat)
    .bind(width as i32)
    .bind(rows.iter().map(|r| r.correct_label).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.prediction_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.predicted_label).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.model_version).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.source.clone()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}
