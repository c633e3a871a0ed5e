//! The service's database connections (case 11 of issue 10): the server
//! cancels statements that run or wait for a lock too long and ends sessions
//! left idle inside a transaction; a connection that comes back to the pool
//! inside a transaction is never handed to the next user.

use crate::support::*;
use futures_util::FutureExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

async fn show(pool: &sqlx::PgPool, setting: &str) -> String {
    sqlx::query_scalar(&format!("SHOW {setting}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_service_connections_carry_server_side_timeouts(_: PgPoolOptions, connect: PgConnectOptions) {
    let defaults = service_pool(&connect, &[]).await;
    assert_eq!(show(&defaults, "statement_timeout").await, "1min");
    assert_eq!(show(&defaults, "lock_timeout").await, "10s");
    assert_eq!(show(&defaults, "idle_in_transaction_session_timeout").await, "1min");
    defaults.close().await;

    let off = service_pool(
        &connect,
        &[
            "--db-statement-timeout-ms",
            "0",
            "--db-lock-timeout-ms",
            "1500",
            "--db-idle-in-transaction-timeout-ms",
            "0",
        ],
    )
    .await;
    assert_eq!(show(&off, "statement_timeout").await, "0");
    assert_eq!(show(&off, "lock_timeout").await, "1500ms");
    assert_eq!(show(&off, "idle_in_transaction_session_timeout").await, "0");
    off.close().await;
}

/// sqlx 0.8.6 returns a connection to the pool inside an open transaction
/// when a `begin()` future is dropped while its BEGIN is in flight (a client
/// that hangs up, a timeout). The next user of the pool must not run inside
/// that transaction, where its writes would stay invisible and be lost.
#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_transaction_dropped_mid_flight_does_not_affect_the_next_user(_: PgPoolOptions, connect: PgConnectOptions) {
    let mut observer = PgConnection::connect_with(&connect).await.unwrap();
    sqlx::query("CREATE TABLE scratch (n int PRIMARY KEY)")
        .execute(&mut observer)
        .await
        .unwrap();
    // One connection, idle: the next user is handed the one the dropped
    // future leaves behind.
    let pool = service_pool(&connect, &[]).await;
    eventually(10, "the pool's first connection is idle", || async {
        pool.num_idle() == 1
    })
    .await;
    assert_eq!(pool.size(), 1);
    loop {
        let mut conn = pool.acquire().await.unwrap();
        // Polled once, then dropped: BEGIN is sent, its answer not read.
        let in_flight = conn.begin().now_or_never().is_none();
        drop(conn);
        // Rarely, BEGIN is answered within the first poll; that transaction
        // rolls back properly when dropped, so try again.
        if in_flight {
            break;
        }
    }
    // The pool takes the connection back, or (if sqlx could not read its
    // way past the unanswered BEGIN) closes it: either way none is in use,
    // and the next user must not land inside the abandoned transaction.
    eventually(10, "the dropped connection is back in the pool or closed", || async {
        pool.num_idle() == pool.size() as usize
    })
    .await;

    sqlx::query("INSERT INTO scratch VALUES (1)")
        .execute(&pool)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM scratch")
        .fetch_one(&mut observer)
        .await
        .unwrap();
    assert_eq!(seen, 1, "the next user's insert ran inside the abandoned transaction");
    observer.close().await.unwrap();
    pool.close().await;
}

/// A session that sits inside a transaction (a task stuck while holding
/// one) is ended by the server, and its locks with it, so the writers
/// waiting on them proceed.
#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_session_left_inside_a_transaction_releases_its_locks(_: PgPoolOptions, connect: PgConnectOptions) {
    let pool = service_pool(&connect, &["--db-idle-in-transaction-timeout-ms", "500"]).await;
    sqlx::raw_sql("CREATE TABLE scratch (n int PRIMARY KEY); INSERT INTO scratch VALUES (1)")
        .execute(&pool)
        .await
        .unwrap();
    let mut stuck = pool.begin().await.unwrap();
    sqlx::query("UPDATE scratch SET n = 2 WHERE n = 1")
        .execute(&mut *stuck)
        .await
        .unwrap();
    // Waits for the stuck transaction's row lock until the server ends it
    // (the bound only turns a hang into a failure).
    let waiter = sqlx::query("UPDATE scratch SET n = 3 WHERE n = 1").execute(&pool);
    let updated = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the lock of a session idle in its transaction is still held")
        .unwrap();
    assert_eq!(updated.rows_affected(), 1, "the stuck update was rolled back");
    assert!(stuck.commit().await.is_err(), "the stuck session was ended");
    pool.close().await;
}
