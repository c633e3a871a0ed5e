//! The service's settings: flags, then environment variables, then defaults
//! that work on a fresh machine. The admin token is never printed.

use crate::slow_step::SlowSteps;
use clap::{Args, FromArgMatches, ValueEnum};
use retrain_steps::PipelineConfig;
use retrain_steps::ml::{GateConfig, TreeParams};
use retrain_steps::screening::ScreeningSettings;
use retrain_steps::triggers::TriggerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which parts of the service a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// API, worker and scheduler in one process.
    All,
    /// The HTTP API (serving, feedback, administration) only.
    Api,
    /// The run worker and the scheduler only.
    Worker,
}

/// Settings shared by every command that talks to the database.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://localhost/retrain",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Most database connections this process opens.
    #[arg(long, env = "RETRAIN_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,
    /// How long a request waits for a database connection before a 503.
    #[arg(long, env = "RETRAIN_DB_WAIT_MS", default_value_t = 2_000)]
    pub db_wait_ms: u64,
    /// The server cancels a statement that runs longer (ms; 0: no limit).
    /// The default is 40 times the longest statement of a 1M-row retrain.
    #[arg(long, env = "RETRAIN_DB_STATEMENT_TIMEOUT_MS", default_value_t = 60_000)]
    pub db_statement_timeout_ms: u64,
    /// The server cancels a statement that waits longer for a lock (ms; 0: no limit).
    #[arg(long, env = "RETRAIN_DB_LOCK_TIMEOUT_MS", default_value_t = 10_000)]
    pub db_lock_timeout_ms: u64,
    /// The server ends a session left idle inside a transaction for longer,
    /// releasing its locks (ms; 0: no limit).
    #[arg(long, env = "RETRAIN_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", default_value_t = 60_000)]
    pub db_idle_in_transaction_timeout_ms: u64,
}

/// Settings of type `T` from the defaults and `flags` alone, never from
/// environment variables: for tests and benchmarks, whose outcome must not
/// depend on the shell they are started from.
///
/// # Errors
/// A flag that is unknown or does not parse.
pub fn from_flags<T: Args + FromArgMatches>(flags: &[&str]) -> Result<T, clap::Error> {
    let command = T::augment_args(clap::Command::new("retrain")).mut_args(|arg| arg.env(None));
    let matches = command.try_get_matches_from(std::iter::once("retrain").chain(flags.iter().copied()))?;
    T::from_arg_matches(&matches)
}

