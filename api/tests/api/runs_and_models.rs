//! Triggering and inspecting runs, and promoting and rolling back models,
//! over HTTP with the worker running in the same process.

use crate::support::*;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn runs_are_triggered_inspected_cancelled_and_retried(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "all", &[]).await;
    let created = app.admin_post("/runs", json!({"reason": "nightly check"})).await;
    assert_eq!(created.status(), 201);
    let run: Value = created.json().await.unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(run["requested_by"], "ops@example.com");
    assert_eq!(run["params"]["reason"], "nightly check");

    // No body at all is fine too; while the run is active it is returned (200).
    let again = app
        .client
        .post(app.url("/runs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let again_status = again.status();
    let again: Value = again.json().await.unwrap();
    if again_status == 200 {
        assert_eq!(again["id"], id.as_str());
    } else {
        assert_eq!(again_status, 201, "the first run may have ended already");
    }

    // Without feedback the worker skips the run.
    let path = format!("/runs/{id}");
    let (app_ref, path_ref) = (&app, &path);
    eventually(30, "the run ends", || async move {
        let status = app_ref.json(path_ref).await["status"].clone();
        status != "queued" && status != "running"
    })
    .await;
    let detail = app.json(&format!("/runs/{id}")).await;
    assert_eq!(detail["status"], "skipped");
    assert_eq!(detail["steps"].as_array().unwrap().len(), 5);
    assert!(detail["events"].as_array().unwrap().len() >= 4);
    let listed = app.json("/runs?status=skipped&limit=10").await;
    assert!(listed.as_array().unwrap().iter().any(|r| r["id"] == id.as_str()));

    let cancel = app.admin_post(&format!("/runs/{id}/cancel"), json!({})).await;
    assert_eq!(cancel.status(), 409);
    assert_eq!(error_code(cancel).await, "invalid_state");
    let retry = app.admin_post(&format!("/runs/{id}/retry"), json!({})).await;
    assert_eq!(retry.status(), 409);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn models_are_listed_promoted_and_rolled_back(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let v2 = second_model(&app.pool).await;
    assert_eq!(v2, 2);
    let registry = app.json("/models").await;
    assert_eq!(registry[0]["name"], "wine-quality", "{registry}");
    assert_eq!(registry[0]["kind"], "tabular");
    assert_eq!(registry[0]["champion_version"], 1);
    assert_eq!(registry[0]["classes"], json!(["3", "4", "5", "6", "7", "8"]));
    let model = app.json("/models/wine-quality").await;
    assert_eq!(model["feature_names"].as_array().unwrap().len(), 11, "{model}");
    let models = app.json("/models/wine-quality/versions").await;
    let versions: Vec<i64> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1]);
    assert_eq!(models[1]["is_champion"], true);
    assert_eq!(models[1]["model"], "wine-quality");
    let detail = app.json("/models/wine-quality/versions/1").await;
    assert_eq!(detail["promotions"][0]["kind"], "bootstrap");
    assert!(detail["golden_accuracy"].as_f64().unwrap() > 0.4);

    let promoted = app
        .admin_post(
            "/models/wine-quality/versions/2/promote",
            json!({"reason": "shallower tree"}),
        )
        .await;
    assert_eq!(promoted.status(), 200);
    let promotion: Value = promoted.json().await.unwrap();
    assert_eq!(
        (promotion["kind"].as_str(), promotion["version"].as_i64()),
        (Some("manual"), Some(2))
    );
    assert_eq!(promotion["actor"], "ops@example.com");
    eventually(5, "version 2 serves", || async { app.served_version().await == 2 }).await;

    let again = app
        .admin_post("/models/wine-quality/versions/2/promote", json!({"reason": "again"}))
        .await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_code(again).await, "already_champion");
    let unknown = app
        .admin_post("/models/wine-quality/versions/9/promote", json!({"reason": "nope"}))
        .await;
    assert_eq!(unknown.status(), 404);
    let no_reason = app
        .admin_post("/models/wine-quality/versions/1/promote", json!({"reason": ""}))
        .await;
    assert_eq!(error_code(no_reason).await, "invalid_reason");

    let rollback: Value = app
        .admin_post(
            "/models/wine-quality/versions/1/promote",
            json!({"reason": "v2 regressed"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (rollback["kind"].as_str(), rollback["previous_version"].as_i64()),
        (Some("rollback"), Some(2))
    );
    eventually(5, "version 1 serves again", || async {
        app.served_version().await == 1
    })
    .await;
    assert_eq!(count(&app.pool, "SELECT count(*) FROM promotions").await, 3);
    app.stop().await;
}
