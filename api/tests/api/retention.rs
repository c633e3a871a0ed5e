//! Retention of the prediction log: the worker drops the day partitions older
//! than the setting and nothing else; feedback citing a pruned prediction is
//! still stored; a prediction of a day with no partition yet is kept and
//! later moved into its day.

use crate::support::*;
use chrono::{Days, Duration, NaiveDate, Utc};
use retrain_api::metrics::Metrics;
use retrain_api::predlog::{LoggedPrediction, PredictionLog};
use retrain_api::retention::{self, Maintained, Retention};
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn partition(day: NaiveDate) -> String {
    format!("predictions_p{}", day.format("%Y%m%d"))
}

async fn exists(pool: &PgPool, table: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The rows of the tables that are the audit, which retention never touches.
async fn audit(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT ARRAY[(SELECT count(*) FROM runs), (SELECT count(*) FROM run_events),
                      (SELECT count(*) FROM versions), (SELECT count(*) FROM promotions),
                      (SELECT count(*) FROM feedback), (SELECT count(*) FROM feedback_quarantines)]",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_worker_drops_expired_days_and_feedback_citing_them_still_stores(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // An API replica bootstraps the model and never drops anything.
    let api = spawn(&connect, "api", &[]).await;
    let example = rows(&api.pool, Split::Pool).await.remove(0);
    let [expired, kept, fresh] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    sqlx::query(
        "INSERT INTO predictions (id, model_id, model_version, features, label, confidence, predicted_at)
         SELECT p.id, m.id, 1, $4, '6', 0.5, now() - p.age
         FROM models m, (VALUES ($1::uuid, interval '40 days'), ($2, interval '10 days'), ($3, interval '0')) p(id, age)
         WHERE m.name = 'wine-quality'",
    )
    .bind(expired)
    .bind(kept)
    .bind(fresh)
    .bind(example.input.features())
    .execute(&api.pool)
    .await
    .unwrap();
    let audit_before = audit(&api.pool).await;
    api.stop().await;

    // A worker keeps 30 days; it maintains the partitions at start.
    let app = spawn(&connect, "all", &["--prediction-retention-days", "30"]).await;
    let today = Utc::now().date_naive();
    assert!(
        !exists(&app.pool, &partition(today - Days::new(40))).await,
        "40 days old: dropped"
    );
    assert!(
        exists(&app.pool, &partition(today - Days::new(10))).await,
        "10 days old: kept"
    );
    assert!(exists(&app.pool, &partition(today)).await);
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM predictions ORDER BY predicted_at")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, vec![kept, fresh]);
    assert_eq!(
        audit(&app.pool).await,
        audit_before,
        "runs, events, versions, promotions, feedback kept"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("retrain_prediction_partitions_dropped_total 1\n"),
        "{metrics}"
    );

    // Feedback citing the pruned prediction is stored, unlinked, as for a
    // prediction not logged; one citing a kept prediction links to it.
    for (cited, link) in [(expired, "unlinked"), (kept, "linked")] {
        let response = app
            .post(
                "/feedback",
                json!({"features": features(&example), "correct_label": "5", "prediction_id": cited}),
            )
            .await;
        assert_eq!(response.status(), 201, "citing {cited}");
        let id = response.json::<Value>().await.unwrap()["feedback_id"].as_i64().unwrap();
        let stored: (Option<Uuid>, String) =
            sqlx::query_as("SELECT prediction_id, link FROM feedback_links WHERE feedback_id = $1")
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(stored, (Some(cited), link.to_owned()));
    }
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_prediction_of_a_day_without_its_partition_is_kept_and_moved_into_it_later(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = spawn(&connect, "api", &[]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let model_id: i32 = sqlx::query_scalar("SELECT id FROM models WHERE name = 'wine-quality'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let (log, writer) = PredictionLog::start(app.pool.clone(), metrics.clone(), 16, stop.clone());
    let now = Utc::now();
    let log_one = |age: Duration| {
        let id = Uuid::new_v4();
        log.record(LoggedPrediction {
            id,
            model_id,
            model_version: 1,
            input: example.input.clone(),
            label: "6".into(),
            confidence: 0.5,
            at: now - age,
        });
        id
    };
    // Days far ahead of and behind the partitions made so far.
    let ahead = log_one(Duration::days(-20));
    let behind = log_one(Duration::days(100));
    log.flush().await;
    assert_eq!(metrics.prediction_log_written.get(), 2, "both written");
    let home = async |id: Uuid| -> String {
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM predictions WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert_eq!(home(ahead).await, "predictions_default");
    assert_eq!(home(behind).await, "predictions_default");

    // Kept with retention off: both days get their partitions, rows moved.
    let today = now.date_naive();
    let done = retention::maintain(&app.pool, Retention::Off, today).await.unwrap();
    let ahead_day = partition((now + Duration::days(20)).date_naive());
    let behind_day = partition((now - Duration::days(100)).date_naive());
    assert_eq!(
        done,
        Maintained {
            created: vec![behind_day.clone(), ahead_day.clone()],
            dropped: vec![],
        }
    );
    assert_eq!(home(ahead).await, ahead_day);
    assert_eq!(home(behind).await, behind_day);

    // With 30 days, the day 100 days back goes, and only it.
    let done = retention::maintain(&app.pool, Retention::Days(30), today)
        .await
        .unwrap();
    assert_eq!(done.dropped, vec![behind_day]);
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM predictions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, vec![ahead]);
    stop.cancel();
    writer.await.unwrap();
    app.stop().await;
}