/// Settings of `retrain serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// What this process runs.
    #[arg(long, env = "RETRAIN_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// Address the HTTP API listens on.
    #[arg(long, env = "RETRAIN_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// Bearer token for the admin endpoints (the bootstrap key `admin`, with
    /// every scope): at least 24 characters, not a placeholder; generated
    /// into the token file if unset.
    #[arg(long, env = "RETRAIN_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<crate::keys::Secret>,
    /// Whether `POST /predict` (and batches) may be called without a key:
    /// `true` (the default) or `false` (a key with the `predict` scope).
    #[arg(long, env = "RETRAIN_PREDICT_OPEN", default_value_t = true, action = clap::ArgAction::Set)]
    pub predict_open: bool,
    /// Whether `POST /feedback` may be called without a key: `false` (the
    /// default: a key with the `feedback` scope) or `true` (rows without a
    /// key get the source `anonymous`).
    #[arg(long, env = "RETRAIN_FEEDBACK_OPEN", default_value_t = false, action = clap::ArgAction::Set)]
    pub feedback_open: bool,
    /// Predictions a key may ask for per second, per API process (0: no limit).
    #[arg(long, env = "RETRAIN_PREDICT_RATE", default_value_t = 0.0)]
    pub predict_rate: f64,
    /// Predictions a key may ask for at once after a pause.
    #[arg(long, env = "RETRAIN_PREDICT_BURST", default_value_t = 1_000.0)]
    pub predict_burst: f64,
    /// Feedback rows a key may send per second, per API process (0: no limit).
    #[arg(long, env = "RETRAIN_FEEDBACK_RATE", default_value_t = 200.0)]
    pub feedback_rate: f64,
    /// Feedback rows a key may send at once after a pause.
    #[arg(long, env = "RETRAIN_FEEDBACK_BURST", default_value_t = 2_000.0)]
    pub feedback_burst: f64,
    /// Feedback rows a key may send per clock hour, per API process (0: no cap).
    #[arg(long, env = "RETRAIN_FEEDBACK_HOURLY_CAP", default_value_t = 200_000)]
    pub feedback_hourly_cap: u64,
    /// The hourly cap of a key named by a quarantine rule in force (screening's or an operator's).
    #[arg(long, env = "RETRAIN_FEEDBACK_FLAGGED_HOURLY_CAP", default_value_t = 1_000)]
    pub feedback_flagged_hourly_cap: u64,
    /// Where a generated admin token is written (readable by the owner only).
    #[arg(long, env = "RETRAIN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Whether the console at `/ui` needs the admin token for reading too
    /// (its actions always do): `true` or `false`.
    #[arg(long, env = "RETRAIN_UI_REQUIRES_TOKEN", default_value_t = false, action = clap::ArgAction::Set)]
    pub ui_requires_token: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "RETRAIN_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Most instances in one `POST /predict/batch`.
    #[arg(long, env = "RETRAIN_BATCH_MAX", default_value_t = 1_000)]
    pub batch_max: usize,
    /// New feedback rows that start a retrain.
    #[arg(long, env = "RETRAIN_THRESHOLD", default_value_t = 20)]
    pub threshold: i64,
    /// Seconds between threshold checks.
    #[arg(long, env = "RETRAIN_CHECK_EVERY_SECS", default_value_t = 60)]
    pub check_every_secs: u64,
    /// Seconds from start to the first threshold check.
    #[arg(long, env = "RETRAIN_FIRST_CHECK_SECS", default_value_t = 30)]
    pub first_check_secs: u64,
    /// A 6-field cron expression (seconds first, UTC) for scheduled retrains; off if unset.
    #[arg(long, env = "RETRAIN_SCHEDULE")]
    pub schedule: Option<String>,
    /// Lowest golden accuracy a candidate may have.
    #[arg(long, env = "RETRAIN_GATE_FLOOR", default_value_t = GateConfig::default().accuracy_floor)]
    pub gate_floor: f64,
    /// How much recall any class may lose against the champion (non-inferiority margin).
    #[arg(long, env = "RETRAIN_GATE_RECALL_MARGIN", default_value_t = GateConfig::default().recall_margin)]
    pub gate_recall_margin: f64,
    /// How much worse than the champion a candidate may be, with confidence 1 - alpha.
    #[arg(long, env = "RETRAIN_GATE_MARGIN", default_value_t = GateConfig::default().margin, allow_hyphen_values = true)]
    pub gate_margin: f64,
    /// Significance level of the gate's one-sided bounds.
    #[arg(long, env = "RETRAIN_GATE_ALPHA", default_value_t = GateConfig::default().alpha)]
    pub gate_alpha: f64,
    /// Screen feedback in merge (conflicting labels, confident out-of-fold
    /// disagreement, sources quarantined by the pipeline): `true` or `false`.
    #[arg(long, env = "RETRAIN_SCREENING", default_value_t = true, action = clap::ArgAction::Set)]
    pub screening: bool,
    /// Maximum depth of the decision tree.
    #[arg(long, env = "RETRAIN_TREE_MAX_DEPTH")]
    pub tree_max_depth: Option<usize>,
    /// Seconds a worker's lease on a step lasts without a heartbeat.
    #[arg(long, env = "RETRAIN_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// Milliseconds a replica may fail to load the champion (retrying) before
    /// `/ready` reports it not ready.
    #[arg(long, env = "RETRAIN_STALE_AFTER_MS", default_value_t = crate::serving::DEFAULT_STALE_AFTER.as_millis() as u64)]
    pub stale_after_ms: u64,
    /// A direct (session) connection URL for LISTEN, the promotions replicas
    /// follow and the queued runs workers wake on. Needed when DATABASE_URL
    /// goes through PgBouncer in transaction mode, which breaks LISTEN; the
    /// pool's own connections are used if unset.
    #[arg(long, env = "RETRAIN_LISTEN_URL", hide_env_values = true)]
    pub listen_url: Option<String>,
    /// Days of predictions the worker keeps (whole UTC days older are
    /// dropped, a day partition at a time); `off` or `0` keeps them all.
    #[arg(long, env = "RETRAIN_PREDICTION_RETENTION_DAYS", default_value = "30",
          value_parser = crate::retention::Retention::parse)]
    pub prediction_retention_days: crate::retention::Retention,
    /// The model the seed-shaped routes (`/predict`, `/feedback`,
    /// `/model/info`) act on.
    #[arg(long, env = "RETRAIN_DEFAULT_MODEL", default_value = retrain_steps::pipeline::FIRST_MODEL)]
    pub default_model: String,
    /// Serve only these models (comma-separated names); every model if unset.
    #[arg(long, env = "RETRAIN_MODELS", value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Fault injection for tests only, unset by default and hidden from help:
    /// `step:millis[,step:millis]` makes those steps sleep before their work,
    /// so a test can catch them running (see `slow_step`).
    #[arg(long, env = "RETRAIN_TEST_SLOW_STEP", hide = true, value_parser = SlowSteps::parse)]
    pub test_slow_step: Option<SlowSteps>,
}

impl ServeSettings {
    /// Which routes need no key.
    pub fn open_routes(&self) -> crate::keys::access::OpenRoutes {
        crate::keys::access::OpenRoutes {
            predict: self.predict_open,
            feedback: self.feedback_open,
        }
    }

    /// Every key's limits.
    pub fn key_limits(&self) -> crate::keys::limits::LimitSettings {
        use crate::keys::limits::{LimitSettings, Rate};
        LimitSettings {
            predict: Rate {
                per_second: self.predict_rate,
                burst: self.predict_burst,
            },
            feedback: Rate {
                per_second: self.feedback_rate,
                burst: self.feedback_burst,
            },
            hourly_cap: self.feedback_hourly_cap,
            flagged_hourly_cap: self.feedback_flagged_hourly_cap,
        }
    }

    /// The pipeline's settings.
    pub fn pipeline(&self) -> PipelineConfig {
        let defaults = PipelineConfig::default();
        PipelineConfig {
            threshold: self.threshold,
            tree: TreeParams {
                max_depth: self.tree_max_depth.or(defaults.tree.max_depth),
                ..defaults.tree
            },
            gate: GateConfig {
                accuracy_floor: self.gate_floor,
                recall_margin: self.gate_recall_margin,
                margin: self.gate_margin,
                alpha: self.gate_alpha,
                ..defaults.gate
            },
            screening: ScreeningSettings {
                enabled: self.screening,
                ..defaults.screening
            },
        }
    }

    /// When runs are triggered.
    pub fn triggers(&self) -> TriggerConfig {
        TriggerConfig {
            threshold: self.threshold,
            check_every: Duration::from_secs(self.check_every_secs.max(1)),
            first_check_after: Duration::from_secs(self.first_check_secs),
            cron: self.schedule.clone(),
        }
    }
}
