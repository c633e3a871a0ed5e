//! Gauges that describe stored facts (each model's champion, golden
//! accuracies and feedback backlog, the last successful run, how long steps
//! wait for a worker), refreshed from
//! the database so they are right after a restart too, whichever process
//! made them so.

use crate::metrics::Metrics;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(sqlx::FromRow)]
struct ModelFacts {
    model: String,
    champion_version: Option<i32>,
    champion_accuracy: Option<f64>,
    candidate_accuracy: Option<f64>,
    feedback_waiting: i64,
    last_success: Option<f64>,
}

/// Reads the facts once and sets the gauges, per model.
///
/// # Errors
/// The database's.
pub async fn refresh(pool: &PgPool, metrics: &Metrics) -> Result<(), sqlx::Error> {
    let facts: Vec<ModelFacts> = sqlx::query_as(
        "SELECT m.name AS model,
            (SELECT v.version FROM champion c JOIN versions v ON v.id = c.version_id WHERE c.model_id = m.id)
                AS champion_version,
            (SELECT e.accuracy FROM champion c JOIN evaluations e ON e.version_id = c.version_id
             WHERE c.model_id = m.id AND e.eval_set = 'golden' ORDER BY e.id DESC LIMIT 1) AS champion_accuracy,
            (SELECT accuracy FROM evaluations WHERE role = 'candidate' AND model_id = m.id AND eval_set = 'golden'
             ORDER BY id DESC LIMIT 1)
                AS candidate_accuracy,
            -- The same count the threshold check and collect use (quarantined rows never count).
            feedback_waiting(m.id) AS feedback_waiting,
            (SELECT extract(epoch FROM max(r.finished_at))::float8 FROM runs r
             WHERE r.subject = m.name AND r.status = 'succeeded') AS last_success
         FROM models m",
    )
    .fetch_all(pool)
    .await?;
    for fact in facts {
        let model = fact.model.as_str();
        metrics.start_model_series(model);
        metrics
            .champion_version
            .with_label_values(&[model])
            .set(i64::from(fact.champion_version.unwrap_or(0)));
        if let Some(accuracy) = fact.champion_accuracy {
            metrics
                .golden_accuracy
                .with_label_values(&[model, "champion"])
                .set(accuracy);
        }
        if let Some(accuracy) = fact.candidate_accuracy {
            metrics
                .golden_accuracy
                .with_label_values(&[model, "candidate"])
                .set(accuracy);
        }
        metrics
            .feedback_waiting
            .with_label_values(&[model])
            .set(fact.feedback_waiting);
        metrics
            .last_success_timestamp
            .with_label_values(&[model])
            .set(fact.last_success.unwrap_or(0.0));
    }
    // The claim's own condition (engine/src/claim.rs): the current step of an
    // active run, pending and due. Read on the claim's index.
    let waited: f64 = sqlx::query_scalar(
        "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(s.next_attempt_at))::float8, 0)
         FROM steps s JOIN runs r ON r.id = s.run_id AND r.current_step = s.position
         WHERE s.status = 'pending' AND s.next_attempt_at <= clock_timestamp()
           AND r.status IN ('queued', 'running') AND r.cancel_requested_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    metrics.step_wait.set(waited);
    Ok(())
}

/// Refreshes every `every` until `shutdown`.
pub async fn keep_fresh(pool: PgPool, metrics: Metrics, every: Duration, shutdown: CancellationToken) {
    loop {
        if let Err(err) = refresh(&pool, &metrics).await {
            tracing::warn!(error = %err, "cannot refresh the stored-fact gauges; they keep their last values");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
