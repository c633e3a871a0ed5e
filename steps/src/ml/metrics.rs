//! Evaluation of a model on labelled examples: the numbers the validation
//! gate judges and the dashboards show (accuracy, macro-F1, per-class
//! recall and precision, confusion matrix).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::table::{InputRef, Rows};
use super::{Classifier, Example, ModelError};

/// How a model did on one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Examples whose true label is this class.
    pub support: usize,
    /// Share of the support predicted as this class; 0 without support.
    pub recall: f64,
    /// Share of the predictions of this class that were right; 0 without
    /// predictions.
    pub precision: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
}

/// Counts of (true label, predicted label) pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// Row and column labels, ascending.
    pub labels: Vec<String>,
    /// `counts[row][col]`: examples of true label `labels[row]` predicted as
    /// `labels[col]`.
    pub counts: Vec<Vec<u64>>,
}

/// A model's scores on a set of examples.
///
/// Classes are those that occur in the truth or in the predictions; a class
/// the model never predicts and the set never contains does not exist here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Examples evaluated.
    pub n: usize,
    /// Share of examples predicted right.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 over all classes in `per_class`,
    /// so a class the model invents (predicted, never true) counts as an F1
    /// of 0 (scikit-learn's `f1_score(average="macro")` over the same labels).
    pub macro_f1: f64,
    /// Scores per class.
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// Confusion matrix over the same classes.
    pub confusion: Confusion,
}

/// Predicts every example and scores the predictions; also returns, per
/// example, whether the model was right (for paired comparisons).
///
/// Errors: [`ModelError::Empty`] for no examples, and the errors of
/// [`Classifier::predict`] for an example the model cannot take.
pub fn evaluate(model: &Classifier, examples: &[Example]) -> Result<(Metrics, Vec<bool>), ModelError> {
    if examples.is_empty() {
        return Err(ModelError::Empty);
    }
    let pairs = examples
        .iter()
        .map(|e| Ok((e.label.as_str(), predicted(model, &e.input)?)))
        .collect::<Result<Vec<(&str, &str)>, ModelError>>()?;
    let correct = pairs.iter().map(|(truth, predicted)| truth == predicted).collect();
    Ok((tally(count(pairs)), correct))
}

/// [`evaluate`] on table rows, without the per-row answers: its memory
/// does not grow with the rows (the train step scores millions).
///
/// Errors: as [`evaluate`].
pub fn evaluate_rows(model: &Classifier, rows: Rows<'_>) -> Result<Metrics, ModelError> {
    if rows.is_empty() {
        return Err(ModelError::Empty);
    }
    let table = rows.table();
    let mut counts = BTreeMap::new();
    for row in rows.indices() {
        *counts
            .entry((table.label(row), predicted(model, table.input(row))?))
            .or_default() += 1;
    }
    Ok(tally(counts))
}

/// The class name `model` predicts for `input`, borrowed from its classes.
fn predicted<'m, 'i>(model: &'m Classifier, input: impl Into<InputRef<'i>>) -> Result<&'m str, ModelError> {
    let label = model.predict(input)?.label;
    Ok(model
        .classes()
        .iter()
        .find(|c| **c == label)
        .expect("a model predicts one of its classes"))
}

/// How often each (true label, predicted label) pair occurs.
fn count<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<(&'a str, &'a str), u64> {
    let mut counts = BTreeMap::new();
    for pair in pairs {
        *counts.entry(pair).or_default() += 1;
    }
    counts
}

