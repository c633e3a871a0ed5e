//! The Retrain service: the HTTP API (serving with hot swap, feedback, run
//! and model administration), its startup, and the `retrain` command line.
//!
//! - [`cli`] is the command line: [`demo`] (the main job), `serve`, and the
//!   [`operator`] commands, which talk to the API through [`client`].
//! - [`startup`] assembles the service for a role; [`settings`] holds its knobs.
//! - [`routes`] are the endpoints; [`error`] their one error shape; [`auth`]
//!   the admin token; [`keys`] the client keys, their scopes and limits;
//!   [`idempotency`] replays answers to retried requests;
//!   [`server`] is the HTTP server with its timeouts and limits.
//! - [`serving`] keeps the champion behind an atomic pointer and follows
//!   promotions; [`predlog`] and [`feedback_writer`] batch database writes off
//!   or onto the request path; [`metrics`] exports it all, [`facts`] keeps
//!   the gauges of stored facts current; [`retention`] keeps the prediction
//!   log's day partitions and drops the expired ones.
//! - [`ui`] is the operator console at `/ui`: runs, models and the gate's
//!   evidence as web pages, with the admin actions as forms.

pub mod auth;
pub mod cli;
pub mod client;
pub mod demo;
pub mod error;
pub mod facts;
pub mod feedback_writer;
pub mod held_connection;
pub mod idempotency;
pub mod keys;
pub mod metrics;
pub mod operator;
pub mod predlog;
pub mod retention;
pub mod routes;
pub mod server;
pub mod serving;
pub mod settings;
pub mod slow_step;
pub mod startup;
pub mod state;
pub mod table;
pub mod ui;
