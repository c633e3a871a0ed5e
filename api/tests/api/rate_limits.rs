//! Per-key limits (issue 15): a flooding key gets 429 with Retry-After
//! while other keys' requests keep landing; a key a quarantine rule names
//! gets the lower hourly cap.

use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_flood_from_one_key_is_refused_while_another_keys_feedback_lands(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = spawn(&connect, "api", &["--feedback-rate", "2", "--feedback-burst", "10"]).await;
    let pool_rows = rows(&app.pool, Split::Pool).await;
    let body = |i: usize| json!({"features": features(&pool_rows[i]), "correct_label": pool_rows[i].label});
    let flood = app.make_key("flood", &["feedback"]).await;
    let calm = app.make_key("calm", &["feedback"]).await;
    let sends = (0..40).map(|i| app.post_as(&flood, "/feedback", body(i)));
    let answers = futures_util::future::join_all(sends).await;
    let mut stored = 0;
    for response in answers {
        match response.status().as_u16() {
            201 => stored += 1,
            429 => {
                let wait: u32 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(wait >= 1, "Retry-After {wait}");
                assert_eq!(error_code(response).await, "rate_limited");
            }
            other => panic!("status {other}"),
        }
    }
    // The burst, and what refilled meanwhile.
    assert!((10..=20).contains(&stored), "{stored} stored");
    for i in 40..45 {
        assert_eq!(app.post_as(&calm, "/feedback", body(i)).await.status(), 201);
    }
    let by_source: Vec<(String, i64)> =
        sqlx::query_as("SELECT source, count(*) FROM feedback GROUP BY source ORDER BY source")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(by_source, [("calm".to_owned(), 5), ("flood".to_owned(), stored)]);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_quarantined_key_gets_the_lower_hourly_cap(_: PgPoolOptions, connect: PgConnectOptions) {
    let flags = ["--feedback-hourly-cap", "100", "--feedback-flagged-hourly-cap", "3"];
    let app = spawn(&connect, "api", &flags).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let body = json!({"features": features(&example), "correct_label": example.label});
    let flagged = app.make_key("flagged", &["feedback"]).await;
    let rule = json!({"source": "flagged", "reason": "screening flagged it"});
    assert_eq!(app.admin_post("/feedback/quarantine", rule).await.status(), 201);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.post_as(&flagged, "/feedback", body.clone()).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, [201, 201, 201, 429, 429]);
    let refused = statuses.pop().unwrap();
    let wait: u32 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    assert_eq!(error_code(refused).await, "hourly_cap");
    // Unflagged keys keep the higher cap.
    for _ in 0..5 {
        assert_eq!(app.post("/feedback", body.clone()).await.status(), 201);
    }
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn predictions_with_a_key_are_limited_and_open_ones_are_not(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &["--predict-rate", "0.5", "--predict-burst", "2"]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let input = json!({"features": features(&example)});
    let codes =
        |responses: Vec<reqwest::Response>| -> Vec<u16> { responses.iter().map(|r| r.status().as_u16()).collect() };
    let mut keyed = Vec::new();
    for _ in 0..3 {
        keyed.push(app.post("/predict", input.clone()).await);
    }
    assert_eq!(codes(keyed), [200, 200, 429]);
    let batch = app
        .post(
            "/predict/batch",
            json!({"instances": [features(&example), features(&example)]}),
        )
        .await;
    assert_eq!(batch.status(), 429);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.post_without_key("/predict", input.clone()).await);
    }
    assert_eq!(codes(open), [200, 200, 200]);
    let answer: Value = app.post_without_key("/predict", input).await.json().await.unwrap();
    assert!(answer["label"].is_string());
    app.stop().await;
}
