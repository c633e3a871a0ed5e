//! Engine overhead: what the durable run engine costs per run when its steps
//! do nothing. A plain program, not a test; it prints figures.
//!
//! ```text
//! cargo bench -p retrain-engine --bench engine_overhead [-- OPTIONS]
//! ```
//!
//! Options (after `--`, as `--name value` or `--name=value`; each also reads an
//! environment variable):
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
//! `retrain_bench_<random>`, migrated with `retrain_engine::MIGRATOR`, and drops
//! it at the end (also on error, panic or Ctrl-C).
//!
//! Every run is of a five-step pipeline whose steps return
//! `StepOutcome::Continue(json!({}))`, with the default retry policy.
//!
//! Scenarios:
//! 1. One at a time (latency from `create_run` returning to the run seen
//!    `succeeded`), in three shapes:
//!    - `tick`: one task creates a run, then calls `worker.tick()` until the
//!      commit reports the run finished: the engine's own cost, no wake-up.
//!    - `steps`: the same with `worker.claim()` + `worker.complete()` per step
//!      (no lease sweep, no heartbeat task), each phase timed: a breakdown.
//!    - `Worker::run`: a worker task woken by NOTIFY; the bench observes the
//!      end (see `--observe`): the production shape. The target is judged here.
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
//! A profile pass counts, per run, the statements the engine sends (from
//! sqlx's `sqlx::query` tracing events, by kind), the pool acquisitions (each
//! one a ping round trip while `test_before_acquire` is on), the transactions
//! (`pg_stat_database`) and the WAL flushes (`pg_stat_wal`, cluster-wide).

use async_trait::async_trait;
use retrain_engine::{
    Engine, MIGRATOR, NewRun, Pipeline, Registry, RetryPolicy, RunStatus, Step, StepCommit, StepContext, StepError,
    StepOutcome, Tick, TriggerKind, Worker, WorkerConfig,
};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const STEPS: usize = 5;
const SEQ_PIPELINE: &str = "seq";
const ENDED_CHANNEL: &str = "bench_run_ended";
const WAIT_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- options --

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observe {
    /// A bench-only trigger NOTIFYs when a run leaves queued/running.
    Listen,
    /// One task polls the status of all awaited runs every 2 ms.
    Poll,
}

impl Observe {
    fn describe(self) -> &'static str {
        match self {
            Self::Listen => {
                "LISTEN: a bench-only AFTER UPDATE trigger on runs NOTIFYs when a run ends; \
                 one listener connection, end time taken on receipt"
            }
            Self::Poll => "poll: one task SELECTs the status of all awaited runs every 2 ms",
        }
    }
}

#[derive(Debug, Clone)]
struct Config {
    database_url: String,
    seq: usize,
    warmup: usize,
    profile: usize,
    runs: usize,
    workers: Vec<usize>,
    pipelines: usize,
    poll_ms: u64,
    observe: Observe,
    ping: bool,
    seed: usize,
    /// The options given, to print the command back.
    given: Vec<String>,
}

