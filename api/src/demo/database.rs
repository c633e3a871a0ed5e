//! Getting the demo a database: reach the server quickly or say exactly how
//! to start one, and create the database if it is missing.

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;

/// Makes sure the database of `url` exists, creating it if missing.
///
/// # Errors
/// No server answers (with the commands to start one), or the database
/// cannot be created.
pub async fn ensure(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let name = options.get_database().unwrap_or("retrain").to_owned();
    let server = options.clone().database("postgres");
    let attempt = tokio::time::timeout(Duration::from_secs(5), server.connect()).await;
    let mut admin = match attempt {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) if is_missing_database(&err) => {
            // No "postgres" database to check from: the target must exist already.
            return Ok(());
        }
        Ok(Err(err)) => bail!("{}\n\ncause: {err}", unreachable_help(&options)),
        Err(_) => bail!("{}\n\ncause: no answer within 5 s", unreachable_help(&options)),
    };
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create database {name}; create it yourself: createdb {name}"))?;
        println!("  created database {name}");
    }
    admin.close().await.ok();
    Ok(())
}

fn is_missing_database(err: &sqlx::Error) -> bool {
    err.as_database_error().and_then(|e| e.code()).as_deref() == Some("3D000")
}

fn unreachable_help(options: &PgConnectOptions) -> String {
    format!(
        "No PostgreSQL answers at {host}:{port}.\n\
         Start one, then run the demo again:\n  \
         - Debian/Ubuntu:  sudo apt-get install -y postgresql && sudo pg_ctlcluster $(ls /etc/postgresql) main start\n  \
         - macOS (Homebrew): brew install postgresql@16 && brew services start postgresql@16\n  \
         - Docker:  docker run -d --name retrain-db -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16\n\
         or point DATABASE_URL at a server you have (default postgres://localhost/retrain).",
        host = options.get_host(),
        port = options.get_port(),
    )
}
