//! Two API replicas on different ports: feedback sent to one, citing a
//! prediction the other served and has not logged yet, is stored at once
//! (not refused as unknown) and links to the prediction once it lands.

use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn feedback_citing_another_replicas_prediction_is_stored_and_linked_when_it_lands(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let _machine = shared_machine().await;
    let url = database_url(&connect);
    let pool = pool(&connect).await;
    let serving = RETRAIN.start(Role::Api, &url, &[]).await;
    let receiving = RETRAIN.start(Role::Api, &url, &[]).await;
    let row = split_rows(&pool, Split::Pool).await.remove(0);

    // Hold the first replica's prediction log back: its insert waits for
    // this transaction (reads go on).
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE predictions IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let predicted: Value = serving
        .client
        .post(serving.url("/predict"))
        .json(&json!({"features": row.input.features()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prediction_id: Uuid = predicted["prediction_id"].as_str().unwrap().parse().unwrap();
    let label = predicted["label"].as_str().unwrap().to_owned();

    let response = receiving
        .client
        .post(receiving.url("/feedback"))
        .bearer_auth(TOKEN)
        .json(&json!({"features": row.input.features(), "correct_label": row.label, "prediction_id": prediction_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "stored, not refused as unknown");
    let feedback_id = response.json::<Value>().await.unwrap()["feedback_id"].as_i64().unwrap();
    let stored: (Option<Uuid>, Option<i32>) =
        sqlx::query_as("SELECT prediction_id, model_version FROM feedback WHERE id = $1")
            .bind(feedback_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        (Some(prediction_id), None),
        "stored with its prediction id, not linked yet"
    );

    hold.commit().await.unwrap();
    let link = || async {
        sqlx::query_as::<_, (String, Option<String>, Option<i32>)>(
            "SELECT link, predicted_label, model_version FROM feedback_links WHERE feedback_id = $1",
        )
        .bind(feedback_id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    eventually(10.0, "the prediction lands and the feedback links to it", || async {
        link().await.0 == "linked"
    })
    .await;
    let (_, predicted_label, model_version) = link().await;
    assert_eq!((predicted_label, model_version), (Some(label), Some(1)));
    drop((serving, receiving));
    pool.close().await;
}
