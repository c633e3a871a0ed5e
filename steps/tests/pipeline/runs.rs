//! Retrain runs end to end on the real pipeline: promoted, skipped, rejected,
//! and retried without training or promoting twice.

use crate::support::*;
use async_trait::async_trait;
use retrain_engine::{RunStatus, Step, StepContext, StepError, StepOutcome};
use retrain_steps::ml::Split;
use retrain_steps::store::promotions;
use retrain_steps::{pipeline, pipeline_wrapping};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn enough_true_feedback_trains_validates_and_promotes_version_2(pool: PgPool) {
    // Exact lineage counts: screening would leave out the flagged rows too
    // (pipeline::screening covers that).
    let env = screening_off(bootstrapped(&pool).await);
    let engine = engine_for(&pool, pipeline(env));
    let traffic = split_rows(&pool, Split::Pool).await;
    let ids = send_feedback(&pool, &traffic[..25], "users").await;

    let run = trigger(&engine).await;
    let run = finish(&worker(&engine), &engine, run.id).await;
    assert_status(&run, RunStatus::Succeeded);

    let mut conn = pool.acquire().await.unwrap();
    let wine = wine_id(&pool).await;
    assert_eq!(
        promotions::champion(&mut conn, wine).await.unwrap().map(|(_, v)| v),
        Some(2)
    );
    // Lineage: the run's training set holds the base rows and the 25
    // feedback rows but those held out as the recent set.
    let (from, to, feedback_rows, total, base): (i64, i64, i32, i32, i32) = sqlx::query_as(
        "SELECT ts.feedback_from, ts.feedback_to, ts.feedback_rows, ts.total_rows, ts.base_rows
         FROM versions m JOIN training_sets ts ON ts.id = m.training_set_id WHERE m.run_id = $1",
    )
    .bind(run.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((from, to), (ids[0], ids[24]));
    // The pool holds some identical wines: a later row supersedes an earlier one.
    let distinct = trained_inputs(&traffic[..25]);
    assert_eq!(feedback_rows, distinct);
    assert_eq!(total, base + distinct);
    assert_eq!(base as usize, split_rows(&pool, Split::Base).await.len());
    // Evaluation: both models measured on the whole golden set, gate passed
    // on a bound no lower than the margin allows.
    let golden = split_rows(&pool, Split::Golden).await.len() as i32;
    let evaluations: Vec<(String, i32, f64)> = sqlx::query_as(
        "SELECT role::text, n, accuracy FROM evaluations WHERE run_id = $1 AND eval_set = 'golden' ORDER BY role",
    )
    .bind(run.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(evaluations.len(), 2);
    assert!(evaluations.iter().all(|(_, n, _)| *n == golden));
    let (passed, bound, margin): (bool, f64, f64) =
        sqlx::query_as("SELECT passed, golden_lower_bound, margin FROM validations WHERE run_id = $1")
            .bind(run.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(passed);
    assert!(
        bound >= -margin,
        "promoted only if not worse beyond the margin: {bound} vs {margin}"
    );
    // The promotion is audited in the run's history, in the promote step.
    let detail = engine.get_run(run.id).await.unwrap();
    assert!(detail.events.iter().any(
        |e| e.step.as_deref() == Some("promote") && e.reason.as_deref() == Some("promoted version 2 (previous 1)")
    ));
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn too_little_feedback_skips_the_run_without_training(pool: PgPool) {
    let env = bootstrapped(&pool).await;
    let engine = engine_for(&pool, pipeline(env));
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..10], "users").await;

    let run = trigger(&engine).await;
    let run = finish(&worker(&engine), &engine, run.id).await;
    assert_status(&run, RunStatus::Skipped);
    let outcome = run.outcome.unwrap();
    assert_eq!(outcome["detail"]["new_rows"], 10);
    assert_eq!(outcome["detail"]["threshold"], 20);
    assert!(outcome["reason"].as_str().unwrap().contains("the threshold is 20"));
    assert_eq!(count(&pool, "SELECT count(*) FROM versions").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM training_sets WHERE run_id IS NOT NULL").await,
        0
    );

    // The skipped run did not consume the feedback: 10 more make 20 waiting.
    send_feedback(&pool, &traffic[10..20], "users").await;
    let run = trigger(&engine).await;
    let run = finish(&worker(&engine), &engine, run.id).await;
    let collected: i64 = sqlx::query_scalar("SELECT new_rows FROM collections WHERE run_id = $1")
        .bind(run.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(collected, 20);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn label_flipped_feedback_is_rejected_by_the_gate(pool: PgPool) {
    // The gate alone: screening would quarantine the attacker before it.
    let env = screening_off(bootstrapped(&pool).await);
    let engine = engine_for(&pool, pipeline(env));
    let poisoned = poison(&pool, 400).await;
    send_feedback(&pool, &poisoned, "attacker").await;

    let run = trigger(&engine).await;
    let run = finish(&worker(&engine), &engine, run.id).await;
    assert_status(&run, RunStatus::Rejected);

    let mut conn = pool.acquire().await.unwrap();
    let wine = wine_id(&pool).await;
    assert_eq!(
        promotions::champion(&mut conn, wine).await.unwrap().map(|(_, v)| v),
        Some(1)
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM promotions").await, 1);
    let reason = run.outcome.unwrap()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("accuracy"), "{reason}");
    let (passed, failed_checks): (bool, i64) = sqlx::query_as(
        "SELECT passed, (SELECT count(*) FROM jsonb_array_elements(checks) c WHERE NOT (c->>'passed')::bool)
         FROM validations WHERE run_id = $1",
    )
    .bind(run.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!passed);
    assert!(failed_checks >= 1);
    // The candidate was stored (it is evidence) but never served.
    assert_eq!(count(&pool, "SELECT count(*) FROM versions").await, 2);
}

/// Runs the real step, then reports a transient failure once: as if the
/// worker lost its connection after the work and before the engine's commit.
struct LoseFirstCommit {
    inner: Arc<dyn Step>,
    lost: AtomicBool,
}

#[async_trait]
impl Step for LoseFirstCommit {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let outcome = self.inner.run(ctx).await?;
        if !self.lost.swap(true, Ordering::SeqCst) {
            return Err(StepError::retryable("connection reset before commit"));
        }
        Ok(outcome)
    }
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_transient_failure_after_training_retries_without_a_second_model(pool: PgPool) {
    let env = bootstrapped(&pool).await;
    let flaky = pipeline_wrapping(env, |name, step| match name {
        "train" | "promote" => Arc::new(LoseFirstCommit {
            inner: step,
            lost: AtomicBool::new(false),
        }),
        _ => step,
    });
    let engine = engine_for(&pool, flaky);
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..25], "users").await;

    let run = trigger(&engine).await;
    let run = finish(&worker(&engine), &engine, run.id).await;
    assert_status(&run, RunStatus::Succeeded);
    let detail = engine.get_run(run.id).await.unwrap();
    let attempts: Vec<(String, i32)> = detail.steps.iter().map(|s| (s.name.clone(), s.attempt)).collect();
    assert_eq!(
        attempts,
        [
            ("collect", 1),
            ("merge", 1),
            ("train", 2),
            ("validate", 1),
            ("promote", 2)
        ]
        .map(|(n, a)| (n.to_owned(), a))
        .to_vec()
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM versions").await,
        2,
        "one model for the run"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM promotions WHERE run_id IS NOT NULL").await,
        1
    );
}

fn assert_status(run: &retrain_engine::Run, status: RunStatus) {
    assert_eq!(run.status, status, "outcome: {:?}", run.outcome);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn quarantined_feedback_is_left_out_of_training(pool: PgPool) {
    use retrain_steps::store::feedback::{NewQuarantine, quarantine};
    // An operator's rule alone (screening would also drop some honest rows).
    let env = screening_off(bootstrapped(&pool).await);
    let engine = engine_for(&pool, pipeline(env));
    send_feedback(&pool, &poison(&pool, 400).await, "attacker").await;
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..25], "users").await;
    let mut conn = pool.acquire().await.unwrap();
    let (_, matched) = quarantine(
        &mut conn,
        &NewQuarantine {
            model_id: wine_id(&pool).await,
            source: Some("attacker".into()),
            received_from: None,
            received_until: None,
            reason: "label flipping".into(),
            actor: "ops".into(),
            run_id: None,
            evidence: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(matched, 400);

    let run = finish(&worker(&engine), &engine, trigger(&engine).await.id).await;
    assert_status(&run, RunStatus::Succeeded);
    let (feedback_rows, quarantined): (i32, i64) = sqlx::query_as(
        "SELECT ts.feedback_rows, (ts.dropped->>'quarantined')::bigint
         FROM versions m JOIN training_sets ts ON ts.id = m.training_set_id WHERE m.run_id = $1",
    )
    .bind(run.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(quarantined, 400);
    assert_eq!(feedback_rows, trained_inputs(&traffic[..25]));
    // The rule is part of the history: it cannot be lifted by rewriting it.
    assert!(
        sqlx::query("DELETE FROM feedback_quarantines")
            .execute(&pool)
            .await
            .is_err()
    );
}
