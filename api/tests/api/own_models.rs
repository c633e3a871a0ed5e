//! Bring your own model, end to end: a tabular model from a user's CSV
//! (through `retrain models create`) and a text model from a user's JSON
//! lines (through `POST /models`) each get version 1 by a normal run, answer
//! predictions, take feedback, retrain into version 2 that every request
//! then meets (hot swap), and roll back. The data is generated: fruit here,
//! tickets by the demo's generator.

use crate::support::*;
use retrain_api::demo::tickets::{Seeded, Ticket, Tickets, Vocabulary};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A fruit: weight, sugar and acidity, labelled by rules a tree can learn.
fn fruit(rng: &mut Seeded) -> ([f64; 3], &'static str) {
    let weight = (100.0 + 200.0 * rng.unit()).round();
    let sugar = (20.0 * rng.unit() * 10.0).round() / 10.0;
    let acidity = (5.0 * rng.unit() * 100.0).round() / 100.0;
    let kind = if acidity > 3.5 {
        "lemon"
    } else if weight > 200.0 {
        "orange"
    } else {
        "apple"
    };
    ([weight, sugar, acidity], kind)
}

async fn run_ends(app: &TestApp, run: &Value) -> Value {
    let id = run["id"].as_str().unwrap().to_owned();
    eventually(60, "the run ends", || async {
        let detail = app.json(&format!("/runs/{id}")).await;
        !matches!(detail["status"].as_str(), Some("queued" | "running"))
    })
    .await;
    app.json(&format!("/runs/{id}")).await
}

