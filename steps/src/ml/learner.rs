//! A model's learner and its settings, as the model registry stores them:
//! which algorithm trains the model's versions, or `auto` to let
//! cross-validation on the training set choose. An enum that grows as
//! learners join; each variant names the input kind it reads.

use serde::{Deserialize, Deserializer, Serialize};

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
/// the learner's defaults, unknown ones are refused.
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
    TextLinear(#[serde(default = "TextSettings::linear", deserialize_with = "linear_text_settings")] TextSettings),
    /// Choose for me: the candidate of the input kind's grid with the best
    /// cross-validated accuracy on the training set (see
    /// [`selection`](super::selection)).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    Auto(#[serde(default)] SelectionSettings),
}

/// Most trees a forest may grow, most words an n-gram may have, most folds a
/// cross-validation may use: beyond them one fit would hold a worker for
/// hours or a vocabulary would not fit in memory.
const MAX_TREES: usize = 5_000;
const MAX_NGRAM: usize = 5;
const MAX_FOLDS: usize = 20;

impl Learner {
    /// The default learner for models of `kind`: `auto`, so the learner
    /// that wins on the user's data trains it.
    pub fn default_for(_kind: InputKind) -> Self {
        Learner::Auto(SelectionSettings::default())
    }

    /// The learner named `name` (`auto`, `decision_tree`, `random_forest`,
    /// `logistic_regression` (tabular), `naive_bayes` or `text_linear`
    /// (text)) with `settings` over its defaults, checked.
    ///
    /// Errors: [`ModelError::InvalidParams`] for an unknown name, an unknown
    /// or mistyped setting, or one [`Learner::check`] refuses.
    pub fn parse(name: &str, settings: Option<serde_json::Value>) -> Result<Self, ModelError> {
        let settings = settings.unwrap_or_else(|| serde_json::json!({}));
        let stored = serde_json::json!({ "name": name, "settings": settings });
        let learner: Learner =
            serde_json::from_value(stored).map_err(|e| ModelError::InvalidParams(format!("learner: {e}")))?;
        learner.check()?;
        Ok(learner)
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

    /// Checks the settings before they are stored or used.
    ///
    /// Errors: [`ModelError::InvalidParams`] for a setting out of range or
    /// past the caps that keep one fit bounded, or text settings that name
    /// the other learner's classifier.
    pub fn check(&self) -> Result<(), ModelError> {
        let cap = match self {
            Learner::DecisionTree(params) => return params.validate(),
            Learner::LogisticRegression(params) => return params.check(),
            Learner::RandomForest(params) => {
                params.check()?;
                (params.trees > MAX_TREES).then(|| format!("trees is at most {MAX_TREES}"))
            }
            Learner::NaiveBayes(settings) | Learner::TextLinear(settings) => {
                settings.check()?;
                let linear = matches!(settings.learner, TextLearner::LinearSvm { .. });
                if linear != matches!(self, Learner::TextLinear(_)) {
                    Some("text_linear settings take learner LinearSvm, naive_bayes settings MultinomialNb".to_owned())
                } else {
                    (settings.ngram_max > MAX_NGRAM).then(|| format!("ngram_max is at most {MAX_NGRAM}"))
                }
            }
            Learner::Auto(settings) => {
                (!(2..=MAX_FOLDS).contains(&settings.folds)).then(|| format!("folds is from 2 to {MAX_FOLDS}"))
            }
        };
        cap.map_or(Ok(()), |problem| Err(ModelError::InvalidParams(problem)))
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
        self.check()?;
        match self {
            Learner::DecisionTree(params) => Ok(Classifier::Tree(Model::train_until(rows, params, stop)?)),
            Learner::RandomForest(params) => Ok(Classifier::Forest(Forest::train_until(rows, params, stop)?)),
            Learner::LogisticRegression(params) => {
                if stop() {
                    return Err(ModelError::Stopped);
                }
                Ok(Classifier::Logistic(Logistic::train(rows, params)?))
            }
            Learner::NaiveBayes(settings) | Learner::TextLinear(settings) => fit_text(rows, settings, stop),
            Learner::Auto(_) => Ok(selection::select_and_fit(self, rows, None, stop)?.0),
        }
    }
}

/// `text_linear`'s settings: the fields given, over the linear defaults (a
/// plain `#[serde(default)]` would fill the missing ones from naive Bayes's).
fn linear_text_settings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TextSettings, D::Error> {
    let given = serde_json::Map::deserialize(deserializer)?;
    let mut settings = serde_json::to_value(TextSettings::linear()).expect("settings always serialize");
    settings.as_object_mut().expect("settings are an object").extend(given);
    serde_json::from_value(settings).map_err(serde::de::Error::custom)
}

/// Fits a text model (its settings checked by [`Learner::check`]).
fn fit_text(rows: Rows<'_>, settings: &TextSettings, stop: &dyn Fn() -> bool) -> Result<Classifier, ModelError> {
    let (texts, labels) = rows.texts()?;
    if stop() {
        return Err(ModelError::Stopped);
    }
    Ok(Classifier::Text(TextModel::fit(&texts, &labels, settings)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::text::Weighting;
    use serde_json::json;

    fn refusal(name: &str, settings: serde_json::Value) -> String {
        match Learner::parse(name, Some(settings)) {
            Err(ModelError::InvalidParams(message)) => message,
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn partial_settings_fill_in_from_the_learners_own_defaults() {
        let Ok(Learner::TextLinear(linear)) = Learner::parse("text_linear", Some(json!({"ngram_max": 1}))) else {
            panic!("text_linear parses");
        };
        assert_eq!(
            (linear.ngram_max, linear.weighting, linear.learner),
            (1, Weighting::TfIdf, TextLearner::LinearSvm { c: 1.0 })
        );
        assert_eq!(
            Learner::parse("text_linear", Some(json!({}))).unwrap(),
            Learner::TextLinear(TextSettings::linear())
        );
        assert_eq!(
            Learner::parse("random_forest", Some(json!({"trees": 300}))).unwrap(),
            Learner::RandomForest(ForestParams {
                trees: 300,
                ..ForestParams::default()
            })
        );
        assert_eq!(
            Learner::parse("auto", None).unwrap(),
            Learner::default_for(InputKind::Text)
        );
    }

    #[test]
    fn unknown_names_settings_and_out_of_range_values_are_refused() {
        assert!(refusal("gradient_boosting", json!({})).contains("unknown variant"));
        assert!(refusal("random_forest", json!({"tree": 300})).contains("unknown field `tree`"));
        assert!(refusal("random_forest", json!({"trees": "many"})).contains("invalid type"));
        assert!(refusal("random_forest", json!({"trees": 0})).contains("at least 1"));
        assert!(refusal("random_forest", json!({"trees": MAX_TREES + 1})).contains("trees is at most"));
        assert!(refusal("naive_bayes", json!({"ngram_max": MAX_NGRAM + 1})).contains("ngram_max is at most"));
        assert!(refusal("naive_bayes", json!({"learner": {"LinearSvm": {"c": 1.0}}})).contains("MultinomialNb"));
        assert!(refusal("logistic_regression", json!({"l2": -1.0})).contains("l2"));
        assert!(refusal("decision_tree", json!({"min_impurity_decrease": 0.0})).contains("min_impurity_decrease"));
        assert!(refusal("auto", json!({"folds": 1})).contains("folds is from 2"));
        assert!(refusal("auto", json!({"folds": MAX_FOLDS + 1})).contains("folds is from 2"));
    }
}
