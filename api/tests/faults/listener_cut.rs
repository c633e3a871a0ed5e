//! The promotion listener's connection terminated by the database
//! (`pg_terminate_backend`) while promotions happen, on two API replicas:
//! both serve the champion within 1 s of every promotion request, whether the
//! connection was cut just before the promotion, just after it, or while
//! it committed.

use crate::support::*;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::{Duration, Instant};

const ROUNDS: usize = 24;

/// Terminates every promotion listener of this database; returns how many.
async fn cut_listeners(pool: &PgPool) -> usize {
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND query LIKE 'LISTEN %retrain_model_promoted%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    cut.len()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn replicas_serve_the_champion_within_a_second_of_each_promotion_despite_cut_listeners(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let _machine = shared_machine().await;
    let url = database_url(&connect);
    let pool = pool(&connect).await;
    let replicas = [
        RETRAIN.start(Role::Api, &url, &[]).await,
        RETRAIN.start(Role::Api, &url, &[]).await,
    ];
    let versions = [1, another_model(&pool, 2).await, another_model(&pool, 4).await];
    let mut cuts = 0;
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let target = versions[(round + 1) % versions.len()];
        let path = format!("/models/wine-quality/versions/{target}/promote");
        let promote = || replicas[round % 2].admin_post(&path, json!({"reason": format!("round {round}")}));
        let promoted_at = match round % 3 {
            // Cut, then promote while the listeners reconnect.
            0 => {
                cuts += cut_listeners(&pool).await;
                let at = Instant::now();
                let response = promote().await;
                assert_eq!(response.status(), 200, "round {round}");
                at
            }
            // Promote, then cut before the notification may have been read.
            1 => {
                let at = Instant::now();
                let response = promote().await;
                assert_eq!(response.status(), 200, "round {round}");
                cuts += cut_listeners(&pool).await;
                at
            }
            // Cut while the promotion commits.
            _ => {
                let at = Instant::now();
                let (response, cut) = tokio::join!(promote(), cut_listeners(&pool));
                assert_eq!(response.status(), 200, "round {round}");
                cuts += cut;
                at
            }
        };
        for replica in &replicas {
            let deadline = promoted_at + Duration::from_secs(1);
            loop {
                if replica.served_version().await == target {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round}: replica {} still serves another version 1 s after promoting {target}:\n{}",
                    replica.base,
                    replica.log_tail(30)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        slowest = slowest.max(promoted_at.elapsed());
    }
    assert!(
        cuts >= ROUNDS,
        "listeners were really cut: {cuts} terminations in {ROUNDS} rounds"
    );
    eprintln!("{ROUNDS} promotions, {cuts} listener connections cut, both replicas caught up within {slowest:?}");
    for replica in &replicas {
        let metrics = replica.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("retrain_model_reloads_total{result=\"failure\"} 0\n"),
            "no reload failed:\n{metrics}"
        );
    }
    drop(replicas);
    pool.close().await;
}
