//! What a pipeline is to the engine: ordered, named steps, each a handler
//! with a retry policy. The engine knows nothing else about the work.

use crate::error::StepError;
use crate::retry::RetryPolicy;
use crate::status::TriggerKind;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Everything a step gets to do its work.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub run_id: Uuid,
    pub pipeline: String,
    pub step: String,
    pub trigger: TriggerKind,
    /// The run's parameters, as given when it was created.
    pub params: Value,
    /// Persisted outputs of the steps before this one, by step name.
    pub outputs: BTreeMap<String, Value>,
    /// This attempt's number (1 for the first), unique over the step's life.
    pub attempt: i32,
    /// The worker holding this attempt's lease; with `attempt` it fences
    /// writes (see [`crate::hold_lease`]).
    pub lease_owner: String,
    /// Fires when the run is cancelled or the lease is lost: stop early.
    pub cancel: CancellationToken,
}

impl StepContext {
    /// The output of an earlier step, or a fatal error if it is missing.
    pub fn output_of(&self, step: &str) -> Result<&Value, StepError> {
        self.outputs
            .get(step)
            .ok_or_else(|| StepError::Fatal(format!("no output of step {step:?}")))
    }
}

/// How a run may end early, as a normal outcome rather than an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyFinish {
    Skipped,
    Rejected,
}

/// What a step that did its work returns.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Go on to the next step; the output is persisted for the later steps.
    Continue(Value),
    /// End the run now as `skipped` or `rejected`; the output is persisted and
    /// the reason goes into the run's outcome and its event.
    Finish {
        how: EarlyFinish,
        reason: String,
        output: Value,
    },
}

/// One step's work. Implementations should be idempotent per (run, step):
/// a worker may die after the work and before the engine's commit, and the
/// step then runs again.
#[async_trait]
pub trait Step: Send + Sync {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError>;
}

/// A shared handler is a handler, so steps can be wrapped and reused.
#[async_trait]
impl<S: Step + ?Sized> Step for Arc<S> {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        (**self).run(ctx).await
    }
}

/// A step of a pipeline: its name, handler and retry policy.
#[derive(Clone)]
pub struct StepDef {
    pub name: String,
    pub handler: Arc<dyn Step>,
    pub retry: RetryPolicy,
}

impl fmt::Debug for StepDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepDef")
            .field("name", &self.name)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A named, ordered list of steps.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub steps: Vec<StepDef>,
}

impl Pipeline {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            steps: Vec::new(),
        }
    }

    /// Appends a step. Names must be unique within the pipeline.
    ///
    /// # Panics
    /// On a duplicate step name: a programming error, caught at startup.
    pub fn step(mut self, name: impl Into<String>, retry: RetryPolicy, handler: impl Step + 'static) -> Self {
        let name = name.into();
        assert!(
            self.steps.iter().all(|s| s.name != name),
            "duplicate step {name:?} in pipeline {:?}",
            self.name
        );
        self.steps.push(StepDef {
            name,
            handler: Arc::new(handler),
            retry,
        });
        self
    }
}

/// The pipelines an engine can run, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pipelines: HashMap<String, Pipeline>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a pipeline, replacing any of the same name.
    pub fn register(mut self, pipeline: Pipeline) -> Self {
        self.pipelines.insert(pipeline.name.clone(), pipeline);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Pipeline> {
        self.pipelines.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.pipelines.keys().cloned().collect()
    }
}
