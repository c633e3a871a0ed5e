//! Upgrading in place: a database filled by the release before named models
//! (its demo's run, dumped into tests/fixtures: predictions pruned to those
//! feedback cites plus 200) is migrated by the new service at start, and
//! everything it held is kept, queryable and served as the model
//! `wine-quality`.

use crate::support::*;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

/// Rows of the tables that must survive, by name, as one query can read them
/// before and after the upgrade (`versions` was `models`).
async fn kept(pool: &PgPool, versions_table: &str) -> Vec<i64> {
    let sql = format!(
        "SELECT ARRAY[(SELECT count(*) FROM feedback), (SELECT count(*) FROM predictions),
                      (SELECT count(*) FROM runs), (SELECT count(*) FROM run_events),
                      (SELECT count(*) FROM promotions), (SELECT count(*) FROM {versions_table}),
                      (SELECT count(*) FROM feedback_quarantines), (SELECT count(*) FROM examples)]"
    );
    sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_database_of_the_previous_release_upgrades_in_place(_: PgPoolOptions, connect: PgConnectOptions) {
    // The dump sets the session's search_path: load it on a connection of its own.
    let mut loader = sqlx::PgConnection::connect_with(&connect).await.unwrap();
    sqlx::raw_sql(include_str!("../../../tests/fixtures/release_2026_11_30.sql"))
        .execute(&mut loader)
        .await
        .unwrap();
    loader.close().await.unwrap();
    let pool = pool(&connect).await;
    let before = kept(&pool, "models").await;
    assert!(
        before.iter().all(|n| *n > 0),
        "the fixture holds every kind of row: {before:?}"
    );
    let (champion, promotions): (i64, Vec<String>) = sqlx::query_as(
        "SELECT (SELECT m.version::bigint FROM champion c JOIN models m ON m.id = c.model_id),
                (SELECT array_agg(kind || ':' || to_version ORDER BY promotion_id) FROM audit_promotions)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();

    // The new service migrates at start.
    let app = spawn_on(pool.clone(), "api", &[]).await;
    assert_eq!(kept(&pool, "versions").await, before, "nothing is lost");
    let (model, kept_promotions, links): (String, Vec<String>, i64) = sqlx::query_as(
        "SELECT (SELECT string_agg(name, ',') FROM models),
                (SELECT array_agg(kind || ':' || to_version ORDER BY promotion_id) FROM audit_promotions
                 WHERE model = 'wine-quality'),
                (SELECT count(*) FROM feedback_links WHERE model = 'wine-quality')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(model, "wine-quality", "the one model of the release is named");
    assert_eq!(kept_promotions, promotions, "the promotion history reads the same");
    assert!(links > 0, "feedback still links to its predictions");

    // Served and listed as before: the champion, every version with its scores.
    assert_eq!(app.served_version().await, champion);
    let versions = app.json("/models/wine-quality/versions").await;
    let listed = versions.as_array().unwrap();
    assert_eq!(listed.len() as i64, before[5], "{versions}");
    assert!(
        listed.iter().all(|v| v["golden_accuracy"].as_f64().is_some()),
        "{versions}"
    );
    let runs = app.json("/runs?model=wine-quality").await;
    assert_eq!(
        runs.as_array().unwrap().len() as i64,
        before[2],
        "old runs belong to the model"
    );

    // Today's clients keep working: integer labels in, predictions out.
    let golden = rows(&app.pool, retrain_steps::ml::Split::Golden).await;
    let answer: Value = app
        .post("/predict", json!({"features": features(&golden[0])}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["model_version"], champion);
    let label: i64 = golden[0].label.parse().unwrap();
    let stored = app
        .post(
            "/feedback",
            json!({"features": features(&golden[0]), "correct_label": label,
                   "prediction_id": answer["prediction_id"]}),
        )
        .await;
    assert_eq!(stored.status(), 201);
    app.stop().await;
}
