//! The servable model and its artifact: training from examples, prediction
//! with a confidence, and the postcard bytes stored in the `models` table.
//!
//! A `Model` can only be built by training or by decoding checked bytes, so
//! serving never meets an index out of range.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cart;
use super::table::{Matrix, Rows, Table};
use super::tree::{FlatTree, TreeParams};
use super::{Example, ModelError};

/// Version written before every artifact; bump it when `Model`'s encoding
/// changes, so old bytes fail with a clear error instead of garbage.
/// Version 1 had integer classes; it still decodes (its classes become
/// their decimal names), so versions stored by earlier releases serve.
const FORMAT_VERSION: u32 = 2;

/// Which learning algorithm produced a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A CART decision tree (Gini impurity) over numeric features.
    DecisionTree,
    /// Word n-gram counts or TF-IDF and multinomial naive Bayes over text.
    NaiveBayes,
    /// Bagged CART trees with per-split feature sampling.
    RandomForest,
    /// Multinomial logistic regression on standardized features.
    LogisticRegression,
    /// TF-IDF word n-grams and one-vs-rest linear SVMs over text.
    TextLinear,
}

impl ModelKind {
    /// The stable snake_case name, as serialized and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::DecisionTree => "decision_tree",
            ModelKind::NaiveBayes => "naive_bayes",
            ModelKind::RandomForest => "random_forest",
            ModelKind::LogisticRegression => "logistic_regression",
            ModelKind::TextLinear => "text_linear",
        }
    }

    /// The kind named by [`ModelKind::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        [
            ModelKind::DecisionTree,
            ModelKind::NaiveBayes,
            ModelKind::RandomForest,
            ModelKind::LogisticRegression,
            ModelKind::TextLinear,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }
}

/// A model's answer for one input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Predicted class name.
    pub label: String,
    /// Share of the predicted class among the training rows that ended in
    /// the same leaf, in (0, 1].
    pub confidence: f64,
}

/// A trained classifier, ready to serve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ModelRepr")]
pub struct Model {
    kind: ModelKind,
    classes: Vec<String>,
    n_features: usize,
    tree: FlatTree,
}

/// The unchecked shape of a [`Model`] as decoded from bytes. Its fields
/// must stay in `Model`'s order: postcard encodes fields by position.
#[derive(Deserialize)]
struct ModelRepr {
    kind: ModelKind,
    classes: Vec<String>,
    n_features: usize,
    tree: FlatTree,
}

/// Format version 1's shape: the same, with integer classes.
#[derive(Deserialize)]
struct ModelReprV1 {
    kind: ModelKind,
    classes: Vec<i32>,
    n_features: usize,
    tree: FlatTree,
}

impl From<ModelReprV1> for ModelRepr {
    /// Integer classes become their decimal names, in the same order (the
    /// tree's leaves index them): sorted as integers, which is their order
    /// as names only below 10, so the order is kept rather than re-sorted.
    fn from(v1: ModelReprV1) -> Self {
        ModelRepr {
            kind: v1.kind,
            classes: v1.classes.iter().map(i32::to_string).collect(),
            n_features: v1.n_features,
            tree: v1.tree,
        }
    }
}

impl TryFrom<ModelRepr> for Model {
    type Error = ModelError;

    fn try_from(repr: ModelRepr) -> Result<Self, ModelError> {
        let ModelRepr {
            kind,
            classes,
            n_features,
            tree,
        } = repr;
        check_classes(&classes)?;
        tree.check(n_features, classes.len()).map_err(ModelError::Corrupt)?;
        Ok(Model {
            kind,
            classes,
            n_features,
            tree,
        })
    }
}

impl Model {
    /// Trains a decision tree on `examples`, deterministically: the same
    /// examples, in any order, give the same model and the same artifact
    /// bytes. One class only is fine: the model then always predicts it.
    ///
    /// Errors: [`ModelError::Empty`], [`ModelError::NoFeatures`],
    /// [`ModelError::InconsistentFeatures`], [`ModelError::NonFiniteExample`],
    /// [`ModelError::InvalidParams`].
    pub fn train(examples: &[Example], params: &TreeParams) -> Result<Model, ModelError> {
        Self::train_until(Table::from_examples(examples)?.all(), params, &|| false)
    }

