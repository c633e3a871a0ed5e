//! CPU time from /proc (Linux) over a scenario: the machine's, this
//! process's and the scratch database's PostgreSQL backends', so each figure
//! comes with a flag for how much of the machine other processes took.

use std::collections::HashMap;

/// CPU time from /proc (Linux), in USER_HZ ticks (10 ms): the whole machine
/// (all cores summed), this process (engine client, producers, observer) and
/// each PostgreSQL backend connected to the scratch database (by pid; a
/// backend that exits within the window is missed).
#[derive(Debug, Clone)]
pub struct Cpu {
    busy: u64,
    total: u64,
    me: u64,
    pg: HashMap<u32, u64>,
}

/// CPU use over a window: machine busy % (all cores), then CPU-ms per run of
/// the machine, of this process and of PostgreSQL, and other processes' share
/// of the machine in %.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub busy_pct: f64,
    pub machine_ms: f64,
    pub me_ms: f64,
    pub pg_ms: f64,
    pub other_pct: f64,
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
    pub fn now(db: &str) -> Option<Self> {
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

    pub fn since(start: Option<Self>, db: &str, runs: usize) -> Option<CpuUse> {
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

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "?".to_owned(), |s| s.trim().to_owned())
}
