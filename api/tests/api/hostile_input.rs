//! Hostile strings in every string field — SQL, very long text, unicode edge
//! cases, control characters, NUL and lone surrogates — are stored verbatim
//! or refused with a documented 4xx: never executed, never a 5xx.
//!
//! The rule for free text (feedback and quarantine `source`, every `reason`,
//! `X-Retrain-Actor`): 1 to N characters (200 for sources and the actor,
//! 1,000 for reasons), not blank, no control characters but newline and tab.

use crate::support::*;
use reqwest::header::HeaderValue;
use retrain_steps::ml::Split;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn hostile_strings() -> Vec<String> {
    let mut strings: Vec<String> = [
        "'; DROP TABLE feedback; --",
        "\" OR 1=1 --",
        "1); DELETE FROM runs WHERE (1=1",
        "$$; SELECT pg_sleep(30); $$",
        "Robert'); DROP TABLE models;--",
        "%s%s%s%n %x",
        "{{7*7}} ${7*7} <script>alert(1)</script>",
        "\\x00 \\u0000 \\ud800",
        "\u{200F}right-to-left mark",
        "\u{202E}override\u{202C}",
        "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467} family",
        "\u{1F680}",
        "e\u{301}\u{301}\u{301}",
        "\u{FEFF}byte order mark",
        "zero\u{200B}width",
        "\u{FFFF}\u{FFFE}",
        "\u{10FFFF}",
        "日本語のテキスト",
        "مرحبا بالعالم",
        "line\nbreak",
        "tab\there",
        "nul\u{0}byte",
        "\u{0}",
        "bell\u{7}",
        "escape\u{1B}[31m",
        "delete\u{7F}",
        "next line\u{85}",
        "carriage\rreturn",
        "",
        "   ",
    ]
    .map(String::from)
    .into();
    strings.push("a".repeat(200));
    strings.push("a".repeat(201));
    strings.push("\u{E9}".repeat(200));
    strings.push("\u{1F680}".repeat(1_000));
    strings.push("x".repeat(1_001));
    strings.push("y".repeat(100_000));
    strings
}