/// Scores the counts of (true label, predicted label) pairs.
fn tally(pairs: BTreeMap<(&str, &str), u64>) -> Metrics {
    let labels: Vec<String> = pairs
        .keys()
        .flat_map(|&(truth, predicted)| [truth, predicted])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let position = |label: &str| labels.partition_point(|l| l.as_str() < label);
    let mut counts = vec![vec![0u64; labels.len()]; labels.len()];
    let mut n = 0;
    for (&(truth, predicted), &times) in &pairs {
        counts[position(truth)][position(predicted)] += times;
        n += times;
    }

    let per_class: BTreeMap<String, ClassMetrics> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let right = counts[i][i];
            let support: u64 = counts[i].iter().sum();
            let predicted: u64 = counts.iter().map(|row| row[i]).sum();
            let recall = ratio(right, support);
            let precision = ratio(right, predicted);
            let f1 = if recall + precision > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            let support = usize::try_from(support).expect("support counts fit in usize");
            (
                label.clone(),
                ClassMetrics {
                    support,
                    recall,
                    precision,
                    f1,
                },
            )
        })
        .collect();

    let right: u64 = (0..labels.len()).map(|i| counts[i][i]).sum();
    let macro_f1 = if per_class.is_empty() {
        0.0
    } else {
        per_class.values().map(|c| c.f1).sum::<f64>() / per_class.len() as f64
    };
    Metrics {
        n: usize::try_from(n).expect("row counts fit in usize"),
        accuracy: ratio(right, n),
        macro_f1,
        per_class,
        confusion: Confusion { labels, counts },
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::{Model, TreeParams};

    fn tally_of(pairs: &[(&str, &str)]) -> Metrics {
        tally(count(pairs.iter().copied()))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_three_class_case() {
        // truth:     1 1 1 2 2 3
        // predicted: 1 1 2 2 3 3
        let m = tally_of(&[("1", "1"), ("1", "1"), ("1", "2"), ("2", "2"), ("2", "3"), ("3", "3")]);
        assert_eq!(m.n, 6);
        assert!(close(m.accuracy, 4.0 / 6.0));
        assert_eq!(m.confusion.labels, vec!["1", "2", "3"]);
        assert_eq!(m.confusion.counts, vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);

        let one = &m.per_class["1"];
        assert_eq!(one.support, 3);
        assert!(close(one.recall, 2.0 / 3.0) && close(one.precision, 1.0) && close(one.f1, 0.8));
        let two = &m.per_class["2"];
        assert!(close(two.recall, 0.5) && close(two.precision, 0.5) && close(two.f1, 0.5));
        let three = &m.per_class["3"];
        assert!(close(three.recall, 1.0) && close(three.precision, 0.5) && close(three.f1, 2.0 / 3.0));
        assert!(close(m.macro_f1, (0.8 + 0.5 + 2.0 / 3.0) / 3.0));
    }

    #[test]
    fn a_class_only_predicted_counts_with_zero_f1() {
        // truth 1 1, predicted 1 9: class 9 has no support but was predicted.
        let m = tally_of(&[("1", "1"), ("1", "9")]);
        assert_eq!(m.confusion.labels, vec!["1", "9"]);
        let nine = &m.per_class["9"];
        assert_eq!(nine.support, 0);
        assert!(close(nine.recall, 0.0) && close(nine.precision, 0.0) && close(nine.f1, 0.0));
        let one = &m.per_class["1"];
        assert!(close(one.recall, 0.5) && close(one.precision, 1.0) && close(one.f1, 2.0 / 3.0));
        assert!(close(m.macro_f1, 1.0 / 3.0));
    }

    #[test]
    fn a_class_never_predicted_has_zero_precision() {
        let m = tally_of(&[("1", "2"), ("2", "2")]);
        let one = &m.per_class["1"];
        assert_eq!(one.support, 1);
        assert!(close(one.recall, 0.0) && close(one.precision, 0.0) && close(one.f1, 0.0));
        assert!(close(m.accuracy, 0.5));
    }

    #[test]
    fn evaluate_reports_each_example() {
        let train = [Example::tabular(vec![0.0], "0"), Example::tabular(vec![1.0], "1")];
        let params = TreeParams {
            min_weight_split: 2.0,
            min_weight_leaf: 1.0,
            ..TreeParams::default()
        };
        let model = Classifier::Tree(Model::train(&train, &params).unwrap());
        let test = [
            Example::tabular(vec![0.1], "0"),
            Example::tabular(vec![0.9], "0"),
            Example::tabular(vec![0.8], "1"),
        ];
        let (metrics, correct) = evaluate(&model, &test).unwrap();
        assert_eq!(correct, vec![true, false, true]);
        assert!(close(metrics.accuracy, 2.0 / 3.0));
        assert!(matches!(evaluate(&model, &[]), Err(ModelError::Empty)));
        let wrong = [Example::tabular(vec![0.0, 1.0], "0")];
        assert!(matches!(evaluate(&model, &wrong), Err(ModelError::FeatureCount { .. })));
        let text = [Example::text("zero", "0")];
        assert!(matches!(evaluate(&model, &text), Err(ModelError::WrongInput { .. })));
    }

    #[test]
    fn metrics_survive_json() {
        let m = tally_of(&[("5", "5"), ("6", "5")]);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Metrics>(&json).unwrap(), m);
    }
}
