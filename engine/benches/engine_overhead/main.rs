//! Engine overhead: what the durable run engine costs per run when its steps
//! do nothing. A plain program, not a test; it prints figures.
//!
//! ```text
//! cargo bench -p retrain-engine --bench engine_overhead [-- OPTIONS]
//! ```
//!
//! Options (after `--`, as `--name value` or `--name=value`; each also reads an
//! environment variable; `-- --help` prints them):
//!
//! | option          | env                  | default | meaning |
//! |-----------------|----------------------|---------|---------|
//! | `--seq N`       | `BENCH_SEQ`          | 300     | one-at-a-time runs measured, per shape (0: skip scenario 1) |
//! | `--warmup N`    | `BENCH_WARMUP`       | 20      | one-at-a-time warm-up runs, per shape |
//! | `--profile N`   | `BENCH_PROFILE`      | 100     | runs whose statements are counted (0: no profile) |
//! | `--runs N`      | `BENCH_RUNS`         | 2000    | throughput runs, per worker count (0: skip scenario 2) |
//! | `--workers L`   | `BENCH_WORKERS`      | 1,2     | worker counts for throughput |
//! | `--pipelines N` | `BENCH_PIPELINES`    | 64      | pipelines kept busy for throughput |
//! | `--poll-ms N`   | `BENCH_POLL_MS`      | 10      | workers' idle poll interval |
//! | `--observe M`   | `BENCH_OBSERVE`      | listen  | how the bench sees a run end: `listen` or `poll` |
//! | `--ping B`      | `BENCH_PING`         | on      | sqlx `test_before_acquire` on the pools (sqlx's default is on) |
//! | `--seed N`      | `BENCH_SEED`         | 200     | runs of history made before measuring (0: start on empty tables) |
//!
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) must
//! be allowed to create databases: the bench works in a fresh scratch database
//! `retrain_bench_<random>` (`retrain_testkit::ScratchDb`), migrated with
//! `retrain_engine::MIGRATOR`, and drops it at the end (also on error, panic
//! or Ctrl-C). `RUST_LOG` shows the engine's logs beside the figures.
//!
//! Every run is of a five-step pipeline whose steps return
//! `StepOutcome::Continue(json!({}))`, with the default retry policy.
//!
//! Scenarios:
//! 1. One at a time (latency from `create_run` returning to the run seen
//!    `succeeded`), in three shapes:
//!    - `tick`: one task creates a run, then calls `worker.tick()` until the
//!      commit reports the run finished: no wake-up, and a claim per step
//!      (`tick()` executes one step and never leases the next ahead).
//!    - `steps`: the same with `worker.claim()` + `worker.complete()` per step
//!      (no lease sweep, no heartbeat task), each phase timed: a breakdown.
//!    - `Worker::run`: a worker task woken by NOTIFY, each step's commit
//!      leasing the next step; the bench observes the end (see `--observe`):
//!      the production shape. The target is judged here.
//! 2. Throughput: `--pipelines` pipelines kept busy by one producer each
//!    (create a run, wait for its end, create the next) until `--runs` runs
//!    ended, with 1 and 2 workers (`Worker::run`, each with its own pool as a
//!    separate process would have).
//!
//! Before measuring, `--seed` runs of history are made, and the tables are
//! `VACUUM ANALYZE`d before each scenario, so that every scenario's fresh
//! connections plan (and cache generic plans) on tables that are not empty,
//! as on a database with autovacuum. (With `--seed 0` the first scenario's
//! connections cache plans made for empty tables; with autovacuum off nothing
//! replaces them, and the claim degrades as history grows.)
//!
//! A profile pass (in scenario 1, production shape: `Worker::run` woken by
//! NOTIFY, one run at a time) counts, per run, the statements the engine
//! sends (from sqlx's `sqlx::query` tracing events, by kind), the pool
//! acquisitions (each one a ping round trip while `test_before_acquire` is
//! on), hence the round trips, the transactions (`pg_stat_database`) and the
//! WAL flushes (`pg_stat_wal`, cluster-wide).
//!
//! Modules: `options` (clap), `pipeline` (the no-op steps), `scenarios`,
//! `observer` (when a run was seen ending), `counting` (statements by kind),
//! `database` (server facts, counters, vacuum, the end trigger), `cpu`
//! (/proc), `figures` (rows, percentiles, the summary).

mod counting;
mod cpu;
mod database;
mod figures;
mod observer;
mod options;
mod pipeline;
mod scenarios;

use crate::cpu::loadavg;
use crate::database::{install_end_trigger, server_facts, vacuum};
use crate::figures::print_summary;
use crate::options::{Observe, Options};
use crate::pipeline::STEPS;
use crate::scenarios::Bench;
use retrain_engine::Worker;
use retrain_testkit::{ScratchDb, error_chain};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::ExitCode;
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let options = Options::load();
    retrain_testkit::telemetry::init_with(counting::layer());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async_main(options))
}

