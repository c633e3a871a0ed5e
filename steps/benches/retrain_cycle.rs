//! A full retrain cycle's wall time, per-step times and per-step peak
//! memory, and how they grow with the feedback table: DESIGN.md asks for a
//! cycle over 1M / 10M feedback rows in under 60 s / 120 s with the worker
//! under 1.5 GiB. For each size this bench makes a scratch database,
//! migrates and bootstraps it, sets the model's learner, stores the
//! feedback (not measured: the default data's pool split as is, or N
//! synthetic rows made server-side from the base and pool rows with about
//! 1% noise, from 100 sources), then triggers a run and drives it with a
//! `Worker` tick by tick, as the pipeline tests do. It prints the cycle's
//! wall time (run created -> run finished), each step's handler time, its
//! tick (claim + handler + commit) and the process's peak resident memory
//! during that tick (`VmHWM`, reset before each tick through
//! `/proc/self/clear_refs`), the outcome, and the growth of time and peak
//! memory per feedback row between sizes.
//!
//!   cargo bench -p retrain-steps --bench retrain_cycle                  # pool 1k 10k 100k 1M
//!   cargo bench -p retrain-steps --bench retrain_cycle -- 1M 10M        # chosen sizes
//!   cargo bench -p retrain-steps --bench retrain_cycle -- --learner random_forest 1M
//!   cargo bench -p retrain-steps --bench retrain_cycle -- --help
//!
//! `DATABASE_URL` names the server (default
//! postgres://postgres@127.0.0.1:5432/postgres); each size gets a scratch
//! database next to its database (`retrain_testkit::ScratchDb`), dropped at
//! the end. One process, 2 cores shared with PostgreSQL. `RUST_LOG` shows
//! the pipeline's logs.

use clap::Parser;
use retrain_engine::{Engine, NewRun, Registry, StepCommit, Tick, TriggerKind, Worker, WorkerConfig};
use retrain_steps::ml::Learner;
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
    /// The wine model's learner for the run, with its default settings
    /// (`Learner::parse`: auto, decision_tree, random_forest,
    /// logistic_regression).
    #[arg(long, default_value = "decision_tree", value_parser = parse_learner)]
    learner: Learner,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

fn parse_learner(name: &str) -> Result<Learner, String> {
    Learner::parse(name, None).map_err(|e| e.to_string())
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
    /// The process's peak resident memory during the tick, MiB.
    peak_mib: Option<u64>,
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
    /// The learner's part of train: choosing settings and the final fit.
    training_ms: Option<i64>,
    /// Resident memory when the run was triggered, MiB.
    start_rss_mib: Option<u64>,
}

impl Cycle {
    /// The highest of the steps' peaks, MiB.
    fn peak_mib(&self) -> Option<u64> {
        self.steps.iter().filter_map(|s| s.peak_mib).max()
    }

    fn rows(&self) -> i64 {
        self.feedback_rows
    }
}

