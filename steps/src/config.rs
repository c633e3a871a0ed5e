//! The pipeline's settings: how much new feedback starts a retrain, the
//! model's hyper-parameters and the validation gate. Every field has a
//! default that works on a fresh machine.

use crate::ml::{GateConfig, TreeParams};
use crate::screening::ScreeningSettings;
use serde::{Deserialize, Serialize};

/// Settings of the retrain pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// New feedback rows needed since the last run that passed collect.
    pub threshold: i64,
    /// Hyper-parameters of the decision tree the train step fits.
    pub tree: TreeParams,
    /// The validation gate's thresholds.
    pub gate: GateConfig,
    /// How merge screens feedback before training.
    pub screening: ScreeningSettings,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            threshold: 20,
            tree: TreeParams::default(),
            gate: GateConfig::default(),
            screening: ScreeningSettings::default(),
        }
    }
}
