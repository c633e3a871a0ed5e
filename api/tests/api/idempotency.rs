//! `Idempotency-Key` on `POST /feedback` and `POST /runs`: a retry gets the
//! first answer and stores nothing new, also when the retries race each
//! other on one replica or on two; the same key with another body is 409.

use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn send_feedback(app: &TestApp, key: &str, body: &Value) -> (u16, Value, bool) {
    let response = app
        .client
        .post(app.url("/feedback"))
        .bearer_auth(&app.key)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn answer(response: reqwest::Response) -> (u16, Value, bool) {
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (status, response.json().await.unwrap(), replayed)
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_retried_feedback_gets_the_first_answer_and_stores_nothing(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let pool_rows = rows(&app.pool, Split::Pool).await;
    let body = json!({"features": features(&pool_rows[0]), "correct_label": pool_rows[0].label, "source": "app"});

    let (status, first, replayed) = send_feedback(&app, "key-1", &body).await;
    assert_eq!((status, replayed), (201, false), "{first}");
    // The same body with whitespace and key order changed is the same request.
    let reordered = serde_json::to_string_pretty(&json!({"source": "app", "correct_label": pool_rows[0].label,
                                                         "features": features(&pool_rows[0])}))
    .unwrap();
    let retry = app
        .client
        .post(app.url("/feedback"))
        .bearer_auth(&app.key)
        .header("idempotency-key", "key-1")
        .header("content-type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(answer(retry).await, (201, first.clone(), true));
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 1);

    // Another body under a used key is refused and stores nothing.
    let other = json!({"features": features(&pool_rows[1]), "correct_label": pool_rows[1].label});
    let (status, error, _) = send_feedback(&app, "key-1", &other).await;
    assert_eq!(status, 409);
    assert_eq!(error["error"]["code"], "idempotency_key_reused", "{error}");
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 1);

    // A refused request records no key: the corrected retry goes through.
    let bad = json!({"features": [1.0], "correct_label": pool_rows[1].label});
    assert_eq!(send_feedback(&app, "key-2", &bad).await.0, 422);
    let (status, stored, replayed) = send_feedback(&app, "key-2", &other).await;
    assert_eq!((status, replayed), (201, false), "{stored}");
    assert_ne!(stored, first);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 2);

    // The key belongs to its endpoint: the same key on POST /runs is free.
    let run = app
        .client
        .post(app.url("/runs"))
        .bearer_auth(TOKEN)
        .header("idempotency-key", "key-1")
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 201);

    // Feedback without a key is never deduplicated.
    for _ in 0..2 {
        assert_eq!(app.post("/feedback", other.clone()).await.status(), 201);
    }
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 4);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn invalid_keys_are_refused(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let pool_rows = rows(&app.pool, Split::Pool).await;
    let body = json!({"features": features(&pool_rows[0]), "correct_label": pool_rows[0].label});
    let too_long = "k".repeat(201);
    let invalid: [&[u8]; 5] = [
        b"",
        too_long.as_bytes(),
        "cl\u{e9}".as_bytes(),
        b"tab\there",
        &[0x80, 0x81],
    ];
    for key in invalid {
        let response = app
            .client
            .post(app.url("/feedback"))
            .bearer_auth(&app.key)
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(key).unwrap(),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{key:?}");
        assert_eq!(error_code(response).await, "invalid_idempotency_key");
    }
    let twice = app
        .client
        .post(app.url("/runs"))
        .bearer_auth(TOKEN)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 422);
    assert_eq!(error_code(twice).await, "invalid_idempotency_key");
    // The longest key, all printable ASCII, is fine.
    let longest: String = (0..200).map(|i| char::from(b' ' + 1 + (i % 94) as u8)).collect();
    assert_eq!(send_feedback(&app, &longest, &body).await.0, 201);
    assert!(send_feedback(&app, &longest, &body).await.2, "replayed");
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 1);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 0);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn concurrent_retries_store_once(_: PgPoolOptions, connect: PgConnectOptions) {
    // Two replicas on one database: duplicates race inside one group commit
    // and across the replicas' transactions.
    let first = spawn(&connect, "api", &[]).await;
    let second = spawn(&connect, "api", &[]).await;
    let pool_rows = rows(&first.pool, Split::Pool).await;
    let body = |i: usize| json!({"features": features(&pool_rows[i]), "correct_label": pool_rows[i].label});

    let same = body(0);
    let sends = (0..10).map(|i| send_feedback(if i % 2 == 0 { &first } else { &second }, "same", &same));
    let answers = futures_util::future::join_all(sends).await;
    let ids: Vec<&Value> = answers.iter().map(|(_, body, _)| &body["feedback_id"]).collect();
    assert!(answers.iter().all(|(status, _, _)| *status == 201), "{answers:?}");
    assert!(ids.iter().all(|id| *id == ids[0] && id.is_i64()), "{answers:?}");
    assert_eq!(
        answers.iter().filter(|(_, _, replayed)| !replayed).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(count(&first.pool, "SELECT count(*) FROM feedback").await, 1);

    // Five keys, four copies each, some with another body, all at once.
    let sends = (0..20).map(|i| {
        let app = if i % 3 == 0 { &first } else { &second };
        let key = format!("key-{}", i % 5);
        let row = if i >= 15 { 10 + i } else { 1 + i % 5 };
        async move { (key.clone(), row, send_feedback(app, &key, &body(row)).await) }
    });
    let answers = futures_util::future::join_all(sends).await;
    assert_eq!(count(&first.pool, "SELECT count(*) FROM feedback").await, 6);
    for k in 0..5 {
        let key = format!("key-{k}");
        let stored: (i64, Vec<f64>, String) = sqlx::query_as(
            "SELECT f.id, f.features, f.correct_label FROM feedback f JOIN idempotency_keys k
             ON k.scope = 'POST /feedback' AND k.key = $1 AND (k.response_body->>'feedback_id')::bigint = f.id",
        )
        .bind(&key)
        .fetch_one(&first.pool)
        .await
        .unwrap();
        for (_, row, (status, answer, _)) in answers.iter().filter(|(k, _, _)| *k == key) {
            if (pool_rows[*row].input.features(), pool_rows[*row].label.as_str())
                == (Some(stored.1.as_slice()), stored.2.as_str())
            {
                assert_eq!(
                    (*status, answer["feedback_id"].as_i64()),
                    (201, Some(stored.0)),
                    "{key}"
                );
            } else {
                assert_eq!(*status, 409, "{key}: {answer}");
                assert_eq!(answer["error"]["code"], "idempotency_key_reused");
            }
        }
    }
    first.stop().await;
    second.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_retried_run_trigger_starts_nothing_new(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let trigger = |key: &'static str, reason: &'static str| {
        app.client
            .post(app.url("/runs"))
            .bearer_auth(TOKEN)
            .header("idempotency-key", key)
            .json(&json!({"reason": reason}))
            .send()
    };
    let answers = futures_util::future::join_all((0..10).map(|_| trigger("run-1", "new data"))).await;
    let mut answers = futures_util::future::join_all(answers.into_iter().map(|r| answer(r.unwrap()))).await;
    let (status, run, _) = answers[0].clone();
    assert_eq!(status, 201, "{run}");
    assert!(
        answers.iter().all(|(s, body, _)| *s == 201 && *body == run),
        "{answers:?}"
    );
    assert_eq!(answers.iter().filter(|(_, _, replayed)| !replayed).count(), 1);
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 1);

    // Cancelled, the run is no longer active: without a key a trigger would
    // start another, but the retry replays the first answer.
    let cancel = app
        .client
        .post(app.url(&format!("/runs/{id}/cancel")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    answers.push(answer(trigger("run-1", "new data").await.unwrap()).await);
    assert_eq!(answers.last().unwrap(), &(201, run.clone(), true));
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 1);

    let reused = trigger("run-1", "other reason").await.unwrap();
    assert_eq!(reused.status(), 409);
    assert_eq!(error_code(reused).await, "idempotency_key_reused");
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 1);

    let next = trigger("run-2", "new data").await.unwrap();
    assert_eq!(next.status(), 201);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 2);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn keys_expire_after_the_retention(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let pool_rows = rows(&app.pool, Split::Pool).await;
    let body = |i: usize| json!({"features": features(&pool_rows[i]), "correct_label": pool_rows[i].label});
    assert_eq!(send_feedback(&app, "old", &body(0)).await.0, 201);
    assert_eq!(send_feedback(&app, "fresh", &body(0)).await.0, 201);
    sqlx::query("UPDATE idempotency_keys SET created_at = created_at - interval '25 hours' WHERE key = 'old'")
        .execute(&app.pool)
        .await
        .unwrap();
    // An expired key is free again, for another body too.
    let (status, _, replayed) = send_feedback(&app, "old", &body(1)).await;
    assert_eq!((status, replayed), (201, false));
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 3);

    sqlx::query("UPDATE idempotency_keys SET created_at = created_at - interval '25 hours' WHERE key = 'fresh'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(retrain_api::idempotency::prune(&app.pool).await.unwrap(), 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, ["old"]);
    app.stop().await;
}

/// Case 8 of issue 10: the run and its key's answer commit in one
/// transaction. A failure between the run's creation and the key's record
/// (here a constraint that refuses the answer) leaves neither, and the
/// retry then creates the one run.
#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_run_and_its_key_commit_together_or_not_at_all(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let trigger = || {
        app.client
            .post(app.url("/runs"))
            .bearer_auth(TOKEN)
            .header("idempotency-key", "run-once")
            .json(&json!({"reason": "new data"}))
            .send()
    };
    sqlx::query(
        "ALTER TABLE idempotency_keys ADD CONSTRAINT test_refuses_answers CHECK (response_status IS NULL) NOT VALID",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let failed = trigger().await.unwrap();
    assert_eq!(failed.status(), 500);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM runs").await,
        0,
        "a run without its key"
    );
    assert_eq!(count(&app.pool, "SELECT count(*) FROM idempotency_keys").await, 0);

    sqlx::query("ALTER TABLE idempotency_keys DROP CONSTRAINT test_refuses_answers")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, run, replayed) = answer(trigger().await.unwrap()).await;
    assert_eq!((status, replayed), (201, false), "{run}");
    assert_eq!(answer(trigger().await.unwrap()).await, (201, run, true));
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 1);
    app.stop().await;
}

/// Case 8 of issue 10: a keyed trigger uses one pool connection. With one
/// connection left free in the service's pool it is answered, not left
/// waiting for a second.
#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_keyed_run_trigger_needs_one_database_connection(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn_on(service_pool(&connect, &["--db-pool", "2"]).await, "api", &[]).await;
    // Whatever the service holds (its promotion listener holds one), the
    // test takes the rest but one.
    let max = app.pool.options().get_max_connections();
    let mut held = Vec::new();
    while app.pool.size() - (app.pool.num_idle() as u32) < max - 1 {
        held.push(app.pool.acquire().await.unwrap());
    }
    let response = app
        .client
        .post(app.url("/runs"))
        .bearer_auth(TOKEN)
        .header("idempotency-key", "one-connection")
        .send()
        .await
        .unwrap();
    let (status, run, _) = answer(response).await;
    assert_eq!(status, 201, "{run}");
    drop(held);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 1);
    app.stop().await;
}
