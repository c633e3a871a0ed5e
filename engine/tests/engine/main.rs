//! Engine integration tests against a real PostgreSQL: each test gets a fresh
//! migrated database from `#[sqlx::test]`.

mod cancel;
mod chain;
mod concurrency;
mod database_rules;
mod lease;
mod lifecycle;
mod retries;
mod statistics;
mod stranded;
mod support;
