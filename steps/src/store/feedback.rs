//! Feedback rows of a model: the watermark, what waits for the next run,
//! streaming everything up to a watermark for a training set (and reading
//! chosen rows again by id, so a set need not hold them all), and the
//! quarantine rules that keep a source's rows out (added by an operator or
//! by screening, ended only by an audited release).

use super::datasets::stored_input;
use crate::ml::{Example, Input};
use futures_util::{Stream, StreamExt, TryStreamExt};
use sqlx::PgConnection;
use std::collections::HashSet;

/// The highest feedback id a run of the model that passed collect included
/// (0 if none).
pub async fn last_watermark(conn: &mut PgConnection, model_id: i32) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(watermark), 0)::bigint FROM collections WHERE passed AND model_id = $1")
        .bind(model_id)
        .fetch_one(conn)
        .await
}

/// The highest feedback id stored now, of any model (0 if none): ids come
/// from one sequence, so a model's watermark is a position in it.
pub async fn high_watermark(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(id), 0)::bigint FROM feedback")
        .fetch_one(conn)
        .await
}

/// Feedback rows with ids in `(after, upto]` that count toward a run (not
/// quarantined). The SQL function is the one definition the threshold, the
/// backlog gauge and collect share (migrations/0006).
pub async fn count_between(conn: &mut PgConnection, model_id: i32, after: i64, upto: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT feedback_counted_between($1, $2, $3)")
        .bind(model_id)
        .bind(after)
        .bind(upto)
        .fetch_one(conn)
        .await
}

/// Feedback rows of the model that count and wait for its next run that
/// passes collect.
pub async fn waiting(conn: &mut PgConnection, model_id: i32) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT feedback_waiting($1)")
        .bind(model_id)
        .fetch_one(conn)
        .await
}

/// The ids of the model's quarantine rules in force now (not released),
/// ascending: the rules a training set merged now is made under.
pub async fn quarantine_rules(conn: &mut PgConnection, model_id: i32) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM feedback_quarantines q WHERE model_id = $1
           AND NOT EXISTS (SELECT 1 FROM quarantine_releases r WHERE r.quarantine_id = q.id)
         ORDER BY id",
    )
    .bind(model_id)
    .fetch_all(conn)
    .await
}

/// The ids of the model's feedback rows up to the watermark that an
/// operator vouched for: received before the release of a quarantine rule
/// that covered them (the operator looked at them and let them train).
/// Without releases the join has no rows to start from and reads nothing.
pub async fn vouched(conn: &mut PgConnection, model_id: i32, watermark: i64) -> Result<HashSet<i64>, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT f.id FROM quarantine_releases r
         JOIN feedback f ON f.model_id = r.model_id AND f.id <= $2 AND f.received_at < r.released_at
         WHERE r.model_id = $1 AND feedback_quarantined_under(f, ARRAY[r.quarantine_id])",
    )
    .bind(model_id)
    .bind(watermark)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().collect())
}

/// One stored feedback row as a training example, with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackExample {
    pub id: i64,
    pub example: Example,
    /// Who sent it, if they said.
    pub source: Option<String>,
    /// Excluded from training by a quarantine rule.
    pub quarantined: bool,
}

/// All feedback of the model up to the watermark, oldest first, streamed
/// from the server row by row (nothing is held but the row being read),
/// flagged as quarantined under the given rules only.
pub fn up_to<'c>(
    conn: &'c mut PgConnection,
    model_id: i32,
    watermark: i64,
    rules: &'c [i64],
) -> impl Stream<Item = Result<FeedbackExample, sqlx::Error>> + Send + 'c {
    // The same predicate as the counts, restricted to the set's own rules.
    sqlx::query_as::<_, (i64, Option<Vec<f64>>, Option<String>, String, Option<String>, bool)>(
        "SELECT f.id, f.features, f.text, f.correct_label, f.source,
                cardinality($2::bigint[]) > 0 AND feedback_quarantined_under(f, $2)
         FROM feedback f WHERE f.model_id = $1 AND f.id <= $3 ORDER BY f.id",
    )
    .bind(model_id)
    .bind(rules)
    .bind(watermark)
    .fetch(conn)
    .map(|row| {
        let (id, features, text, label, source, quarantined) = row?;
        Ok(FeedbackExample {
            id,
            example: Example {
                input: stored_input(features, text)?,
                label,
            },
            source,
            quarantined,
        })
    })
}

