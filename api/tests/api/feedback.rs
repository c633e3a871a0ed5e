//! Feedback: committed before the answer, checked against the prediction it
//! cites (or stored, and linked later, while that prediction is not logged),
//! refused (and not stored) when invalid.

use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn feedback_is_committed_before_it_is_acknowledged(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let pool_rows = rows(&app.pool, Split::Pool).await;
    let example = &pool_rows[0];
    let response = app
        .post(
            "/feedback",
            json!({"features": features(example), "correct_label": example.label, "source": "app-1"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["feedback_id"].as_i64().unwrap();
    // No waiting: acknowledged means stored.
    // The source is the key's name; the body's `source` a sub-label.
    let (label, source, sub_label, predicted): (String, String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT correct_label, source, sub_label, predicted_label FROM feedback WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (label, source.as_str(), sub_label.as_deref(), predicted),
        (example.label.clone(), "tests", Some("app-1"), None)
    );

    // Many at once: every acknowledged row is there (group commit).
    let sends = pool_rows[1..41].iter().map(|e| {
        app.client
            .post(app.url("/feedback"))
            .bearer_auth(&app.key)
            .json(&json!({"features": features(e), "correct_label": e.label}))
            .send()
    });
    let responses = futures_util::future::join_all(sends).await;
    let mut ids = Vec::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), 201);
        ids.push(response.json::<Value>().await.unwrap()["feedback_id"].as_i64().unwrap());
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM feedback WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 40);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn feedback_citing_a_prediction_is_checked_against_it(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let pool_rows = rows(&app.pool, Split::Pool).await;
    let example = &pool_rows[0];
    let predicted: Value = app
        .post("/predict", json!({"features": features(example)}))
        .await
        .json()
        .await
        .unwrap();
    let prediction_id = predicted["prediction_id"].clone();
    let label = predicted["label"].as_str().unwrap().to_owned();
    assert_eq!(predicted["model"], "wine-quality", "answers name their model");

    // Sent right away: the prediction may not be logged yet, and is found anyway.
    let response = app
        .post(
            "/feedback",
            json!({"features": features(example), "correct_label": example.label,
                                  "prediction_id": prediction_id}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["feedback_id"].as_i64().unwrap();
    let (stored_predicted, version): (Option<String>, Option<i32>) =
        sqlx::query_as("SELECT predicted_label, model_version FROM feedback WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((stored_predicted.as_deref(), version), (Some(label.as_str()), Some(1)));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let verdict = if label == example.label { "correct" } else { "incorrect" };
    assert!(
        metrics.contains(&format!(
            "retrain_feedback_total{{model=\"wine-quality\",verdict=\"{verdict}\"}} 1"
        )),
        "{metrics}"
    );

    let before = count(&app.pool, "SELECT count(*) FROM feedback").await;
    let other = &pool_rows[1];
    let wrong_features = app
        .post(
            "/feedback",
            json!({"features": features(other), "correct_label": other.label,
                                  "prediction_id": prediction_id}),
        )
        .await;
    assert_eq!(wrong_features.status(), 422);
    assert_eq!(error_code(wrong_features).await, "prediction_mismatch");
    let wrong_label = app
        .post(
            "/feedback",
            json!({"features": features(example), "correct_label": example.label,
                                  "prediction_id": prediction_id, "predicted_label": if label == "5" { "6" } else { "5" }}),
        )
        .await;
    assert_eq!(error_code(wrong_label).await, "prediction_mismatch");
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, before);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn feedback_citing_a_prediction_not_logged_is_stored_and_links_when_it_lands(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = spawn(&connect, "api", &[]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    // A prediction this replica never logged: another replica's, not written
    // yet, or one the log dropped.
    let prediction_id = uuid::Uuid::new_v4();
    let send = |claimed: Option<i32>| {
        let body = json!({"features": features(&example), "correct_label": example.label,
                          "prediction_id": prediction_id, "predicted_label": claimed});
        let app = &app;
        async move {
            let response = app.post("/feedback", body).await;
            assert_eq!(
                response.status(),
                201,
                "not a final 4xx: the prediction may still arrive"
            );
            response.json::<Value>().await.unwrap()["feedback_id"].as_i64().unwrap()
        }
    };
    let plain = send(None).await;
    let claiming_5 = send(Some(5)).await;
    let stored: (Option<uuid::Uuid>, Option<String>, Option<i32>) =
        sqlx::query_as("SELECT prediction_id, predicted_label, model_version FROM feedback WHERE id = $1")
            .bind(claiming_5)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        (Some(prediction_id), Some("5".to_owned()), None),
        "stored as the client sent it (a JSON integer label means its decimal string)"
    );
    let link = |id: i64| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (String, Option<String>, Option<i32>)>(
                "SELECT link, predicted_label, model_version FROM feedback_links WHERE feedback_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(link(plain).await, ("unlinked".to_owned(), None, None));
    assert_eq!(
        link(claiming_5).await,
        ("unlinked".to_owned(), Some("5".to_owned()), None)
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("retrain_feedback_unlinked_total{model=\"wine-quality\"} 2\n"),
        "{metrics}"
    );

    // The prediction lands, for these features, saying 6: the rows link to it.
    sqlx::query(
        "INSERT INTO predictions (id, model_id, model_version, features, label, confidence, predicted_at)
         SELECT $1, id, 1, $2, '6', 0.5, now() FROM models WHERE name = 'wine-quality'",
    )
    .bind(prediction_id)
    .bind(example.input.features())
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(link(plain).await, ("linked".to_owned(), Some("6".to_owned()), Some(1)));
    assert_eq!(
        link(claiming_5).await,
        ("mismatch".to_owned(), Some("5".to_owned()), None),
        "it said 6, not 5"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn invalid_feedback_is_refused_and_not_stored(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let f = features(&example);
    let cases = vec![
        (json!({"features": [1.0, 2.0], "correct_label": 5}), "invalid_features"),
        (json!({"features": f, "correct_label": 42}), "unknown_label"),
        (
            json!({"features": f, "correct_label": 5, "predicted_label": -1}),
            "unknown_label",
        ),
        (
            json!({"features": f, "correct_label": 5, "source": "a\u{0000}b"}),
            "invalid_source",
        ),
        (
            json!({"features": f, "correct_label": 5, "source": "x".repeat(201)}),
            "invalid_source",
        ),
        (
            json!({"features": f, "correct_label": 5, "source": "   "}),
            "invalid_source",
        ),
        (json!({"features": f}), "invalid_body"),
        (json!({"features": f, "correct_label": "five"}), "unknown_label"),
        (json!({"features": f, "correct_label": 5.5}), "invalid_body"),
        (
            json!({"text": "a wine described in words", "correct_label": 5}),
            "wrong_input",
        ),
        (
            json!({"features": f, "text": "both", "correct_label": 5}),
            "wrong_input",
        ),
        (json!({"correct_label": 5}), "wrong_input"),
        (
            json!({"features": {"alcohol": 9.4}, "correct_label": 5}),
            "invalid_features",
        ),
        (
            json!({"features": f, "correct_label": 5, "prediction_id": "not-a-uuid"}),
            "invalid_body",
        ),
    ];
    for (body, code) in cases {
        let response = app.post("/feedback", body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(error_code(response).await, code, "{body}");
    }
    let fraction = app
        .post("/feedback", json!({"features": f, "correct_label": 5.5}))
        .await;
    let (_, message) = error_parts(fraction).await;
    assert!(
        message.contains("correct_label: a class name: a string, or an integer"),
        "{message}"
    );
    // Text that looks like SQL is stored as text, nothing more.
    let sneaky = "'); DROP TABLE feedback; --";
    let response = app
        .post(
            "/feedback",
            json!({"features": f, "correct_label": 5, "source": sneaky}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 1);
    let sub_label: String = sqlx::query_scalar("SELECT sub_label FROM feedback")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sub_label, sneaky);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn feedback_is_quarantined_by_source_by_an_admin(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let (spammer, users) = (
        app.make_key("spammer", &["feedback"]).await,
        app.make_key("users", &["feedback"]).await,
    );
    // The body's source is a sub-label: the spammer cannot pass as users.
    for key in [&spammer, &spammer, &users] {
        let body = json!({"features": features(&example), "correct_label": example.label, "source": "users"});
        assert_eq!(app.post_as(key, "/feedback", body).await.status(), 201);
    }
    let rule = json!({"source": "spammer", "reason": "bot traffic"});
    assert_eq!(
        app.post_without_key("/feedback/quarantine", rule.clone())
            .await
            .status(),
        401
    );
    let created = app.admin_post("/feedback/quarantine", rule).await;
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["matched_rows"], 2);

    let refused = [
        (json!({"reason": "no criterion"}), "invalid_quarantine"),
        (json!({"source": "x", "reason": ""}), "invalid_reason"),
        (
            json!({"received_from": "2026-01-02T00:00:00Z", "received_until": "2026-01-01T00:00:00Z",
                "reason": "backwards"}),
            "invalid_quarantine",
        ),
    ];
    for (body, code) in refused {
        let response = app.admin_post("/feedback/quarantine", body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(error_code(response).await, code);
    }
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback_quarantines").await, 1);
    let (source, actor): (String, String) = sqlx::query_as("SELECT source, actor FROM feedback_quarantines")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!((source.as_str(), actor.as_str()), ("spammer", "ops@example.com"));
    app.stop().await;
}
