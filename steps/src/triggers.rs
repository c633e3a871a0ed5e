//! What starts a retrain run besides an operator: the threshold check (enough
//! new feedback of a model waits), each model's own cron schedule, and an
//! optional service-wide one (a run of every model), all on
//! tokio-cron-scheduler. Duplicate triggers are harmless: the engine returns
//! the model's active run instead of creating a second.

use crate::pipeline::{PIPELINE, run_params};
use crate::store::feedback;
use crate::store::models::{self, ModelSpec};
use retrain_engine::{Created, Engine, EngineError, NewRun, TriggerKind};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use uuid::Uuid;

/// When the triggers fire.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerConfig {
    /// Feedback rows waiting that start a run.
    pub threshold: i64,
    /// How often the threshold is checked.
    pub check_every: Duration,
    /// Delay before the first check after start.
    pub first_check_after: Duration,
    /// A 6-field cron expression (with seconds, UTC) for scheduled runs; off if `None`.
    pub cron: Option<String>,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self {
            threshold: 20,
            check_every: Duration::from_secs(60),
            first_check_after: Duration::from_secs(30),
            cron: None,
        }
    }
}

/// Creates a threshold-triggered run of the model if at least its
/// threshold (`default_threshold` unless it has its own) of feedback rows
/// wait; `None` if fewer do.
///
/// # Errors
/// `Database`.
pub async fn check_threshold(
    engine: &Engine,
    model: &ModelSpec,
    default_threshold: i64,
) -> Result<Option<Created>, EngineError> {
    let threshold = model.threshold_or(default_threshold);
    let mut conn = engine.pool().acquire().await?;
    let waiting = feedback::waiting(&mut conn, model.id).await?;
    drop(conn);
    if waiting < threshold {
        return Ok(None);
    }
    let mut params = run_params(&model.name);
    params["waiting_feedback"] = json!(waiting);
    params["threshold"] = json!(threshold);
    let created = engine
        .create_run(NewRun {
            pipeline: PIPELINE,
            subject: &model.name,
            trigger: TriggerKind::Threshold,
            params,
            requested_by: "threshold-check",
        })
        .await?;
    Ok(Some(created))
}

/// [`check_threshold`] for every model; the runs it created or found.
///
/// # Errors
/// `Database`.
pub async fn check_thresholds(engine: &Engine, default_threshold: i64) -> Result<Vec<Created>, EngineError> {
    let all = models::list(&mut *engine.pool().acquire().await?).await?;
    let mut created = Vec::new();
    for model in &all {
        created.extend(check_threshold(engine, model, default_threshold).await?);
    }
    Ok(created)
}

/// Creates a scheduled run of `model` (or finds its active one).
///
/// # Errors
/// `Database`.
pub async fn scheduled_run(engine: &Engine, model: &str) -> Result<Created, EngineError> {
    engine
        .create_run(NewRun {
            pipeline: PIPELINE,
            subject: model,
            trigger: TriggerKind::Schedule,
            params: run_params(model),
            requested_by: "scheduler",
        })
        .await
}

/// Creates a scheduled run of every model (or finds its active one).
///
/// # Errors
/// `Database`.
pub async fn scheduled_runs(engine: &Engine) -> Result<Vec<Created>, EngineError> {
    let all = models::list(&mut *engine.pool().acquire().await?).await?;
    let mut created = Vec::new();
    for model in &all {
        created.push(scheduled_run(engine, &model.name).await?);
    }
    Ok(created)
}

/// Why a cron expression cannot schedule runs, if it cannot.
pub fn cron_problem(cron: &str) -> Option<String> {
    Job::new_async(cron, |_, _| Box::pin(async {}))
        .err()
        .map(|e| format!("{cron:?} is not a 6-field cron expression (seconds first, UTC): {e}"))
}

/// The jobs of models' own schedules, by model, with the expression each
/// was made from.
type ModelJobs = Arc<Mutex<HashMap<String, (String, Uuid)>>>;