/// The examples of the model's feedback rows `ids` (ascending), in that
/// order: one read of the id range they span, keeping only those rows.
///
/// # Errors
/// `RowNotFound` if one of them is not stored; `Database`.
pub async fn examples_of(conn: &mut PgConnection, model_id: i32, ids: &[i64]) -> Result<Vec<Example>, sqlx::Error> {
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
        return Ok(Vec::new());
    };
    let mut rows = sqlx::query_as::<_, (i64, Option<Vec<f64>>, Option<String>, String)>(
        "SELECT id, features, text, correct_label FROM feedback
         WHERE model_id = $1 AND id BETWEEN $2 AND $3 ORDER BY id",
    )
    .bind(model_id)
    .bind(first)
    .bind(last)
    .fetch(conn);
    let mut out = Vec::with_capacity(ids.len());
    let mut wanted = ids.iter().peekable();
    while let Some((id, features, text, label)) = rows.try_next().await? {
        if wanted.next_if_eq(&&id).is_some() {
            out.push(Example {
                input: stored_input(features, text)?,
                label,
            });
        }
    }
    if wanted.peek().is_some() {
        return Err(sqlx::Error::RowNotFound);
    }
    Ok(out)
}

/// A quarantine rule to add: the model's feedback from `source` and/or
/// received in `[received_from, received_until)` is left out of training
/// from now on.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQuarantine {
    pub model_id: i32,
    pub source: Option<String>,
    pub received_from: Option<chrono::DateTime<chrono::Utc>>,
    pub received_until: Option<chrono::DateTime<chrono::Utc>>,
    pub reason: String,
    pub actor: String,
    /// The run whose screening found it (`None`: an operator's rule).
    pub run_id: Option<uuid::Uuid>,
    /// What the rule was decided on (screening's figures).
    pub evidence: Option<serde_json::Value>,
}

/// Adds a quarantine rule; returns its id and how many stored rows it covers.
pub async fn quarantine(conn: &mut PgConnection, rule: &NewQuarantine) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "WITH rule AS (
            INSERT INTO feedback_quarantines (source, received_from, received_until, reason, actor, model_id,
                                              run_id, evidence)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
        )
        SELECT (SELECT id FROM rule),
               (SELECT count(*) FROM feedback f
                WHERE f.model_id = $6
                  AND ($1::text IS NULL OR f.source = $1)
                  AND ($2::timestamptz IS NULL OR f.received_at >= $2)
                  AND ($3::timestamptz IS NULL OR f.received_at < $3))",
    )
    .bind(&rule.source)
    .bind(rule.received_from)
    .bind(rule.received_until)
    .bind(&rule.reason)
    .bind(&rule.actor)
    .bind(rule.model_id)
    .bind(rule.run_id)
    .bind(&rule.evidence)
    .fetch_one(conn)
    .await
}

/// A quarantine rule as stored, with its release if it has one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct QuarantineRule {
    pub id: i64,
    pub source: Option<String>,
    pub received_from: Option<chrono::DateTime<chrono::Utc>>,
    pub received_until: Option<chrono::DateTime<chrono::Utc>>,
    pub reason: String,
    /// Who made it: an operator, or `screening`.
    pub actor: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The run whose screening found it.
    pub run_id: Option<uuid::Uuid>,
    /// Screening's figures behind it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub evidence: Option<serde_json::Value>,
    pub released_at: Option<chrono::DateTime<chrono::Utc>>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
}

const RULES: &str = "SELECT q.id, q.source, q.received_from, q.received_until, q.reason, q.actor, q.created_at,
                             q.run_id, q.evidence, r.released_at, r.actor AS released_by, r.reason AS release_reason
                      FROM feedback_quarantines q LEFT JOIN quarantine_releases r ON r.quarantine_id = q.id";

/// The model's quarantine rules, newest first, with their releases.
pub async fn quarantines(conn: &mut PgConnection, model_id: i32) -> Result<Vec<QuarantineRule>, sqlx::Error> {
    sqlx::query_as(&format!("{RULES} WHERE q.model_id = $1 ORDER BY q.id DESC"))
        .bind(model_id)
        .fetch_all(conn)
        .await
}

