//! Model selection inside the train step (issue 12): stratified k-fold
//! cross-validation on the training set only (the golden set is never
//! seen), over a small grid per learner; the candidate with the best mean
//! fold accuracy is fitted on the whole training set, unless the model's
//! incumbent learner (its champion's) scores within one standard error of
//! the paired fold differences of the best (the one-standard-error rule):
//! then the incumbent stays, so versions change learner only on evidence,
//! not on fold noise, and successive versions disagree on few rows (which
//! is what lets the gate's paired test tell an honest retrain from a worse
//! one on a small golden set). The record of the
//! choice (every candidate's fold scores, k, the seed) is stored with the
//! version, so a reader sees why this learner and a reproduction refits the
//! same one.
//!
//! The grids (first wins ties, so simpler and cheaper settings come first):
//! - `auto`, tabular: random forest (100 trees, sqrt(features) per split),
//!   logistic regression (l2 0.01, 0.001, 0.0001), decision tree (the
//!   default, and depth 6 with 10-row leaves).
//! - `auto`, text: TF-IDF 1-2 gram linear SVM (C 1 and 0.3), naive Bayes
//!   over word counts (alpha 1), and over 1-2 gram counts (alpha 1 and
//!   0.5: on the reviews bigram counts add about 1.5 points of golden
//!   accuracy to naive Bayes, as in scikit-learn, 0.774 -> 0.792).
//! - An explicit learner is not cross-validated: it is fitted as asked,
//!   and its record says so (no folds, no candidates, no incumbent). Its
//!   choice is made, so scores would change nothing, and at ten million
//!   rows the three fold fits were three quarters of the train step's fit.

use serde::{Deserialize, Serialize};

use super::forest::ForestParams;
use super::logistic::LogisticParams;
use super::metrics::evaluate_rows;
use super::rng::Rng;
use super::table::{InputRef, Rows, Table};
use super::text::{TextLearner, TextSettings};
use super::tree::TreeParams;
use super::{Classifier, InputKind, Learner, ModelError};

/// How `auto` cross-validates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelectionSettings {
    /// Number of folds (2 to 20).
    pub folds: usize,
    /// Seeds the assignment of rows to folds.
    pub seed: u64,
}

impl Default for SelectionSettings {
    /// Three folds: enough to rank the candidates, cheap enough for a
    /// retrain under ten seconds on two cores.
    fn default() -> Self {
        Self { folds: 3, seed: 12 }
    }
}

/// One grid point and its accuracy on each held-out fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub learner: Learner,
    pub fold_accuracy: Vec<f64>,
    pub mean_accuracy: f64,
}

/// The record of a selection, stored with the version. An explicit
/// learner's records `folds: 0` and no candidates: nothing was
/// cross-validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The learner the version was fitted with, settings included.
    pub chosen: Learner,
    /// The learner the model asked for (`auto` or an explicit one).
    pub requested: Learner,
    pub folds: usize,
    pub seed: u64,
    /// The grid, in order, with every fold score (the incumbent first
    /// when the grid lacks it).
    pub candidates: Vec<Candidate>,
    /// The champion's learner, kept unless beaten by more than the noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incumbent: Option<Learner>,
}

