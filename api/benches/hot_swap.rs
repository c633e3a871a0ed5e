//! Hot-swap lag under load: DESIGN.md asks that a promotion reach the
//! answers within 50 ms (p99) without failing a single request. This bench
//! starts the real service in-process (`startup::serve`, role api) on a
//! scratch database, stores a second model, keeps 32 HTTP clients predicting
//! in a loop, and promotes v2, v1, v2, ... through `POST /models/wine-quality/versions/{v}/promote`
//! about every 300 ms. For each promotion,
//!
//!   lag = arrival of the first answer carrying the new version
//!         - the promotion's `promoted_at` (stored by PostgreSQL),
//!
//! both read from this machine's clock. `promoted_at` is taken inside the
//! promoting transaction, a little before its commit, so the figure is an
//! upper bound of commit -> first answer. It includes the time the first
//! request on the new model takes to come back. Each promotion's lag is
//! split in two with `/model/info`'s `loaded_at`: promoted_at -> the replica
//! has loaded and swapped in the model, then -> the first answer from it.
//!
//!   cargo bench -p retrain-api --bench hot_swap
//!   cargo bench -p retrain-api --bench hot_swap -- --promotions 100 --clients 64 --spacing-ms 300 [--shared-runtime]
//!   cargo bench -p retrain-api --bench hot_swap -- --help
//!
//! `DATABASE_URL` names the server (default
//! postgres://postgres@127.0.0.1:5432/postgres); a scratch database is
//! created next to its database (`retrain_testkit::ScratchDb`, empty: the
//! service migrates and bootstraps it) and dropped at the end. The service
//! runs with its settings' defaults (never `RETRAIN_*` from the shell), on
//! a tokio runtime of its own (as in its own process), the clients on
//! another; both share the machine's cores (2 here) with PostgreSQL.

mod support;

use chrono::{DateTime, Utc};
use clap::Parser;
use retrain_steps::ml::Split;
use retrain_testkit::fixtures::{another_model, split_rows};
use retrain_testkit::stats::percentile;
use retrain_testkit::{ScratchDb, error_chain};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{Promotion, Seen, millis, predict_loop};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-admin-token-0123456789abcdef";

/// Hot-swap lag under load: promotions while clients keep predicting.
#[derive(Debug, Parser)]
#[command(name = "hot_swap")]
struct Options {
    /// Promotions, alternating between two models (at least 2).
    #[arg(
        long,
        default_value_t = 24,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..)
    )]
    promotions: usize,
    /// HTTP clients predicting in a loop.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Time from one promotion to the next, in ms.
    #[arg(long = "spacing-ms", default_value = "300", value_parser = parse_millis)]
    spacing: Duration,
    /// Run the clients on the service's runtime instead of their own.
    #[arg(long)]
    shared_runtime: bool,
}

fn parse_millis(value: &str) -> Result<Duration, String> {
    value
        .parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("not a number of milliseconds: {value:?}"))
}

/// What `/model/info` says about the model a replica serves.
#[derive(Deserialize)]
struct Info {
    version: i32,
    loaded_at: DateTime<Utc>,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse_from(retrain_testkit::bench::args());
    retrain_testkit::telemetry::init();
    // The service gets a runtime of its own, as `retrain serve` has in its
    // process (one worker thread per core); the clients another, unless
    // --shared-runtime puts them on the service's.
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(name)
            .build()
    };
    let clients = runtime("bench-clients")?;
    let service = if options.shared_runtime {
        None
    } else {
        Some(runtime("service")?)
    };
    let service_handle = service
        .as_ref()
        .map_or_else(|| clients.handle().clone(), |s| s.handle().clone());
    let scratch = clients.block_on(ScratchDb::create("retrain_bench_swap"))?;
    let result = clients.block_on(run(&options, &scratch, service_handle));
    if let Err(err) = clients.block_on(scratch.drop_now()) {
        eprintln!("could not drop the scratch database: {}", error_chain(&err));
    }
    result
}

