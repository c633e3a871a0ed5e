//! No run is left active with nothing a worker could claim: a cancel-requested
//! run ends `cancelled` whoever is left holding it (a worker shutting down, a
//! worker that died, nobody at all), and the pipeline takes a new run after.

use crate::support::*;
use retrain_engine::{Cancelled, Engine, Pipeline, Run, RunStatus, StepStatus, Tick, Worker, WorkerConfig};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Step "a" held at `gate`, then step "b" that records its calls in `journal`.
fn held_then_echo(gate: &Gate, journal: &Journal) -> Pipeline {
    Pipeline::new("p")
        .step("a", fast_retry(3), gate.clone())
        .step("b", fast_retry(3), Echo(journal.clone()))
}

/// A worker whose heartbeat comes rarely, so that in these tests only the
/// test's own moves (a cancel, a shutdown) reach the running step.
fn slow_heartbeat_worker(engine: &Engine, label: &str) -> Worker {
    worker_leasing(engine, label, Duration::from_secs(30), Duration::from_secs(10))
}

/// A worker with a short lease, so that killing it is soon noticed.
fn short_lease_worker(engine: &Engine, label: &str) -> Worker {
    worker_leasing(engine, label, Duration::from_secs(1), Duration::from_millis(200))
}

fn worker_leasing(engine: &Engine, label: &str, lease: Duration, heartbeat: Duration) -> Worker {
    let mut config = WorkerConfig::new(label);
    config.lease = lease;
    config.heartbeat = heartbeat;
    config.poll_interval = Duration::from_millis(20);
    config.shutdown_grace = Duration::from_millis(100);
    Worker::new(engine.clone(), config)
}

/// Creates a run of `p`, asserting that it is a new one: the pipeline is free.
async fn create_new(engine: &Engine) -> Run {
    let created = engine
        .create_run(retrain_engine::NewRun {
            pipeline: "p",
            subject: "",
            trigger: retrain_engine::TriggerKind::Manual,
            params: serde_json::json!({}),
            requested_by: "tester",
        })
        .await
        .unwrap();
    assert!(
        created.is_new(),
        "an earlier run still holds the pipeline: {:?}",
        created.run()
    );
    created.run().clone()
}

async fn request_cancel(engine: &Engine, run: &Run) {
    let cancelled = engine.cancel_run(run.id, "ops").await.unwrap();
    assert!(matches!(cancelled, Cancelled::Requested(_)), "{cancelled:?}");
}

