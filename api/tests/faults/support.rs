//! The real `retrain` binary in child processes, and what the tests say to it.
//!
//! Each [`Process`] is `retrain serve --role api|worker` on a free loopback
//! port, with its log in a temp file (printed if the test fails). Dropping a
//! process kills it, so a failing test leaves nothing running.

use retrain_steps::ml::{Example, Split};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use uuid::Uuid;

pub const TOKEN: &str = "faults-admin-token";

/// The tests of this binary share the machine, except the database restart,
/// whose latency checks want it to themselves. (Each test has a runtime of
/// its own; tokio's lock works across runtimes.)
static MACHINE: RwLock<()> = RwLock::const_new(());

/// Run alongside the other shared tests.
pub async fn shared_machine() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// Run with no other test of this binary.
pub async fn whole_machine() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// The URL a child process connects with.
pub fn database_url(connect: &PgConnectOptions) -> String {
    retrain_testkit::db::url_of(connect)
}

/// The test's own pool; short waits, so a test fails instead of hanging.
pub async fn pool(connect: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(connect.clone())
        .await
        .expect("the test connects to PostgreSQL")
}

/// A port nothing listens on right now. Another process may take it before
/// the child binds it; [`Process::start`] then tries another.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The part of the service a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Worker,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Worker => "worker",
        }
    }
}

/// A running `retrain serve` child process.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pub role: Role,
    pub base: String,
    pub client: reqwest::Client,
    log: PathBuf,
}

static SPAWNED: AtomicU32 = AtomicU32::new(0);

impl Process {
    /// Starts `retrain serve --role <role>` against `database_url` with the
    /// extra environment `env`, and waits until it answers (an API: ready;
    /// a worker: healthy). Threshold triggers are pushed out of the way so
    /// only the test starts runs.
    pub async fn start(role: Role, database_url: &str, env: &[(&str, &str)]) -> Process {
        for _ in 0..3 {
            let port = free_port();
            let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
            let log = std::env::temp_dir().join(format!(
                "retrain-faults-{}-{n}-{}.log",
                std::process::id(),
                role.as_str()
            ));
            let file = std::fs::File::create(&log).expect("a log file");
            let mut command = Command::new(env!("CARGO_BIN_EXE_retrain"));
            for (key, _) in std::env::vars() {
                if key.starts_with("RETRAIN_") {
                    command.env_remove(key);
                }
            }
            command
                .args(["serve", "--role", role.as_str()])
                .env("DATABASE_URL", database_url)
                .env("RETRAIN_BIND", format!("127.0.0.1:{port}"))
                .env("RETRAIN_ADMIN_TOKEN", TOKEN)
                .env("RETRAIN_FIRST_CHECK_SECS", "3600")
                .env("RUST_LOG", "info")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(file);
            let child = command.spawn().expect("the retrain binary starts");
            let mut process = Process {
                child,
                role,
                base: format!("http://127.0.0.1:{port}"),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .build()
                    .unwrap(),
                log,
            };
            if process.wait_up().await {
                return process;
            }
            eprintln!(
                "retrain serve exited at start (port {port} taken?):\n{}",
                process.log_tail(20)
            );
        }
        panic!("retrain serve --role {} did not start", role.as_str());
    }

