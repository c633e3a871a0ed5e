//! The training set: a model's base examples plus all its feedback up to a
//! watermark, where a later row for the same input overrides earlier ones
//! (feedback beats the base data, the latest feedback beats older feedback).
//! Unusable or quarantined feedback, feedback whose input is a golden
//! row's (it would leak the golden set into training) and feedback that
//! [`crate::screening`] left out, is dropped and counted by reason. The
//! lineage says exactly what went in, and what screening decided.

use crate::data::{InputHash, input_hash};
use crate::error::StepsError;
use crate::ml::{Example, Input, Split};
use crate::recent;
use crate::screening::{self, Exclusions};
use crate::store::datasets::{self, Dataset};
use crate::store::feedback::{self, FeedbackExample};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// What a training set is made of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lineage {
    pub dataset_id: i32,
    /// Feedback ids in `[feedback_from, feedback_to]` were considered.
    pub feedback_from: i64,
    pub feedback_to: i64,
    pub base_rows: usize,
    pub feedback_rows: usize,
    pub total_rows: usize,
    /// Rows left out, by reason.
    pub dropped: BTreeMap<&'static str, usize>,
    /// sha256 over the merged rows in order.
    pub content_sha256: String,
    /// The quarantine rules the feedback was screened by (rules are
    /// append-only, so the same list always leaves out the same rows).
    pub quarantine_rules: Vec<i64>,
    /// Share of feedback inputs held out as the recent set ([`recent`]).
    pub recent_share: f64,
    /// Feedback ids screening left out, by reason: with the rules, all a
    /// rebuild needs to leave out the same rows without screening again.
    pub screened_out: BTreeMap<&'static str, Vec<i64>>,
    /// Screening's report (`None`: the set was not screened).
    pub screening: Option<screening::Report>,
}

/// The merged rows and their lineage.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSet {
    pub examples: Vec<Example>,
    pub lineage: Lineage,
    /// Feedback held out as the recent set, latest label per input.
    pub recent: Vec<Example>,
}

/// Why a feedback row could not be used as it is: an input the model
/// cannot read, or a class the data set does not have.
pub(crate) fn screen(dataset: &Dataset, example: &Example) -> Option<&'static str> {
    match &example.input {
        Input::Tabular(features) if dataset.n_features == 0 => Some(if features.is_empty() {
            "wrong_feature_count"
        } else {
            "wrong_input_kind"
        }),
        Input::Text(_) if dataset.n_features > 0 => Some("wrong_input_kind"),
        Input::Tabular(features) if features.len() != dataset.n_features as usize => Some("wrong_feature_count"),
        Input::Tabular(features) if features.iter().any(|x| !x.is_finite()) => Some("non_finite_feature"),
        Input::Text(text) if text.trim().is_empty() => Some("empty_text"),
        _ if !dataset.labels.contains(&example.label) => Some("unknown_label"),
        _ => None,
    }
}

