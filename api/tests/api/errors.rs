//! Every refusal answers in the one error shape with a fitting 4xx status.

use crate::support::*;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn refusals_share_one_shape_and_status(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &["--body-limit", "2000"]).await;
    let text = app
        .client
        .post(app.url("/predict"))
        .header("content-type", "text/plain")
        .body(r#"{"features": [1]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    assert_eq!(error_code(text).await, "unsupported_media_type");

    let huge = json!({"features": vec![1.0; 1000]});
    let too_large = app.post("/predict", huge).await;
    assert_eq!(too_large.status(), 413);
    assert_eq!(error_code(too_large).await, "body_too_large");

    let cases = [
        ("/nope", 404, "not_found"),
        ("/runs/00000000-0000-0000-0000-000000000000", 404, "not_found"),
        ("/runs/not-a-uuid", 400, "invalid_path"),
        ("/models/999", 404, "unknown_model"),
        ("/models/wine-quality/versions/999", 404, "not_found"),
        ("/models/wine-quality/versions/one", 400, "invalid_path"),
        ("/models/nope/versions", 404, "unknown_model"),
        ("/runs?status=bogus", 400, "invalid_query"),
        ("/runs?limit=0", 400, "invalid_query"),
    ];
    for (path, status, code) in cases {
        let response = app.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(error_code(response).await, code, "{path}");
    }
    let wrong_method = app.client.delete(app.url("/predict")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(error_code(wrong_method).await, "method_not_allowed");
    // Refusals are counted by route template and status class.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"retrain_http_requests_total{route="/predict",status="4xx"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"retrain_http_requests_total{route="/runs/{id}",status="4xx"} 2"#),
        "{metrics}"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_docs_work_offline(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let document = app.json("/openapi.json").await;
    for path in [
        "/predict",
        "/predict/batch",
        "/feedback",
        "/model/info",
        "/models",
        "/models/{name}",
        "/models/{name}/predict",
        "/models/{name}/predict/batch",
        "/models/{name}/feedback",
        "/models/{name}/runs",
        "/models/{name}/versions",
        "/models/{name}/versions/{version}",
        "/models/{name}/versions/{version}/promote",
        "/runs",
        "/runs/{id}",
        "/runs/{id}/cancel",
        "/runs/{id}/retry",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://"), "no assets from the internet: {html}");
    let script = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(script.status(), 200);
    assert_eq!(app.json("/health").await["status"], "ok");
    assert_eq!(app.json("/ready").await["model_version"], 1);
    app.stop().await;
}

/// A statement the server cancels for running or waiting on a lock too long
/// (`RETRAIN_DB_STATEMENT_TIMEOUT_MS`, `RETRAIN_DB_LOCK_TIMEOUT_MS`) stored
/// nothing, and a retry may pass: it is answered 503 with Retry-After, not 500.
#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn statements_cancelled_by_server_timeouts_are_answered_503(_: PgPoolOptions, connect: PgConnectOptions) {
    let pool = service_pool(
        &connect,
        &["--db-statement-timeout-ms", "100", "--db-lock-timeout-ms", "100"],
    )
    .await;
    let answered = |err: sqlx::Error| {
        let answer = retrain_api::error::ApiError::from(err);
        (answer.status.as_u16(), answer.code, answer.retry_after)
    };
    let slow = sqlx::query("SELECT pg_sleep(10)").execute(&pool).await.unwrap_err();
    assert_eq!(answered(slow), (503, "unavailable", Some(1)));

    sqlx::raw_sql("CREATE TABLE scratch (n int); INSERT INTO scratch VALUES (1)")
        .execute(&pool)
        .await
        .unwrap();
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("UPDATE scratch SET n = 2")
        .execute(&mut *holder)
        .await
        .unwrap();
    let blocked = sqlx::query("UPDATE scratch SET n = 3")
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(answered(blocked), (503, "unavailable", Some(1)));
    holder.rollback().await.unwrap();
    pool.close().await;
}
