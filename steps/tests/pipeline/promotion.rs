//! Manual promotion and rollback share the pipeline's promotion path: one
//! audited promotion, the champion moved, and a notification on commit.

use crate::support::*;
use retrain_steps::ml::Split;
use retrain_steps::pipeline::FIRST_MODEL;
use retrain_steps::store::promotions::{self, PROMOTED_CHANNEL, PromotionKind, PromotionRequest};
use retrain_steps::store::versions;
use retrain_steps::{StepsError, pipeline};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::time::Duration;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn rolling_back_to_version_1_is_a_promotion_and_notifies(pool: PgPool) {
    let env = bootstrapped(&pool).await;
    let engine = engine_for(&pool, pipeline(env));
    let traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &traffic[..30], "users").await;
    let run = trigger(&engine).await;
    finish(&worker(&engine), &engine, run.id).await;
    let wine = wine_id(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    // The run trained version 2; whether the gate promoted it depends on
    // the learner and the gate, so an operator promotes it if not.
    let trained = versions::by_version(&mut conn, wine, 2).await.unwrap();
    let mut v2_promotion = (PromotionKind::Pipeline, 2, "pipeline");
    if promotions::champion(&mut conn, wine).await.unwrap().map(|(_, v)| v) != Some(2) {
        v2_promotion = (PromotionKind::Manual, 2, "ops@example.com");
        let manual = PromotionRequest {
            version_id: trained.id,
            kind: PromotionKind::Manual,
            actor: "ops@example.com",
            reason: "version 2 first",
            by_run: None,
        };
        promotions::promote(&pool, manual).await.unwrap();
    }
    let (v2_id, v2) = promotions::champion(&mut conn, wine).await.unwrap().unwrap();
    assert_eq!(v2, 2);

    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen(PROMOTED_CHANNEL).await.unwrap();
    let v1 = versions::by_version(&mut conn, wine, 1).await.unwrap();
    let rollback = promotions::promote(
        &pool,
        PromotionRequest {
            version_id: v1.id,
            kind: PromotionKind::Rollback,
            actor: "ops@example.com",
            reason: "v2 misbehaves on new wines",
            by_run: None,
        },
    )
    .await
    .unwrap();
    assert_eq!((rollback.version, rollback.previous_version), (1, Some(2)));
    assert_eq!(
        (rollback.version_id, rollback.previous_version_id),
        (v1.id, Some(v2_id))
    );
    assert_eq!(rollback.model, FIRST_MODEL);

    let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
    assert_eq!(payload["version"], 1);
    assert_eq!(payload["version_id"], v1.id);
    assert_eq!(payload["model"], FIRST_MODEL);
    assert_eq!(payload["promotion_id"], rollback.id);

    assert_eq!(promotions::champion(&mut conn, wine).await.unwrap(), Some((v1.id, 1)));
    let history = promotions::history(&mut conn, wine, 10).await.unwrap();
    let kinds: Vec<_> = history.iter().map(|p| (p.kind, p.version, p.actor.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (PromotionKind::Rollback, 1, "ops@example.com"),
            v2_promotion,
            (PromotionKind::Bootstrap, 1, "bootstrap"),
        ]
    );

    // Promoting the serving model again is refused, and nothing is written.
    let again = promotions::promote(
        &pool,
        PromotionRequest {
            version_id: v1.id,
            kind: PromotionKind::Manual,
            actor: "ops@example.com",
            reason: "again",
            by_run: None,
        },
    )
    .await;
    assert!(matches!(again, Err(StepsError::AlreadyChampion(1))), "{again:?}");
    assert_eq!(count(&pool, "SELECT count(*) FROM promotions").await, 3);
    // History cannot be rewritten.
    assert!(sqlx::query("DELETE FROM promotions").execute(&pool).await.is_err());
}
