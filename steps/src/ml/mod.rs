//! Machine learning without I/O: the data split, models and their artifacts,
//! evaluation metrics and the validation gate.
//!
//! The flow of a retrain: [`winequality::split`] (or feedback) gives
//! [`Example`]s, [`Model::train`] grows a decision tree deterministically (`cart`),
//! [`Model::to_bytes`] makes the artifact, [`evaluate`] scores champion and
//! candidate on the golden set, [`compare`] pairs their answers and [`judge`]
//! decides. [`text`] is the text classifier, a self-contained artifact too.

mod cart;
mod error;
mod example;
pub mod gate;
pub mod mcnemar;
pub mod metrics;
pub mod model;
pub mod text;
pub mod tree;
pub mod winequality;

pub use error::ModelError;
pub use example::Example;
pub use gate::{Check, GateConfig, Verdict, judge};
pub use mcnemar::{PairedComparison, compare};
pub use metrics::{ClassMetrics, Confusion, Metrics, evaluate};
pub use model::{Model, ModelKind, Prediction, sha256_hex};
pub use tree::{FlatTree, Node, TreeParams};
pub use winequality::Split;