/// Starts a new peak: `VmHWM` becomes the current resident size (Linux 4.0+).
fn reset_peak_rss() {
    // Without it (another kernel), peaks are the process's since its start.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(kib: Option<u64>) -> Option<u64> {
    kib.map(|kib| kib / 1024)
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
            // by up to +-1% and rounded to 4 decimals, with its label, from one
            // of 100 sources (one source sending it all would make up the whole
            // set, and screening quarantines a source past half of it).
            let chunk = 250_000;
            let mut from = 0;
            while from < n {
                let to = (from + chunk).min(n);
                sqlx::query(
                    "INSERT INTO feedback (model_id, features, correct_label, source)
                     SELECT (SELECT model_id FROM datasets WHERE id = $1), ARRAY(SELECT round((f * (1 + (random() - 0.5) * 0.02))::numeric, 4)::float8
                                  FROM unnest(s.features) WITH ORDINALITY AS u(f, o) ORDER BY o),
                            s.label, 'bench-' || (g % 100)
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
async fn cycle(size: Size, learner: &Learner, timeout: Duration) -> Result<Cycle, BoxError> {
    let scratch = ScratchDb::migrated("retrain_bench_cycle").await?;
    let result = cycle_in(&scratch, size, learner, timeout).await;
    scratch.drop_now().await?;
    result
}

async fn cycle_in(scratch: &ScratchDb, size: Size, learner: &Learner, timeout: Duration) -> Result<Cycle, BoxError> {
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
    sqlx::query("UPDATE models SET learner = $2 WHERE name = $1")
        .bind(FIRST_MODEL)
        .bind(sqlx::types::Json(learner))
        .execute(&pool)
        .await?;
    let started = Instant::now();
    let feedback_rows = store_feedback(&pool, size).await?;
    let insert = started.elapsed();

    let engine = Engine::new(pool.clone(), Registry::new().register(pipeline(env)));
    let worker = Worker::new(engine.clone(), WorkerConfig::new("bench"));
    let start_rss_mib = mib(retrain_testkit::memory::rss_kib(std::process::id()));
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
    let deadline = Instant::now() + timeout;
    let wall = loop {
        if Instant::now() > deadline {
            return Err(format!("the run over {} rows did not finish in {timeout:?}", size.label()).into());
        }
        reset_peak_rss();
        let tick_started = Instant::now();
        match worker.tick().await? {
            Tick::Executed(execution) => {
                steps.push(StepTime {
                    step: execution.step.clone(),
                    handler: execution.elapsed,
                    tick: tick_started.elapsed(),
                    peak_mib: mib(retrain_testkit::memory::peak_rss_kib()),
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
    let training_ms: Option<i64> =
        sqlx::query_scalar("SELECT (output->>'training_ms')::bigint FROM steps WHERE run_id = $1 AND name = 'train'")
            .bind(run.id)
            .fetch_optional(&pool)
            .await?
            .flatten();
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
        training_ms,
        start_rss_mib,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or("-".into(), |v| v.to_string())
}

fn print_cycle(c: &Cycle) {
    println!(
        "\n== {} feedback rows ({} stored in {:.1} s, not measured)",
        c.size.label(),
        c.feedback_rows,
        c.insert.as_secs_f64()
    );
    println!(
        "   {:<9} {:>12} {:>12} {:>14}",
        "step", "handler ms", "tick ms", "peak RSS MiB"
    );
    for s in &c.steps {
        let error = s.error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default();
        println!(
            "   {:<9} {:>12} {:>12} {:>14}{error}",
            s.step,
            ms(s.handler),
            ms(s.tick),
            or_dash(s.peak_mib)
        );
    }
    println!(
        "   cycle wall time {:.3} s; outcome {} ({}); training rows {}, fitted (selection and final fit) in {} ms; RSS at the trigger {} MiB, peak {} MiB",
        c.wall.as_secs_f64(),
        c.status,
        c.reason,
        or_dash(c.training_rows),
        or_dash(c.training_ms),
        or_dash(c.start_rss_mib),
        or_dash(c.peak_mib())
    );
}

/// The summary table, the growth per feedback row between consecutive
/// sizes, and the targets.
fn print_summary(cycles: &[Cycle]) {
    println!("\n== summary (wall time of the cycle and per step, handler ms; peak RSS of the worker process)");
    println!(
        "   {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  outcome",
        "rows", "cycle s", "collect", "merge", "train", "validate", "promote", "other", "peak MiB"
    );
    for c in cycles {
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
            "   {:>7} {:>10.3} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            c.size.label(),
            c.wall.as_secs_f64(),
            cell("collect"),
            cell("merge"),
            cell("train"),
            cell("validate"),
            cell("promote"),
            ms(c.wall.saturating_sub(handlers)),
            or_dash(c.peak_mib()),
            c.status
        );
    }
    for pair in cycles.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let rows = (b.rows() - a.rows()) as f64;
        if rows <= 0.0 {
            continue;
        }
        let time = (b.wall.as_secs_f64() - a.wall.as_secs_f64()) / rows * 1e6;
        let memory = match (a.peak_mib(), b.peak_mib()) {
            (Some(x), Some(y)) => format!("{:.0} bytes", (y as f64 - x as f64) * 1024.0 * 1024.0 / rows),
            _ => "?".into(),
        };
        println!(
            "   growth {} -> {}: {time:.2} us and {memory} of peak RSS per feedback row",
            a.size.label(),
            b.size.label()
        );
    }
    let targets = [(1_000_000, 60), (10_000_000, 120)];
    for c in cycles {
        if let Some((_, seconds)) = targets.iter().find(|(rows, _)| Size::Rows(*rows) == c.size) {
            let fast = c.wall < Duration::from_secs(*seconds);
            let small = c.peak_mib().is_some_and(|mib| mib < 1536);
            println!(
                "   {} cycle {:.1} s against < {seconds} s: {}; peak RSS {} MiB against < 1536 MiB: {}",
                c.size.label(),
                c.wall.as_secs_f64(),
                if fast { "met" } else { "NOT met" },
                or_dash(c.peak_mib()),
                if small { "met" } else { "NOT met" }
            );
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let Options {
        mut sizes,
        learner,
        timeout,
    } = Options::parse_from(retrain_testkit::bench::args());
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
        "retrain cycle: sizes {:?}, learner {}, release build, {} cores shared with PostgreSQL",
        sizes.iter().map(|s| s.label()).collect::<Vec<_>>(),
        learner.name(),
        retrain_testkit::bench::cores()
    );
    let mut cycles = Vec::new();
    for size in sizes {
        let c = cycle(size, &learner, Duration::from_secs(timeout)).await?;
        print_cycle(&c);
        cycles.push(c);
    }
    print_summary(&cycles);
    Ok(())
}
