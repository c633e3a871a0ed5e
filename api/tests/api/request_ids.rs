//! Request ids (case 13 of issue 10): every answer carries `x-request-id`,
//! the client's own if it is sane, else one the service makes; and the log
//! line of an error names it, so a client's report finds the server's log.

use crate::support::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("an x-request-id header")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn get_with_id(app: &TestApp, path: &str, id: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("x-request-id", id)
        .send()
        .await
        .unwrap()
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn every_answer_carries_a_request_id(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    // Made by the service when the client sends none: a new UUID each time.
    let first = request_id(&app.get("/health").await);
    let second = request_id(&app.get("/health").await);
    assert!(uuid::Uuid::parse_str(&first).is_ok(), "{first}");
    assert_ne!(first, second);

    // The client's own is echoed.
    let echoed = get_with_id(&app, "/health", "client-7f3a:retry=2").await;
    assert_eq!(echoed.status(), 200);
    assert_eq!(request_id(&echoed), "client-7f3a:retry=2");

    // One that could break a log line is replaced.
    for insane in ["two words", "quote\"d", &"k".repeat(201)] {
        let replaced = request_id(&get_with_id(&app, "/health", insane).await);
        assert!(
            uuid::Uuid::parse_str(&replaced).is_ok(),
            "{insane:?} became {replaced:?}"
        );
    }

    // Errors carry it too.
    let refused = get_with_id(&app, "/runs/not-a-uuid", "err-42").await;
    assert_eq!(refused.status(), 400);
    assert_eq!(request_id(&refused), "err-42");
    let unauthorized = app
        .client
        .post(app.url("/runs"))
        .header("x-request-id", "err-43")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(request_id(&unauthorized), "err-43");
    assert_eq!(error_code(unauthorized).await, "unauthorized");
    app.stop().await;
}

/// Log lines written while the test's service runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl MakeWriter<'_> for Captured {
    type Writer = Captured;

    fn make_writer(&self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn an_error_log_line_names_the_request_id(_: PgPoolOptions, connect: PgConnectOptions) {
    // The test's runtime runs the service on this thread, so a subscriber
    // set for this thread sees the service's log. With a single subscriber
    // registered, tracing-core takes a shortcut that lets another test's
    // thread decide, from its own (absent) subscriber, that a log site is
    // never of interest; a second, silent one keeps every site asked of all.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn(&connect, "api", &[]).await;
    let refused = get_with_id(&app, "/runs/not-a-uuid", "find-me-in-the-log").await;
    assert_eq!(refused.status(), 400);
    let logged = |lines: &[String]| {
        lines
            .iter()
            .any(|line| line.contains("request refused") && line.contains("request_id=find-me-in-the-log"))
    };
    eventually(10, "the refusal is logged with its request id", || async {
        logged(&captured.lines())
    })
    .await;
    app.stop().await;
}
