//! Reproducing a promoted version (issue 12): the service refits it from
//! its stored training set with the learner its selection chose, over HTTP
//! and with `retrain models reproduce`, and the bytes match; the version's
//! detail shows how its learner was chosen.

use crate::support::*;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_promoted_version_reproduces_byte_for_byte(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    // Version 1 is the bootstrap's, promoted by it, trained with `auto`.
    let detail = app.json("/models/wine-quality/versions/1").await;
    assert_eq!(detail["promotions"][0]["kind"], "bootstrap", "{detail}");
    let selection = &detail["selection"];
    assert_eq!(selection["requested"]["name"], "auto", "{selection}");
    assert_eq!(selection["chosen"]["name"], detail["kind"], "{selection}");
    assert_eq!(selection["folds"], 3);
    let candidates = selection["candidates"].as_array().unwrap();
    assert!(candidates.len() > 1, "{selection}");
    for candidate in candidates {
        assert_eq!(candidate["fold_accuracy"].as_array().unwrap().len(), 3, "{candidate}");
    }
    assert_ne!(
        detail["kind"], "decision_tree",
        "the tree loses to a stronger learner on wine"
    );

    let refused = app
        .post_without_key("/models/wine-quality/versions/1/reproduce", json!({}))
        .await;
    assert_eq!(refused.status(), 401, "an admin operation");
    let missing = app
        .admin_post("/models/wine-quality/versions/9/reproduce", json!({}))
        .await;
    assert_eq!(missing.status(), 404);

    let answer = app
        .admin_post("/models/wine-quality/versions/1/reproduce", json!({}))
        .await;
    assert_eq!(answer.status(), 200);
    let outcome: Value = answer.json().await.unwrap();
    assert_eq!(outcome["matches"], true, "{outcome}");
    assert_eq!(outcome["stored_sha256"], detail["sha256"]);
    assert_eq!(outcome["reproduced_sha256"], detail["sha256"]);
    assert_eq!(outcome["first_difference"], Value::Null);
    assert_eq!(outcome["learner"], selection["chosen"]);

    let (ok, out, err) = retrain_against(&app, &["models", "reproduce", "wine-quality", "1"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("version 1 reproduced"), "{out}");
    assert!(out.contains(detail["sha256"].as_str().unwrap()), "{out}");
    app.stop().await;
}
