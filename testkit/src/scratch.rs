//! A database of the caller's own on `DATABASE_URL`'s server (default: the
//! local server's `postgres` database), for what cannot live inside
//! `#[sqlx::test]`: benchmarks, and tests whose service runs in child
//! processes for minutes. Created under a unique name, migrated with
//! `retrain_engine::MIGRATOR` if asked, and dropped `WITH (FORCE)` when the
//! caller says so or when the value is dropped, so a failing run leaves no
//! database behind. The role needs CREATEDB.

use crate::db::url_of;
use crate::error_chain;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use uuid::Uuid;

/// The server used when `DATABASE_URL` is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Why a scratch database could not be made or dropped.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    /// `DATABASE_URL` is not a PostgreSQL URL.
    #[error("DATABASE_URL {url:?} is not a PostgreSQL URL")]
    Url {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// No server answered, or it refused the connection.
    #[error("no PostgreSQL answers at {url}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// `CREATE DATABASE` or `DROP DATABASE` failed (does the role have CREATEDB?).
    #[error("{statement} failed")]
    Statement {
        statement: String,
        #[source]
        source: sqlx::Error,
    },
    /// The migrations failed on the new database.
    #[error("migrating the scratch database failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// `DATABASE_URL`, or [`DEFAULT_URL`].
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A scratch database; dropping the value drops the database.
#[derive(Debug)]
pub struct ScratchDb {
    server: PgConnectOptions,
    name: String,
    dropped: bool,
}

impl ScratchDb {
    /// Creates an empty database named `<prefix>_<12 random hex digits>`
    /// (`prefix`: lower-case letters, digits and underscores), for a service
    /// that migrates it itself.
    ///
    /// # Errors
    /// A bad `DATABASE_URL`, no server, or `CREATE DATABASE` refused.
    pub async fn create(prefix: &str) -> Result<Self, ScratchError> {
        let url = server_url();
        let server = PgConnectOptions::from_str(&url).map_err(|source| ScratchError::Url {
            url: url.clone(),
            source,
        })?;
        let name = format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12]);
        execute(&server, &format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(Self {
            server,
            name,
            dropped: false,
        })
    }

    /// [`create`](Self::create), then applies `retrain_engine::MIGRATOR`.
    ///
    /// # Errors
    /// Those of `create`, or a failed migration (the database is dropped).
    pub async fn migrated(prefix: &str) -> Result<Self, ScratchError> {
        let db = Self::create(prefix).await?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(db.options())
            .await
            .map_err(|source| ScratchError::Connect { url: db.url(), source })?;
        let migrated = retrain_engine::MIGRATOR.run(&pool).await;
        pool.close().await;
        migrated?;
        Ok(db)
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How to connect to the scratch database.
    pub fn options(&self) -> PgConnectOptions {
        self.server.clone().database(&self.name)
    }

    /// How to connect to the server's own database (`DATABASE_URL`'s), for
    /// what must not run inside the scratch database, such as reading its
    /// statistics without adding to them.
    pub fn server(&self) -> &PgConnectOptions {
        &self.server
    }

    /// The URL a child process connects to the scratch database with.
    pub fn url(&self) -> String {
        url_of(&self.options())
    }

    /// Drops the database now, ending any session still connected to it.
    ///
    /// # Errors
    /// No server, or `DROP DATABASE` refused.
    pub async fn drop_now(mut self) -> Result<(), ScratchError> {
        self.dropped = true;
        drop_database(&self.server, &self.name).await
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop may run inside a runtime (which cannot block on itself) or
        // after it ended: a thread with a runtime of its own either way.
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(drop_database(&server, &name))
                .map_err(|e| error_chain(&e))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(why)) => eprintln!("could not drop the scratch database {}: {why}", self.name),
            Err(_) => eprintln!(
                "could not drop the scratch database {}: the dropping thread panicked",
                self.name
            ),
        }
    }
}

async fn drop_database(server: &PgConnectOptions, name: &str) -> Result<(), ScratchError> {
    execute(server, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await
}

/// Runs one statement on a connection of its own to the server's database.
async fn execute(server: &PgConnectOptions, statement: &str) -> Result<(), ScratchError> {
    let mut conn = server.connect().await.map_err(|source| ScratchError::Connect {
        url: url_of(server),
        source,
    })?;
    let done = sqlx::query(statement).execute(&mut conn).await;
    // The statement's outcome matters; a failed goodbye does not.
    let _ = conn.close().await;
    done.map(drop).map_err(|source| ScratchError::Statement {
        statement: statement.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exists(db: &ScratchDb) -> bool {
        let mut conn = db.server().connect().await.unwrap();
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(db.name())
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_migrated_scratch_database_has_the_schema_and_is_gone_after_drop_now() {
        let db = ScratchDb::migrated("retrain_testkit").await.unwrap();
        assert!(db.name().starts_with("retrain_testkit_"), "{}", db.name());
        let mut conn = db.options().connect().await.unwrap();
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(runs, 0);
        let probe = ScratchDb {
            server: db.server().clone(),
            name: db.name().to_owned(),
            dropped: true,
        };
        // A session still connected does not keep the database alive.
        db.drop_now().await.unwrap();
        assert!(!exists(&probe).await);
        drop(conn);
    }

    #[tokio::test]
    async fn dropping_the_value_drops_the_database() {
        let db = ScratchDb::create("retrain_testkit").await.unwrap();
        let probe = ScratchDb {
            server: db.server().clone(),
            name: db.name().to_owned(),
            dropped: true,
        };
        assert!(exists(&probe).await);
        drop(db);
        assert!(!exists(&probe).await);
    }
}
