//! Pipeline integration tests against a real PostgreSQL (a fresh database
//! per test): bootstrap, the five steps end to end, the gate, promotion,
//! triggers and the SQL audit views.

mod audit;
mod bootstrap;
mod feedback_windows;
mod fencing;
mod gate;
mod models;
mod promotion;
mod runs;
mod screening;
mod stale_gate;
mod support;
mod triggers;
mod upgrade;
mod verdicts;
