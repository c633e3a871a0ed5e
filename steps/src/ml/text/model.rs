//! A text classifier as one self-contained, byte-reproducible artifact: the
//! settings, the vocabulary with its idf, and the learner (issue 11: train
//! fits it for a `text` model, the artifact is a version's bytes, and the
//! predict routes call [`TextModel::predict`]).

use super::bayes::NaiveBayes;
use super::vocabulary::{Vocabulary, Weighting};
use crate::ml::linear::Linear;
use crate::ml::{ModelError, artifact};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The artifact format this build writes and reads.
const FORMAT: u32 = 1;

/// The learner and its settings; more learners join as variants (a new
/// variant is appended, so stored artifacts keep their encoding).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum TextLearner {
    /// Multinomial naive Bayes with Lidstone smoothing `alpha` (> 0).
    MultinomialNb {
        /// Added to every term's weight per class; 1 is Laplace smoothing.
        alpha: f64,
    },
    /// One-vs-rest linear SVMs (issue 12; scikit-learn's `LinearSVC(C)`),
    /// best over TF-IDF weights of word 1-2 grams with sublinear tf.
    LinearSvm {
        /// The weight of the hinge losses against the L2 penalty (> 0).
        c: f64,
    },
}

/// How text becomes terms and terms become a model. Recorded in the
/// artifact, so a version says how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextSettings {
    /// Word n-grams from 1 to this (>= 1).
    pub ngram_max: usize,
    /// Keep terms found in at least this many training texts (>= 1).
    pub min_df: usize,
    /// Keep at most this many terms, the most frequent first (>= 1 if set).
    pub max_features: Option<usize>,
    /// Weigh a term's count c as 1 + ln c instead of c.
    pub sublinear_tf: bool,
    /// Counts or TF-IDF.
    pub weighting: Weighting,
    /// The classifier over the weights.
    pub learner: TextLearner,
}

impl Default for TextSettings {
    /// Unigrams, every term, raw counts, alpha 1: scikit-learn's
    /// `CountVectorizer()` + `MultinomialNB()`. On the Rotten Tomatoes
    /// reviews (benches/text_reviews.rs) counts reach golden accuracy 0.739
    /// (base) and 0.774 (base + pool) where TF-IDF weights reach 0.685 and
    /// 0.749, as scikit-learn's `TfidfVectorizer()` + `MultinomialNB()` do
    /// (0.686, 0.749): naive Bayes models counts, and unit-length TF-IDF
    /// rows shrink the evidence of long reviews.
    fn default() -> Self {
        Self {
            ngram_max: 1,
            min_df: 1,
            max_features: None,
            sublinear_tf: false,
            weighting: Weighting::Counts,
            learner: TextLearner::MultinomialNb { alpha: 1.0 },
        }
    }
}

impl TextSettings {
    /// TF-IDF of word 1-2 grams with sublinear tf, then a linear SVM with
    /// `C = 1`: scikit-learn's `TfidfVectorizer(ngram_range=(1, 2),
    /// sublinear_tf=True)` + `LinearSVC()`, the reference (0.783 on
    /// the reviews after all pool feedback).
    pub fn linear() -> Self {
        Self {
            ngram_max: 2,
            sublinear_tf: true,
            weighting: Weighting::TfIdf,
            learner: TextLearner::LinearSvm { c: 1.0 },
            ..Self::default()
        }
    }

    /// Errors: [`ModelError::InvalidParams`] for a setting out of range.
    pub(crate) fn check(&self) -> Result<(), ModelError> {
        let (TextLearner::MultinomialNb { alpha } | TextLearner::LinearSvm { c: alpha }) = self.learner;
        let problem = if self.ngram_max == 0 {
            "ngram_max must be at least 1"
        } else if self.min_df == 0 {
            "min_df must be at least 1"
        } else if self.max_features == Some(0) {
            "max_features must be at least 1"
        } else if !(alpha.is_finite() && alpha > 0.0) {
            "alpha and c must be positive numbers"
        } else {
            return Ok(());
        };
        Err(ModelError::InvalidParams(problem.to_owned()))
    }
}

/// A model's answer for one text.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextPrediction {
    /// Index into [`TextModel::classes`].
    pub class: usize,
    /// The learner's probability for that class, in (0, 1].
    pub confidence: f64,
}

/// A trained text classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextModel {
    settings: TextSettings,
    /// Class names, sorted.
    classes: Vec<String>,
    vocabulary: Vocabulary,
    classifier: Classifier,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Classifier {
    MultinomialNb(NaiveBayes),
    LinearSvm(Linear),
}

