//! A full retrain cycle's wall time and per-step times, and how they grow
//! with the feedback table: DESIGN.md asks for a cycle over 1M feedback rows
//! in under 60 s. For each size this bench makes a scratch database,
//! migrates and bootstraps it, stores the feedback (not measured: the
//! default data's pool split as is, or N synthetic rows made server-side
//! from the base and pool rows with about 1% noise), then triggers a run and
//! drives it with a `Worker` tick by tick, as the pipeline tests do. It
//! prints the cycle's wall time (run created -> run finished), each step's
//! handler time and its tick (claim + handler + commit), the outcome and
//! the process's peak memory.
//!
//!   cargo bench -p retrain-steps --bench retrain_cycle             # pool 1k 10k 100k 1M
//!   cargo bench -p retrain-steps --bench retrain_cycle -- 1M 100k  # chosen sizes
//!   cargo bench -p retrain-steps --bench retrain_cycle -- --help
//!
//! `DATABASE_URL` names the server (default
//! postgres://postgres@127.0.0.1:5432/postgres); each size gets a scratch
//! database next to its database (`retrain_testkit::ScratchDb`), dropped at
//! the end. One process, 2 cores shared with PostgreSQL. `RUST_LOG` shows
//! the pipeline's logs.

use clap::Parser;
use retrain_engine::{Engine, NewRun, Registry, StepCommit, Tick, TriggerKind, Worker, WorkerConfig};
use retrain_steps::pipeline::{FIRST_MODEL, run_params};
use retrain_steps::store::{datasets, models};
use retrain_steps::{PipelineConfig, PipelineEnv, bootstrap::bootstrap, pipeline};
use retrain_testkit::ScratchDb;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A full retrain cycle's wall time and per-step times, by feedback size.
#[derive(Debug, Parser)]
#[command(name = "retrain_cycle")]
struct Options {
    /// Feedback sizes: `pool` (the default data's pool split, as the demo
    /// sends) or a row count such as 1000, 10k or 1M [default: pool 1k 10k
    /// 100k 1M]
    #[arg(value_parser = parse_size)]
    sizes: Vec<Size>,
}

fn parse_size(arg: &str) -> Result<Size, String> {
    Size::parse(arg).ok_or_else(|| format!("not a size: {arg} (pool, 1k, 10k, 100k, 1M or a number)"))
}

/// How much feedback a cycle runs over.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Size {
    /// The default data: the pool split sent back as feedback, as the demo does.
    Pool,
    /// This many synthetic rows.
    Rows(i64),
}

impl Size {
    fn parse(arg: &str) -> Option<Self> {
        let lower = arg.to_ascii_lowercase();
        if lower == "pool" || lower == "default" {
            return Some(Self::Pool);
        }
        let (digits, scale) = match lower.strip_suffix('k') {
            Some(d) => (d, 1_000),
            None => match lower.strip_suffix('m') {
                Some(d) => (d, 1_000_000),
                None => (lower.as_str(), 1),
            },
        };
        digits
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| Self::Rows(n * scale))
    }

    fn label(self) -> String {
        match self {
            Self::Pool => "pool".into(),
            Self::Rows(n) if n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
            Self::Rows(n) if n % 1_000 == 0 => format!("{}k", n / 1_000),
            Self::Rows(n) => n.to_string(),
        }
    }
}

/// One executed step attempt.
struct StepTime {
    step: String,
    handler: Duration,
    tick: Duration,
    error: Option<String>,
}

struct Cycle {
    size: Size,
    feedback_rows: i64,
    insert: Duration,
    wall: Duration,
    steps: Vec<StepTime>,
    status: String,
    reason: String,
    training_rows: Option<i64>,
    peak_rss_mib: Option<u64>,
}

