//! Hot swap: promotions reach every replica without failing a request, even
//! when the listener's connection is cut while a promotion commits.

use crate::support::*;
use retrain_steps::ml::Split;
use retrain_steps::store::{models, promotions};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn promotions_under_load_fail_no_request(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = Arc::new(spawn(&connect, "api", &[]).await);
    second_model(&app.pool).await;
    let input = json!({"features": features(&rows(&app.pool, Split::Golden).await[0])});
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (app, stop, input) = (app.clone(), stop.clone(), input.clone());
            tokio::spawn(async move {
                let (mut versions, mut failures) = (Vec::new(), 0);
                while !stop.load(Ordering::Relaxed) {
                    match app.client.post(app.url("/predict")).json(&input).send().await {
                        Ok(r) if r.status() == 200 => {
                            versions.push(r.json::<Value>().await.unwrap()["model_version"].as_i64().unwrap())
                        }
                        _ => failures += 1,
                    }
                }
                (versions, failures)
            })
        })
        .collect();

    for round in 0..6 {
        let target = if round % 2 == 0 { 2 } else { 1 };
        let promoted = app
            .admin_post(
                &format!("/models/{target}/promote"),
                json!({"reason": format!("round {round}")}),
            )
            .await;
        assert_eq!(promoted.status(), 200);
        // After the promotion, answers switch to the new version.
        let app_ref = &app;
        let input_ref = &input;
        eventually(5, "answers come from the promoted version", || async move {
            let r: Value = app_ref.post("/predict", input_ref.clone()).await.json().await.unwrap();
            r["model_version"] == target
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        let (versions, failures) = client.await.unwrap();
        assert_eq!(failures, 0, "no request failed during the swaps");
        assert!(versions.iter().all(|v| *v == 1 || *v == 2), "only champions answered");
        answered += versions.len();
    }
    assert!(answered > 100, "the load was real: {answered} answers");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("retrain_model_reloads_total{result=\"success\"} 7"),
        "{metrics}"
    );
    assert!(metrics.contains("retrain_swap_lag_seconds_count 6"), "{metrics}");
    Arc::try_unwrap(app).ok().unwrap().stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_promotion_while_the_listener_is_cut_is_caught_up(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    second_model(&app.pool).await;
    let terminated: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN %retrain_model_promoted%'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(terminated.len(), 1, "one promotion listener");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(terminated[0])
        .execute(&app.pool)
        .await
        .unwrap();
    // Promote at once, while the listener is (probably) still away.
    let mut conn = app.pool.acquire().await.unwrap();
    let v2 = models::by_version(&mut conn, 2).await.unwrap();
    promotions::promote(
        &app.pool,
        promotions::PromotionRequest {
            model_id: v2.id,
            kind: promotions::PromotionKind::Manual,
            actor: "test",
            reason: "while the listener is cut",
            by_run: None,
        },
    )
    .await
    .unwrap();
    eventually(5, "the replica catches up", || async {
        app.served_version().await == 2
    })
    .await;
    // And it listens again: the next promotion arrives by notification.
    let rollback = app.admin_post("/models/1/promote", json!({"reason": "back"})).await;
    assert_eq!(rollback.status(), 200);
    eventually(5, "the replica follows again", || async {
        app.served_version().await == 1
    })
    .await;
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn two_replicas_both_follow_one_promotion(_: PgPoolOptions, connect: PgConnectOptions) {
    let first = spawn(&connect, "api", &[]).await;
    let second = spawn(&connect, "api", &[]).await;
    second_model(&first.pool).await;
    let promoted = first.admin_post("/models/2/promote", json!({"reason": "both"})).await;
    assert_eq!(promoted.status(), 200);
    eventually(5, "the first replica serves v2", || async {
        first.served_version().await == 2
    })
    .await;
    eventually(5, "the second replica serves v2", || async {
        second.served_version().await == 2
    })
    .await;
    first.stop().await;
    second.stop().await;
}
