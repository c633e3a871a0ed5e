//! Pass one over a training set's feedback: every row up to the watermark
//! is read once, in id order, and what is unusable, quarantined or a golden
//! row's input is only counted; a usable row is kept as a compact record
//! (id, input hash, source, class), 48 bytes instead of the row itself, so
//! ten million rows fit in about 480 MB. The rows that end up training are
//! read again by id afterwards ([`crate::store::feedback::examples_of`]).

use crate::data::{InputHash, input_hash};
use crate::ml::{Example, Input};
use crate::store::datasets::Dataset;
use crate::store::feedback::{self, FeedbackExample};
use futures_util::TryStreamExt;
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Why a feedback row could not be used as it is: an input the model
/// cannot read, or a class the data set does not have.
pub(crate) fn unusable(dataset: &Dataset, example: &Example) -> Option<&'static str> {
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

/// A usable feedback row, without its input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackRow {
    pub id: i64,
    /// Its normalized input's hash ([`input_hash`]).
    pub hash: InputHash,
    /// Index into the scan's sources, plus one (0: sent without a source).
    source: u32,
    /// Index of its class in the data set's labels.
    label: u32,
}

/// The feedback up to a watermark: the usable rows, oldest first, and the
/// others counted by reason.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The first feedback id read (usable or not).
    pub first_id: Option<i64>,
    /// Rows left out, by reason: `quarantined`, `golden_input` and the
    /// reasons of [`unusable`].
    pub dropped: BTreeMap<&'static str, usize>,
    /// Usable rows (not quarantined, readable, not a golden input), by id.
    pub rows: Vec<FeedbackRow>,
    labels: Vec<String>,
    sources: Vec<String>,
    source_index: HashMap<String, u32>,
}

impl Scan {
    /// An empty scan for `dataset`'s feedback.
    fn new(dataset: &Dataset) -> Self {
        Self {
            labels: dataset.labels.clone(),
            ..Self::default()
        }
    }

    /// Streams the model's feedback up to `watermark`, quarantined under
    /// `rules`, leaving out inputs in `golden`.
    pub async fn read(
        conn: &mut PgConnection,
        dataset: &Dataset,
        watermark: i64,
        rules: &[i64],
        golden: &HashSet<InputHash>,
    ) -> Result<Self, sqlx::Error> {
        let mut scan = Self::new(dataset);
        let mut rows = std::pin::pin!(feedback::up_to(conn, dataset.model_id, watermark, rules));
        while let Some(row) = rows.try_next().await? {
            scan.push(dataset, golden, row);
        }
        Ok(scan)
    }

    /// The scan of feedback rows held in memory (oldest first).
    pub fn of(dataset: &Dataset, golden: &HashSet<InputHash>, feedback: &[FeedbackExample]) -> Self {
        let mut scan = Self::new(dataset);
        for row in feedback {
            scan.push(dataset, golden, row.clone());
        }
        scan
    }

    /// Counts or keeps the next row.
    fn push(&mut self, dataset: &Dataset, golden: &HashSet<InputHash>, row: FeedbackExample) {
        self.first_id.get_or_insert(row.id);
        let dropped = if row.quarantined {
            Some("quarantined")
        } else {
            unusable(dataset, &row.example)
        };
        if let Some(reason) = dropped {
            *self.dropped.entry(reason).or_default() += 1;
            return;
        }
        let hash = input_hash(&row.example.input);
        if golden.contains(&hash) {
            *self.dropped.entry("golden_input").or_default() += 1;
            return;
        }
        let label = self
            .labels
            .iter()
            .position(|l| *l == row.example.label)
            .expect("a usable row's class is one of the data set's") as u32;
        let source = match row.source {
            None => 0,
            Some(name) => {
                let next = self.sources.len() as u32 + 1;
                *self.source_index.entry(name).or_insert_with_key(|name| {
                    self.sources.push(name.clone());
                    next
                })
            }
        };
        self.rows.push(FeedbackRow {
            id: row.id,
            hash,
            source,
            label,
        });
    }

    /// Who sent `row`, if they said.
    pub fn source(&self, row: &FeedbackRow) -> Option<&str> {
        row.source.checked_sub(1).map(|i| self.sources[i as usize].as_str())
    }

    /// The class `row` gives its input.
    pub fn label(&self, row: &FeedbackRow) -> &str {
        &self.labels[row.label as usize]
    }
}
