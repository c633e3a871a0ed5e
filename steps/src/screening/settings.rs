//! The screening's thresholds, with defaults that hold on noisy data (wine's
//! out-of-fold error is about 40%) and on an honest source as big as the
//! base data; the service's config may override each one.

use serde::{Deserialize, Serialize};

/// How merge screens feedback before training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScreeningSettings {
    /// Off: merge leaves every usable feedback row in, as before screening
    /// (for a model whose every source is trusted, or to test the gate alone).
    pub enabled: bool,
    /// Folds of the out-of-fold fit (each row is judged by a model that
    /// never saw it).
    pub folds: usize,
    /// At most this many rows fit each fold's model (a deterministic
    /// stride sample beyond it), so screening a million feedback rows
    /// costs k bounded fits plus one prediction a row.
    pub max_fit_rows: usize,
    /// An out-of-fold prediction at least this confident that disagrees
    /// with a row's label flags the row.
    pub confidence: f64,
    /// A source is judged on at least this many rows.
    pub min_rows: usize,
    /// A source's flagged share must exceed the base data's by at least
    /// this much ...
    pub min_excess: f64,
    /// ... and be that high with a one-sided p-value at most this (the
    /// binomial test of the flagged share, the bound of the probability gap):
    /// 0.001, because every source is tested again at every run, and an
    /// honest source tested a hundred times at 0.01 would be quarantined by
    /// chance more often than not (measured: an honest source of 25 wine
    /// rows reached p = 0.006 once under the logistic learner).
    pub significance: f64,
    /// The mean probability out-of-fold models give a source's labels, as
    /// a share of their top class's (1: the model's own answer), must be
    /// at least this much below what base rows of the same classes get,
    /// with a one-sided t-test p-value at most `significance`, to
    /// quarantine it: 0.1, where honest sources measured within 0.01 and
    /// the attacks 0.28 and more (BENCHMARKS.md). A gap, not a count of
    /// standard deviations: on data a model separates perfectly the base
    /// rows have no spread, and any honest novelty would be infinitely
    /// many of them.
    pub min_gap: f64,
    /// A source that makes up at least this share of the training set is
    /// quarantined whatever its labels: 0.5, so an honest source may grow
    /// as big as the base data itself, but no single source may outvote it.
    pub max_training_share: f64,
    /// Sources whose labels win a conflict and are never quarantined by
    /// screening (an operator's own corrections, say).
    pub trusted_sources: Vec<String>,
}

impl Default for ScreeningSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            folds: 5,
            max_fit_rows: 20_000,
            confidence: 0.6,
            min_rows: 10,
            min_excess: 0.1,
            significance: 0.001,
            min_gap: 0.1,
            max_training_share: 0.5,
            trusted_sources: Vec::new(),
        }
    }
}
