//! Test pipelines and helpers to drive workers without sleeping blindly.

use async_trait::async_trait;
use retrain_engine::{
    Engine, NewRun, Pipeline, Registry, RetryPolicy, Run, RunStatus, Step, StepContext, StepError, StepOutcome,
    TriggerKind, Worker, WorkerConfig,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Every handler call seen by the test: (run, step, attempt).
pub type Journal = Arc<Mutex<Vec<(Uuid, String, i32)>>>;

/// Succeeds with an output naming the step and the earlier outputs it saw.
pub struct Echo(pub Journal);

#[async_trait]
impl Step for Echo {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        self.0.lock().unwrap().push((ctx.run_id, ctx.step.clone(), ctx.attempt));
        let saw: Vec<&String> = ctx.outputs.keys().collect();
        Ok(StepOutcome::Continue(json!({"step": ctx.step, "saw": saw})))
    }
}

/// Fails with the given error its first `times` calls, then echoes.
pub struct FailFirst {
    pub times: u32,
    pub error: StepError,
    pub calls: AtomicU32,
    pub journal: Journal,
}

#[async_trait]
impl Step for FailFirst {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.times {
            return Err(self.error.clone());
        }
        Echo(self.journal.clone()).run(ctx).await
    }
}

/// What a [`Gate`] does when its cancellation signal fires.
#[derive(Debug, Clone, Copy)]
pub enum OnSignal {
    /// Stops with `Err(Cancelled)`, as a well-behaved long step does.
    Stop,
    /// Finishes its work and returns `Ok` all the same.
    Finish,
    /// Carries on regardless: returns only when the test opens the gate.
    Ignore,
}

/// A step the test holds: it announces each start, then waits until the
/// test opens it (then succeeds) or its cancellation signal fires (then does
/// what `on_signal` says). No sleeping: the test sees and decides each move.
#[derive(Clone)]
pub struct Gate {
    started: Arc<Notify>,
    opened: Arc<Notify>,
    on_signal: OnSignal,
}

impl Gate {
    pub fn new(on_signal: OnSignal) -> Self {
        Self {
            started: Arc::new(Notify::new()),
            opened: Arc::new(Notify::new()),
            on_signal,
        }
    }

    /// Returns once a step behind this gate has started (each start is
    /// announced once), or panics after 10 s.
    pub async fn started(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.started.notified())
            .await
            .expect("the step starts");
    }

    /// Lets the step waiting at the gate (or the next to arrive) succeed.
    pub fn open(&self) {
        self.opened.notify_one();
    }
}

#[async_trait]
impl Step for Gate {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        self.started.notify_one();
        let signalled = async {
            ctx.cancel.cancelled().await;
            match self.on_signal {
                OnSignal::Stop => Err(StepError::Cancelled),
                OnSignal::Finish => Ok(StepOutcome::Continue(json!({"finished_after_signal": true}))),
                OnSignal::Ignore => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.opened.notified() => Ok(StepOutcome::Continue(json!({"step": ctx.step, "opened": true}))),
            outcome = signalled => outcome,
        }
    }
}

pub fn journal() -> Journal {
    Arc::new(Mutex::new(Vec::new()))
}

pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial: Duration::from_millis(40),
        multiplier: 4.0,
        cap: Duration::from_secs(5),
    }
}

/// A pipeline of echo steps named `a`, `b`, `c`, ...
pub fn echo_pipeline(name: &str, steps: usize, journal: &Journal) -> Pipeline {
    (0..steps).fold(Pipeline::new(name), |p, i| {
        let step = ((b'a' + i as u8) as char).to_string();
        p.step(step, fast_retry(3), Echo(journal.clone()))
    })
}

pub fn engine(pool: &PgPool, pipelines: Vec<Pipeline>) -> Engine {
    retrain_testkit::telemetry::init();
    let registry = pipelines.into_iter().fold(Registry::new(), Registry::register);
    Engine::new(pool.clone(), registry)
}

pub fn worker(engine: &Engine, label: &str) -> Worker {
    let mut config = WorkerConfig::new(label);
    config.lease = Duration::from_secs(10);
    config.heartbeat = Duration::from_millis(500);
    config.poll_interval = Duration::from_millis(50);
    config.shutdown_grace = Duration::from_secs(2);
    Worker::new(engine.clone(), config)
}

pub async fn create(engine: &Engine, pipeline: &str) -> Run {
    engine
        .create_run(NewRun {
            pipeline,
            subject: "",
            trigger: TriggerKind::Manual,
            params: json!({"why": "test"}),
            requested_by: "tester",
        })
        .await
        .expect("create run")
        .run()
        .clone()
}

/// Waits (polling) until the run ends, or panics after 20 s.
pub async fn ended(engine: &Engine, run_id: Uuid) -> Run {
    retrain_testkit::eventually(Duration::from_secs(20), &format!("run {run_id} ends"), || async {
        !engine.get_run(run_id).await.unwrap().run.status.is_active()
    })
    .await;
    engine.get_run(run_id).await.unwrap().run
}

/// Ticks until the run ends (sleeping briefly when nothing is due), or panics
/// after 20 s.
pub async fn drive_to_end(worker: &Worker, engine: &Engine, run_id: Uuid) -> Run {
    retrain_testkit::drive_to_end(worker, engine, run_id, Duration::from_secs(20)).await
}

/// (step or "run", from, to) for each event of the run, in order.
pub async fn transitions(engine: &Engine, run_id: Uuid) -> Vec<(String, String, String)> {
    engine
        .events(run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.step.unwrap_or_else(|| "run".into()),
                e.from_status.unwrap_or_default(),
                e.to_status,
            )
        })
        .collect()
}

pub fn t(step: &str, from: &str, to: &str) -> (String, String, String) {
    (step.into(), from.into(), to.into())
}

pub fn assert_status(run: &Run, status: RunStatus) {
    assert_eq!(run.status, status, "run {} outcome {:?}", run.id, run.outcome);
}

pub fn output_of(value: &Option<Value>) -> Value {
    value.clone().unwrap_or(Value::Null)
}
