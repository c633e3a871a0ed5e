//! A trained model of any learner, as the pipeline stores it and serving
//! asks it: one enum over the learners' own types, so the rest of the code
//! never matches on learners. New learners join as variants.

use super::forest::Forest;
use super::logistic::Logistic;
use super::model::{Model, ModelKind, Prediction};
use super::table::InputRef;
use super::text::{TextLearner, TextModel};
use super::{InputKind, ModelError};

/// A trained classifier, ready to serve.
#[derive(Clone, Debug, PartialEq)]
pub enum Classifier {
    /// A decision tree over numeric features.
    Tree(Model),
    /// A text classifier (vocabulary and learner in one artifact).
    Text(TextModel),
    /// A random forest over numeric features.
    Forest(Forest),
    /// A logistic regression over numeric features.
    Logistic(Logistic),
}

impl Classifier {
    /// The learner behind the model, as stored with the version.
    pub fn kind(&self) -> ModelKind {
        match self {
            Classifier::Tree(model) => model.kind(),
            Classifier::Text(model) => match model.settings().learner {
                TextLearner::MultinomialNb { .. } => ModelKind::NaiveBayes,
                TextLearner::LinearSvm { .. } => ModelKind::TextLinear,
            },
            Classifier::Forest(_) => ModelKind::RandomForest,
            Classifier::Logistic(_) => ModelKind::LogisticRegression,
        }
    }

    /// What the model reads.
    pub fn input_kind(&self) -> InputKind {
        match self {
            Classifier::Tree(_) | Classifier::Forest(_) | Classifier::Logistic(_) => InputKind::Tabular,
            Classifier::Text(_) => InputKind::Text,
        }
    }

    /// The class names the model can answer.
    pub fn classes(&self) -> &[String] {
        match self {
            Classifier::Tree(model) => model.classes(),
            Classifier::Text(model) => model.classes(),
            Classifier::Forest(model) => model.classes(),
            Classifier::Logistic(model) => model.classes(),
        }
    }

