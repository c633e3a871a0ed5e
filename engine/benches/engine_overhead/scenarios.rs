//! The scenarios: one run at a time in three shapes (tick loop,
//! claim()+complete(), `Worker::run`), the statement profile, and
//! throughput with producers keeping the workers busy.

use crate::Result;
use crate::counting::{COUNTER, Counted};
use crate::cpu::{Cpu, CpuUse};
use crate::database::{DbCounters, counters, settle};
use crate::figures::{Latencies, Row};
use crate::observer::Observer;
use crate::options::{Observe, Options};
use crate::pipeline::{SEQ_PIPELINE, STEPS, new_run, registry};
use retrain_engine::{Engine, RunStatus, StepCommit, StepOutcome, Tick, Worker};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct Bench {
    pub config: Options,
    pub opts: PgConnectOptions,
    pub admin: PgPool,
    pub db: String,
}

impl Bench {
    pub fn seq_engine(&self, pool: &PgPool) -> Engine {
        Engine::new(pool.clone(), registry([SEQ_PIPELINE.to_owned()]))
    }

    async fn close(pools: &[&PgPool]) {
        for pool in pools {
            pool.close().await;
        }
        settle().await;
    }

    /// Creates a run and ticks until its commit reports the run finished.
    pub async fn tick_run(engine: &Engine, worker: &Worker) -> Result<Duration> {
        let (_, t0) = start_run(engine, SEQ_PIPELINE).await?;
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
    pub async fn seq_tick(&self) -> Result<Row> {
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
    pub async fn seq_steps(&self) -> Result<(Row, Vec<(&'static str, Latencies)>)> {
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
            let (_, t0) = start_run(&engine, SEQ_PIPELINE).await?;
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

    /// Counts what a run sends to the database in the production shape: a
    /// `Worker::run` task woken by NOTIFY, and `create_run` on another pool;
    /// the end is seen through the bench's trigger (no statements). Each pool
    /// has two connections, as a `PgListener` holds one of its pool's.
    pub async fn profile(&self) -> Result<String> {
        let runs = self.config.profile.max(1);
        // Warm the connections (statements prepared, types resolved) on a
        // first pair of pools, closed so that their statistics are in
        // before counting starts; the counted pools then prepare on their
        // first run, which is not counted.
        self.profile_runs(3).await?;
        let before = counters(&self.admin, &self.db).await?;
        let counted = self.profile_runs(runs).await?;
        let delta = counters(&self.admin, &self.db).await? - before;
        let wal_per_run = |n: i64| n as f64 / (runs + 1) as f64;

        let per = |n: u64| n as f64 / runs as f64;
        let statements: u64 = counted.by_kind.values().sum();
        // sqlx logs COMMIT as a statement but not BEGIN.
        let explicit_tx = counted
            .by_kind
            .get("COMMIT (explicit transaction)")
            .copied()
            .unwrap_or(0);
        let pings = if self.config.ping { per(counted.acquires) } else { 0.0 };
        let round_trips = per(statements) + pings + per(explicit_tx);
        let mut text = String::new();
        let _ = writeln!(
            text,
            "profile: {runs} runs one at a time, Worker::run woken by NOTIFY; per run:"
        );
        for (kind, n) in &counted.by_kind {
            let _ = writeln!(text, "    {:>5.2}  {kind}", per(*n));
        }
        let _ = writeln!(text, "    {:>5.2}  statements logged by sqlx in all", per(statements));
        let _ = writeln!(
            text,
            "    {:>5.2}  pool acquisitions (ping round trip each: {})",
            per(counted.acquires),
            if self.config.ping {
                "test_before_acquire on"
            } else {
                "off"
            }
        );
        let _ = writeln!(text, "    {:>5.2}  BEGINs (not logged by sqlx)", per(explicit_tx));
        let _ = writeln!(
            text,
            "    {round_trips:>5.2}  client-server round trips (statements + BEGINs + pings)"
        );
        let _ = writeln!(
            text,
            "    {:>5.2}  transactions (pg_stat_database; includes first-use prepares on the fresh connections)",
            wal_per_run(delta.xacts)
        );
        let _ = writeln!(
            text,
            "    {:>5.2}  WAL flushes, {:.1} WAL records (pg_stat_wal, cluster-wide: other sessions add to it)",
            wal_per_run(delta.wal_syncs),
            wal_per_run(delta.wal_records)
        );
        Ok(text)
    }

    /// One uncounted run, then `runs` counted ones, one at a time, through
    /// a `Worker::run` task; the pools are closed before it returns.
    async fn profile_runs(&self, runs: usize) -> Result<Counted> {
        let worker_pool = self.config.pool(2).connect_with(self.opts.clone()).await?;
        let pool = self.config.pool(2).connect_with(self.opts.clone()).await?;
        let shutdown = CancellationToken::new();
        let worker = Worker::new(
            self.seq_engine(&worker_pool),
            self.config.worker_config("bench-profile"),
        );
        let worker_task = tokio::spawn(worker.run(shutdown.clone()));
        let engine = self.seq_engine(&pool);
        let observer = Observer::start(Observe::Listen, &pool).await?;
        let outcome: Result<Counted> = async {
            for i in 0..=runs {
                if i == 1 {
                    COUNTER.start();
                }
                let (run_id, _) = start_run(&engine, SEQ_PIPELINE).await?;
                let (_, status) = observer.wait(run_id).await?;
                if status != "succeeded" {
                    return Err(format!("run ended {status}").into());
                }
            }
            Ok(COUNTER.stop())
        }
        .await;
        COUNTER.stop();
        observer.stop();
        shutdown.cancel();
        let _ = worker_task.await;
        Self::close(&[&pool, &worker_pool]).await;
        outcome
    }

    /// Scenario 1, `Worker::run` shape.
    pub async fn seq_worker_run(&self) -> Result<Row> {
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
                let (run_id, t0) = start_run(&engine, SEQ_PIPELINE).await?;
                let (at, status) = observer.wait(run_id).await?;
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
    pub async fn throughput(&self, workers: usize) -> Result<Row> {
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

/// Creates a run of `pipeline`, which must have had no active run; returns
/// the run and when `create_run` returned, the start of its latency.
async fn start_run(engine: &Engine, pipeline: &str) -> Result<(Uuid, Instant)> {
    let run = engine.create_run(new_run(pipeline)).await?;
    let t0 = Instant::now();
    if !run.is_new() {
        return Err(format!("pipeline {pipeline} already had an active run").into());
    }
    Ok((run.run().id, t0))
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
                    let (run_id, t0) = start_run(&engine, &name).await?;
                    let (at, status) = observer.wait(run_id).await?;
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
