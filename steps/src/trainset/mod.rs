//! The training set: a model's base examples plus all its feedback up to a
//! watermark, where a later row for the same input overrides earlier ones
//! (feedback beats the base data, the latest feedback beats older feedback).
//! Unusable or quarantined feedback, feedback whose input is a golden
//! row's (it would leak the golden set into training) and feedback that
//! [`crate::screening`] left out, is dropped and counted by reason. The
//! lineage says exactly what went in, and what screening decided.
//!
//! Built for ten million feedback rows: the feedback is streamed once into
//! compact records ([`scan`]), the rows are chosen on those ([`choose`]),
//! and only the chosen rows are read again, by id in chunks, to be hashed
//! ([`content`]) and, if the caller trains on them, kept. Merge keeps none:
//! it records the lineage; train keeps the training rows, validate the
//! recent ones.

mod choose;
mod content;
mod recorded;
pub mod scan;

pub(crate) use choose::{by_input, latest_rows};
pub use recorded::{of_run, rebuild_recorded, recent_of, record, recorded_lineage, recorded_recent};
pub use scan::{FeedbackRow, Scan};

use crate::data::{InputHash, input_hash};
use crate::error::StepsError;
use crate::ml::{Example, Split, Table, TableBuilder};
use crate::screening::{self, Exclusions};
use crate::store::datasets::{self, Dataset};
use crate::store::feedback::{self, FeedbackExample};
use choose::{Chosen, choose};
use content::ContentHash;
use serde::Serialize;
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashSet};

/// Feedback rows read back by id at a time: about 100 MB of wine rows.
pub const READ_CHUNK: usize = 500_000;

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
    /// Share of feedback inputs held out as the recent set ([`crate::recent`]).
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
    /// The rows, base first, in the compact form learners fit from
    /// (empty if built for its lineage only).
    pub table: Table,
    pub lineage: Lineage,
    /// Feedback held out as the recent set, latest label per input: made
    /// by [`merge`] in memory; a recorded set's is read by [`recorded_recent`].
    pub recent: Vec<Example>,
    /// The ids of the recent set's rows, ascending.
    pub recent_ids: Vec<i64>,
}

/// Whether a set built from the database holds its training rows; its
/// lineage and hash are complete either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The lineage alone (merge records it).
    Lineage,
    /// The rows that train too (train, reproduce).
    Training,
}

/// Feedback a training set leaves out by decision: the rows screening
/// dropped, and the share of inputs held out as the recent set.
#[derive(Debug, Clone, Copy)]
pub struct LeftOut<'a> {
    pub screened: &'a Exclusions,
    pub recent_share: f64,
}

/// What every set of a data set starts from: its base rows (with their
/// input hashes) and the golden inputs, which never train. Small: they
/// are the imported file.
#[derive(Debug, Clone)]
pub struct BaseData {
    pub base: Vec<Example>,
    pub base_hashes: Vec<InputHash>,
    pub golden: HashSet<InputHash>,
}

impl BaseData {
    /// The base rows and golden inputs given.
    pub fn new(base: Vec<Example>, golden: HashSet<InputHash>) -> Self {
        let base_hashes = base.iter().map(|e| input_hash(&e.input)).collect();
        Self {
            base,
            base_hashes,
            golden,
        }
    }

    /// Reads `dataset`'s base and golden splits.
    pub async fn read(conn: &mut PgConnection, dataset: &Dataset) -> Result<Self, sqlx::Error> {
        let base = datasets::examples(conn, dataset.id, Split::Base).await?;
        let golden = datasets::examples(conn, dataset.id, Split::Golden)
            .await?
            .iter()
            .map(|e| input_hash(&e.input))
            .collect();
        Ok(Self::new(base, golden))
    }
}

/// The chosen rows being hashed and, if kept, gathered into a table
/// sized for all of them up front, in order.
struct Assembly {
    hash: ContentHash,
    table: Option<TableBuilder>,
}

impl Assembly {
    fn new(keep: bool, rows: usize) -> Self {
        Self {
            hash: ContentHash::default(),
            table: keep.then(|| TableBuilder::with_capacity(rows)),
        }
    }

    /// Adds the next chosen row: usable by construction (the scan left out
    /// what a model cannot read; the base rows were checked on import).
    fn add(&mut self, example: &Example) {
        self.hash.add(example);
        if let Some(table) = &mut self.table {
            table.push(example).expect("a chosen row is one a learner can read");
        }
    }

    /// The table (empty unless kept) and the content hash.
    fn finish(self) -> (Table, String) {
        let table = self.table.unwrap_or_else(|| TableBuilder::with_capacity(0)).finish();
        (table, self.hash.finish())
    }
}

