//! An API process asked to stop (SIGTERM) with requests in flight: it stops
//! accepting connections, lets the requests finish, commits the feedback
//! they store, writes the prediction log, and only then exits.

use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// Feedback requests in flight (each holds one of the API's 16 connections).
const FEEDBACK: usize = 10;
/// Predictions answered, and still queued for the log, at shutdown.
const QUEUED: usize = 50;

async fn predict(api: &Process, features: &[f64]) -> Uuid {
    let response = api
        .client
        .post(api.url("/predict"))
        .json(&json!({"features": features}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["prediction_id"].as_str().unwrap().parse().unwrap()
}

async fn logged(pool: &PgPool, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM predictions WHERE id = ANY($1)")
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn requests_in_flight_at_shutdown_get_their_answers_and_their_rows_are_stored(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let _machine = shared_machine().await;
    let url = database_url(&connect);
    let pool = pool(&connect).await;
    let mut api = RETRAIN.start(Role::Api, &url, &[]).await;
    let rows = split_rows(&pool, Split::Pool).await;
    let (cited, queued) = (&rows[..FEEDBACK], &rows[FEEDBACK..FEEDBACK + QUEUED]);
    let mut cited_ids = Vec::new();
    for row in cited {
        cited_ids.push(predict(&api, row.input.features().unwrap()).await);
    }
    eventually(10.0, "the cited predictions are logged", || async {
        logged(&pool, &cited_ids).await == FEEDBACK as i64
    })
    .await;

    // Hold the prediction log: from now on its writes, and the feedback
    // handlers' look-ups of the predictions they cite, wait.
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let mut queued_ids = Vec::new();
    for row in queued {
        queued_ids.push(predict(&api, row.input.features().unwrap()).await);
    }
    let sends: Vec<_> = cited
        .iter()
        .zip(&cited_ids)
        .map(|(row, id)| {
            let request = api.client.post(api.url("/feedback")).bearer_auth(TOKEN).json(&json!({
                "features": row.input.features(), "correct_label": row.label, "prediction_id": id
            }));
            tokio::spawn(request.send())
        })
        .collect();
    eventually(10.0, "every feedback request is in its handler", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE '%FROM predictions WHERE id%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        waiting == FEEDBACK as i64
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
    assert_eq!(
        logged(&pool, &queued_ids).await,
        QUEUED as i64,
        "every prediction answered before shutdown is logged"
    );
    drop(api);
    pool.close().await;
}
