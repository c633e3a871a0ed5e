//! A trained model of any learner, as the pipeline stores it and serving
//! asks it: one enum over the learners' own types, so the rest of the code
//! never matches on learners. New learners join as variants.

use super::model::{Model, ModelKind, Prediction};
use super::text::TextModel;
use super::{Input, InputKind, ModelError};

/// A trained classifier, ready to serve.
#[derive(Clone, Debug, PartialEq)]
pub enum Classifier {
    /// A decision tree over numeric features.
    Tree(Model),
    /// A text classifier (vocabulary and learner in one artifact).
    Text(TextModel),
}

impl Classifier {
    /// The learner behind the model, as stored with the version.
    pub fn kind(&self) -> ModelKind {
        match self {
            Classifier::Tree(model) => model.kind(),
            Classifier::Text(_) => ModelKind::NaiveBayes,
        }
    }

    /// What the model reads.
    pub fn input_kind(&self) -> InputKind {
        match self {
            Classifier::Tree(_) => InputKind::Tabular,
            Classifier::Text(_) => InputKind::Text,
        }
    }

    /// The class names the model can answer.
    pub fn classes(&self) -> &[String] {
        match self {
            Classifier::Tree(model) => model.classes(),
            Classifier::Text(model) => model.classes(),
        }
    }

    /// The class of one input and the model's confidence in it.
    ///
    /// Errors: [`ModelError::WrongInput`] for an input of the other kind, and
    /// the tree's [`ModelError::FeatureCount`] and [`ModelError::NonFinite`].
    pub fn predict(&self, input: &Input) -> Result<Prediction, ModelError> {
        match (self, input) {
            (Classifier::Tree(model), Input::Tabular(features)) => model.predict(features),
            (Classifier::Text(model), Input::Text(text)) => {
                let answer = model.predict(text);
                Ok(Prediction {
                    label: model.classes()[answer.class].clone(),
                    confidence: answer.confidence,
                })
            }
            _ => Err(ModelError::WrongInput {
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
        }
    }

    /// Decodes an artifact of the learner `kind` names.
    ///
    /// Errors: as the learner's own decoder.
    pub fn from_bytes(kind: ModelKind, bytes: &[u8]) -> Result<Self, ModelError> {
        Ok(match kind {
            ModelKind::DecisionTree => Classifier::Tree(Model::from_bytes(bytes)?),
            ModelKind::NaiveBayes => Classifier::Text(TextModel::from_bytes(bytes)?),
        })
    }
}
