//! Linear classifiers over sparse rows: one weight per (feature, class) and
//! a bias per class, answered by the highest score. Two trainers fill them:
//! - [`Linear::fit`]: L2-regularized multinomial logistic regression, for
//!   the tabular learner (standardized features, every index present), by
//!   accelerated full-batch gradient descent (FISTA with gradient
//!   restarts) from zero, with a step of 1 / L where L bounds the loss's
//!   curvature, a fixed iteration budget and a tolerance.
//! - [`Linear::fit_svm`]: a one-vs-rest linear SVM (squared hinge loss, L2)
//!   for text's tens of thousands of TF-IDF terms, by LIBLINEAR's dual
//!   coordinate descent, which needs a few passes where gradient descent
//!   needs hundreds.
//!
//! No randomness but a seeded visiting order; sums in the order the rows
//! are given, so callers that order rows canonically get byte-identical
//! weights.

use serde::{Deserialize, Serialize};

use super::rng::Rng;

/// A row: (feature index, value) pairs, ascending indices.
pub(super) type Row = Vec<(u32, f64)>;

/// The iteration budget of one fit.
const MAX_ITERATIONS: usize = 400;

/// Training ends once no gradient component exceeds this.
const TOLERANCE: f64 = 1e-6;

/// The pass budget of one SVM fit.
const SVM_EPOCHS: usize = 50;

/// Fitted weights: `weights[feature * classes + class]` (feature-major, so
/// a sparse row reads contiguous memory) and one bias per class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Linear {
    classes: usize,
    weights: Vec<f64>,
    bias: Vec<f64>,
}

impl Linear {
    /// Minimizes mean cross-entropy + `l2` / 2 * |weights|^2 (the bias is not
    /// penalized) over `rows` with class indices `targets`.
    pub(super) fn fit(rows: &[Row], targets: &[usize], classes: usize, features: usize, l2: f64) -> Linear {
        let zero = Linear {
            classes,
            weights: vec![0.0; features * classes],
            bias: vec![0.0; classes],
        };
        // Softmax's Hessian is at most 1/2 the rows' second moment (Böhning).
        let step = 1.0 / (0.5 * 1.05 * top_eigenvalue(rows, features) + l2);
        let (mut x, mut y) = (zero.clone(), zero);
        let mut t = 1.0_f64;
        for _ in 0..MAX_ITERATIONS {
            let gradient = y.gradient(rows, targets, l2);
            if gradient.norm_max() < TOLERANCE {
                x = y;
                break;
            }
            let next = y.axpy(-step, &gradient);
            // Restart the momentum when it points uphill.
            if gradient.dot_diff(&next, &x) > 0.0 {
                t = 1.0;
            }
            let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
            y = next.axpy((t - 1.0) / t_next, &next.diff(&x));
            x = next;
            t = t_next;
        }
        x
    }

    /// One-vs-rest linear SVMs, each minimizing
    /// |w|^2 / 2 + `c` * sum of squared hinge losses, with a bias as a
    /// constant feature of 1 (penalized, as LIBLINEAR's `-B 1` and
    /// scikit-learn's `LinearSVC`), by dual coordinate descent: at most
    /// `SVM_EPOCHS` passes over the rows in an order shuffled by a fixed
    /// seed, ending when the projected gradients spread less than
    /// LIBLINEAR's 0.1.
    pub(super) fn fit_svm(rows: &[Row], targets: &[usize], classes: usize, features: usize, c: f64) -> Linear {
        let mut model = Linear {
            classes,
            weights: vec![0.0; features * classes],
            bias: vec![0.0; classes],
        };
        let diagonal = 0.5 / c;
        let norms: Vec<f64> = rows
            .iter()
            .map(|row| 1.0 + diagonal + row.iter().map(|(_, x)| x * x).sum::<f64>())
            .collect();
        for class in 0..classes {
            let mut w = vec![0.0; features];
            let mut bias = 0.0;
            let mut alpha = vec![0.0; rows.len()];
            let mut order: Vec<usize> = (0..rows.len()).collect();
            for epoch in 0..SVM_EPOCHS {
                Rng::new(class as u64, epoch as u64).shuffle(&mut order);
                let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
                for &i in &order {
                    let y = if targets[i] == class { 1.0 } else { -1.0 };
                    let score = bias + rows[i].iter().map(|&(f, x)| w[f as usize] * x).sum::<f64>();
                    let gradient = y * score - 1.0 + diagonal * alpha[i];
                    let projected = if alpha[i] == 0.0 { gradient.min(0.0) } else { gradient };
                    (low, high) = (low.min(projected), high.max(projected));
                    if projected.abs() > 1e-12 {
                        let old = alpha[i];
                        alpha[i] = (old - gradient / norms[i]).max(0.0);
                        let step = (alpha[i] - old) * y;
                        bias += step;
                        rows[i].iter().for_each(|&(f, x)| w[f as usize] += step * x);
                    }
                }
                if high - low < 0.1 {
                    break;
                }
            }
            for (f, weight) in w.into_iter().enumerate() {
                model.weights[f * classes + class] = weight;
            }
            model.bias[class] = bias;
        }
        model
    }

    /// The class scores of `row`.
    fn scores(&self, row: &[(u32, f64)]) -> Vec<f64> {
        let mut scores = self.bias.clone();
        for &(feature, value) in row {
            let weights = &self.weights[feature as usize * self.classes..][..self.classes];
            scores.iter_mut().zip(weights).for_each(|(s, w)| *s += value * w);
        }
        scores
    }