async fn async_main(options: Options) -> ExitCode {
    let scratch = match ScratchDb::migrated("retrain_bench").await {
        Ok(scratch) => scratch,
        Err(err) => {
            eprintln!(
                "engine_overhead: cannot create the scratch database: {}",
                error_chain(&err)
            );
            return ExitCode::FAILURE;
        }
    };
    let db = scratch.name().to_owned();
    println!("scratch database {db} created");
    let task = tokio::spawn(run_all(
        options,
        scratch.options(),
        scratch.server().clone(),
        db.clone(),
    ));
    let abort = task.abort_handle();
    let ok = tokio::select! {
        joined = task => match joined {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                eprintln!("engine_overhead: failed: {}", error_chain(&*err));
                false
            }
            Err(err) => {
                eprintln!("engine_overhead: panicked: {err}");
                false
            }
        },
        _ = tokio::signal::ctrl_c() => {
            abort.abort();
            eprintln!("engine_overhead: interrupted");
            false
        }
    };
    match scratch.drop_now().await {
        Ok(()) => println!("scratch database {db} dropped"),
        Err(err) => eprintln!("engine_overhead: could not drop {db}: {}", error_chain(&err)),
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn run_all(config: Options, opts: PgConnectOptions, admin_opts: PgConnectOptions, db: String) -> Result<()> {
    let total_started = Instant::now();
    let admin = PgPoolOptions::new().max_connections(1).connect_with(admin_opts).await?;
    let (version, settings) = server_facts(&admin).await?;
    println!("engine overhead benchmark: no-op {STEPS}-step runs, default RetryPolicy");
    println!(
        "  PostgreSQL {version} ({settings}); {} cores seen by the bench; tokio multi-thread runtime",
        retrain_testkit::bench::cores()
    );
    println!(
        "  pools: sqlx test_before_acquire {}; workers: poll every {} ms, woken by NOTIFY",
        if config.ping { "on (sqlx default)" } else { "off" },
        config.poll_ms
    );
    println!("  run end observed by {}", config.observe.describe());
    println!("  load average at start: {}", loadavg());
    println!(
        "  one at a time: {} warm-up + {} measured runs per shape; throughput: {} warm-up + {} runs over {} pipelines",
        config.warmup, config.seq, config.pipelines, config.runs, config.pipelines
    );

    let bench = Bench {
        config: config.clone(),
        opts: opts.clone(),
        admin,
        db,
    };
    let mut rows = Vec::new();
    if config.seed > 0 {
        let pool = config.pool(2).connect_with(opts.clone()).await?;
        let engine = bench.seq_engine(&pool);
        let worker = Worker::new(engine.clone(), config.worker_config("bench-seed"));
        for _ in 0..config.seed {
            Bench::tick_run(&engine, &worker).await?;
        }
        pool.close().await;
        println!("  seeded {} runs of history", config.seed);
    }

    // The bench's end trigger is installed after the tick and steps shapes,
    // which do not need it, and before anything that waits through the
    // observer; the profile always waits through it.
    let listen = config.observe == Observe::Listen;
    let mut trigger_installed = false;
    let mut seq_p50 = None;
    if config.seq > 0 {
        println!("\nscenario 1: one run at a time");
        vacuum(&opts).await?;
        let tick = bench.seq_tick().await?;
        tick.print();
        rows.push(tick);
        vacuum(&opts).await?;
        let (steps, phases) = bench.seq_steps().await?;
        steps.print();
        for (phase, latency) in &phases {
            println!(
                "    {phase}: p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms",
                latency.pct(50.0),
                latency.pct(99.0),
                latency.mean()
            );
        }
        rows.push(steps);
        if listen || config.profile > 0 {
            install_end_trigger(&opts).await?;
            trigger_installed = true;
        }
        if config.profile > 0 {
            vacuum(&opts).await?;
            let profile = bench.profile().await?;
            print!("  {profile}");
        }
        vacuum(&opts).await?;
        let seq_run = bench.seq_worker_run().await?;
        seq_run.print();
        seq_p50 = Some(seq_run.latency.pct(50.0));
        rows.push(seq_run);
    }

    let mut two_workers = None;
    if config.runs > 0 && !config.workers.is_empty() {
        println!("\nscenario 2: throughput");
        if listen && !trigger_installed {
            install_end_trigger(&opts).await?;
        }
        for &workers in &config.workers {
            vacuum(&opts).await?;
            let row = bench.throughput(workers).await?;
            row.print();
            if workers == 2 {
                two_workers = Some(row.runs_per_s());
            }
            rows.push(row);
        }
    }

    print_summary(&rows, seq_p50, two_workers);
    println!("\nload average at end: {}", loadavg());
    println!("command: {}", config.command_line());
    println!("wall time: {:.1} s", total_started.elapsed().as_secs_f64());
    Ok(())
}
