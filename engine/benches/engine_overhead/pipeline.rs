//! The measured work: pipelines of five steps that return
//! `StepOutcome::Continue(json!({}))`, with the default retry policy.

use async_trait::async_trait;
use retrain_engine::{NewRun, Pipeline, Registry, RetryPolicy, Step, StepContext, StepError, StepOutcome, TriggerKind};
use serde_json::json;

pub const STEPS: usize = 5;
/// The pipeline scenario 1 runs, one run at a time.
pub const SEQ_PIPELINE: &str = "seq";

struct Noop;

#[async_trait]
impl Step for Noop {
    async fn run(&self, _ctx: StepContext) -> Result<StepOutcome, StepError> {
        Ok(StepOutcome::Continue(json!({})))
    }
}

fn pipeline(name: &str) -> Pipeline {
    ["fetch", "prepare", "train", "evaluate", "publish"][..STEPS]
        .iter()
        .fold(Pipeline::new(name), |p, step| {
            p.step(*step, RetryPolicy::default(), Noop)
        })
}

pub fn registry(names: impl IntoIterator<Item = String>) -> Registry {
    names
        .into_iter()
        .fold(Registry::new(), |r, name| r.register(pipeline(&name)))
}

pub fn new_run(pipeline: &str) -> NewRun<'_> {
    NewRun {
        pipeline,
        subject: "",
        trigger: TriggerKind::Manual,
        params: json!({}),
        requested_by: "bench",
    }
}
