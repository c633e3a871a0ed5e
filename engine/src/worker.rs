//! The worker: claims due steps, runs their handlers under a heartbeated
//! lease, and commits each result fenced by (lease owner, attempt). It wakes
//! on NOTIFY and polls as a fallback, and shuts down gracefully.

use crate::advance::{self, Succeeded};
use crate::claim::{self, ClaimedStep};
use crate::commit::{self, RetryTiming, StepCommit, lock_fenced};
use crate::error::{EngineError, StepError, database_unavailable};
use crate::lease::{self, Lease};
use crate::pipeline::{StepContext, StepOutcome};
use crate::runs::Engine;
use crate::statistics;
use crate::status::{RunStatus, StepStatus, TriggerKind};
use crate::sweep::{self, SweepClock};
use crate::transition::{self, Because, StepExit};
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// The channel a queued run is announced on (see the migrations).
pub const RUN_QUEUED_CHANNEL: &str = "retrain_run_queued";

/// Worker timing. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique per process: it fences commits.
    pub id: String,
    /// How long a claim is valid without a heartbeat.
    pub lease: Duration,
    /// How often the lease is extended (well under `lease`).
    pub heartbeat: Duration,
    /// How often an idle worker looks for work without a notification.
    pub poll_interval: Duration,
    /// How long a running step may go on after shutdown is asked for.
    pub shutdown_grace: Duration,
    /// How often, at most, the worker sweeps before a claim (reclaims
    /// expired leases, ends stranded cancel-requested runs). A dead worker's
    /// step is taken back within `lease + sweep_every`.
    pub sweep_every: Duration,
    /// Where the worker LISTENs for queued runs: a direct session to the
    /// database (behind PgBouncer in transaction mode LISTEN does not work);
    /// one of the pool's connections if `None`.
    pub listen_url: Option<String>,
}

impl WorkerConfig {
    /// Production defaults with a fresh worker id.
    pub fn new(label: &str) -> Self {
        let short = Uuid::new_v4().simple().to_string();
        Self {
            id: format!("{label}-{}-{}", std::process::id(), &short[..8]),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            sweep_every: Duration::from_secs(1),
            listen_url: None,
        }
    }
}

/// What one [`Worker::tick`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Tick {
    /// Nothing was due.
    Idle,
    /// One attempt of a step ran and its result was committed.
    Executed(Execution),
    /// Shutdown came while a step ran: it was handed back unfinished.
    Released { run_id: Uuid, step: String },
}

/// One attempt of a step, as executed by this worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub run_id: Uuid,
    pub pipeline: String,
    /// What the run acts on (the retrain pipeline's model).
    pub subject: String,
    pub step: String,
    pub trigger: TriggerKind,
    pub attempt: i32,
    pub elapsed: Duration,
    /// `Err(StepError)` text if the handler failed.
    pub error: Option<String>,
    pub commit: StepCommit,
}

/// What became of a step handed back unfinished at shutdown.
enum Handback {
    /// Pending again, for any worker, with the attempt refunded.
    Released,
    /// A cancel was requested: the step ended `cancelled`, and the run with it.
    RunCancelled(StepCommit),
}

/// A step this worker holds, and when the lease on it was asked for (its
/// claim, or the commit that leased it with the step before).
struct Leased {
    claimed: ClaimedStep,
    asked: Instant,
}

/// Called with every attempt a running worker executes (for metrics).
pub type Observer = Arc<dyn Fn(&Execution) + Send + Sync>;

/// Claims and executes steps of the engine's pipelines.
#[derive(Clone)]
pub struct Worker {
    engine: Engine,
    config: WorkerConfig,
    pipelines: Vec<String>,
    observer: Option<Observer>,
    sweep: SweepClock,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .field("pipelines", &self.pipelines)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(engine: Engine, config: WorkerConfig) -> Self {
        let pipelines = engine.registry.names();
        let sweep = SweepClock::new(config.sweep_every);
        Self {
            engine,
            config,
            pipelines,
            observer: None,
            sweep,
        }
    }

