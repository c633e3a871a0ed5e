//! Issue 10, case 2: promote acts only on a gate decision that still
//! applies. A candidate judged against one champion is never promoted over
//! another (a rollback in between, or a newer run's champion when an old
//! failed run is retried): the run ends `rejected`, naming both champions.

use crate::support::*;
use async_trait::async_trait;
use retrain_engine::{RunStatus, Step, StepContext, StepError, StepOutcome};
use retrain_steps::ml::Split;
use retrain_steps::store::promotions::{PromotionKind, PromotionRequest};
use retrain_steps::store::{promotions, versions};
use retrain_steps::{pipeline, pipeline_wrapping};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_rollback_between_validate_and_promote_rejects_the_run(pool: PgPool) {
    let env = lenient(&pool).await;
    let engine = engine_for(&pool, pipeline(env));
    let worker = worker(&engine);
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..25], "users").await;
    let first = finish(&worker, &engine, trigger(&engine).await.id).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.outcome);
    assert_eq!(champion_version(&pool).await, Some(2));

    // The next run's gate judges its candidate (version 3) against version 2 ...
    send_feedback(&pool, &traffic[25..50], "users").await;
    let run = trigger(&engine).await;
    run_steps(&worker, &["collect", "merge", "train", "validate"]).await;
    // ... then an operator rolls back to version 1 before promote runs.
    let mut conn = pool.acquire().await.unwrap();
    let v1 = versions::by_version(&mut conn, wine_id(&pool).await, 1).await.unwrap();
    promotions::promote(
        &pool,
        PromotionRequest {
            version_id: v1.id,
            kind: PromotionKind::Rollback,
            actor: "ops@example.com",
            reason: "version 2 misbehaves",
            by_run: None,
        },
    )
    .await
    .unwrap();

    let run = finish(&worker, &engine, run.id).await;
    assert_eq!(run.status, RunStatus::Rejected, "{:?}", run.outcome);
    assert_eq!(champion_version(&pool).await, Some(1), "the rollback stands");
    let reason = run.outcome.unwrap()["reason"].as_str().unwrap().to_owned();
    assert_eq!(
        reason,
        "the gate judged the candidate against champion version 2 but champion version 1 serves now; \
         nothing was promoted"
    );
    let events = engine.get_run(run.id).await.unwrap().events;
    assert!(
        events
            .iter()
            .any(|e| e.step.as_deref() == Some("promote") && e.reason.as_deref() == Some(reason.as_str())),
        "{events:?}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM promotions WHERE kind = 'pipeline'").await,
        1
    );
}

/// Fails the first promote it sees for good, as a bug or an outage that
/// outlasts the retries would.
struct FailFirstPromote {
    inner: Arc<dyn Step>,
    failed: AtomicBool,
}

#[async_trait]
impl Step for FailFirstPromote {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(StepError::fatal("promotion service unavailable"));
        }
        self.inner.run(ctx).await
    }
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn retrying_an_old_failed_run_never_replaces_a_newer_champion(pool: PgPool) {
    let env = lenient(&pool).await;
    let engine = engine_for(
        &pool,
        pipeline_wrapping(env, |name, step| match name {
            "promote" => Arc::new(FailFirstPromote {
                inner: step,
                failed: AtomicBool::new(false),
            }),
            _ => step,
        }),
    );
    let worker = worker(&engine);
    let traffic = split_rows(&pool, Split::Pool).await;
    // The old run: its candidate (version 2) was judged against version 1,
    // then its promote failed.
    send_feedback(&pool, &traffic[..25], "users").await;
    let old = finish(&worker, &engine, trigger(&engine).await.id).await;
    assert_eq!(old.status, RunStatus::Failed, "{:?}", old.outcome);
    // A newer run promotes version 3.
    send_feedback(&pool, &traffic[25..50], "users").await;
    let newer = finish(&worker, &engine, trigger(&engine).await.id).await;
    assert_eq!(newer.status, RunStatus::Succeeded, "{:?}", newer.outcome);
    assert_eq!(champion_version(&pool).await, Some(3));

    engine.retry_run(old.id, "ops@example.com").await.unwrap();
    let old = finish(&worker, &engine, old.id).await;
    assert_eq!(old.status, RunStatus::Rejected, "{:?}", old.outcome);
    assert_eq!(champion_version(&pool).await, Some(3), "the newer champion stays");
    let outcome = old.outcome.unwrap();
    assert_eq!(
        outcome["reason"],
        "the gate judged the candidate against champion version 1 but champion version 3 serves now; \
         nothing was promoted"
    );
    assert_eq!(outcome["detail"]["candidate"]["version"], 2);
    assert_eq!(outcome["detail"]["judged_against"]["version"], 1);
    assert_eq!(outcome["detail"]["serving"]["version"], 3);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM promotions WHERE kind = 'pipeline'").await,
        1
    );
}