impl TextModel {
    /// Fits on `texts[i]` labelled `labels[i]`. The same pairs, in any order,
    /// give the same model and artifact bytes: pairs are sorted before any
    /// floating-point sum, terms and classes are sorted by name.
    ///
    /// Errors: [`ModelError::Empty`] for no texts;
    /// [`ModelError::InvalidParams`] for lengths that differ, a setting out
    /// of range, or no term left after `min_df`.
    pub fn fit<T: AsRef<str>, L: AsRef<str>>(
        texts: &[T],
        labels: &[L],
        settings: &TextSettings,
    ) -> Result<Self, ModelError> {
        settings.check()?;
        if texts.len() != labels.len() {
            return Err(ModelError::InvalidParams(format!(
                "{} texts but {} labels",
                texts.len(),
                labels.len()
            )));
        }
        if texts.is_empty() {
            return Err(ModelError::Empty);
        }
        let mut pairs: Vec<(&str, &str)> = texts
            .iter()
            .map(AsRef::as_ref)
            .zip(labels.iter().map(AsRef::as_ref))
            .collect();
        pairs.sort_unstable();
        let classes: Vec<String> = pairs
            .iter()
            .map(|(_, l)| *l)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let sorted_texts: Vec<&str> = pairs.iter().map(|(t, _)| *t).collect();
        let vocabulary = Vocabulary::fit(&sorted_texts, settings)?;
        let vectors: Vec<_> = sorted_texts.iter().map(|t| vocabulary.vectorize(t, settings)).collect();
        let class_of: Vec<usize> = pairs
            .iter()
            .map(|(_, l)| classes.binary_search_by(|c| c.as_str().cmp(l)).unwrap_or_default())
            .collect();
        let classifier = match settings.learner {
            TextLearner::MultinomialNb { alpha } => Classifier::MultinomialNb(NaiveBayes::fit(
                &vectors,
                &class_of,
                classes.len(),
                vocabulary.len(),
                alpha,
            )),
            TextLearner::LinearSvm { c } => {
                Classifier::LinearSvm(Linear::fit_svm(&vectors, &class_of, classes.len(), vocabulary.len(), c))
            }
        };
        Ok(Self {
            settings: settings.clone(),
            classes,
            vocabulary,
            classifier,
        })
    }

    /// The class of `text` and the model's confidence in it. A text with no
    /// known term gets the most frequent class of the training set.
    pub fn predict(&self, text: &str) -> TextPrediction {
        let vector = self.vocabulary.vectorize(text, &self.settings);
        let (class, confidence) = match &self.classifier {
            Classifier::MultinomialNb(nb) => nb.predict(&vector),
            Classifier::LinearSvm(linear) => linear.predict(&vector),
        };
        TextPrediction { class, confidence }
    }

    /// Each class's probability for `text` (naive Bayes' posterior, the
    /// softmax of the SVM's scores), in [`TextModel::classes`] order.
    pub fn probabilities(&self, text: &str) -> Vec<f64> {
        let vector = self.vocabulary.vectorize(text, &self.settings);
        match &self.classifier {
            Classifier::MultinomialNb(nb) => nb.posterior(&vector),
            Classifier::LinearSvm(linear) => linear.softmax(&vector),
        }
    }

    /// The class names, sorted; a prediction's `class` indexes this.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The settings the model was fitted with.
    pub fn settings(&self) -> &TextSettings {
        &self.settings
    }

    /// The artifact: a format number, then the model, in postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        artifact::encode(FORMAT, self)
    }

    /// Reads an artifact written by [`TextModel::to_bytes`].
    ///
    /// Errors: as [`artifact::decode`], and [`ModelError::Corrupt`] for a
    /// model whose parts do not fit together.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let model: Self = artifact::decode(FORMAT, bytes)?;
        model.settings.check().map_err(|e| ModelError::Corrupt(e.to_string()))?;
        let shape = match (&model.classifier, model.settings.learner) {
            (Classifier::MultinomialNb(nb), TextLearner::MultinomialNb { .. }) => Some(nb.shape()),
            (Classifier::LinearSvm(linear), TextLearner::LinearSvm { .. }) => linear.shape(),
            _ => None,
        };
        let sorted = model.classes.is_sorted_by(|a, b| a < b);
        if model.classes.is_empty() || !sorted || shape != Some((model.classes.len(), model.vocabulary.len())) {
            return Err(ModelError::Corrupt(
                "classes, vocabulary and learner do not match".to_owned(),
            ));
        }
        Ok(model)
    }

    #[cfg(test)]
    pub(super) fn parts(&self) -> (&Vocabulary, &NaiveBayes) {
        let Classifier::MultinomialNb(nb) = &self.classifier else {
            panic!("not a naive Bayes model");
        };
        (&self.vocabulary, nb)
    }
}
