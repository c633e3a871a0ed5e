//! The audit queries of docs/audit.md, run against a database with a
//! promoted, a skipped and a rejected run, answer correctly.

use crate::support::*;
use retrain_engine::{RunStatus, StepStatus};
use retrain_steps::ml::Split;
use retrain_steps::pipeline;
use retrain_steps::pipeline::FIRST_MODEL;
use retrain_steps::store::feedback::{self, NewFeedback};
use sqlx::PgPool;
use sqlx::Row;
use uuid::Uuid;

/// The SQL blocks of docs/audit.md, with psql variables bound by name.
fn documented_queries() -> Vec<String> {
    let doc = include_str!("../../../docs/audit.md");
    doc.split("```sql")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim().to_owned())
        .collect()
}

fn bind(sql: &str, run_id: Uuid, version: i32) -> String {
    sql.replace(":'run_id'", &format!("'{run_id}'"))
        .replace(":version", &version.to_string())
        .replace(":'moment'", "now()")
        .replace(":'model'", &format!("'{FIRST_MODEL}'"))
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_documented_audit_queries_answer_correctly(pool: PgPool) {
    // The gate must see the poison to give the audit a rejected run.
    let env = screening_off(bootstrapped(&pool).await);
    let engine = engine_for(&pool, pipeline(env));
    let worker = worker(&engine);
    let traffic = split_rows(&pool, Split::Pool).await;

    send_feedback(&pool, &traffic[..25], "users").await;
    let promoted = finish(&worker, &engine, trigger(&engine).await.id).await;
    assert_eq!(promoted.status, RunStatus::Succeeded);
    send_feedback(&pool, &traffic[25..30], "users").await;
    let skipped = finish(&worker, &engine, trigger(&engine).await.id).await;
    assert_eq!(skipped.status, RunStatus::Skipped);
    send_feedback(&pool, &poison(&pool, 400).await, "attacker").await;
    let rejected = finish(&worker, &engine, trigger(&engine).await.id).await;
    assert_eq!(rejected.status, RunStatus::Rejected);

    // Feedback citing a prediction that was never logged: unlinked.
    let cited = split_rows(&pool, Split::Pool).await[40].clone();
    let unlinked = NewFeedback {
        model_id: wine_id(&pool).await,
        input: cited.input.clone(),
        correct_label: cited.label.clone(),
        prediction_id: Some(Uuid::new_v4()),
        predicted_label: None,
        model_version: None,
        source: Some("users".to_owned()),
        sub_label: None,
    };
    feedback::insert_many(&mut *pool.acquire().await.unwrap(), &[unlinked])
        .await
        .unwrap();

    let queries = documented_queries();
    assert_eq!(queries.len(), 7, "docs/audit.md changed: update this test");

    // Timeline of the promoted run: five steps in order, all succeeded once.
    let rows = sqlx::query(&bind(&queries[0], promoted.id, 2))
        .fetch_all(&pool)
        .await
        .unwrap();
    let steps: Vec<(String, StepStatus, i32)> = rows
        .iter()
        .map(|r| (r.get("step"), r.get::<StepStatus, _>("step_status"), r.get("attempts")))
        .collect();
    let expected: Vec<(String, StepStatus, i32)> = ["collect", "merge", "train", "validate", "promote"]
        .iter()
        .map(|s| (s.to_string(), StepStatus::Succeeded, 1))
        .collect();
    assert_eq!(steps, expected);
    assert!(rows.iter().all(|r| r.get::<Option<i64>, _>("duration_ms").is_some()));

    // Why rejected: the reason, both versions and the failed checks.
    let row = sqlx::query(&bind(&queries[1], rejected.id, 0))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<i32, _>("candidate_version"), 3);
    assert_eq!(row.get::<i32, _>("champion_version"), 2);
    assert!(row.get::<f64, _>("candidate_accuracy") < row.get::<f64, _>("champion_accuracy"));
    let failed: serde_json::Value = row.get("failed_checks");
    assert!(!failed.as_array().unwrap().is_empty());
    assert_eq!(
        row.get::<String, _>("reason"),
        rejected.outcome.as_ref().unwrap()["reason"]
    );

    // Why skipped: 5 new rows against a threshold of 20.
    let row = sqlx::query(&bind(&queries[2], skipped.id, 0))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((row.get::<i64, _>("new_rows"), row.get::<i64, _>("threshold")), (5, 20));

    // What trained version 2: the base split plus feedback 1..=25.
    let row = sqlx::query(&bind(&queries[3], promoted.id, 2))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        (row.get::<i64, _>("feedback_from"), row.get::<i64, _>("feedback_to")),
        (1, 25)
    );
    assert_eq!(row.get::<i32, _>("feedback_rows"), trained_inputs(&traffic[..25]));
    assert_eq!(row.get::<Uuid, _>("run_id"), promoted.id);
    assert!(row.get::<bool, _>("gate_passed"));

    // Promotion history: bootstrap v1, then the pipeline's v2.
    let rows = sqlx::query(&bind(&queries[4], promoted.id, 2))
        .fetch_all(&pool)
        .await
        .unwrap();
    let history: Vec<(Option<i32>, i32, String)> = rows
        .iter()
        .map(|r| (r.get("from_version"), r.get("to_version"), r.get("actor")))
        .collect();
    assert_eq!(
        history,
        vec![(Some(1), 2, "pipeline".to_owned()), (None, 1, "bootstrap".to_owned())]
    );

    // Serving now: version 2 (the rejected candidate never served).
    let serving: i32 = sqlx::query_scalar(&bind(&queries[5], promoted.id, 0))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(serving, 2);

    // Feedback links per model: the one row citing a prediction, unlinked.
    let rows = sqlx::query(&queries[6]).fetch_all(&pool).await.unwrap();
    let links: Vec<(String, i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get("model"), r.get("linked"), r.get("unlinked"), r.get("mismatch")))
        .collect();
    assert_eq!(links, vec![(FIRST_MODEL.to_owned(), 0, 1, 0)]);
}