/// The lineage of the rows `chosen` from `scan`, hashed to `content_sha256`.
fn lineage_of(
    dataset: &Dataset,
    first_id: Option<i64>,
    chosen: Chosen,
    (watermark, quarantine_rules): (i64, Vec<i64>),
    left_out: LeftOut<'_>,
    content_sha256: String,
) -> Lineage {
    let base_rows = chosen.keep_base.iter().filter(|k| **k).count();
    let feedback_rows = chosen.feedback.len();
    Lineage {
        dataset_id: dataset.id,
        feedback_from: first_id.unwrap_or(watermark + 1),
        feedback_to: watermark,
        base_rows,
        feedback_rows,
        total_rows: base_rows + feedback_rows,
        dropped: chosen.dropped,
        content_sha256,
        quarantine_rules,
        recent_share: left_out.recent_share,
        screened_out: left_out.screened.by_reason(),
        screening: None,
    }
}

/// The examples of `ids` (ascending) among feedback held in memory (oldest
/// first): how a set or screening made from such rows reads them back.
pub fn held_examples(feedback: &[FeedbackExample], ids: &[i64]) -> Vec<Example> {
    ids.iter()
        .map(|id| {
            let at = feedback
                .binary_search_by_key(id, |f| f.id)
                .expect("a chosen id is one of the rows");
            feedback[at].example.clone()
        })
        .collect()
}

/// Merges base rows and feedback held in memory (oldest first) into a
/// training set with every row kept: the form benches and tests use.
///
/// A row stays unless a later usable feedback row has the same input: then
/// it is dropped as `base_overridden_by_feedback` (a base row) or
/// `feedback_superseded` (an earlier feedback row). Feedback whose input
/// is in `golden` (hashes of the golden rows' normalized inputs) is dropped
/// as `golden_input`. Feedback screening left out (`left_out.screened`) is
/// dropped for the reason it gives; feedback whose input [`recent::held_out`]
/// chooses at `left_out.recent_share` is held out as `recent_holdout`.
/// Inputs are the same when their normalized forms are ([`input_hash`]).
/// Rows keep their order, base first.
///
/// [`recent::held_out`]: crate::recent::held_out
pub fn merge(
    dataset: &Dataset,
    base: Vec<Example>,
    feedback: Vec<FeedbackExample>,
    watermark: i64,
    quarantine_rules: Vec<i64>,
    golden: &HashSet<InputHash>,
    left_out: LeftOut<'_>,
) -> TrainingSet {
    let base = BaseData::new(base, golden.clone());
    let scan = Scan::of(dataset, golden, &feedback);
    let chosen = choose(&scan, &base.base_hashes, left_out);
    let mut assembly = Assembly::new(true, 0);
    for (example, keep) in base.base.iter().zip(&chosen.keep_base) {
        if *keep {
            assembly.add(example);
        }
    }
    held_examples(&feedback, &chosen.feedback)
        .iter()
        .for_each(|e| assembly.add(e));
    let recent = held_examples(&feedback, &chosen.recent);
    let recent_ids = chosen.recent.clone();
    let (table, content_sha256) = assembly.finish();
    let lineage = lineage_of(
        dataset,
        scan.first_id,
        chosen,
        (watermark, quarantine_rules),
        left_out,
        content_sha256,
    );
    TrainingSet {
        table,
        lineage,
        recent,
        recent_ids,
    }
}

/// Builds the set `scan` and `base` make under `left_out`: chooses its rows,
/// drops the scan, reads the chosen feedback again by id, hashes every row
/// in order and holds them if `keep` asks for it.
pub async fn build(
    conn: &mut PgConnection,
    dataset: &Dataset,
    base: &BaseData,
    scan: Scan,
    (watermark, quarantine_rules): (i64, Vec<i64>),
    left_out: LeftOut<'_>,
    keep: Keep,
) -> Result<TrainingSet, StepsError> {
    let chosen = choose(&scan, &base.base_hashes, left_out);
    // Its records (48 bytes a feedback row) are not needed past the choice.
    let first_id = scan.first_id;
    drop(scan);
    let base_rows = chosen.keep_base.iter().filter(|k| **k).count();
    let mut assembly = Assembly::new(keep == Keep::Training, base_rows + chosen.feedback.len());
    for (example, keep) in base.base.iter().zip(&chosen.keep_base) {
        if *keep {
            assembly.add(example);
        }
    }
    for ids in chosen.feedback.chunks(READ_CHUNK) {
        for example in read_back(conn, dataset, ids).await? {
            assembly.add(&example);
        }
    }
    let (table, content_sha256) = assembly.finish();
    let recent_ids = chosen.recent.clone();
    let lineage = lineage_of(
        dataset,
        first_id,
        chosen,
        (watermark, quarantine_rules),
        left_out,
        content_sha256,
    );
    Ok(TrainingSet {
        table,
        lineage,
        recent: Vec::new(),
        recent_ids,
    })
}

