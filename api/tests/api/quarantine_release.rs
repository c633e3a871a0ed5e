//! An operator's release of a quarantine over HTTP: audited (who, when,
//! why, as a release row beside the rule), refused when it cannot apply, and
//! the source's feedback trains again in the next run, which goes ahead
//! without new feedback and does not screen the released rows again.

use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn training_set(app: &TestApp, run: &Value) -> (Vec<i64>, Value, i32) {
    sqlx::query_as("SELECT quarantine_rules, dropped, feedback_rows FROM training_sets WHERE run_id = $1::text::uuid")
        .bind(run["id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_released_source_is_audited_and_trains_again_in_the_next_run(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "all", &[]).await;
    let pool_rows = rows(&app.pool, Split::Pool).await;
    let from = |rows: &[retrain_steps::ml::Example], source: &str| -> Vec<Value> {
        rows.iter()
            .map(|e| json!({"features": features(e), "correct_label": e.label, "source": source}))
            .collect()
    };
    let partner = app.make_key("partner", &["feedback"]).await;
    send_all_as(&app, &partner, from(&pool_rows[..40], "whatever-the-partner-says")).await;
    let quarantined = app
        .admin_post(
            "/feedback/quarantine",
            json!({"source": "partner", "reason": "suspected bot"}),
        )
        .await;
    assert_eq!(quarantined.status(), 201);
    let rule = quarantined.json::<Value>().await.unwrap()["quarantine_id"]
        .as_i64()
        .unwrap();
    send_all(&app, from(&pool_rows[40..70], "app")).await;
    let first = run_to_end(&app, "with partner quarantined").await;
    let (rules, dropped, _) = training_set(&app, &first).await;
    let rules_in_force = app.json("/feedback/quarantine").await;
    assert_eq!(rules, vec![rule], "{rules_in_force}");
    assert_eq!(dropped["quarantined"], 40, "{dropped}");

    // Refusals: no token, an empty reason, an unknown rule.
    let path = format!("/feedback/quarantine/{rule}/release");
    assert_eq!(app.post_without_key(&path, json!({"reason": "x"})).await.status(), 401);
    let empty = app.admin_post(&path, json!({"reason": ""})).await;
    assert_eq!(empty.status(), 422);
    assert_eq!(error_code(empty).await, "invalid_reason");
    let unknown = app
        .admin_post("/feedback/quarantine/999999/release", json!({"reason": "x"}))
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_code(unknown).await, "not_found");
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM quarantine_releases").await,
        0,
        "a refused release stores nothing"
    );

    let released = app.admin_post(&path, json!({"reason": "partner verified"})).await;
    assert_eq!(released.status(), 200);
    let released: Value = released.json().await.unwrap();
    assert_eq!(released["id"], rule);
    assert_eq!(released["released_by"], "ops@example.com");
    assert_eq!(released["release_reason"], "partner verified");
    assert!(released["released_at"].is_string());
    let again = app.admin_post(&path, json!({"reason": "twice"})).await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_code(again).await, "already_released");
    // The list shows the rule and its release; the history cannot be rewritten.
    let listed = app.json("/feedback/quarantine").await;
    assert_eq!(listed[0]["release_reason"], "partner verified", "{listed}");
    assert!(
        sqlx::query("DELETE FROM quarantine_releases")
            .execute(&app.pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM feedback_quarantines")
            .execute(&app.pool)
            .await
            .is_err()
    );

    // The next run, with no new feedback: it goes ahead (the released rows
    // are data the champion was not trained on), the rule no longer
    // applies, and partner's rows train without being screened again.
    let second = run_to_end(&app, "after the release").await;
    assert_ne!(second["status"], "skipped", "{second}");
    let (rules, dropped, feedback_rows) = training_set(&app, &second).await;
    assert!(rules.is_empty(), "{rules:?}");
    assert!(dropped.get("quarantined").is_none(), "{dropped}");
    let (_, _, first_rows) = training_set(&app, &first).await;
    assert!(feedback_rows > first_rows + 25, "{first_rows} then {feedback_rows}");
    let vouched: i64 = sqlx::query_scalar(
        "SELECT (screening->>'vouched_rows')::bigint FROM training_sets WHERE run_id = $1::text::uuid",
    )
    .bind(second["id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(vouched > 30, "partner's released rows are vouched for: {vouched}");
    app.stop().await;
}
