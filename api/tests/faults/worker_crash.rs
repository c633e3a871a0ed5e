//! A worker process killed with SIGKILL in the middle of each step. The
//! worker is caught at the worst moment: the step has done its work (its
//! collection, training set, model, validation or promotion is committed)
//! but the engine has not yet recorded the step as done. Another worker must
//! take the step back when the lease expires, run it again, and find what
//! the first attempt stored instead of doing it twice.

use crate::support::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// How long the doomed worker holds a finished step's result. The kill comes
/// within milliseconds of the step being caught, so this only has to be long.
const HOLD_MS: u64 = 60_000;
/// The shortest lease the service allows.
const LEASE_SECS: &str = "3";

/// Where each step leaves its mark, one row per run.
fn effect_of(step: &str) -> &'static str {
    match step {
        "collect" => "SELECT count(*) FROM collections WHERE run_id = $1",
        "merge" => "SELECT count(*) FROM training_sets WHERE run_id = $1",
        "train" => "SELECT count(*) FROM versions WHERE run_id = $1",
        "validate" => "SELECT count(*) FROM validations WHERE run_id = $1",
        "promote" => "SELECT count(*) FROM promotions WHERE run_id = $1",
        other => panic!("no step {other}"),
    }
}

async fn kill_the_worker_during(step: &str, connect: PgConnectOptions) {
    let _machine = shared_machine().await;
    let url = database_url(&connect);
    let pool = pool(&connect).await;
    let api = RETRAIN.start(Role::Api, &url, &[]).await;
    let rows = split_rows(&pool, retrain_steps::ml::Split::Pool).await;
    api.send_feedback(&rows[..30], "crash-test").await;

    let hold = format!("{step}:{HOLD_MS}");
    let mut doomed_env = vec![
        ("RETRAIN_LEASE_SECS", LEASE_SECS),
        ("RETRAIN_TEST_SLOW_STEP", hold.as_str()),
    ];
    doomed_env.extend(PASSING_GATE);
    let doomed = RETRAIN.start(Role::Worker, &url, &doomed_env).await;
    let run = api.trigger().await;

    // The step is running, and its work is stored: it holds its result.
    let caught = format!(
        "SELECT ({}) = 1 FROM steps WHERE run_id = $1 AND name = $2 AND status = 'running'",
        effect_of(step)
    );
    eventually(60.0, &format!("{step} runs and has stored its work"), || async {
        sqlx::query_scalar::<_, bool>(&caught)
            .bind(run)
            .bind(step)
            .fetch_optional(&pool)
            .await
            .unwrap()
            .unwrap_or(false)
    })
    .await;
    let doomed_id: String = sqlx::query_scalar("SELECT lease_owner FROM steps WHERE run_id = $1 AND name = $2")
        .bind(run)
        .bind(step)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(doomed_id.starts_with(&doomed.worker_prefix()), "{doomed_id}");
    doomed.kill9();

    let mut heir_env = vec![("RETRAIN_LEASE_SECS", LEASE_SECS)];
    heir_env.extend(PASSING_GATE);
    let heir = RETRAIN.start(Role::Worker, &url, &heir_env).await;
    let status = finished(&pool, run, 60).await;
    assert_eq!(
        status, "succeeded",
        "with a gate that passes everything, the run succeeds"
    );

    // Exactly one of everything the run makes, although a step ran twice.
    for (what, sql) in [
        ("collection", effect_of("collect")),
        ("training set", effect_of("merge")),
        ("model", effect_of("train")),
        ("validation", effect_of("validate")),
        ("promotion", effect_of("promote")),
    ] {
        assert_eq!(scalar_i64(&pool, sql, run).await, 1, "one {what} for the run");
    }
    // The promotion event is written once, in the promotion's transaction.
    let promoted_events = scalar_i64(
        &pool,
        "SELECT count(*) FROM run_events WHERE run_id = $1 AND reason LIKE 'promoted version %'",
        run,
    )
    .await;
    assert_eq!(promoted_events, 1);

    // The history tells what happened: the lease of the killed worker expired,
    // the new worker took the step back and ran it as attempt 2.
    let events = history(&pool, run).await;
    let history = show(&events);
    let reclaims: Vec<&Event> = events.iter().filter(|e| e.is_retry()).collect();
    assert_eq!(reclaims.len(), 1, "one reclaim:\n{history}");
    let reclaim = reclaims[0];
    assert!(reclaim.is_step(step), "{history}");
    assert_eq!(reclaim.attempt, Some(1), "{history}");
    assert!(
        reclaim.actor.starts_with(&heir.worker_prefix()),
        "the new worker reclaimed:\n{history}"
    );
    let reason = reclaim.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains(&format!("lease of {doomed_id} expired")),
        "the reason names the killed worker's lease:\n{history}"
    );
    let rerun = events
        .iter()
        .find(|e| e.is_step(step) && e.attempt == Some(2) && e.to_status == "succeeded");
    assert!(
        rerun.is_some_and(|e| e.actor.starts_with(&heir.worker_prefix())),
        "the new worker finished attempt 2:\n{history}"
    );
    assert_eq!(attempt_violations(&pool).await, Vec::<String>::new(), "{history}");

    // The run's model serves.
    let version = scalar_i64(&pool, "SELECT version::bigint FROM versions WHERE run_id = $1", run).await;
    eventually(10.0, "the API serves the run's model", || async {
        api.served_version().await == version
    })
    .await;
    drop(heir);
    drop(api);
    pool.close().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_worker_killed_during_collect_is_replaced(_: PgPoolOptions, connect: PgConnectOptions) {
    kill_the_worker_during("collect", connect).await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_worker_killed_during_merge_is_replaced(_: PgPoolOptions, connect: PgConnectOptions) {
    kill_the_worker_during("merge", connect).await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_worker_killed_during_train_is_replaced(_: PgPoolOptions, connect: PgConnectOptions) {
    kill_the_worker_during("train", connect).await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_worker_killed_during_validate_is_replaced(_: PgPoolOptions, connect: PgConnectOptions) {
    kill_the_worker_during("validate", connect).await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_worker_killed_during_promote_is_replaced(_: PgPoolOptions, connect: PgConnectOptions) {
    kill_the_worker_during("promote", connect).await;
}