/// The examples of feedback rows `ids` of the set's model, read again.
///
/// # Errors
/// `Inconsistent` if one of them is no longer stored; `Database`.
pub async fn read_back(conn: &mut PgConnection, dataset: &Dataset, ids: &[i64]) -> Result<Vec<Example>, StepsError> {
    feedback::examples_of(conn, dataset.model_id, ids)
        .await
        .map_err(|e| match e {
            sqlx::Error::RowNotFound => StepsError::Inconsistent(format!(
                "feedback rows {}..={} of model {} changed while a training set was built from them",
                ids[0],
                ids[ids.len() - 1],
                dataset.model_id
            )),
            e => StepsError::Database(e),
        })
}

/// Reads the base split and the model's feedback up to `watermark` and
/// merges them under the model's quarantine rules in force now, without
/// screening, holding out `recent_share` of the feedback inputs; the
/// training rows are kept.
pub async fn assemble(
    conn: &mut PgConnection,
    dataset: &Dataset,
    watermark: i64,
    recent_share: f64,
) -> Result<TrainingSet, StepsError> {
    let rules = feedback::quarantine_rules(conn, dataset.model_id).await?;
    let base = BaseData::read(conn, dataset).await?;
    let scan = Scan::read(conn, dataset, watermark, &rules, &base.golden).await?;
    let left_out = LeftOut {
        screened: &Exclusions::default(),
        recent_share,
    };
    build(conn, dataset, &base, scan, (watermark, rules), left_out, Keep::Training).await
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
        assert_eq!(
            set.table.to_examples(),
            vec![ex(1.0, 0), ex(3.0, 1), ex(2.0, 1), ex(4.0, 1)]
        );
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
            set.table.to_examples(),
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
        let with_feedback_label = |label| {
            merge(
                &dataset(),
                vec![ex(1.0, 0)],
                vec![fb(1, ex(2.0, label))],
                1,
                vec![],
                &none(),
                nothing_left_out(),
            )
        };
        let (a, b, c) = (with_feedback_label(1), with_feedback_label(1), with_feedback_label(0));
        assert_eq!(a.lineage.content_sha256, b.lineage.content_sha256);
        assert_ne!(a.lineage.content_sha256, c.lineage.content_sha256);
    }

    #[test]
    fn the_recent_set_keeps_the_latest_row_per_input_and_trains_none_of_it() {
        let feedback = vec![fb(1, ex(1.0, 0)), fb(2, ex(2.0, 1)), fb(3, ex(1.0, 1))];
        let all_held = LeftOut {
            recent_share: 1.0,
            ..nothing_left_out()
        };
        let set = merge(&dataset(), vec![ex(1.0, 0)], feedback, 3, vec![], &none(), all_held);
        // Input 1.0's latest row is id 3; the base row of 1.0 stays, as
        // held-out feedback overrides nothing.
        assert_eq!(set.recent, vec![ex(2.0, 1), ex(1.0, 1)]);
        assert_eq!(set.table.to_examples(), vec![ex(1.0, 0)]);
        assert_eq!(set.lineage.dropped, [("recent_holdout", 3)].into_iter().collect());
    }

    #[test]
    fn feedback_screening_left_out_is_dropped_and_overrides_nothing() {
        let screened = Exclusions::from_recorded([("screened_disagreement".to_owned(), vec![3])].into_iter().collect())
            .expect("a known reason");
        let left_out = LeftOut {
            screened: &screened,
            recent_share: 0.0,
        };
        let feedback = vec![fb(1, ex(1.0, 0)), fb(2, ex(2.0, 1)), fb(3, ex(1.0, 1))];
        let set = merge(&dataset(), vec![ex(1.0, 1)], feedback, 3, vec![], &none(), left_out);
        assert_eq!(set.table.to_examples(), vec![ex(1.0, 0), ex(2.0, 1)]);
        let expected: BTreeMap<&str, usize> = [("base_overridden_by_feedback", 1), ("screened_disagreement", 1)]
            .into_iter()
            .collect();
        assert_eq!(set.lineage.dropped, expected);
        assert_eq!(set.lineage.screened_out["screened_disagreement"], vec![3]);
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