    /// Reports every executed attempt to `observer`.
    pub fn observed_by(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Sweeps if a sweep is due (reclaims expired leases, ends stranded
    /// cancel-requested runs; the first tick always sweeps), then claims and
    /// executes at most one step.
    /// Tests drive the worker with this instead of sleeping.
    ///
    /// # Errors
    /// `Database`, or `LeaseLost` if the lease was lost while the step ran.
    pub async fn tick(&self) -> Result<Tick, EngineError> {
        let (tick, _) = self.tick_until(&CancellationToken::new(), false).await?;
        Ok(tick)
    }

    /// A tick; with `lease_next`, a step that succeeds also leases its run's
    /// next step to this worker, returned for the caller to execute.
    async fn tick_until(
        &self,
        shutdown: &CancellationToken,
        lease_next: bool,
    ) -> Result<(Tick, Option<Leased>), EngineError> {
        if self.sweep.due() {
            sweep::sweep(&self.engine.pool, &self.pipelines, &self.config.id).await?;
            // Stale statistics only slow the engine down: never stop work for them.
            if let Err(err) = statistics::refresh(&self.engine.pool).await {
                tracing::warn!(error = %err, "cannot analyze the engine's grown tables; plans may be stale");
            }
            self.sweep.swept();
        }
        let asked = Instant::now();
        match self.claim().await? {
            None => Ok((Tick::Idle, None)),
            Some(claimed) => self.execute(Leased { claimed, asked }, shutdown, lease_next).await,
        }
    }

    /// Claims one due step under a lease, without running it.
    ///
    /// # Errors
    /// `Database`.
    pub async fn claim(&self) -> Result<Option<ClaimedStep>, EngineError> {
        Ok(claim::claim(&self.engine.pool, &self.pipelines, &self.config.id, self.config.lease).await?)
    }

    /// Runs a claimed step's handler with a heartbeat, then commits its result.
    /// If `shutdown` fires, the step is signalled and given `shutdown_grace`;
    /// if it stops on the signal or runs past the grace, it is released for
    /// another worker without spending an attempt (or, if a cancel was
    /// requested meanwhile, the run is cancelled). If the lease was lost or
    /// could not be confirmed and the step stopped on its signal, nothing is
    /// written: the lease's expiry hands the step on. With `lease_next`, a
    /// success also leases the run's next step, which is returned.
    async fn execute(
        &self,
        Leased { claimed, asked }: Leased,
        shutdown: &CancellationToken,
        lease_next: bool,
    ) -> Result<(Tick, Option<Leased>), EngineError> {
        let started = Instant::now();
        let step_cancel = CancellationToken::new();
        let timing = lease::Timing {
            lease: self.config.lease,
            every: self.config.heartbeat,
            asked,
        };
        let heartbeat = lease::spawn_heartbeat(self.engine.pool.clone(), claimed.clone(), timing, step_cancel.clone());
        let result = self.run_handler(&claimed, step_cancel, shutdown).await;
        let stopped = matches!(result, None | Some(Err(StepError::Cancelled)));
        if heartbeat.stop().await == Lease::Lost && stopped {
            // Another worker may hold the step now. A stop on our own signal
            // is neither the step's failure nor the run's cancel: leave it to
            // the reclaim. (A result returned all the same goes on to the
            // fenced commit: it is refused if the step was taken meanwhile,
            // and saves doing the work again if nobody took it.)
            return Err(lease_lost(&claimed));
        }
        // Unfinished at shutdown (out of grace, or stopped on the signal):
        // hand the step back without spending an attempt.
        let unfinished = match &result {
            None => true,
            Some(Err(StepError::Cancelled)) => shutdown.is_cancelled(),
            Some(_) => false,
        };
        let (error, (commit, next)) = match result.filter(|_| !unfinished) {
            Some(result) => {
                let error = result.as_ref().err().map(ToString::to_string);
                (
                    error,
                    self.commit_patiently(&claimed, result, shutdown, lease_next).await?,
                )
            }
            None => match self.release(&claimed).await? {
                Handback::Released => {
                    let released = Tick::Released {
                        run_id: claimed.run_id,
                        step: claimed.step,
                    };
                    return Ok((released, None));
                }
                Handback::RunCancelled(commit) => (Some(StepError::Cancelled.to_string()), (commit, None)),
            },
        };
        tracing::debug!(run_id = %claimed.run_id, step = %claimed.step, attempt = claimed.attempt, ?commit,
            "step committed");
        let execution = Execution {
            run_id: claimed.run_id,
            pipeline: claimed.pipeline,
            subject: claimed.subject,
            step: claimed.step,
            trigger: claimed.trigger,
            attempt: claimed.attempt,
            elapsed: started.elapsed(),
            error,
            commit,
        };
        if let Some(observer) = &self.observer {
            observer(&execution);
        }
        Ok((Tick::Executed(execution), next))
    }

    /// `None` if shutdown's grace ran out before the handler returned.
    async fn run_handler(
        &self,
        claimed: &ClaimedStep,
        step_cancel: CancellationToken,
        shutdown: &CancellationToken,
    ) -> Option<Result<StepOutcome, StepError>> {
        let handler = self
            .engine
            .registry
            .get(&claimed.pipeline)
            .and_then(|p| p.steps.iter().find(|s| s.name == claimed.step))
            .map(|s| s.handler.clone());
        let Some(handler) = handler else {
            return Some(Err(StepError::Fatal(format!(
                "no handler for step {:?} of pipeline {:?} in this worker",
                claimed.step, claimed.pipeline
            ))));
        };
        let ctx = StepContext {
            run_id: claimed.run_id,
            pipeline: claimed.pipeline.clone(),
            step: claimed.step.clone(),
            trigger: claimed.trigger,
            params: claimed.params.clone(),
            outputs: claimed.outputs.clone(),
            attempt: claimed.attempt,
            lease_owner: claimed.lease_owner.clone(),
            cancel: step_cancel.clone(),
        };
        // The handler's own log lines carry the run and step through this span.
        let span = tracing::info_span!("step", run_id = %claimed.run_id, step = %claimed.step,
            attempt = claimed.attempt);
        tracing::debug!(run_id = %claimed.run_id, step = %claimed.step, attempt = claimed.attempt, "step started");
        let work = handler.run(ctx).instrument(span);
        tokio::pin!(work);
        tokio::select! {
            result = &mut work => return Some(result),
            _ = shutdown.cancelled() => {}
        }
        step_cancel.cancel();
        tokio::time::timeout(self.config.shutdown_grace, work).await.ok()
    }

    /// Commits an attempt's result, if this worker still holds the lease.
    ///
    /// # Errors
    /// `LeaseLost` if the step was reclaimed or moved on; `Database`.
    pub async fn complete(
        &self,
        claimed: &ClaimedStep,
        result: Result<StepOutcome, StepError>,
    ) -> Result<StepCommit, EngineError> {
        let (commit, _) = self.commit(claimed, result, false).await?;
        Ok(commit)
    }

    /// [`Self::complete`]; with `lease_next`, a success that advances the run
    /// also leases its next step to this worker, which is returned. A success
    /// with no cancel requested (the common case) is one statement
    /// (advance.rs); anything else is decided in a transaction (commit.rs).
    async fn commit(
        &self,
        claimed: &ClaimedStep,
        result: Result<StepOutcome, StepError>,
        lease_next: bool,
    ) -> Result<(StepCommit, Option<Leased>), EngineError> {
        if let Ok(StepOutcome::Continue(output)) = &result {
            let asked = Instant::now();
            let lease = lease_next.then_some(self.config.lease);
            match advance::succeed(&self.engine.pool, claimed, output, &self.config.id, lease).await? {
                Succeeded::LeaseLost => return Err(lease_lost(claimed)),
                Succeeded::Finished => return Ok((StepCommit::RunFinished(RunStatus::Succeeded), None)),
                Succeeded::Advanced(next) => {
                    return Ok((StepCommit::Advanced, next.map(|claimed| Leased { claimed, asked })));
                }
                Succeeded::CancelRequested => {}
            }
        }
        let mut tx = self.engine.pool.begin().await?;
        let Some(step) = lock_fenced(&mut tx, claimed).await? else {
            return Err(lease_lost(claimed));
        };
        let commit = commit::apply(&mut tx, &step, result, &self.config.id, RetryTiming::Backoff).await?;
        tx.commit().await?;
        Ok((commit, None))
    }

    /// [`Self::commit`], tried again while the database is away (a restart,
    /// a lost connection) until it answers or shutdown comes. The result is
    /// in hand and the commit is fenced, so committing it late is safe; giving
    /// up instead would leave the step running until its lease expired and
    /// then spend an attempt on doing the work again.
    async fn commit_patiently(
        &self,
        claimed: &ClaimedStep,
        result: Result<StepOutcome, StepError>,
        shutdown: &CancellationToken,
        lease_next: bool,
    ) -> Result<(StepCommit, Option<Leased>), EngineError> {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.commit(claimed, result.clone(), lease_next).await {
                Err(EngineError::Database(err)) if database_unavailable(&err) && !shutdown.is_cancelled() => {
                    tracing::warn!(run_id = %claimed.run_id, step = %claimed.step, error = %err,
                        "cannot commit the step's result: the database is away; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Hands a claimed step back unfinished (shutdown): it becomes pending at
    /// once and the abandoned attempt does not count against its budget. If a
    /// cancel was requested, no claim would ever take it again: the stopped
    /// step is the run's cancel instead.
    async fn release(&self, claimed: &ClaimedStep) -> Result<Handback, EngineError> {
        let mut tx = self.engine.pool.begin().await?;
        let Some(step) = lock_fenced(&mut tx, claimed).await? else {
            return Err(lease_lost(claimed));
        };
        if step.cancel_requested {
            let stopped = Err(StepError::Cancelled);
            let commit = commit::apply(&mut tx, &step, stopped, &self.config.id, RetryTiming::Backoff).await?;
            tx.commit().await?;
            tracing::info!(run_id = %claimed.run_id, step = %claimed.step, attempt = claimed.attempt,
                "step stopped at shutdown with a cancel requested; run cancelled");
            return Ok(Handback::RunCancelled(commit));
        }
        sqlx::query("UPDATE steps SET retry_base = retry_base + 1 WHERE run_id = $1 AND position = $2")
            .bind(step.run_id)
            .bind(step.position)
            .execute(&mut *tx)
            .await?;
        let exit = StepExit {
            to: StepStatus::Pending,
            output: None,
            error: None,
            retry_in: None,
        };
        let why = Because {
            actor: &self.config.id,
            reason: Some("released unfinished: worker shutting down"),
            detail: None,
        };
        transition::leave_running(&mut tx, step.run_id, step.position, exit, why).await?;
        tx.commit().await?;
        tracing::info!(run_id = %claimed.run_id, step = %claimed.step, attempt = claimed.attempt,
            "released step at shutdown");
        Ok(Handback::Released)
    }

    /// Works until `shutdown` fires: executes due steps back to back (a
    /// step's commit leases its run's next step to this worker, so a run
    /// needs one claim, not one per step), and when idle waits for a
    /// notification or the poll interval. Database errors
    /// are logged and retried after the poll interval.
    pub async fn run(self, shutdown: CancellationToken) {
        let connected = match &self.config.listen_url {
            Some(url) => PgListener::connect(url).await,
            None => PgListener::connect_with(&self.engine.pool).await,
        };
        let mut listener = match connected {
            Ok(mut listener) => match listener.listen(RUN_QUEUED_CHANNEL).await {
                Ok(()) => Some(listener),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot LISTEN; polling only");
                    None
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, "cannot connect a listener; polling only");
                None
            }
        };
        tracing::info!(worker = %self.config.id, "worker started");
        // A step the last commit leased to this worker: executed next, with no claim.
        let mut next: Option<Leased> = None;
        while !shutdown.is_cancelled() {
            let ticked = match next.take() {
                Some(leased) => self.execute(leased, &shutdown, true).await,
                None => self.tick_until(&shutdown, true).await,
            };
            match ticked {
                Ok((Tick::Executed(_), leased)) => {
                    next = leased;
                    continue;
                }
                Ok((Tick::Idle | Tick::Released { .. }, _)) => {}
                Err(EngineError::LeaseLost { run_id, step, attempt }) => {
                    tracing::warn!(%run_id, %step, attempt, "result discarded: lease lost");
                    continue;
                }
                Err(err) => tracing::warn!(error = %err, "worker tick failed"),
            }
            let wait = tokio::time::sleep(self.config.poll_interval);
            match listener.as_mut() {
                // A lost connection reads as Ok(None): the next tick is the catch-up.
                Some(listener) => tokio::select! {
                    _ = listener.try_recv() => {}
                    _ = wait => {}
                    _ = shutdown.cancelled() => {}
                },
                None => tokio::select! {
                    _ = wait => {}
                    _ = shutdown.cancelled() => {}
                },
            }
        }
        if let Some(Leased { claimed, .. }) = next {
            // Shutdown came between a commit and the step it leased: hand it back.
            if let Err(err) = self.release(&claimed).await {
                tracing::warn!(run_id = %claimed.run_id, step = %claimed.step, error = %err,
                    "cannot hand back the step leased at the last commit; its lease will expire");
            }
        }
        tracing::info!(worker = %self.config.id, "worker stopped");
    }
}

fn lease_lost(claimed: &ClaimedStep) -> EngineError {
    EngineError::LeaseLost {
        run_id: claimed.run_id,
        step: claimed.step.clone(),
        attempt: claimed.attempt,
    }
}
