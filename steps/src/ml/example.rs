//! One labelled row, the unit every data source (the wine set, feedback,
//! uploaded files) is turned into before training or evaluation.

use serde::{Deserialize, Serialize};

/// A feature vector with its class label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Numeric features, in the order the model was trained on.
    pub features: Vec<f64>,
    /// The class, e.g. the wine quality score.
    pub label: i32,
}
