//! A fault-injection aid for tests: slow chosen pipeline steps down so a test
//! can catch a step while it runs (and `kill -9` its worker there).
//!
//! It is off unless the hidden setting `RETRAIN_TEST_SLOW_STEP` (flag
//! `--test-slow-step`) is given, e.g. `train:1500` or `collect:800,promote:800`:
//! the named steps do their real work and then hold the result that many
//! milliseconds before handing it to the engine. That is the window a crash
//! hurts most: the step's effects (a stored model, a promotion) are committed
//! but the engine's commit of the step is not, so the step must run again
//! and find what it did. The hold ends early if the step's cancellation
//! signal fires (lost lease, cancelled run); the result is never changed.

use retrain_engine::{Step, StepContext, StepError, StepOutcome};
use retrain_steps::pipeline::STEPS;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Which steps to slow down, and by how much.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlowSteps(HashMap<String, Duration>);

impl SlowSteps {
    /// Parses `step:millis[,step:millis...]`.
    ///
    /// # Errors
    /// A message for clap if an entry is not `step:millis` with a step of
    /// the retrain pipeline.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut steps = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, millis) = entry
                .split_once(':')
                .ok_or_else(|| format!("expected step:millis, got {entry:?}"))?;
            let name = name.trim();
            if !STEPS.contains(&name) {
                return Err(format!("no step {name:?}; the steps are {}", STEPS.join(", ")));
            }
            let millis: u64 = millis
                .trim()
                .parse()
                .map_err(|_| format!("expected milliseconds after {name:?}, got {millis:?}"))?;
            steps.insert(name.to_owned(), Duration::from_millis(millis));
        }
        Ok(Self(steps))
    }

    /// `step` itself, or `step` behind a delay if it is one of ours.
    pub fn wrap(&self, name: &str, step: Arc<dyn Step>) -> Arc<dyn Step> {
        match self.0.get(name) {
            Some(&delay) => {
                tracing::warn!(
                    step = name,
                    delay_ms = delay.as_millis() as u64,
                    "fault injection: step slowed down"
                );
                Arc::new(Slowed { delay, inner: step })
            }
            None => step,
        }
    }
}

/// A step that holds the real step's result for a while.
struct Slowed {
    delay: Duration,
    inner: Arc<dyn Step>,
}

// `Step` is an `#[async_trait]` trait; its method is written out by hand
// here so this crate needs no `async-trait` dependency for a test aid.
impl Step for Slowed {
    fn run<'life0, 'async_trait>(
        &'life0 self,
        ctx: StepContext,
    ) -> Pin<Box<dyn Future<Output = Result<StepOutcome, StepError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let result = self.inner.run(ctx.clone()).await;
            tokio::select! {
                _ = tokio::time::sleep(self.delay) => {}
                _ = ctx.cancel.cancelled() => {}
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_and_refuses_garbage() {
        let slow = SlowSteps::parse("train:1500, promote:20").unwrap();
        assert_eq!(slow.0["train"], Duration::from_millis(1500));
        assert_eq!(slow.0["promote"], Duration::from_millis(20));
        assert!(SlowSteps::parse("train").is_err());
        assert!(SlowSteps::parse("train:soon").is_err());
        assert!(SlowSteps::parse("trian:100").is_err());
        assert_eq!(SlowSteps::parse("").unwrap(), SlowSteps::default());
    }
}
