//! What the bench reads from and does to PostgreSQL besides the engine's own
//! work: the server's settings, the scratch database's transaction and WAL
//! counters, `VACUUM ANALYZE` between scenarios, and the bench-only trigger
//! that tells the observer a run ended.

use crate::Result;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct DbCounters {
    pub xacts: i64,
    pub wal_syncs: i64,
    pub wal_records: i64,
}

impl std::ops::Sub for DbCounters {
    type Output = Self;

    fn sub(self, rhs: Self) -> Self {
        Self {
            xacts: self.xacts - rhs.xacts,
            wal_syncs: self.wal_syncs - rhs.wal_syncs,
            wal_records: self.wal_records - rhs.wal_records,
        }
    }
}

/// Reads the scratch database's counters from the admin database, so the read
/// itself is not counted. Backends report at exit, so callers close their
/// pools first and [`settle`].
pub async fn counters(admin: &PgPool, db: &str) -> Result<DbCounters> {
    Ok(sqlx::query_as(
        "SELECT d.xact_commit + d.xact_rollback AS xacts, w.wal_sync AS wal_syncs,
                w.wal_records AS wal_records
         FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = $1",
    )
    .bind(db)
    .fetch_one(admin)
    .await?)
}

/// Lets closed backends report their statistics.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// The server's version and the settings that decide a commit's cost, as
/// `name=value` pairs.
pub async fn server_facts(admin: &PgPool) -> Result<(String, String)> {
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(admin)
        .await?;
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, setting FROM pg_settings
         WHERE name IN ('synchronous_commit', 'fsync', 'wal_sync_method', 'commit_delay', 'shared_buffers')
         ORDER BY name",
    )
    .fetch_all(admin)
    .await?;
    let settings = settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((version, settings))
}

/// The bench's own trigger (scratch database only): NOTIFY when a run ends.
pub async fn install_end_trigger(opts: &PgConnectOptions) -> Result<()> {
    let mut conn = PgConnection::connect_with(opts).await?;
    conn.execute(
        "CREATE FUNCTION bench_notify_run_ended() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.status NOT IN ('queued', 'running') AND OLD.status IN ('queued', 'running') THEN
                 PERFORM pg_notify('bench_run_ended', NEW.id::text || ' ' || NEW.status::text);
             END IF;
             RETURN NULL;
         END $$;
         CREATE TRIGGER bench_runs_ended AFTER UPDATE OF status ON runs
             FOR EACH ROW EXECUTE FUNCTION bench_notify_run_ended();",
    )
    .await?;
    conn.close().await?;
    Ok(())
}

pub async fn vacuum(opts: &PgConnectOptions) -> Result<()> {
    let mut conn = PgConnection::connect_with(opts).await?;
    conn.execute("VACUUM (ANALYZE) runs, steps, run_events").await?;
    conn.close().await?;
    Ok(())
}
