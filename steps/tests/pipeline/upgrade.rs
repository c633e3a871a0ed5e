//! Issue 11: a database filled by the last release (one unnamed model,
//! integer labels, format 1 artifacts) upgrades in place: it becomes the
//! `wine-quality` model with every version, run, feedback row and
//! promotion kept, and the pipeline goes on from there.

use crate::support::*;
use retrain_engine::RunStatus;
use retrain_steps::ml::Split;
use retrain_steps::pipeline;
use retrain_steps::pipeline::FIRST_MODEL;
use retrain_steps::store::{models, promotions, versions};
use retrain_steps::trainset;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Loads the release's dump (a pg_dump at its last migration, 7) without
/// psql: its backslash commands are psql's own and are dropped; its
/// session settings are reset afterwards.
async fn load_release(pool: &PgPool) {
    let dump = include_str!("../../../tests/fixtures/release_2026_11_30.sql");
    let sql: String = dump
        .lines()
        .filter(|line| !line.starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap();
    sqlx::query("RESET ALL").execute(&mut *conn).await.unwrap();
}

const TABLES: [&str; 8] = [
    "versions",
    "runs",
    "feedback",
    "promotions",
    "predictions",
    "training_sets",
    "evaluations",
    "feedback_quarantines",
];

#[sqlx::test(migrations = false)]
async fn a_database_of_the_last_release_upgrades_in_place(pool: PgPool) {
    load_release(&pool).await;
    let mut before = Vec::new();
    for table in TABLES {
        let old = if table == "versions" { "models" } else { table };
        before.push(count(&pool, &format!("SELECT count(*) FROM {old}")).await);
    }
    let champion_before: i32 =
        sqlx::query_scalar("SELECT m.version FROM champion c JOIN models m ON m.id = c.model_id")
            .fetch_one(&pool)
            .await
            .unwrap();
    let newest_before: i32 = sqlx::query_scalar("SELECT max(version) FROM models")
        .fetch_one(&pool)
        .await
        .unwrap();
    retrain_engine::MIGRATOR.run(&pool).await.unwrap();
    // New sessions: the migration changed column types under the old ones.
    let pool = PgPoolOptions::new()
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();

    // Every row is kept, and belongs to the wine model.
    for (table, before) in TABLES.iter().zip(before) {
        assert_eq!(
            count(&pool, &format!("SELECT count(*) FROM {table}")).await,
            before,
            "{table}"
        );
    }
    let wine = models::by_name(&mut *pool.acquire().await.unwrap(), FIRST_MODEL)
        .await
        .expect("the wine model is registered and readable");
    for table in TABLES.iter().filter(|t| **t != "runs") {
        let sql = format!("SELECT count(*) FROM {table} WHERE model_id <> {}", wine.id);
        assert_eq!(count(&pool, &sql).await, 0, "{table}");
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM runs WHERE subject <> 'wine-quality'").await,
        0
    );
    assert_eq!(wine.classes, ["3", "4", "5", "6", "7", "8"]);

    // The champion serves from its format 1 artifact, with class names.
    let mut conn = pool.acquire().await.unwrap();
    let (champion_id, version) = promotions::champion(&mut conn, wine.id).await.unwrap().unwrap();
    assert_eq!(version, champion_before);
    let loaded = versions::load(&mut conn, champion_id)
        .await
        .expect("a format 1 artifact still loads");
    assert_eq!(loaded.classifier.classes(), ["3", "4", "5", "6", "7", "8"]);
    assert_eq!(
        promotions::history(&mut conn, wine.id, 100).await.unwrap().len() as i64,
        count(&pool, "SELECT count(*) FROM promotions").await
    );
    // Training sets recorded by the release still rebuild to their hash.
    let sets: Vec<i64> = sqlx::query_scalar("SELECT id FROM training_sets ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert!(!sets.is_empty());
    for id in sets {
        trainset::rebuild_recorded(&mut conn, id, trainset::Keep::Lineage)
            .await
            .unwrap_or_else(|e| panic!("training set {id}: {e}"));
    }
    drop(conn);

    // Bootstrap finds everything in place, and the next run promotes the
    // next version.
    // The last release's pipeline had no screening: the same rows train.
    let env = screening_off(bootstrapped(&pool).await);
    let engine = engine_for(&pool, pipeline(env));
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[100..130], "users").await;
    let run = finish(&worker(&engine), &engine, trigger(&engine).await.id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.outcome);
    assert_eq!(champion_version(&pool).await, Some(newest_before + 1));
}
