//! Issue 12, the statistical gate on a real run: the candidate is judged on
//! the golden set and on the recent set (feedback held out of training by a
//! hash of its input), both sets' evaluations are stored, and the decision
//! is recorded in words with its bounds, margin and alpha.

use crate::support::*;
use retrain_engine::RunStatus;
use retrain_steps::data::input_hash;
use retrain_steps::ml::{Example, GateConfig, Split};
use retrain_steps::store::models::{self, GateSettings, Settings};
use retrain_steps::{PipelineConfig, PipelineEnv, bootstrap::bootstrap, pipeline, recent, trainset};
use sqlx::PgPool;
use std::sync::Arc;

/// A run of the real pipeline on 150 true feedback rows, under a gate with
/// wide margins (these tests are about what is recorded) and the given
/// recent-set settings, with screening off (it would leave out some rows
/// before the holdout, and the counts below are exact); it succeeds.
async fn run_with(pool: &PgPool, recent_share: f64, recent_min_rows: usize) -> (retrain_engine::Run, Vec<Example>) {
    let gate = GateConfig {
        recent_share,
        recent_min_rows,
        margin: 0.5,
        recall_margin: 1.0,
        ..GateConfig::default()
    };
    let env = screening_off(PipelineEnv {
        pool: pool.clone(),
        config: Arc::new(PipelineConfig {
            gate,
            ..PipelineConfig::default()
        }),
    });
    bootstrap(pool, &env.config).await.expect("bootstrap");
    let engine = engine_for(pool, pipeline(env));
    let traffic: Vec<Example> = split_rows(pool, Split::Pool).await.into_iter().take(150).collect();
    send_feedback(pool, &traffic, "users").await;
    let run = finish(&worker(&engine), &engine, trigger(&engine).await.id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.outcome);
    (run, traffic)
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_run_records_golden_and_recent_evaluations_and_the_decision_in_words(pool: PgPool) {
    let (run, traffic) = run_with(&pool, 0.5, 10).await;

    // Half the feedback inputs, chosen by hash, are held out of training.
    let held_out: Vec<Example> = traffic
        .iter()
        .filter(|e| recent::held_out(&input_hash(&e.input), 0.5))
        .cloned()
        .collect();
    let expected_recent = distinct_inputs(&held_out);
    assert!(expected_recent >= 10, "{expected_recent} held-out inputs");
    let (share, holdout, training_set): (f64, i64, i64) = sqlx::query_as(
        "SELECT ts.recent_share, (ts.dropped->>'recent_holdout')::bigint, ts.id
         FROM versions v JOIN training_sets ts ON ts.id = v.training_set_id WHERE v.run_id = $1",
    )
    .bind(run.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((share, holdout), (0.5, held_out.len() as i64));

    // Both models on both sets.
    let golden = split_rows(&pool, Split::Golden).await.len() as i32;
    let evaluations: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT eval_set::text, role::text, n FROM evaluations WHERE run_id = $1 ORDER BY eval_set, role",
    )
    .bind(run.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<(String, String, i32)> = [
        ("golden", "candidate", golden),
        ("golden", "champion", golden),
        ("recent", "candidate", expected_recent),
        ("recent", "champion", expected_recent),
    ]
    .into_iter()
    .map(|(s, r, n)| (s.to_owned(), r.to_owned(), n))
    .collect();
    assert_eq!(evaluations, expected);

    // The verdict: bounds, margin, alpha and the words.
    let (decision, golden_bound, recent_bound, rows, margin, alpha): (String, f64, f64, i32, f64, f64) =
        sqlx::query_as(
            "SELECT decision, golden_lower_bound, recent_lower_bound, recent_rows, margin, alpha
             FROM validations WHERE run_id = $1",
        )
        .bind(run.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((rows, margin, alpha), (expected_recent, 0.5, 0.05));
    assert!(golden_bound >= -0.5 && recent_bound >= -0.5);
    assert!(decision.starts_with("passed: "), "{decision}");
    for words in [
        "golden accuracy: candidate at ",
        "recent accuracy: candidate at ",
        " with 95% confidence (observed ",
        "margin 50 points: pass",
    ] {
        assert!(decision.contains(words), "{words:?} in {decision}");
    }
    // ... as an event of the run, and in validate's output.
    let detail = engine_for(&pool, pipeline(env(&pool))).get_run(run.id).await.unwrap();
    assert!(
        detail.events.iter().any(|e| e.step.as_deref() == Some("validate")
            && e.actor == "gate"
            && e.reason.as_deref() == Some(&decision)),
        "{:?}",
        detail.events
    );
    let output: serde_json::Value =
        sqlx::query_scalar("SELECT output FROM steps WHERE run_id = $1 AND name = 'validate'")
            .bind(run.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(output["decision"], decision.as_str());
    assert_eq!(output["recent"]["rows"], expected_recent);

    // A later change of the share does not change the recorded set.
    let wine = wine_id(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let gate = GateSettings {
        recent_share: Some(0.0),
        ..GateSettings::default()
    };
    let learner = models::by_id(&mut conn, wine).await.unwrap().learner.0;
    models::set_settings(
        &mut conn,
        wine,
        Settings {
            threshold: None,
            cron: None,
            gate: &gate,
            learner: &learner,
        },
    )
    .await
    .unwrap();
    trainset::rebuild_recorded(&mut conn, training_set, trainset::Keep::Lineage)
        .await
        .expect("the same rows");
    let recent = trainset::recorded_recent(&mut conn, training_set, usize::MAX)
        .await
        .expect("the recorded share");
    assert_eq!(recent.len() as i32, expected_recent);
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_small_recent_set_is_skipped_with_the_reason_recorded(pool: PgPool) {
    let (run, _) = run_with(&pool, GateConfig::default().recent_share, 1000).await;
    let (decision, recent_bound, rows): (String, Option<f64>, i32) =
        sqlx::query_as("SELECT decision, recent_lower_bound, recent_rows FROM validations WHERE run_id = $1")
            .bind(run.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recent_bound, None);
    assert!(
        decision.contains(&format!(
            "recent accuracy: skipped, {rows} recent rows (at least 1000 needed)"
        )),
        "{decision}"
    );
}
