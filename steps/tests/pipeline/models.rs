//! Issue 11: named models are independent. A second tabular model, with
//! its own data set, learner and class names, gets its first version
//! through a normal run; feedback of one model never counts toward the
//! other's threshold or trains the other; and each model can have a run
//! active at the same time. A text model goes the same way, and feedback
//! repeating a golden text (normalized) never trains it.

use crate::support::*;
use retrain_engine::{RunStatus, TriggerKind};
use retrain_steps::ml::{Example, InputKind, Learner, Split, TreeParams};
use retrain_steps::pipeline::{self as steps_pipeline, FIRST_MODEL, PIPELINE};
use retrain_steps::store::datasets::{self, NewDataset};
use retrain_steps::store::feedback;
use retrain_steps::store::models::{self, ModelSpec, NewModel};
use retrain_steps::store::versions;
use retrain_steps::triggers::{check_threshold, check_thresholds};
use serde_json::json;
use sqlx::PgPool;

const COMPASS: &str = "compass";

/// A point of the compass model: class `north` iff x < 0.5 (y is noise).
/// `offset` moves x off the data set's grid, so traffic never repeats a
/// stored row's input.
fn point(i: usize, offset: f64) -> Example {
    let x = ((i * 37) % 100) as f64 / 100.0 + offset;
    let y = ((i * 53) % 100) as f64 / 100.0;
    let label = if x < 0.5 { "north" } else { "south" };
    Example::tabular(vec![x, y], label)
}

/// Registers the compass model with a tree that may split small sets, and
/// imports 60 rows: every third golden, the rest base.
async fn register_compass(pool: &PgPool) -> ModelSpec {
    let feature_names = vec!["x".to_owned(), "y".to_owned()];
    let classes = vec!["north".to_owned(), "south".to_owned()];
    let learner = Learner::DecisionTree(TreeParams {
        min_weight_split: 4.0,
        min_weight_leaf: 2.0,
        ..TreeParams::default()
    });
    let mut tx = pool.begin().await.unwrap();
    let model = models::create(
        &mut tx,
        NewModel {
            name: COMPASS,
            kind: InputKind::Tabular,
            feature_names: &feature_names,
            text_column: None,
            classes: &classes,
            learner: &learner,
            threshold: None,
            cron: None,
        },
    )
    .await
    .unwrap();
    let dataset = datasets::insert(
        &mut tx,
        NewDataset {
            model_id: model.id,
            name: "compass.csv",
            feature_names: &feature_names,
            labels: &classes,
            split_spec: &json!({"generated": "tests/pipeline/models.rs", "golden": "every third row"}),
        },
    )
    .await
    .unwrap();
    let rows: Vec<(Split, Example)> = (0..60)
        .map(|i| (if i % 3 == 0 { Split::Golden } else { Split::Base }, point(i, 0.0)))
        .collect();
    datasets::insert_examples(&mut tx, dataset.id, &rows).await.unwrap();
    tx.commit().await.unwrap();
    model
}

async fn waiting(pool: &PgPool, model_id: i32) -> i64 {
    feedback::waiting(&mut *pool.acquire().await.unwrap(), model_id)
        .await
        .unwrap()
}

