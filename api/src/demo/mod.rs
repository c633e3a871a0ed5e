//! `retrain demo`: the main job. It starts the whole service in this process
//! on a database it creates if missing, then plays the exercises of a
//! retraining lab against it over HTTP (five on the wine model, one on a
//! text model of generated tickets) and prints what happened.

mod database;
mod exercises;
mod load;
pub mod tickets;

use crate::cli::{Cli, Command};
use crate::client::Client;
use crate::startup;
use crate::table;
use anyhow::Context;
use clap::{Args, Parser};
use rand::Rng;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Settings of `retrain demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoSettings {
    /// The database (created if missing) and the pool's bounds, as for `serve`.
    #[command(flatten)]
    pub database: crate::settings::DatabaseSettings,
    /// Leave the service running afterwards (for curl and Swagger UI).
    #[arg(long)]
    pub keep_serving: bool,
    /// Address to serve on with --keep-serving (otherwise a free loopback port).
    #[arg(long, env = "RETRAIN_BIND", default_value = "127.0.0.1:8000")]
    pub bind: std::net::SocketAddr,
}

/// One line of the closing summary.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exercise: &'static str,
    pub result: String,
}

/// Prints a step of the demo as it starts, with the time since the start.
pub fn say(started: Instant, text: &str) {
    println!("[{:>6.2}s] {text}", started.elapsed().as_secs_f64());
}

/// Runs the demo.
///
/// # Errors
/// No database server, or a failure starting the service; the exercises
/// report their own trouble in the summary.
pub async fn run(settings: DemoSettings) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("Retrain demo: a model in production, its users' feedback, and a retrain loop.\n");
    say(started, "connecting to PostgreSQL");
    database::ensure(&settings.database.database_url).await?;
    let pool = startup::connect(&settings.database).await?;
    let bind = if settings.keep_serving {
        settings.bind.to_string()
    } else {
        "127.0.0.1:0".into()
    };
    let token: String = (0..24)
        .map(|_| format!("{:02x}", rand::thread_rng().r#gen::<u8>()))
        .collect();
    let Command::Serve(serve) = Cli::parse_from([
        "retrain",
        "serve",
        "--bind",
        &bind,
        "--admin-token",
        &token,
        "--first-check-secs",
        "86400",
    ])
    .command
    else {
        unreachable!("parsed a serve command")
    };
    let listener = tokio::net::TcpListener::bind(serve.bind)
        .await
        .with_context(|| format!("cannot listen on {}", serve.bind))?;
    let base = format!("http://{}", listener.local_addr()?);
    say(
        started,
        "migrating, bootstrapping the first model and starting the service",
    );
    let shutdown = CancellationToken::new();
    let running = startup::start(serve, pool.clone(), listener, shutdown.clone()).await?;
    // Waiting in-process, not by polling the service's own endpoints: they
    // answer 503 (and log it) until the first model is loaded.
    tokio::time::timeout(Duration::from_secs(120), running.loaded())
        .await
        .context("the service did not load its first model within 120 s")?;
    let service = tokio::spawn(running.wait());
    let client = Client::new(&base, Some(token.clone()));
    say(
        started,
        &format!("service ready at {base} (API, worker and scheduler in this process)"),
    );

    let outcomes = exercises::play(&client, &pool, started).await;
    println!("\nSummary");
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| vec![o.exercise.to_owned(), o.result.clone()])
        .collect();
    println!("{}", table::render(&["exercise", "what happened"], &rows));
    println!("\nTook {:.1} s.", started.elapsed().as_secs_f64());

    if settings.keep_serving {
        println!("\nThe service keeps running at {base} (Ctrl-C to stop):");
        println!("  console:     {base}/ui   (sign in with the admin token to act)");
        println!("  Swagger UI:  {base}/docs");
        println!("  predict:     curl -s {base}/predict -H 'content-type: application/json' \\");
        println!(
            "                 -d '{{\"features\": [7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]}}'"
        );
        println!("  admin token: {token}   (curl -H 'Authorization: Bearer {token}' ...)");
        println!(
            "  feedback:    needs a client key: retrain keys create NAME --scope feedback --url {base} --token {token}"
        );
        tokio::signal::ctrl_c().await.ok();
    }
    shutdown.cancel();
    service.await.context("the service task failed")??;
    Ok(())
}