/// Stores the feedback for `size`; returns how many rows.
async fn store_feedback(pool: &PgPool, size: Size) -> Result<i64, BoxError> {
    let mut conn = pool.acquire().await?;
    let wine = models::by_name(&mut conn, FIRST_MODEL).await?;
    let dataset = datasets::current(&mut conn, wine.id).await?.ok_or("not bootstrapped")?;
    match size {
        Size::Pool => {
            let done = sqlx::query(
                "INSERT INTO feedback (model_id, features, correct_label, source)
                 SELECT d.model_id, e.features, e.label, 'bench' FROM examples e JOIN datasets d ON d.id = e.dataset_id
                 WHERE e.dataset_id = $1 AND e.split = 'pool' ORDER BY e.id",
            )
            .bind(dataset.id)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() as i64)
        }
        Size::Rows(n) => {
            let sources: i64 =
                sqlx::query_scalar("SELECT count(*) FROM examples WHERE dataset_id = $1 AND split IN ('base', 'pool')")
                    .bind(dataset.id)
                    .fetch_one(&mut *conn)
                    .await?;
            // Each synthetic row is a base or pool row with every feature moved
            // by up to +-1% and rounded to 4 decimals, with its label.
            let chunk = 250_000;
            let mut from = 0;
            while from < n {
                let to = (from + chunk).min(n);
                sqlx::query(
                    "INSERT INTO feedback (model_id, features, correct_label, source)
                     SELECT (SELECT model_id FROM datasets WHERE id = $1), ARRAY(SELECT round((f * (1 + (random() - 0.5) * 0.02))::numeric, 4)::float8
                                  FROM unnest(s.features) WITH ORDINALITY AS u(f, o) ORDER BY o),
                            s.label, 'bench'
                     FROM generate_series($2::bigint, $3::bigint - 1) AS g
                     JOIN (SELECT row_number() OVER (ORDER BY id) - 1 AS k, features, label
                           FROM examples WHERE dataset_id = $1 AND split IN ('base', 'pool')) AS s
                       ON s.k = g % $4
                     ORDER BY g",
                )
                .bind(dataset.id)
                .bind(from)
                .bind(to)
                .bind(sources)
                .execute(&mut *conn)
                .await?;
                from = to;
            }
            sqlx::query("ANALYZE feedback").execute(&mut *conn).await?;
            Ok(n)
        }
    }
}

/// One cycle in a scratch database of its own, dropped afterwards.
async fn cycle(size: Size) -> Result<Cycle, BoxError> {
    let scratch = ScratchDb::migrated("retrain_bench_cycle").await?;
    let result = cycle_in(&scratch, size).await;
    scratch.drop_now().await?;
    result
}