/// The collect window and the training set a run recorded.
async fn window(pool: &PgPool, run_id: uuid::Uuid) -> (i64, i32, i32, i32) {
    sqlx::query_as(
        "SELECT c.new_rows, ts.base_rows, ts.feedback_rows, ts.dataset_id
         FROM collections c JOIN training_sets ts ON ts.run_id = c.run_id WHERE c.run_id = $1",
    )
    .bind(run_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn two_models_have_their_own_versions_feedback_thresholds_and_runs(pool: PgPool) {
    // Exact row counts per model: screening would quarantine a source that
    // is half of the tiny compass set (its training-share rule).
    let env = screening_off(bootstrapped(&pool).await);
    let engine = engine_for(&pool, steps_pipeline::pipeline(env));
    let worker = worker(&engine);
    let wine = wine_model(&pool).await;
    let compass = register_compass(&pool).await;
    assert_ne!(compass.id, wine.id);
    assert_eq!(champion_version_of(&pool, compass.id).await, None);
    let compass_data = datasets::current(&mut *pool.acquire().await.unwrap(), compass.id)
        .await
        .unwrap()
        .unwrap();
    let traffic: Vec<Example> = (0..40).map(|i| point(i, 0.005)).collect();

    // Version 1 through a normal run: enough feedback of the new model
    // starts a threshold run of it, and of it only.
    send_feedback_to(&pool, compass.id, &traffic[..20], "users").await;
    assert_eq!(waiting(&pool, compass.id).await, 20);
    assert_eq!(waiting(&pool, wine.id).await, 0);
    assert!(check_threshold(&engine, &wine, 20).await.unwrap().is_none());
    let created = check_thresholds(&engine, 20).await.unwrap();
    assert_eq!(created.len(), 1, "{created:?}");
    let first = created[0].run().clone();
    assert_eq!(
        (first.subject.as_str(), first.trigger),
        (COMPASS, TriggerKind::Threshold)
    );
    assert_eq!(first.params["model"], COMPASS);
    let first = finish(&worker, &engine, first.id).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.outcome);

    // Judged without a champion: the floor alone, and promoted from none.
    let (champion_id, checks): (Option<i64>, serde_json::Value) =
        sqlx::query_as("SELECT champion_id, checks FROM validations WHERE run_id = $1")
            .bind(first.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(champion_id, None);
    let names: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["accuracy_floor"]);
    assert_eq!(champion_version_of(&pool, compass.id).await, Some(1));
    assert_eq!(champion_version(&pool).await, Some(1), "the wine model is untouched");
    // Versions count per model; the first holds the model's own classes.
    let mut conn = pool.acquire().await.unwrap();
    let v1 = versions::by_version(&mut conn, compass.id, 1).await.unwrap();
    assert_eq!(v1.model_id, compass.id);
    assert_eq!(v1.run_id, Some(first.id));
    let loaded = versions::load(&mut conn, v1.id).await.unwrap();
    assert_eq!(loaded.classifier.classes(), ["north", "south"]);
    assert_eq!(versions::list(&mut conn, wine.id, 10).await.unwrap().len(), 1);
    drop(conn);
    // It trained on its own data set and its own 20 rows of feedback (but
    // those held out as the recent set).
    assert_eq!(
        window(&pool, first.id).await,
        (20, 40, trained_inputs(&traffic[..20]), compass_data.id)
    );

    // Wine feedback waits for wine only.
    let wine_traffic = split_rows(&pool, Split::Pool).await;
    send_feedback(&pool, &wine_traffic[..25], "users").await;
    assert_eq!(waiting(&pool, wine.id).await, 25);
    assert_eq!(waiting(&pool, compass.id).await, 0);
    assert!(check_threshold(&engine, &compass, 20).await.unwrap().is_none());
    // Compass feedback short of its threshold does not borrow wine's.
    send_feedback_to(&pool, compass.id, &traffic[20..30], "users").await;
    assert_eq!(waiting(&pool, compass.id).await, 10);
    assert!(check_threshold(&engine, &compass, 20).await.unwrap().is_none());

    // Enough of both: one run per model, both active at once.
    send_feedback_to(&pool, compass.id, &traffic[30..40], "users").await;
    let created = check_thresholds(&engine, 20).await.unwrap();
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(created.iter().all(|c| c.is_new()));
    let mut subjects: Vec<&str> = created.iter().map(|c| c.run().subject.as_str()).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, [COMPASS, FIRST_MODEL]);
    let run_of = |name: &str| created.iter().find(|c| c.run().subject == name).unwrap().run().id;
    let (compass_run, wine_run) = (run_of(COMPASS), run_of(FIRST_MODEL));
    for (name, id) in [(COMPASS, compass_run), (FIRST_MODEL, wine_run)] {
        let active = engine.active_run(PIPELINE, name).await.unwrap().expect("an active run");
        assert_eq!(active.id, id);
    }
    // A second trigger of either model finds its active run.
    let again = check_threshold(&engine, &compass, 20).await.unwrap().unwrap();
    assert!(!again.is_new());
    assert_eq!(again.run().id, compass_run);

    let compass_done = finish(&worker, &engine, compass_run).await;
    let wine_done = finish(&worker, &engine, wine_run).await;
    assert_eq!(compass_done.status, RunStatus::Succeeded, "{:?}", compass_done.outcome);
    assert_eq!(wine_done.status, RunStatus::Succeeded, "{:?}", wine_done.outcome);
    // Each window counted its model's rows only, though the watermark (one
    // id sequence) spans both; each set trained on its own data set.
    let wine_data = datasets::current(&mut *pool.acquire().await.unwrap(), wine.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        window(&pool, compass_run).await,
        (20, 40, trained_inputs(&traffic), compass_data.id)
    );
    let (new_rows, _, feedback_rows, dataset_id) = window(&pool, wine_run).await;
    assert_eq!(
        (new_rows, feedback_rows, dataset_id),
        (25, trained_inputs(&wine_traffic[..25]), wine_data.id)
    );
    // Each model's champion moved to its own version 2.
    assert_eq!(champion_version_of(&pool, compass.id).await, Some(2));
    assert_eq!(champion_version(&pool).await, Some(2));
    let promotions: Vec<(String, i32, Option<i32>)> = sqlx::query_as(
        "SELECT model, to_version, from_version FROM audit_promotions WHERE kind = 'pipeline' ORDER BY model, to_version",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        promotions,
        [
            (COMPASS.to_owned(), 1, None),
            (COMPASS.to_owned(), 2, Some(1)),
            (FIRST_MODEL.to_owned(), 2, Some(1)),
        ]
    );
}

