//! Following promotions: LISTEN on the promotion channel and, on each
//! notification, load the champion and swap it in. Notifications sent while
//! disconnected are lost, so the champion is re-read at start and after
//! every reconnect. A load that fails (a busy pool, an unreadable artifact)
//! is retried with backoff until the champion is served, without waiting
//! for another notification.

use super::loader::{Serving, load_champion};
use crate::metrics::Metrics;
use chrono::Utc;
use retrain_steps::store::promotions::PROMOTED_CHANNEL;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The first wait before retrying (a connection or a load); it doubles up to
/// [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Runs until `shutdown`: keeps `serving` on the champion.
pub async fn follow_promotions(pool: PgPool, serving: Arc<Serving>, metrics: Metrics, shutdown: CancellationToken) {
    let mut backoff = FIRST_WAIT;
    while !shutdown.is_cancelled() {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "promotion listener cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = next_wait(backoff);
                // The database may be back with a promotion we missed.
                catch_up(&pool, &serving, &metrics).await;
                continue;
            }
        };
        backoff = FIRST_WAIT;
        // `Some(wait)` while behind the champion: when to try loading it again.
        let mut retry = retry_after(catch_up(&pool, &serving, &metrics).await, None);
        loop {
            // `try_recv` is cancel-safe: a retry firing first loses no notification.
            let received = tokio::select! {
                received = listener.try_recv() => received,
                () = tokio::time::sleep(retry.unwrap_or(MAX_WAIT)), if retry.is_some() => {
                    retry = retry_after(catch_up(&pool, &serving, &metrics).await, retry);
                    continue;
                }
                _ = shutdown.cancelled() => return,
            };
            match received {
                Ok(Some(_notification)) => {
                    retry = retry_after(catch_up(&pool, &serving, &metrics).await, retry);
                }
                // The connection dropped. Reconnect and LISTEN before catching up,
                // so no promotion falls between the catch-up and the LISTEN.
                Ok(None) => {
                    tracing::warn!("promotion listener lost its connection; reconnecting");
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "promotion listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(PROMOTED_CHANNEL).await?;
    Ok(listener)
}

fn next_wait(wait: Duration) -> Duration {
    (wait * 2).min(MAX_WAIT)
}

/// The wait before the next load attempt: none once the champion is served,
/// else the first wait or the previous one doubled.
fn retry_after(served: bool, previous: Option<Duration>) -> Option<Duration> {
    if served {
        None
    } else {
        Some(previous.map_or(FIRST_WAIT, next_wait))
    }
}

/// Loads the champion if it is not the model served; `true` if the champion
/// is served now (or there is none). Failures are counted, mark the replica
/// behind, and leave the old model serving.
async fn catch_up(pool: &PgPool, serving: &Serving, metrics: &Metrics) -> bool {
    let serving_id = serving.current().map(|m| m.model_id);
    match load_champion(pool, serving_id).await {
        Ok(loaded) => {
            if let Some(model) = loaded {
                let lag = (Utc::now() - model.promoted_at).to_std().unwrap_or_default();
                let (version, model_id) = (model.version, model.model_id);
                serving.swap(model);
                metrics.set_served(version, model_id);
                metrics.model_reloads.with_label_values(&["success"]).inc();
                if serving_id.is_some() {
                    metrics.swap_lag.observe(lag.as_secs_f64());
                }
                tracing::info!(version, lag_ms = lag.as_secs_f64() * 1000.0, "serving a new model");
            }
            serving.freshness.current();
            metrics.served_behind_champion.set(0);
            true
        }
        Err(err) => {
            metrics.model_reloads.with_label_values(&["failure"]).inc();
            metrics.served_behind_champion.set(1);
            serving.freshness.behind(format!("cannot load the champion: {err}"));
            tracing::error!(error = %err, "cannot load the champion; still serving the previous model, retrying");
            false
        }
    }
}
