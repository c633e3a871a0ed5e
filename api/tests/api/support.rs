//! Starting the real service on port 0 and talking to it.

use retrain_steps::ml::{Example, Split};
use retrain_testkit::fixtures::{another_model, split_rows};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-admin-token";

/// A running service.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub pool: PgPool,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn pool(connect: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(connect.clone())
        .await
        .unwrap()
}

/// Starts `retrain serve` with `role` and extra flags; waits until ready.
pub async fn spawn(connect: &PgConnectOptions, role: &str, extra: &[&str]) -> TestApp {
    retrain_testkit::telemetry::init();
    let pool = pool(connect).await;
    let mut args = vec![
        "--role",
        role,
        "--bind",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
        "--first-check-secs",
        "3600",
    ];
    args.extend_from_slice(extra);
    let settings = retrain_testkit::service::serve_settings(args);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(retrain_api::startup::serve(
        settings,
        pool.clone(),
        listener,
        shutdown.clone(),
    ));
    let app = TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        shutdown,
        handle: Some(handle),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.get("/ready").await.status() != 200 {
        assert!(Instant::now() < deadline, "the service did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.unwrap()
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .header("x-retrain-actor", "ops@example.com")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn served_version(&self) -> i64 {
        self.json("/model/info").await["version"].as_i64().unwrap()
    }

    /// Stops the service, waits for it, and closes its connections so the
    /// test's database can be dropped.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(40), handle)
                .await
                .expect("stops in time")
                .unwrap()
                .unwrap();
        }
        self.pool.close().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn rows(pool: &PgPool, split: Split) -> Vec<Example> {
    split_rows(pool, split).await
}

/// Stores a second model (trained on the base split, depth 3) without promoting it.
pub async fn second_model(pool: &PgPool) -> i32 {
    another_model(pool, 3).await
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    retrain_testkit::db::count(pool, sql).await
}

/// Polls until `check` holds, or panics after `secs`.
pub async fn eventually<F, Fut>(secs: u64, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    retrain_testkit::eventually(Duration::from_secs(secs), what, check).await;
}

pub fn features(example: &Example) -> Value {
    json!(example.features)
}

/// The error code of an error response, checking the one error shape.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "error shape: {body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "error shape: {body}");
    body["error"]["code"].as_str().unwrap().to_owned()
}
