//! Support shared by Retrain's test binaries and benchmarks, so each of them
//! states what it checks or measures and nothing else. A dev-dependency only;
//! nothing here ships.
//!
//! - [`scratch`]: a database of the caller's own on `DATABASE_URL`'s server,
//!   for code that cannot live inside `#[sqlx::test]` (benches, child
//!   processes, soak runs), dropped when done.
//! - [`db`]: a child process's connection URL, and counting rows.
//! - [`telemetry`]: logs stay quiet unless `RUST_LOG` asks for them.
//! - [`wait`]: polling an observable condition against a deadline, the way
//!   tests wait instead of sleeping; driving a run to its end.
//! - [`memory`]: resident memory from `/proc` (Linux).
//! - [`process`]: the real `retrain` binary as a child process.
//! - [`stats`]: nearest-rank percentiles for the figures benches print.
//! - [`bench`]: a bench's own arguments, without what cargo adds.
//! - `fixtures` (feature `steps`): rows of the stored split, poisoned rows,
//!   another model.

pub mod bench;
pub mod db;
#[cfg(feature = "steps")]
pub mod fixtures;
pub mod memory;
pub mod process;
pub mod scratch;
pub mod stats;
pub mod telemetry;
pub mod wait;

pub use scratch::{ScratchDb, ScratchError};
pub use wait::{drive_to_end, eventually};

/// An error and its causes on one line, as a bench or test reports a failure.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