/// The documented rule for free text.
fn acceptable(text: &str, max_chars: usize) -> bool {
    !text.trim().is_empty()
        && text.chars().count() <= max_chars
        && !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// A 2xx, or the 4xx the rule predicts with its code; never a 5xx.
async fn expect(response: reqwest::Response, accepted: bool, refused_code: &str, what: &str) -> Value {
    let status = response.status();
    assert!(!status.is_server_error(), "{what}: {status}");
    let body: Value = response.json().await.unwrap();
    if accepted {
        assert!(status.is_success(), "{what}: {status} {body}");
    } else {
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["error"]["code"], refused_code, "{what}: {body}");
    }
    body
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn hostile_text_is_stored_verbatim_or_refused(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let second = second_model(&app.pool).await;
    let mut stored_feedback = 0;
    let mut promote_to = second;
    for (i, text) in hostile_strings().iter().enumerate() {
        let what = format!("string {i} ({} chars)", text.chars().count());

        // Feedback source.
        let body = json!({"features": features(&example), "correct_label": example.label, "source": text});
        let answer = expect(
            app.post("/feedback", body).await,
            acceptable(text, 200),
            "invalid_source",
            &what,
        )
        .await;
        if let Some(id) = answer["feedback_id"].as_i64() {
            stored_feedback += 1;
            let source: String = sqlx::query_scalar("SELECT sub_label FROM feedback WHERE id = $1")
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
            assert_eq!(&source, text, "{what}");
        }

        // Quarantine source, then reason.
        let by_source = json!({"source": text, "reason": "hostile input test"});
        let answer = expect(
            app.admin_post("/feedback/quarantine", by_source).await,
            acceptable(text, 200),
            "invalid_source",
            &what,
        )
        .await;
        if let Some(id) = answer["quarantine_id"].as_i64() {
            let source: String = sqlx::query_scalar("SELECT source FROM feedback_quarantines WHERE id = $1")
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
            assert_eq!(&source, text, "{what}");
        }
        let with_reason = json!({"source": "hostile-test", "reason": text});
        let answer = expect(
            app.admin_post("/feedback/quarantine", with_reason).await,
            acceptable(text, 1_000),
            "invalid_reason",
            &what,
        )
        .await;
        if let Some(id) = answer["quarantine_id"].as_i64() {
            let reason: String = sqlx::query_scalar("SELECT reason FROM feedback_quarantines WHERE id = $1")
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
            assert_eq!(&reason, text, "{what}");
        }

        // Promotion reason (alternating between two models).
        let promote = app
            .admin_post(
                &format!("/models/wine-quality/versions/{promote_to}/promote"),
                json!({"reason": text}),
            )
            .await;
        let answer = expect(promote, acceptable(text, 1_000), "invalid_reason", &what).await;
        if let Some(id) = answer["id"].as_i64() {
            assert_eq!(answer["reason"].as_str(), Some(text.as_str()), "{what}");
            let reason: String = sqlx::query_scalar("SELECT reason FROM promotions WHERE id = $1")
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
            assert_eq!(&reason, text, "{what}");
            promote_to = if promote_to == second { 1 } else { second };
        }

        // Run reason; the run is cancelled so the next trigger starts a new one.
        let trigger = app.admin_post("/runs", json!({"reason": text})).await;
        let answer = expect(trigger, acceptable(text, 1_000), "invalid_reason", &what).await;
        if let Some(id) = answer["id"].as_str() {
            assert_eq!(answer["params"]["reason"].as_str(), Some(text.as_str()), "{what}");
            let detail = app.json(&format!("/runs/{id}")).await;
            assert_eq!(detail["params"]["reason"].as_str(), Some(text.as_str()), "{what}");
            let cancel = app.admin_post(&format!("/runs/{id}/cancel"), json!(null)).await;
            assert_eq!(cancel.status(), 200, "{what}");
        }

        // Past 64 KiB, request line and headers are refused by the server
        // before any handler runs.
        if text.len() > 64 * 1024 {
            let long_header = app
                .client
                .get(app.url("/health"))
                .header("x-retrain-actor", text.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(long_header.status(), 431, "{what}");
            // (An HTTP client library will not even build such a URL.)
            let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
            let request = format!("GET /runs/{text} HTTP/1.1\r\nhost: x\r\n\r\n");
            tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
                .await
                .unwrap();
            let mut head = [0u8; 12];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut head)
                .await
                .unwrap();
            let head = String::from_utf8_lossy(&head).into_owned();
            assert!(head == "HTTP/1.1 414" || head == "HTTP/1.1 431", "{what}: {head}");
            continue;
        }

        // The actor header, where HTTP can carry the string at all (no NUL,
        // CR or LF; the raw-socket test in slow_clients covers those).
        if let Ok(value) = HeaderValue::from_bytes(text.as_bytes()) {
            let trigger = app
                .client
                .post(app.url("/runs"))
                .bearer_auth(TOKEN)
                .header("x-retrain-actor", value)
                .send()
                .await
                .unwrap();
            let answer = expect(trigger, acceptable(text.trim(), 200), "invalid_actor", &what).await;
            if let Some(id) = answer["id"].as_str() {
                assert_eq!(answer["requested_by"].as_str(), Some(text.trim()), "{what}");
                let cancel = app
                    .client
                    .post(app.url(&format!("/runs/{id}/cancel")))
                    .bearer_auth(TOKEN)
                    .header("x-retrain-actor", HeaderValue::from_bytes(text.as_bytes()).unwrap())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(cancel.status(), 200, "{what}");
                let actor: String = sqlx::query_scalar(
                    "SELECT actor FROM run_events WHERE run_id = $1::uuid AND to_status = 'cancelled'",
                )
                .bind(id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
                assert_eq!(actor, text.trim(), "{what}");
            }
        }

        // Idempotency-Key: printable ASCII only.
        if let Ok(value) = HeaderValue::from_bytes(text.as_bytes()) {
            let key_ok = text.len() <= 200
                && !text.is_empty()
                && text.bytes().all(|b| (0x20..=0x7e).contains(&b))
                && !text.trim().is_empty();
            let body = json!({"features": features(&example), "correct_label": example.label});
            let response = app
                .client
                .post(app.url("/feedback"))
                .bearer_auth(&app.key)
                .header("idempotency-key", value)
                .json(&body)
                .send()
                .await
                .unwrap();
            expect(response, key_ok, "invalid_idempotency_key", &what).await;
            if key_ok {
                stored_feedback += 1;
                let stored = count(
                    &app.pool,
                    &format!(
                        "SELECT count(*) FROM idempotency_keys WHERE key = {}",
                        sql_literal(text.trim())
                    ),
                )
                .await;
                assert_eq!(stored, 1, "{what}");
            }
        }

        // Path and query parameters: parsed or refused, never looked up as text.
        for template in ["models", "runs"] {
            let mut url = reqwest::Url::parse(&app.url("/")).unwrap();
            url.path_segments_mut().unwrap().clear().push(template).push(text);
            let response = app.client.get(url.clone()).send().await.unwrap();
            let status = response.status().as_u16();
            assert!([400, 404].contains(&status), "{what} GET {url}: {status}");
            let _ = error_code(response).await;
            for action in if template == "models" {
                &["promote"][..]
            } else {
                &["cancel", "retry"][..]
            } {
                let mut url = url.clone();
                url.path_segments_mut().unwrap().push(action);
                let response = app
                    .client
                    .post(url.clone())
                    .bearer_auth(TOKEN)
                    .json(&json!({"reason": "x"}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                assert!([400, 404].contains(&status), "{what} POST {url}: {status}");
                let _ = error_code(response).await;
            }
        }
        for name in ["status", "limit"] {
            let response = app
                .client
                .get(app.url("/runs"))
                .query(&[(name, text)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{what} ?{name}=");
            assert_eq!(error_code(response).await, "invalid_query");
        }
    }

    // Nothing was executed: every table is there with what it should hold.
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, stored_feedback);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM versions").await, 2);
    for table in [
        "feedback",
        "runs",
        "models",
        "promotions",
        "run_events",
        "feedback_quarantines",
    ] {
        let exists: bool = sqlx::query_scalar(&format!("SELECT to_regclass('{table}') IS NOT NULL"))
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(exists, "{table}");
    }
    app.stop().await;
}

fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn escapes_that_cannot_be_stored_are_refused(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let example = rows(&app.pool, Split::Pool).await.remove(0);
    let features = serde_json::to_string(&example.input.features()).unwrap();
    let label = example.label;
    // JSON escapes decode to a NUL (PostgreSQL text cannot hold one) or to
    // a lone surrogate (not a character at all).
    let cases = [
        (
            "/feedback",
            format!(r#"{{"features": {features}, "correct_label": {label}, "source": "a\u0000b"}}"#),
            422,
            "invalid_source",
        ),
        (
            "/feedback",
            format!(r#"{{"features": {features}, "correct_label": {label}, "source": "\ud800"}}"#),
            400,
            "malformed_json",
        ),
        (
            "/feedback",
            format!(r#"{{"features": {features}, "correct_label": {label}, "source": "\udc00x"}}"#),
            400,
            "malformed_json",
        ),
        (
            "/feedback/quarantine",
            r#"{"source": "\u0000", "reason": "x"}"#.to_owned(),
            422,
            "invalid_source",
        ),
        (
            "/feedback/quarantine",
            r#"{"source": "x", "reason": "\ud800"}"#.to_owned(),
            400,
            "malformed_json",
        ),
        (
            "/models/wine-quality/versions/1/promote",
            r#"{"reason": "\u0000"}"#.to_owned(),
            422,
            "invalid_reason",
        ),
        ("/runs", r#"{"reason": "x\u0000"}"#.to_owned(), 422, "invalid_reason"),
        ("/runs", r#"{"reason": "\ud83d"}"#.to_owned(), 400, "malformed_json"),
        (
            "/runs",
            "{\"reason\": \"raw\u{0}nul\"}".to_owned(),
            400,
            "malformed_json",
        ),
    ];
    for (path, body, status, code) in cases {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path} {body}");
        assert_eq!(error_code(response).await, code, "{path} {body}");
    }
    // Invalid UTF-8 in the body itself is malformed JSON.
    let response = app
        .client
        .post(app.url("/runs"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(&b"{\"reason\": \"\xff\xfe\"}"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "malformed_json");
    // A body past the limit is refused before it is parsed.
    let huge = json!({"features": example.input.features(), "correct_label": label, "source": "z".repeat(2 << 20)});
    let response = app.post("/feedback", huge).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "body_too_large");
    // The pair of a valid surrogate escape is one character, stored as such.
    let pair = format!(r#"{{"features": {features}, "correct_label": {label}, "source": "\ud83d\ude80"}}"#);
    let response = app
        .client
        .post(app.url("/feedback"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(pair)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["feedback_id"].as_i64().unwrap();
    let source: String = sqlx::query_scalar("SELECT sub_label FROM feedback WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(source, "\u{1F680}");
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback").await, 1);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM runs").await, 0);
    assert_eq!(count(&app.pool, "SELECT count(*) FROM feedback_quarantines").await, 0);
    app.stop().await;
}
