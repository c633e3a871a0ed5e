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
