//! The exercises of the demo, each played over HTTP against the running
//! service: on the wine model, traffic and feedback, a retrain run, a hot
//! swap under load, a poisoning attempt, and the metrics a dashboard would
//! show; then a text model of generated tickets that learns its users'
//! new words from their feedback. Every client that sends feedback is a
//! key of its own (made with the admin token), as in a real deployment: the
//! rows' source is the key's name, whatever the bodies say.

use super::load::Load;
use super::tickets::{Ticket, Tickets, Vocabulary};
use super::{Outcome, say};
use crate::client::Client;
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use retrain_steps::ml::{Example, Split};
use retrain_steps::pipeline::FIRST_MODEL;
use retrain_steps::store::{datasets, models};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Plays the exercises in order; a failed one is reported, not fatal.
pub async fn play(client: &Client, pool: &PgPool, started: Instant) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    println!("\n1. Predictions, and feedback piling up");
    outcomes.push(outcome(
        "1. traffic and feedback",
        traffic_and_feedback(client, pool, started).await,
    ));
    println!("\n2. A retrain run: collect -> merge -> train -> validate -> promote");
    outcomes.push(outcome(
        "2. retrain run",
        retrain(client, FIRST_MODEL, started, "demo: users sent feedback").await,
    ));
    println!("\n3. Hot swap under load: roll back and forward while clients predict");
    outcomes.push(outcome("3. hot swap", hot_swap(client, pool, started).await));
    println!("\n4. A poisoning attempt: label-flipped feedback");
    outcomes.push(outcome("4. poisoning", poisoning(client, pool, started).await));
    println!("\n5. What a dashboard would show (from /metrics)");
    outcomes.push(outcome("5. metrics", metrics(client).await));
    println!("\n6. Your own model: a text classifier hit with text, corrected by its users");
    outcomes.push(outcome("6. text model", text_model(client, started).await));
    outcomes
}

fn outcome(exercise: &'static str, result: anyhow::Result<String>) -> Outcome {
    let result = result.unwrap_or_else(|err| {
        println!("   failed: {err:#}");
        format!("FAILED: {err}")
    });
    Outcome { exercise, result }
}

async fn split(pool: &PgPool, split: Split) -> anyhow::Result<Vec<Example>> {
    let mut conn = pool.acquire().await?;
    let wine = models::by_name(&mut conn, FIRST_MODEL).await?;
    let dataset = datasets::current(&mut conn, wine.id)
        .await?
        .context("no data set: bootstrap did not run")?;
    Ok(datasets::examples(&mut conn, dataset.id, split).await?)
}

/// The features of a wine row (the wine data is tabular).
fn features(example: &Example) -> &[f64] {
    example.input.features().unwrap_or_default()
}

/// Runs `call` for every item, 16 at a time, in order of completion.
async fn concurrently<T, F, Fut, R>(items: Vec<T>, call: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let mut results = Vec::with_capacity(items.len());
    let mut running = JoinSet::new();
    for item in items {
        if running.len() >= 16
            && let Some(Ok(result)) = running.join_next().await
        {
            results.push(result);
        }
        running.spawn(call(item));
    }
    while let Some(result) = running.join_next().await {
        if let Ok(result) = result {
            results.push(result);
        }
    }
    results
}

async fn traffic_and_feedback(client: &Client, pool: &PgPool, started: Instant) -> anyhow::Result<String> {
    let traffic: Vec<Example> = split(pool, Split::Pool).await?.into_iter().take(300).collect();
    say(
        started,
        &format!("sending {} predictions (wines the model has never seen)", traffic.len()),
    );
    let answers = concurrently(traffic.clone(), |example| {
        let client = client.clone();
        async move { client.predict(features(&example)).await.map(|answer| (example, answer)) }
    })
    .await;
    let answers: Vec<(Example, Value)> = answers.into_iter().collect::<Result<_, _>>()?;
    let right = answers
        .iter()
        .filter(|(e, a)| a["label"].as_str() == Some(e.label.as_str()))
        .count();
    let version = answers
        .first()
        .map_or(0, |(_, a)| a["model_version"].as_i64().unwrap_or_default());
    println!(
        "   {} answers from model version {version}: {right} right ({:.1}%)",
        answers.len(),
        100.0 * right as f64 / answers.len().max(1) as f64
    );
    let corrections: Vec<Value> = answers
        .iter()
        .take(300)
        .map(|(e, a)| json!({"features": features(e), "correct_label": e.label, "prediction_id": a["prediction_id"]}))
        .collect();
    let users = as_key(client, &unique("demo-users")).await?;
    say(
        started,
        &format!(
            "users send the true label for each of the {} answers, citing the prediction",
            corrections.len()
        ),
    );
    let stored = concurrently(corrections, |body| {
        let client = users.clone();
        async move { client.feedback(&body).await }
    })
    .await;
    let stored: Vec<i64> = stored.into_iter().collect::<Result<_, _>>()?;
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM feedback WHERE id > (SELECT coalesce(max(watermark), 0) FROM collections WHERE passed)",
    )
    .fetch_one(pool)
    .await?;
    println!(
        "   {} feedback rows acknowledged, each after its commit; {waiting} rows wait for the next run",
        stored.len()
    );
    Ok(format!(
        "{} predictions ({:.0}% right), {} feedback rows stored",
        answers.len(),
        100.0 * right as f64 / answers.len().max(1) as f64,
        stored.len()
    ))
}

