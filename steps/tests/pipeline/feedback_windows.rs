//! Issue 10, cases 5 and 9: which feedback counts and which feedback trains.
//! Quarantined rows neither trigger a run nor count in the backlog; every
//! row is counted in exactly one collect window even when ids commit out of
//! order; and train fits exactly the set merge recorded.

use crate::support::*;
use retrain_engine::RunStatus;
use retrain_steps::ml::{Example, Split};
use retrain_steps::pipeline;
use retrain_steps::store::feedback::{self, NewFeedback, NewQuarantine, quarantine};
use retrain_steps::triggers::check_threshold;
use sqlx::PgPool;
use std::time::{Duration, Instant};

async fn quarantine_source(pool: &PgPool, source: &str) {
    let model_id = wine_id(pool).await;
    let mut conn = pool.acquire().await.unwrap();
    quarantine(
        &mut conn,
        &NewQuarantine {
            model_id,
            source: Some(source.into()),
            received_from: None,
            received_until: None,
            reason: "spam".into(),
            actor: "ops".into(),
            run_id: None,
            evidence: None,
        },
    )
    .await
    .unwrap();
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn quarantined_feedback_neither_triggers_a_run_nor_counts_as_waiting(pool: PgPool) {
    let env = bootstrapped(&pool).await;
    let engine = engine_for(&pool, pipeline(env));
    let wine = wine_model(&pool).await;
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..30], "spammer").await;
    quarantine_source(&pool, "spammer").await;
    send_feedback(&pool, &traffic[30..40], "users").await;

    // The threshold check and the backlog gauge's function agree: 10 wait.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(feedback::waiting(&mut conn, wine.id).await.unwrap(), 10);
    let sql = format!("SELECT feedback_waiting({})", wine.id);
    assert_eq!(count(&pool, &sql).await, 10);
    assert!(check_threshold(&engine, &wine, 20).await.unwrap().is_none());
    // So does collect: an operator's run finds 10 new rows and skips.
    let run = finish(&worker(&engine), &engine, trigger(&engine).await.id).await;
    assert_eq!(run.status, RunStatus::Skipped, "{:?}", run.outcome);
    assert_eq!(run.outcome.unwrap()["detail"]["new_rows"], 10);

    // Ten more real rows reach the threshold; merge drops the same 30.
    send_feedback(&pool, &traffic[40..50], "users").await;
    let created = check_threshold(&engine, &wine, 20).await.unwrap().expect("a run");
    assert_eq!(created.run().params["waiting_feedback"], 20);
    let run = finish(&worker(&engine), &engine, created.run().id).await;
    let (new_rows, quarantined): (i64, i64) = sqlx::query_as(
        "SELECT c.new_rows, (ts.dropped->>'quarantined')::bigint
         FROM collections c JOIN training_sets ts ON ts.run_id = c.run_id WHERE c.run_id = $1",
    )
    .bind(run.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((new_rows, quarantined), (20, 30));
}

fn as_feedback(model_id: i32, rows: &[Example]) -> Vec<NewFeedback> {
    rows.iter()
        .map(|e| NewFeedback {
            model_id,
            input: e.input.clone(),
            correct_label: e.label.clone(),
            prediction_id: None,
            predicted_label: None,
            model_version: None,
            source: Some("users".into()),
            sub_label: None,
        })
        .collect()
}

/// Whether a session of this database waits for an advisory lock.
async fn someone_waits_for_an_advisory_lock(pool: &PgPool) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks
                        WHERE locktype = 'advisory' AND NOT granted
                          AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_lower_feedback_id_committing_after_a_higher_one_is_counted_in_exactly_one_window(pool: PgPool) {
    let env = bootstrapped(&pool).await;
    let engine = engine_for(&pool, pipeline(env));
    let worker = worker(&engine);
    let traffic = split_rows(&pool, Split::Pool).await;
    // A feedback insert draws its id and has not committed yet ...
    let mut late = pool.begin().await.unwrap();
    let late_id = feedback::insert_many(&mut late, &as_feedback(wine_id(&pool).await, &traffic[..1]))
        .await
        .unwrap()[0];
    // ... while 25 rows with higher ids commit on other connections.
    let later_ids = send_feedback(&pool, &traffic[1..26], "users").await;
    assert!(later_ids.iter().all(|id| *id > late_id));

    let run = trigger(&engine).await;
    let collecting = tokio::spawn({
        let worker = worker.clone();
        async move { worker.tick().await.unwrap() }
    });
    // Collect either finished already or waits for the insert in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !collecting.is_finished() && !someone_waits_for_an_advisory_lock(&pool).await {
        assert!(Instant::now() < deadline, "collect neither finished nor waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    late.commit().await.unwrap();
    collecting.await.unwrap();

    let (watermark, new_rows): (i64, i64) =
        sqlx::query_as("SELECT watermark, new_rows FROM collections WHERE run_id = $1")
            .bind(run.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    // The late row is at or below the watermark, so no later window counts
    // it: this window must have.
    assert!(watermark >= late_id);
    assert_eq!(new_rows, 26, "the late row was counted in no window");
    // And it trains with this run: the recorded set holds all 26 rows.
    let run = finish(&worker, &engine, run.id).await;
    let (feedback_from, feedback_to): (i64, i64) =
        sqlx::query_as("SELECT feedback_from, feedback_to FROM training_sets WHERE run_id = $1")
            .bind(run.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((feedback_from, feedback_to), (late_id, watermark));
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_quarantine_between_merge_and_train_does_not_change_what_trains(pool: PgPool) {
    let env = lenient(&pool).await;
    let engine = engine_for(&pool, pipeline(env));
    let worker = worker(&engine);
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..25], "users").await;
    send_feedback(&pool, &poison(&pool, 100).await, "attacker").await;
    let run = trigger(&engine).await;
    run_steps(&worker, &["collect", "merge"]).await;
    quarantine_source(&pool, "attacker").await;
    run_steps(&worker, &["train"]).await;

    // The model saw every row of the recorded set, attacker's included: the
    // quarantine applies from the next merge on, not to a recorded set.
    let (trained_rows, recorded_rows): (i64, i64) = sqlx::query_as(
        "SELECT (m.training_metrics->>'rows')::bigint, ts.total_rows::bigint
         FROM versions m JOIN training_sets ts ON ts.id = m.training_set_id WHERE m.run_id = $1",
    )
    .bind(run.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(trained_rows, recorded_rows);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn train_refuses_a_set_whose_rows_no_longer_match_the_recorded_hash(pool: PgPool) {
    let env = bootstrapped(&pool).await;
    let engine = engine_for(&pool, pipeline(env));
    let worker = worker(&engine);
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..25], "users").await;
    let run = trigger(&engine).await;
    run_steps(&worker, &["collect", "merge"]).await;
    let recorded: String = sqlx::query_scalar("SELECT content_sha256 FROM training_sets WHERE run_id = $1")
        .bind(run.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let forged = "0".repeat(64);
    sqlx::query("UPDATE training_sets SET content_sha256 = $2 WHERE run_id = $1")
        .bind(run.id)
        .bind(&forged)
        .execute(&pool)
        .await
        .unwrap();

    let run = finish(&worker, &engine, run.id).await;
    assert_eq!(run.status, RunStatus::Failed, "{:?}", run.outcome);
    let error = run.outcome.unwrap()["error"].as_str().unwrap().to_owned();
    assert!(error.contains(&forged) && error.contains(&recorded), "{error}");
    assert_eq!(count(&pool, "SELECT count(*) FROM versions").await, 1);
}
