//! The operator commands over the REST API: `retrain runs list|show|trigger|
//! cancel|retry`, `retrain models list|show|promote|rollback|create|import`
//! `retrain quarantine list|release` and `retrain keys create|list|revoke`,
//! as tables or `--json`.

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
    pub token: Option<crate::keys::Secret>,
    /// The token file to read when no token is given.
    #[arg(long, env = "RETRAIN_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// Print the service's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Target {
    fn client(&self) -> Client {
        let token = self.token.as_ref().map(|t| t.expose().to_owned()).or_else(|| {
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
        /// The id of the previous page's last run: list the runs after it.
        #[arg(long)]
        after: Option<String>,
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
    /// Retrain a version from its stored training set and settings and
    /// check that the artifact's sha256 matches; exits non-zero if not.
    Reproduce { name: String, version: i32 },
    /// Go back to an older version of a model.
    Rollback {
        name: String,
        version: i32,
        #[arg(long)]
        reason: String,
    },
    /// Create a model from a data file, and wait while a run trains,
    /// validates and promotes its version 1.
    Create {
        name: String,
        /// What the model reads: named numeric columns, or one text column.
        #[arg(long, value_parser = ["tabular", "text"])]
        kind: String,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        learner: LearnerArgs,
        /// New feedback rows that start a run (the service's setting if absent).
        #[arg(long)]
        threshold: Option<i32>,
        /// A 6-field cron expression (seconds first, UTC) on which the model's runs start.
        #[arg(long)]
        cron: Option<String>,
    },
    /// Change a model's threshold, schedule, gate settings or learner (the ones given).
    Set {
        name: String,
        #[command(flatten)]
        learner: LearnerArgs,
        /// New feedback rows that start a run.
        #[arg(long)]
        threshold: Option<i32>,
        /// A 6-field cron expression (seconds first, UTC) for the model's runs.
        #[arg(long)]
        cron: Option<String>,
        /// Lowest golden accuracy a candidate may have, 0 to 1.
        #[arg(long)]
        gate_floor: Option<f64>,
        /// How much recall any class may lose against the champion, 0 to 1.
        #[arg(long)]
        gate_recall_margin: Option<f64>,
        /// How much lower than the champion's the accuracy may be, -1 to 1.
        #[arg(long, allow_hyphen_values = true)]
        gate_margin: Option<f64>,
        /// Significance level of the gate's bounds, above 0 and below 0.5.
        #[arg(long)]
        gate_alpha: Option<f64>,
    },
    /// Add a data set version to a model, and wait while a run trains on it.
    Import {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// A model's quarantine rules, newest first: who made each (an operator
    /// or `screening`), why, the run that found it, and its release.
    List {
        /// The model (the service's default model if absent).
        #[arg(long)]
        model: Option<String>,
    },
    /// End a rule: the feedback it covered trains again from the next run on (audited).
    Release {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

/// A model's learner and its settings.
#[derive(Debug, clap::Args)]
pub struct LearnerArgs {
    /// `auto` (chosen by cross-validation; the default of a new model), `decision_tree`,
    /// `random_forest`, `logistic_regression` (tabular), `naive_bayes` or `text_linear` (text).
    #[arg(long)]
    learner: Option<String>,
    /// The learner's settings as a JSON object, over its defaults, e.g. '{"trees": 300}'.
    #[arg(long, requires = "learner")]
    learner_settings: Option<String>,
}

/// A data file and how to read it.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// The file: CSV with a header row (comma or semicolon), or JSON lines (`.jsonl`, `.ndjson`).
    #[arg(long)]
    data: PathBuf,
    /// The label column (`label` if absent).
    #[arg(long)]
    label: Option<String>,
    /// Text models: the text column (`text` if absent).
    #[arg(long, conflicts_with = "features")]
    text: Option<String>,
    /// Tabular models: the feature columns, comma-separated, in order (every column but the label if absent).
    #[arg(long)]
    features: Option<String>,
    /// The share of rows held out as the golden set, chosen by a hash of each row's input (0.2 if absent).
    #[arg(long, conflicts_with = "golden")]
    golden_share: Option<f64>,
    /// The golden set as a file of the data file's shape: every row of the data file trains.
    #[arg(long)]
    golden: Option<PathBuf>,
}

impl DataArgs {
    /// The query string of an import and the file's content type.
    fn query(&self) -> (Vec<(&'static str, String)>, &'static str) {
        let mut query = vec![("format", self.format().to_owned())];
        if let Some(file) = self.data.file_name().and_then(|n| n.to_str()) {
            query.push(("source", file.to_owned()));
        }
        if let Some(share) = self.golden_share {
            query.push(("golden_share", share.to_string()));
        }
        for (key, value) in [
            ("label", &self.label),
            ("text", &self.text),
            ("features", &self.features),
        ] {
            if let Some(value) = value {
                query.push((key, value.clone()));
            }
        }
        let content_type = if self.format() == "jsonl" {
            "application/x-ndjson"
        } else {
            "text/csv"
        };
        (query, content_type)
    }

    /// `jsonl` for a `.jsonl`, `.ndjson` or `.json` file, else `csv`.
    fn format(&self) -> &'static str {
        let extension = self
            .data
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if matches!(extension.as_str(), "jsonl" | "ndjson" | "json") {
            "jsonl"
        } else {
            "csv"
        }
    }

    /// Uploads the data file (and the golden file, if given) to `path`.
    async fn send(&self, client: &Client, path: &str, content_type: &str) -> anyhow::Result<Value> {
        Ok(match &self.golden {
            None => client.upload(path, &self.data, content_type).await?,
            Some(golden) => {
                client
                    .upload_with_golden(path, &self.data, golden, content_type)
                    .await?
            }
        })
    }
}

/// `key=value&...`, percent-encoded.
fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters.
fn utf8_percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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

/// The feedback a model's next run waits for, against its threshold.
fn waiting_line(model: &Value) -> String {
    let threshold = match model["threshold"].as_i64() {
        Some(threshold) => threshold.to_string(),
        None => "the service's threshold".to_owned(),
    };
    format!(
        "feedback waiting: {} (a run starts at {threshold})",
        model["feedback_waiting"]
    )
}

/// A reproduction in one line: the match, or where the bytes part.
fn reproduction_line(outcome: &Value) -> String {
    let learner = &outcome["learner"]["name"];
    if outcome["matches"] == Value::Bool(true) {
        format!(
            "version {} reproduced ({learner} on {} rows): sha256 {} matches",
            outcome["version"],
            outcome["rows"],
            outcome["stored_sha256"].as_str().unwrap_or_default()
        )
    } else {
        format!(
            "version {} did NOT reproduce ({learner} on {} rows): first difference at byte {}; stored sha256 {}, reproduced {}",
            outcome["version"],
            outcome["rows"],
            outcome["first_difference"],
            outcome["stored_sha256"].as_str().unwrap_or_default(),
            outcome["reproduced_sha256"].as_str().unwrap_or_default()
        )
    }
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
        RunsCommand::List { status, limit, after } => {
            print(
                target.json,
                &client.runs(status.as_deref(), limit, after.as_deref()).await?,
                runs_table,
            );
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
                print(true, &serde_json::json!({"model": model, "versions": versions}), |_| {
                    String::new()
                });
            } else {
                let waiting = waiting_line(&model);
                println!("{}", models_table(&Value::Array(vec![model])));
                println!("\n{waiting}");
                println!("\n{}", versions_table(&versions));
            }
        }
        ModelsCommand::Promote { name, version, reason } => {
            let promotion = client.promote(&name, version, &reason).await?;
            print(target.json, &promotion, promotion_line);
        }
        ModelsCommand::Reproduce { name, version } => {
            let outcome = client.reproduce(&name, version).await?;
            print(target.json, &outcome, reproduction_line);
            if outcome["matches"] != Value::Bool(true) {
                anyhow::bail!("version {version} of {name} did not reproduce");
            }
        }
        ModelsCommand::Create {
            name,
            kind,
            data,
            learner,
            threshold,
            cron,
        } => {
            let (mut query, content_type) = data.query();
            query.extend([("name", name.clone()), ("kind", kind)]);
            query.extend(learner.learner.map(|l| ("learner", l)));
            query.extend(learner.learner_settings.map(|l| ("learner_settings", l)));
            query.extend(threshold.map(|t| ("threshold", t.to_string())));
            query.extend(cron.map(|c| ("cron", c)));
            let path = format!("/models?{}", query_string(&query));
            let imported = data.send(&client, &path, content_type).await?;
            follow_import(target, &client, &imported).await?;
        }
        ModelsCommand::Set {
            name,
            learner,
            threshold,
            cron,
            gate_floor,
            gate_recall_margin,
            gate_margin,
            gate_alpha,
        } => {
            let mut change = serde_json::Map::new();
            if let Some(learner_name) = learner.learner {
                let mut chosen = serde_json::json!({ "name": learner_name });
                if let Some(settings) = learner.learner_settings {
                    chosen["settings"] = serde_json::from_str(&settings)
                        .map_err(|e| anyhow::anyhow!("--learner-settings is not JSON: {e}"))?;
                }
                change.insert("learner".into(), chosen);
            }
            if let Some(threshold) = threshold {
                change.insert("threshold".into(), threshold.into());
            }
            if let Some(cron) = cron {
                change.insert("cron".into(), cron.into());
            }
            let gate_given = [gate_floor, gate_recall_margin, gate_margin, gate_alpha];
            if gate_given.iter().any(Option::is_some) {
                // The model's gate settings are replaced: keep the ones not given.
                let mut gate = client.model(&name).await?["gate"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (key, value) in [
                    ("accuracy_floor", gate_floor),
                    ("recall_margin", gate_recall_margin),
                    ("margin", gate_margin),
                    ("alpha", gate_alpha),
                ] {
                    if let Some(value) = value {
                        gate.insert(key.into(), value.into());
                    }
                }
                change.insert("gate".into(), Value::Object(gate));
            }
            let model = client.change_model(&name, &Value::Object(change)).await?;
            print(target.json, &model, |m| {
                format!(
                    "{}: threshold {}, cron {}, gate {}, learner {}",
                    text(&m["name"]),
                    text(&m["threshold"]),
                    text(&m["cron"]),
                    m["gate"],
                    m["learner"]
                )
            });
        }
        ModelsCommand::Import { name, data } => {
            let (query, content_type) = data.query();
            let path = format!("/models/{name}/datasets?{}", query_string(&query));
            let imported = data.send(&client, &path, content_type).await?;
            follow_import(target, &client, &imported).await?;
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

/// Reports an import, then waits for its run to end and reports that.
async fn follow_import(target: &Target, client: &crate::client::Client, imported: &Value) -> anyhow::Result<()> {
    let classes = imported["classes"].as_object().cloned().unwrap_or_default();
    let rows = |part: &str| classes.values().map(|c| c[part].as_u64().unwrap_or(0)).sum::<u64>();
    if !target.json {
        println!(
            "imported data set version {} of {}: {} rows train, {} golden, {} classes",
            text(&imported["dataset_version"]),
            text(&imported["model"]),
            rows("base"),
            rows("golden"),
            classes.len()
        );
    }
    let id = imported["run"]["id"].as_str().unwrap_or_default().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let run = loop {
        let detail = client.run(&id).await?;
        let status = detail["status"].as_str().unwrap_or("").to_owned();
        if !matches!(status.as_str(), "queued" | "running") {
            break detail;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "run {id} has not ended after 10 minutes: is a worker running? (retrain runs show {id})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    if target.json {
        print(true, &serde_json::json!({"import": imported, "run": run}), |_| {
            String::new()
        });
        return Ok(());
    }
    let status = text(&run["status"]);
    let promoted = run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == "promote"))
        .map(|s| s["output"]["version"].clone());
    match (status.as_str(), promoted) {
        ("succeeded", Some(version)) => println!(
            "run {id} succeeded: version {} of {} serves",
            text(&version),
            text(&imported["model"])
        ),
        _ => anyhow::bail!("run {id} ended {status}: {}", text(&run["outcome"]["reason"])),
    }
    Ok(())
}

fn quarantines_table(rules: &Value) -> String {
    let rows: Vec<Vec<String>> = rules
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            vec![
                text(&q["id"]),
                text(&q["source"]),
                text(&q["actor"]),
                short_time(&q["created_at"]),
                text(&q["run_id"]),
                match q["released_by"].as_str() {
                    Some(by) => format!("released by {by} {}", short_time(&q["released_at"])),
                    None => "in force".into(),
                },
                q["reason"].as_str().unwrap_or("").chars().take(80).collect(),
            ]
        })
        .collect();
    table::render(
        &["id", "source", "by", "created (UTC)", "run", "status", "reason"],
        &rows,
    )
}

/// Runs a `retrain quarantine` command.
///
/// # Errors
/// The service's refusal or an unreachable service.
pub async fn quarantine(target: &Target, command: QuarantineCommand) -> anyhow::Result<()> {
    let client = target.client();
    let answer = match command {
        QuarantineCommand::List { model } => client.quarantines(model.as_deref()).await?,
        QuarantineCommand::Release { id, reason } => Value::Array(vec![client.release_quarantine(id, &reason).await?]),
    };
    print(target.json, &answer, quarantines_table);
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a client key; it is printed once and never again.
    Create {
        /// The client's name: its feedback's source and its admin actions' actor.
        name: String,
        /// What the key may do (repeat, or comma-separate): predict, feedback, admin.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// The one model the key may predict for and send feedback to (any if absent).
        #[arg(long)]
        model: Option<String>,
    },
    /// Every key, without the keys themselves: prefix, scopes, who made and revoked it.
    List,
    /// Revoke a key (audited); it is refused from then on.
    Revoke { name: String },
}

/// Runs a `retrain keys` command.
///
/// # Errors
/// The service's refusal or an unreachable service.
pub async fn keys(target: &Target, command: KeysCommand) -> anyhow::Result<()> {
    let client = target.client();
    let answer = match command {
        KeysCommand::Create { name, scopes, model } => {
            let created = client.create_key(&name, &scopes, model.as_deref()).await?;
            if !target.json {
                println!("key {name}: {}", text(&created["key"]));
                println!("(shown once: store it now; only its hash is kept)");
                return Ok(());
            }
            created
        }
        KeysCommand::List => client.keys().await?["keys"].take(),
        KeysCommand::Revoke { name } => Value::Array(vec![client.revoke_key(&name).await?]),
    };
    print(target.json, &answer, keys_table);
    Ok(())
}

fn keys_table(keys: &Value) -> String {
    let rows: Vec<Vec<String>> = keys
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let scopes: Vec<String> = k["scopes"].as_array().into_iter().flatten().map(text).collect();
            vec![
                text(&k["name"]),
                format!("{}...", text(&k["prefix"])),
                scopes.join(","),
                text(&k["model"]),
                format!("{} by {}", short_time(&k["created_at"]), text(&k["created_by"])),
                match k["revoked_by"].as_str() {
                    Some(by) => format!("revoked by {by} {}", short_time(&k["revoked_at"])),
                    None => "live".into(),
                },
            ]
        })
        .collect();
    table::render(&["name", "key", "scopes", "model", "created (UTC)", "status"], &rows)
}
