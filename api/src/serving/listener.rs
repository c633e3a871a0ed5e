//! Following promotions: one LISTEN on the promotion channel for every
//! model and, on each notification, load the champion of the model it names
//! and swap it in. Notifications sent while disconnected are lost, so every
//! model's champion is re-read at start and after every reconnect. A load
//! that fails (a busy pool, an unreadable artifact) is retried with backoff
//! until every champion is served, without waiting for another
//! notification.

use super::loader::{Serving, load_champion};
use crate::metrics::Metrics;
use chrono::Utc;
use retrain_steps::StepsError;
use retrain_steps::store::models;
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

/// Which models a replica serves: every model, or those named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFilter(pub Option<Vec<String>>);

impl ModelFilter {
    /// Whether a replica with this filter serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.0.as_ref().is_none_or(|names| names.iter().any(|n| n == model))
    }
}

/// Runs until `shutdown`: keeps `serving` on each served model's champion.
pub async fn follow_promotions(
    pool: PgPool,
    listen_url: Option<String>,
    serving: Arc<Serving>,
    filter: ModelFilter,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let catch_up = |named: Option<String>| catch_up(&pool, &serving, &filter, &metrics, named);
    let mut backoff = FIRST_WAIT;
    while !shutdown.is_cancelled() {
        let mut listener = match connect(&pool, listen_url.as_deref()).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "promotion listener cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = next_wait(backoff);
                // The database may be back with a promotion we missed.
                catch_up(None).await;
                continue;
            }
        };
        backoff = FIRST_WAIT;
        // `Some(wait)` while behind the champion: when to try loading it again.
        let mut retry = retry_after(catch_up(None).await, None);
        loop {
            // `try_recv` is cancel-safe: a retry firing first loses no notification.
            let received = tokio::select! {
                received = listener.try_recv() => received,
                () = tokio::time::sleep(retry.unwrap_or(MAX_WAIT)), if retry.is_some() => {
                    retry = retry_after(catch_up(None).await, retry);
                    continue;
                }
                _ = shutdown.cancelled() => return,
            };
            match received {
                Ok(Some(notification)) => {
                    let named = serde_json::from_str::<serde_json::Value>(notification.payload())
                        .ok()
                        .and_then(|p| p["model"].as_str().map(str::to_owned));
                    retry = retry_after(catch_up(named).await, retry);
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

/// A listener on `listen_url` (a direct session) if given, else on one of
/// the pool's connections.
async fn connect(pool: &PgPool, listen_url: Option<&str>) -> Result<PgListener, sqlx::Error> {
    let mut listener = match listen_url {
        Some(url) => PgListener::connect(url).await?,
        None => PgListener::connect_with(pool).await?,
    };
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

/// Loads each served model's champion that is not served yet (only the
/// `named` one, after a notification naming it, while no other is behind);
/// `true` if every champion is served now. Failures are counted, mark the
/// replica behind, and leave the old versions serving.
async fn catch_up(
    pool: &PgPool,
    serving: &Serving,
    filter: &ModelFilter,
    metrics: &Metrics,
    named: Option<String>,
) -> bool {
    let only = named.filter(|_| !serving.freshness.is_behind());
    match catch_up_all(pool, serving, filter, metrics, only.as_deref()).await {
        Ok(()) => {
            serving.freshness.current();
            metrics.served_behind_champion.set(0);
            true
        }
        Err((model, err)) => {
            metrics.model_reloads.with_label_values(&["failure"]).inc();
            metrics.served_behind_champion.set(1);
            let served = serving
                .current(&model)
                .map_or("no version".to_owned(), |m| format!("version {}", m.version));
            serving.freshness.behind(format!(
                "{model} serves {served}, behind its champion: cannot load it: {err}"
            ));
            tracing::error!(model, error = %err, "cannot load a champion; still serving the previous version, retrying");
            false
        }
    }
}

async fn catch_up_all(
    pool: &PgPool,
    serving: &Serving,
    filter: &ModelFilter,
    metrics: &Metrics,
    only: Option<&str>,
) -> Result<(), (String, StepsError)> {
    let all = match pool.acquire().await {
        Ok(mut conn) => match only {
            Some(name) => models::by_name(&mut conn, name).await.map(|model| vec![model]),
            None => models::list(&mut conn).await.map_err(StepsError::Database),
        },
        Err(err) => Err(StepsError::Database(err)),
    }
    .map_err(|err| ("the registry".to_owned(), err))?;
    let mut failed = None;
    for model in all.iter().filter(|m| filter.serves(&m.name)) {
        let serving_id = serving.current(&model.name).map(|m| m.version_id);
        match load_champion(pool, model, serving_id).await {
            Ok(Some(loaded)) => {
                let lag = (Utc::now() - loaded.promoted_at).to_std().unwrap_or_default();
                let version = loaded.version;
                metrics.set_served(&model.name, version, loaded.version_id);
                serving.swap(loaded);
                metrics.model_reloads.with_label_values(&["success"]).inc();
                if serving_id.is_some() {
                    metrics.swap_lag.observe(lag.as_secs_f64());
                }
                tracing::info!(model = %model.name, version, lag_ms = lag.as_secs_f64() * 1000.0, "serving a new version");
            }
            Ok(None) => {}
            Err(err) => failed = failed.or(Some((model.name.clone(), err))),
        }
    }
    failed.map_or(Ok(()), Err)
}