impl Config {
    fn load() -> Result<Self> {
        let mut values: HashMap<String, String> = HashMap::new();
        for (key, var) in [
            ("seq", "BENCH_SEQ"),
            ("warmup", "BENCH_WARMUP"),
            ("profile", "BENCH_PROFILE"),
            ("runs", "BENCH_RUNS"),
            ("workers", "BENCH_WORKERS"),
            ("pipelines", "BENCH_PIPELINES"),
            ("poll-ms", "BENCH_POLL_MS"),
            ("observe", "BENCH_OBSERVE"),
            ("ping", "BENCH_PING"),
            ("seed", "BENCH_SEED"),
        ] {
            if let Ok(value) = std::env::var(var) {
                values.insert(key.to_owned(), value);
            }
        }
        let mut given = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            // `cargo bench` passes `--bench` to harness-less benches.
            if arg == "--bench" {
                continue;
            }
            let Some(option) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}").into());
            };
            let (key, value) = match option.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => {
                    let value = args.next().ok_or_else(|| format!("--{option} needs a value"))?;
                    (option.to_owned(), value)
                }
            };
            given.push(format!("--{key} {value}"));
            values.insert(key, value);
        }
        let number = |key: &str, default: usize| -> Result<usize> {
            match values.get(key) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| format!("--{key}: not a number: {v:?}").into()),
            }
        };
        let config = Self {
            database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            seq: number("seq", 300)?,
            warmup: number("warmup", 20)?,
            profile: number("profile", 100)?,
            runs: number("runs", 2000)?,
            workers: match values.get("workers") {
                None => vec![1, 2],
                Some(list) => list
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse::<usize>()
                            .map_err(|_| format!("--workers: bad list {list:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            },
            pipelines: number("pipelines", 64)?.max(1),
            poll_ms: number("poll-ms", 10)? as u64,
            observe: match values.get("observe").map(String::as_str) {
                None | Some("listen") => Observe::Listen,
                Some("poll") => Observe::Poll,
                Some(other) => return Err(format!("--observe: listen or poll, not {other:?}").into()),
            },
            ping: match values.get("ping").map(String::as_str) {
                None | Some("on" | "true" | "1") => true,
                Some("off" | "false" | "0") => false,
                Some(other) => return Err(format!("--ping: on or off, not {other:?}").into()),
            },
            seed: number("seed", 200)?,
            given,
        };
        for key in values.keys() {
            let known = [
                "seq",
                "warmup",
                "profile",
                "runs",
                "workers",
                "pipelines",
                "poll-ms",
                "observe",
                "ping",
                "seed",
            ];
            if !known.contains(&key.as_str()) {
                return Err(format!("unknown option --{key}").into());
            }
        }
        if config.workers.contains(&0) {
            return Err("--workers: counts must be at least 1".into());
        }
        Ok(config)
    }

    fn command(&self) -> String {
        let mut command = "cargo bench -p retrain-engine --bench engine_overhead".to_owned();
        if !self.given.is_empty() {
            command.push_str(" -- ");
            command.push_str(&self.given.join(" "));
        }
        command
    }

    fn worker_config(&self, label: &str) -> WorkerConfig {
        let mut config = WorkerConfig::new(label);
        config.lease = Duration::from_secs(30);
        config.heartbeat = Duration::from_secs(10);
        config.poll_interval = Duration::from_millis(self.poll_ms);
        config.shutdown_grace = Duration::from_secs(2);
        config
    }

    /// A pool as the service would make one; `before_acquire` only counts.
    fn pool(&self, max: u32) -> PgPoolOptions {
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

// --------------------------------------------------------------- pipeline --

struct Noop;

#[async_trait]
impl Step for Noop {
    async fn run(&self, _ctx: StepContext) -> Result<StepOutcome, StepError> {
        Ok(StepOutcome::Continue(json!({})))
    }
}

fn pipeline(name: &str) -> Pipeline {
    ["fetch", "prepare", "train", "evaluate", "publish"][..STEPS]
        .iter()
        .fold(Pipeline::new(name), |p, step| {
            p.step(*step, RetryPolicy::default(), Noop)
        })
}

fn registry(names: impl IntoIterator<Item = String>) -> Registry {
    names
        .into_iter()
        .fold(Registry::new(), |r, name| r.register(pipeline(&name)))
}

fn new_run(pipeline: &str) -> NewRun<'_> {
    NewRun {
        pipeline,
        trigger: TriggerKind::Manual,
        params: json!({}),
        requested_by: "bench",
    }
}

// ----------------------------------------------------- statement counting --

/// Counts sqlx's per-statement tracing events while `on`; the bench installs
/// [`CountingSubscriber`] as the global subscriber.
struct Counter {
    on: AtomicBool,
    acquires: AtomicU64,
    by_kind: Mutex<BTreeMap<String, u64>>,
}

static COUNTER: Counter = Counter {
    on: AtomicBool::new(false),
    acquires: AtomicU64::new(0),
    by_kind: Mutex::new(BTreeMap::new()),
};

struct CountingSubscriber;

#[derive(Default)]
struct StatementFields {
    summary: String,
    statement: String,
}

impl tracing::field::Visit for StatementFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.statement),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" => self.summary = format!("{value:?}"),
            "db.statement" => self.statement = format!("{value:?}"),
            _ => {}
        }
    }
}

/// Names the engine's statements by what they do.
fn statement_kind(fields: &StatementFields) -> String {
    let sql = if fields.statement.is_empty() {
        &fields.summary
    } else {
        &fields.statement
    };
    let kinds = [
        ("INSERT INTO runs", "create_run: insert run+steps+event"),
        (
            "lease_expires_at < clock_timestamp()",
            "tick: expired-lease sweep SELECT (in tx)",
        ),
        ("WITH candidate AS", "claim: claim step (+run started, events)"),
        ("SET lease_expires_at", "heartbeat: extend lease"),
        ("FOR UPDATE OF s, r", "complete: lock fenced step SELECT (in tx)"),
        ("WITH upd AS", "complete: step leaves running (+event)"),
        ("current_step = current_step + 1", "complete: advance run"),
        ("WITH rest AS", "complete: finish run (+event)"),
    ];
    kinds.iter().find(|(needle, _)| sql.contains(needle)).map_or_else(
        || match fields.summary.as_str() {
            "COMMIT" => "COMMIT (explicit transaction)".to_owned(),
            other => format!("other: {other}"),
        },
        |(_, kind)| (*kind).to_owned(),
    )
}

