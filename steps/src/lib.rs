//! The retrain pipeline on the engine: data, models, the validation gate and
//! the five steps. The map:
//! - [`data`]: a user's data file (CSV or JSON lines) read into typed rows
//!   and split into base and golden by input hash. No I/O but the reader.
//! - [`ml`]: pure ML (the wine split, the tree model and its artifact,
//!   metrics, McNemar, the gate). No I/O.
//! - [`store`]: the pipeline's tables (data sets, feedback, models,
//!   evaluations, the gate's recorded verdicts, promotions and the champion
//!   pointer).
//! - [`trainset`] merges base data and feedback into a training set with its
//!   lineage; [`screening`] decides which feedback may train (conflicting
//!   labels, confident out-of-fold disagreement, sources to quarantine);
//!   [`fit`] trains and stores a model; [`recent`] chooses the feedback held
//!   out of training as the recent set the gate also judges on;
//!   [`reproduce`] refits a stored version and compares its bytes.
//! - [`mod@pipeline`]: collect -> merge -> train -> validate -> promote, each an
//!   engine step, idempotent per run, handing typed outputs
//!   ([`pipeline::outputs`]) to the next.
//! - [`import`]: a user's file as a model's data set version (and a new
//!   model from its first file), in one transaction.
//! - [`bootstrap`]: the split and the first model, once.
//! - [`triggers`]: the threshold check and the cron schedule.

pub mod bootstrap;
pub mod config;
pub mod data;
pub mod error;
pub mod fit;
pub mod import;
pub mod incumbent;
pub mod ml;
pub mod pipeline;
pub mod recent;
pub mod reproduce;
pub mod screening;
pub mod store;
pub mod trainset;
pub mod triggers;

pub use config::PipelineConfig;
pub use error::StepsError;
pub use pipeline::{PIPELINE, PipelineEnv, pipeline, pipeline_wrapping};