/// The run ended cancelled, its first `done` steps succeeded and the rest
/// cancelled. `case` names the scenario in a failure.
async fn assert_cancelled_after(engine: &Engine, run: &Run, done: usize, case: &str) {
    let detail = engine.get_run(run.id).await.unwrap();
    assert_eq!(
        detail.run.status,
        RunStatus::Cancelled,
        "{case}: {:?}",
        detail.run.outcome
    );
    let statuses: Vec<StepStatus> = detail.steps.iter().map(|s| s.status).collect();
    let mut expected = vec![StepStatus::Succeeded; done];
    expected.resize(statuses.len(), StepStatus::Cancelled);
    assert_eq!(statuses, expected, "{case}");
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_cancel_requested_run_released_at_shutdown_ends_cancelled(pool: PgPool) {
    // A step that stops on the shutdown signal, and one that overstays the grace.
    for on_signal in [OnSignal::Stop, OnSignal::Ignore] {
        let gate = Gate::new(on_signal);
        let journal = journal();
        let pipeline = held_then_echo(&gate, &journal);
        let engine = engine(&pool, vec![pipeline]);
        let run = create_new(&engine).await;
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(slow_heartbeat_worker(&engine, "leaving").run(shutdown.clone()));
        gate.started().await;
        request_cancel(&engine, &run).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the worker stops")
            .unwrap();

        // No worker is left: the run ended on the way out.
        assert_cancelled_after(&engine, &run, 0, &format!("{on_signal:?}")).await;
        assert!(journal.lock().unwrap().is_empty(), "b never started");
    }
    let journal = journal();
    create_new(&engine(&pool, vec![echo_pipeline("p", 2, &journal)])).await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_cancel_requested_run_whose_worker_died_ends_cancelled_when_its_lease_expires(pool: PgPool) {
    // The step ignores its signal, so only the lease's expiry can end it.
    let gate = Gate::new(OnSignal::Ignore);
    let journal = journal();
    let pipeline = held_then_echo(&gate, &journal);
    let engine = engine(&pool, vec![pipeline]);
    let run = create_new(&engine).await;
    let dying = short_lease_worker(&engine, "dying");
    let dying_id = dying.id().to_owned();
    let handle = tokio::spawn(dying.run(CancellationToken::new()));
    gate.started().await;
    request_cancel(&engine, &run).await;
    // Killed: its future is dropped mid-step, heartbeat and all.
    handle.abort();
    assert!(handle.await.unwrap_err().is_cancelled());

    drive_to_end(&worker(&engine, "survivor"), &engine, run.id).await;
    assert_cancelled_after(&engine, &run, 0, "killed").await;
    assert!(journal.lock().unwrap().is_empty(), "b never started");
    let events = engine.events(run.id).await.unwrap();
    assert!(
        events.iter().any(|e| e
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(&format!("lease of {dying_id} expired")))),
        "{events:?}"
    );
    create_new(&engine).await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_cancel_requested_run_whose_current_step_is_pending_ends_cancelled(pool: PgPool) {
    let journal = journal();
    let engine = engine(&pool, vec![echo_pipeline("p", 2, &journal)]);
    let worker = worker(&engine, "w");
    let run = create_new(&engine).await;
    // What a worker of an older version left behind: it claimed step a, a
    // cancel was requested, and at shutdown it put the step back to pending.
    worker.claim().await.unwrap().expect("a step is due");
    request_cancel(&engine, &run).await;
    sqlx::query(
        "UPDATE steps SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL
         WHERE run_id = $1 AND position = 0",
    )
    .bind(run.id)
    .execute(&pool)
    .await
    .unwrap();

    // No claim can take it; the next tick's sweep ends it.
    assert_eq!(worker.tick().await.unwrap(), Tick::Idle);
    assert_cancelled_after(&engine, &run, 0, "pending").await;
    assert!(journal.lock().unwrap().is_empty());
    let last = engine.events(run.id).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.to_status.as_str(), last.actor.as_str()),
        ("cancelled", worker.id())
    );
    create_new(&engine).await;
}

/// How a worker leaves a step it holds.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Asked to shut down: the step overstays the grace and is handed back.
    Shutdown,
    /// Killed: its future is dropped, and its lease left to expire.
    Kill,
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn cancels_in_flight_at_every_step_boundary_end_cancelled_whatever_happens_to_the_worker(pool: PgPool) {
    let gate = Gate::new(OnSignal::Ignore);
    let pipeline = ["a", "b", "c"]
        .into_iter()
        .fold(Pipeline::new("p"), |p, name| p.step(name, fast_retry(3), gate.clone()));
    let engine = engine(&pool, vec![pipeline]);
    let survivor = worker(&engine, "survivor");

    // A cancel while step k runs, then the worker shut down or killed.
    for k in 0..3 {
        for fault in [Fault::Shutdown, Fault::Kill] {
            let run = create_new(&engine).await;
            let shutdown = CancellationToken::new();
            let handle = tokio::spawn(short_lease_worker(&engine, "holder").run(shutdown.clone()));
            for _ in 0..k {
                gate.started().await;
                gate.open();
            }
            gate.started().await;
            request_cancel(&engine, &run).await;
            match fault {
                Fault::Shutdown => {
                    shutdown.cancel();
                    tokio::time::timeout(Duration::from_secs(10), handle)
                        .await
                        .expect("the worker stops")
                        .unwrap();
                }
                Fault::Kill => {
                    handle.abort();
                    assert!(handle.await.unwrap_err().is_cancelled());
                    drive_to_end(&survivor, &engine, run.id).await;
                }
            }
            assert_cancelled_after(&engine, &run, k, &format!("during step {k}, {fault:?}")).await;
        }
    }

    // A cancel between steps k-1 and k, with no step running.
    for k in 0..3 {
        let run = create_new(&engine).await;
        for _ in 0..k {
            gate.open();
            assert!(matches!(survivor.tick().await.unwrap(), Tick::Executed(_)));
            gate.started().await;
        }
        let cancelled = engine.cancel_run(run.id, "ops").await.unwrap();
        assert!(matches!(cancelled, Cancelled::Now(_)), "{cancelled:?}");
        assert_cancelled_after(&engine, &run, k, &format!("before step {k}")).await;
    }
    create_new(&engine).await;
}
