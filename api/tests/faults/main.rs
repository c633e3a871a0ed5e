//! Fault tests: the real `retrain` binary in separate processes against a
//! real PostgreSQL (`DATABASE_URL`, a fresh database per test), with faults
//! a production service meets:
//!
//! - `worker_crash`: a worker killed with SIGKILL in each of the five steps;
//! - `database_restart`: PostgreSQL stopped and started under load (on a
//!   private cluster, `cluster`, never the shared server);
//! - `listener_cut`: the promotion listener's connection terminated while
//!   promotions happen;
//! - `many_workers`: three workers competing over 200 runs;
//! - `feedback_across_replicas`: feedback citing another replica's prediction;
//! - `shutdown`: SIGTERM with requests in flight;
//! - `keys_on_the_binary`: client keys refusing, attributing and limiting
//!   feedback;
//! - `demo`: the demo's narration, free of the service's logs.
//!
//! A test binary of its own, so nothing else of the suite runs in this
//! process; within it, the database restart runs alone (see
//! `support::whole_machine`).

mod cluster;
mod database_restart;
mod demo;
mod feedback_across_replicas;
mod keys_on_the_binary;
mod listener_cut;
mod many_workers;
mod shutdown;
mod support;
mod worker_crash;
