//! Small database helpers every test binary wrote for itself.

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

/// The URL a child process (the real `retrain` binary) connects with: user,
/// host, port and database of `connect`. No password: the servers these
/// tests use trust local connections.
pub fn url_of(connect: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        connect.get_username(),
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap_or("postgres")
    )
}

/// The single `bigint` a query such as `SELECT count(*) FROM ...` returns.
///
/// # Panics
/// If the query fails or returns no `bigint`: a test's setup is wrong.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