    /// Trains on `rows`, asking `stop` between the fit's units of work
    /// (features while sorting, nodes while growing) and giving up with
    /// [`ModelError::Stopped`] once it answers true.
    ///
    /// Errors: [`ModelError::Empty`], [`ModelError::WrongInput`] for texts,
    /// [`ModelError::InvalidParams`], [`ModelError::Stopped`].
    pub fn train_until(rows: Rows<'_>, params: &TreeParams, stop: &dyn Fn() -> bool) -> Result<Model, ModelError> {
        let data = rows.matrix()?;
        let tree = cart::train(&data, &data.rows, data.classes.len(), params, stop)?;
        Ok(Model {
            kind: ModelKind::DecisionTree,
            n_features: data.width,
            classes: data.classes,
            tree,
        })
    }

    /// Predicts the class of one input.
    ///
    /// Errors: [`ModelError::FeatureCount`], [`ModelError::NonFinite`].
    pub fn predict(&self, features: &[f64]) -> Result<Prediction, ModelError> {
        check_input(features, self.n_features)?;
        let (class, confidence) = self.tree.classify(features);
        Ok(Prediction {
            label: self.classes[class].clone(),
            confidence,
        })
    }

    /// Each class's share of the training rows in the input's leaf, in
    /// [`Model::classes`] order.
    ///
    /// Errors: as [`Model::predict`].
    pub fn probabilities(&self, features: &[f64]) -> Result<Vec<f64>, ModelError> {
        check_input(features, self.n_features)?;
        Ok(self.tree.shares(features))
    }

    /// The algorithm behind this model.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The classes the model knows, in the order its leaves index them:
    /// ascending for a tree trained now; as integers for a format 1
    /// artifact (so `"9"` before `"10"`).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The number of features an input must have.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The fitted tree.
    pub fn tree(&self) -> &FlatTree {
        &self.tree
    }

    /// Encodes the model as an artifact: a format version, then postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(&(FORMAT_VERSION, self)).expect("a model always encodes to a Vec")
    }

    /// Decodes and checks an artifact written by [`Model::to_bytes`].
    ///
    /// Errors: [`ModelError::Decode`] for bytes that are not an artifact,
    /// [`ModelError::UnsupportedFormat`], [`ModelError::Corrupt`] for a model
    /// whose parts do not fit together or trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        let (found, rest) = postcard::take_from_bytes::<u32>(bytes)?;
        // Decode the unchecked shape first: postcard drops the message of a
        // `try_from` error, and ours says what is wrong.
        let (repr, rest) = match found {
            FORMAT_VERSION => postcard::take_from_bytes::<ModelRepr>(rest)?,
            1 => {
                let (v1, rest) = postcard::take_from_bytes::<ModelReprV1>(rest)?;
                (ModelRepr::from(v1), rest)
            }
            _ => {
                return Err(ModelError::UnsupportedFormat {
                    expected: FORMAT_VERSION,
                    found,
                });
            }
        };
        if !rest.is_empty() {
            return Err(ModelError::Corrupt(format!("{} trailing bytes", rest.len())));
        }
        Model::try_from(repr)
    }
}

/// Lower-case hex SHA-256 of `bytes`, the artifact checksum.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks one input to predict: `n_features` finite values.
///
/// Errors: [`ModelError::FeatureCount`], [`ModelError::NonFinite`].
pub(super) fn check_input(features: &[f64], n_features: usize) -> Result<(), ModelError> {
    if features.len() != n_features {
        return Err(ModelError::FeatureCount {
            expected: n_features,
            found: features.len(),
        });
    }
    if let Some(feature) = features.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::NonFinite { feature });
    }
    Ok(())
}

/// The rows of `data` in one canonical order, by class, then features (as
/// `total_cmp`): sums over rows in this order do not depend on the order
/// the examples came in.
pub(super) fn canonical_order(data: &Matrix<'_>) -> Vec<u32> {
    let mut order = data.rows.to_vec();
    order.sort_by(|&a, &b| {
        let features = data.row(a).iter().zip(data.row(b)).map(|(x, y)| x.total_cmp(y));
        data.targets[a as usize]
            .cmp(&data.targets[b as usize])
            .then(features.fold(std::cmp::Ordering::Equal, std::cmp::Ordering::then))
    });
    order
}

