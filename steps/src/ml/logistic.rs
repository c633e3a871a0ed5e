//! Logistic regression for tabular models (issue 12): features standardized
//! by the training set's means and standard deviations (stored in the
//! artifact, so serving scales inputs the same way), then the shared
//! L2-regularized multinomial [`Linear`] model.

use serde::{Deserialize, Serialize};

use super::linear::{Linear, Row};
use super::model::{canonical_order, check_classes, check_input};
use super::table::Rows;
use super::{ModelError, Prediction, artifact};

/// The artifact format this build writes and reads.
const FORMAT: u32 = 1;

/// Hyper-parameters of the logistic regression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    /// The L2 penalty on the mean loss (> 0); scikit-learn's `C` is
    /// `1 / (l2 * rows)`.
    pub l2: f64,
}

impl Default for LogisticParams {
    /// 0.001: scikit-learn's default `C = 1` at about a thousand rows.
    fn default() -> Self {
        Self { l2: 0.001 }
    }
}

impl LogisticParams {
    /// Errors: [`ModelError::InvalidParams`] for a penalty that is not a
    /// positive number.
    pub(super) fn check(&self) -> Result<(), ModelError> {
        if !(self.l2.is_finite() && self.l2 > 0.0) {
            return Err(ModelError::InvalidParams("l2 must be a positive number".into()));
        }
        Ok(())
    }
}

/// A trained logistic regression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    params: LogisticParams,
    classes: Vec<String>,
    means: Vec<f64>,
    /// Standard deviations, 1 where a feature is constant.
    scales: Vec<f64>,
    linear: Linear,
}

impl Logistic {
    /// Trains on `rows`; the same rows in any order give the same
    /// bytes (rows are sorted before any sum).
    ///
    /// Errors: as [`super::Model::train`].
    pub fn train(rows: Rows<'_>, params: &LogisticParams) -> Result<Logistic, ModelError> {
        params.check()?;
        let data = rows.matrix()?;
        let (n_features, classes) = (data.width, data.classes.clone());
        let pairs: Vec<(&[f64], usize)> = canonical_order(&data)
            .into_iter()
            .map(|row| (data.row(row), data.targets[row as usize] as usize))
            .collect();
        let n = pairs.len() as f64;
        let means: Vec<f64> = (0..n_features)
            .map(|f| pairs.iter().map(|(row, _)| row[f]).sum::<f64>() / n)
            .collect();
        let scales: Vec<f64> = (0..n_features)
            .map(|f| {
                let variance = pairs.iter().map(|(row, _)| (row[f] - means[f]).powi(2)).sum::<f64>() / n;
                if variance > 0.0 { variance.sqrt() } else { 1.0 }
            })
            .collect();
        let scaled: Vec<Row> = pairs.iter().map(|(row, _)| standardize(row, &means, &scales)).collect();
        let targets: Vec<usize> = pairs.iter().map(|(_, t)| *t).collect();
        let linear = Linear::fit(&scaled, &targets, classes.len(), n_features, params.l2);
        Ok(Logistic {
            params: params.clone(),
            classes,
            means,
            scales,
            linear,
        })
    }

    /// Predicts one input: the most probable class and its probability.
    ///
    /// Errors: [`ModelError::FeatureCount`], [`ModelError::NonFinite`].
    pub fn predict(&self, features: &[f64]) -> Result<Prediction, ModelError> {
        check_input(features, self.means.len())?;
        let (class, confidence) = self.linear.predict(&standardize(features, &self.means, &self.scales));
        Ok(Prediction {
            label: self.classes[class].clone(),
            confidence,
        })
    }

    /// Each class's probability, in [`Logistic::classes`] order.
    ///
    /// Errors: as [`Logistic::predict`].
    pub fn probabilities(&self, features: &[f64]) -> Result<Vec<f64>, ModelError> {
        check_input(features, self.means.len())?;
        Ok(self.linear.softmax(&standardize(features, &self.means, &self.scales)))
    }

    /// The classes, sorted.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The artifact bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        artifact::encode(FORMAT, self)
    }

    /// Decodes and checks an artifact written by [`Logistic::to_bytes`].
    ///
    /// Errors: as [`artifact::decode`], and [`ModelError::Corrupt`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Logistic, ModelError> {
        let model: Logistic = artifact::decode(FORMAT, bytes)?;
        check_classes(&model.classes)?;
        let n = model.means.len();
        let scales_ok = model.scales.iter().all(|s| s.is_finite() && *s > 0.0);
        if model.scales.len() != n || !scales_ok || model.linear.shape() != Some((model.classes.len(), n)) {
            return Err(ModelError::Corrupt(
                "means, scales and weights do not fit together".into(),
            ));
        }
        Ok(model)
    }
}

/// `features` standardized, as a row of every feature.
fn standardize(features: &[f64], means: &[f64], scales: &[f64]) -> Row {
    features
        .iter()
        .zip(means.iter().zip(scales))
        .enumerate()
        .map(|(f, (x, (mean, scale)))| (f as u32, (x - mean) / scale))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::Example;
    use crate::ml::table::Table;
    use crate::ml::winequality::{self, Split};

    #[test]
    fn logistic_regression_reaches_wine_golden_accuracy_and_reproduces() {
        let base = winequality::part(Split::Base);
        let model = Logistic::train(Table::from_examples(&base).unwrap().all(), &LogisticParams::default()).unwrap();
        let golden = winequality::part(Split::Golden);
        let right = golden
            .iter()
            .filter(|e| model.predict(e.input.features().unwrap()).unwrap().label == e.label)
            .count();
        let accuracy = right as f64 / golden.len() as f64;
        eprintln!("golden accuracy of logistic regression: {accuracy:.4}");
        assert!(accuracy > 0.6, "golden accuracy {accuracy}");
        let bytes = model.to_bytes();
        let reversed: Vec<Example> = base.iter().rev().cloned().collect();
        assert_eq!(
            Logistic::train(
                Table::from_examples(&reversed).unwrap().all(),
                &LogisticParams::default()
            )
            .unwrap()
            .to_bytes(),
            bytes
        );
        assert_eq!(Logistic::from_bytes(&bytes).unwrap(), model);
        assert!(Logistic::from_bytes(&bytes[..bytes.len() - 2]).is_err());
        assert!(Logistic::train(Table::from_examples(&base).unwrap().all(), &LogisticParams { l2: 0.0 }).is_err());
    }
}
