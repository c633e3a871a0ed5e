//! Keeping the planner's picture of the engine's tables current. A worker's
//! statements are prepared once per connection and PostgreSQL may switch one
//! to a cached generic plan, planned on the table sizes of that moment. Made
//! on a fresh database, such a plan looks rows up by a sequential scan and
//! keeps doing so as history grows, until an `ANALYZE` invalidates it; with
//! autovacuum off nothing else does. Measured: a step's commit went from
//! 0.3 ms to a sequential scan of every run, and two workers from 312 to 183
//! runs/s over 6,000 runs (BENCHMARKS.md, "Engine overhead").

use sqlx::PgPool;

/// Analyzes the engine's tables that have grown to more than twice the
/// pages the planner last recorded (and past 16 pages), skipping any that
/// another session is analyzing. The sizes double between two analyzes, so
/// a table of n pages has been analyzed about log2(n) times in its life.
pub(crate) async fn refresh(pool: &PgPool) -> Result<(), sqlx::Error> {
    let grown: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         WHERE c.oid IN ('runs'::regclass, 'steps'::regclass, 'run_events'::regclass)
           AND pg_relation_size(c.oid)
               > 2 * greatest(c.relpages, 8)::bigint * current_setting('block_size')::bigint",
    )
    .fetch_all(pool)
    .await?;
    if grown.is_empty() {
        return Ok(());
    }
    tracing::debug!(tables = ?grown, "tables grew; analyzing them");
    // The names come from the fixed list above, not from input.
    sqlx::raw_sql(&format!("ANALYZE (SKIP_LOCKED) {}", grown.join(", ")))
        .execute(pool)
        .await?;
    Ok(())
}
