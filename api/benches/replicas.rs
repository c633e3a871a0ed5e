//! Many processes on one database (issue 14): two API replicas and two
//! workers, each the real `retrain serve` binary in its own process, share
//! one PostgreSQL database as a team would run them behind a load balancer.
//! The bench drives both APIs at once with predicting clients, promotes the
//! wine model `--promotions` times (alternating two versions, each promotion
//! sent to the other replica), and keeps both workers busy with back-to-back
//! retrain runs of two text models. It reports:
//!
//! - total predict throughput over both replicas, and failed requests;
//! - swap lag per replica: the promotion's `promoted_at` (stored by
//!   PostgreSQL) -> the first answer from that replica carrying the new
//!   version, p50/p99/max;
//! - runs completed during the load, by status, with their median duration;
//! - connections at the database (`pg_stat_activity`, the bench's own
//!   excluded), sampled every 100 ms: peak and median, against the sum of
//!   the processes' pool sizes.
//!
//!   cargo bench -p retrain-api --bench replicas
//!   cargo bench -p retrain-api --bench replicas -- --promotions 20 --clients 32 --spacing-ms 500
//!
//! `DATABASE_URL` names the server (default
//! postgres://postgres@127.0.0.1:5432/postgres); a scratch database is
//! created beside its database and dropped at the end. Every process, the
//! clients and PostgreSQL share this machine's cores, so the figures are a
//! floor for replicas on machines of their own.

mod support;

use anyhow::Context;
use clap::Parser;
use retrain_api::client::Client;
use retrain_api::demo::tickets::{Tickets, Vocabulary};
use retrain_steps::ml::Split;
use retrain_testkit::fixtures::{another_model, split_rows};
use retrain_testkit::process::{Binary, Role};
use retrain_testkit::stats::percentile;
use retrain_testkit::{ScratchDb, error_chain};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{Promotion, Seen, millis, predict_loop};

const RETRAIN: Binary = Binary {
    path: env!("CARGO_BIN_EXE_retrain"),
    token: "replicas-bench-admin-token-0123456789",
};

/// The bench's own sessions, left out of the connection count.
const BENCH_APPLICATION: &str = "replicas-bench";

/// Text models the workers retrain while the APIs serve.
const TEXT_MODELS: [&str; 2] = ["bench-tickets-a", "bench-tickets-b"];

/// Two API replicas and two workers on one database, under load.
#[derive(Debug, Parser)]
#[command(name = "replicas")]
struct Options {
    /// Promotions of the wine model, alternating two versions (at least 2).
    #[arg(
        long,
        default_value_t = 20,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..)
    )]
    promotions: usize,
    /// Predicting HTTP clients per API replica.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Time from one promotion to the next, in ms.
    #[arg(long = "spacing-ms", default_value_t = 500)]
    spacing_ms: u64,
    /// Pool size of each process (`RETRAIN_DB_POOL`).
    #[arg(long, default_value_t = 16)]
    db_pool: u32,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse_from(retrain_testkit::bench::args());
    retrain_testkit::telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let scratch = runtime.block_on(ScratchDb::create("retrain_bench_replicas"))?;
    let result = runtime.block_on(run(&options, &scratch));
    if let Err(err) = runtime.block_on(scratch.drop_now()) {
        eprintln!("could not drop the scratch database: {}", error_chain(&err));
    }
    result
}

