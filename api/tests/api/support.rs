//! Starting the real service on port 0 and talking to it. Its settings are
//! the defaults and the flags a test gives, never the `RETRAIN_*` variables
//! of the shell the tests run from.

use retrain_api::keys::store::NewKey;
use retrain_api::keys::{self, Scope, Secret};
use retrain_api::settings::{self, DatabaseSettings, ServeSettings};
use retrain_steps::ml::{Example, Split};
use retrain_testkit::fixtures::{another_model, split_rows};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-admin-token-0123456789abcdef";
/// The key of [`TestApp::post`]: a client named `tests` with the predict and feedback scopes.
pub const KEY: &str = "rtk_tests-feedback-key-0123456789abcdef";

/// A running service.
pub struct TestApp {
    pub address: SocketAddr,
    /// A client without a key.
    pub client: reqwest::Client,
    /// A key named `tests` with the predict and feedback scopes, which
    /// [`TestApp::post`] sends.
    pub key: String,
    pub pool: PgPool,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A pool as the service makes one (its server-side timeouts, its check of
/// returned connections), of 20 connections.
pub async fn pool(connect: &PgConnectOptions) -> PgPool {
    service_pool(connect, &["--db-pool", "20"]).await
}

/// A pool as the service makes one, with these database flags.
pub async fn service_pool(connect: &PgConnectOptions, flags: &[&str]) -> PgPool {
    let settings: DatabaseSettings = settings::from_flags(flags).unwrap();
    retrain_api::startup::connect_with(&settings, connect.clone())
        .await
        .unwrap()
}

/// The settings of `retrain serve --role <role>` in a test: the defaults,
/// the test's own flags and `extra`; nothing from the environment.
pub fn serve_settings(role: &str, extra: &[&str]) -> ServeSettings {
    let mut flags = vec![
        "--role",
        role,
        "--bind",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
        "--first-check-secs",
        "3600",
    ];
    flags.extend_from_slice(extra);
    settings::from_flags(&flags).unwrap()
}

/// Starts `retrain serve` with `role` and extra flags; waits until ready.
pub async fn spawn(connect: &PgConnectOptions, role: &str, extra: &[&str]) -> TestApp {
    spawn_on(pool(connect).await, role, extra).await
}

/// Starts `retrain serve` on `pool`; waits until ready.
pub async fn spawn_on(pool: PgPool, role: &str, extra: &[&str]) -> TestApp {
    let settings = serve_settings(role, extra);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(retrain_api::startup::serve(
        settings,
        pool.clone(),
        listener,
        shutdown.clone(),
    ));
    let mut app = TestApp {
        address,
        client: reqwest::Client::new(),
        key: String::new(),
        pool,
        shutdown,
        handle: Some(handle),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.get("/ready").await.status() != 200 {
        assert!(Instant::now() < deadline, "the service did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stored directly, as the same key for every app on the database, so
    // two replicas of a test see one client.
    let tests = NewKey {
        name: "tests",
        scopes: &[Scope::Predict, Scope::Feedback],
        model: None,
        actor: "tests",
    };
    keys::store::create(&app.pool, &tests, &Secret::new(KEY)).await.unwrap();
    app.key = KEY.to_owned();
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// POST with the app's `tests` key, as a client with a feedback key would.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.post_as(&self.key, path, body).await
    }

    /// POST with `key`.
    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POST without a key.
    pub async fn post_without_key(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.unwrap()
    }

    /// Makes a key with `scopes` over the admin API; returns the key.
    pub async fn make_key(&self, name: &str, scopes: &[&str]) -> String {
        let created = self.admin_post("/keys", json!({"name": name, "scopes": scopes})).await;
        assert_eq!(created.status(), 201, "key {name} made");
        created.json::<Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
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

/// A transaction that writes rows as history left them, for fixtures of
/// many finished runs: foreign-key checks and the run state machine's
/// triggers (the engine inserts a run queued and moves it on) are skipped.
pub async fn history(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
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
    json!(example.input.features().expect("the wine data is tabular"))
}

/// The error code of an error response, checking the one error shape.
pub async fn error_code(response: reqwest::Response) -> String {
    error_parts(response).await.0
}

/// The code and message of an error answer, whose one shape it checks.
pub async fn error_parts(response: reqwest::Response) -> (String, String) {
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "error shape: {body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "error shape: {body}");
    let part = |name: &str| body["error"][name].as_str().unwrap().to_owned();
    (part("code"), part("message"))
}

/// What the harness's settings are, printed for
/// [`the_harness_ignores_retrain_variables_in_the_shell`], which runs this
/// test in a child process under another environment.
#[test]
fn print_the_harness_settings() {
    println!("harness settings: {:?}", serve_settings("all", &[]));
}

/// A developer's `RETRAIN_*` variables (or `DATABASE_URL`) do not reach the
/// service a test starts.
#[test]
fn the_harness_ignores_retrain_variables_in_the_shell() {
    let settings_under = |vars: &[(&str, &str)]| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command.args([
            "support::print_the_harness_settings",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ]);
        for (name, _) in std::env::vars() {
            if name.starts_with("RETRAIN_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
        let output = command.envs(vars.iter().copied()).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        stdout
            .lines()
            .find_map(|line| line.split_once("harness settings: "))
            .unwrap_or_else(|| panic!("no settings printed: {stdout}"))
            .1
            .to_owned()
    };
    let clean = settings_under(&[]);
    let shell = settings_under(&[
        ("DATABASE_URL", "postgres://elsewhere/retrain"),
        ("RETRAIN_DB_POOL", "3"),
        ("RETRAIN_DB_STATEMENT_TIMEOUT_MS", "5"),
        ("RETRAIN_THRESHOLD", "1"),
        ("RETRAIN_LEASE_SECS", "3"),
        ("RETRAIN_SCHEDULE", "* * * * * *"),
        ("RETRAIN_GATE_MARGIN", "0.5"),
        ("RETRAIN_TEST_SLOW_STEP", "train:60000"),
    ]);
    assert_eq!(clean, shell);
    assert!(clean.contains("threshold: 20"), "{clean}");
}

/// Runs `retrain ARGS --url <the app> --token TOKEN` off the async threads.
/// Returns (success, stdout, stderr).
pub async fn retrain_against(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["--url".into(), app.url(""), "--token".into(), TOKEN.into()]);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        retrain(&args, None)
    })
    .await
    .unwrap()
}

/// Runs the `retrain` binary as a person would (no admin token from the
/// shell); `DATABASE_URL` set if given. Returns (success, stdout, stderr).
pub fn retrain(args: &[&str], database_url: Option<&str>) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_retrain"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("RETRAIN_ADMIN_TOKEN");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let output = command.output().expect("the retrain binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Sends feedback bodies with the app's key, 50 at a time; each must be stored.
pub async fn send_all(app: &TestApp, bodies: Vec<Value>) {
    send_all_as(app, &app.key, bodies).await;
}

/// Sends feedback bodies with `key`, 50 at a time; each must be stored.
pub async fn send_all_as(app: &TestApp, key: &str, bodies: Vec<Value>) {
    for chunk in bodies.chunks(50) {
        let sends = chunk
            .iter()
            .map(|body| app.client.post(app.url("/feedback")).bearer_auth(key).json(body).send());
        for response in futures_util::future::join_all(sends).await {
            assert_eq!(response.unwrap().status(), 201);
        }
    }
}

/// Triggers a run of the default model over HTTP and waits for its end; the run.
pub async fn run_to_end(app: &TestApp, reason: &str) -> Value {
    let created = app.admin_post("/runs", json!({ "reason": reason })).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/runs/{id}");
    let path = &path;
    eventually(40, "the run ends", || async move {
        !matches!(app.json(path).await["status"].as_str(), Some("queued" | "running"))
    })
    .await;
    app.json(path).await
}