/// Makes the scheduler's per-model jobs match the registry: a job for each
/// model with a cron, replaced when its cron changes, removed when the model
/// has none.
async fn sync_schedules(scheduler: &JobScheduler, engine: &Engine, jobs: &ModelJobs) -> Result<(), SyncError> {
    let all = models::list(&mut *engine.pool().acquire().await?).await?;
    let mut jobs = jobs.lock().await;
    for model in &all {
        let current = jobs.get(&model.name).map(|(cron, _)| cron.as_str());
        if current == model.cron.as_deref() {
            continue;
        }
        if let Some((_, id)) = jobs.remove(&model.name) {
            scheduler.remove(&id).await?;
        }
        let Some(cron) = &model.cron else { continue };
        let (engine, name) = (engine.clone(), model.name.clone());
        let job = Job::new_async(cron.as_str(), move |_id, _scheduler| {
            let (engine, name) = (engine.clone(), name.clone());
            Box::pin(async move { log_scheduled(scheduled_run(&engine, &name).await.map(|c| vec![c])) })
        })?;
        jobs.insert(model.name.clone(), (cron.clone(), scheduler.add(job).await?));
    }
    Ok(())
}

/// What keeping the schedules in sync can fail with: the database or the
/// scheduler refused.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Scheduler(#[from] JobSchedulerError),
}

fn log_scheduled(result: Result<Vec<Created>, EngineError>) {
    match result {
        Ok(created) => {
            for created in created {
                tracing::info!(run_id = %created.run().id, model = %created.run().subject,
                    new = created.is_new(), "scheduled retrain");
            }
        }
        Err(err) => tracing::warn!(error = %err, "scheduled retrain failed to start"),
    }
}

/// Starts the scheduler with the threshold check and, if configured, the
/// cron schedule. Shut it down with `JobScheduler::shutdown`.
///
/// # Errors
/// An invalid cron expression, or the scheduler failing to start.
pub async fn start(engine: Engine, config: TriggerConfig) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let (every, threshold) = (config.check_every, config.threshold);
    let check_engine = engine.clone();
    // A one-shot job makes the first check, then schedules the repeating one,
    // so the first check comes after `first_check_after` and then every `every`.
    let first = Job::new_one_shot_async(config.first_check_after, move |_id, scheduler| {
        let engine = check_engine.clone();
        Box::pin(async move {
            log_threshold(check_thresholds(&engine, threshold).await);
            let repeated = Job::new_repeated_async(every, move |_id, _scheduler| {
                let engine = engine.clone();
                Box::pin(async move { log_threshold(check_thresholds(&engine, threshold).await) })
            });
            let added = match repeated {
                Ok(job) => scheduler.add(job).await.map(drop),
                Err(err) => Err(err),
            };
            if let Err(err) = added {
                tracing::error!(error = %err, "cannot schedule the threshold check");
            }
        })
    })?;
    scheduler.add(first).await?;
    // Models' own schedules: synced now and then every `every`, so a model
    // created (or given a cron) meanwhile is scheduled within that time.
    let jobs = ModelJobs::default();
    let sync_engine = engine.clone();
    scheduler
        .add(Job::new_repeated_async(every, move |_id, scheduler| {
            let (engine, jobs) = (sync_engine.clone(), jobs.clone());
            Box::pin(async move {
                if let Err(err) = sync_schedules(&scheduler, &engine, &jobs).await {
                    tracing::warn!(error = %err, "cannot sync the models' schedules; retrying");
                }
            })
        })?)
        .await?;
    if let Some(cron) = &config.cron {
        let engine = engine.clone();
        scheduler
            .add(Job::new_async(cron.as_str(), move |_id, _scheduler| {
                let engine = engine.clone();
                Box::pin(async move { log_scheduled(scheduled_runs(&engine).await) })
            })?)
            .await?;
    }
    scheduler.start().await?;
    Ok(scheduler)
}

fn log_threshold(result: Result<Vec<Created>, EngineError>) {
    match result {
        Ok(created) if created.is_empty() => tracing::debug!("no model reached its threshold"),
        Ok(created) => {
            for created in created {
                tracing::info!(run_id = %created.run().id, model = %created.run().subject,
                    new = created.is_new(), "threshold reached: retrain");
            }
        }
        Err(err) => tracing::warn!(error = %err, "threshold check failed"),
    }
}
