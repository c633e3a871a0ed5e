//! The soak test's database of its own on the shared PostgreSQL
//! (`DATABASE_URL`, by default the local server's `postgres` database):
//! created empty by `retrain_testkit::ScratchDb`, so the service migrates and
//! bootstraps it as in production, and dropped when the test ends (also when
//! it fails; processes must be dropped first, `WITH (FORCE)` ends
//! stragglers). Here: the connection names that tell the soak's own
//! connections from the service's.

use sqlx::postgres::PgPoolOptions;

/// The scratch database; dropping it drops the database.
#[derive(Debug)]
pub struct ScratchDb {
    db: retrain_testkit::ScratchDb,
    pub name: String,
}

impl ScratchDb {
    pub async fn create() -> ScratchDb {
        let db = retrain_testkit::ScratchDb::create("retrain_soak")
            .await
            .expect("a scratch database on DATABASE_URL's server");
        let name = db.name().to_owned();
        ScratchDb { db, name }
    }

    /// How a process connects to it; `application_name` tells the
    /// connections apart in `pg_stat_activity`.
    pub fn url(&self, application: &str) -> String {
        format!("{}?application_name={application}", self.db.url())
    }

    /// The test's own small pool (the observer), named so its connections
    /// are not counted as the service's.
    pub async fn observer(&self) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(self.db.options().application_name(OBSERVER))
            .await
            .expect("the observer connects")
    }
}

/// The observer's `application_name`.
pub const OBSERVER: &str = "soak-observer";
