//! What starts a retrain run besides an operator: the threshold check (enough
//! new feedback waits) and an optional cron schedule, both on
//! tokio-cron-scheduler. Duplicate triggers are harmless: the engine returns
//! the active run instead of creating a second.

use crate::pipeline::PIPELINE;
use crate::store::feedback;
use retrain_engine::{Created, Engine, EngineError, NewRun, TriggerKind};
use serde_json::json;
use std::time::Duration;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

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

/// Creates a threshold-triggered run if at least `threshold` feedback rows
/// wait; `None` if fewer do.
///
/// # Errors
/// `Database`.
pub async fn check_threshold(engine: &Engine, threshold: i64) -> Result<Option<Created>, EngineError> {
    let mut conn = engine.pool().acquire().await?;
    let waiting = feedback::waiting(&mut conn).await?;
    drop(conn);
    if waiting < threshold {
        return Ok(None);
    }
    let created = engine
        .create_run(NewRun {
            pipeline: PIPELINE,
            subject: "",
            trigger: TriggerKind::Threshold,
            params: json!({"waiting_feedback": waiting, "threshold": threshold}),
            requested_by: "threshold-check",
        })
        .await?;
    Ok(Some(created))
}

/// Creates a scheduled run (or finds the active one).
///
/// # Errors
/// `Database`.
pub async fn scheduled_run(engine: &Engine) -> Result<Created, EngineError> {
    engine
        .create_run(NewRun {
            pipeline: PIPELINE,
            subject: "",
            trigger: TriggerKind::Schedule,
            params: json!({}),
            requested_by: "scheduler",
        })
        .await
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
            log_threshold(check_threshold(&engine, threshold).await);
            let repeated = Job::new_repeated_async(every, move |_id, _scheduler| {
                let engine = engine.clone();
                Box::pin(async move { log_threshold(check_threshold(&engine, threshold).await) })
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
    if let Some(cron) = &config.cron {
        let engine = engine.clone();
        scheduler
            .add(Job::new_async(cron.as_str(), move |_id, _scheduler| {
                let engine = engine.clone();
                Box::pin(async move {
                    match scheduled_run(&engine).await {
                        Ok(created) => tracing::info!(run_id = %created.run().id, new = created.is_new(),
                            "scheduled retrain"),
                        Err(err) => tracing::warn!(error = %err, "scheduled retrain failed to start"),
                    }
                })
            })?)
            .await?;
    }
    scheduler.start().await?;
    Ok(scheduler)
}

fn log_threshold(result: Result<Option<Created>, EngineError>) {
    match result {
        Ok(Some(created)) => tracing::info!(run_id = %created.run().id, new = created.is_new(),
            "threshold reached: retrain"),
        Ok(None) => tracing::debug!("threshold not reached"),
        Err(err) => tracing::warn!(error = %err, "threshold check failed"),
    }
}
