//! The console's actions through their forms: each one's effect in the
//! database and its audit row, and each refused without the token or
//! without the form's CSRF token. The service runs without a worker, so a
//! triggered run stays queued until the test cancels it.

use super::browser::Browser;
use crate::support::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Who signs in to the console in this test.
const OPERATOR: &str = "Zoë at ops";

/// The console's form actions, each with fields that would pass.
fn actions(run: &str) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        ("/ui/runs".into(), vec![("model", "wine-quality"), ("reason", "x")]),
        (format!("/ui/runs/{run}/cancel"), vec![]),
        (format!("/ui/runs/{run}/retry"), vec![]),
        (
            "/ui/models/wine-quality/versions/2/promote".into(),
            vec![("reason", "x")],
        ),
        (
            "/ui/models/wine-quality/quarantine".into(),
            vec![("source", "x"), ("reason", "x")],
        ),
        (
            "/ui/quarantine/1/release".into(),
            vec![("reason", "x"), ("model", "wine-quality")],
        ),
    ]
}

/// Every audit trail the actions write to, counted.
async fn audit_rows(app: &TestApp) -> i64 {
    count(
        &app.pool,
        "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM run_events)
              + (SELECT count(*) FROM promotions) + (SELECT count(*) FROM feedback_quarantines)
              + (SELECT count(*) FROM quarantine_releases)",
    )
    .await
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn actions_need_the_token_and_the_form_and_are_audited(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    assert_eq!(second_model(&app.pool).await, 2);
    let browser = Browser::open(&app.url("")).await;

    // Without the token: no forms on the pages, and posts are refused.
    browser.visit("/ui/models/wine-quality").await;
    assert!(!browser.has("form[action$='/promote']").await);
    assert!(!browser.has("form[action$='/quarantine']").await);
    let before = audit_rows(&app).await;
    let run = uuid::Uuid::new_v4().to_string();
    for (path, fields) in actions(&run) {
        let mut form = fields.clone();
        form.push(("csrf", "guess"));
        let anonymous = app.client.post(app.url(&path)).form(&form).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        assert_eq!(error_code(anonymous).await, "unauthorized");
        // The token's cookie without the page's CSRF token (a forged form).
        let forged = app
            .client
            .post(app.url(&path))
            .header("cookie", format!("retrain_token={TOKEN}"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403, "{path}");
        assert_eq!(error_code(forged).await, "csrf");
    }
    assert_eq!(audit_rows(&app).await, before, "nothing refused left a trace");

    // A wrong token does not sign in.
    browser.visit("/ui/login").await;
    browser
        .submit(
            "form[action='/ui/login']",
            &[("token", "not-the-token"), ("name", OPERATOR)],
        )
        .await;
    assert!(browser.text("p.problem").await.contains("not valid"));
    browser
        .submit("form[action='/ui/login']", &[("token", TOKEN), ("name", OPERATOR)])
        .await;
    assert!(browser.text("header.top").await.contains(OPERATOR));

    // Trigger: the run is queued, asked for by the operator, with the reason.
    browser.visit("/ui/runs").await;
    browser
        .submit(
            "form[method='post'][action='/ui/runs']",
            &[("model", "wine-quality"), ("reason", "checking the console")],
        )
        .await;
    let (id, status, by, reason): (uuid::Uuid, String, String, Option<String>) =
        sqlx::query_as("SELECT id, status::text, requested_by, params->>'reason' FROM runs")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), by.as_str(), reason.as_deref()),
        ("queued", OPERATOR, Some("checking the console"))
    );
    assert_eq!(browser.path().await, format!("/ui/runs/{id}"));

    // Cancel: the run ends cancelled, and its event names the operator.
    browser
        .submit(&format!("form[action='/ui/runs/{id}/cancel']"), &[])
        .await;
    let (status, actor): (String, String) = sqlx::query_as(
        "SELECT r.status::text, e.actor FROM runs r
         JOIN run_events e ON e.run_id = r.id AND e.step IS NULL AND e.to_status = 'cancelled'
         WHERE r.id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), actor.as_str()), ("cancelled", OPERATOR));
    assert!(browser.text("h1").await.contains("cancelled"));

    // Promote version 2, then roll back to version 1, each with its reason.
    browser.visit("/ui/models/wine-quality").await;
    browser
        .submit("tr[data-version='2'] form", &[("reason", "a shallower tree")])
        .await;
    browser
        .submit("tr[data-version='1'] form", &[("reason", "v2 regressed")])
        .await;
    let promotions: Vec<(String, i32, String, String)> = sqlx::query_as(
        "SELECT p.kind::text, v.version, p.actor, p.reason FROM promotions p
         JOIN versions v ON v.id = p.version_id ORDER BY p.id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        promotions[1..],
        [
            (
                "manual".to_owned(),
                2,
                OPERATOR.to_owned(),
                "a shallower tree".to_owned()
            ),
            ("rollback".to_owned(), 1, OPERATOR.to_owned(), "v2 regressed".to_owned()),
        ]
    );
    assert_eq!(
        browser.texts("table.promotions tbody td:nth-child(2)").await[..2],
        ["rollback", "manual"]
    );

    // Quarantine a source, then release the rule.
    browser
        .submit(
            "form[action='/ui/models/wine-quality/quarantine']",
            &[("source", "attacker"), ("reason", "label flipping")],
        )
        .await;
    let (rule, source, actor, why): (i64, String, String, String) =
        sqlx::query_as("SELECT id, source, actor, reason FROM feedback_quarantines")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (source.as_str(), actor.as_str(), why.as_str()),
        ("attacker", OPERATOR, "label flipping")
    );
    browser
        .submit(
            &format!("form[action='/ui/quarantine/{rule}/release']"),
            &[("reason", "a false alarm")],
        )
        .await;
    let (actor, why): (String, String) =
        sqlx::query_as("SELECT actor, reason FROM quarantine_releases WHERE quarantine_id = $1")
            .bind(rule)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((actor.as_str(), why.as_str()), (OPERATOR, "a false alarm"));
    assert!(
        browser
            .text(&format!("tr[data-quarantine='{rule}']"))
            .await
            .contains("a false alarm")
    );

    // Signed out, the forms are gone again.
    browser.submit("form[action='/ui/logout']", &[]).await;
    assert!(browser.text("header.top").await.contains("Sign in"));
    assert!(!browser.has("form[method='post'][action='/ui/runs']").await);
    browser.close().await;
    app.stop().await;
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn a_setting_makes_reading_need_the_token(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &["--ui-requires-token", "true"]).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/ui/runs", "/ui/models", "/ui/models/wine-quality"] {
        let anonymous = no_redirects.get(app.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), 303, "{path}");
        assert_eq!(anonymous.headers()["location"], "/ui/login");
        let operator = no_redirects
            .get(app.url(path))
            .header("cookie", format!("retrain_token={TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(operator.status(), 200, "{path}");
    }
    app.stop().await;
}