/// One quarantine rule by id, of any model.
pub async fn quarantine_rule(conn: &mut PgConnection, id: i64) -> Result<Option<QuarantineRule>, sqlx::Error> {
    sqlx::query_as(&format!("{RULES} WHERE q.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// What a release request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Released {
    /// Released now; the rule as it stands.
    Now(QuarantineRule),
    /// Released before (by the rule's first release, which stands).
    Already(QuarantineRule),
    /// No rule has that id.
    NoSuchRule,
}

/// Ends quarantine rule `id` for every training set merged from now on,
/// recording who and why (append-only: a release row, the rule stays).
/// Sets merged before keep the rule, so they still rebuild.
pub async fn release(conn: &mut PgConnection, id: i64, reason: &str, actor: &str) -> Result<Released, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO quarantine_releases (quarantine_id, model_id, reason, actor)
         SELECT id, model_id, $2, $3 FROM feedback_quarantines WHERE id = $1
         ON CONFLICT (quarantine_id) DO NOTHING",
    )
    .bind(id)
    .bind(reason)
    .bind(actor)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let rule = quarantine_rule(conn, id).await?;
    Ok(match (rule, inserted) {
        (None, _) => Released::NoSuchRule,
        (Some(rule), 1) => Released::Now(rule),
        (Some(rule), _) => Released::Already(rule),
    })
}

/// Feedback as accepted at the edge (validated there).
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeedback {
    pub model_id: i32,
    pub input: Input,
    pub correct_label: String,
    pub prediction_id: Option<uuid::Uuid>,
    pub predicted_label: Option<String>,
    pub model_version: Option<i32>,
    /// Who sent it: the sending key's name, set by the server (quarantine
    /// and screening go by it).
    pub source: Option<String>,
    /// The client's own label for it (the body's `source`); identifies nobody.
    pub sub_label: Option<String>,
}

/// Stores feedback rows, of any models and input kinds, in one statement
/// and returns their ids, in order.
pub async fn insert_many(conn: &mut PgConnection, rows: &[NewFeedback]) -> Result<Vec<i64>, sqlx::Error> {
    let inputs = InputColumns::of(rows.iter().map(|r| &r.input));
    sqlx::query_scalar(
        "INSERT INTO feedback (model_id, features, text, correct_label, prediction_id, predicted_label,
                              model_version, source, sub_label)
         SELECT model, CASE WHEN flen IS NULL THEN NULL ELSE $1[fstart : fstart + flen - 1] END, txt,
                label, pid, plabel, mversion, src, sub
         FROM unnest($2::int[], $3::int[], $4::int[], $5::text[], $6::text[], $7::uuid[], $8::text[],
                     $9::int[], $10::text[], $11::text[])
              WITH ORDINALITY AS t(model, fstart, flen, txt, label, pid, plabel, mversion, src, sub, i)
         ORDER BY i
         RETURNING id",
    )
    .bind(&inputs.flat)
    .bind(rows.iter().map(|r| r.model_id).collect::<Vec<_>>())
    .bind(&inputs.starts)
    .bind(&inputs.lengths)
    .bind(&inputs.texts)
    .bind(rows.iter().map(|r| r.correct_label.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.prediction_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.predicted_label.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.model_version).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.source.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.sub_label.as_deref()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}

/// Inputs of many rows as arrays one statement can bind: PostgreSQL arrays
/// are rectangular, so features travel flat with each row's start and
/// length (NULL for a text row), texts beside them (NULL for a tabular row).
#[derive(Debug, Default)]
pub struct InputColumns<'a> {
    pub flat: Vec<f64>,
    pub starts: Vec<Option<i32>>,
    pub lengths: Vec<Option<i32>>,
    pub texts: Vec<Option<&'a str>>,
}

impl<'a> InputColumns<'a> {
    /// The columns of `inputs`, in order.
    pub fn of(inputs: impl Iterator<Item = &'a Input>) -> Self {
        let mut columns = InputColumns::default();
        for input in inputs {
            match input {
                Input::Tabular(features) => {
                    columns.starts.push(Some(columns.flat.len() as i32 + 1));
                    columns.lengths.push(Some(features.len() as i32));
                    columns.flat.extend_from_slice(features);
                    columns.texts.push(None);
                }
                Input::Text(text) => {
                    columns.starts.push(None);
                    columns.lengths.push(None);
                    columns.texts.push(Some(text));
                }
            }
        }
        columns
    }
}
