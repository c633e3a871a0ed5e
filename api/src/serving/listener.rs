//! Following promotions: LISTEN on the promotion channel and, on each
//! notification, load the champion and swap it in. Notifications sent while
//! disconnected are lost, so the champion is re-read at start and after
//! every reconnect.

use super::loader::{Serving, load_champion};
use crate::metrics::Metrics;
use chrono::Utc;
use retrain_steps::store::promotions::PROMOTED_CHANNEL;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs until `shutdown`: keeps `serving` on the champion.
pub async fn follow_promotions(pool: PgPool, serving: Arc<Serving>, metrics: Metrics, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "promotion listener cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                // The database may be back with a promotion we missed.
                catch_up(&pool, &serving, &metrics).await;
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        catch_up(&pool, &serving, &metrics).await;
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                _ = shutdown.cancelled() => return,
            };
            match received {
                Ok(Some(_notification)) => catch_up(&pool, &serving, &metrics).await,
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

/// Loads the champion if it is not the model served; failures are counted
/// and the old model keeps serving.
pub async fn catch_up(pool: &PgPool, serving: &Serving, metrics: &Metrics) {
    let serving_id = serving.current().map(|m| m.model_id);
    match load_champion(pool, serving_id).await {
        Ok(Some(model)) => {
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
        Ok(None) => {}
        Err(err) => {
            metrics.model_reloads.with_label_values(&["failure"]).inc();
            tracing::error!(error = %err, "cannot load the champion; still serving the previous model");
        }
    }
}