/// Merges base rows and feedback (oldest first) into a training set.
///
/// A row stays unless a later usable feedback row has the same input: then
/// it is dropped as `base_overridden_by_feedback` (a base row) or
/// `feedback_superseded` (an earlier feedback row). Feedback whose input
/// is in `golden` (hashes of the golden rows' normalized inputs) is dropped
/// as `golden_input`. Feedback screening left out (`left_out.screened`) is
/// dropped for the reason it gives; feedback whose input [`recent::held_out`]
/// chooses at `left_out.recent_share` is held out as `recent_holdout`.
/// Inputs are the same when their normalized forms are ([`input_hash`]).
/// Rows keep their order, base first. Built for a million feedback rows:
/// one hash set over the usable feedback, one hash per row.
pub fn merge(
    dataset: &Dataset,
    base: Vec<Example>,
    feedback: Vec<FeedbackExample>,
    watermark: i64,
    quarantine_rules: Vec<i64>,
    golden: &HashSet<InputHash>,
    left_out: LeftOut<'_>,
) -> TrainingSet {
    let feedback_from = feedback.first().map_or(watermark + 1, |f| f.id);
    let mut dropped: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut usable: Vec<(Example, InputHash)> = Vec::with_capacity(feedback.len());
    let mut held_out: Vec<(Example, InputHash)> = Vec::new();
    for FeedbackExample {
        id,
        example,
        quarantined,
        ..
    } in feedback
    {
        if quarantined {
            *dropped.entry("quarantined").or_default() += 1;
        } else if let Some(reason) = left_out.screened.reason(id) {
            *dropped.entry(reason).or_default() += 1;
        } else if let Some(reason) = screen(dataset, &example) {
            *dropped.entry(reason).or_default() += 1;
        } else {
            let hash = input_hash(&example.input);
            if golden.contains(&hash) {
                *dropped.entry("golden_input").or_default() += 1;
            } else if recent::held_out(&hash, left_out.recent_share) {
                *dropped.entry("recent_holdout").or_default() += 1;
                held_out.push((example, hash));
            } else {
                usable.push((example, hash));
            }
        }
    }
    let (keep_base, keep_feedback) = latest_rows(usable.iter().map(|(_, hash)| hash), &base);
    let base_rows = keep_base.iter().filter(|k| **k).count();
    let feedback_rows = keep_feedback.iter().filter(|k| **k).count();
    if base_rows < base.len() {
        *dropped.entry("base_overridden_by_feedback").or_default() += base.len() - base_rows;
    }
    if feedback_rows < usable.len() {
        *dropped.entry("feedback_superseded").or_default() += usable.len() - feedback_rows;
    }
    let mut examples: Vec<Example> = Vec::with_capacity(base_rows + feedback_rows);
    examples.extend(
        base.into_iter()
            .zip(keep_base)
            .filter_map(|(e, keep)| keep.then_some(e)),
    );
    examples.extend(
        usable
            .into_iter()
            .zip(keep_feedback)
            .filter_map(|((e, _), keep)| keep.then_some(e)),
    );
    let lineage = Lineage {
        dataset_id: dataset.id,
        feedback_from,
        feedback_to: watermark,
        base_rows,
        feedback_rows,
        total_rows: examples.len(),
        dropped,
        content_sha256: content_hash(&examples),
        quarantine_rules,
        recent_share: left_out.recent_share,
        screened_out: left_out.screened.by_reason(),
        screening: None,
    };
    TrainingSet {
        examples,
        lineage,
        recent: recent::latest_per_input(held_out),
    }
}

/// Which rows stay, as (base, feedback) flags: those with no later
/// feedback row for the same input. Walking the feedback (`hashes`, oldest
/// first) from the newest, an input's first sight keeps it.
pub(crate) fn latest_rows<'a>(
    hashes: impl DoubleEndedIterator<Item = &'a InputHash> + ExactSizeIterator,
    base: &[Example],
) -> (Vec<bool>, Vec<bool>) {
    let mut seen: HashSet<InputHash> = HashSet::with_capacity(hashes.len());
    let mut keep_feedback = vec![false; hashes.len()];
    for (i, hash) in hashes.enumerate().rev() {
        keep_feedback[i] = seen.insert(*hash);
    }
    let keep_base: Vec<bool> = if seen.is_empty() {
        vec![true; base.len()]
    } else {
        base.iter().map(|e| !seen.contains(&input_hash(&e.input))).collect()
    };
    (keep_base, keep_feedback)
}

