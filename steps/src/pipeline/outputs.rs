//! What each step hands to the steps after it, as typed structs: the engine
//! persists them as JSON, and a later step reads the whole struct back, so a
//! renamed or missing field fails loudly at the one place it is read.

use crate::ml::Check;
use retrain_engine::{StepContext, StepError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// collect: the feedback window of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectOutput {
    pub previous_watermark: i64,
    pub watermark: i64,
    pub new_rows: i64,
    pub threshold: i64,
}

/// merge: the recorded training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeOutput {
    pub training_set_id: i64,
    pub dataset_id: i32,
    /// `name@version` of the base data set.
    pub dataset: String,
    /// The lineage as recorded in `training_sets`.
    pub lineage: Value,
}

/// train: the candidate model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutput {
    /// The trained version's id (`model_id` in outputs stored by earlier
    /// releases).
    #[serde(alias = "model_id")]
    pub version_id: i64,
    pub version: i32,
    pub sha256: String,
    pub training_ms: i32,
    pub training_metrics: Value,
    /// The recent rows validate scores, as train's rebuild chose them (none
    /// in outputs of earlier releases or of a repeat attempt: validate
    /// then chooses them again from the recorded set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent: Option<RecentRows>,
}

/// The newest feedback rows a training set held out as its recent set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentRows {
    /// The gate's `recent_max_rows` they were capped at.
    pub max_rows: usize,
    /// Their feedback ids, ascending.
    pub ids: Vec<i64>,
}

/// One model's golden-set figures, as the gate saw them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    #[serde(alias = "model_id")]
    pub version_id: i64,
    pub version: i32,
    pub accuracy: f64,
    pub macro_f1: f64,
}

/// validate: the gate's verdict as recorded in `validations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateOutput {
    pub passed: bool,
    pub candidate: Scored,
    /// The champion the candidate was judged against (none before bootstrap).
    pub champion: Option<Scored>,
    pub comparison: Option<Value>,
    pub checks: Vec<Check>,
    /// The decision in words (none in verdicts recorded before the
    /// statistical gate).
    #[serde(default)]
    pub decision: Option<String>,
    /// The recent set's size and each model's accuracy on it.
    #[serde(default)]
    pub recent: Option<RecentScores>,
}

/// Both models on the recent set (held-out feedback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentScores {
    pub rows: i32,
    /// `None`: the set was empty.
    pub candidate_accuracy: Option<f64>,
    pub champion_accuracy: Option<f64>,
}

/// promote: the promotion made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromoteOutput {
    pub promotion_id: i64,
    pub version: i32,
    pub previous_version: Option<i32>,
}

/// A model by id and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    #[serde(alias = "model_id")]
    pub version_id: i64,
    pub version: i32,
}

impl From<(i64, i32)> for ModelRef {
    fn from((version_id, version): (i64, i32)) -> Self {
        Self { version_id, version }
    }
}

/// promote, when the verdict no longer applies: the candidate, the champion
/// the gate judged it against and the champion serving instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromoteRefused {
    pub candidate: ModelRef,
    pub judged_against: Option<ModelRef>,
    pub serving: Option<ModelRef>,
}

/// Reads an earlier step's whole output.
///
/// # Errors
/// `Fatal` if the step left no output or it does not have this shape.
pub(super) fn read<T: DeserializeOwned>(ctx: &StepContext, step: &str) -> Result<T, StepError> {
    serde_json::from_value(ctx.output_of(step)?.clone())
        .map_err(|e| StepError::fatal(format!("output of step {step:?} is not usable: {e}")))
}

/// A step's output as the JSON the engine persists.
pub(super) fn write<T: Serialize>(output: &T) -> Value {
    // Plain structs of numbers, strings and JSON values always serialize.
    serde_json::to_value(output).unwrap_or_default()
}
