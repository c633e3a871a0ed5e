//! Predictions: single and batch, answered from the served model and logged.

use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_prediction_names_its_model_and_is_logged(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let golden = rows(&app.pool, Split::Golden).await;
    let response = app.post("/predict", json!({"features": features(&golden[0])})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model_version"], 1);
    let label = body["label"].as_str().unwrap().to_owned();
    assert!(["3", "4", "5", "6", "7", "8"].contains(&label.as_str()), "{body}");
    assert_eq!(body["model"], "wine-quality", "{body}");
    let confidence = body["confidence"].as_f64().unwrap();
    assert!(confidence > 0.0 && confidence <= 1.0, "{body}");
    let id: uuid::Uuid = body["prediction_id"].as_str().unwrap().parse().unwrap();

    let pool = app.pool.clone();
    eventually(10, "the prediction is logged", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM predictions WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
                == 1
        }
    })
    .await;
    let (version, logged_label, logged_features): (i32, String, Vec<f64>) =
        sqlx::query_as("SELECT model_version, label, features FROM predictions WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((version, logged_label.as_str()), (1, label.as_str()));
    assert_eq!(Some(logged_features.as_slice()), golden[0].input.features());
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "retrain_predictions_total{{label=\"{label}\",model=\"wine-quality\",model_version=\"1\"}} 1"
        )),
        "{metrics}"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_batch_is_answered_in_order_and_bounded(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &["--batch-max", "5"]).await;
    let golden = rows(&app.pool, Split::Golden).await;
    let instances: Vec<Value> = golden[..5].iter().map(features).collect();
    let response = app.post("/predict/batch", json!({"instances": instances})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 5);
    // Each answer equals the single prediction for the same input.
    for (instance, batched) in golden[..5].iter().zip(predictions) {
        let single: Value = app
            .post("/predict", json!({"features": features(instance)}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(single["label"], batched["label"]);
        assert_eq!(single["confidence"], batched["confidence"]);
    }

    let six: Vec<Value> = golden[..6].iter().map(features).collect();
    let too_many = app.post("/predict/batch", json!({"instances": six})).await;
    assert_eq!(too_many.status(), 422);
    assert_eq!(error_code(too_many).await, "invalid_batch");
    let empty = app.post("/predict/batch", json!({"instances": []})).await;
    assert_eq!(error_code(empty).await, "invalid_batch");
    // One bad instance refuses the whole batch.
    let mixed = app
        .post(
            "/predict/batch",
            json!({"instances": [features(&golden[0]), [1.0, 2.0]]}),
        )
        .await;
    assert_eq!(mixed.status(), 422);
    assert_eq!(error_code(mixed).await, "invalid_features");
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn bad_inputs_are_refused_and_not_logged(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let cases: Vec<(&str, u16, &str)> = vec![
        (r#"{"features": [1, 2, 3]}"#, 422, "invalid_features"),
        (r#"{"features": []}"#, 422, "invalid_features"),
        (r#"{"features": [1,1,1,1,1,1,1,1,1,1,NaN]}"#, 400, "malformed_json"),
        (r#"{"features": [1,1,1,1,1,1,1,1,1,1,1e999]}"#, 400, "malformed_json"),
        (r#"{"features": [1,1,1,1,1,1,1,1,1,1,null]}"#, 422, "invalid_body"),
        (r#"{"features": "eleven numbers"}"#, 422, "invalid_body"),
        (
            r#"{"features": [1,1,1,1,1,1,1,1,1,1,1], "extra": 1}"#,
            422,
            "invalid_body",
        ),
        (r#"{"feat"#, 400, "malformed_json"),
        (r#"[]"#, 422, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let response = app
            .client
            .post(app.url("/predict"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(error_code(response).await, code, "{body}");
    }
    // A value of the wrong shape is answered with what the field takes.
    let (_, message) = error_parts(app.post("/predict", json!({"features": "eleven numbers"})).await).await;
    assert!(
        message.contains(
            "features: an array of numbers in the model's column order, or an object of column name to number"
        ),
        "{message}"
    );
    // The log is written in order: once a valid prediction sent after them
    // is in the table, anything the refused requests had queued would be too.
    let golden = rows(&app.pool, Split::Golden).await;
    let valid: Value = app
        .post("/predict", json!({"features": features(&golden[0])}))
        .await
        .json()
        .await
        .unwrap();
    let id: uuid::Uuid = valid["prediction_id"].as_str().unwrap().parse().unwrap();
    let pool = app.pool.clone();
    eventually(10, "the valid prediction is logged", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM predictions WHERE id = $1)")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(count(&app.pool, "SELECT count(*) FROM predictions").await, 1);
    app.stop().await;
}