async fn serves(app: &TestApp, model: &str, input: Value, version: i64) {
    eventually(10, &format!("{model} serves version {version}"), || async {
        let answer: Value = app
            .post(&format!("/models/{model}/predict"), input.clone())
            .await
            .json()
            .await
            .unwrap();
        answer["model_version"] == version
    })
    .await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_tabular_model_from_a_users_csv_learns_swaps_and_rolls_back(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "all", &[]).await;
    let mut rng = Seeded::new(7);
    // Semicolons and quoted headers, as spreadsheets write them.
    let mut csv = String::from("\"weight\";\"sugar\";\"acidity\";\"kind\"\n");
    for _ in 0..600 {
        let ([w, s, a], kind) = fruit(&mut rng);
        csv.push_str(&format!("{w};{s};{a};{kind}\n"));
    }
    let dir = std::env::temp_dir().join(format!("retrain-own-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fruit.csv");
    std::fs::write(&file, csv).unwrap();

    let base = app.url("");
    let file_arg = file.to_str().unwrap().to_owned();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        retrain(
            &[
                "models", "create", "fruit", "--kind", "tabular", "--data", &file_arg, "--label", "kind", "--url",
                &base, "--token", TOKEN,
            ],
            None,
        )
    })
    .await
    .unwrap();
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("imported data set version 1 of fruit"), "{out}");
    assert!(out.contains("version 1 of fruit serves"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();

    let model = app.json("/models/fruit").await;
    assert_eq!(model["feature_names"], json!(["weight", "sugar", "acidity"]));
    assert_eq!(model["classes"], json!(["apple", "lemon", "orange"]));
    // By name or in column order; the model's own classes.
    let by_name = json!({"features": {"sugar": 12.0, "acidity": 4.5, "weight": 150.0}});
    serves(&app, "fruit", by_name.clone(), 1).await;
    let answer: Value = app
        .post("/models/fruit/predict", by_name.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (answer["model"].as_str(), answer["label"].as_str()),
        (Some("fruit"), Some("lemon")),
        "{answer}"
    );
    assert_eq!(answer["model_version"], 1);
    let ordered: Value = app
        .post("/models/fruit/predict", json!({"features": [250.0, 10.0, 1.0]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ordered["label"], "orange", "{ordered}");
    let text = app.post("/models/fruit/predict", json!({"text": "a lemon"})).await;
    assert_eq!(text.status(), 422);
    assert_eq!(error_code(text).await, "wrong_input");
    let nowhere = app
        .post("/models/plum/predict", json!({"features": [1.0, 2.0, 3.0]}))
        .await;
    assert_eq!(
        (nowhere.status().as_u16(), error_code(nowhere).await.as_str()),
        (404, "unknown_model")
    );

    // Feedback: fresh fruit with their true kinds; then a run promotes version 2.
    let mut rng = Seeded::new(99);
    for _ in 0..40 {
        let (features, kind) = fruit(&mut rng);
        let stored = app
            .post(
                "/models/fruit/feedback",
                json!({"features": features, "correct_label": kind}),
            )
            .await;
        assert_eq!(stored.status(), 201);
    }
    let wrong_class = app
        .post(
            "/models/fruit/feedback",
            json!({"features": [1.0, 2.0, 3.0], "correct_label": "pear"}),
        )
        .await;
    assert_eq!(error_code(wrong_class).await, "unknown_label");
    let run: Value = app
        .admin_post("/models/fruit/runs", json!({"reason": "feedback"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["subject"], "fruit");
    let detail = run_ends(&app, &run).await;
    assert_eq!(detail["status"], "succeeded", "{detail}");
    serves(&app, "fruit", by_name.clone(), 2).await;
    // The wine model was not touched.
    assert_eq!(app.served_version().await, 1);

    let rollback = app
        .admin_post(
            "/models/fruit/versions/1/promote",
            json!({"reason": "back to the first"}),
        )
        .await;
    assert_eq!(rollback.status(), 200);
    let rollback: Value = rollback.json().await.unwrap();
    assert_eq!(
        (rollback["kind"].as_str(), rollback["model"].as_str()),
        (Some("rollback"), Some("fruit"))
    );
    serves(&app, "fruit", by_name, 1).await;
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_text_model_from_a_users_json_lines_learns_swaps_and_rolls_back(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "all", &[]).await;
    let lines = Tickets::new(11).json_lines(450, Vocabulary::Known);
    let created = app
        .client
        .post(app.url("/models?name=tickets&kind=text&text=body&label=category"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(lines.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["dataset_version"], 1);
    let classes = created["classes"].as_object().unwrap();
    assert_eq!(classes.len(), 3, "{created}");
    assert!(classes.values().all(|c| c["golden"].as_u64().unwrap() > 0), "{created}");
    let detail = run_ends(&app, &created["run"]).await;
    assert_eq!(detail["status"], "succeeded", "version 1 by a normal run: {detail}");

    let question = json!({"text": "please my invoice shows a double charge"});
    serves(&app, "tickets", question.clone(), 1).await;
    let answer: Value = app
        .post("/models/tickets/predict", question.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (answer["label"].as_str(), answer["model_version"].as_i64()),
        (Some("billing"), Some(1)),
        "{answer}"
    );
    let features = app.post("/models/tickets/predict", json!({"features": [1.0]})).await;
    assert_eq!(error_code(features).await, "wrong_input");
    let again = app
        .client
        .post(app.url("/models?name=tickets&kind=text&text=body&label=category"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409, "the name is taken");

    // Feedback citing predictions, then a run that promotes version 2.
    let mut tickets = Tickets::new(12);
    for _ in 0..40 {
        let Ticket { text, category } = tickets.ticket(Vocabulary::Known);
        let predicted: Value = app
            .post("/models/tickets/predict", json!({"text": text}))
            .await
            .json()
            .await
            .unwrap();
        let stored = app
            .post(
                "/models/tickets/feedback",
                json!({"text": text, "correct_label": category, "prediction_id": predicted["prediction_id"]}),
            )
            .await;
        assert_eq!(stored.status(), 201);
    }
    let run: Value = app
        .admin_post("/models/tickets/runs", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let detail = run_ends(&app, &run).await;
    assert_eq!(detail["status"], "succeeded", "{detail}");
    serves(&app, "tickets", question.clone(), 2).await;
    let versions = app.json("/models/tickets/versions").await;
    // The default learner, auto, chose the linear SVM on these tickets.
    assert_eq!(versions[0]["kind"], "text_linear");
    assert_eq!(versions[0]["feedback_to"].as_i64().is_some(), true);

    let rollback = app
        .admin_post("/models/tickets/versions/1/promote", json!({"reason": "back"}))
        .await;
    assert_eq!(rollback.status(), 200);
    serves(&app, "tickets", question, 1).await;
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_bad_file_names_its_line_and_column_and_stores_nothing(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let upload = |query: &'static str, content_type: &'static str, body: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url(&format!("/models?{query}")))
                .bearer_auth(TOKEN)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let cases = [
        (
            "name=a&kind=tabular",
            "text/csv",
            "x,y,label\n1,2,a\n3,oops,b\n",
            "line 3",
            "y",
        ),
        (
            "name=a&kind=tabular",
            "text/csv",
            "x,y,label\n1,2,a\n3,4\n",
            "line 3",
            "",
        ),
        (
            "name=a&kind=text",
            "application/x-ndjson",
            "{\"text\": \"fine\", \"label\": \"a\"}\n{\"text\": \"\", \"label\": \"b\"}\n",
            "line 2",
            "text",
        ),
        (
            "name=a&kind=text",
            "application/x-ndjson",
            "{\"text\": \"only\", \"label\": \"a\"}\n{\"text\": \"one\", \"label\": \"a\"}\n",
            "at least two classes",
            "",
        ),
    ];
    for (query, content_type, body, says, column) in cases {
        let response = upload(query, content_type, body).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says) && message.contains(column), "{body}: {message}");
    }
    let bad_name = upload("name=Bad%20Name&kind=text", "application/x-ndjson", "").await;
    assert_eq!(error_code(bad_name).await, "invalid_import");
    let wrong_type = upload("name=a&kind=text", "application/pdf", "").await;
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM models").await,
        1,
        "only the wine model"
    );
    assert_eq!(count(&app.pool, "SELECT count(*) FROM datasets").await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_replica_serves_only_the_models_it_is_told_to(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "all", &["--models", "wine-quality"]).await;
    let created = app
        .client
        .post(app.url("/models?name=tickets&kind=text&text=body&label=category"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(Tickets::new(3).json_lines(300, Vocabulary::Known))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let detail = run_ends(&app, &created["run"]).await;
    assert_eq!(detail["status"], "succeeded", "{detail}");
    let elsewhere = app.post("/models/tickets/predict", json!({"text": "my invoice"})).await;
    assert_eq!(elsewhere.status(), 404);
    assert_eq!(error_code(elsewhere).await, "not_served");
    let ready = app.json("/ready").await;
    assert_eq!(ready["models"], json!({"wine-quality": 1}), "{ready}");
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_golden_file_given_explicitly_only_validates(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "all", &[]).await;
    let csv = |seed: u64, rows: usize| {
        let mut rng = Seeded::new(seed);
        let mut text = String::from("weight,sugar,acidity,kind\n");
        for _ in 0..rows {
            let ([w, s, a], kind) = fruit(&mut rng);
            text.push_str(&format!("{w},{s},{a},{kind}\n"));
        }
        text
    };
    let dir = std::env::temp_dir().join(format!("retrain-golden-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (data, golden) = (dir.join("train.csv"), dir.join("golden.csv"));
    std::fs::write(&data, csv(1, 300)).unwrap();
    std::fs::write(&golden, csv(2, 90)).unwrap();
    let base = app.url("");
    let args = [data.to_str().unwrap().to_owned(), golden.to_str().unwrap().to_owned()];
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        retrain(
            &[
                "models", "create", "fruit", "--kind", "tabular", "--data", &args[0], "--golden", &args[1], "--label",
                "kind", "--url", &base, "--token", TOKEN,
            ],
            None,
        )
    })
    .await
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("300 rows train, 90 golden"),
        "every data row trains, every golden row validates: {out}"
    );
    assert!(out.contains("version 1 of fruit serves"), "{out}");
    let split: Value = sqlx::query_scalar(
        "SELECT split_spec FROM datasets d JOIN models m ON m.id = d.model_id WHERE m.name = 'fruit'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(split["golden"], "file", "{split}");
    assert_eq!(
        split["source"], "train.csv",
        "the data set records the file it came from"
    );

    // Over REST a golden file is the second part; a missing part stores nothing.
    let form = reqwest::multipart::Form::new().text("data", csv(3, 50));
    let refused = app
        .client
        .post(app.url("/models?name=plums&kind=tabular&label=kind&format=csv"))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = refused.status();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("no part \"golden\""), "{message}");
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM models WHERE name = 'plums'").await,
        0
    );
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_model_runs_on_its_own_schedule(_: PgPoolOptions, connect: PgConnectOptions) {
    // Schedules are synced with the registry every second here.
    let app = spawn(&connect, "all", &["--check-every-secs", "1"]).await;
    let create = |cron: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url(&format!(
                    "/models?name=tickets&kind=text&text=body&label=category&cron={cron}"
                )))
                .bearer_auth(TOKEN)
                .header("content-type", "application/x-ndjson")
                .body(Tickets::new(5).json_lines(300, Vocabulary::Known))
                .send()
                .await
                .unwrap()
        }
    };
    let bad = create("every%20monday").await;
    assert_eq!(bad.status(), 422);
    assert_eq!(error_code(bad).await, "invalid_import");
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM models WHERE name = 'tickets'").await,
        0
    );

    // Every two seconds.
    let created = create("%2A%2F2%20%2A%20%2A%20%2A%20%2A%20%2A").await;
    assert_eq!(created.status(), 201);
    assert_eq!(app.json("/models/tickets").await["cron"], "*/2 * * * * *");
    eventually(20, "a scheduled run of the model", || async {
        let runs = app.json("/runs?model=tickets").await;
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["trigger"] == "schedule" && r["subject"] == "tickets")
    })
    .await;
    let wine = app.json("/runs?model=wine-quality").await;
    assert!(
        wine.as_array().unwrap().is_empty(),
        "the wine model has no schedule: {wine}"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_model_registered_empty_gets_its_data_later_and_its_settings_change(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = spawn(&connect, "all", &[]).await;
    // No body: registered empty, data later.
    let empty = app
        .client
        .post(app.url("/models?name=tickets&kind=text&text=body"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 201);
    let empty: Value = empty.json().await.unwrap();
    assert_eq!(
        (empty["classes"].clone(), empty["champion_version"].clone()),
        (json!([]), Value::Null),
        "{empty}"
    );
    let imported = app
        .client
        .post(app.url("/models/tickets/datasets?label=category"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(Tickets::new(8).json_lines(300, Vocabulary::Known))
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 201);
    let imported: Value = imported.json().await.unwrap();
    assert_eq!(run_ends(&app, &imported["run"]).await["status"], "succeeded");

    // Settings: refused out of range, then a strict margin the next run
    // cannot meet (a negative margin: the candidate must be that much better).
    for (bad, says) in [
        (json!({"gate": {"accuracy_floor": 2.0}}), "accuracy_floor"),
        (json!({"threshold": 0}), "threshold"),
        (json!({"cron": "whenever"}), "cron"),
        (json!({"gate": {"alpha": 0.5}}), "alpha"),
        (json!({"gate": {"recent_share": 0.9}}), "recent_share"),
        (json!({"learner": {"name": "random_forest"}}), "does not read text"),
        (
            json!({"learner": {"name": "text_linear", "settings": {"ngrams": 2}}}),
            "ngrams",
        ),
        (
            json!({"learner": {"name": "naive_bayes", "settings": {"ngram_max": 9}}}),
            "ngram_max",
        ),
    ] {
        let response = app
            .client
            .patch(app.url("/models/tickets"))
            .bearer_auth(TOKEN)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{body}");
    }
    let changed: Value = app
        .client
        .patch(app.url("/models/tickets"))
        .bearer_auth(TOKEN)
        .json(&json!({"threshold": 5, "gate": {"margin": -0.5},
                      "learner": {"name": "text_linear", "settings": {"ngram_max": 1}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (changed["threshold"].clone(), changed["gate"].clone()),
        (json!(5), json!({"margin": -0.5})),
        "{changed}"
    );
    let learner = &changed["learner"];
    assert_eq!(
        (learner["name"].clone(), learner["settings"]["ngram_max"].clone()),
        (json!("text_linear"), json!(1)),
        "the settings given, the rest the linear learner's defaults: {changed}"
    );
    assert_eq!(learner["settings"]["weighting"], "TfIdf", "{changed}");
    let mut tickets = Tickets::new(9);
    for _ in 0..5 {
        let Ticket { text, category } = tickets.ticket(Vocabulary::Known);
        let stored = app
            .post(
                "/models/tickets/feedback",
                json!({"text": text, "correct_label": category}),
            )
            .await;
        assert_eq!(stored.status(), 201);
    }
    let run: Value = app
        .admin_post("/models/tickets/runs", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let detail = run_ends(&app, &run).await;
    assert_eq!(
        detail["status"], "rejected",
        "the model's own margin gates it: {detail}"
    );
    assert!(
        detail["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("margin -50 points: fail"),
        "{detail}"
    );
    let versions = app.json("/models/tickets/versions").await;
    let candidate = versions
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["run_id"] == run["id"]))
        .unwrap_or_else(|| panic!("the run's candidate is listed: {versions}"));
    let candidate = app
        .json(&format!("/models/tickets/versions/{}", candidate["version"]))
        .await;
    assert_eq!(
        candidate["selection"]["chosen"]["name"], "text_linear",
        "the changed learner trains the next run: {candidate}"
    );

    // The CLI changes them too, keeping the ones it is not given.
    let (ok, out, err) = retrain_against(&app, &["models", "set", "tickets", "--gate-margin", "-0.1"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("tickets: threshold 5"), "{out}");
    assert_eq!(app.json("/models/tickets").await["gate"], json!({"margin": -0.1}));
    let (ok, out, err) = retrain_against(
        &app,
        &[
            "models",
            "set",
            "tickets",
            "--learner",
            "naive_bayes",
            "--learner-settings",
            r#"{"ngram_max": 2}"#,
        ],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let learner = app.json("/models/tickets").await["learner"].clone();
    assert_eq!(
        (learner["name"].clone(), learner["settings"]["ngram_max"].clone()),
        (json!("naive_bayes"), json!(2)),
        "{learner}"
    );
    app.stop().await;
}
