//! Confident disagreement: each judged row is predicted by a model of the
//! run's own learner fitted on the reference rows without that input (k
//! folds, a row's fold chosen by its input hash, so the same rows always
//! fold the same way); a row whose label a confident out-of-fold
//! prediction contradicts is flagged, and the probability that model gives
//! the row's label, relative to its top class's, is kept for the
//! per-source test ([`super::welch`]). Generic
//! over learners: it asks only `Learner::fit_until` and
//! `Classifier::probabilities`; the fold models are fitted once per run.
//!
//! The reference is the model's base data, not the whole candidate set:
//! fitted on a set where one source sent 30% of the rows, the fold models
//! learn that source's labels and stop contradicting them (measured on
//! wine: its flagged share fell to 0.02-0.04, below the base data's; see
//! BENCHMARKS.md), so no source is judged by a model it helped train.

use super::ScreeningSettings;
use crate::data::InputHash;
use crate::ml::{Classifier, Example, Learner, ModelError, Table};

/// The fold of a row: its input hash's first 8 bytes modulo `folds`.
fn fold_of(hash: &InputHash, folds: usize) -> usize {
    let head: [u8; 8] = hash.0[..8].try_into().expect("a sha256 has 8 bytes");
    (u64::from_le_bytes(head) % folds as u64) as usize
}

/// What the out-of-fold model says of one judged row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    /// A prediction at least `confidence` sure contradicts the row's label.
    pub flagged: bool,
    /// The probability the model gives the row's label as a share of the
    /// probability of its most probable class: 1 when the label is the
    /// model's answer, near 1 wherever the model knows nothing (an input
    /// of words it never saw, a flat distribution), low only where the
    /// model believes another class well above the label (0 for a label the
    /// fold's rows never had).
    pub label_probability: f64,
}

/// One model of the run's learner per fold, each fitted on the reference
/// rows of the other folds: fitted once, then asked about any number of
/// judged rows (merge judges the base rows, then the feedback in chunks).
#[derive(Debug)]
pub struct FoldModels {
    /// `None` for a fold whose other folds had too few rows to fit.
    models: Vec<Option<Classifier>>,
    confidence: f64,
}

impl FoldModels {
    /// Fits each fold's model on at most `max_fit_rows` of the `reference`
    /// rows of the other folds (every n-th row).
    ///
    /// # Errors
    /// The learner's errors, and [`ModelError::Stopped`] when `stop` fires.
    pub fn fit(
        learner: &Learner,
        (reference, reference_hashes): (&[Example], &[InputHash]),
        settings: &ScreeningSettings,
        stop: &dyn Fn() -> bool,
    ) -> Result<Self, ModelError> {
        let folds = settings.folds.max(2);
        let reference_fold: Vec<usize> = reference_hashes.iter().map(|h| fold_of(h, folds)).collect();
        let models = (0..folds)
            .map(|k| {
                let others: Vec<&Example> = reference
                    .iter()
                    .zip(&reference_fold)
                    .filter(|(_, f)| **f != k)
                    .map(|(e, _)| e)
                    .collect();
                let stride = others.len().div_ceil(settings.max_fit_rows.max(1)).max(1);
                let fit_rows: Vec<Example> = others.into_iter().step_by(stride).cloned().collect();
                (fit_rows.len() >= 2)
                    .then(|| learner.fit_until(Table::from_examples(&fit_rows)?.all(), stop))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            models,
            confidence: settings.confidence,
        })
    }

    /// For every row of `judged` (with `hashes`, one each), what the model
    /// of its fold says of its label. A row of a fold without a model is
    /// neither flagged nor doubted (probability 1).
    ///
    /// # Errors
    /// The model's errors for an input it cannot read.
    pub fn judge(&self, judged: &[Example], hashes: &[InputHash]) -> Result<Vec<Judged>, ModelError> {
        judged
            .iter()
            .zip(hashes)
            .map(|(example, hash)| match &self.models[fold_of(hash, self.models.len())] {
                Some(model) => self.judge_one(model, example),
                None => Ok(Judged {
                    flagged: false,
                    label_probability: 1.0,
                }),
            })
            .collect()
    }