/// Cross-validates the grid of `auto` (and the `incumbent`, if any) on
/// `rows`, then fits the chosen candidate on all of them; fits an
/// explicit learner as it is.
///
/// Errors: [`ModelError::Empty`], [`ModelError::InvalidParams`] for fewer
/// than two folds, [`ModelError::Stopped`], and the learners' own errors.
pub fn select_and_fit(
    learner: &Learner,
    rows: Rows<'_>,
    incumbent: Option<&Learner>,
    stop: &dyn Fn() -> bool,
) -> Result<(Classifier, Selection), ModelError> {
    let kind = rows.kind().ok_or(ModelError::Empty)?;
    let Learner::Auto(settings) = learner else {
        let selection = Selection {
            chosen: learner.clone(),
            requested: learner.clone(),
            folds: 0,
            seed: 0,
            candidates: Vec::new(),
            incumbent: None,
        };
        return Ok((learner.fit_until(rows, stop)?, selection));
    };
    learner.check()?;
    let indices: Vec<u32> = rows.indices().map(|row| row as u32).collect();
    let folds = assign_folds(rows.table(), &indices, settings.folds, settings.seed);
    let mut grid = grid(learner, kind);
    let incumbent = incumbent.filter(|i| i.reads(kind) && !matches!(i, Learner::Auto(_)));
    if let Some(incumbent) = incumbent.filter(|i| !grid.contains(i)) {
        grid.insert(0, incumbent.clone());
    }
    let mut candidates = Vec::new();
    for candidate in grid {
        let fold_accuracy = (0..settings.folds)
            .map(|fold| score(&candidate, rows.table(), (&indices, &folds), fold, stop))
            .collect::<Result<Vec<f64>, ModelError>>()?;
        let mean_accuracy = fold_accuracy.iter().sum::<f64>() / fold_accuracy.len() as f64;
        candidates.push(Candidate {
            learner: candidate,
            fold_accuracy,
            mean_accuracy,
        });
    }
    let best = candidates.iter().fold(&candidates[0], |best, c| {
        if c.mean_accuracy > best.mean_accuracy { c } else { best }
    });
    let kept = incumbent
        .and_then(|i| candidates.iter().find(|c| c.learner == *i))
        .filter(|i| within_one_standard_error(i, best));
    let chosen = kept.unwrap_or(best).learner.clone();
    let classifier = chosen.fit_until(rows, stop)?;
    let selection = Selection {
        chosen,
        requested: learner.clone(),
        folds: settings.folds,
        seed: settings.seed,
        candidates,
        incumbent: incumbent.cloned(),
    };
    Ok((classifier, selection))
}

/// Whether `best`'s mean lead over `other` is at most one standard error
/// of their paired per-fold differences.
fn within_one_standard_error(other: &Candidate, best: &Candidate) -> bool {
    let differences: Vec<f64> = best
        .fold_accuracy
        .iter()
        .zip(&other.fold_accuracy)
        .map(|(b, o)| b - o)
        .collect();
    let k = differences.len() as f64;
    let mean = differences.iter().sum::<f64>() / k;
    let variance = differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (k - 1.0).max(1.0);
    mean <= (variance / k).sqrt()
}

/// The candidates `learner` searches for input of `kind`.
fn grid(learner: &Learner, kind: InputKind) -> Vec<Learner> {
    match (learner, kind) {
        (Learner::Auto(_), InputKind::Tabular) => {
            let deeper = TreeParams {
                max_depth: Some(6),
                min_weight_split: 20.0,
                min_weight_leaf: 10.0,
                ..TreeParams::default()
            };
            vec![
                Learner::RandomForest(ForestParams::default()),
                Learner::LogisticRegression(LogisticParams { l2: 0.01 }),
                Learner::LogisticRegression(LogisticParams { l2: 0.001 }),
                Learner::LogisticRegression(LogisticParams { l2: 0.0001 }),
                Learner::DecisionTree(TreeParams::default()),
                Learner::DecisionTree(deeper),
            ]
        }
        (Learner::Auto(_), InputKind::Text) => {
            let linear = |c| TextSettings {
                learner: TextLearner::LinearSvm { c },
                ..TextSettings::linear()
            };
            let bayes = |ngram_max, alpha| TextSettings {
                ngram_max,
                learner: TextLearner::MultinomialNb { alpha },
                ..TextSettings::default()
            };
            vec![
                Learner::TextLinear(linear(1.0)),
                Learner::TextLinear(linear(0.3)),
                Learner::NaiveBayes(bayes(1, 1.0)),
                Learner::NaiveBayes(bayes(2, 1.0)),
                Learner::NaiveBayes(bayes(2, 0.5)),
            ]
        }
        (explicit, _) => vec![explicit.clone()],
    }
}

