//! A real Prometheus for the observability tests: started on a free loopback
//! port with its own storage and a generated configuration that scrapes the
//! service under test every second, queried over its HTTP API, and killed
//! (its storage removed) on drop.

use super::repo;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus on a free loopback port with its own storage, killed on drop.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub url: String,
    pub http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with the alert rules loaded.
    pub async fn start(binary: PathBuf, target: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("retrain-prometheus-{}-{}", std::process::id(), target.port()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rules = repo().join("prometheus/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files:\n  - \"{rules}\"\n\
             scrape_configs:\n  - job_name: retrain-all\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules = rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        // Bind port 0 to learn a free port, release it, hand it to Prometheus.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let mut prometheus = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", prometheus.log());
            }
            let ready = prometheus.http.get(format!("{}/-/ready", prometheus.url)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not get ready:\n{}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant query: the HTTP status and the body.
    pub async fn query(&self, expr: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// The result of a query that must parse and succeed.
    pub async fn result(&self, expr: &str) -> Vec<Value> {
        let (status, body) = self.query(expr).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("success")),
            "{expr}\n{body}"
        );
        match body["data"]["resultType"].as_str() {
            Some("vector" | "matrix") => body["data"]["result"].as_array().unwrap().clone(),
            _ => vec![body["data"]["result"].clone()],
        }
    }

    /// Polls until `expr` returns something (or panics after `secs`).
    pub async fn wait_for(&self, secs: u64, expr: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let result = self.result(expr).await;
            if !result.is_empty() {
                return result;
            }
            assert!(Instant::now() < deadline, "no data for {expr} after {secs} s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
