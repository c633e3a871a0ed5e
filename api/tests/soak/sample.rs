//! Samples of the service: each process's resident memory (VmRSS) and the
//! scratch database's connections by `application_name`, and the judgement
//! whether memory stayed flat.

use crate::scratch::OBSERVER;
use crate::support::Process;
use sqlx::PgPool;
use std::collections::BTreeMap;

/// One sample, `secs` after the load started.
#[derive(Debug, Clone)]
pub struct Sample {
    pub secs: u64,
    pub api_kib: u64,
    pub worker_kib: u64,
    /// Feedback rows stored.
    pub feedback_rows: i64,
    /// Connections to the scratch database by `application_name`, the
    /// observer's own excluded.
    pub connections: BTreeMap<String, i64>,
}

impl Sample {
    pub async fn take(secs: u64, api: &Process, worker: &Process, observer: &PgPool, db: &str) -> Sample {
        Sample {
            secs,
            api_kib: api.rss_kib(),
            worker_kib: worker.rss_kib(),
            feedback_rows: sqlx::query_scalar("SELECT count(*) FROM feedback")
                .fetch_one(observer)
                .await
                .expect("feedback rows"),
            connections: connections(observer, db).await,
        }
    }

    pub fn total_connections(&self) -> i64 {
        self.connections.values().sum()
    }

    pub fn line(&self) -> String {
        let by_app: Vec<String> = self.connections.iter().map(|(app, n)| format!("{app} {n}")).collect();
        format!(
            "t={:>4} s  RSS api {:>6.1} MiB  worker {:>6.1} MiB  feedback rows {:>7}  connections {:>2} ({})",
            self.secs,
            mib(self.api_kib),
            mib(self.worker_kib),
            self.feedback_rows,
            self.total_connections(),
            by_app.join(", ")
        )
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub async fn connections(observer: &PgPool, db: &str) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT coalesce(application_name, ''), count(*) FROM pg_stat_activity
         WHERE datname = $1 AND application_name IS DISTINCT FROM $2 GROUP BY 1",
    )
    .bind(db)
    .bind(OBSERVER)
    .fetch_all(observer)
    .await
    .expect("pg_stat_activity");
    rows.into_iter().collect()
}

/// The growth a flat process may still show between the first and the last
/// third of the load: the API's bounded queues full (the prediction log's
/// 100,000 and the feedback writer's 50,000 entries, each about 200 bytes:
/// some 30 MB, legitimately held if the database falls behind for a moment)
/// plus allocator slack. 32 MiB; a leak of 200 bytes a request shows within
/// the 10-minute soak (about 240,000 predictions and 60,000 feedback rows).
pub const FLAT_MARGIN_KIB: u64 = 32 * 1024;

/// What the worker may grow by per feedback row stored meanwhile: a run's
/// merge holds every feedback row up to its watermark in memory (DESIGN:
/// base data plus all feedback, then deduplicated), so the worker's high
/// water mark follows the table. About 220 bytes a row measured; 512 allowed.
pub const WORKER_BYTES_PER_ROW: u64 = 512;

/// `Err` with the figures if the last third's highest RSS exceeds the first
/// third's highest by more than [`FLAT_MARGIN_KIB`] or 25%, whichever is
/// more, plus `allowance_kib`. The first sample (load just starting,
/// allocator warming up) is left out of the first third.
pub fn flat(series: &[(u64, u64)], total_secs: u64, allowance_kib: u64) -> Result<String, String> {
    let third = total_secs / 3;
    let first = series
        .iter()
        .filter(|(s, _)| *s > 0 && *s <= third)
        .map(|(_, k)| *k)
        .max();
    let last = series
        .iter()
        .filter(|(s, _)| *s >= total_secs - third)
        .map(|(_, k)| *k)
        .max();
    let (Some(first), Some(last)) = (first, last) else {
        return Err(format!("too few samples for thirds: {series:?}"));
    };
    let bound = first + FLAT_MARGIN_KIB.max(first / 4) + allowance_kib;
    let text = format!(
        "first third max {:.1} MiB, last third max {:.1} MiB, bound {:.1} MiB",
        mib(first),
        mib(last),
        mib(bound)
    );
    if last <= bound { Ok(text) } else { Err(text) }
}
