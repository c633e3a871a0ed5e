//! Gauges that describe stored facts (the champion, golden accuracies, the
//! feedback backlog, the last successful run), refreshed from the database so
//! they are right after a restart too, whichever process made them so.

use crate::metrics::Metrics;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(sqlx::FromRow)]
struct Facts {
    champion_version: Option<i32>,
    champion_accuracy: Option<f64>,
    candidate_accuracy: Option<f64>,
    feedback_waiting: i64,
    last_success: Option<f64>,
}

/// Reads the facts once and sets the gauges.
///
/// # Errors
/// The database's.
pub async fn refresh(pool: &PgPool, metrics: &Metrics) -> Result<(), sqlx::Error> {
    let facts: Facts = sqlx::query_as(
        "SELECT
            (SELECT m.version FROM champion c JOIN models m ON m.id = c.model_id) AS champion_version,
            (SELECT e.accuracy FROM champion c JOIN evaluations e ON e.model_id = c.model_id
             ORDER BY e.id DESC LIMIT 1) AS champion_accuracy,
            (SELECT accuracy FROM evaluations WHERE role = 'candidate' ORDER BY id DESC LIMIT 1)
                AS candidate_accuracy,
            -- The same count the threshold check and collect use (quarantined rows never count).
            feedback_waiting() AS feedback_waiting,
            (SELECT extract(epoch FROM max(finished_at))::float8 FROM runs WHERE status = 'succeeded')
                AS last_success",
    )
    .fetch_one(pool)
    .await?;
    metrics
        .champion_version
        .set(i64::from(facts.champion_version.unwrap_or(0)));
    if let Some(accuracy) = facts.champion_accuracy {
        metrics.golden_accuracy.with_label_values(&["champion"]).set(accuracy);
    }
    if let Some(accuracy) = facts.candidate_accuracy {
        metrics.golden_accuracy.with_label_values(&["candidate"]).set(accuracy);
    }
    metrics.feedback_waiting.set(facts.feedback_waiting);
    metrics.last_success_timestamp.set(facts.last_success.unwrap_or(0.0));
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
