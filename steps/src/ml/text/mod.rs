//! Text classification without I/O (issue 11's first text learner): words
//! and n-grams (`tokenize`), a sorted vocabulary with TF-IDF weights
//! (`vocabulary`), multinomial naive Bayes (`bayes`), and the
//! [`TextModel`] that bundles them into one artifact.
//!
//! Written here rather than with linfa-preprocessing's vectorizers, whose
//! fitted forms hold a `RefCell` (not `Sync`, so not shareable by the
//! serving threads) and predict through dense rows.

mod bayes;
mod model;
mod tokenize;
mod vocabulary;

pub use model::{TextLearner, TextModel, TextPrediction, TextSettings};
pub use vocabulary::Weighting;

#[cfg(test)]
mod tests;
