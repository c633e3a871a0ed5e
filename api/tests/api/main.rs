//! API tests: the real service on a loopback port against a real PostgreSQL
//! (a fresh database per test), called over real HTTP.

mod admin;
mod cli;
mod errors;
mod feedback;
mod hot_swap;
mod observability;
mod predict;
mod runs_and_models;
mod support;