impl tracing::Subscriber for CountingSubscriber {
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if meta.target() == "sqlx::query" {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target() == "sqlx::query" && COUNTER.on.load(Ordering::Relaxed)
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = StatementFields::default();
        event.record(&mut fields);
        let kind = statement_kind(&fields);
        *COUNTER.by_kind.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

// ------------------------------------------------------- database counters --

#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
struct DbCounters {
    xacts: i64,
    wal_syncs: i64,
    wal_records: i64,
}

impl std::ops::Sub for DbCounters {
    type Output = Self;

    fn sub(self, rhs: Self) -> Self {
        Self {
            xacts: self.xacts - rhs.xacts,
            wal_syncs: self.wal_syncs - rhs.wal_syncs,
            wal_records: self.wal_records - rhs.wal_records,
        }
    }
}

/// Reads the scratch database's counters from the admin database, so the read
/// itself is not counted. Backends report at exit, so callers close their
/// pools first and [`settle`].
async fn counters(admin: &PgPool, db: &str) -> Result<DbCounters> {
    Ok(sqlx::query_as(
        "SELECT d.xact_commit + d.xact_rollback AS xacts, w.wal_sync AS wal_syncs,
                w.wal_records AS wal_records
         FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = $1",
    )
    .bind(db)
    .fetch_one(admin)
    .await?)
}

/// Lets closed backends report their statistics.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// CPU time from /proc (Linux), in USER_HZ ticks (10 ms): the whole machine
/// (all cores summed), this process (engine client, producers, observer) and
/// each PostgreSQL backend connected to the scratch database (by pid; a
/// backend that exits within the window is missed).
#[derive(Debug, Clone)]
struct Cpu {
    busy: u64,
    total: u64,
    me: u64,
    pg: HashMap<u32, u64>,
}

/// CPU use over a window: machine busy % (all cores), then CPU-ms per run of
/// the machine, of this process and of PostgreSQL, and other processes' share
/// of the machine in %.
#[derive(Debug, Clone, Copy)]
struct CpuUse {
    busy_pct: f64,
    machine_ms: f64,
    me_ms: f64,
    pg_ms: f64,
    other_pct: f64,
}

/// utime + stime of a /proc/<pid>/stat line, and the process name.
fn proc_ticks(stat: &str) -> Option<(&str, u64)> {
    let (head, tail) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    // fields 14 (utime) and 15 (stime), counted from 1; `tail` starts at field 3
    Some((
        name,
        fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?,
    ))
}

impl Cpu {
    fn now(db: &str) -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is in user)
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4)?;
        let me = proc_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?.1;
        let mut pg = HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some(("postgres", ticks)) = proc_ticks(&stat) else {
                continue;
            };
            // A backend's title: "postgres: <user> <database> <client> <state>".
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline)
                .split_whitespace()
                .any(|word| word == db)
            {
                pg.insert(pid, ticks);
            }
        }
        Some(Self {
            busy: total - idle,
            total,
            me,
            pg,
        })
    }

    fn since(start: Option<Self>, db: &str, runs: usize) -> Option<CpuUse> {
        let (start, end) = (start?, Self::now(db)?);
        let total = (end.total - start.total).max(1) as f64;
        let busy = (end.busy - start.busy) as f64;
        let me = (end.me - start.me) as f64;
        let pg: u64 = end
            .pg
            .iter()
            .map(|(pid, ticks)| ticks.saturating_sub(start.pg.get(pid).copied().unwrap_or(0)))
            .sum();
        let pg = pg as f64;
        let runs = runs.max(1) as f64;
        Some(CpuUse {
            busy_pct: 100.0 * busy / total,
            machine_ms: busy * 10.0 / runs,
            me_ms: me * 10.0 / runs,
            pg_ms: pg * 10.0 / runs,
            other_pct: (100.0 * (busy - me - pg) / total).max(0.0),
        })
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "?".to_owned(), |s| s.trim().to_owned())
}

// --------------------------------------------------------------- observer --

enum Slot {
    Waiting(oneshot::Sender<(Instant, String)>),
    Ended(Instant, String),
}

/// Tells producers when their run has ended, and when that was seen.
struct Observer {
    slots: Mutex<HashMap<Uuid, Slot>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Observer {
    async fn start(method: Observe, pool: &PgPool) -> Result<Arc<Self>> {
        let observer = Arc::new(Self {
            slots: Mutex::new(HashMap::new()),
            task: Mutex::new(None),
        });
        let task = match method {
            Observe::Listen => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.ignore_pool_close_event(true);
                listener.listen(ENDED_CHANNEL).await?;
                let observer = observer.clone();
                tokio::spawn(async move {
                    loop {
                        match listener.recv().await {
                            Ok(notification) => {
                                let at = Instant::now();
                                let Some((id, status)) = notification.payload().split_once(' ') else {
                                    continue;
                                };
                                if let Ok(id) = Uuid::parse_str(id) {
                                    observer.resolve(id, at, status.to_owned());
                                }
                            }
                            Err(err) => {
                                eprintln!("observer: listener error: {err}");
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                })
            }
            Observe::Poll => {
                let pool = pool.clone();
                let observer = observer.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        let ids = observer.waiting();
                        if ids.is_empty() {
                            continue;
                        }
                        let ended: Result<Vec<(Uuid, String)>, _> = sqlx::query_as(
                            "SELECT id, status::text FROM runs
                             WHERE id = ANY($1) AND status NOT IN ('queued', 'running')",
                        )
                        .bind(&ids)
                        .fetch_all(&pool)
                        .await;
                        let at = Instant::now();
                        match ended {
                            Ok(rows) => rows
                                .into_iter()
                                .for_each(|(id, status)| observer.resolve(id, at, status)),
                            Err(err) => eprintln!("observer: poll error: {err}"),
                        }
                    }
                })
            }
        };
        *observer.task.lock().unwrap() = Some(task);
        Ok(observer)
    }

    fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    fn waiting(&self) -> Vec<Uuid> {
        let slots = self.slots.lock().unwrap();
        slots
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Waiting(_)))
            .map(|(id, _)| *id)
            .collect()
    }

    fn resolve(&self, id: Uuid, at: Instant, status: String) {
        let mut slots = self.slots.lock().unwrap();
        match slots.remove(&id) {
            Some(Slot::Waiting(tx)) => {
                let _ = tx.send((at, status));
            }
            _ => {
                slots.insert(id, Slot::Ended(at, status));
            }
        }
    }

    /// When the run was seen ending, and in which status.
    async fn wait(&self, id: Uuid) -> Result<(Instant, String)> {
        let rx = {
            let mut slots = self.slots.lock().unwrap();
            match slots.remove(&id) {
                Some(Slot::Ended(at, status)) => return Ok((at, status)),
                Some(Slot::Waiting(_)) => return Err(format!("run {id} awaited twice").into()),
                None => {
                    let (tx, rx) = oneshot::channel();
                    slots.insert(id, Slot::Waiting(tx));
                    rx
                }
            }
        };
        match tokio::time::timeout(WAIT_LIMIT, rx).await {
            Ok(Ok(seen)) => Ok(seen),
            Ok(Err(_)) => Err("observer stopped".into()),
            Err(_) => Err(format!("run {id} not seen ending within {WAIT_LIMIT:?}").into()),
        }
    }
}

/// The bench's own trigger (scratch database only): NOTIFY when a run ends.
async fn install_end_trigger(opts: &PgConnectOptions) -> Result<()> {
    let mut conn = PgConnection::connect_with(opts).await?;
    conn.execute(
        "CREATE FUNCTION bench_notify_run_ended() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.status NOT IN ('queued', 'running') AND OLD.status IN ('queued', 'running') THEN
                 PERFORM pg_notify('bench_run_ended', NEW.id::text || ' ' || NEW.status::text);
             END IF;
             RETURN NULL;
         END $$;
         CREATE TRIGGER bench_runs_ended AFTER UPDATE OF status ON runs
             FOR EACH ROW EXECUTE FUNCTION bench_notify_run_ended();",
    )
    .await?;
    conn.close().await?;
    Ok(())
}

async fn vacuum(opts: &PgConnectOptions) -> Result<()> {
    let mut conn = PgConnection::connect_with(opts).await?;
    conn.execute("VACUUM (ANALYZE) runs, steps, run_events").await?;
    conn.close().await?;
    Ok(())
}

// ---------------------------------------------------------------- figures --

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Debug, Clone)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut values: Vec<Duration>) -> Self {
        values.sort_unstable();
        Self(values)
    }

    /// Nearest-rank percentile, in ms.
    fn pct(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        ms(self.0[rank.clamp(1, self.0.len()) - 1])
    }

    fn mean(&self) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        ms(self.0.iter().sum::<Duration>()) / self.0.len() as f64
    }
}

#[derive(Debug, Clone)]
struct Row {
    label: String,
    runs: usize,
    wall: Duration,
    latency: Latencies,
    per_run: Option<(f64, f64)>,
    cpu: Option<CpuUse>,
}

impl Row {
    fn runs_per_s(&self) -> f64 {
        self.runs as f64 / self.wall.as_secs_f64()
    }

