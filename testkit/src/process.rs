//! The real `retrain` binary in child processes, for the tests and benches
//! that need the service as an operator runs it: `retrain serve --role
//! api|worker` on a free loopback port, its log in a temp file (printed if
//! the caller panics). Dropping a process kills it, so a failing test leaves
//! nothing running.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The `retrain` binary and the admin token its processes are started with.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// Path of the executable (a test's `env!("CARGO_BIN_EXE_retrain")`).
    pub path: &'static str,
    /// `RETRAIN_ADMIN_TOKEN` of every process, sent by [`Process::admin_post`].
    pub token: &'static str,
}

/// A port nothing listens on right now. Another process may take it before
/// the child binds it; [`Binary::start`] then tries another.
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
    token: &'static str,
    log: PathBuf,
}

static SPAWNED: AtomicU32 = AtomicU32::new(0);

impl Binary {
    /// Starts `retrain serve --role <role>` against `database_url` with the
    /// extra environment `env`, and waits until it answers (an API: ready;
    /// a worker: healthy). Threshold triggers are pushed out of the way so
    /// only the test starts runs.
    pub async fn start(self, role: Role, database_url: &str, env: &[(&str, &str)]) -> Process {
        for _ in 0..3 {
            let port = free_port();
            let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
            let log = std::env::temp_dir().join(format!(
                "retrain-serve-{}-{n}-{}.log",
                std::process::id(),
                role.as_str()
            ));
            let file = std::fs::File::create(&log).expect("a log file");
            let mut command = Command::new(Path::new(self.path));
            for (key, _) in std::env::vars() {
                if key.starts_with("RETRAIN_") {
                    command.env_remove(key);
                }
            }
            command
                .args(["serve", "--role", role.as_str()])
                .env("DATABASE_URL", database_url)
                .env("RETRAIN_BIND", format!("127.0.0.1:{port}"))
                .env("RETRAIN_ADMIN_TOKEN", self.token)
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
                token: self.token,
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
}

impl Process {
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
        crate::memory::rss_kib(self.pid()).unwrap_or(0)
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
            .bearer_auth(self.token)
            .header("x-retrain-actor", "faults@example.com")
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Makes a client key over the admin API; returns its secret, which
    /// only this answer shows.
    pub async fn make_key(&self, name: &str, scopes: &[&str]) -> String {
        let response = self.admin_post("/keys", json!({"name": name, "scopes": scopes})).await;
        assert_eq!(response.status(), 201, "key {name} made");
        let made: Value = response.json().await.unwrap();
        made["key"].as_str().unwrap().to_owned()
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
    #[cfg(feature = "steps")]
    pub async fn send_feedback(&self, rows: &[retrain_steps::ml::Example], source: &str) -> Vec<i64> {
        let mut ids = Vec::new();
        for row in rows {
            let response = self
                .client
                .post(self.url("/feedback"))
                .bearer_auth(self.token)
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