async fn run(options: &Options, scratch: &ScratchDb, service: tokio::runtime::Handle) -> anyhow::Result<()> {
    let url = scratch.url();
    // The defaults and these flags, never the shell's RETRAIN_* variables.
    let settings: retrain_api::settings::ServeSettings = retrain_api::settings::from_flags(&[
        "--role",
        "api",
        "--bind",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
        "--database-url",
        url.as_str(),
    ])?;
    // The bench's own connections, for setup.
    let pool = retrain_api::startup::connect(&settings.database).await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = service.spawn(async move {
        let pool = retrain_api::startup::connect(&settings.database).await?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        retrain_api::startup::serve(settings, pool, listener, stop).await
    });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.clients * 2)
        .build()?;
    let base = format!("http://{address}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the service did not get ready in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

    println!(
        "hot swap: {} clients predicting, {} promotions alternating v{v2}/v{v1} every {} ms; clients on {} runtime; {} cores shared by clients, service and PostgreSQL",
        options.clients,
        options.promotions,
        options.spacing.as_millis(),
        if options.shared_runtime {
            "the service's"
        } else {
            "their own"
        },
        retrain_testkit::bench::cores()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..options.clients)
        .map(|offset| {
            let url = format!("{base}/predict");
            tokio::spawn(predict_loop(client.clone(), url, inputs.clone(), offset, stop.clone()))
        })
        .collect();

    // Warm up before the first promotion.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut promotions = Vec::with_capacity(options.promotions);
    for round in 0..options.promotions {
        let target = if round % 2 == 0 { v2 } else { v1 };
        let response = client
            .post(format!("{base}/models/wine-quality/versions/{target}/promote"))
            .bearer_auth(TOKEN)
            .header("x-retrain-actor", "hot-swap-bench")
            .json(&json!({"reason": format!("hot-swap bench round {round}")}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 200,
            "promotion {round} answered {}",
            response.status()
        );
        let promotion: Promotion = response.json().await?;
        // The promotion committed before this answer left the service.
        let answered_at = Utc::now();
        anyhow::ensure!(
            promotion.version == target,
            "promoted {} instead of {target}",
            promotion.version
        );
        tokio::time::sleep(options.spacing).await;
        // When the replica had the new model loaded and swapped in.
        let info: Info = client.get(format!("{base}/model/info")).send().await?.json().await?;
        let loaded_at = (info.version == target).then_some(info.loaded_at);
        promotions.push((promotion, answered_at, loaded_at));
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut all = Seen::default();
    for handle in clients {
        all.absorb(handle.await?);
    }
    let metrics = client.get(format!("{base}/metrics")).send().await?.text().await?;
    shutdown.cancel();
    server.await??;
    pool.close().await;

    all.answers.sort_by_key(|(at, _)| *at);
    let mut lags_ms = Vec::new();
    let mut unseen = 0;
    println!(
        "{:>5} {:>7} {:>32} {:>9} {:>14} {:>14} {:>16}",
        "round", "version", "promoted_at", "lag ms", "of it: swap", "first answer", "(promote answered)"
    );
    let mut swaps_ms = Vec::new();
    let mut commits_ms = Vec::new();
    for (round, (promotion, answered_at, loaded_at)) in promotions.iter().enumerate() {
        let committed = millis(promotion.promoted_at, *answered_at);
        commits_ms.push(committed);
        let first = all.first_answer_of(promotion);
        match first {
            Some(at) => {
                let lag = millis(promotion.promoted_at, at);
                // promoted_at -> loaded and swapped in; swapped in -> first answer.
                let (swap, after) = match loaded_at {
                    Some(loaded) => (
                        format!("{:.2}", millis(promotion.promoted_at, *loaded)),
                        format!("{:.2}", millis(*loaded, at)),
                    ),
                    None => ("?".into(), "?".into()),
                };
                if let Some(loaded) = loaded_at {
                    swaps_ms.push(millis(promotion.promoted_at, *loaded));
                }
                println!(
                    "{round:>5} {:>7} {:>32} {lag:>9.2} {swap:>14} {after:>14} {committed:>16.2}",
                    promotion.version,
                    promotion.promoted_at.to_rfc3339()
                );
                lags_ms.push(lag);
            }
            None => {
                println!(
                    "{round:>5} {:>7} {:>32} {:>9}",
                    promotion.version,
                    promotion.promoted_at.to_rfc3339(),
                    "never"
                );
                unseen += 1;
            }
        }
    }
    lags_ms.sort_by(f64::total_cmp);
    let total = all.requests();
    println!();
    println!(
        "requests: {total} in {:.1} s ({:.0} req/s), failed: {}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        all.failures
    );
    if let Some(why) = &all.first_failure {
        println!("first failure: {why}");
    }
    if !lags_ms.is_empty() {
        println!(
            "lag over {} promotions: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, min {:.2} ms",
            lags_ms.len(),
            percentile(&lags_ms, 50.0),
            percentile(&lags_ms, 99.0),
            lags_ms[lags_ms.len() - 1],
            lags_ms[0]
        );
    }
    swaps_ms.sort_by(f64::total_cmp);
    commits_ms.sort_by(f64::total_cmp);
    if !swaps_ms.is_empty() {
        println!(
            "of it, promoted_at -> model loaded and swapped in (the replica's loaded_at): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&swaps_ms, 50.0),
            percentile(&swaps_ms, 99.0),
            swaps_ms[swaps_ms.len() - 1]
        );
    }
    println!(
        "promoted_at -> the promote request answered (commit, then HTTP): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&commits_ms, 50.0),
        percentile(&commits_ms, 99.0),
        commits_ms[commits_ms.len() - 1]
    );
    // The replica's own view: promotion commit -> model swapped in.
    let server_lag: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("retrain_swap_lag_seconds_sum") || l.starts_with("retrain_swap_lag_seconds_count"))
        .collect();
    if let [sum, count] = server_lag.as_slice() {
        let value = |l: &str| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        if value(count) > 0.0 {
            println!(
                "server-side swap (promoted_at -> swapped in), mean over {}: {:.2} ms",
                value(count),
                value(sum) / value(count) * 1000.0
            );
        }
    }
    let p99 = if lags_ms.is_empty() {
        f64::INFINITY
    } else {
        percentile(&lags_ms, 99.0)
    };
    let met = all.failures == 0 && unseen == 0 && p99 < 50.0;
    println!(
        "target (p99 < 50 ms, zero failed requests): {}",
        if met { "met" } else { "NOT met" }
    );
    anyhow::ensure!(unseen == 0, "{unseen} promotions were never seen in an answer");
    Ok(())
}
