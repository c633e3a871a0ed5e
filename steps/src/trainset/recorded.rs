//! Recorded training sets: storing a set's lineage once per run, reading
//! it back, and rebuilding a recorded set row for row (train, reproduce)
//! or only its recent rows (validate), checked against the recorded hash.

use super::choose::choose;
use super::{BaseData, Keep, LeftOut, Lineage, READ_CHUNK, Scan, TrainingSet, build, read_back};
use crate::error::StepsError;
use crate::ml::Example;
use crate::screening::Exclusions;
use crate::store::datasets::{self, Dataset};
use sqlx::PgConnection;
use sqlx::types::Json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Stores a training set's lineage; for a run, once (a repeat returns the first).
pub async fn record(conn: &mut PgConnection, run_id: Option<Uuid>, lineage: &Lineage) -> Result<i64, sqlx::Error> {
    let dropped = serde_json::to_value(&lineage.dropped).unwrap_or_default();
    // Serialized straight into the statement: millions of ids at ten
    // million rows, never a JSON tree in memory.
    let screened_out = lineage.screening.is_some().then_some(Json(&lineage.screened_out));
    let screening = lineage
        .screening
        .as_ref()
        .map(|r| serde_json::to_value(r).unwrap_or_default());
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO training_sets (run_id, dataset_id, feedback_from, feedback_to, base_rows, feedback_rows,
                                    total_rows, dropped, content_sha256, quarantine_rules, recent_share, model_id,
                                    screened_out, screening)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, model_id, $12, $13 FROM datasets WHERE id = $2
         ON CONFLICT (run_id) DO NOTHING RETURNING id",
    )
    .bind(run_id)
    .bind(lineage.dataset_id)
    .bind(lineage.feedback_from)
    .bind(lineage.feedback_to)
    .bind(lineage.base_rows as i32)
    .bind(lineage.feedback_rows as i32)
    .bind(lineage.total_rows as i32)
    .bind(dropped)
    .bind(&lineage.content_sha256)
    .bind(&lineage.quarantine_rules)
    .bind(lineage.recent_share)
    .bind(screened_out)
    .bind(screening)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(id) => Ok(id),
        None => {
            sqlx::query_scalar("SELECT id FROM training_sets WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(conn)
                .await
        }
    }
}

/// The training set a run recorded, if it recorded one.
pub async fn of_run(conn: &mut PgConnection, run_id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM training_sets WHERE run_id = $1")
        .bind(run_id)
        .fetch_optional(conn)
        .await
}

/// A recorded training set's lineage as stored, as JSON (the field names of
/// [`Lineage`] but the screened-out ids, which are counted in `dropped`):
/// what merge reports, on its first attempt and on any retry.
pub async fn recorded_lineage(conn: &mut PgConnection, id: i64) -> Result<serde_json::Value, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT to_jsonb(ts) - 'id' - 'run_id' - 'created_at' - 'screened_out' FROM training_sets ts WHERE id = $1",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// What a training set was recorded with: all a rebuild needs.
struct Recorded {
    dataset: Dataset,
    watermark: i64,
    rules: Vec<i64>,
    content_sha256: String,
    screened: Exclusions,
    recent_share: f64,
}