/// sha256 over every row's input then label, streamed: features as f64
/// little-endian, a text as its length (u64 LE) and UTF-8 bytes; a label
/// that is a decimal integer as that i64 LE (as earlier releases, whose
/// labels were integers, hashed it, so their recorded sets still rebuild),
/// any other as 0xFF, its length and bytes.
fn content_hash(examples: &[Example]) -> String {
    const CHUNK: usize = 64 * 1024;
    let mut hasher = Sha256::new();
    let mut bytes = Vec::with_capacity(CHUNK + 256);
    for example in examples {
        match &example.input {
            Input::Tabular(features) => {
                for x in features {
                    bytes.extend_from_slice(&x.to_le_bytes());
                }
            }
            Input::Text(text) => {
                bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
                bytes.extend_from_slice(text.as_bytes());
            }
        }
        match example.label.parse::<i64>() {
            Ok(integer) if integer.to_string() == example.label => bytes.extend_from_slice(&integer.to_le_bytes()),
            _ => {
                bytes.push(0xFF);
                bytes.extend_from_slice(&(example.label.len() as u64).to_le_bytes());
                bytes.extend_from_slice(example.label.as_bytes());
            }
        }
        if bytes.len() >= CHUNK {
            hasher.update(&bytes);
            bytes.clear();
        }
    }
    hasher.update(&bytes);
    hex::encode(hasher.finalize())
}

/// Reads the base split and the model's feedback up to `watermark` and
/// merges them under the model's quarantine rules in force now, without
/// screening, holding out `recent_share` of the feedback inputs.
pub async fn assemble(
    conn: &mut PgConnection,
    dataset: &Dataset,
    watermark: i64,
    recent_share: f64,
) -> Result<TrainingSet, sqlx::Error> {
    let rules = feedback::quarantine_rules(conn, dataset.model_id).await?;
    let inputs = MergeInputs::read(conn, dataset, watermark, &rules).await?;
    let left_out = LeftOut {
        screened: &Exclusions::default(),
        recent_share,
    };
    Ok(inputs.merge(dataset, watermark, rules, left_out))
}

/// Feedback a training set leaves out by decision: the rows screening
/// dropped, and the share of inputs held out as the recent set.
#[derive(Debug, Clone, Copy)]
pub struct LeftOut<'a> {
    pub screened: &'a Exclusions,
    pub recent_share: f64,
}

/// What a training set is merged from: the base split, the golden inputs
/// and the feedback up to a watermark, flagged under a list of rules.
#[derive(Debug, Clone)]
pub struct MergeInputs {
    pub base: Vec<Example>,
    pub golden: HashSet<InputHash>,
    pub feedback: Vec<FeedbackExample>,
}

impl MergeInputs {
    /// Reads them for `dataset`, its model's feedback up to `watermark`
    /// flagged as quarantined under `rules`.
    pub async fn read(
        conn: &mut PgConnection,
        dataset: &Dataset,
        watermark: i64,
        rules: &[i64],
    ) -> Result<Self, sqlx::Error> {
        let base = datasets::examples(conn, dataset.id, Split::Base).await?;
        let golden: HashSet<InputHash> = datasets::examples(conn, dataset.id, Split::Golden)
            .await?
            .iter()
            .map(|e| input_hash(&e.input))
            .collect();
        let feedback = feedback::up_to(conn, dataset.model_id, watermark, rules).await?;
        Ok(Self { base, golden, feedback })
    }

    /// [`merge`]s them.
    pub fn merge(self, dataset: &Dataset, watermark: i64, rules: Vec<i64>, left_out: LeftOut<'_>) -> TrainingSet {
        merge(
            dataset,
            self.base,
            self.feedback,
            watermark,
            rules,
            &self.golden,
            left_out,
        )
    }
}

