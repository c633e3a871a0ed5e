//! Every list endpoint pages by keyset: following the `Link: rel="next"`
//! URLs walks every row exactly once, newest first (models by name), and a
//! limit out of range or a cursor that is not a key is a 400 in the one
//! error shape.

use crate::support::*;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Follows the `next` links from `first`; every page's rows, in order.
async fn walk(app: &TestApp, first: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut next = Some(first.to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
        next = response
            .headers()
            .get("link")
            .map(|link| link.to_str().unwrap().to_owned())
            .map(|link| {
                let url = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once(">; rel=\"next\""))
                    .unwrap()
                    .0;
                url.to_owned()
            });
        let page: Vec<Value> = response.json().await.unwrap();
        assert!(!page.is_empty(), "a next link leads to rows: {path}");
        rows.extend(page);
        pages += 1;
        assert!(pages < 100, "the walk ends");
    }
    rows
}

/// 23 finished runs of two models, several created in the same microsecond
/// (the page boundary must split them by id); returns their ids newest first.
async fn finished_runs(pool: &PgPool) -> Vec<String> {
    let mut tx = history(pool).await;
    sqlx::query(
        "INSERT INTO runs (id, pipeline, subject, status, trigger, requested_by, created_at)
         SELECT gen_random_uuid(), 'retrain', CASE WHEN g % 3 = 0 THEN 'other' ELSE 'wine-quality' END,
                'skipped', 'manual', 'test', timestamptz '2026-11-01' + (g / 4) * interval '1 minute'
         FROM generate_series(1, 23) g",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    sqlx::query_scalar("SELECT id::text FROM runs ORDER BY created_at DESC, id DESC")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn following_next_links_walks_every_row_once(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let runs = finished_runs(&app.pool).await;
    let walked: Vec<String> = walk(&app, "/runs?limit=4")
        .await
        .iter()
        .map(|run| run["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(walked, runs, "every run once, newest first");

    // Filters carry over to the next pages; a model's runs are its own list too.
    let of_wine: Vec<Value> = walk(&app, "/runs?model=wine-quality&status=skipped&limit=5").await;
    assert_eq!(of_wine.len(), 23 - 23 / 3);
    assert!(
        of_wine.iter().all(|run| run["subject"] == "wine-quality"),
        "{of_wine:?}"
    );
    assert_eq!(walk(&app, "/models/wine-quality/runs?limit=3").await, of_wine);

    // Models by name.
    sqlx::query(
        "INSERT INTO models (name, kind, feature_names, text_column, classes, learner)
         SELECT 'model-' || g, 'text', '{}', 'text', '{}', '{\"name\": \"decision_tree\", \"settings\": {}}'
         FROM generate_series(1, 6) g",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let names: Vec<String> = walk(&app, "/models?limit=2")
        .await
        .iter()
        .map(|model| model["name"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = (1..=6).map(|g| format!("model-{g}")).collect();
    expected.push("wine-quality".into());
    assert_eq!(names, expected);

    // Versions, newest first.
    second_model(&app.pool).await;
    second_model(&app.pool).await;
    let versions: Vec<i64> = walk(&app, "/models/wine-quality/versions?limit=1")
        .await
        .iter()
        .map(|version| version["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![3, 2, 1]);

    // A page that holds the rest has no next link.
    let whole = app.get("/models/wine-quality/versions?limit=3").await;
    assert!(whole.headers().get("link").is_none());
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_limit_out_of_range_or_a_foreign_cursor_is_refused(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let runs_before = count(&app.pool, "SELECT count(*) FROM runs").await;
    for path in [
        "/runs?limit=0",
        "/runs?limit=501",
        "/runs?limit=-3",
        "/runs?limit=many",
        "/runs?after=not-a-run-id",
        "/models?limit=0",
        "/models?limit=501",
        "/models/wine-quality/versions?limit=1000",
        "/models/wine-quality/versions?after=v2",
        "/models/wine-quality/runs?limit=501",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(error_code(response).await, "invalid_query", "{path}");
    }
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM runs").await,
        runs_before,
        "nothing stored"
    );
    // The paging is in the API's document.
    let document = app.json("/openapi.json").await;
    for path in ["/runs", "/models/{name}/runs", "/models", "/models/{name}/versions"] {
        let get = &document["paths"][path]["get"];
        let names: Vec<&str> = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            names.contains(&"limit") && names.contains(&"after"),
            "{path}: {names:?}"
        );
        assert!(get["responses"]["200"]["headers"]["Link"].is_object(), "{path}: {get}");
    }
    // The edges of the range are fine.
    for path in ["/runs?limit=1", "/runs?limit=500", "/models?limit=500"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    app.stop().await;
}
