//! Machine learning without I/O: the data split, models and their artifacts,
//! evaluation metrics and the validation gate.
//!
//! The flow of a retrain: [`winequality::split`], a user's data set or
//! feedback gives [`Example`]s, gathered into a compact [`Table`], a model's [`Learner`] fits a [`Classifier`]
//! (a decision tree grown deterministically by `cart`, a [`forest`] of
//! them, a [`logistic`] regression, or the [`text`] classifier), chosen
//! and tuned by cross-validation on the training set ([`selection`]), [`Classifier::to_bytes`] makes the self-contained artifact,
//! [`evaluate`] scores champion and candidate on the golden set, [`compare`]
//! pairs their answers and [`judge`] decides on a non-inferiority bound
//! ([`NonInferiority`]).

mod artifact;
mod cart;
mod classifier;
mod error;
mod example;
pub mod forest;
pub mod gate;
pub mod learner;
mod linear;
pub mod logistic;
pub mod mcnemar;
pub mod metrics;
pub mod model;
pub mod noninferiority;
mod rng;
pub mod selection;
mod table;
pub mod text;
pub mod tree;
pub mod winequality;

pub use classifier::Classifier;
pub use error::ModelError;
pub use example::{Example, Input, InputKind};
pub use forest::{Forest, ForestParams};
pub use gate::{Answers, Check, GateConfig, Verdict, judge};
pub use learner::Learner;
pub use logistic::{Logistic, LogisticParams};
pub use mcnemar::{PairedComparison, compare};
pub use metrics::{ClassMetrics, Confusion, Metrics, evaluate, evaluate_rows};
pub use model::{Model, ModelKind, Prediction, sha256_hex};
pub use noninferiority::NonInferiority;
pub use table::{InputRef, Rows, Table, TableBuilder};
pub use tree::{FlatTree, Node, TreeParams};
pub use winequality::Split;
