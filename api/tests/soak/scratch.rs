//! A database of the test's own on the shared PostgreSQL (`DATABASE_URL`,
//! by default the local server's `postgres` database): created empty, the
//! service migrates and bootstraps it, dropped when the test ends (also when
//! it fails; processes must be dropped first, `WITH (FORCE)` ends stragglers).

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The scratch database; dropping it drops the database.
#[derive(Debug)]
pub struct ScratchDb {
    admin: PgConnectOptions,
    pub name: String,
}

impl ScratchDb {
    pub async fn create() -> ScratchDb {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let admin = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
        let name = format!("retrain_soak_{}_{stamp}", std::process::id());
        let mut conn = admin.connect().await.expect("the test connects to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        ScratchDb { admin, name }
    }

    /// How a process connects to it; `application_name` tells the
    /// connections apart in `pg_stat_activity`.
    pub fn url(&self, application: &str) -> String {
        format!(
            "postgres://{}@{}:{}/{}?application_name={application}",
            self.admin.get_username(),
            self.admin.get_host(),
            self.admin.get_port(),
            self.name
        )
    }

    /// The test's own small pool (the observer), named so its connections
    /// are not counted as the service's.
    pub async fn observer(&self) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(self.admin.clone().database(&self.name).application_name(OBSERVER))
            .await
            .expect("the observer connects")
    }
}

/// The observer's `application_name`.
pub const OBSERVER: &str = "soak-observer";

impl Drop for ScratchDb {
    fn drop(&mut self) {
        // Drop runs outside any runtime's async context: a thread of its own.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut conn = admin.connect().await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the scratch database {}: {dropped:?}", self.name);
        }
    }
}
