//! The bench's options (clap; each also read from a `BENCH_*` variable), and
//! the worker and pool settings they imply.

use crate::counting::COUNTER;
use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};
use retrain_engine::WorkerConfig;
use sqlx::postgres::PgPoolOptions;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What the durable run engine costs per run when its steps do nothing.
#[derive(Debug, Clone, Parser)]
#[command(name = "engine_overhead")]
pub struct Options {
    /// One-at-a-time runs measured, per shape (0: skip scenario 1).
    #[arg(long, env = "BENCH_SEQ", default_value_t = 300)]
    pub seq: usize,
    /// One-at-a-time warm-up runs, per shape.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 20)]
    pub warmup: usize,
    /// Runs whose statements are counted (0: no profile).
    #[arg(long, env = "BENCH_PROFILE", default_value_t = 100)]
    pub profile: usize,
    /// Throughput runs, per worker count (0: skip scenario 2).
    #[arg(long, env = "BENCH_RUNS", default_value_t = 2000)]
    pub runs: usize,
    /// Worker counts for throughput, comma-separated.
    #[arg(
        long,
        env = "BENCH_WORKERS",
        value_delimiter = ',',
        default_value = "1,2",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub workers: Vec<usize>,
    /// Pipelines kept busy for throughput.
    #[arg(
        long,
        env = "BENCH_PIPELINES",
        default_value_t = 64,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub pipelines: usize,
    /// Workers' idle poll interval, in ms.
    #[arg(long, env = "BENCH_POLL_MS", default_value_t = 10)]
    pub poll_ms: u64,
    /// How the bench sees a run end.
    #[arg(long, env = "BENCH_OBSERVE", value_enum, default_value_t = Observe::Listen)]
    pub observe: Observe,
    /// sqlx `test_before_acquire` on the pools (sqlx's default is on): on or off.
    #[arg(long, env = "BENCH_PING", default_value = "on", action = ArgAction::Set, value_parser = on_off)]
    pub ping: bool,
    /// Runs of history made before measuring (0: start on empty tables).
    #[arg(long, env = "BENCH_SEED", default_value_t = 200)]
    pub seed: usize,
    /// The options given on the command line, to print the command back.
    #[arg(skip)]
    given: Vec<String>,
}

/// How the bench sees a run end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Observe {
    /// A bench-only trigger NOTIFYs when a run leaves queued/running.
    Listen,
    /// One task polls the status of all awaited runs every 2 ms.
    Poll,
}

impl Observe {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Listen => {
                "LISTEN: a bench-only AFTER UPDATE trigger on runs NOTIFYs when a run ends; \
                 one listener connection, end time taken on receipt"
            }
            Self::Poll => "poll: one task SELECTs the status of all awaited runs every 2 ms",
        }
    }
}

fn on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(format!("on or off, not {other:?}")),
    }
}

impl Options {
    /// From the command line and `BENCH_*`; exits with clap's message (and
    /// status 2) on a bad option.
    pub fn load() -> Self {
        let command = <Self as CommandFactory>::command();
        let matches = command.clone().get_matches_from(retrain_testkit::bench::args());
        let mut options = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        options.given = command
            .get_arguments()
            .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
            .filter_map(|arg| {
                let values: Vec<String> = matches
                    .get_raw(arg.get_id().as_str())?
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect();
                Some(format!("--{} {}", arg.get_long()?, values.join(",")))
            })
            .collect();
        options
    }

    /// The command that reproduces this run.
    pub fn command_line(&self) -> String {
        let mut command = "cargo bench -p retrain-engine --bench engine_overhead".to_owned();
        if !self.given.is_empty() {
            command.push_str(" -- ");
            command.push_str(&self.given.join(" "));
        }
        command
    }

    pub fn worker_config(&self, label: &str) -> WorkerConfig {
        let mut config = WorkerConfig::new(label);
        config.lease = Duration::from_secs(30);
        config.heartbeat = Duration::from_secs(10);
        config.poll_interval = Duration::from_millis(self.poll_ms);
        config.shutdown_grace = Duration::from_secs(2);
        config
    }

    /// A pool as the service would make one; `before_acquire` only counts.
    pub fn pool(&self, max: u32) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(max)
            .test_before_acquire(self.ping)
            .before_acquire(|_, _| {
                Box::pin(async {
                    if COUNTER.on.load(Ordering::Relaxed) {
                        COUNTER.acquires.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(true)
                })
            })
    }
}