    /// `false` if the process exited before answering.
    async fn wait_up(&mut self) -> bool {
        let path = match self.role {
            Role::Api => "/ready",
            Role::Worker => "/health",
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.child.try_wait().expect("child status").is_some() {
                return false;
            }
            if let Ok(response) = self.client.get(self.url(path)).send().await
                && response.status() == 200
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "retrain serve did not answer {path}:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The prefix of this process's worker id (`worker-<pid>-<random>`).
    pub fn worker_prefix(&self) -> String {
        format!("worker-{}-", self.pid())
    }

    /// `kill -9`: no shutdown, no release, nothing flushed.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// `kill -TERM`: the graceful shutdown a service manager asks for.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM sent");
    }

    /// Waits for the process to exit by itself; its exit status.
    pub async fn exited(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {secs} s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process still accepts connections on its port.
    pub async fn accepts(&self) -> bool {
        tokio::net::TcpStream::connect(self.base.trim_start_matches("http://"))
            .await
            .is_ok()
    }

    /// Resident memory in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        retrain_testkit::memory::rss_kib(self.pid()).unwrap_or(0)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .header("x-retrain-actor", "faults@example.com")
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Starts a run; it must be a new one.
    pub async fn trigger(&self) -> Uuid {
        let response = self.admin_post("/runs", json!({"reason": "fault test"})).await;
        assert_eq!(response.status(), 201, "a new run");
        let run: Value = response.json().await.unwrap();
        run["id"].as_str().unwrap().parse().unwrap()
    }

    /// Sends each row as feedback with its true label; returns the ids the
    /// API acknowledged (201).
    pub async fn send_feedback(&self, rows: &[Example], source: &str) -> Vec<i64> {
        let mut ids = Vec::new();
        for row in rows {
            let response = self
                .client
                .post(self.url("/feedback"))
                .json(&json!({"features": row.input.features(), "correct_label": row.label, "source": source}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201, "feedback stored");
            ids.push(response.json::<Value>().await.unwrap()["feedback_id"].as_i64().unwrap());
        }
        ids
    }

    pub async fn served_version(&self) -> i64 {
        self.json("/model/info").await["version"].as_i64().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- last log lines of retrain serve --role {} (pid {}) ---\n{}",
                self.role.as_str(),
                self.child.id(),
                self.log_tail(60)
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Workers with a gate that passes every candidate, so each run goes
/// through all five steps (a rejection would end it before promote).
pub const PASSING_GATE: [(&str, &str); 3] = [
    ("RETRAIN_GATE_FLOOR", "0"),
    ("RETRAIN_GATE_RECALL_MARGIN", "1"),
    ("RETRAIN_GATE_MARGIN", "1"),
];

/// Rows of a split of the stored data set (bootstrapped by the service).
pub async fn split_rows(pool: &PgPool, split: Split) -> Vec<Example> {
    retrain_testkit::fixtures::split_rows(pool, split).await
}

/// Stores another model (not promoted); returns its version.
pub async fn another_model(pool: &PgPool, max_depth: usize) -> i64 {
    i64::from(retrain_testkit::fixtures::another_model(pool, max_depth).await)
}

pub async fn scalar_i64(pool: &PgPool, sql: &str, run: Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(run).fetch_one(pool).await.unwrap()
}

pub async fn run_status(pool: &PgPool, run: Uuid) -> String {
    sqlx::query_scalar("SELECT status::text FROM runs WHERE id = $1")
        .bind(run)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the run ends; returns its status.
pub async fn finished(pool: &PgPool, run: Uuid, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let status = run_status(pool, run).await;
        if status != "queued" && status != "running" {
            return status;
        }
        assert!(Instant::now() < deadline, "run {run} still {status} after {secs} s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `check` holds, or panics after `secs`.
pub async fn eventually<F, Fut>(secs: f64, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    retrain_testkit::eventually(Duration::from_secs_f64(secs), what, check).await;
}

/// Every (run, step, attempt) started exactly once (one `pending -> running`
/// event), and every started attempt left `running` exactly once, by the
/// worker that started it unless a reclaim took it back. Returns the
/// violations, empty if none.
pub async fn attempt_violations(pool: &PgPool) -> Vec<String> {
    let rows: Vec<(Uuid, String, i32, i64, i64, i64)> = sqlx::query_as(
        "WITH starts AS (
            SELECT run_id, step, attempt, count(*) AS starts, min(actor) AS starter
            FROM run_events WHERE from_status = 'pending' AND to_status = 'running'
            GROUP BY run_id, step, attempt
        ), exits AS (
            SELECT run_id, step, attempt, count(*) AS exits,
                   count(*) FILTER (WHERE to_status <> 'pending' OR reason NOT LIKE 'lease of % expired%') AS own_exits,
                   min(actor) AS finisher
            FROM run_events WHERE from_status = 'running' AND to_status <> 'running'
            GROUP BY run_id, step, attempt
        )
        SELECT s.run_id, s.step, s.attempt, s.starts, coalesce(e.exits, 0),
               CASE WHEN e.own_exits > 0 AND e.finisher <> s.starter THEN 1 ELSE 0 END::bigint
        FROM starts s LEFT JOIN exits e USING (run_id, step, attempt)
        WHERE s.starts <> 1 OR coalesce(e.exits, 0) <> 1 OR (e.own_exits > 0 AND e.finisher <> s.starter)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(run, step, attempt, starts, exits, foreign)| {
            format!("run {run} step {step} attempt {attempt}: {starts} starts, {exits} exits, finished by another worker: {}", foreign == 1)
        })
        .collect()
}

/// One line of a run's history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub step: Option<String>,
    pub attempt: Option<i32>,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub reason: Option<String>,
}

impl Event {
    pub fn is_step(&self, step: &str) -> bool {
        self.step.as_deref() == Some(step)
    }

    /// A step handed back from `running` to `pending` (retry or reclaim).
    pub fn is_retry(&self) -> bool {
        self.from_status.as_deref() == Some("running") && self.to_status == "pending"
    }
}

/// A run's history, oldest first.
pub async fn history(pool: &PgPool, run: Uuid) -> Vec<Event> {
    sqlx::query_as(
        "SELECT step, attempt, from_status, to_status, actor, reason FROM run_events WHERE run_id = $1 ORDER BY id",
    )
    .bind(run)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The history as text, for assertion messages.
pub fn show(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} #{} {} -> {} by {}: {}",
                e.step.as_deref().unwrap_or("(run)"),
                e.attempt.map_or("-".into(), |a| a.to_string()),
                e.from_status.as_deref().unwrap_or("-"),
                e.to_status,
                e.actor,
                e.reason.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