    /// The class of one input and the model's confidence in it.
    ///
    /// Errors: [`ModelError::WrongInput`] for an input of the other kind, and
    /// the tree's [`ModelError::FeatureCount`] and [`ModelError::NonFinite`].
    pub fn predict<'a>(&self, input: impl Into<InputRef<'a>>) -> Result<Prediction, ModelError> {
        match (self, input.into()) {
            (Classifier::Tree(model), InputRef::Tabular(features)) => model.predict(features),
            (Classifier::Forest(model), InputRef::Tabular(features)) => model.predict(features),
            (Classifier::Logistic(model), InputRef::Tabular(features)) => model.predict(features),
            (Classifier::Text(model), InputRef::Text(text)) => {
                let answer = model.predict(text);
                Ok(Prediction {
                    label: model.classes()[answer.class].clone(),
                    confidence: answer.confidence,
                })
            }
            (_, input) => Err(ModelError::WrongInput {
                expected: self.input_kind(),
                found: input.kind(),
            }),
        }
    }

    /// Each class's probability for one input, in [`Classifier::classes`]
    /// order: leaf shares for trees and forests, the fitted probabilities
    /// of logistic regression and naive Bayes, the softmax of the SVM's
    /// scores (monotone, not calibrated).
    ///
    /// Errors: as [`Classifier::predict`].
    pub fn probabilities<'a>(&self, input: impl Into<InputRef<'a>>) -> Result<Vec<f64>, ModelError> {
        match (self, input.into()) {
            (Classifier::Tree(model), InputRef::Tabular(features)) => model.probabilities(features),
            (Classifier::Forest(model), InputRef::Tabular(features)) => model.probabilities(features),
            (Classifier::Logistic(model), InputRef::Tabular(features)) => model.probabilities(features),
            (Classifier::Text(model), InputRef::Text(text)) => Ok(model.probabilities(text)),
            (_, input) => Err(ModelError::WrongInput {
                expected: self.input_kind(),
                found: input.kind(),
            }),
        }
    }

    /// The artifact bytes, self-contained and byte-reproducible.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Classifier::Tree(model) => model.to_bytes(),
            Classifier::Text(model) => model.to_bytes(),
            Classifier::Forest(model) => model.to_bytes(),
            Classifier::Logistic(model) => model.to_bytes(),
        }
    }

    /// Decodes an artifact of the learner `kind` names.
    ///
    /// Errors: as the learner's own decoder; [`ModelError::Corrupt`] for a
    /// text artifact of the other text learner.
    pub fn from_bytes(kind: ModelKind, bytes: &[u8]) -> Result<Self, ModelError> {
        let classifier = match kind {
            ModelKind::DecisionTree => Classifier::Tree(Model::from_bytes(bytes)?),
            ModelKind::NaiveBayes | ModelKind::TextLinear => Classifier::Text(TextModel::from_bytes(bytes)?),
            ModelKind::RandomForest => Classifier::Forest(Forest::from_bytes(bytes)?),
            ModelKind::LogisticRegression => Classifier::Logistic(Logistic::from_bytes(bytes)?),
        };
        if classifier.kind() != kind {
            return Err(ModelError::Corrupt(format!(
                "a {} artifact, not {}",
                classifier.kind().as_str(),
                kind.as_str()
            )));
        }
        Ok(classifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::text::TextSettings;
    use crate::ml::{Example, Input, Learner, Table, TreeParams, evaluate};

    /// Labelled sentences made by this project (no third-party text): each
    /// class has its own words among words both classes use.
    fn sentences(n: usize) -> Vec<Example> {
        const OWN: [(&str, [&str; 4]); 2] = [
            ("billing", ["invoice", "refund", "charged", "payment"]),
            ("login", ["password", "account", "locked", "reset"]),
        ];
        const COMMON: [&str; 5] = ["my", "is", "please", "help", "the"];
        (0..n)
            .map(|i| {
                let (label, own) = OWN[i % 2];
                let words = [COMMON[i % 5], own[i % 4], COMMON[(i / 5) % 5], own[(i / 4) % 4]];
                Example::text(words.join(" "), label)
            })
            .collect()
    }

    fn tree() -> Classifier {
        let examples = [
            Example::tabular(vec![0.0, 1.0], "low"),
            Example::tabular(vec![1.0, 1.0], "high"),
        ];
        let params = TreeParams {
            min_weight_split: 2.0,
            min_weight_leaf: 1.0,
            ..TreeParams::default()
        };
        Learner::DecisionTree(params)
            .fit_until(Table::from_examples(&examples).unwrap().all(), &|| false)
            .unwrap()
    }

    #[test]
    fn a_naive_bayes_text_model_round_trips_through_its_artifact() {
        let examples = sentences(80);
        let learner = Learner::NaiveBayes(TextSettings::default());
        let model = learner
            .fit_until(Table::from_examples(&examples).unwrap().all(), &|| false)
            .unwrap();
        assert!(matches!(model, Classifier::Text(_)));
        assert_eq!(model.kind(), ModelKind::NaiveBayes);
        assert_eq!(model.input_kind(), InputKind::Text);
        assert_eq!(model.classes(), ["billing", "login"]);

        let bytes = model.to_bytes();
        let decoded = Classifier::from_bytes(ModelKind::NaiveBayes, &bytes).unwrap();
        assert_eq!(decoded, model);
        assert_eq!(decoded.to_bytes(), bytes, "byte-reproducible");
        // The same training set in another order gives the same bytes.
        let reversed: Vec<Example> = examples.iter().rev().cloned().collect();
        assert_eq!(
            learner
                .fit_until(Table::from_examples(&reversed).unwrap().all(), &|| false)
                .unwrap()
                .to_bytes(),
            bytes
        );

        for e in &examples {
            assert_eq!(decoded.predict(&e.input).unwrap(), model.predict(&e.input).unwrap());
        }
        let answer = decoded
            .predict(&Input::Text("I was charged twice, refund please".into()))
            .unwrap();
        assert_eq!(answer.label, "billing");
        assert!(answer.confidence > 0.5 && answer.confidence <= 1.0);
        let (metrics, _) = evaluate(&decoded, &examples).unwrap();
        assert!(metrics.accuracy > 0.95, "training accuracy {}", metrics.accuracy);

        // Read as the other learner's artifact, the bytes are refused.
        assert!(Classifier::from_bytes(ModelKind::DecisionTree, &bytes).is_err());
    }

    #[test]
    fn a_tree_round_trips_through_the_classifier() {
        let model = tree();
        assert_eq!(
            (model.kind(), model.input_kind()),
            (ModelKind::DecisionTree, InputKind::Tabular)
        );
        let decoded = Classifier::from_bytes(ModelKind::DecisionTree, &model.to_bytes()).unwrap();
        assert_eq!(decoded, model);
        assert_eq!(decoded.predict(&Input::Tabular(vec![0.1, 1.0])).unwrap().label, "low");
    }

    #[test]
    fn every_learner_gives_a_distribution_whose_top_class_is_its_prediction() {
        // Three tabular classes along x, with some overlap so no answer is certain.
        let tabular: Vec<Example> = (0..90)
            .map(|i| {
                Example::tabular(
                    vec![f64::from(i % 30) + f64::from(i / 30) * 20.0, f64::from(i % 7)],
                    ["a", "b", "c"][i as usize / 30],
                )
            })
            .collect();
        let text = sentences(60);
        for name in [
            "decision_tree",
            "random_forest",
            "logistic_regression",
            "naive_bayes",
            "text_linear",
        ] {
            let learner = Learner::parse(name, None).unwrap();
            let examples = if learner.reads(InputKind::Text) {
                &text
            } else {
                &tabular
            };
            let model = learner
                .fit_until(Table::from_examples(examples).unwrap().all(), &|| false)
                .unwrap();
            for example in examples.iter().step_by(7) {
                let shares = model.probabilities(&example.input).unwrap();
                assert_eq!(shares.len(), model.classes().len(), "{name}");
                assert!(shares.iter().all(|p| (0.0..=1.0).contains(p)), "{name}: {shares:?}");
                assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{name}: {shares:?}");
                let prediction = model.predict(&example.input).unwrap();
                let top = model.classes().iter().position(|c| *c == prediction.label).unwrap();
                assert!(
                    (shares[top] - prediction.confidence).abs() < 1e-12,
                    "{name}: {shares:?} {prediction:?}"
                );
                assert!(shares.iter().all(|p| *p <= shares[top]), "{name}: {shares:?}");
            }
            let other_kind = if learner.reads(InputKind::Text) {
                Input::Tabular(vec![1.0; 2])
            } else {
                Input::Text("reset my password".into())
            };
            assert!(
                matches!(model.probabilities(&other_kind), Err(ModelError::WrongInput { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn each_model_refuses_the_other_input_kind() {
        let text = Learner::NaiveBayes(TextSettings::default())
            .fit_until(Table::from_examples(&sentences(20)).unwrap().all(), &|| false)
            .unwrap();
        assert!(matches!(
            text.predict(&Input::Tabular(vec![1.0, 2.0])),
            Err(ModelError::WrongInput {
                expected: InputKind::Text,
                found: InputKind::Tabular
            })
        ));
        assert!(matches!(
            tree().predict(&Input::Text("reset my password".into())),
            Err(ModelError::WrongInput {
                expected: InputKind::Tabular,
                found: InputKind::Text
            })
        ));
        // Nor does a learner fit on the other kind of example.
        assert!(matches!(
            Learner::NaiveBayes(TextSettings::default()).fit_until(
                Table::from_examples(&[Example::tabular(vec![1.0], "a")]).unwrap().all(),
                &|| false
            ),
            Err(ModelError::WrongInput {
                expected: InputKind::Text,
                found: InputKind::Tabular
            })
        ));
        assert!(matches!(
            Learner::DecisionTree(TreeParams::default()).fit_until(
                Table::from_examples(&[Example::text("a b", "a")]).unwrap().all(),
                &|| false
            ),
            Err(ModelError::WrongInput {
                expected: InputKind::Tabular,
                found: InputKind::Text
            })
        ));
    }
}
