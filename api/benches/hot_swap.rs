//! Hot-swap lag under load: DESIGN.md asks that a promotion reach the
//! answers within 50 ms (p99) without failing a single request. This bench
//! starts the real service in-process (`startup::serve`, role api) on a
//! scratch database, stores a second model, keeps 32 HTTP clients predicting
//! in a loop, and promotes v2, v1, v2, ... through `POST /models/{v}/promote`
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
//!
//! `DATABASE_URL` names the server (default
//! postgres://postgres@127.0.0.1:5432/postgres); a scratch database is
//! created next to its database and dropped at the end. The service runs on
//! a tokio runtime of its own (as in its own process), the clients on
//! another; both share the machine's cores (2 here) with PostgreSQL.

use chrono::{DateTime, Utc};
use clap::Parser;
use retrain_api::cli::{Cli, Command};
use retrain_steps::fit::fit_and_store;
use retrain_steps::ml::{Split, TreeParams};
use retrain_steps::store::datasets::{self, DEFAULT_DATASET};
use retrain_steps::trainset;
use serde::Deserialize;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-admin-token";

struct Options {
    promotions: usize,
    clients: usize,
    spacing: Duration,
    shared_runtime: bool,
}

impl Options {
    /// Our flags; anything else (cargo passes `--bench`) is ignored.
    fn parse() -> Self {
        let mut options = Self {
            promotions: 24,
            clients: 32,
            spacing: Duration::from_millis(300),
            shared_runtime: false,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let value = || args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
            match args[i].as_str() {
                "--promotions" => options.promotions = value().expect("--promotions N") as usize,
                "--clients" => options.clients = value().expect("--clients N") as usize,
                "--spacing-ms" => options.spacing = Duration::from_millis(value().expect("--spacing-ms MS")),
                "--shared-runtime" => {
                    options.shared_runtime = true;
                    i += 1;
                    continue;
                }
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        options.promotions = options.promotions.max(2);
        options
    }
}

#[derive(Deserialize)]
struct Answer {
    model_version: i32,
}

/// What `/model/info` says about the model a replica serves.
#[derive(Deserialize)]
struct Info {
    version: i32,
    loaded_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Promotion {
    version: i32,
    promoted_at: DateTime<Utc>,
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// (arrival, model version) of every answer, in order.
    answers: Vec<(DateTime<Utc>, i32)>,
    failures: usize,
    first_failure: Option<String>,
}

/// A scratch database next to `DATABASE_URL`'s, dropped by [`Scratch::drop_now`].
struct Scratch {
    admin: PgPool,
    name: String,
    options: PgConnectOptions,
}

impl Scratch {
    async fn create() -> anyhow::Result<Self> {
        let url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let base = PgConnectOptions::from_str(&url)?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(base.clone())
            .await
            .map_err(|e| anyhow::anyhow!("no PostgreSQL answers at {url}: {e}"))?;
        let name = format!("retrain_bench_swap_{}", std::process::id());
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
        let options = base.database(&name);
        Ok(Self { admin, name, options })
    }

    fn url(&self) -> String {
        self.options.to_url_lossy().to_string()
    }

    async fn drop_now(self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(err) = sqlx::query(&sql).execute(&self.admin).await {
            eprintln!("could not drop the scratch database {}: {err}", self.name);
        }
    }
}

/// Stores a second model (base split, depth 3) without promoting it, as the
/// API tests do.
async fn second_model(pool: &PgPool) -> anyhow::Result<i32> {
    let mut tx = pool.begin().await?;
    let dataset = datasets::current(&mut tx, DEFAULT_DATASET)
        .await?
        .expect("bootstrapped");
    let set = trainset::assemble(&mut tx, &dataset, 0).await?;
    let id = trainset::record(&mut tx, None, &set.lineage).await?;
    let params = TreeParams {
        max_depth: Some(3),
        ..TreeParams::default()
    };
    let model = fit_and_store(&mut tx, set, id, None, &params).await?;
    tx.commit().await?;
    Ok(model.version)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
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
    let scratch = clients.block_on(Scratch::create())?;
    let result = clients.block_on(run(&options, &scratch, service_handle));
    clients.block_on(scratch.drop_now());
    result
}

async fn run(options: &Options, scratch: &Scratch, service: tokio::runtime::Handle) -> anyhow::Result<()> {
    let url = scratch.url();
    let Command::Serve(settings) = Cli::parse_from([
        "retrain",
        "serve",
        "--role",
        "api",
        "--bind",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
        "--database-url",
        url.as_str(),
    ])
    .command
    else {
        unreachable!("a serve command")
    };
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
    let v2 = second_model(&pool).await?;
    let v1 = 1;
    let inputs: Arc<Vec<Vec<u8>>> = Arc::new({
        let mut conn = pool.acquire().await?;
        let dataset = datasets::current(&mut conn, DEFAULT_DATASET)
            .await?
            .expect("bootstrapped");
        datasets::examples(&mut conn, dataset.id, Split::Pool)
            .await?
            .iter()
            .take(64)
            .map(|e| serde_json::to_vec(&json!({"features": e.features})).expect("json"))
            .collect()
    });

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
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..options.clients)
        .map(|offset| {
            let (client, stop, inputs, url) = (client.clone(), stop.clone(), inputs.clone(), format!("{base}/predict"));
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let mut i = offset;
                while !stop.load(Ordering::Relaxed) {
                    let body = inputs[i % inputs.len()].clone();
                    i += 1;
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    let outcome = match sent {
                        Ok(r) if r.status() == 200 => r.json::<Answer>().await.map_err(|e| e.to_string()),
                        Ok(r) => Err(format!("status {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    };
                    match outcome {
                        Ok(answer) => seen.answers.push((Utc::now(), answer.model_version)),
                        Err(why) => {
                            seen.failures += 1;
                            seen.first_failure.get_or_insert(why);
                        }
                    }
                }
                seen
            })
        })
        .collect();

    // Warm up before the first promotion.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut promotions = Vec::with_capacity(options.promotions);
    for round in 0..options.promotions {
        let target = if round % 2 == 0 { v2 } else { v1 };
        let response = client
            .post(format!("{base}/models/{target}/promote"))
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
        let seen = handle.await?;
        all.answers.extend(seen.answers);
        all.failures += seen.failures;
        if all.first_failure.is_none() {
            all.first_failure = seen.first_failure;
        }
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
        let committed = (*answered_at - promotion.promoted_at)
            .num_microseconds()
            .unwrap_or(i64::MAX) as f64
            / 1000.0;
        commits_ms.push(committed);
        let first = all
            .answers
            .iter()
            .find(|(at, v)| *at >= promotion.promoted_at && *v == promotion.version)
            .map(|(at, _)| *at);
        match first {
            Some(at) => {
                let ms = |d: chrono::TimeDelta| d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
                let lag = ms(at - promotion.promoted_at);
                // promoted_at -> loaded and swapped in; swapped in -> first answer.
                let (swap, after) = match loaded_at {
                    Some(loaded) => (
                        format!("{:.2}", ms(*loaded - promotion.promoted_at)),
                        format!("{:.2}", ms(at - *loaded)),
                    ),
                    None => ("?".into(), "?".into()),
                };
                if let Some(loaded) = loaded_at {
                    swaps_ms.push(ms(*loaded - promotion.promoted_at));
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
    let total = all.answers.len() + all.failures;
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
