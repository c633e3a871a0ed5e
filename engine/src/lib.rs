//! Retrain's durable run engine: pipelines of named steps whose runs live in
//! PostgreSQL and survive any crash. It knows nothing of ML.
//!
//! The concepts, and where they live:
//! - [`Pipeline`] / [`Step`] (pipeline.rs): ordered, named steps with a
//!   [`RetryPolicy`] (retry.rs). A step returns [`StepOutcome`] or [`StepError`].
//! - [`Engine`] (runs.rs, control.rs): create a run (one active run per
//!   pipeline, by a partial unique index; also inside a caller's transaction,
//!   create_in.rs), read, list, cancel, retry.
//! - [`Worker`] (worker.rs): claims a due step with `FOR UPDATE SKIP LOCKED`
//!   (claim.rs), keeps its lease alive and stops the step when it cannot
//!   (lease.rs), commits the result fenced by (lease owner, attempt)
//!   (commit.rs; a plain success in one statement that also leases the
//!   run's next step to the same worker, advance.rs). Before a claim, at
//!   most once a second, it sweeps (sweep.rs): expired leases are reclaimed
//!   and no cancel-requested run is left with nothing to claim; and tables
//!   that have doubled in size are analyzed, so that no cached plan stays
//!   one made for empty tables (statistics.rs).
//!   A step's own writes that change what is served are fenced the same way
//!   ([`hold_lease`], fence.rs).
//! - Every state change writes its audit event in the same statement
//!   (transition.rs); the database refuses illegal transitions and any
//!   rewrite of `run_events` (migrations/0001_engine.sql).

mod advance;
mod claim;
mod commit;
mod control;
mod create_in;
mod error;
mod fence;
mod lease;
mod pipeline;
mod record;
mod retry;
mod runs;
mod statistics;
mod status;
mod sweep;
mod transition;
mod worker;

pub use claim::ClaimedStep;
pub use commit::StepCommit;
pub use control::Cancelled;
pub use error::{EngineError, StepError, database_unavailable};
pub use fence::hold_lease;
pub use pipeline::{EarlyFinish, Pipeline, Registry, Step, StepContext, StepDef, StepOutcome};
pub use record::{Created, Run, RunDetail, RunEvent, StepRecord};
pub use retry::RetryPolicy;
pub use runs::{Engine, NewRun, list_runs_sql};
pub use status::{RunStatus, StepStatus, TriggerKind};
pub use transition::{Annotation, annotate};
pub use worker::{Execution, Observer, RUN_QUEUED_CHANNEL, Tick, Worker, WorkerConfig};

/// The schema of the whole service (engine and pipeline), applied in order.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
