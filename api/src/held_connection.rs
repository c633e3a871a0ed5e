//! A pooled connection a background writer keeps between its batches.
//!
//! Each acquire from the pool costs a round trip (the check that the
//! connection is outside any transaction, `startup::connect_with`) and each
//! release another (sqlx's ping); for the prediction log and the feedback
//! writers, which write a batch every few milliseconds under load, that was
//! two of every three round trips. A writer's statements are single
//! autocommit statements, so the connection it keeps is never inside a
//! transaction between them. After an error the connection is dropped, and
//! the next batch takes a fresh one: a database restart costs one failed
//! batch, as before.

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

/// A connection taken from `pool` on first use and kept until an error.
#[derive(Debug)]
pub struct HeldConnection {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl HeldConnection {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, conn: None }
    }

    /// Runs `work` on the kept connection, taking one from the pool if none
    /// is kept; after an error the connection is given up, so a broken one
    /// is never used again and the next call takes a fresh one.
    ///
    /// # Errors
    /// The pool's (no connection within its wait), or `work`'s.
    pub async fn run<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        if self.conn.is_none() {
            self.conn = Some(self.pool.acquire().await?);
        }
        let conn = self.conn.as_deref_mut().expect("taken just above");
        let result = work(conn).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}
