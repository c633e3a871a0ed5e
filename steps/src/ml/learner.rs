//! A model's learner and its settings, as the model registry stores them:
//! which algorithm trains the model's versions, or `auto` to let
//! cross-validation on the training set choose. An enum that grows as
//! learners join; each variant names the input kind it reads.

use serde::{Deserialize, Serialize};

use super::forest::{Forest, ForestParams};
use super::logistic::{Logistic, LogisticParams};
use super::model::Model;
use super::selection::{self, SelectionSettings};
use super::table::Rows;
use super::text::{TextLearner, TextModel, TextSettings};
use super::tree::TreeParams;
use super::{Classifier, InputKind, ModelError};

/// The learner of a model, with its settings. Stored as
/// `{"name": "decision_tree", "settings": {...}}`; missing settings take
/// their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "settings", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Learner {
    /// A CART decision tree (tabular models), for a model people can read.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    DecisionTree(#[serde(default)] TreeParams),
    /// Word n-grams and multinomial naive Bayes (text models).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    NaiveBayes(#[serde(default)] TextSettings),
    /// A random forest (tabular models).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    RandomForest(#[serde(default)] ForestParams),
    /// Logistic regression on standardized features (tabular models).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    LogisticRegression(#[serde(default)] LogisticParams),
    /// TF-IDF word 1-2 grams and a linear SVM (text models).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    TextLinear(#[serde(default = "TextSettings::linear")] TextSettings),
    /// Choose for me: the candidate of the input kind's grid with the best
    /// cross-validated accuracy on the training set (see
    /// [`selection`](super::selection)).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    Auto(#[serde(default)] SelectionSettings),
}

impl Learner {
    /// The default learner for models of `kind`: `auto`, so the learner
    /// that wins on the user's data trains it.
    pub fn default_for(_kind: InputKind) -> Self {
        Learner::Auto(SelectionSettings::default())
    }

    /// The learner named `name` with default settings: `auto`,
    /// `decision_tree`, `random_forest`, `logistic_regression` (tabular),
    /// `naive_bayes` or `text_linear` (text).
    pub fn named(name: &str) -> Option<Self> {
        [
            Learner::Auto(SelectionSettings::default()),
            Learner::DecisionTree(TreeParams::default()),
            Learner::RandomForest(ForestParams::default()),
            Learner::LogisticRegression(LogisticParams::default()),
            Learner::NaiveBayes(TextSettings::default()),
            Learner::TextLinear(TextSettings::linear()),
        ]
        .into_iter()
        .find(|learner| learner.name() == name)
    }

    /// The learner's stable name.
    pub fn name(&self) -> &'static str {
        match self {
            Learner::DecisionTree(_) => "decision_tree",
            Learner::NaiveBayes(_) => "naive_bayes",
            Learner::RandomForest(_) => "random_forest",
            Learner::LogisticRegression(_) => "logistic_regression",
            Learner::TextLinear(_) => "text_linear",
            Learner::Auto(_) => "auto",
        }
    }

    /// What the learner reads; `None` for `auto`, which reads either.
    pub fn input_kind(&self) -> Option<InputKind> {
        match self {
            Learner::DecisionTree(_) | Learner::RandomForest(_) | Learner::LogisticRegression(_) => {
                Some(InputKind::Tabular)
            }
            Learner::NaiveBayes(_) | Learner::TextLinear(_) => Some(InputKind::Text),
            Learner::Auto(_) => None,
        }
    }

    /// Whether the learner can train a model of `kind`.
    pub fn reads(&self, kind: InputKind) -> bool {
        self.input_kind().is_none_or(|k| k == kind)
    }

    /// The settings alone, as recorded with each version.
    pub fn settings(&self) -> serde_json::Value {
        match self {
            Learner::DecisionTree(params) => serde_json::to_value(params),
            Learner::NaiveBayes(settings) | Learner::TextLinear(settings) => serde_json::to_value(settings),
            Learner::RandomForest(params) => serde_json::to_value(params),
            Learner::LogisticRegression(params) => serde_json::to_value(params),
            Learner::Auto(settings) => serde_json::to_value(settings),
        }
        .expect("settings always serialize")
    }

    /// Fits a classifier on `rows`, deterministically (the same rows in
    /// any order give the same artifact bytes), asking `stop` between
    /// units of work where the learner can stop. `auto` first chooses its
    /// learner by cross-validation.
    ///
    /// Errors: [`ModelError::Empty`], [`ModelError::WrongInput`] for rows
    /// of the other input kind, [`ModelError::Stopped`], and the learner's
    /// own errors.
    pub fn fit_until(&self, rows: Rows<'_>, stop: &dyn Fn() -> bool) -> Result<Classifier, ModelError> {
        match self {
            Learner::DecisionTree(params) => Ok(Classifier::Tree(Model::train_until(rows, params, stop)?)),
            Learner::RandomForest(params) => Ok(Classifier::Forest(Forest::train_until(rows, params, stop)?)),
            Learner::LogisticRegression(params) => {
                if stop() {
                    return Err(ModelError::Stopped);
                }
                Ok(Classifier::Logistic(Logistic::train(rows, params)?))
            }
            Learner::NaiveBayes(settings) => fit_text(rows, settings, false, stop),
            Learner::TextLinear(settings) => fit_text(rows, settings, true, stop),
            Learner::Auto(_) => Ok(selection::select_and_fit(self, rows, None, stop)?.0),
        }
    }
}

/// Fits a text model, whose settings must name the learner's own
/// classifier (`linear`: the linear SVM, else naive Bayes).
fn fit_text(
    rows: Rows<'_>,
    settings: &TextSettings,
    linear: bool,
    stop: &dyn Fn() -> bool,
) -> Result<Classifier, ModelError> {
    if matches!(settings.learner, TextLearner::LinearSvm { .. }) != linear {
        return Err(ModelError::InvalidParams(
            "text_linear settings take learner LinearSvm, naive_bayes settings MultinomialNb".into(),
        ));
    }
    let (texts, labels) = rows.texts()?;
    if stop() {
        return Err(ModelError::Stopped);
    }
    Ok(Classifier::Text(TextModel::fit(&texts, &labels, settings)?))
}
