//! The one error type of the model code, shared by training, prediction,
//! artifacts and evaluation so callers match on a single enum.

use thiserror::Error;

/// Why a model could not be trained, asked, evaluated or decoded.
///
/// Every variant but [`ModelError::Stopped`] is fatal for the input that
/// caused it: retrying with the same examples, features or bytes gives the
/// same error.
#[derive(Debug, Error)]
pub enum ModelError {
    /// Training or evaluation was given no examples.
    #[error("no examples")]
    Empty,
    /// The examples have no features at all.
    #[error("examples have no features")]
    NoFeatures,
    /// An example's feature count differs from the first example's.
    #[error("example {example} has {found} features, expected {expected}")]
    InconsistentFeatures {
        /// Position of the offending example.
        example: usize,
        /// Feature count of the first example.
        expected: usize,
        /// Feature count of the offending example.
        found: usize,
    },
    /// A training example holds NaN or an infinity.
    #[error("example {example} has a non-finite value in feature {feature}")]
    NonFiniteExample {
        /// Position of the offending example.
        example: usize,
        /// Index of the offending feature.
        feature: usize,
    },
    /// An input to predict has the wrong number of features.
    #[error("input has {found} features, the model expects {expected}")]
    FeatureCount {
        /// Features the model was trained on.
        expected: usize,
        /// Features in the input.
        found: usize,
    },
    /// An input to predict holds NaN or an infinity.
    #[error("input has a non-finite value in feature {feature}")]
    NonFinite {
        /// Index of the offending feature.
        feature: usize,
    },
    /// A hyper-parameter is out of range.
    #[error("invalid hyper-parameter: {0}")]
    InvalidParams(String),
    /// Training was stopped by its caller's signal before it finished.
    #[error("training stopped on request")]
    Stopped,
    /// The artifact bytes are not a postcard-encoded model.
    #[error("artifact does not decode")]
    Decode(#[from] postcard::Error),
    /// The artifact was written by an incompatible format version.
    #[error("artifact format version {found} is not supported (expected {expected})")]
    UnsupportedFormat {
        /// The version this build reads and writes.
        expected: u32,
        /// The version found in the artifact.
        found: u32,
    },
    /// The input or example is of the other kind than the model reads (text
    /// to a tabular model or the reverse).
    #[error("this model reads {expected} input, not {found}")]
    WrongInput {
        /// The kind the model reads.
        expected: super::InputKind,
        /// The kind given.
        found: super::InputKind,
    },
    /// The artifact decodes but describes an impossible model.
    #[error("corrupt artifact: {0}")]
    Corrupt(String),
}