/// The accuracy of `learner` fitted on every fold but `fold`, on `fold`:
/// both sides are lists of the table's rows (`rows`, whose folds are
/// `folds`), never copies of them.
fn score(
    learner: &Learner,
    table: &Table,
    (rows, folds): (&[u32], &[usize]),
    fold: usize,
    stop: &dyn Fn() -> bool,
) -> Result<f64, ModelError> {
    let (mut test, mut train) = (Vec::new(), Vec::new());
    for (&row, &f) in rows.iter().zip(folds) {
        if f == fold { &mut test } else { &mut train }.push(row);
    }
    if train.is_empty() || test.is_empty() {
        return Ok(0.0);
    }
    let classifier = learner.fit_until(table.subset(&train), stop)?;
    Ok(evaluate_rows(&classifier, table.subset(&test))?.accuracy)
}

/// Each row's fold (`rows` are table rows), stratified by class and
/// independent of the rows' order: within a class, identical inputs form
/// one group (so a duplicated row never scores its own copy), groups are
/// put in canonical order, shuffled by the seed, and dealt out to the folds
/// in turn.
fn assign_folds(table: &Table, rows: &[u32], folds: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let label = |a: usize| table.label(rows[a] as usize);
    let same = |a: usize, b: usize| {
        let (x, y) = (rows[a] as usize, rows[b] as usize);
        table
            .label(x)
            .cmp(table.label(y))
            .then_with(|| compare_inputs(table.input(x), table.input(y)))
    };
    order.sort_by(|&a, &b| same(a, b));
    let mut rng = Rng::new(seed, 0);
    let mut assigned = vec![0; rows.len()];
    for class in order.chunk_by(|&a, &b| label(a) == label(b)) {
        let mut groups: Vec<&[usize]> = class.chunk_by(|&a, &b| same(a, b).is_eq()).collect();
        rng.shuffle(&mut groups);
        for (position, group) in groups.into_iter().enumerate() {
            group.iter().for_each(|&row| assigned[row] = position % folds);
        }
    }
    assigned
}

