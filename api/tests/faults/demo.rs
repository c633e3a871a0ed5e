//! `retrain demo` as a newcomer runs it: the terminal shows the demo's
//! narration and nothing of the in-process service's logs (it used to show
//! a WARN "no model is loaded yet" at start, from polling its own
//! endpoints before the first model was loaded).

use crate::support::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::Command;

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_demo_narration_holds_only_its_own_lines(_: PgPoolOptions, connect: PgConnectOptions) {
    let _machine = shared_machine().await;
    let url = database_url(&connect);
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_retrain"));
        for (key, _) in std::env::vars() {
            if key.starts_with("RETRAIN_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command
            .arg("demo")
            .env("DATABASE_URL", url)
            .output()
            .expect("the demo runs")
    })
    .await
    .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "the demo failed:\n{out}\n{err}");
    assert!(out.contains("service ready at"), "{out}");
    assert!(
        err.trim().is_empty(),
        "the terminal shows only the narration, but the service logged:\n{err}"
    );
}