async fn run(options: &Options, scratch: &ScratchDb) -> anyhow::Result<()> {
    let url = scratch.url();
    let pool_size = options.db_pool.to_string();
    let env = [("RETRAIN_DB_POOL", pool_size.as_str())];
    // The first API migrates and bootstraps; the others start on that.
    let first = RETRAIN.start(Role::Api, &url, &env).await;
    let apis = [first, RETRAIN.start(Role::Api, &url, &env).await];
    let workers = [
        RETRAIN.start(Role::Worker, &url, &env).await,
        RETRAIN.start(Role::Worker, &url, &env).await,
    ];
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(scratch.options().application_name(BENCH_APPLICATION))
        .await?;
    let v2 = another_model(&pool, 3).await;
    let v1 = 1;
    let inputs: Arc<Vec<Vec<u8>>> = Arc::new(
        split_rows(&pool, Split::Pool)
            .await
            .iter()
            .take(64)
            .map(|e| serde_json::to_vec(&json!({"features": e.input.features()})).expect("json"))
            .collect(),
    );
    let admin = Client::new(&apis[0].base, Some(RETRAIN.token.to_owned()));
    for (i, model) in TEXT_MODELS.iter().enumerate() {
        let created = admin
            .upload_body(
                &format!("/models?name={model}&kind=text&text=body&label=category&source=bench"),
                Tickets::new(i as u64).json_lines(600, Vocabulary::Known).into(),
                "application/x-ndjson",
            )
            .await?;
        let run = created["run"]["id"].as_str().context("import without a run")?;
        wait_for_run(&admin, run).await?;
    }
    println!(
        "replicas: 2 API processes ({} predicting clients each) and 2 worker processes, pool {} each, on one database; {} promotions every {} ms; workers retrain {} text models back to back; {} cores shared by everything",
        options.clients,
        options.db_pool,
        options.promotions,
        options.spacing_ms,
        TEXT_MODELS.len(),
        retrain_testkit::bench::cores()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.clients * 2)
        .build()?;
    let started = Instant::now();
    let replicas: Vec<Vec<_>> = apis
        .iter()
        .map(|api| {
            (0..options.clients)
                .map(|offset| {
                    let predicting =
                        predict_loop(http.clone(), api.url("/predict"), inputs.clone(), offset, stop.clone());
                    tokio::spawn(predicting)
                })
                .collect()
        })
        .collect();
    let chains: Vec<_> = TEXT_MODELS
        .iter()
        .enumerate()
        .map(|(i, model)| tokio::spawn(retrain_loop(admin.clone(), model, 100 + i as u64, stop.clone())))
        .collect();
    let sampler = tokio::spawn(count_connections(pool.clone(), stop.clone()));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut promotions = Vec::with_capacity(options.promotions);
    for round in 0..options.promotions {
        let target = if round % 2 == 0 { v2 } else { v1 };
        let via = &apis[round % 2];
        let response = via
            .admin_post(
                &format!("/models/wine-quality/versions/{target}/promote"),
                json!({"reason": format!("replicas bench round {round}")}),
            )
            .await;
        anyhow::ensure!(
            response.status() == 200,
            "promotion {round} answered {}",
            response.status()
        );
        let promotion: Promotion = response.json().await?;
        anyhow::ensure!(
            promotion.version == target,
            "promoted {} instead of {target}",
            promotion.version
        );
        promotions.push(promotion);
        tokio::time::sleep(Duration::from_millis(options.spacing_ms)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut seen: Vec<Seen> = Vec::new();
    for clients in replicas {
        let mut replica = Seen::default();
        for client in clients {
            replica.absorb(client.await?);
        }
        replica.answers.sort_by_key(|(at, _)| *at);
        seen.push(replica);
    }
    let mut runs: Vec<(String, f64)> = Vec::new();
    for chain in chains {
        runs.extend(chain.await??);
    }
    let connections = sampler.await??;
    let rss_mib: Vec<f64> = apis
        .iter()
        .chain(&workers)
        .map(|p| p.rss_kib() as f64 / 1024.0)
        .collect();

    let requests: usize = seen.iter().map(Seen::requests).sum();
    let failures: usize = seen.iter().map(|s| s.failures).sum();
    println!();
    println!(
        "predict: {requests} requests in {:.1} s over both replicas = {:.0} req/s (replica 1: {:.0}, replica 2: {:.0}); failed: {failures}",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        seen[0].requests() as f64 / elapsed.as_secs_f64(),
        seen[1].requests() as f64 / elapsed.as_secs_f64(),
    );
    if let Some(why) = seen.iter().find_map(|s| s.first_failure.as_ref()) {
        println!("first failure: {why}");
    }
    let mut unseen = 0;
    for (i, replica) in seen.iter().enumerate() {
        let mut lags: Vec<f64> = promotions
            .iter()
            .filter_map(|p| replica.first_answer_of(p).map(|at| millis(p.promoted_at, at)))
            .collect();
        unseen += promotions.len() - lags.len();
        lags.sort_by(f64::total_cmp);
        println!(
            "swap lag, replica {} ({} of {} promotions seen): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            i + 1,
            lags.len(),
            promotions.len(),
            percentile(&lags, 50.0),
            percentile(&lags, 99.0),
            lags.last().copied().unwrap_or(f64::NAN)
        );
    }
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for (status, _) in &runs {
        *by_status.entry(status.as_str()).or_default() += 1;
    }
    let mut durations: Vec<f64> = runs.iter().map(|(_, ms)| *ms).collect();
    durations.sort_by(f64::total_cmp);
    println!(
        "runs completed by the 2 workers during the load: {} ({by_status:?}), median {:.0} ms from trigger to end",
        runs.len(),
        percentile(&durations, 50.0)
    );
    let mut sorted = connections.clone();
    sorted.sort_unstable();
    println!(
        "connections at the database (4 processes, pool {} each = {} at most): peak {}, median {}",
        options.db_pool,
        4 * options.db_pool,
        sorted.last().copied().unwrap_or(0),
        sorted.get(sorted.len() / 2).copied().unwrap_or(0)
    );
    println!(
        "resident memory, MiB: api {:.0} / {:.0}, worker {:.0} / {:.0}",
        rss_mib[0], rss_mib[1], rss_mib[2], rss_mib[3]
    );
    drop(workers);
    pool.close().await;
    anyhow::ensure!(
        unseen == 0,
        "{unseen} (replica, promotion) pairs never answered with the new version"
    );
    anyhow::ensure!(failures == 0, "{failures} predict requests failed");
    Ok(())
}

/// Corrected tickets then a retrain of `model`, again and again until
/// `stop`; each finished run's status and trigger-to-end time in ms.
async fn retrain_loop(
    client: Client,
    model: &'static str,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<(String, f64)>> {
    let mut tickets = Tickets::new(seed);
    let mut finished = Vec::new();
    // The admin token is a key with every scope, feedback among them.
    let agents = client.with_key(RETRAIN.token);
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..20 {
            let ticket = tickets.ticket(Vocabulary::New);
            agents
                .feedback_to(
                    model,
                    &json!({"text": ticket.text, "correct_label": ticket.category, "source": "bench-agents"}),
                )
                .await?;
        }
        let triggered = Instant::now();
        let (run, _) = client.trigger(Some(model), Some("replicas bench")).await?;
        let id = run["id"].as_str().context("run without id")?;
        let status = wait_for_run(&client, id).await?;
        finished.push((status, triggered.elapsed().as_secs_f64() * 1000.0));
    }
    Ok(finished)
}

/// Polls the run until it ends; its final status.
async fn wait_for_run(client: &Client, id: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = client.run(id).await?["status"].as_str().unwrap_or("").to_owned();
        if status != "queued" && status != "running" {
            return Ok(status);
        }
        anyhow::ensure!(Instant::now() < deadline, "run {id} still {status} after 120 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The database's sessions other than the bench's, every 100 ms until `stop`.
async fn count_connections(pool: sqlx::PgPool, stop: Arc<AtomicBool>) -> anyhow::Result<Vec<i64>> {
    let mut counts = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name <> $1",
        )
        .bind(BENCH_APPLICATION)
        .fetch_one(&pool)
        .await?;
        counts.push(count);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(counts)
}