/// A support ticket of the generated `tickets` model: words of its class
/// among words both classes use, and a reference that makes it unique.
fn ticket(i: usize) -> Example {
    const COMMON: [&str; 5] = ["my", "is", "please", "help", "the"];
    const OWN: [(&str, [&str; 4]); 2] = [
        ("billing", ["invoice", "refund", "charged", "payment"]),
        ("login", ["password", "account", "locked", "reset"]),
    ];
    let (label, own) = OWN[i % 2];
    let text = format!(
        "{} {} {} {} ref{i}",
        COMMON[i % 5],
        own[(i / 2) % 4],
        COMMON[(i / 3) % 5],
        own[(i / 5) % 4]
    );
    Example::text(text, label)
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_text_model_gets_its_first_version_from_a_run_and_never_trains_on_golden_texts(pool: PgPool) {
    use retrain_steps::ml::text::TextSettings;
    use retrain_steps::ml::{Classifier, Input, ModelError};

    let env = bootstrapped(&pool).await;
    let engine = engine_for(&pool, steps_pipeline::pipeline(env));
    let classes = vec!["billing".to_owned(), "login".to_owned()];
    let mut tx = pool.begin().await.unwrap();
    let model = models::create(
        &mut tx,
        NewModel {
            name: "tickets",
            kind: InputKind::Text,
            feature_names: &[],
            text_column: Some("text"),
            classes: &classes,
            learner: &Learner::NaiveBayes(TextSettings::default()),
            threshold: None,
            cron: None,
        },
    )
    .await
    .unwrap();
    let dataset = datasets::insert(
        &mut tx,
        NewDataset {
            model_id: model.id,
            name: "tickets.jsonl",
            feature_names: &[],
            labels: &classes,
            split_spec: &json!({"generated": "tests/pipeline/models.rs", "golden": "every third row"}),
        },
    )
    .await
    .unwrap();
    let rows: Vec<(Split, Example)> = (0..60)
        .map(|i| (if i % 3 == 0 { Split::Golden } else { Split::Base }, ticket(i)))
        .collect();
    datasets::insert_examples(&mut tx, dataset.id, &rows).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        datasets::examples(&mut *pool.acquire().await.unwrap(), dataset.id, Split::Golden)
            .await
            .unwrap()
            .len(),
        20
    );

    // 20 new tickets, and a golden ticket sent back in capitals: it counts
    // as feedback but must not train.
    let mut traffic: Vec<Example> = (1000..1020).map(ticket).collect();
    let golden = ticket(0);
    let shouted = golden.input.text().unwrap().to_uppercase();
    traffic.push(Example::text(shouted, golden.label.clone()));
    send_feedback_to(&pool, model.id, &traffic, "users").await;
    let created = check_threshold(&engine, &model, 20).await.unwrap().expect("a run");
    let run = finish(&worker(&engine), &engine, created.run().id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.outcome);

    let (feedback_rows, golden_input, dataset_id): (i32, i64, i32) = sqlx::query_as(
        "SELECT feedback_rows, (dropped->>'golden_input')::bigint, dataset_id FROM training_sets WHERE run_id = $1",
    )
    .bind(run.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (feedback_rows, golden_input, dataset_id),
        (trained_inputs(&traffic[..20]), 1, dataset.id)
    );

    assert_eq!(champion_version_of(&pool, model.id).await, Some(1));
    let mut conn = pool.acquire().await.unwrap();
    let v1 = versions::by_version(&mut conn, model.id, 1).await.unwrap();
    assert_eq!(v1.kind, "naive_bayes");
    let loaded = versions::load(&mut conn, v1.id).await.unwrap();
    assert!(matches!(loaded.classifier, Classifier::Text(_)));
    assert_eq!(loaded.classifier.classes(), ["billing", "login"]);
    let answer = loaded
        .classifier
        .predict(&Input::Text("I was charged twice, refund my payment".into()))
        .unwrap();
    assert_eq!(answer.label, "billing");
    assert!(matches!(
        loaded.classifier.predict(&Input::Tabular(vec![1.0])),
        Err(ModelError::WrongInput { .. })
    ));
    // The wine model did not move.
    assert_eq!(champion_version(&pool).await, Some(1));
}