/// Stores a training set's lineage; for a run, once (a repeat returns the first).
pub async fn record(conn: &mut PgConnection, run_id: Option<Uuid>, lineage: &Lineage) -> Result<i64, sqlx::Error> {
    let dropped = serde_json::to_value(&lineage.dropped).unwrap_or_default();
    let screened_out = lineage
        .screening
        .is_some()
        .then(|| serde_json::to_value(&lineage.screened_out).unwrap_or_default());
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

/// Rebuilds a recorded training set row for row: the same base data, the
/// feedback up to its watermark and the quarantine rules it was merged
/// under (sets recorded before rules were listed use every rule stored
/// now) and the feedback screening left out, without screening again,
/// holding out the recorded recent share (none before it was recorded), and
/// checks the result against the recorded hash.
///
/// # Errors
/// `Inconsistent` naming both hashes if the rows differ from the recorded
/// set, or if its screened-out ids name an unknown reason; `Database`.
pub async fn rebuild_recorded(conn: &mut PgConnection, id: i64) -> Result<TrainingSet, StepsError> {
    type Recorded = (
        i32,
        i64,
        Vec<i64>,
        String,
        Option<sqlx::types::Json<BTreeMap<String, Vec<i64>>>>,
        f64,
    );
    let (dataset_id, watermark, rules, recorded_sha256, screened_out, recent_share): Recorded = sqlx::query_as(
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
    let dataset = datasets::by_id(conn, dataset_id).await?;
    let inputs = MergeInputs::read(conn, &dataset, watermark, &rules).await?;
    let left_out = LeftOut {
        screened: &screened,
        recent_share,
    };
    let set = inputs.merge(&dataset, watermark, rules, left_out);
    if set.lineage.content_sha256 != recorded_sha256 {
        return Err(StepsError::Inconsistent(format!(
            "training set {id} was recorded with content sha256 {recorded_sha256} but its rows now hash to {}",
            set.lineage.content_sha256
        )));
    }
    Ok(set)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tabular data set of two features and the classes "0" and "1".
    pub(crate) fn dataset() -> Dataset {
        Dataset {
            id: 1,
            model_id: 1,
            name: "d".into(),
            version: 1,
            n_features: 2,
            feature_names: vec!["x".into(), "y".into()],
            labels: vec!["0".into(), "1".into()],
        }
    }

    fn ex(x: f64, label: i32) -> Example {
        Example::tabular(vec![x, 0.5], label.to_string())
    }

    /// Nothing screened out, nothing held out.
    fn nothing_left_out() -> LeftOut<'static> {
        static NONE: std::sync::LazyLock<Exclusions> = std::sync::LazyLock::new(Exclusions::default);
        LeftOut {
            screened: &NONE,
            recent_share: 0.0,
        }
    }

    fn none() -> HashSet<InputHash> {
        HashSet::new()
    }

    fn fb(id: i64, example: Example) -> FeedbackExample {
        FeedbackExample {
            id,
            example,
            source: None,
            quarantined: false,
        }
    }

    #[test]
    fn the_latest_label_for_an_input_wins_and_drops_are_counted() {
        let base = vec![ex(1.0, 0), ex(2.0, 0), ex(2.0, 0), ex(3.0, 1)];
        let feedback = vec![
            fb(10, ex(2.0, 1)),                       // overrides both base rows for 2.0
            fb(11, ex(4.0, 0)),                       // new input
            fb(12, ex(4.0, 1)),                       // supersedes feedback 11
            fb(13, Example::tabular(vec![1.0], "0")), // wrong width
            fb(14, ex(f64::NAN, 0)),                  // not finite
            fb(15, ex(5.0, 7)),                       // unknown label
            FeedbackExample {
                quarantined: true,
                ..fb(16, ex(1.0, 1))
            }, // quarantined: no effect
            fb(17, Example::text("a text", "0")),     // a text for a tabular model
            fb(18, ex(9.0, 0)),                       // a golden row's input
        ];
        let golden: HashSet<InputHash> = [input_hash(&ex(9.0, 1).input)].into_iter().collect();
        let set = merge(&dataset(), base, feedback, 18, vec![], &golden, nothing_left_out());
        assert_eq!(set.examples, vec![ex(1.0, 0), ex(3.0, 1), ex(2.0, 1), ex(4.0, 1)]);
        let l = &set.lineage;
        assert_eq!((l.base_rows, l.feedback_rows, l.total_rows), (2, 2, 4));
        assert_eq!((l.feedback_from, l.feedback_to), (10, 18));
        let expected: BTreeMap<&str, usize> = [
            ("base_overridden_by_feedback", 2),
            ("feedback_superseded", 1),
            ("golden_input", 1),
            ("non_finite_feature", 1),
            ("quarantined", 1),
            ("unknown_label", 1),
            ("wrong_feature_count", 1),
            ("wrong_input_kind", 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(l.dropped, expected);
    }

    #[test]
    fn text_feedback_is_screened_on_its_normalized_input() {
        let dataset = Dataset {
            n_features: 0,
            feature_names: vec![],
            labels: vec!["neg".into(), "pos".into()],
            ..dataset()
        };
        let base = vec![Example::text("a dull plot", "neg"), Example::text("fine acting", "pos")];
        let golden: HashSet<InputHash> = [input_hash(&Example::text("Great movie", "pos").input)]
            .into_iter()
            .collect();
        let feedback = vec![
            fb(1, Example::text("  GREAT\tmovie ", "neg")), // a golden row's input, written differently
            fb(2, Example::text("A  Dull Plot", "pos")),    // overrides the base row
            fb(3, Example::text("   ", "pos")),             // empty
            fb(4, Example::tabular(vec![1.0], "pos")),      // a tabular input for a text model
            fb(5, Example::text("loved it", "meh")),        // unknown class
            fb(6, Example::text("loved it", "pos")),
        ];
        let set = merge(&dataset, base, feedback, 6, vec![], &golden, nothing_left_out());
        assert_eq!(
            set.examples,
            vec![
                Example::text("fine acting", "pos"),
                Example::text("A  Dull Plot", "pos"),
                Example::text("loved it", "pos"),
            ]
        );
        let expected: BTreeMap<&str, usize> = [
            ("base_overridden_by_feedback", 1),
            ("empty_text", 1),
            ("golden_input", 1),
            ("unknown_label", 1),
            ("wrong_input_kind", 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.lineage.dropped, expected);
        assert_eq!((set.lineage.base_rows, set.lineage.feedback_rows), (1, 2));
    }

    #[test]
    fn the_same_rows_give_the_same_hash_and_different_rows_another() {
        let a = merge(
            &dataset(),
            vec![ex(1.0, 0)],
            vec![fb(1, ex(2.0, 1))],
            1,
            vec![],
            &none(),
            nothing_left_out(),
        );
        let b = merge(
            &dataset(),
            vec![ex(1.0, 0)],
            vec![fb(1, ex(2.0, 1))],
            1,
            vec![],
            &none(),
            nothing_left_out(),
        );
        let c = merge(
            &dataset(),
            vec![ex(1.0, 0)],
            vec![fb(1, ex(2.0, 0))],
            1,
            vec![],
            &none(),
            nothing_left_out(),
        );
        assert_eq!(a.lineage.content_sha256, b.lineage.content_sha256);
        assert_ne!(a.lineage.content_sha256, c.lineage.content_sha256);
    }

    #[test]
    fn the_streamed_hash_is_the_hash_of_all_rows_at_once() {
        // More rows than one chunk of the streamed hash.
        let rows: Vec<Example> = (0..10_000).map(|i| ex(f64::from(i) / 7.0, i % 2)).collect();
        let mut bytes = Vec::new();
        for e in &rows {
            for x in e.input.features().unwrap() {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            bytes.extend_from_slice(&e.label.parse::<i64>().unwrap().to_le_bytes());
        }
        assert_eq!(content_hash(&rows), crate::ml::sha256_hex(&bytes));
    }

    #[test]
    fn without_feedback_the_range_is_empty() {
        let set = merge(
            &dataset(),
            vec![ex(1.0, 0)],
            vec![],
            0,
            vec![],
            &none(),
            nothing_left_out(),
        );
        assert_eq!((set.lineage.feedback_from, set.lineage.feedback_to), (1, 0));
        assert_eq!(set.lineage.total_rows, 1);
    }
}
