//! Retention of the prediction log: `predictions` is partitioned by UTC day
//! (migration 0014). Every process makes the coming days' partitions at
//! start; the worker does it again on a timer and drops whole days older than
//! the retention setting. Nothing else is ever pruned: runs, events,
//! versions, promotions, feedback and quarantines are the audit.

use crate::metrics::Metrics;
use chrono::{Days, NaiveDate, Utc};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long predictions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Whole days older than this many days are dropped.
    Days(u32),
    /// Never dropped.
    Off,
}

impl Retention {
    /// Parses the setting: a number of days, or `off` (or `0`) for none.
    ///
    /// # Errors
    /// Anything else, with what is accepted.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "off" | "0" => Ok(Self::Off),
            days => days
                .parse::<u32>()
                .map(Self::Days)
                .map_err(|_| format!("{value:?} is neither a number of days nor `off`")),
        }
    }
}

/// Days made ahead of today, so a day's first prediction finds its
/// partition even if no worker ran for a while (the DEFAULT partition takes
/// it otherwise, and the next maintenance moves it).
const DAYS_AHEAD: u64 = 3;

/// How often the worker makes and drops partitions: days change slowly,
/// an hour late is harmless.
pub const EVERY: Duration = Duration::from_secs(3600);

/// What one maintenance did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Partitions made, by name.
    pub created: Vec<String>,
    /// Partitions dropped, by name.
    pub dropped: Vec<String>,
}

/// Partitions of `predictions` for whole days before `before` (UTC), oldest
/// first. A catalog read: no prediction row is scanned.
pub const PARTITIONS_BEFORE: &str = "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'predictions'::regclass AND c.relname ~ '^predictions_p[0-9]{8}$'
       AND to_date(substr(c.relname, 14), 'YYYYMMDD') < $1
     ORDER BY 1";

/// Makes the partitions of today and the coming days, and of any day whose
/// rows wait in the DEFAULT partition.
///
/// # Errors
/// The database's.
pub async fn create_partitions(pool: &PgPool, today: NaiveDate) -> Result<Vec<String>, sqlx::Error> {
    let waiting: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT DISTINCT (predicted_at AT TIME ZONE 'UTC')::date FROM predictions_default ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let ahead = (0..=DAYS_AHEAD).filter_map(|n| today.checked_add_days(Days::new(n)));
    let mut created = Vec::new();
    for day in waiting.into_iter().chain(ahead) {
        let made: bool = sqlx::query_scalar("SELECT prediction_partition_create($1)")
            .bind(day)
            .fetch_one(pool)
            .await?;
        if made {
            created.push(format!("predictions_p{}", day.format("%Y%m%d")));
        }
    }
    Ok(created)
}

/// Drops the partitions of whole days before `today` minus `days`: every row
/// dropped is at least `days` days old.
///
/// # Errors
/// The database's.
pub async fn drop_partitions(pool: &PgPool, today: NaiveDate, days: u32) -> Result<Vec<String>, sqlx::Error> {
    let Some(before) = today.checked_sub_days(Days::new(days.into())) else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = sqlx::query_scalar(PARTITIONS_BEFORE)
        .bind(before)
        .fetch_all(pool)
        .await?;
    for name in &names {
        // Dropping a partition locks all of `predictions` for a moment, and
        // queues the log's inserts and feedback's lookups behind it while it
        // waits for running readers: it gives up after a short wait, and
        // the next maintenance tries again.
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '2s'").execute(&mut *tx).await?;
        // The name matched `^predictions_p[0-9]{8}$`: safe to splice.
        sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(names)
}

/// One maintenance: make what is missing, drop what is older than `retention`.
///
/// # Errors
/// The database's.
pub async fn maintain(pool: &PgPool, retention: Retention, today: NaiveDate) -> Result<Maintained, sqlx::Error> {
    let created = create_partitions(pool, today).await?;
    let dropped = match retention {
        Retention::Days(days) => drop_partitions(pool, today, days).await?,
        Retention::Off => Vec::new(),
    };
    Ok(Maintained { created, dropped })
}

/// One maintenance as a process runs it: logged and counted, never fatal
/// (the DEFAULT partition takes every row meanwhile).
pub async fn run_once(pool: &PgPool, retention: Retention, metrics: &Metrics) {
    match maintain(pool, retention, Utc::now().date_naive()).await {
        Ok(done) => {
            if !done.dropped.is_empty() {
                tracing::info!(dropped = ?done.dropped, ?retention, "prediction partitions dropped");
            }
            metrics.prediction_partitions_dropped.inc_by(done.dropped.len() as u64);
        }
        Err(err) => tracing::warn!(error = %err, "prediction partition maintenance failed; retrying later"),
    }
}

/// The worker's timer: a maintenance every [`EVERY`], until shutdown.
pub async fn keep(pool: PgPool, retention: Retention, metrics: Metrics, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        run_once(&pool, retention, &metrics).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_days_or_off() {
        assert_eq!(Retention::parse("30"), Ok(Retention::Days(30)));
        assert_eq!(Retention::parse("off"), Ok(Retention::Off));
        assert_eq!(Retention::parse("0"), Ok(Retention::Off));
        assert!(Retention::parse("-1").is_err());
        assert!(Retention::parse("a month").is_err());
    }
}
