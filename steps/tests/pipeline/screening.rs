//! Screening in merge on a real database: a label-flipping source is
//! quarantined by the pipeline itself, with its evidence and run, and its
//! rows stay out of the run's training set while an honest source's train.

use crate::support::*;
use retrain_engine::RunStatus;
use retrain_steps::ml::Split;
use retrain_steps::pipeline;
use retrain_steps::trainset;
use serde_json::Value;
use sqlx::PgPool;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_label_flipping_source_is_quarantined_by_screening_and_an_honest_one_trains(pool: PgPool) {
    let env = bootstrapped(&pool).await;
    let engine = engine_for(&pool, pipeline(env));
    let poisoned = poison(&pool, 100).await;
    send_feedback(&pool, &poisoned, "attacker").await;
    let honest = split_rows(&pool, Split::Pool).await[..100].to_vec();
    send_feedback(&pool, &honest, "users").await;

    let run = finish(&worker(&engine), &engine, trigger(&engine).await.id).await;
    assert!(
        matches!(run.status, RunStatus::Succeeded | RunStatus::Rejected),
        "{:?}",
        run.outcome
    );

    // The pipeline's own audited rule, with the run and the evidence.
    let rules: Vec<(Option<String>, String, Option<uuid::Uuid>, Value, String)> =
        sqlx::query_as("SELECT source, actor, run_id, evidence, reason FROM feedback_quarantines ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    let (source, actor, run_id, evidence, reason) = &rules[0];
    assert_eq!(source.as_deref(), Some("attacker"));
    assert_eq!(actor, "screening");
    assert_eq!(*run_id, Some(run.id));
    let sent = evidence["source"]["rows_sent"].as_u64().unwrap();
    let flagged = evidence["source"]["rows_flagged"].as_u64().unwrap();
    assert!(sent > 0 && flagged > 0 && flagged <= sent, "{evidence}");
    assert!(evidence["reference_share"].as_f64().unwrap() < evidence["source"]["flagged_share"].as_f64().unwrap());
    assert!(reason.starts_with("screening: "), "{reason}");

    // The merge output reports both sources; only the attacker is quarantined.
    let merge: Value = sqlx::query_scalar("SELECT output FROM steps WHERE run_id = $1 AND name = 'merge'")
        .bind(run.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let sources = &merge["lineage"]["screening"]["sources"];
    assert!(sources["attacker"]["quarantined_because"].is_string(), "{merge}");
    assert!(sources["users"]["quarantined_because"].is_null(), "{merge}");
    assert_eq!(merge["lineage"]["dropped"]["quarantined"], 100, "{merge}");

    // The rows that trained: the rebuilt set (checked against its hash).
    let set_id: i64 = merge["training_set_id"].as_i64().unwrap();
    let set = trainset::rebuild_recorded(&mut pool.acquire().await.unwrap(), set_id, trainset::Keep::Training)
        .await
        .unwrap();
    let examples = set.table.to_examples();
    assert_eq!(poisoned.iter().filter(|e| examples.contains(e)).count(), 0);
    // Feedback rows come after the base rows: every one is the honest source's.
    let feedback_part = &examples[set.lineage.base_rows..];
    assert!(feedback_part.iter().all(|e| honest.contains(e)));
    assert!(feedback_part.len() > 50, "{} honest rows trained", feedback_part.len());
}
