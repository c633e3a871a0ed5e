//! A model's learner and its settings, as the model registry stores them:
//! which algorithm trains the model's versions. An enum that grows as
//! learners join; each variant names the input kind it reads.

use serde::{Deserialize, Serialize};

use super::model::Model;
use super::text::{TextModel, TextSettings};
use super::tree::TreeParams;
use super::{Classifier, Example, InputKind, ModelError};

/// The learner of a model, with its settings. Stored as
/// `{"name": "decision_tree", "settings": {...}}`; missing settings take
/// their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "settings", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Learner {
    /// A CART decision tree (tabular models).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    DecisionTree(#[serde(default)] TreeParams),
    /// Word n-grams and multinomial naive Bayes (text models).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    NaiveBayes(#[serde(default)] TextSettings),
}

impl Learner {
    /// The default learner for models of `kind`.
    pub fn default_for(kind: InputKind) -> Self {
        match kind {
            InputKind::Tabular => Learner::DecisionTree(TreeParams::default()),
            InputKind::Text => Learner::NaiveBayes(TextSettings::default()),
        }
    }

    /// The learner named `name` with default settings: `decision_tree` or
    /// `naive_bayes`.
    pub fn named(name: &str) -> Option<Self> {
        [InputKind::Tabular, InputKind::Text]
            .into_iter()
            .map(Learner::default_for)
            .find(|learner| learner.name() == name)
    }

    /// The learner's stable name.
    pub fn name(&self) -> &'static str {
        match self {
            Learner::DecisionTree(_) => "decision_tree",
            Learner::NaiveBayes(_) => "naive_bayes",
        }
    }

    /// What the learner reads.
    pub fn input_kind(&self) -> InputKind {
        match self {
            Learner::DecisionTree(_) => InputKind::Tabular,
            Learner::NaiveBayes(_) => InputKind::Text,
        }
    }

    /// The settings alone, as recorded with each version.
    pub fn settings(&self) -> serde_json::Value {
        match self {
            Learner::DecisionTree(params) => serde_json::to_value(params),
            Learner::NaiveBayes(settings) => serde_json::to_value(settings),
        }
        .expect("settings always serialize")
    }

    /// Fits a classifier on `examples`, deterministically (the same examples
    /// in any order give the same artifact bytes), asking `stop` between
    /// units of work where the learner can stop.
    ///
    /// Errors: [`ModelError::WrongInput`] for an example of the other input
    /// kind, [`ModelError::Stopped`], and the learner's own errors.
    pub fn fit_until(&self, examples: &[Example], stop: &dyn Fn() -> bool) -> Result<Classifier, ModelError> {
        match self {
            Learner::DecisionTree(params) => Ok(Classifier::Tree(Model::train_until(examples, params, stop)?)),
            Learner::NaiveBayes(settings) => {
                let texts = examples
                    .iter()
                    .map(|e| {
                        e.input.text().ok_or(ModelError::WrongInput {
                            expected: InputKind::Text,
                            found: e.input.kind(),
                        })
                    })
                    .collect::<Result<Vec<&str>, ModelError>>()?;
                if stop() {
                    return Err(ModelError::Stopped);
                }
                let labels: Vec<&str> = examples.iter().map(|e| e.label.as_str()).collect();
                Ok(Classifier::Text(TextModel::fit(&texts, &labels, settings)?))
            }
        }
    }
}
