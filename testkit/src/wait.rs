//! Waiting for an observable condition with a deadline: how tests
//! synchronise with processes and tasks they do not control, instead of
//! sleeping for a guessed time; and driving a run to its end tick by tick.

use retrain_engine::{Engine, Run, Tick, Worker};
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(20);
/// How long a driven worker waits when no step is due (a retry's backoff).
const IDLE: Duration = Duration::from_millis(10);

/// Polls `check` until it holds.
///
/// # Panics
/// If it still does not hold after `limit`, naming `what` was awaited.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Ticks `worker` until the run has ended (waiting out backoffs when nothing
/// is due) and returns it as it ended.
///
/// # Panics
/// If the run is still active after `limit`, or the engine fails.
pub async fn drive_to_end(worker: &Worker, engine: &Engine, run_id: uuid::Uuid, limit: Duration) -> Run {
    let deadline = Instant::now() + limit;
    loop {
        let run = engine.get_run(run_id).await.expect("the run is readable").run;
        if !run.status.is_active() {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} still {} after {limit:?}",
            run.status
        );
        if worker.tick().await.expect("the worker ticks") == Tick::Idle {
            tokio::time::sleep(IDLE).await;
        }
    }
}
