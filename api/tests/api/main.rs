//! API tests: the real service on a loopback port against a real PostgreSQL
//! (a fresh database per test), called over real HTTP.

mod admin;
mod cli;
mod connections;
mod errors;
mod feedback;
mod fuzz;
mod hostile_input;
mod hot_swap;
mod idempotency;
mod keys;
mod list_plans;
mod observability;
mod own_models;
mod pagination;
mod predict;
mod quarantine_release;
mod rate_limits;
mod reproduce;
mod request_ids;
mod retention;
mod runs_and_models;
mod slow_clients;
mod support;
mod ui;
mod upgrade;