/// Triggers a run of `model` and prints its events as they happen; returns
/// a summary.
async fn retrain(client: &Client, model: &str, started: Instant, reason: &str) -> anyhow::Result<String> {
    let (run, new) = client.trigger(Some(model), Some(reason)).await?;
    let id = run["id"].as_str().context("run without id")?.to_owned();
    say(
        started,
        &format!("{} run {}", if new { "queued" } else { "joined the active" }, &id[..8]),
    );
    follow_run(client, &id, started).await
}

/// Prints a run's events as they happen until it ends; returns a summary.
async fn follow_run(client: &Client, id: &str, started: Instant) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut printed = 0;
    let detail = loop {
        let detail = client.run(id).await?;
        let events = detail["events"].as_array().cloned().unwrap_or_default();
        for event in &events[printed.min(events.len())..] {
            let what = event["step"].as_str().unwrap_or("run");
            let from = event["from_status"].as_str().unwrap_or("");
            let to = event["to_status"].as_str().unwrap_or("");
            let arrow = if from.is_empty() {
                to.to_owned()
            } else {
                format!("{from} -> {to}")
            };
            let why = event["reason"].as_str().map(|r| format!("  ({r})")).unwrap_or_default();
            say(started, &format!("  {what:<9} {arrow}{why}"));
        }
        printed = events.len();
        let status = detail["status"].as_str().unwrap_or("").to_owned();
        if !matches!(status.as_str(), "queued" | "running") {
            break detail;
        }
        if Instant::now() > deadline {
            bail!("run {id} still {status} after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = detail["status"].as_str().unwrap_or("?");
    let validate = detail["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == "validate"))
        .map(|s| s["output"].clone())
        .unwrap_or(Value::Null);
    if validate.is_object() {
        print_comparison(&validate);
    }
    Ok(match status {
        "succeeded" => format!(
            "run {} succeeded: version {} promoted",
            &id[..8],
            validate["candidate"]["version"]
        ),
        _ => format!(
            "run {} {status}: {}",
            &id[..8],
            detail["outcome"]["reason"].as_str().unwrap_or("no reason recorded")
        ),
    })
}

fn print_comparison(validate: &Value) {
    let line = |role: &str, m: &Value| {
        if m.is_object() {
            println!(
                "   {role:<9} version {:<3} golden accuracy {:.4}  macro-F1 {:.4}",
                m["version"],
                m["accuracy"].as_f64().unwrap_or_default(),
                m["macro_f1"].as_f64().unwrap_or_default()
            );
        }
    };
    line("champion", &validate["champion"]);
    line("candidate", &validate["candidate"]);
    let c = &validate["comparison"];
    if c.is_object() {
        println!(
            "   paired on {} golden rows: only the candidate right on {}, only the champion on {} (McNemar p = {:.3})",
            c["n"],
            c["only_candidate_right"],
            c["only_champion_right"],
            c["p_value"].as_f64().unwrap_or(1.0)
        );
    }
    for check in validate["checks"].as_array().into_iter().flatten() {
        let mark = if check["passed"] == true { "pass" } else { "FAIL" };
        println!("   gate {mark}: {}", check["detail"].as_str().unwrap_or(""));
    }
}

async fn hot_swap(client: &Client, pool: &PgPool, started: Instant) -> anyhow::Result<String> {
    let models = client.versions(FIRST_MODEL).await?;
    let models = models.as_array().context("version list")?;
    let champion = models
        .iter()
        .find(|m| m["is_champion"] == true)
        .and_then(|m| m["version"].as_i64())
        .context("no champion")?;
    let other = models
        .iter()
        .filter_map(|m| m["version"].as_i64())
        .find(|v| *v != champion)
        .context("only one model is stored: nothing to swap to")?;
    let inputs: Vec<Vec<f64>> = split(pool, Split::Golden)
        .await?
        .into_iter()
        .map(|e| features(&e).to_vec())
        .collect();
    let load = Load::start(client, inputs, 8);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut swaps: Vec<(i64, DateTime<Utc>)> = Vec::new();
    for (target, why) in [(other, "demo: roll back under load"), (champion, "demo: forward again")] {
        let promotion = client.promote(FIRST_MODEL, target as i32, why).await?;
        let committed: DateTime<Utc> = promotion["promoted_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .context("promotion without time")?;
        say(
            started,
            &format!(
                "promoted version {target} ({})",
                promotion["kind"].as_str().unwrap_or("?")
            ),
        );
        swaps.push((target, committed));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let seen = load.stop().await;
    let mut lags = Vec::new();
    for (target, committed) in &swaps {
        let first = seen
            .first_from(*target, *committed)
            .context("no answer from the promoted version")?;
        let lag = (first - *committed).num_microseconds().unwrap_or_default() as f64 / 1000.0;
        println!("   version {target}: first answer {lag:.1} ms after the promotion committed");
        lags.push(lag);
    }
    println!(
        "   {} requests answered during the swaps, {} failed",
        seen.answers.len(),
        seen.failures
    );
    Ok(format!(
        "swap lags {} ms; {} requests, {} failed",
        lags.iter().map(|l| format!("{l:.1}")).collect::<Vec<_>>().join(" / "),
        seen.answers.len(),
        seen.failures
    ))
}

async fn poisoning(client: &Client, pool: &PgPool, started: Instant) -> anyhow::Result<String> {
    let attacker = unique("demo-attacker");
    // The body's source changes on every row: it is a sub-label, so the
    // rows are still the attacker key's.
    let flipped: Vec<Value> = split(pool, Split::Base)
        .await?
        .into_iter()
        .filter(|e| e.label == "5" || e.label == "6")
        .take(400)
        .enumerate()
        .map(|(i, e)| {
            json!({"features": features(&e), "correct_label": if e.label == "5" { "6" } else { "5" },
                         "source": format!("innocent-{i}")})
        })
        .collect();
    say(
        started,
        &format!(
            "{attacker} sends {} rows with the labels 5 and 6 swapped",
            flipped.len()
        ),
    );
    let sent = send_all(&as_key(client, &attacker).await?, flipped).await;
    let attacked = retrain(client, FIRST_MODEL, started, "demo: after a poisoning attempt").await?;
    let rules = client.quarantines(Some(FIRST_MODEL)).await?;
    let caught = rules
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["source"] == attacker.as_str() && q["actor"] == "screening" && q["released_at"].is_null());
    let rule = match caught {
        Some(rule) => {
            say(
                started,
                &format!(
                    "screening quarantined {attacker} (rule {}) before the gate saw its rows: {}",
                    rule["id"],
                    rule["reason"].as_str().unwrap_or("")
                ),
            );
            "screening quarantined the source"
        }
        None => {
            // Screening let it through: the gate judged the rows; stop the source by hand.
            let matched = client
                .quarantine(&attacker, "demo: label-flipping attack screening missed")
                .await?;
            say(started, &format!("quarantined {attacker} by hand: {matched} rows"));
            "the gate judged the rows (screening missed the source)"
        }
    };
    let users = format!("demo-users-{}", &attacker["demo-attacker-".len()..]);
    let honest: Vec<Value> = split(pool, Split::Pool)
        .await?
        .into_iter()
        .take(100)
        .map(|e| json!({"features": features(&e), "correct_label": e.label}))
        .collect();
    say(started, &format!("{users} sends {} true rows", honest.len()));
    send_all(&as_key(client, &users).await?, honest).await;
    let honest_run = retrain(client, FIRST_MODEL, started, "demo: honest feedback after the attack").await?;
    Ok(format!(
        "{sent} poisoned rows; {rule} ({attacked}); honest retrain: {honest_run}"
    ))
}

/// `name` with a suffix of its own: key names are never reused, and the
/// demo may play again on the same database.
fn unique(name: &str) -> String {
    format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// A client that predicts and sends feedback as a new key named `name`.
async fn as_key(client: &Client, name: &str) -> anyhow::Result<Client> {
    let created = client
        .create_key(name, &["predict".into(), "feedback".into()], None)
        .await?;
    let key = created["key"].as_str().context("no key in the answer")?;
    Ok(client.with_key(key))
}

/// Sends feedback bodies concurrently; how many were stored.
async fn send_all(client: &Client, bodies: Vec<Value>) -> usize {
    let sent = concurrently(bodies, |body| {
        let client = client.clone();
        async move { client.feedback(&body).await }
    })
    .await;
    sent.into_iter().filter(Result::is_ok).count()
}

async fn metrics(client: &Client) -> anyhow::Result<String> {
    // The stored-fact gauges refresh every 5 s.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let text = client.metrics().await?;
    let wanted = [
        "retrain_predictions_total",
        "retrain_feedback_total",
        "retrain_model_reloads_total",
        "retrain_swap_lag_seconds_count",
        "retrain_swap_lag_seconds_sum",
        "retrain_runs_total",
        "retrain_golden_accuracy",
        "retrain_feedback_waiting",
        "retrain_served_model_info",
        "retrain_champion_version",
    ];
    let mut shown = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        if wanted.contains(&name) {
            println!("   {line}");
            shown += 1;
        }
    }
    Ok(format!(
        "{shown} series shown; Grafana dashboards in dashboards/ plot them"
    ))
}

/// The demo's text model.
const TEXT_MODEL: &str = "support-tickets";

/// Creates a text model from generated tickets (or, on a database an
/// earlier demo filled, imports them as its next data set version), sends it
/// tickets written with words it has never seen, lets users correct its
/// answers, retrains, and measures it on fresh tickets of that kind before
/// and after.
async fn text_model(client: &Client, started: Instant) -> anyhow::Result<String> {
    let mut tickets = Tickets::new(2026);
    let lines = tickets.json_lines(600, Vocabulary::Known);
    say(
        started,
        &format!("creating the text model {TEXT_MODEL} from 600 support tickets the demo generates (not real data)"),
    );
    let created = client
        .upload_body(
            &format!("/models?name={TEXT_MODEL}&kind=text&text=body&label=category&source=demo-tickets"),
            lines.clone().into(),
            "application/x-ndjson",
        )
        .await;
    let imported = match created {
        Err(crate::client::ClientError::Api { status: 409, .. }) => {
            say(
                started,
                &format!("{TEXT_MODEL} exists from an earlier demo run: the tickets become its next data set version"),
            );
            client
                .upload_body(
                    &format!("/models/{TEXT_MODEL}/datasets?label=category&source=demo-tickets"),
                    lines.into(),
                    "application/x-ndjson",
                )
                .await?
        }
        other => other?,
    };
    let run = imported["run"]["id"]
        .as_str()
        .context("import without a run")?
        .to_owned();
    println!(
        "   imported data set version {} ({} classes); run {} trains, validates and promotes on it",
        imported["dataset_version"],
        imported["classes"].as_object().map_or(0, serde_json::Map::len),
        &run[..8]
    );
    follow_run(client, &run, started).await?;
    let first = champion_version(client).await?;
    let fresh: Vec<Ticket> = (0..150).map(|_| tickets.ticket(Vocabulary::New)).collect();
    let before = right_answers(client, &fresh, first).await?;
    say(
        started,
        &format!(
            "version {first} answers {before} of {} new tickets right: they use words (\"2fa\", \"renewal\", \"502\") it did not learn from the import",
            fresh.len()
        ),
    );
    let traffic: Vec<Ticket> = (0..150).map(|_| tickets.ticket(Vocabulary::New)).collect();
    let agents = as_key(client, &unique("demo-agents")).await?;
    for ticket in &traffic {
        let answer = agents.predict_with(TEXT_MODEL, &json!({"text": ticket.text})).await?;
        agents
            .feedback_to(
                TEXT_MODEL,
                &json!({"text": ticket.text, "correct_label": ticket.category,
                        "prediction_id": answer["prediction_id"]}),
            )
            .await?;
    }
    say(
        started,
        &format!(
            "support agents correct the model's answers on {} more tickets",
            traffic.len()
        ),
    );
    let summary = retrain(client, TEXT_MODEL, started, "demo: agents corrected the text model").await?;
    let second = champion_version(client).await?;
    let after = right_answers(client, &fresh, second).await?;
    say(
        started,
        &format!(
            "version {second} answers {after} of {} of the same new tickets right",
            fresh.len()
        ),
    );
    Ok(format!(
        "{TEXT_MODEL} (generated tickets): {before} -> {after} of {} new-word tickets right; {summary}",
        fresh.len()
    ))
}

/// The text model's champion version.
async fn champion_version(client: &Client) -> anyhow::Result<i64> {
    client.model(TEXT_MODEL).await?["champion_version"]
        .as_i64()
        .context("the text model has no champion")
}

/// How many of `tickets` the text model's `version` classifies right,
/// waiting (up to 10 s) for the replica to serve that version.
async fn right_answers(client: &Client, tickets: &[Ticket], version: i64) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = client.predict_with(TEXT_MODEL, &json!({"text": tickets[0].text})).await;
        if probe.is_ok_and(|answer| answer["model_version"] == version) {
            break;
        }
        if Instant::now() > deadline {
            bail!("{TEXT_MODEL} does not serve version {version} after 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut right = 0;
    for ticket in tickets {
        let answer = client.predict_with(TEXT_MODEL, &json!({"text": ticket.text})).await?;
        right += usize::from(answer["label"] == ticket.category);
    }
    Ok(right)
}
