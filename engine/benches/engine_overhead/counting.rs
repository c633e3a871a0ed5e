//! Counts the statements the engine sends, by kind, from sqlx's per-statement
//! `sqlx::query` tracing events, and the pool acquisitions; only while
//! [`Counter::on`] is set, so the scenarios that time things pay nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::DynFilterFn;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// sqlx's target for one event per statement.
const SQLX_QUERY: &str = "sqlx::query";

pub struct Counter {
    pub on: AtomicBool,
    pub acquires: AtomicU64,
    pub by_kind: Mutex<BTreeMap<String, u64>>,
}

pub static COUNTER: Counter = Counter {
    on: AtomicBool::new(false),
    acquires: AtomicU64::new(0),
    by_kind: Mutex::new(BTreeMap::new()),
};

/// What was counted between [`Counter::start`] and [`Counter::stop`].
pub struct Counted {
    pub acquires: u64,
    pub by_kind: BTreeMap<String, u64>,
}

impl Counter {
    /// Clears the counts and starts counting.
    pub fn start(&self) {
        self.by_kind.lock().unwrap().clear();
        self.acquires.store(0, Ordering::Relaxed);
        self.on.store(true, Ordering::Relaxed);
    }

    /// Stops counting and returns the counts.
    pub fn stop(&self) -> Counted {
        self.on.store(false, Ordering::Relaxed);
        Counted {
            acquires: self.acquires.load(Ordering::Relaxed),
            by_kind: self.by_kind.lock().unwrap().clone(),
        }
    }
}

/// The layer that feeds [`COUNTER`]; every other callsite is disabled for
/// good, so the engine's own spans and events cost nothing.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let filter =
        DynFilterFn::new(|meta: &Metadata<'_>, _| meta.target() == SQLX_QUERY && COUNTER.on.load(Ordering::Relaxed))
            .with_callsite_filter(|meta| {
                if meta.target() == SQLX_QUERY {
                    Interest::sometimes()
                } else {
                    Interest::never()
                }
            });
    StatementCounter.with_filter(filter)
}

struct StatementCounter;

impl<S: Subscriber> Layer<S> for StatementCounter {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = StatementFields::default();
        event.record(&mut fields);
        let kind = statement_kind(&fields);
        *COUNTER.by_kind.lock().unwrap().entry(kind).or_default() += 1;
    }
}

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
    // In this order: the one-statement commit also contains the others' words.
    let kinds = [
        ("INSERT INTO runs", "create_run: insert run+steps+event"),
        (
            "WITH fenced AS",
            "commit: step succeeded + next step leased or run finished (+events), one statement",
        ),
        (
            "lease_expires_at < clock_timestamp()",
            "sweep: expired-lease SELECT (in tx, once a second)",
        ),
        (
            "SELECT 1 FROM steps x WHERE",
            "sweep: stranded-cancel SELECT (in tx, once a second)",
        ),
        ("FROM pg_class", "sweep: grown-tables check (once a second)"),
        ("ANALYZE", "sweep: ANALYZE of grown tables"),
        ("WITH candidate AS", "claim: claim step (+run started, events)"),
        ("SET lease_expires_at", "heartbeat: extend lease"),
        (
            "FOR UPDATE OF s, r",
            "commit (general path): lock fenced step SELECT (in tx)",
        ),
        ("WITH upd AS", "commit (general path): step leaves running (+event)"),
        ("current_step = current_step + 1", "commit (general path): advance run"),
        ("WITH rest AS", "commit (general path): finish run (+event)"),
    ];
    kinds.iter().find(|(needle, _)| sql.contains(needle)).map_or_else(
        || match fields.summary.as_str() {
            "COMMIT" => "COMMIT (explicit transaction)".to_owned(),
            other => format!("other: {other}"),
        },
        |(_, kind)| (*kind).to_owned(),
    )
}
