//! The console's pages against real runs: one succeeded, one rejected by
//! the gate, one failed at train and retried from the console, and one
//! cancelled. Each page shows what a person opens it for, and is saved as
//! a screenshot (see `Browser::screenshot` for where).

use super::browser::Browser;
use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Who signs in to the console in these tests.
const OPERATOR: &str = "ops-ui@example.com";

/// Feedback bodies for pool rows `range`, labelled truly, from `source`.
async fn honest(app: &TestApp, range: std::ops::Range<usize>, source: &str) -> Vec<Value> {
    rows(&app.pool, Split::Pool).await[range]
        .iter()
        .map(|e| json!({"features": features(e), "correct_label": e.label, "source": source}))
        .collect()
}

/// Sets the default model's gate settings.
async fn set_gate(app: &TestApp, gate: Value) {
    let changed = app
        .client
        .patch(app.url("/models/wine-quality"))
        .bearer_auth(TOKEN)
        .json(&json!({ "gate": gate }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
}

/// Waits until run `id` is neither queued nor running; its detail.
async fn ended(app: &TestApp, id: &str) -> Value {
    let path = format!("/runs/{id}");
    let path = &path;
    eventually(60, "the run ends", || async move {
        !matches!(app.json(path).await["status"].as_str(), Some("queued" | "running"))
    })
    .await;
    app.json(path).await
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_pages_show_runs_their_steps_and_the_gates_evidence(_: PgPoolOptions, connect: PgConnectOptions) {
    // Screening off: the gate, not screening, must meet the poison.
    let app = spawn(&connect, "all", &["--screening", "false"]).await;

    // A run the gate passes: honest feedback under a lenient gate.
    set_gate(
        &app,
        json!({"margin": 1.0, "accuracy_floor": 0.0, "recall_margin": 1.0}),
    )
    .await;
    send_all(&app, honest(&app, 0..40, "app").await).await;
    let succeeded = run_to_end(&app, "fresh feedback").await;
    assert_eq!(succeeded["status"], "succeeded", "{succeeded}");

    // A run the gate rejects: label-flipped feedback under the service's gate.
    set_gate(&app, json!({})).await;
    let poison: Vec<Value> = retrain_testkit::fixtures::label_flipped(rows(&app.pool, Split::Base).await, 400)
        .iter()
        .map(|e| json!({"features": features(e), "correct_label": e.label, "source": "attacker"}))
        .collect();
    send_all(&app, poison).await;
    let rejected = run_to_end(&app, "poisoned feedback").await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");

    // A run whose train fails every attempt: the database refuses new versions.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_versions() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'the artifact store is full'; END $$;
         CREATE TRIGGER refuse_versions BEFORE INSERT ON versions
           FOR EACH ROW EXECUTE FUNCTION refuse_versions();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    send_all(&app, honest(&app, 40..70, "app").await).await;
    let failed = run_to_end(&app, "more feedback").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let failed_id = failed["id"].as_str().unwrap().to_owned();
    sqlx::raw_sql("DROP TRIGGER refuse_versions ON versions")
        .execute(&app.pool)
        .await
        .unwrap();

    let browser = Browser::open(&app.url("")).await;

    // Read-only: no actions offered, and the failed run is shown as such.
    browser.visit(&format!("/ui/runs/{failed_id}")).await;
    assert!(
        !browser.has("form[action$='/retry']").await,
        "no retry without the token"
    );
    assert!(browser.text("header.top").await.contains("Sign in"));
    let train_attempts = browser.attrs("g.attempt[data-step='train']", "data-ended").await;
    assert_eq!(
        train_attempts,
        ["pending", "pending", "failed"],
        "three attempts, the last one failed"
    );
    assert!(
        browser
            .text("table.events")
            .await
            .contains("the artifact store is full"),
        "the events say why train failed"
    );

    // Retry it from the console.
    browser.visit("/ui/login").await;
    browser
        .submit("form[action='/ui/login']", &[("token", TOKEN), ("name", OPERATOR)])
        .await;
    browser.visit(&format!("/ui/runs/{failed_id}")).await;
    browser
        .submit(&format!("form[action='/ui/runs/{failed_id}/retry']"), &[])
        .await;
    assert_eq!(browser.path().await, format!("/ui/runs/{failed_id}"));
    let retried_by: String = sqlx::query_scalar(
        "SELECT actor FROM run_events WHERE run_id = $1::uuid AND step IS NULL
           AND from_status = 'failed' AND to_status = 'queued'",
    )
    .bind(&failed_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(retried_by, OPERATOR, "the retry's audit row names the operator");
    let retried = ended(&app, &failed_id).await;
    assert!(
        matches!(retried["status"].as_str(), Some("succeeded" | "rejected")),
        "the retried run went on past train: {retried}"
    );

    // A run cancelled while it works.
    send_all(&app, honest(&app, 70..100, "app").await).await;
    let created: Value = app
        .admin_post("/runs", json!({"reason": "to be cancelled"}))
        .await
        .json()
        .await
        .unwrap();
    let cancelled_id = created["id"].as_str().unwrap().to_owned();
    let cancel = app.admin_post(&format!("/runs/{cancelled_id}/cancel"), json!({})).await;
    assert_eq!(cancel.status(), 200);
    assert_eq!(ended(&app, &cancelled_id).await["status"], "cancelled");

    // The runs list, newest first, and its filter.
    browser.visit("/ui/runs").await;
    let listed = browser.attrs("table.runs tbody tr", "data-run").await;
    let expected: Vec<String> = [&cancelled_id, &failed_id]
        .into_iter()
        .cloned()
        .chain([&rejected, &succeeded].map(|r| r["id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(listed, expected);
    let statuses = [
        "cancelled",
        retried["status"].as_str().unwrap(),
        "rejected",
        "succeeded",
    ];
    assert_eq!(browser.attrs("table.runs tbody tr", "data-status").await, statuses);
    browser.screenshot("runs").await;
    browser
        .submit("form.filters", &[("status", "rejected"), ("model", "wine-quality")])
        .await;
    assert!(
        browser.path().await.contains("status=rejected"),
        "{}",
        browser.path().await
    );
    let rejected_ones: Vec<&String> = expected
        .iter()
        .zip(statuses)
        .filter_map(|(id, status)| (status == "rejected").then_some(id))
        .collect();
    assert_eq!(
        browser
            .attrs("table.runs tbody tr", "data-run")
            .await
            .iter()
            .collect::<Vec<_>>(),
        rejected_ones
    );

    // The trigger filter, in the console and in the REST API.
    browser.visit("/ui/runs?trigger=threshold").await;
    assert!(!browser.has("table.runs").await && browser.text("main").await.contains("No runs match."));
    browser.visit("/ui/runs?trigger=manual").await;
    assert_eq!(browser.attrs("table.runs tbody tr", "data-run").await, expected);
    assert_eq!(app.json("/runs?trigger=schedule").await, json!([]));
    assert_eq!(app.json("/runs?trigger=manual").await.as_array().unwrap().len(), 4);

    // The rejected run: steps in order, the reason, the gate's evidence.
    let rejected_id = rejected["id"].as_str().unwrap();
    browser.visit(&format!("/ui/runs/{rejected_id}")).await;
    assert_eq!(
        browser.texts("table.steps tbody td:nth-child(2)").await,
        ["collect", "merge", "train", "validate", "promote"]
    );
    let reason = rejected["outcome"]["reason"].as_str().unwrap();
    assert_eq!(browser.text("dd.outcome").await, reason);
    let decision: String = sqlx::query_scalar("SELECT decision FROM validations WHERE run_id = $1::uuid")
        .bind(rejected_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(browser.text("p.decision").await, format!("Rejected. {decision}"));
    let checks: Value = sqlx::query_scalar("SELECT checks FROM validations WHERE run_id = $1::uuid")
        .bind(rejected_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let refused: Vec<String> = checks
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["passed"] == false)
        .map(|check| check["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!refused.is_empty());
    assert_eq!(
        browser
            .attrs("table.checks tr[data-passed='false']", "data-check")
            .await,
        refused
    );
    for role in ["candidate", "champion"] {
        let confusion: Value = sqlx::query_scalar(
            "SELECT metrics->'confusion' FROM evaluations
             WHERE run_id = $1::uuid AND role = $2::evaluation_role AND eval_set = 'golden'",
        )
        .bind(rejected_id)
        .bind(role)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let labels: Vec<String> = serde_json::from_value(confusion["labels"].clone()).unwrap();
        for (row, truth) in labels.iter().enumerate() {
            for (col, predicted) in labels.iter().enumerate() {
                let css = format!("#confusion-{role} g.cell[data-true='{truth}'][data-predicted='{predicted}'] text");
                assert_eq!(
                    browser.content(&css).await,
                    confusion["counts"][row][col].to_string(),
                    "{role}: true {truth}, predicted {predicted}"
                );
            }
        }
    }
    browser.screenshot("run-rejected").await;

    // On a phone-sized screen the runs and the rejected run fit the width:
    // only tables and charts scroll sideways, inside their own boxes.
    for path in ["/ui/runs".to_owned(), format!("/ui/runs/{rejected_id}")] {
        let (taken, shown) = browser.widths_at(390, &path).await;
        assert!(shown <= 390, "the window got narrow: {shown}");
        assert_eq!(taken, shown, "{path} fits the width");
    }

    // The other runs' pages.
    browser
        .visit(&format!("/ui/runs/{}", succeeded["id"].as_str().unwrap()))
        .await;
    assert!(browser.text("p.decision").await.starts_with("Passed."));
    browser.screenshot("run-succeeded").await;
    browser.visit(&format!("/ui/runs/{failed_id}")).await;
    assert_eq!(
        browser.attrs("g.attempt[data-step='train']", "data-ended").await,
        ["pending", "pending", "failed", "succeeded"],
        "the retry's attempt follows the three failed ones"
    );
    browser.screenshot("run-retried").await;
    browser.visit(&format!("/ui/runs/{cancelled_id}")).await;
    assert!(
        browser
            .texts("table.events td:nth-child(5)")
            .await
            .contains(&"ops@example.com".to_owned()),
        "the cancel names who asked"
    );
    browser.screenshot("run-cancelled").await;

    // The models: the champion the succeeded run promoted, and its lineage.
    let champion = app.json("/models/wine-quality").await["champion_version"]
        .as_i64()
        .unwrap();
    browser.visit("/ui/models").await;
    assert!(
        browser
            .text("tr[data-model='wine-quality'] td:nth-child(3)")
            .await
            .contains(&format!("v{champion}"))
    );
    // Its recent accuracy is the last verdict's figure for the champion
    // (the cancelled run stopped before validate, if not before collect).
    let mut verdicts = Vec::new();
    for id in [&cancelled_id, &failed_id] {
        let output = app.json(&format!("/runs/{id}")).await["steps"][3]["output"].clone();
        if !output.is_null() {
            verdicts.push(output);
        }
    }
    let verdict = &verdicts[0];
    assert_eq!(verdict["champion"]["version"], champion, "{verdict}");
    let recent = verdict["recent"]["champion_accuracy"].as_f64().unwrap();
    assert_eq!(
        browser.text("tr[data-model='wine-quality'] td:nth-child(5)").await,
        format!("{:.1}%", recent * 100.0)
    );
    browser.screenshot("models").await;
    browser.visit("/ui/models/wine-quality").await;
    let promoted_by_run = succeeded["steps"][4]["output"]["version"].as_i64().unwrap();
    assert!(
        browser
            .text(&format!("tr[data-version='{promoted_by_run}']"))
            .await
            .contains(&succeeded["id"].as_str().unwrap()[..8]),
        "a version links the run that trained it"
    );
    assert_eq!(
        browser
            .texts("table.promotions tbody td:nth-child(2)")
            .await
            .last()
            .map(String::as_str),
        Some("bootstrap")
    );
    browser.screenshot("model").await;
    browser.close().await;
    app.stop().await;
}