/// Checks decoded class names: at least one, none twice.
pub(super) fn check_classes(classes: &[String]) -> Result<(), ModelError> {
    if classes.is_empty() || classes.iter().collect::<BTreeSet<_>>().len() != classes.len() {
        return Err(ModelError::Corrupt("classes must be non-empty and unique".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::winequality::{self, Split};

    fn example(features: Vec<f64>, label: &str) -> Example {
        Example::tabular(features, label)
    }

    /// The defaults, but any node of two rows may split.
    fn small_leaves() -> TreeParams {
        TreeParams {
            min_weight_split: 2.0,
            min_weight_leaf: 1.0,
            ..TreeParams::default()
        }
    }

    #[test]
    fn default_tree_generalizes_to_golden() {
        let model = Model::train(&winequality::part(Split::Base), &TreeParams::default()).unwrap();
        assert_eq!(model.kind(), ModelKind::DecisionTree);
        assert_eq!(model.classes(), ["3", "4", "5", "6", "7", "8"]);
        assert_eq!(model.n_features(), winequality::FEATURES);
        let golden = winequality::part(Split::Golden);
        let mut right = 0;
        for e in &golden {
            let p = model.predict(e.input.features().unwrap()).unwrap();
            assert!(p.confidence > 0.0 && p.confidence <= 1.0);
            right += usize::from(p.label == e.label);
        }
        let accuracy = right as f64 / golden.len() as f64;
        eprintln!("golden accuracy of the default tree trained on base: {accuracy:.4}");
        assert!(accuracy > 0.5, "golden accuracy {accuracy}");
    }

    #[test]
    fn artifact_round_trip_predicts_identically() {
        let rows = winequality::split();
        let model = Model::train(&winequality::part(Split::Base), &TreeParams::default()).unwrap();
        let bytes = model.to_bytes();
        let decoded = Model::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, model);
        assert_eq!(sha256_hex(&decoded.to_bytes()), sha256_hex(&bytes));
        for (_, e) in &rows {
            let features = e.input.features().unwrap();
            assert_eq!(decoded.predict(features).unwrap(), model.predict(features).unwrap());
        }
    }

    #[test]
    fn damaged_artifacts_are_refused() {
        // Small leaves allowed, so the tree splits on feature 0.
        let model = Model::train(&[example(vec![1.0], "1"), example(vec![2.0], "2")], &small_leaves()).unwrap();
        let bytes = model.to_bytes();
        assert!(matches!(
            Model::from_bytes(&bytes[..bytes.len() - 1]),
            Err(ModelError::Decode(_))
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(Model::from_bytes(&longer), Err(ModelError::Corrupt(_))));
        assert_eq!(bytes[0], 2, "format version 2, one varint byte");
        let mut future = bytes.clone();
        future[0] = 3;
        assert!(matches!(
            Model::from_bytes(&future),
            Err(ModelError::UnsupportedFormat { expected: 2, found: 3 })
        ));
        let mut past = bytes.clone();
        past[0] = 0;
        assert!(matches!(
            Model::from_bytes(&past),
            Err(ModelError::UnsupportedFormat { expected: 2, found: 0 })
        ));
        let mut json = serde_json::to_value(&model).unwrap();
        json["n_features"] = 0.into();
        assert!(serde_json::from_value::<Model>(json).is_err(), "serde checks too");
    }

    #[test]
    fn wrong_inputs_are_errors() {
        let model = Model::train(
            &[example(vec![1.0, 0.0], "1"), example(vec![2.0, 0.0], "2")],
            &TreeParams::default(),
        )
        .unwrap();
        assert!(matches!(
            model.predict(&[1.0]),
            Err(ModelError::FeatureCount { expected: 2, found: 1 })
        ));
        assert!(matches!(
            model.predict(&[1.0, f64::NAN]),
            Err(ModelError::NonFinite { feature: 1 })
        ));
    }

    #[test]
    fn bad_training_sets_are_errors() {
        let params = TreeParams::default();
        assert!(matches!(Model::train(&[], &params), Err(ModelError::Empty)));
        assert!(matches!(
            Model::train(&[example(vec![], "1")], &params),
            Err(ModelError::NoFeatures)
        ));
        assert!(matches!(
            Model::train(&[example(vec![1.0], "1"), example(vec![1.0, 2.0], "1")], &params),
            Err(ModelError::InconsistentFeatures {
                example: 1,
                expected: 1,
                found: 2
            })
        ));
        assert!(matches!(
            Model::train(&[example(vec![1.0], "1"), example(vec![f64::INFINITY], "1")], &params),
            Err(ModelError::NonFiniteExample { example: 1, feature: 0 })
        ));
        let zero_decrease = TreeParams {
            min_impurity_decrease: 0.0,
            ..TreeParams::default()
        };
        assert!(matches!(
            Model::train(&[example(vec![1.0], "1")], &zero_decrease),
            Err(ModelError::InvalidParams(_))
        ));
    }

    #[test]
    fn a_single_class_always_wins() {
        let model = Model::train(
            &[example(vec![1.0], "7"), example(vec![5.0], "7")],
            &TreeParams::default(),
        )
        .unwrap();
        assert_eq!(
            model.predict(&[3.0]).unwrap(),
            Prediction {
                label: "7".into(),
                confidence: 1.0
            }
        );
    }

    #[test]
    fn separable_classes_split_below_the_threshold() {
        let examples = [
            example(vec![1.0], "10"),
            example(vec![2.0], "10"),
            example(vec![3.0], "20"),
            example(vec![4.0], "20"),
        ];
        let model = Model::train(&examples, &small_leaves()).unwrap();
        assert_eq!(model.predict(&[2.4]).unwrap().label, "10");
        assert_eq!(model.predict(&[2.5]).unwrap().label, "20", "x == threshold goes right");
        assert_eq!(model.predict(&[100.0]).unwrap().label, "20");
    }

    /// Format version 1's encoding, written the way release 1 wrote it:
    /// the version, then the model with integer classes.
    fn v1_bytes(kind: ModelKind, classes: Vec<i32>, n_features: usize, tree: FlatTree) -> Vec<u8> {
        #[derive(Serialize)]
        struct ModelV1 {
            kind: ModelKind,
            classes: Vec<i32>,
            n_features: usize,
            tree: FlatTree,
        }
        let model = ModelV1 {
            kind,
            classes,
            n_features,
            tree,
        };
        postcard::to_stdvec(&(1u32, model)).unwrap()
    }

    #[test]
    fn a_format_1_artifact_decodes_with_decimal_class_names() {
        // A wine model as release 1 stored it: classes 3 to 8 as integers.
        let model = Model::train(&winequality::part(Split::Base), &TreeParams::default()).unwrap();
        let old = v1_bytes(
            model.kind(),
            vec![3, 4, 5, 6, 7, 8],
            model.n_features(),
            model.tree().clone(),
        );
        assert_eq!(old[0], 1);
        let decoded = Model::from_bytes(&old).unwrap();
        assert_eq!(decoded, model, "the same model as trained on class names");
        for e in winequality::part(Split::Golden) {
            let features = e.input.features().unwrap();
            assert_eq!(decoded.predict(features).unwrap(), model.predict(features).unwrap());
        }
        // Re-encoding writes the current format, which decodes to the same.
        let again = decoded.to_bytes();
        assert_eq!(again[0], 2);
        assert_eq!(again, model.to_bytes());
        assert_eq!(Model::from_bytes(&again).unwrap(), decoded);
    }

    #[test]
    fn a_format_1_artifact_keeps_its_class_order_past_nine() {
        // Release 1 sorted classes as integers: [9, 10], so leaf class 0 is
        // 9 though "10" < "9" as names. The tree splits at 2.5: below is
        // class 0, above class 1.
        let trained = Model::train(&[example(vec![1.0], "a"), example(vec![4.0], "b")], &small_leaves()).unwrap();
        let old = v1_bytes(ModelKind::DecisionTree, vec![9, 10], 1, trained.tree().clone());
        let decoded = Model::from_bytes(&old).unwrap();
        assert_eq!(decoded.classes(), ["9", "10"]);
        assert_eq!(decoded.predict(&[1.0]).unwrap().label, "9");
        assert_eq!(decoded.predict(&[4.0]).unwrap().label, "10");
        // Damage is still refused in format 1: duplicate classes, leaves
        // counting another number of classes, trailing bytes.
        let duplicate = v1_bytes(ModelKind::DecisionTree, vec![9, 9], 1, trained.tree().clone());
        assert!(matches!(Model::from_bytes(&duplicate), Err(ModelError::Corrupt(_))));
        let short = v1_bytes(ModelKind::DecisionTree, vec![9], 1, trained.tree().clone());
        assert!(matches!(Model::from_bytes(&short), Err(ModelError::Corrupt(_))));
        let mut longer = old.clone();
        longer.push(0);
        assert!(matches!(Model::from_bytes(&longer), Err(ModelError::Corrupt(_))));
    }

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