impl Recorded {
    /// Training set `id`'s record: its quarantine rules (sets recorded
    /// before rules were listed use every rule stored now), the feedback
    /// screening left out and its recent share (none before it was
    /// recorded).
    async fn read(conn: &mut PgConnection, id: i64) -> Result<Self, StepsError> {
        type Row = (
            i32,
            i64,
            Vec<i64>,
            String,
            Option<Json<BTreeMap<String, Vec<i64>>>>,
            f64,
        );
        let (dataset_id, watermark, rules, content_sha256, screened_out, recent_share): Row = sqlx::query_as(
            "SELECT dataset_id, feedback_to,
                    coalesce(quarantine_rules,
                             ARRAY(SELECT q.id FROM feedback_quarantines q WHERE q.model_id = ts.model_id ORDER BY q.id)),
                    content_sha256, screened_out, coalesce(recent_share, 0)
             FROM training_sets ts WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        let screened = Exclusions::from_recorded(screened_out.map(|j| j.0).unwrap_or_default()).map_err(|reason| {
            StepsError::Inconsistent(format!(
                "training set {id} left out feedback for an unknown reason {reason:?}"
            ))
        })?;
        Ok(Self {
            dataset: datasets::by_id(conn, dataset_id).await?,
            watermark,
            rules,
            content_sha256,
            screened,
            recent_share,
        })
    }

    /// Its base data and the feedback up to its watermark under the rules
    /// it was merged under.
    async fn read_rows(&self, conn: &mut PgConnection) -> Result<(BaseData, Scan), StepsError> {
        let base = BaseData::read(conn, &self.dataset).await?;
        let scan = Scan::read(conn, &self.dataset, self.watermark, &self.rules, &base.golden).await?;
        Ok((base, scan))
    }

    fn left_out(&self) -> LeftOut<'_> {
        LeftOut {
            screened: &self.screened,
            recent_share: self.recent_share,
        }
    }
}

/// Rebuilds a recorded training set row for row: the same base data, the
/// feedback up to its watermark under the quarantine rules it was merged
/// under, less the feedback screening left out (without screening again)
/// and the recorded recent share, and checks the result against the
/// recorded hash. Holds the rows if `keep` asks for them.
///
/// # Errors
/// `Inconsistent` naming both hashes if the rows differ from the recorded
/// set, or if its screened-out ids name an unknown reason; `Database`.
pub async fn rebuild_recorded(conn: &mut PgConnection, id: i64, keep: Keep) -> Result<TrainingSet, StepsError> {
    let recorded = Recorded::read(conn, id).await?;
    let dataset = &recorded.dataset;
    let (base, scan) = recorded.read_rows(conn).await?;
    let made_of = (recorded.watermark, recorded.rules.clone());
    let set = build(conn, dataset, &base, scan, made_of, recorded.left_out(), keep).await?;
    if set.lineage.content_sha256 != recorded.content_sha256 {
        return Err(StepsError::Inconsistent(format!(
            "training set {id} was recorded with content sha256 {} but its rows now hash to {}",
            recorded.content_sha256, set.lineage.content_sha256
        )));
    }
    Ok(set)
}

/// The feedback rows `ids` (ascending) recorded training set `id` held out
/// as its recent set, read back.
///
/// # Errors
/// `Inconsistent` if its rows are gone; `Database`.
pub async fn recent_of(conn: &mut PgConnection, id: i64, ids: &[i64]) -> Result<Vec<Example>, StepsError> {
    let dataset_id: i32 = sqlx::query_scalar("SELECT dataset_id FROM training_sets WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let dataset = datasets::by_id(conn, dataset_id).await?;
    read_recent(conn, &dataset, ids).await
}

/// The feedback rows `ids` of `dataset`'s model, read back in chunks.
async fn read_recent(conn: &mut PgConnection, dataset: &Dataset, ids: &[i64]) -> Result<Vec<Example>, StepsError> {
    let mut recent = Vec::with_capacity(ids.len());
    for ids in ids.chunks(READ_CHUNK) {
        recent.extend(read_back(conn, dataset, ids).await?);
    }
    Ok(recent)
}

/// The feedback recorded training set `id` held out as its recent set,
/// latest label per input, oldest first, its newest `max_rows` rows only
/// ([`recent::capped`]): chosen as the rebuild chooses, reading back those
/// rows alone (train checked the set's hash).
///
/// [`recent::capped`]: crate::recent::capped
///
/// # Errors
/// `Inconsistent` if its screened-out ids name an unknown reason or its
/// rows are gone; `Database`.
pub async fn recorded_recent(conn: &mut PgConnection, id: i64, max_rows: usize) -> Result<Vec<Example>, StepsError> {
    let recorded = Recorded::read(conn, id).await?;
    let dataset = &recorded.dataset;
    let (base, scan) = recorded.read_rows(conn).await?;
    let chosen = choose(&scan, &base.base_hashes, recorded.left_out());
    let newest = crate::recent::capped(chosen.recent, max_rows);
    read_recent(conn, dataset, &newest).await
}
