//! Client keys (issue 15): who may send feedback, who the rows are from,
//! and who did an admin action, on the real service.

use crate::support::*;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::{Duration, Instant};

fn body(example: &retrain_steps::ml::Example, source: &str) -> Value {
    json!({"features": features(example), "correct_label": example.label, "source": source})
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn feedback_without_a_valid_key_with_its_scope_is_refused_and_nothing_is_stored(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = spawn(&connect, "api", &[]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let predictor = app.make_key("predictor", &["predict"]).await;
    let sender = app.make_key("sender", &["feedback"]).await;
    let refusals = [
        (
            app.post_without_key("/feedback", body(&example, "x")).await,
            401,
            "unauthorized",
        ),
        (
            app.post_as("rtk_not-a-key", "/feedback", body(&example, "x")).await,
            401,
            "unauthorized",
        ),
        (
            app.post_as(&predictor, "/feedback", body(&example, "x")).await,
            403,
            "forbidden",
        ),
        // A feedback key is no admin key.
        (
            app.post_as(&sender, "/runs", json!({"reason": "x"})).await,
            403,
            "forbidden",
        ),
    ];
    for (response, status, code) in refusals {
        assert_eq!(response.status(), status);
        assert_eq!(error_code(response).await, code);
    }
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 0);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 0);

    // The key works until it is revoked, then is refused at once.
    assert_eq!(
        app.post_as(&sender, "/feedback", body(&example, "x")).await.status(),
        201
    );
    let revoked = app.admin_post("/keys/sender/revoke", json!({})).await;
    assert_eq!(revoked.status(), 200);
    let record: Value = revoked.json().await.unwrap();
    assert_eq!(record["revoked_by"], "ops@example.com");
    let refused = app.post_as(&sender, "/feedback", body(&example, "x")).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(error_code(refused).await, "unauthorized");
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 1);

    // The audit trail: who made and revoked which key; the key itself is
    // nowhere in the database.
    let events: Vec<(String, String, String)> =
        sqlx::query_as("SELECT key_name, action, actor FROM client_key_events WHERE key_name <> 'tests' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let actor = "ops@example.com".to_owned();
    assert_eq!(
        events,
        [
            ("predictor".to_owned(), "create".to_owned(), actor.clone()),
            ("sender".to_owned(), "create".to_owned(), actor.clone()),
            ("sender".to_owned(), "revoke".to_owned(), actor),
        ]
    );
    let listed = app
        .client
        .get(app.url("/keys"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let listed = listed.text().await.unwrap();
    assert!(
        listed.contains("\"predictor\"") && !listed.contains(&predictor),
        "{listed}"
    );
    let dump: String = sqlx::query_scalar("SELECT string_agg(k::text, ' ') FROM client_keys k")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!dump.contains(&sender[4..]), "{dump}");
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_key_revoked_on_one_replica_is_refused_by_the_other_within_seconds(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (one, other) = (spawn(&connect, "api", &[]).await, spawn(&connect, "api", &[]).await);
    let example = rows(&one.pool, Split::Pool).await.remove(0);
    let key = one.make_key("leaving", &["feedback"]).await;
    // The other replica has looked the key up and remembers it.
    assert_eq!(
        other.post_as(&key, "/feedback", body(&example, "x")).await.status(),
        201
    );
    assert_eq!(one.admin_post("/keys/leaving/revoke", json!({})).await.status(), 200);
    let revoked = Instant::now();
    loop {
        let status = other.post_as(&key, "/feedback", body(&example, "x")).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 201);
        assert!(revoked.elapsed() < Duration::from_secs(3), "still accepted after 3 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    other.stop().await;
    one.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn rows_are_the_sending_keys_whatever_the_body_claims(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let alice = app.make_key("alice", &["feedback"]).await;
    let bob = app.make_key("bob", &["feedback"]).await;
    for (key, claims) in [(&alice, "bob"), (&bob, "alice"), (&alice, "alice")] {
        assert_eq!(
            app.post_as(key, "/feedback", body(&example, claims)).await.status(),
            201
        );
    }
    let stored: Vec<(String, String)> = sqlx::query_as("SELECT source, sub_label FROM feedback ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = stored.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(pairs, [("alice", "bob"), ("bob", "alice"), ("alice", "alice")]);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn quarantining_a_key_holds_whatever_source_its_bodies_claim(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let pool_rows = rows(&app.pool, Split::Pool).await;
    let rotating = app.make_key("rotating", &["feedback"]).await;
    let honest = app.make_key("honest", &["feedback"]).await;
    let send = |key: &str, range: std::ops::Range<usize>| {
        let bodies: Vec<Value> = range.map(|i| body(&pool_rows[i], &format!("source-{i}"))).collect();
        let key = key.to_owned();
        let app = &app;
        async move { send_all_as(app, &key, bodies).await }
    };
    send(&rotating, 0..20).await;
    let rule = app
        .admin_post(
            "/feedback/quarantine",
            json!({"source": "rotating", "reason": "rotating sources"}),
        )
        .await;
    assert_eq!(rule.status(), 201);
    assert_eq!(rule.json::<Value>().await.unwrap()["matched_rows"], 20);
    // New source names on every request change nothing; another key's rows train.
    send(&rotating, 20..40).await;
    send(&honest, 40..50).await;
    let quarantined = |source: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM feedback f WHERE f.source = $1 AND feedback_quarantined_under(f, NULL)",
            )
            .bind(source)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!((quarantined("rotating").await, quarantined("honest").await), (40, 0));
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn admin_actions_record_the_acting_keys_name(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let ops = app.make_key("ops-bot", &["admin"]).await;
    let trigger = |actor: Option<&'static str>| {
        let mut request = app.client.post(app.url("/runs")).bearer_auth(&ops);
        if let Some(actor) = actor {
            request = request.header("x-retrain-actor", actor);
        }
        request.json(&json!({"reason": "keys test"})).send()
    };
    let run: Value = trigger(Some("alice")).await.unwrap().json().await.unwrap();
    assert_eq!(run["requested_by"], "ops-bot (alice)", "{run}");
    let id = run["id"].as_str().unwrap();
    let cancel = app
        .client
        .post(app.url(&format!("/runs/{id}/cancel")))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let again: Value = trigger(None).await.unwrap().json().await.unwrap();
    assert_eq!(again["requested_by"], "ops-bot", "{again}");
    let made = app
        .client
        .post(app.url("/keys"))
        .bearer_auth(&ops)
        .json(&json!({"name": "made-by-bot", "scopes": ["feedback"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.json::<Value>().await.unwrap()["created_by"], "ops-bot");
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_key_is_made_once_per_name_with_known_scopes(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    app.make_key("once", &["feedback"]).await;
    let refusals = [
        (json!({"name": "once", "scopes": ["feedback"]}), 409, "key_exists"),
        (
            json!({"name": "admin", "scopes": ["feedback"]}),
            422,
            "invalid_key_name",
        ),
        (
            json!({"name": "has space", "scopes": ["feedback"]}),
            422,
            "invalid_key_name",
        ),
        (json!({"name": "none", "scopes": []}), 422, "invalid_scopes"),
        (json!({"name": "odd", "scopes": ["root"]}), 422, "invalid_body"),
        (
            json!({"name": "elsewhere", "scopes": ["feedback"], "model": "no-such-model"}),
            404,
            "not_found",
        ),
    ];
    for (request, status, code) in refusals {
        let response = app.admin_post("/keys", request.clone()).await;
        assert_eq!(response.status(), status, "{request}");
        assert_eq!(error_code(response).await, code, "{request}");
    }
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM client_keys").await,
        2,
        "tests and once"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_key_for_one_model_cannot_send_another_models_feedback(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let created = app
        .admin_post(
            "/keys",
            json!({"name": "wine-only", "scopes": ["feedback"], "model": "wine-quality"}),
        )
        .await;
    let key = created.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let wine = app
        .post_as(&key, "/models/wine-quality/feedback", body(&example, "x"))
        .await;
    assert_eq!(wine.status(), 201);
    let other = app.post_as(&key, "/models/other/feedback", body(&example, "x")).await;
    assert_eq!(other.status(), 403);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_service_refuses_to_start_with_a_weak_admin_token(_: PgPoolOptions, connect: PgConnectOptions) {
    let database_url = retrain_testkit::db::url_of(&connect);
    for token in ["change-me", "short-token"] {
        let (ok, _, err) = tokio::task::spawn_blocking({
            let url = database_url.clone();
            move || {
                retrain(
                    &[
                        "serve",
                        "--bind",
                        "127.0.0.1:0",
                        "--role",
                        "api",
                        "--admin-token",
                        token,
                    ],
                    Some(&url),
                )
            }
        })
        .await
        .unwrap();
        assert!(!ok, "started with {token}");
        assert!(err.contains("refusing to start"), "{err}");
        assert!(!err.contains(token), "the token is not printed: {err}");
    }
}

#[test]
fn the_compose_file_has_no_default_secret() {
    let compose = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml")).unwrap();
    for secret in [
        "RETRAIN_ADMIN_TOKEN",
        "POSTGRES_PASSWORD",
        "GRAFANA_DB_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    ] {
        assert!(!compose.contains(&format!("${{{secret}:-")), "{secret} has a default");
        assert!(compose.contains(&format!("${{{secret}:?")), "{secret} is not demanded");
    }
    assert!(!compose.contains("change-me"));
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_console_takes_any_key_with_the_admin_scope(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let admin = app.make_key("console-admin", &["admin"]).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |key: String| {
        no_redirects
            .post(app.url("/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={key}&name=alice"))
            .send()
    };
    let signed_in = login(admin).await.unwrap();
    assert_eq!(signed_in.status(), 303);
    assert!(signed_in.headers().get_all("set-cookie").iter().count() == 2);
    assert_eq!(login(KEY.to_owned()).await.unwrap().status(), 401, "a feedback key");
    assert_eq!(login("rtk_unknown".to_owned()).await.unwrap().status(), 401);
    app.stop().await;
}