    /// One row: the model's distribution gives both its answer (the top
    /// class, ties to the lowest index, as `predict` answers) and the
    /// label's share of the top class's probability.
    fn judge_one(&self, model: &Classifier, example: &Example) -> Result<Judged, ModelError> {
        let probabilities = model.probabilities(&example.input)?;
        let top = (0..probabilities.len()).fold(0, |b, c| if probabilities[c] > probabilities[b] { c } else { b });
        let top_probability = probabilities.get(top).copied().unwrap_or(0.0);
        let label = model.classes().iter().position(|c| *c == example.label);
        Ok(Judged {
            flagged: label != Some(top) && top_probability >= self.confidence,
            label_probability: match label {
                Some(class) if top_probability > 0.0 => probabilities[class] / top_probability,
                Some(_) => 1.0,
                None => 0.0,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::input_hash;
    use crate::ml::TreeParams;

    #[test]
    fn a_label_the_rest_of_the_data_contradicts_is_flagged_and_the_rest_is_not() {
        // Two clean clusters, x in 0..200 is "a" and x in 1000..1200 is "b"; row 10
        // says "b" inside the "a" cluster. Every fold's tree sees about 320
        // other rows of both clusters, splits at the boundary and answers
        // "a" for row 10 from a leaf with at most one "b" in it.
        let mut examples: Vec<Example> = (0..400)
            .map(|i| match i {
                0..200 => Example::tabular(vec![f64::from(i), 1.0], "a"),
                _ => Example::tabular(vec![f64::from(i + 800), 1.0], "b"),
            })
            .collect();
        examples[10].label = "b".into();
        let hashes: Vec<InputHash> = examples.iter().map(|e| input_hash(&e.input)).collect();
        let learner = Learner::DecisionTree(TreeParams::default());
        let rows = (examples.as_slice(), hashes.as_slice());
        let judged = FoldModels::fit(&learner, rows, &ScreeningSettings::default(), &|| false)
            .and_then(|models| models.judge(&examples, &hashes))
            .unwrap();
        let flagged_rows: Vec<usize> = (0..400).filter(|i| judged[*i].flagged).collect();
        assert_eq!(flagged_rows, vec![10]);
        // The liar's label gets little probability, the rest most of it.
        assert!(judged[10].label_probability < 0.5, "{:?}", judged[10]);
        assert!(
            judged
                .iter()
                .enumerate()
                .all(|(i, j)| i == 10 || j.label_probability > 0.5)
        );
    }

    #[test]
    fn a_label_on_an_input_the_model_knows_nothing_about_is_not_doubted() {
        use crate::ml::text::TextSettings;
        let texts = |words: [&str; 2], label: &str| -> Vec<Example> {
            (0..40)
                .map(|i| Example::text(format!("{} {} {i}", words[0], words[1]), label))
                .collect()
        };
        let mut reference = texts(["invoice", "refund"], "billing");
        reference.extend(texts(["password", "locked"], "login"));
        let hashes: Vec<InputHash> = reference.iter().map(|e| input_hash(&e.input)).collect();
        let judged = vec![
            Example::text("my shipment never arrived", "billing"),
            Example::text("refund my invoice", "login"),
        ];
        let judged_hashes: Vec<InputHash> = judged.iter().map(|e| input_hash(&e.input)).collect();
        let learner = Learner::NaiveBayes(TextSettings::default());
        let found = FoldModels::fit(&learner, (&reference, &hashes), &ScreeningSettings::default(), &|| {
            false
        })
        .and_then(|models| models.judge(&judged, &judged_hashes))
        .unwrap();
        // Words never seen: the classes are as probable as each other.
        assert!(found[0].label_probability > 0.95, "{:?}", found[0]);
        // Words that say "billing", labelled "login": doubted and flagged.
        assert!(found[1].label_probability < 0.1 && found[1].flagged, "{:?}", found[1]);
    }
}
