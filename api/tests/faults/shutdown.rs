//! An API process asked to stop (SIGTERM) with requests in flight: it stops
//! accepting connections, lets the requests finish, commits the feedback
//! they queued, writes the prediction log, and only then exits.

use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const PREDICTIONS: usize = 50;
const FEEDBACK: usize = 20;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn requests_in_flight_at_shutdown_get_their_answers_and_their_rows_are_stored(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let _machine = shared_machine().await;
    let url = database_url(&connect);
    let pool = pool(&connect).await;
    let mut api = Process::start(Role::Api, &url, &[]).await;
    let rows = split_rows(&pool, Split::Pool).await;

    // Hold every write to both tables until shutdown has started.
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE feedback, predictions IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    // Predictions are answered at once; their log rows wait in the queue.
    let mut predicted = Vec::new();
    for row in &rows[..PREDICTIONS] {
        let response = api
            .client
            .post(api.url("/predict"))
            .json(&json!({"features": row.features}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        predicted.push(body["prediction_id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    // Feedback is answered after its commit, so these stay in flight.
    let sends: Vec<_> = rows[..FEEDBACK]
        .iter()
        .map(|row| {
            let request = api
                .client
                .post(api.url("/feedback"))
                .json(&json!({"features": row.features, "correct_label": row.label}));
            tokio::spawn(request.send())
        })
        .collect();
    eventually(10.0, "every feedback request waits for its commit", || async {
        api.metric("retrain_feedback_in_flight").await == FEEDBACK as f64
    })
    .await;

    api.terminate();
    eventually(10.0, "the API stops accepting connections", || async {
        !api.accepts().await
    })
    .await;
    hold.commit().await.unwrap();

    let mut acknowledged = Vec::new();
    for send in sends {
        let response = send.await.unwrap().expect("an answer, not a dropped connection");
        assert_eq!(response.status(), 201, "in flight at shutdown, and still committed");
        acknowledged.push(response.json::<Value>().await.unwrap()["feedback_id"].as_i64().unwrap());
    }
    let status = api.exited(30).await;
    assert!(status.success(), "a clean exit: {status}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM feedback WHERE id = ANY($1)")
        .bind(&acknowledged)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, FEEDBACK as i64, "every acknowledged row is stored");
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM predictions WHERE id = ANY($1)")
        .bind(&predicted)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        logged, PREDICTIONS as i64,
        "every prediction answered before shutdown is logged"
    );
    drop(api);
    pool.close().await;
}
