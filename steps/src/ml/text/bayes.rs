//! Multinomial naive Bayes over sparse term weights, written here rather
//! than taken from linfa-bayes: its 0.8.1 `fit` prints every class's arrays
//! to stderr and it predicts from dense ndarray rows, where a text is a
//! handful of terms out of tens of thousands.

use super::vocabulary::Sparse;
use serde::{Deserialize, Serialize};

/// A fitted multinomial naive Bayes: log priors and per-term log
/// likelihoods, term-major (`feature_log_prob[term * classes + class]`) so a
/// text's few terms read contiguous memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct NaiveBayes {
    class_log_prior: Vec<f64>,
    feature_log_prob: Vec<f64>,
}

impl NaiveBayes {
    /// Fits on texts already vectorized, `labels[i]` the class index of
    /// `texts[i]`, with Lidstone smoothing `alpha`, as scikit-learn's
    /// `MultinomialNB(alpha)` with `fit_prior=True`:
    /// log P(class) = ln(texts of class / texts), and
    /// log P(term | class) = ln((w(term, class) + alpha) / (w(class) + alpha * terms))
    /// where w sums the class's weights.
    ///
    /// Sums run in the order given, so callers pass texts in a canonical
    /// order for byte-identical results.
    pub(super) fn fit(texts: &[Sparse], labels: &[usize], classes: usize, terms: usize, alpha: f64) -> Self {
        let mut weight = vec![0.0; terms * classes];
        let mut class_texts = vec![0u64; classes];
        for (text, &class) in texts.iter().zip(labels) {
            class_texts[class] += 1;
            for &(term, w) in text {
                weight[term as usize * classes + class] += w;
            }
        }
        let mut class_weight = vec![0.0; classes];
        for row in weight.chunks_exact(classes) {
            for (total, w) in class_weight.iter_mut().zip(row) {
                *total += w;
            }
        }
        let denominators: Vec<f64> = class_weight.iter().map(|w| (w + alpha * terms as f64).ln()).collect();
        for row in weight.chunks_exact_mut(classes) {
            for (w, denominator) in row.iter_mut().zip(&denominators) {
                *w = (*w + alpha).ln() - denominator;
            }
        }
        let n = texts.len() as f64;
        Self {
            class_log_prior: class_texts.iter().map(|&c| (c as f64 / n).ln()).collect(),
            feature_log_prob: weight,
        }
    }

    /// The number of classes and terms the model was fitted with.
    pub(super) fn shape(&self) -> (usize, usize) {
        let classes = self.class_log_prior.len();
        (classes, self.feature_log_prob.len() / classes.max(1))
    }

    /// The most likely class (the lowest index on a tie) and its posterior
    /// probability, from the joint log likelihoods
    /// log P(class) + sum over terms of weight * log P(term | class).
    pub(super) fn predict(&self, text: &Sparse) -> (usize, f64) {
        let jll = self.joint_log_likelihoods(text);
        let (best, top) = jll.iter().enumerate().fold(
            (0, f64::NEG_INFINITY),
            |(bi, bs), (i, &s)| if s > bs { (i, s) } else { (bi, bs) },
        );
        // P(best) = 1 / sum_c exp(jll_c - jll_best), stable as every term <= 1.
        let confidence = 1.0 / jll.iter().map(|s| (s - top).exp()).sum::<f64>();
        (best, confidence)
    }

    /// Each class's posterior probability, in class order.
    pub(super) fn posterior(&self, text: &Sparse) -> Vec<f64> {
        let jll = self.joint_log_likelihoods(text);
        let top = jll.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = jll.iter().map(|s| (s - top).exp()).collect();
        let total: f64 = exps.iter().sum();
        exps.into_iter().map(|e| e / total).collect()
    }

    /// log P(class) + sum over terms of weight * log P(term | class), per class.
    fn joint_log_likelihoods(&self, text: &Sparse) -> Vec<f64> {
        let classes = self.class_log_prior.len();
        let mut jll = self.class_log_prior.clone();
        for &(term, w) in text {
            let row = &self.feature_log_prob[term as usize * classes..][..classes];
            for (score, log_prob) in jll.iter_mut().zip(row) {
                *score += w * log_prob;
            }
        }
        jll
    }

    #[cfg(test)]
    pub(super) fn log_probs(&self) -> (&[f64], &[f64]) {
        (&self.class_log_prior, &self.feature_log_prob)
    }
}