    /// The class with the highest score (ties to the lowest index) and the
    /// softmax of the scores for it: the probability for logistic
    /// regression, a monotone confidence (not calibrated) for the SVM.
    /// Features beyond the fitted ones must not occur.
    pub(super) fn predict(&self, row: &[(u32, f64)]) -> (usize, f64) {
        let scores = self.scores(row);
        let best = (0..self.classes).fold(0, |b, c| if scores[c] > scores[b] { c } else { b });
        let total: f64 = scores.iter().map(|s| (s - scores[best]).exp()).sum();
        (best, 1.0 / total)
    }

    /// The softmax of `row`'s class scores: the probabilities for logistic
    /// regression, monotone scores summing to 1 for the SVM.
    pub(super) fn softmax(&self, row: &[(u32, f64)]) -> Vec<f64> {
        let scores = self.scores(row);
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
        let total: f64 = exps.iter().sum();
        exps.into_iter().map(|e| e / total).collect()
    }

    /// The number of classes and features, for checking a decoded model.
    pub(super) fn shape(&self) -> Option<(usize, usize)> {
        let finite = self.weights.iter().chain(&self.bias).all(|w| w.is_finite());
        let fits =
            self.classes > 0 && self.bias.len() == self.classes && self.weights.len().is_multiple_of(self.classes);
        (finite && fits).then(|| (self.classes, self.weights.len() / self.classes))
    }

    /// The objective's gradient at `self`.
    fn gradient(&self, rows: &[Row], targets: &[usize], l2: f64) -> Linear {
        let k = self.classes;
        let mut g = Linear {
            classes: k,
            weights: self.weights.iter().map(|w| l2 * w).collect(),
            bias: vec![0.0; k],
        };
        let scale = 1.0 / rows.len() as f64;
        let mut residual = vec![0.0; k];
        for (row, &target) in rows.iter().zip(targets) {
            let scores = self.scores(row);
            let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = scores.iter().map(|s| (s - top).exp()).sum();
            for (c, r) in residual.iter_mut().enumerate() {
                *r = scale * ((scores[c] - top).exp() / total - f64::from(u8::from(c == target)));
            }
            g.bias.iter_mut().zip(&residual).for_each(|(b, r)| *b += r);
            for &(feature, value) in row {
                let weights = &mut g.weights[feature as usize * k..][..k];
                weights.iter_mut().zip(&residual).for_each(|(w, r)| *w += value * r);
            }
        }
        g
    }

    /// The pairs of (weight or bias) values of `self` and `other`.
    fn pairs<'a>(&'a self, other: &'a Linear) -> impl Iterator<Item = (f64, f64)> + 'a {
        let w = self.weights.iter().zip(&other.weights);
        w.chain(self.bias.iter().zip(&other.bias)).map(|(a, b)| (*a, *b))
    }

    /// `self + a * other`.
    fn axpy(&self, a: f64, other: &Linear) -> Linear {
        let n = self.weights.len();
        let all: Vec<f64> = self.pairs(other).map(|(x, y)| x + a * y).collect();
        Linear {
            classes: self.classes,
            weights: all[..n].to_vec(),
            bias: all[n..].to_vec(),
        }
    }

    /// `self - other`.
    fn diff(&self, other: &Linear) -> Linear {
        self.axpy(-1.0, other)
    }

    /// `self . (a - b)`.
    fn dot_diff(&self, a: &Linear, b: &Linear) -> f64 {
        self.pairs(&a.diff(b)).map(|(g, d)| g * d).sum()
    }

    /// The largest absolute value.
    fn norm_max(&self) -> f64 {
        self.pairs(self).map(|(x, _)| x.abs()).fold(0.0, f64::max)
    }
}

/// The largest eigenvalue of the rows' second moment (with a constant 1 for
/// the bias), by 50 steps of power iteration from the all-ones vector.
fn top_eigenvalue(rows: &[Row], features: usize) -> f64 {
    let n = rows.len() as f64;
    let mut v = vec![1.0; features + 1];
    let mut eigenvalue = 1.0;
    for _ in 0..50 {
        let mut next = vec![0.0; features + 1];
        for row in rows {
            let dot = v[features] + row.iter().map(|&(f, x)| x * v[f as usize]).sum::<f64>();
            next[features] += dot / n;
            row.iter().for_each(|&(f, x)| next[f as usize] += x * dot / n);
        }
        eigenvalue = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        if eigenvalue == 0.0 {
            return 1.0;
        }
        v = next.iter().map(|x| x / eigenvalue).collect();
    }
    eigenvalue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_rows_are_learned_with_confidence() {
        // Class 0 where feature 0 is high, class 1 where feature 1 is.
        let rows: Vec<Row> = (0..40)
            .map(|i| if i % 2 == 0 { vec![(0, 1.0)] } else { vec![(1, 1.0)] })
            .collect();
        let targets: Vec<usize> = (0..40).map(|i| i % 2).collect();
        let model = Linear::fit(&rows, &targets, 2, 2, 0.01);
        let (class, confidence) = model.predict(&[(1, 1.0)]);
        assert_eq!(class, 1);
        assert!(confidence > 0.8, "confidence {confidence}");
        assert_eq!(model.predict(&[(0, 1.0)]).0, 0);
        assert_eq!(model.shape(), Some((2, 2)));
        assert_eq!(Linear::fit(&rows, &targets, 2, 2, 0.01), model, "deterministic");
        let svm = Linear::fit_svm(&rows, &targets, 2, 2, 1.0);
        assert_eq!(svm.predict(&[(1, 1.0)]).0, 1);
        assert_eq!(svm.predict(&[(0, 1.0)]).0, 0);
        assert_eq!(Linear::fit_svm(&rows, &targets, 2, 2, 1.0), svm, "deterministic");
    }
}
