//! Soak test: the real `retrain` binary (an API process and a worker
//! process) under sustained mixed load against a scratch database on the
//! shared PostgreSQL, checking what only time reveals: no failed request, no
//! acknowledged feedback lost, resident memory flat, database connections
//! within the pool's bounds.
//!
//! - `scratch`: the database of its own, created and dropped;
//! - `load`: users predicting and sending feedback, an operator triggering a
//!   run every 30 s and promoting or rolling back every 20 s;
//! - `sample`: resident memory and database connections, every 10 s;
//! - `sustained`: the test.
//!
//! `RETRAIN_SOAK_SECS` sets the load's duration (60 s by default, CI's short
//! mode); `bench/soak.sh` runs the full 10 minutes in release.

#[allow(dead_code)]
#[path = "../faults/support.rs"]
mod support;

mod load;
mod sample;
mod scratch;
mod sustained;
