//! Hot swap: promotions reach every replica without failing a request, even
//! when the listener's connection is cut while a promotion commits, and a
//! champion that fails to load is retried until it is served.

use crate::support::*;
use retrain_steps::ml::Split;
use retrain_steps::store::{models, promotions, versions};
use serde_json::{Value, json};
use sqlx::Connection;
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
                &format!("/models/wine-quality/versions/{target}/promote"),
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

/// The promotion listeners' backends of this database.
async fn listener_backends(conn: &mut sqlx::PgConnection) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND query LIKE 'LISTEN %retrain_model_promoted%'",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_promotion_while_the_listener_is_cut_is_caught_up(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    second_model(&app.pool).await;
    // A connection to promote with once the database takes no new ones.
    let outside = pool(&connect).await;
    sqlx::query("SELECT 1").execute(&outside).await.unwrap();
    // Keep the listener from reconnecting until we let it: take every other
    // connection of the service's pool, and refuse new connections to the
    // database (set from another database: not allowed on the current one).
    let size = app.pool.options().get_max_connections() as usize;
    let mut held = Vec::new();
    while held.len() < size - 1 {
        held.push(app.pool.acquire().await.unwrap());
    }
    let database = connect.get_database().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect_with(&connect.clone().database("postgres"))
        .await
        .unwrap();
    let allow = |allowed: bool| format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allowed}");
    sqlx::query(&allow(false)).execute(&mut admin).await.unwrap();
    let listeners = listener_backends(&mut held[0]).await;
    assert_eq!(listeners.len(), 1, "one promotion listener");
    let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(listeners[0])
        .fetch_one(&mut *held[0])
        .await
        .unwrap();
    assert!(cut, "the listener's backend ended");

    let wine = models::by_name(&mut held[0], retrain_steps::pipeline::FIRST_MODEL)
        .await
        .unwrap();
    let v2 = versions::by_version(&mut held[0], wine.id, 2).await.unwrap();
    promotions::promote(
        &outside,
        promotions::PromotionRequest {
            version_id: v2.id,
            kind: promotions::PromotionKind::Manual,
            actor: "test",
            reason: "while the listener is cut",
            by_run: None,
        },
    )
    .await
    .unwrap();
    assert!(
        listener_backends(&mut held[0]).await.is_empty(),
        "the promotion committed while no listener was connected: its notification is lost"
    );
    assert_eq!(app.served_version().await, 1);

    sqlx::query(&allow(true)).execute(&mut admin).await.unwrap();
    drop(held);
    eventually(15, "the replica catches up", || async {
        app.served_version().await == 2
    })
    .await;
    // And it listens again: the next promotion arrives by notification.
    let rollback = app
        .admin_post("/models/wine-quality/versions/1/promote", json!({"reason": "back"}))
        .await;
    assert_eq!(rollback.status(), 200);
    eventually(5, "the replica follows again", || async {
        app.served_version().await == 1
    })
    .await;
    outside.close().await;
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_failed_champion_load_is_retried_until_served_and_ready_says_why(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // A bound of 300 ms for this test (10 s by default).
    let app = spawn(&connect, "api", &["--stale-after-ms", "300"]).await;
    second_model(&app.pool).await;
    let artifact: Vec<u8> = sqlx::query_scalar("SELECT artifact FROM versions WHERE version = 2")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // Make version 2's artifact unreadable for now (it fails its sha256).
    set_artifact(&app.pool, 2, b"not a model").await;
    let promoted = app
        .admin_post("/models/wine-quality/versions/2/promote", json!({"reason": "v2"}))
        .await;
    assert_eq!(promoted.status(), 200);

    eventually(10, "/ready says the replica is behind, and why", || async {
        let response = app.get("/ready").await;
        if response.status() != 503 {
            return false;
        }
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap().to_owned();
        message.contains("wine-quality serves version 1, behind its champion") && message.contains("sha256")
    })
    .await;
    assert_eq!(app.served_version().await, 1, "the old model keeps serving");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("retrain_served_behind_champion 1\n"), "{metrics}");

    // The artifact is readable again; no promotion, so no notification.
    set_artifact(&app.pool, 2, &artifact).await;
    eventually(
        10,
        "the replica serves the champion without another notification",
        || async { app.served_version().await == 2 },
    )
    .await;
    assert_eq!(count(&app.pool, "SELECT count(*) FROM promotions").await, 2);
    assert_eq!(app.get("/ready").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("retrain_served_behind_champion 0\n"), "{metrics}");
    assert!(
        !metrics.contains("retrain_model_reloads_total{result=\"failure\"} 0\n"),
        "the failed loads are counted: {metrics}"
    );
    app.stop().await;
}

/// Rewrites a stored artifact, past the trigger that keeps models immutable
/// (a superuser's replication role skips triggers), to stand for storage
/// that cannot be read for a while.
async fn set_artifact(pool: &sqlx::PgPool, version: i32, bytes: &[u8]) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE versions SET artifact = $1 WHERE version = $2")
        .bind(bytes)
        .bind(version)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn two_replicas_both_follow_one_promotion(_: PgPoolOptions, connect: PgConnectOptions) {
    let first = spawn(&connect, "api", &[]).await;
    let second = spawn(&connect, "api", &[]).await;
    second_model(&first.pool).await;
    let promoted = first
        .admin_post("/models/wine-quality/versions/2/promote", json!({"reason": "both"}))
        .await;
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

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn listeners_hold_sessions_of_their_own_on_the_listen_url(_: PgPoolOptions, connect: PgConnectOptions) {
    // RETRAIN_LISTEN_URL: a direct session for LISTEN (PgBouncer in
    // transaction mode breaks it on pooled connections). Named, to be found.
    let listen = format!(
        "{}?application_name=retrain-listen",
        retrain_testkit::db::url_of(&connect)
    );
    let app = spawn(&connect, "all", &["--listen-url", &listen]).await;
    eventually(
        10,
        "the promotion and queued-run listeners on the listen URL",
        || async {
            count(
                &app.pool,
                "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'retrain-listen' AND datname = current_database()",
            )
            .await
                == 2
        },
    )
    .await;
    // Promotions still reach the replica through it, and queued runs the worker.
    second_model(&app.pool).await;
    let promoted = app
        .admin_post("/models/wine-quality/versions/2/promote", json!({"reason": "v2"}))
        .await;
    assert_eq!(promoted.status(), 200);
    eventually(5, "version 2 serves", || async { app.served_version().await == 2 }).await;
    let run: Value = app.admin_post("/runs", json!({})).await.json().await.unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    eventually(10, "the worker took the run", || async {
        app.json(&format!("/runs/{id}")).await["status"] != "queued"
    })
    .await;
    app.stop().await;
}
