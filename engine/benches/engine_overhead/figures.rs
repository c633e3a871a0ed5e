//! The figures the bench prints: latency percentiles, one row per scenario,
//! and the summary table with the targets.

use crate::cpu::CpuUse;
use retrain_testkit::stats::{mean, percentile};
use std::time::Duration;

/// Latencies in ms, sorted.
#[derive(Debug, Clone)]
pub struct Latencies(Vec<f64>);

impl Latencies {
    pub fn new(values: Vec<Duration>) -> Self {
        let mut ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_unstable_by(f64::total_cmp);
        Self(ms)
    }

    /// Nearest-rank percentile, in ms.
    pub fn pct(&self, p: f64) -> f64 {
        percentile(&self.0, p)
    }

    pub fn mean(&self) -> f64 {
        mean(&self.0)
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub runs: usize,
    pub wall: Duration,
    pub latency: Latencies,
    /// Transactions and WAL flushes per run.
    pub per_run: Option<(f64, f64)>,
    pub cpu: Option<CpuUse>,
}

impl Row {
    pub fn runs_per_s(&self) -> f64 {
        self.runs as f64 / self.wall.as_secs_f64()
    }

    pub fn print(&self) {
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

/// The summary table, then each target against its figure: `seq_p50` from
/// scenario 1's `Worker::run` shape, `two_workers` the throughput of two.
pub fn print_summary(rows: &[Row], seq_p50: Option<f64>, two_workers: Option<f64>) {
    println!("\nsummary (latency: create_run returned -> run seen succeeded)");
    println!(
        "  {:<42} {:>5} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>10} {:>6}",
        "scenario", "runs", "runs/s", "p50 ms", "p90 ms", "p99 ms", "xact/run", "fsync/run", "CPU ms/run", "other"
    );
    for row in rows {
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
            "  one at a time (Worker::run) p50 <= 5 ms: {p50:.2} ms -> {}",
            verdict(p50 <= 5.0)
        ),
        None => println!("  one at a time (Worker::run) p50 <= 5 ms: not measured (--seq 0)"),
    }
    match two_workers {
        Some(rate) => println!(
            "  two workers >= 250 runs/s: {rate:.1} runs/s -> {}",
            verdict(rate >= 250.0)
        ),
        None => println!("  two workers >= 250 runs/s: not measured (--workers has no 2)"),
    }
}
