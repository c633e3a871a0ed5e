//! Mutating admin endpoints need the bearer token; reads stay open.

use crate::support::*;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn admin_calls_without_the_right_token_are_refused(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let run_id = uuid::Uuid::new_v4();
    let calls = [
        "/runs".to_owned(),
        format!("/runs/{run_id}/cancel"),
        format!("/runs/{run_id}/retry"),
        "/models/wine-quality/versions/1/promote".to_owned(),
        "/models/wine-quality/runs".to_owned(),
    ];
    for path in &calls {
        let anonymous = app.post_without_key(path, json!({"reason": "x"})).await;
        assert_eq!(anonymous.status(), 401, "{path}");
        assert_eq!(error_code(anonymous).await, "unauthorized");
        let wrong = app
            .client
            .post(app.url(path))
            .bearer_auth("not-the-token")
            .json(&json!({"reason": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        assert_eq!(error_code(wrong).await, "unauthorized");
        let basic = app
            .client
            .post(app.url(path))
            .basic_auth("admin", Some(TOKEN))
            .json(&json!({"reason": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 401, "{path}");
    }
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 0);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM promotions").await, 1);
    // Reads need no token.
    assert_eq!(app.get("/runs").await.status(), 200);
    assert_eq!(app.get("/models").await.status(), 200);
    app.stop().await;
}