    fn print(&self) {
        let l = &self.latency;
        println!(
            "  {}: {} runs in {:.2} s = {:.1} runs/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} mean {:.2}",
            self.label,
            self.runs,
            self.wall.as_secs_f64(),
            self.runs_per_s(),
            l.pct(50.0),
            l.pct(90.0),
            l.pct(99.0),
            l.pct(100.0),
            l.mean()
        );
        if let Some((xacts, syncs)) = self.per_run {
            println!("    per run: {xacts:.1} transactions, {syncs:.1} WAL flushes (cluster-wide counter)");
        }
        if let Some(cpu) = self.cpu {
            println!(
                "    CPU: machine {:.0}% busy; per run {:.2} CPU-ms: this process {:.2}, its postgres backends {:.2}; \
                 other processes {:.0}% of the machine",
                cpu.busy_pct, cpu.machine_ms, cpu.me_ms, cpu.pg_ms, cpu.other_pct
            );
        }
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

// -------------------------------------------------------------- scenarios --

struct Bench {
    config: Config,
    opts: PgConnectOptions,
    admin: PgPool,
    db: String,
}

impl Bench {
    fn seq_engine(&self, pool: &PgPool) -> Engine {
        Engine::new(pool.clone(), registry([SEQ_PIPELINE.to_owned()]))
    }

    async fn close(pools: &[&PgPool]) {
        for pool in pools {
            pool.close().await;
        }
        settle().await;
    }

    /// Creates a run and ticks until its commit reports the run finished.
    async fn tick_run(engine: &Engine, worker: &Worker) -> Result<Duration> {
        let run = engine.create_run(new_run(SEQ_PIPELINE)).await?;
        let t0 = Instant::now();
        if !run.is_new() {
            return Err("the pipeline already had an active run".into());
        }
        let mut idle = 0;
        loop {
            match worker.tick().await? {
                Tick::Executed(e) => match e.commit {
                    StepCommit::Advanced => {}
                    StepCommit::RunFinished(RunStatus::Succeeded) => return Ok(t0.elapsed()),
                    other => return Err(format!("unexpected commit {other:?}").into()),
                },
                Tick::Released { .. } => return Err("step released: the bench never shuts down mid-run".into()),
                Tick::Idle => {
                    idle += 1;
                    if idle > 1000 {
                        return Err("worker idle while the run is active".into());
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    /// Scenario 1, `tick` shape.
    async fn seq_tick(&self) -> Result<Row> {
        let before = counters(&self.admin, &self.db).await?;
        let pool = self.config.pool(4).connect_with(self.opts.clone()).await?;
        let engine = self.seq_engine(&pool);
        let worker = Worker::new(engine.clone(), self.config.worker_config("bench-tick"));
        for _ in 0..self.config.warmup {
            Self::tick_run(&engine, &worker).await?;
        }
        let mut latencies = Vec::with_capacity(self.config.seq);
        let cpu = Cpu::now(&self.db);
        let started = Instant::now();
        for _ in 0..self.config.seq {
            latencies.push(Self::tick_run(&engine, &worker).await?);
        }
        let wall = started.elapsed();
        let cpu = Cpu::since(cpu, &self.db, self.config.seq);
        Self::close(&[&pool]).await;
        let delta = counters(&self.admin, &self.db).await? - before;
        Ok(self.row("1 one at a time, tick loop", wall, latencies, delta, cpu))
    }

    fn row(
        &self,
        label: &str,
        wall: Duration,
        latencies: Vec<Duration>,
        delta: DbCounters,
        cpu: Option<CpuUse>,
    ) -> Row {
        let runs = latencies.len();
        let all = (runs + self.config.warmup).max(1) as f64;
        Row {
            label: label.to_owned(),
            runs,
            wall,
            latency: Latencies::new(latencies),
            per_run: Some((delta.xacts as f64 / all, delta.wal_syncs as f64 / all)),
            cpu,
        }
    }

    /// Scenario 1, `steps` shape: claim + complete per step, each phase timed.
    async fn seq_steps(&self) -> Result<(Row, Vec<(&'static str, Latencies)>)> {
        let pool = self.config.pool(4).connect_with(self.opts.clone()).await?;
        let engine = self.seq_engine(&pool);
        let worker = Worker::new(engine.clone(), self.config.worker_config("bench-steps"));
        let (mut create, mut claim, mut complete, mut total) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut wall = Duration::ZERO;
        let mut cpu = None;
        for i in 0..self.config.warmup + self.config.seq {
            let measured = i >= self.config.warmup;
            if i == self.config.warmup {
                cpu = Cpu::now(&self.db);
            }
            let t_create = Instant::now();
            let run = engine.create_run(new_run(SEQ_PIPELINE)).await?;
            let t0 = Instant::now();
            if !run.is_new() {
                return Err("the pipeline already had an active run".into());
            }
            for position in 0..STEPS {
                let t_claim = Instant::now();
                let claimed = worker
                    .claim()
                    .await?
                    .ok_or("nothing to claim while the run is active")?;
                let t_complete = Instant::now();
                let commit = worker.complete(&claimed, Ok(StepOutcome::Continue(json!({})))).await?;
                let t_done = Instant::now();
                let expected = if position + 1 == STEPS {
                    StepCommit::RunFinished(RunStatus::Succeeded)
                } else {
                    StepCommit::Advanced
                };
                if commit != expected {
                    return Err(format!("unexpected commit {commit:?}").into());
                }
                if measured {
                    claim.push(t_complete - t_claim);
                    complete.push(t_done - t_complete);
                }
            }
            if measured {
                create.push(t0 - t_create);
                total.push(t0.elapsed());
                wall += t_create.elapsed();
            }
        }
        let cpu = Cpu::since(cpu, &self.db, self.config.seq);
        pool.close().await;
        let row = Row {
            label: "1 one at a time, claim()+complete()".to_owned(),
            runs: self.config.seq,
            wall,
            latency: Latencies::new(total),
            per_run: None,
            cpu,
        };
        let phases = vec![
            ("create_run", Latencies::new(create)),
            ("claim (per step)", Latencies::new(claim)),
            ("complete (per step)", Latencies::new(complete)),
        ];
        Ok((row, phases))
    }

    /// Counts what a tick-driven run sends to the database.
    async fn profile(&self) -> Result<String> {
        let runs = self.config.profile.max(1);
        // Warm a single connection (statements prepared, types resolved), then
        // close it so that its statistics are in before counting starts.
        let warm = self.config.pool(1).connect_with(self.opts.clone()).await?;
        let engine = self.seq_engine(&warm);
        let worker = Worker::new(engine.clone(), self.config.worker_config("bench-profile"));
        for _ in 0..3 {
            Self::tick_run(&engine, &worker).await?;
        }
        Self::close(&[&warm]).await;

        let before = counters(&self.admin, &self.db).await?;
        let pool = self.config.pool(1).connect_with(self.opts.clone()).await?;
        let engine = self.seq_engine(&pool);
        let worker = Worker::new(engine.clone(), self.config.worker_config("bench-profile"));
        Self::tick_run(&engine, &worker).await?; // prepares on this connection, uncounted below
        COUNTER.by_kind.lock().unwrap().clear();
        COUNTER.acquires.store(0, Ordering::Relaxed);
        COUNTER.on.store(true, Ordering::Relaxed);
        for _ in 0..runs {
            Self::tick_run(&engine, &worker).await?;
        }
        COUNTER.on.store(false, Ordering::Relaxed);
        Self::close(&[&pool]).await;
        let delta = counters(&self.admin, &self.db).await? - before;

        let by_kind = COUNTER.by_kind.lock().unwrap().clone();
        let acquires = COUNTER.acquires.load(Ordering::Relaxed) as f64 / runs as f64;
        let per = |n: u64| n as f64 / runs as f64;
        let statements: u64 = by_kind.values().sum();
        // sqlx logs COMMIT as a statement but not BEGIN.
        let explicit_tx = by_kind.get("COMMIT (explicit transaction)").copied().unwrap_or(0);
        let pings = if self.config.ping { acquires } else { 0.0 };
        let round_trips = per(statements) + pings + per(explicit_tx);
        let mut text = String::new();
        let _ = writeln!(text, "profile: {runs} tick-driven runs on one connection, per run:");
        for (kind, n) in &by_kind {
            let _ = writeln!(text, "    {:>5.1}  {kind}", per(*n));
        }
        let _ = writeln!(text, "    {:>5.1}  statements logged by sqlx in all", per(statements));
        let _ = writeln!(
            text,
            "    {:>5.1}  pool acquisitions (ping round trip each: {})",
            acquires,
            if self.config.ping {
                "test_before_acquire on"
            } else {
                "off"
            }
        );
        let _ = writeln!(text, "    {:>5.1}  BEGINs (not logged by sqlx)", per(explicit_tx));
        let _ = writeln!(
            text,
            "    {round_trips:>5.1}  client-server round trips (statements + BEGINs + pings)"
        );
        let _ = writeln!(
            text,
            "    {:>5.1}  transactions (pg_stat_database; includes first-use prepares on the fresh connection)",
            delta.xacts as f64 / (runs + 1) as f64
        );
        let _ = writeln!(
            text,
            "    {:>5.1}  WAL flushes, {:.1} WAL records (pg_stat_wal, cluster-wide: other sessions add to it)",
            delta.wal_syncs as f64 / (runs + 1) as f64,
            delta.wal_records as f64 / (runs + 1) as f64
        );
        Ok(text)
    }

    /// Scenario 1, `Worker::run` shape.
    async fn seq_worker_run(&self) -> Result<Row> {
        let before = counters(&self.admin, &self.db).await?;
        let worker_pool = self.config.pool(4).connect_with(self.opts.clone()).await?;
        let shutdown = CancellationToken::new();
        let worker = Worker::new(self.seq_engine(&worker_pool), self.config.worker_config("bench-seq"));
        let worker_task = tokio::spawn(worker.run(shutdown.clone()));
        let pool = self.config.pool(2).connect_with(self.opts.clone()).await?;
        let engine = self.seq_engine(&pool);
        let observer = Observer::start(self.config.observe, &pool).await?;
        // Let the worker connect its listener before the first run.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut latencies = Vec::with_capacity(self.config.seq);
        let mut wall = Duration::ZERO;
        let mut cpu = None;
        let outcome: Result<()> = async {
            for i in 0..self.config.warmup + self.config.seq {
                if i == self.config.warmup {
                    cpu = Cpu::now(&self.db);
                }
                let t_create = Instant::now();
                let run = engine.create_run(new_run(SEQ_PIPELINE)).await?;
                let t0 = Instant::now();
                if !run.is_new() {
                    return Err("the pipeline already had an active run".into());
                }
                let (at, status) = observer.wait(run.run().id).await?;
                if status != "succeeded" {
                    return Err(format!("run ended {status}").into());
                }
                if i >= self.config.warmup {
                    latencies.push(at.saturating_duration_since(t0));
                    wall += t_create.elapsed();
                }
            }
            Ok(())
        }
        .await;
        let cpu = Cpu::since(cpu, &self.db, self.config.seq);
        observer.stop();
        shutdown.cancel();
        let _ = worker_task.await;
        outcome?;
        Self::close(&[&pool, &worker_pool]).await;
        let delta = counters(&self.admin, &self.db).await? - before;
        Ok(self.row("1 one at a time, Worker::run", wall, latencies, delta, cpu))
    }

    /// Scenario 2: `pipelines` producers keep the workers busy.
    async fn throughput(&self, workers: usize) -> Result<Row> {
        let names: Vec<String> = (0..self.config.pipelines).map(|i| format!("p{i}")).collect();
        let registry = registry(names.clone());
        let before = counters(&self.admin, &self.db).await?;
        let shutdown = CancellationToken::new();
        let mut worker_pools = Vec::new();
        let mut worker_tasks = Vec::new();
        for i in 0..workers {
            let pool = self.config.pool(4).connect_with(self.opts.clone()).await?;
            let engine = Engine::new(pool.clone(), registry.clone());
            let worker = Worker::new(engine, self.config.worker_config(&format!("bench-w{i}")));
            worker_tasks.push(tokio::spawn(worker.run(shutdown.clone())));
            worker_pools.push(pool);
        }
        let pool = self.config.pool(8).connect_with(self.opts.clone()).await?;
        let engine = Engine::new(pool.clone(), registry);
        let observer = Observer::start(self.config.observe, &pool).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let outcome: Result<(Duration, Vec<Duration>, Option<CpuUse>)> = async {
            // Warm-up: one run per pipeline.
            drive(&engine, &observer, &names, names.len()).await?;
            let cpu = Cpu::now(&self.db);
            let started = Instant::now();
            let latencies = drive(&engine, &observer, &names, self.config.runs).await?;
            Ok((
                started.elapsed(),
                latencies,
                Cpu::since(cpu, &self.db, self.config.runs),
            ))
        }
        .await;
        observer.stop();
        shutdown.cancel();
        for task in worker_tasks {
            let _ = task.await;
        }
        let (wall, latencies, cpu) = outcome?;
        let mut pools: Vec<&PgPool> = worker_pools.iter().collect();
        pools.push(&pool);
        Self::close(&pools).await;
        let delta = counters(&self.admin, &self.db).await? - before;
        let all = (self.config.runs + names.len()) as f64;
        Ok(Row {
            label: format!(
                "2 throughput, {workers} worker{}, {} pipelines",
                if workers == 1 { "" } else { "s" },
                names.len()
            ),
            runs: self.config.runs,
            wall,
            latency: Latencies::new(latencies),
            per_run: Some((delta.xacts as f64 / all, delta.wal_syncs as f64 / all)),
            cpu,
        })
    }
}

/// One producer per pipeline: create a run, wait for its end, again, until
/// `total` runs have been created in all.
async fn drive(engine: &Engine, observer: &Arc<Observer>, names: &[String], total: usize) -> Result<Vec<Duration>> {
    let issued = Arc::new(AtomicUsize::new(0));
    let producers: Vec<JoinHandle<Result<Vec<Duration>>>> = names
        .iter()
        .take(total)
        .cloned()
        .map(|name| {
            let engine = engine.clone();
            let observer = observer.clone();
            let issued = issued.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while issued.fetch_add(1, Ordering::Relaxed) < total {
                    let run = engine.create_run(new_run(&name)).await?;
                    let t0 = Instant::now();
                    if !run.is_new() {
                        return Err(format!("pipeline {name} already had an active run").into());
                    }
                    let (at, status) = observer.wait(run.run().id).await?;
                    if status != "succeeded" {
                        return Err(format!("run of {name} ended {status}").into());
                    }
                    latencies.push(at.saturating_duration_since(t0));
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for producer in producers {
        latencies.extend(producer.await??);
    }
    Ok(latencies)
}

// ------------------------------------------------------------------- main --

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("engine_overhead: {err}");
            return ExitCode::from(2);
        }
    };
    let _ = tracing::subscriber::set_global_default(CountingSubscriber);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async_main(config))
}

async fn admin_exec(opts: &PgConnectOptions, sql: &str) -> Result<()> {
    let mut conn = PgConnection::connect_with(opts).await?;
    conn.execute(sql).await?;
    conn.close().await?;
    Ok(())
}

async fn async_main(config: Config) -> ExitCode {
    let admin_opts = match PgConnectOptions::from_str(&config.database_url) {
        Ok(opts) => opts,
        Err(err) => {
            eprintln!("engine_overhead: bad DATABASE_URL: {err}");
            return ExitCode::from(2);
        }
    };
    let db = format!("retrain_bench_{}", &Uuid::new_v4().simple().to_string()[..12]);
    if let Err(err) = admin_exec(&admin_opts, &format!("CREATE DATABASE {db}")).await {
        eprintln!(
            "engine_overhead: cannot create the scratch database: {}",
            error_chain(&*err)
        );
        return ExitCode::FAILURE;
    }
    println!("scratch database {db} created");
    let opts = admin_opts.clone().database(&db);
    let task = tokio::spawn(run_all(config, opts, admin_opts.clone(), db.clone()));
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
    match admin_exec(&admin_opts, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await {
        Ok(()) => println!("scratch database {db} dropped"),
        Err(err) => eprintln!("engine_overhead: could not drop {db}: {}", error_chain(&*err)),
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn run_all(config: Config, opts: PgConnectOptions, admin_opts: PgConnectOptions, db: String) -> Result<()> {
    let total_started = Instant::now();
    let admin = PgPoolOptions::new().max_connections(1).connect_with(admin_opts).await?;
    {
        let setup = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&setup).await?;
        setup.close().await;
    }
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&admin)
        .await?;
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, setting FROM pg_settings
         WHERE name IN ('synchronous_commit', 'fsync', 'wal_sync_method', 'commit_delay', 'shared_buffers')
         ORDER BY name",
    )
    .fetch_all(&admin)
    .await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("engine overhead benchmark: no-op {STEPS}-step runs, default RetryPolicy");
    println!(
        "  PostgreSQL {version} ({}); {cores} cores seen by the bench; tokio multi-thread runtime",
        settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
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
    // which do not need it, and before anything that waits through the observer.
    let listen = config.observe == Observe::Listen;
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
        if config.profile > 0 {
            vacuum(&opts).await?;
            let profile = bench.profile().await?;
            print!("  {profile}");
        }
        if listen {
            install_end_trigger(&opts).await?;
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
        if listen && config.seq == 0 {
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

    println!("\nsummary (latency: create_run returned -> run seen succeeded)");
    println!(
        "  {:<42} {:>5} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>10} {:>6}",
        "scenario", "runs", "runs/s", "p50 ms", "p90 ms", "p99 ms", "xact/run", "fsync/run", "CPU ms/run", "other"
    );
    for row in &rows {
        let (xacts, syncs) = row.per_run.map_or(("-".to_owned(), "-".to_owned()), |(x, s)| {
            (format!("{x:.1}"), format!("{s:.1}"))
        });
        let cpu = row
            .cpu
            .map_or("-".to_owned(), |cpu| format!("{:.2}", cpu.me_ms + cpu.pg_ms));
        let other = row.cpu.map_or("-".to_owned(), |cpu| format!("{:.0}%", cpu.other_pct));
        println!(
            "  {:<42} {:>5} {:>7.1} {:>7.2} {:>7.2} {:>7.2} {:>8} {:>9} {:>10} {:>6}",
            row.label,
            row.runs,
            row.runs_per_s(),
            row.latency.pct(50.0),
            row.latency.pct(90.0),
            row.latency.pct(99.0),
            xacts,
            syncs,
            cpu,
            other
        );
    }
    println!(
        "  (xact/run and fsync/run include warm-up runs and idle ticks; CPU ms/run = this process + its postgres backends; \
         other = CPU share of unrelated processes, a noise flag)"
    );
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!("\ntargets (DESIGN.md, Performance targets)");
    match seq_p50 {
        Some(p50) => println!(
            "  one at a time (Worker::run) p50 <= 10 ms: {p50:.2} ms -> {}",
            verdict(p50 <= 10.0)
        ),
        None => println!("  one at a time (Worker::run) p50 <= 10 ms: not measured (--seq 0)"),
    }
    match two_workers {
        Some(rate) => println!(
            "  two workers >= 250 runs/s: {rate:.1} runs/s -> {}",
            verdict(rate >= 250.0)
        ),
        None => println!("  two workers >= 250 runs/s: not measured (--workers has no 2)"),
    }
    println!("\nload average at end: {}", loadavg());
    println!("command: {}", config.command());
    println!("wall time: {:.1} s", total_started.elapsed().as_secs_f64());
    Ok(())
}