/// A total order on inputs: texts by their bytes, features by value.
fn compare_inputs(a: InputRef<'_>, b: InputRef<'_>) -> std::cmp::Ordering {
    match (a, b) {
        (InputRef::Text(a), InputRef::Text(b)) => a.cmp(b),
        (InputRef::Tabular(a), InputRef::Tabular(b)) => a
            .iter()
            .zip(b)
            .map(|(x, y)| x.total_cmp(y))
            .fold(a.len().cmp(&b.len()), std::cmp::Ordering::then),
        (a, b) => a.kind().as_str().cmp(b.kind().as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::Example;
    use crate::ml::ModelKind;
    use crate::ml::winequality::{self, Split};

    fn table(examples: &[Example]) -> Table {
        Table::from_examples(examples).unwrap()
    }

    /// Every row of `examples`' table, in order.
    fn folds_of(examples: &[Example], folds: usize, seed: u64) -> Vec<usize> {
        let rows: Vec<u32> = (0..examples.len() as u32).collect();
        assign_folds(&table(examples), &rows, folds, seed)
    }

    #[test]
    fn auto_picks_a_stronger_learner_than_the_tree_for_wine_and_records_why() {
        let base = winequality::part(Split::Base);
        let learner = Learner::Auto(SelectionSettings::default());
        let (classifier, selection) = select_and_fit(&learner, table(&base).all(), None, &|| false).unwrap();
        for c in &selection.candidates {
            eprintln!(
                "{} {:?}: {:.4}",
                c.learner.name(),
                c.learner.settings(),
                c.mean_accuracy
            );
        }
        assert_eq!(selection.candidates.len(), 6);
        assert!(selection.candidates.iter().all(|c| c.fold_accuracy.len() == 3));
        assert_ne!(classifier.kind(), ModelKind::DecisionTree, "the tree loses on wine");
        assert_eq!(classifier.kind().as_str(), selection.chosen.name());
        let best = selection.candidates.iter().map(|c| c.mean_accuracy).fold(0.0, f64::max);
        let chosen = selection
            .candidates
            .iter()
            .find(|c| c.learner == selection.chosen)
            .unwrap();
        assert_eq!(chosen.mean_accuracy, best);
        // The same examples in another order: the same folds, choice and bytes.
        let reversed: Vec<Example> = base.iter().rev().cloned().collect();
        let (again, same) = select_and_fit(&learner, table(&reversed).all(), None, &|| false).unwrap();
        assert_eq!(same, selection);
        assert_eq!(again.to_bytes(), classifier.to_bytes());
    }

    #[test]
    fn the_incumbent_stays_within_the_folds_noise_and_goes_when_clearly_beaten() {
        let base = winequality::part(Split::Base);
        let learner = Learner::Auto(SelectionSettings::default());
        let (_, free) = select_and_fit(&learner, table(&base).all(), None, &|| false).unwrap();
        let mean_of = |selection: &Selection, l: &Learner| {
            selection
                .candidates
                .iter()
                .find(|c| c.learner == *l)
                .unwrap()
                .mean_accuracy
        };
        // A grid point close behind the winner stays when it is the incumbent.
        let runner_up = free
            .candidates
            .iter()
            .filter(|c| c.learner != free.chosen)
            .max_by(|a, b| a.mean_accuracy.total_cmp(&b.mean_accuracy))
            .unwrap();
        let winner = free.candidates.iter().find(|c| c.learner == free.chosen).unwrap();
        assert!(within_one_standard_error(runner_up, winner), "{free:?}");
        let (kept, selection) =
            select_and_fit(&learner, table(&base).all(), Some(&runner_up.learner), &|| false).unwrap();
        assert_eq!(selection.chosen, runner_up.learner);
        assert_eq!(selection.incumbent.as_ref(), Some(&runner_up.learner));
        assert_eq!(kept.kind().as_str(), runner_up.learner.name());
        // A stump far behind is replaced, and scored beside the grid.
        let stump = Learner::DecisionTree(TreeParams {
            max_depth: Some(1),
            ..TreeParams::default()
        });
        let (_, selection) = select_and_fit(&learner, table(&base).all(), Some(&stump), &|| false).unwrap();
        assert_eq!(selection.candidates[0].learner, stump);
        assert!(
            mean_of(&selection, &stump) < mean_of(&selection, &free.chosen) - 0.03,
            "{selection:?}"
        );
        assert_eq!(selection.chosen, free.chosen);
    }

    #[test]
    fn an_explicit_learner_is_fitted_as_asked_without_cross_validation() {
        let base = winequality::part(Split::Base);
        let learner = Learner::DecisionTree(TreeParams::default());
        let (classifier, selection) = select_and_fit(&learner, table(&base).all(), None, &|| false).unwrap();
        assert_eq!(classifier.kind(), ModelKind::DecisionTree);
        assert_eq!(selection.chosen, learner);
        assert_eq!((selection.folds, selection.candidates.len()), (0, 0), "nothing scored");
        // An incumbent of another learner is not considered either.
        let forest = Learner::RandomForest(ForestParams::default());
        let (_, again) = select_and_fit(&learner, table(&base).all(), Some(&forest), &|| false).unwrap();
        assert_eq!((again.chosen, again.incumbent), (learner.clone(), None));
        let bad = Learner::Auto(SelectionSettings { folds: 1, seed: 0 });
        assert!(matches!(
            select_and_fit(&bad, table(&base).all(), None, &|| false),
            Err(ModelError::InvalidParams(_))
        ));
    }

    #[test]
    fn folds_are_stratified_and_order_free() {
        let examples: Vec<Example> = (0..30)
            .map(|i| Example::tabular(vec![f64::from(i / 2)], if i < 12 { "a" } else { "b" }))
            .collect();
        let folds = folds_of(&examples, 3, 5);
        for fold in 0..3 {
            let of_a = (0..12).filter(|&i| folds[i] == fold).count();
            assert_eq!(of_a, 4, "each fold holds a third of class a");
        }
        assert!((0..15).all(|i| folds[2 * i] == folds[2 * i + 1]), "copies share a fold");
        let reversed: Vec<Example> = examples.iter().rev().cloned().collect();
        let again = folds_of(&reversed, 3, 5);
        assert!((0..30).all(|i| again[29 - i] == folds[i]));
    }
}
