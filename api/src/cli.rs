//! The `retrain` command line: demo, serve, migrate, bootstrap, and the
//! operator commands over the REST API.

use crate::settings::{DatabaseSettings, ServeSettings};
use crate::startup;
use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Closed-loop retraining: serve a model, collect feedback, retrain, validate, promote.
#[derive(Debug, Parser)]
#[command(name = "retrain", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The main job: start everything on a local database and play the
    /// retraining lab's six exercises against it.
    Demo(crate::demo::DemoSettings),
    /// Run the service: API, worker and scheduler (or one role of them).
    Serve(ServeSettings),
    /// Apply the database migrations.
    Migrate(DatabaseSettings),
    /// Store the default data split and train and promote the first model.
    Bootstrap(DatabaseSettings),
    /// Inspect and control retrain runs of a running service.
    Runs {
        #[command(flatten)]
        target: crate::operator::Target,
        #[command(subcommand)]
        command: crate::operator::RunsCommand,
    },
    /// Inspect, promote and roll back models of a running service.
    Models {
        #[command(flatten)]
        target: crate::operator::Target,
        #[command(subcommand)]
        command: crate::operator::ModelsCommand,
    },
    /// List a model's quarantine rules and release one (audited).
    Quarantine {
        #[command(flatten)]
        target: crate::operator::Target,
        #[command(subcommand)]
        command: crate::operator::QuarantineCommand,
    },
    /// Make, list and revoke client keys (audited).
    Keys {
        #[command(flatten)]
        target: crate::operator::Target,
        #[command(subcommand)]
        command: crate::operator::KeysCommand,
    },
}

impl Cli {
    /// Runs the chosen command.
    ///
    /// # Errors
    /// Whatever the command fails with, with context for a person.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Demo(settings) => crate::demo::run(settings).await,
            Command::Runs { target, command } => crate::operator::runs(&target, command).await,
            Command::Models { target, command } => crate::operator::models(&target, command).await,
            Command::Quarantine { target, command } => crate::operator::quarantine(&target, command).await,
            Command::Keys { target, command } => crate::operator::keys(&target, command).await,
            Command::Serve(settings) => {
                let pool = startup::connect(&settings.database).await?;
                let listener = tokio::net::TcpListener::bind(settings.bind)
                    .await
                    .with_context(|| format!("cannot listen on {}", settings.bind))?;
                let shutdown = CancellationToken::new();
                tokio::spawn(stop_on_signal(shutdown.clone()));
                startup::serve(settings, pool, listener, shutdown).await
            }
            Command::Migrate(database) => {
                let pool = startup::connect(&database).await?;
                startup::migrate(&pool).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Bootstrap(database) => {
                let pool = startup::connect(&database).await?;
                startup::migrate(&pool).await?;
                let done = retrain_steps::bootstrap::bootstrap(&pool, &retrain_steps::PipelineConfig::default())
                    .await
                    .context("bootstrap failed")?;
                println!(
                    "data set {}@{} ({}), serving version {}",
                    done.dataset.name,
                    done.dataset.version,
                    if done.stored_split {
                        "split stored now"
                    } else {
                        "already stored"
                    },
                    done.champion_version
                );
                Ok(())
            }
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    shutdown.cancel();
}