async fn cycle_in(scratch: &ScratchDb, size: Size) -> Result<Cycle, BoxError> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(scratch.options())
        .await?;
    let env = PipelineEnv {
        pool: pool.clone(),
        config: Arc::new(PipelineConfig::default()),
    };
    bootstrap(&pool, &env.config).await?;
    let started = Instant::now();
    let feedback_rows = store_feedback(&pool, size).await?;
    let insert = started.elapsed();

    let engine = Engine::new(pool.clone(), Registry::new().register(pipeline(env)));
    let worker = Worker::new(engine.clone(), WorkerConfig::new("bench"));
    let started = Instant::now();
    let run = engine
        .create_run(NewRun {
            pipeline: retrain_steps::PIPELINE,
            subject: FIRST_MODEL,
            trigger: TriggerKind::Manual,
            params: run_params(FIRST_MODEL),
            requested_by: "retrain-cycle-bench",
        })
        .await?
        .run()
        .clone();
    let mut steps = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let wall = loop {
        if Instant::now() > deadline {
            return Err(format!("the run over {} rows did not finish in 10 minutes", size.label()).into());
        }
        let tick_started = Instant::now();
        match worker.tick().await? {
            Tick::Executed(execution) => {
                steps.push(StepTime {
                    step: execution.step.clone(),
                    handler: execution.elapsed,
                    tick: tick_started.elapsed(),
                    error: execution.error.clone(),
                });
                if matches!(execution.commit, StepCommit::RunFinished(_)) {
                    break started.elapsed();
                }
            }
            Tick::Idle => {
                // A retry's backoff, or a step of another worker: wait.
                let detail = engine.get_run(run.id).await?;
                if !detail.run.status.is_active() {
                    break started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Tick::Released { .. } => return Err("the step was released".into()),
        }
    };
    let detail = engine.get_run(run.id).await?;
    let reason = detail
        .events
        .iter()
        .rev()
        .find(|e| e.step.is_none())
        .and_then(|e| e.reason.clone())
        .unwrap_or_default();
    let training_rows: Option<i64> =
        sqlx::query_scalar("SELECT total_rows::bigint FROM training_sets WHERE run_id = $1")
            .bind(run.id)
            .fetch_optional(&pool)
            .await?;
    pool.close().await;
    Ok(Cycle {
        size,
        feedback_rows,
        insert,
        wall,
        steps,
        status: detail.run.status.as_str().to_owned(),
        reason,
        training_rows,
        peak_rss_mib: retrain_testkit::memory::peak_rss_kib().map(|kib| kib / 1024),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn print_cycle(c: &Cycle) {
    println!(
        "\n== {} feedback rows ({} stored in {:.1} s, not measured)",
        c.size.label(),
        c.feedback_rows,
        c.insert.as_secs_f64()
    );
    println!("   {:<9} {:>12} {:>12}", "step", "handler ms", "tick ms");
    for s in &c.steps {
        let error = s.error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default();
        println!("   {:<9} {:>12} {:>12}{error}", s.step, ms(s.handler), ms(s.tick));
    }
    println!(
        "   cycle wall time {:.3} s; outcome {} ({}); training rows {}; peak RSS so far {} MiB",
        c.wall.as_secs_f64(),
        c.status,
        c.reason,
        c.training_rows.map_or("-".into(), |n| n.to_string()),
        c.peak_rss_mib.map_or("?".into(), |n| n.to_string())
    );
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let Options { mut sizes } = Options::parse_from(retrain_testkit::bench::args());
    retrain_testkit::telemetry::init();
    if sizes.is_empty() {
        sizes = vec![
            Size::Pool,
            Size::Rows(1_000),
            Size::Rows(10_000),
            Size::Rows(100_000),
            Size::Rows(1_000_000),
        ];
    }
    println!(
        "retrain cycle: sizes {:?}, release build, {} cores shared with PostgreSQL",
        sizes.iter().map(|s| s.label()).collect::<Vec<_>>(),
        retrain_testkit::bench::cores()
    );
    let mut cycles = Vec::new();
    for size in sizes {
        let c = cycle(size).await?;
        print_cycle(&c);
        cycles.push(c);
    }
    println!("\n== summary (wall time of the cycle and per step, handler ms)");
    println!(
        "   {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  outcome",
        "rows", "cycle s", "collect", "merge", "train", "validate", "promote", "other"
    );
    for c in &cycles {
        let step = |name: &str| -> Duration { c.steps.iter().filter(|s| s.step == name).map(|s| s.handler).sum() };
        let handlers: Duration = c.steps.iter().map(|s| s.handler).sum();
        let cell = |name: &str| {
            if c.steps.iter().any(|s| s.step == name) {
                ms(step(name))
            } else {
                "-".into()
            }
        };
        println!(
            "   {:>7} {:>10.3} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            c.size.label(),
            c.wall.as_secs_f64(),
            cell("collect"),
            cell("merge"),
            cell("train"),
            cell("validate"),
            cell("promote"),
            ms(c.wall.saturating_sub(handlers)),
            c.status
        );
        if c.size == Size::Rows(1_000_000) {
            println!(
                "   1M-row cycle {:.1} s against the target < 60 s: {}",
                c.wall.as_secs_f64(),
                if c.wall < Duration::from_secs(60) {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
    }
    Ok(())
}
