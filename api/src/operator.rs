//! The operator commands over the REST API: `retrain runs list|show|trigger|
//! cancel|retry` and `retrain models list|promote`, as tables or `--json`.

use crate::auth;
use crate::client::Client;
use crate::table;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

/// Where the service is and how to prove admin rights.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The service's base URL.
    #[arg(long, env = "RETRAIN_URL", default_value = "http://127.0.0.1:8000", global = true)]
    pub url: String,
    /// Admin token; defaults to the token file `retrain serve` wrote.
    #[arg(long, env = "RETRAIN_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The token file to read when no token is given.
    #[arg(long, env = "RETRAIN_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// Print the service's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Target {
    fn client(&self) -> Client {
        let token = self.token.clone().or_else(|| {
            let file = self.token_file.clone().unwrap_or_else(auth::default_token_file);
            std::fs::read_to_string(file).ok().map(|t| t.trim().to_owned())
        });
        Client::new(&self.url, token)
    }
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first.
    List {
        /// Only runs in this status (queued, running, succeeded, failed, cancelled, skipped, rejected).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One run with its steps and history.
    Show { id: String },
    /// Start a run (or get the active one).
    Trigger {
        /// The model to retrain (the service's default model if absent).
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel a queued or running run.
    Cancel { id: String },
    /// Re-queue a failed run at its failed step.
    Retry { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every model, with its champion.
    List,
    /// One model's settings and its versions, newest first.
    Show { name: String },
    /// Make a version its model's champion (older than the champion: a rollback).
    Promote {
        name: String,
        version: i32,
        #[arg(long)]
        reason: String,
    },
    /// Go back to an older version of a model.
    Rollback {
        name: String,
        version: i32,
        #[arg(long)]
        reason: String,
    },
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() != 0.0)
            .map_or(n.to_string(), |f| format!("{f:.4}")),
        other => other.to_string(),
    }
}

fn short_time(value: &Value) -> String {
    value
        .as_str()
        .map_or("-".into(), |t| t.chars().take(19).collect::<String>().replace('T', " "))
}

fn print(json: bool, value: &Value, as_table: impl FnOnce(&Value) -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{}", as_table(value));
    }
}

fn runs_table(runs: &Value) -> String {
    let rows: Vec<Vec<String>> = runs
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(&r["id"]),
                text(&r["status"]),
                text(&r["trigger"]),
                text(&r["requested_by"]),
                short_time(&r["created_at"]),
                r["outcome"]["reason"].as_str().unwrap_or("").chars().take(60).collect(),
            ]
        })
        .collect();
    table::render(
        &["id", "status", "trigger", "requested by", "created (UTC)", "reason"],
        &rows,
    )
}

fn run_detail(run: &Value) -> String {
    let mut out = runs_table(&Value::Array(vec![run.clone()]));
    let steps: Vec<Vec<String>> = run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                text(&s["name"]),
                text(&s["status"]),
                text(&s["attempt"]),
                text(&s["last_error"]),
            ]
        })
        .collect();
    out.push_str("\n\n");
    out.push_str(&table::render(&["step", "status", "attempts", "last error"], &steps));
    let events: Vec<Vec<String>> = run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                short_time(&e["at"]),
                e["step"].as_str().unwrap_or("run").to_owned(),
                format!("{} -> {}", text(&e["from_status"]), text(&e["to_status"])),
                text(&e["actor"]),
                text(&e["reason"]),
            ]
        })
        .collect();
    out.push_str("\n\n");
    out.push_str(&table::render(&["at (UTC)", "what", "change", "by", "why"], &events));
    out
}

fn models_table(models: &Value) -> String {
    let rows: Vec<Vec<String>> = models
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            vec![
                text(&m["name"]),
                text(&m["kind"]),
                text(&m["learner"]["name"]),
                m["classes"].as_array().map_or(0, Vec::len).to_string(),
                text(&m["champion_version"]),
            ]
        })
        .collect();
    table::render(&["model", "input", "learner", "classes", "champion"], &rows)
}

fn versions_table(versions: &Value) -> String {
    let rows: Vec<Vec<String>> = versions
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            vec![
                text(&m["version"]),
                if m["is_champion"] == true {
                    "*".into()
                } else {
                    String::new()
                },
                text(&m["golden_accuracy"]),
                text(&m["total_rows"]),
                short_time(&m["trained_at"]),
                text(&m["run_id"]),
            ]
        })
        .collect();
    table::render(
        &[
            "version",
            "serving",
            "golden accuracy",
            "training rows",
            "trained (UTC)",
            "run",
        ],
        &rows,
    )
}

fn promotion_line(p: &Value) -> String {
    format!(
        "{}: {} to version {} (was {}) by {}",
        text(&p["model"]),
        text(&p["kind"]),
        text(&p["version"]),
        text(&p["previous_version"]),
        text(&p["actor"])
    )
}

/// Runs a `retrain runs` command.
///
/// # Errors
/// The service's refusal or an unreachable service.
pub async fn runs(target: &Target, command: RunsCommand) -> anyhow::Result<()> {
    let client = target.client();
    match command {
        RunsCommand::List { status, limit } => {
            print(target.json, &client.runs(status.as_deref(), limit).await?, runs_table);
        }
        RunsCommand::Show { id } => print(target.json, &client.run(&id).await?, run_detail),
        RunsCommand::Trigger { model, reason } => {
            let (run, new) = client.trigger(model.as_deref(), reason.as_deref()).await?;
            if !target.json {
                println!(
                    "{}",
                    if new {
                        "queued a new run:"
                    } else {
                        "a run is already active:"
                    }
                );
            }
            print(target.json, &run, |r| runs_table(&Value::Array(vec![r.clone()])));
        }
        RunsCommand::Cancel { id } => {
            let answer = client.run_action(&id, "cancel").await?;
            print(target.json, &answer, |a| {
                format!(
                    "cancel {}\n{}",
                    text(&a["cancel"]),
                    runs_table(&Value::Array(vec![a["run"].clone()]))
                )
            });
        }
        RunsCommand::Retry { id } => {
            let run = client.run_action(&id, "retry").await?;
            print(target.json, &run, |r| runs_table(&Value::Array(vec![r.clone()])));
        }
    }
    Ok(())
}

/// Runs a `retrain models` command.
///
/// # Errors
/// The service's refusal or an unreachable service.
pub async fn models(target: &Target, command: ModelsCommand) -> anyhow::Result<()> {
    let client = target.client();
    match command {
        ModelsCommand::List => print(target.json, &client.models().await?, models_table),
        ModelsCommand::Show { name } => {
            let model = client.model(&name).await?;
            let versions = client.versions(&name).await?;
            if target.json {
                print(true, &serde_json::json!({"model": model, "versions": versions}), |_| String::new());
            } else {
                println!("{}", models_table(&Value::Array(vec![model])));
                println!("\n{}", versions_table(&versions));
            }
        }
        ModelsCommand::Promote { name, version, reason } => {
            let promotion = client.promote(&name, version, &reason).await?;
            print(target.json, &promotion, promotion_line);
        }
        ModelsCommand::Rollback { name, version, reason } => {
            let champion = client.model(&name).await?["champion_version"].as_i64();
            if champion.is_none_or(|c| i64::from(version) >= c) {
                anyhow::bail!(
                    "a rollback goes to a version older than the champion ({}); use `retrain models promote`",
                    champion.map_or("none".to_owned(), |c| c.to_string())
                );
            }
            let promotion = client.promote(&name, version, &reason).await?;
            print(target.json, &promotion, promotion_line);
        }
    }
    Ok(())
}
