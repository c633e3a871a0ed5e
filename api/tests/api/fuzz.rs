//! Fuzzing the HTTP API from its own OpenAPI document with schemathesis
//! (pinned in tests/fuzz/requirements.txt), against the real service with
//! the admin token: no 5xx, every status, content type, header and body is
//! the one the document promises, every request the document forbids is
//! refused, and admin endpoints refuse requests without the token. Bounded:
//! 100 examples per operation, a fixed seed, and a hard timeout.
//!
//! For a deeper run: `RETRAIN_FUZZ_EXAMPLES=1000 RETRAIN_FUZZ_SEED=7 cargo
//! test -p retrain-api --test api fuzz`.

use crate::support::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fuzz/requirements.txt");
/// The project-local virtual environment's Python, where `scripts/test`
/// installs schemathesis.
const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
const HARD_TIMEOUT: Duration = Duration::from_secs(170);
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_schema_conformance,response_headers_conformance,unsupported_method,\
    allow_header_conformance,ignored_auth,missing_required_header,negative_data_rejection";

fn schemathesis() -> Command {
    let mut command = Command::new(PYTHON);
    command.args(["-m", "schemathesis.cli"]);
    command
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_api_survives_fuzzing_from_its_own_openapi_document(_: PgPoolOptions, connect: PgConnectOptions) {
    let version = schemathesis().arg("--version").output().await;
    let installed = match &version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => panic!(
            "schemathesis is not installed in .venv/; run the tests with scripts/test, \
             which installs it there (tests/fuzz/requirements.txt) and then runs cargo test"
        ),
    };
    let pinned = std::fs::read_to_string(REQUIREMENTS).unwrap();
    let pinned = pinned
        .lines()
        .find_map(|l| l.strip_prefix("schemathesis=="))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        installed.ends_with(&pinned),
        "schemathesis {installed} is installed in .venv/; tests/fuzz/requirements.txt pins {pinned}: \
         run scripts/test, which installs the pinned one"
    );

    // The whole service (worker included): runs the fuzzer starts do run.
    let app = spawn(&connect, "all", &[]).await;
    let workdir = std::env::temp_dir().join(format!("retrain-fuzz-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).unwrap();
    let started = Instant::now();
    let mut child = schemathesis()
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &setting("RETRAIN_FUZZ_EXAMPLES", "100")])
        .args(["--seed", &setting("RETRAIN_FUZZ_SEED", "20261126"), "--workers", "2"])
        .args(["--request-timeout", "20", "--generation-database", "none", "--no-color"])
        .current_dir(&workdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start schemathesis");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut text).await;
        text
    };
    let (out, err) = (
        tokio::spawn(read(Box::new(stdout))),
        tokio::spawn(read(Box::new(stderr))),
    );
    // A deeper run asked for by hand may take longer.
    let limit = if std::env::var_os("RETRAIN_FUZZ_EXAMPLES").is_some() {
        HARD_TIMEOUT * 10
    } else {
        HARD_TIMEOUT
    };
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = child.kill().await;
            panic!("schemathesis did not finish within {limit:?}:\n{}", out.await.unwrap());
        }
    };
    let (out, err) = (out.await.unwrap(), err.await.unwrap());
    eprintln!("schemathesis took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&workdir);
    assert!(
        status.success(),
        "schemathesis found failures ({status}):\n{out}\n{err}"
    );
    assert!(out.contains("passed"), "{out}");
    // The service is still fine.
    assert_eq!(app.get("/ready").await.status(), 200);
    app.stop().await;
}
