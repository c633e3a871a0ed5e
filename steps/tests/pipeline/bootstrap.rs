//! Bootstrap stores one split and one first model, however often it runs.

use crate::support::*;
use retrain_steps::bootstrap::bootstrap;
use retrain_steps::ml::Split;
use sqlx::PgPool;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn bootstrapping_twice_keeps_one_split_and_one_model(pool: PgPool) {
    let env = env(&pool);
    let first = bootstrap(&pool, &env.config).await.unwrap();
    assert!(first.stored_split);
    assert_eq!(first.first_model.as_ref().map(|m| m.version), Some(1));
    assert_eq!(first.champion_version, 1);
    let golden_before = split_rows(&pool, Split::Golden).await;

    let second = bootstrap(&pool, &env.config).await.unwrap();
    assert!(!second.stored_split);
    assert!(second.first_model.is_none());
    assert_eq!(second.champion_version, 1);
    assert_eq!(split_rows(&pool, Split::Golden).await, golden_before);

    assert_eq!(
        count(&pool, "SELECT count(*) FROM models WHERE name = 'wine-quality'").await,
        1
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM models").await, 1);
    assert_eq!(
        (first.model.id, &first.model.name),
        (second.model.id, &second.model.name)
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM datasets").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM examples").await, 1599);
    assert_eq!(count(&pool, "SELECT count(*) FROM versions").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM promotions WHERE kind = 'bootstrap'").await,
        1
    );
    let (base, golden, traffic) = (
        split_rows(&pool, Split::Base).await.len(),
        golden_before.len(),
        split_rows(&pool, Split::Pool).await.len(),
    );
    assert_eq!(base + golden + traffic, 1599);
    assert!(
        (900..=1000).contains(&base) && (280..=360).contains(&golden),
        "{base}/{golden}/{traffic}"
    );
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn concurrent_bootstraps_make_one_model(pool: PgPool) {
    let env = env(&pool);
    let (a, b) = tokio::join!(bootstrap(&pool, &env.config), bootstrap(&pool, &env.config));
    let made = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|r| r.first_model.is_some())
        .count();
    assert_eq!(made, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM models").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM versions").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM examples").await, 1599);
}
