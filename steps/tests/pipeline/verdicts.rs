//! Issue 10, case 10: a retried validate returns the verdict recorded for
//! the run, whatever the champion and the gate's settings are by then.

use crate::support::*;
use retrain_engine::{RunStatus, Step, StepOutcome};
use retrain_steps::ml::Split;
use retrain_steps::pipeline::Validate;
use retrain_steps::store::promotions::{self, PromotionKind, PromotionRequest};
use retrain_steps::{PipelineConfig, PipelineEnv, pipeline};
use sqlx::PgPool;
use std::sync::Arc;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_retried_validate_returns_the_recorded_verdict(pool: PgPool) {
    // A gate no candidate passes records a rejection.
    let mut strict = PipelineConfig::default();
    strict.gate.accuracy_floor = 1.0;
    let env = PipelineEnv {
        pool: pool.clone(),
        config: Arc::new(strict),
    };
    retrain_steps::bootstrap::bootstrap(&pool, &env.config).await.unwrap();
    let engine = engine_for(&pool, pipeline(env));
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..25], "users").await;
    let run = finish(&worker(&engine), &engine, trigger(&engine).await.id).await;
    assert_eq!(run.status, RunStatus::Rejected, "{:?}", run.outcome);
    let outcome = run.outcome.unwrap();
    let stored_passed: bool = sqlx::query_scalar("SELECT passed FROM validations WHERE run_id = $1")
        .bind(run.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!stored_passed);

    // Then the gate is relaxed and the candidate becomes champion by hand.
    let candidate: i64 = sqlx::query_scalar("SELECT id FROM versions WHERE run_id = $1")
        .bind(run.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    promotions::promote(
        &pool,
        PromotionRequest {
            version_id: candidate,
            kind: PromotionKind::Manual,
            actor: "ops@example.com",
            reason: "trying it out",
            by_run: None,
        },
    )
    .await
    .unwrap();
    let relaxed = Validate(PipelineEnv {
        pool: pool.clone(),
        config: Arc::new(lenient_config()),
    });

    // Validate for the same run again: the recorded rejection, unchanged.
    let again = relaxed
        .run(context_of(&engine, run.id, "validate").await)
        .await
        .unwrap();
    let StepOutcome::Finish { reason, output, .. } = again else {
        panic!("the retry passed a candidate the record rejected: {again:?}");
    };
    assert_eq!(reason, outcome["reason"]);
    // The outcome went through jsonb and serde_json's (not correctly
    // rounded) float parser: give the retry's output the same trip.
    let output: serde_json::Value = serde_json::from_str(&output.to_string()).unwrap();
    assert_eq!(output, outcome["detail"]);
    assert_eq!(output["passed"], false);
}
