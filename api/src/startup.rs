//! Assembling the service: connect, migrate, bootstrap, then start the parts
//! a role needs (API with its listener and writers; worker and scheduler)
//! and stop them gracefully.

use crate::auth::{self, TokenSource};
use crate::feedback_writer::FeedbackWriter;
use crate::metrics::Metrics;
use crate::predlog::PredictionLog;
use crate::routes;
use crate::serving::{ModelFilter, Serving, follow_promotions};
use crate::settings::{DatabaseSettings, Role, ServeSettings};
use crate::state::{AppState, Limits};
use anyhow::Context;
use retrain_engine::{Engine, Execution, Registry, StepCommit, Worker, WorkerConfig};
use retrain_steps::{PipelineEnv, pipeline, pipeline_wrapping};
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgConnection, PgPool, Row};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Connects a pool; requests wait at most `db_wait_ms` for a connection.
///
/// # Errors
/// A malformed URL or an unreachable server.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(&settings.database_url).context("DATABASE_URL is not a valid URL")?;
    connect_with(settings, options).await
}

/// Connects a pool to the server of `options` with the settings' size, wait
/// and server-side timeouts. The server cancels a statement that runs or
/// waits for a lock too long, and ends a session left idle inside a
/// transaction; a connection that comes back to the pool inside a
/// transaction (sqlx 0.8.6 can return one whose `begin()` future was dropped
/// during BEGIN) is closed before anyone else gets it, rather than running
/// the next user's statements inside that transaction.
///
/// # Errors
/// An unreachable server.
pub async fn connect_with(settings: &DatabaseSettings, options: PgConnectOptions) -> anyhow::Result<PgPool> {
    let options = options.options([
        ("statement_timeout", settings.db_statement_timeout_ms),
        ("lock_timeout", settings.db_lock_timeout_ms),
        (
            "idle_in_transaction_session_timeout",
            settings.db_idle_in_transaction_timeout_ms,
        ),
    ]);
    PgPoolOptions::new()
        .max_connections(settings.db_pool.max(2))
        .acquire_timeout(Duration::from_millis(settings.db_wait_ms))
        // The check below is a round trip that also proves the connection alive.
        .test_before_acquire(false)
        .before_acquire(outside_transaction)
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")
}

/// Whether an idle connection is outside any transaction, so it can be
/// handed out. Within one simple-protocol statement that opens its own
/// transaction, the transaction and the statement start at the same instant;
/// inside a transaction begun earlier they differ.
fn outside_transaction(
    conn: &mut PgConnection,
    _: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        let row = conn
            .fetch_one("SELECT transaction_timestamp() = statement_timestamp()")
            .await?;
        let outside: bool = row.try_get(0)?;
        if !outside {
            tracing::warn!("a pooled connection was inside a transaction; closed it");
        }
        Ok(outside)
    })
}

/// Applies the migrations.
///
/// # Errors
/// The database's.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    retrain_engine::MIGRATOR.run(pool).await.context("migrations failed")
}

/// The engine with the retrain pipeline.
pub fn engine(pool: &PgPool, settings: &ServeSettings) -> Engine {
    let env = PipelineEnv {
        pool: pool.clone(),
        config: Arc::new(settings.pipeline()),
    };
    let pipeline = match &settings.test_slow_step {
        // Fault injection for tests; never set in a real deployment.
        Some(slow) => pipeline_wrapping(env, |name, step| slow.wrap(name, step)),
        None => pipeline(env),
    };
    Engine::new(pool.clone(), Registry::new().register(pipeline))
}

/// Starts what the API needs (the promotion listener, the prediction log and
/// the feedback writers) and returns its state. The listener stops on
/// `shutdown`; the writers keep writing until [`ApiWriters::finish`], so
/// requests still draining after `shutdown` get their rows committed.
pub fn api_state(
    pool: &PgPool,
    engine: Engine,
    metrics: Metrics,
    admin_token: String,
    settings: &ServeSettings,
    shutdown: &CancellationToken,
) -> (AppState, ApiWriters) {
    let serving = Arc::new(Serving::new(Duration::from_millis(settings.stale_after_ms)));
    let serves = ModelFilter(settings.models.clone());
    tokio::spawn(crate::facts::keep_fresh(
        pool.clone(),
        metrics.clone(),
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    tokio::spawn(follow_promotions(
        pool.clone(),
        settings.listen_url.clone(),
        serving.clone(),
        serves.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let stop = CancellationToken::new();
    let (predictions, prediction_writer) = PredictionLog::start(pool.clone(), metrics.clone(), 100_000, stop.clone());
    let (feedback, mut tasks) = FeedbackWriter::start(pool.clone(), 2, 50_000, Duration::from_secs(5), stop.clone());
    tasks.push(prediction_writer);
    let state = AppState {
        pool: pool.clone(),
        engine,
        serving,
        default_model: settings.default_model.as_str().into(),
        serves,
        metrics,
        predictions,
        feedback,
        access: Arc::new(crate::keys::Access::new(
            crate::keys::Secret::new(admin_token),
            settings.open_routes(),
            settings.key_limits(),
        )),
        ui_requires_token: settings.ui_requires_token,
        limits: Limits {
            batch_max: settings.batch_max,
            body_limit: settings.body_limit,
        },
    };
    (state, ApiWriters { stop, tasks })
}

/// The API's background writers (prediction log, feedback), stopped last.
#[derive(Debug)]
pub struct ApiWriters {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl ApiWriters {
    /// Lets the writers commit what is queued, then waits for them (at most
    /// `limit`: a database that is away gets the prediction log's retries).
    pub async fn finish(self, limit: Duration) {
        self.stop.cancel();
        let all = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("the writers did not finish in time; rows still queued are lost");
        }
    }
}

/// Records a worker's attempts in the metrics.
pub fn observe_runs(metrics: Metrics) -> retrain_engine::Observer {
    Arc::new(move |execution: &Execution| {
        let result = if execution.error.is_some() { "error" } else { "ok" };
        let model = execution.subject.as_str();
        metrics
            .step_duration
            .with_label_values(&[model, &execution.step, result])
            .observe(execution.elapsed.as_secs_f64());
        match execution.commit {
            StepCommit::RetryScheduled(_) => metrics.step_retries.with_label_values(&[model, &execution.step]).inc(),
            StepCommit::RunFinished(status) => metrics
                .runs
                .with_label_values(&[model, execution.trigger.as_str(), status.as_str()])
                .inc(),
            StepCommit::Advanced => {}
        }
    })
}

/// Runs `retrain serve` until `shutdown` fires: migrates and bootstraps an
/// empty database, then starts the parts of `settings.role`. The API listens
/// on `listener`.
///
/// # Errors
/// Startup failures (database, token file, scheduler); serving errors.
pub async fn serve(
    settings: ServeSettings,
    pool: PgPool,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    start(settings, pool, listener, shutdown).await?.wait().await
}

/// A started service, running until its shutdown token fires.
#[derive(Debug)]
pub struct Running {
    shutdown: CancellationToken,
    /// What the API serves, and the default model it waits for at start.
    serving: Option<(Arc<Serving>, Arc<str>)>,
    server: JoinHandle<std::io::Result<()>>,
    writers: Option<ApiWriters>,
    background: Vec<JoinHandle<()>>,
}

/// The admin token (configured, else from or generated into the token
/// file), checked; where it came from is logged, never the token.
///
/// # Errors
/// The token file cannot be read or written; the token is short or a placeholder.
fn admin_token(settings: &ServeSettings) -> anyhow::Result<String> {
    let file = settings.token_file.clone().unwrap_or_else(auth::default_token_file);
    let configured = settings.admin_token.as_ref().map(crate::keys::Secret::expose);
    let (token, source) = auth::resolve_token(configured, &file)
        .with_context(|| format!("cannot read or write the admin token file {}", file.display()))?;
    auth::check_token(&token).map_err(|refused| anyhow::anyhow!("refusing to start: {refused}"))?;
    match source {
        TokenSource::Environment => tracing::info!("admin token from RETRAIN_ADMIN_TOKEN"),
        TokenSource::File(path) => tracing::info!(file = %path.display(), "admin token read from file"),
        TokenSource::Generated(path) => tracing::info!(file = %path.display(), "admin token generated into file"),
    }
    Ok(token)
}

/// Like [`serve`], but returns once the parts are started, so a caller in
/// the same process (the demo) can wait for [`Running::loaded`] instead of
/// polling its own endpoints before they can answer.
///
/// # Errors
/// As [`serve`], for startup.
pub async fn start(
    settings: ServeSettings,
    pool: PgPool,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    // Before anything is stored: a weak token stops the start.
    let admin_token = match settings.role {
        Role::All | Role::Api => Some(admin_token(&settings)?),
        Role::Worker => None,
    };
    migrate(&pool).await?;
    retrain_steps::bootstrap::bootstrap(&pool, &settings.pipeline())
        .await
        .context("bootstrap failed")?;
    let engine = engine(&pool, &settings);
    let metrics = Metrics::new();
    let mut background = Vec::new();
    let runs_work = matches!(settings.role, Role::All | Role::Worker);
    // Every process makes the coming days' prediction partitions; only
    // workers drop expired ones.
    let retention = if runs_work {
        settings.prediction_retention_days
    } else {
        crate::retention::Retention::Off
    };
    crate::retention::run_once(&pool, retention, &metrics).await;
    if runs_work {
        background.push(tokio::spawn(crate::retention::keep(
            pool.clone(),
            retention,
            metrics.clone(),
            shutdown.clone(),
        )));
        let mut config = WorkerConfig::new("worker");
        config.lease = Duration::from_secs(settings.lease_secs.max(3));
        config.heartbeat = config.lease / 3;
        config.listen_url = settings.listen_url.clone();
        let worker = Worker::new(engine.clone(), config).observed_by(observe_runs(metrics.clone()));
        background.push(tokio::spawn(worker.run(shutdown.clone())));
        let mut scheduler = retrain_steps::triggers::start(engine.clone(), settings.triggers())
            .await
            .context("cannot start the scheduler")?;
        let stopping = shutdown.clone();
        // No new runs once shutdown starts.
        background.push(tokio::spawn(async move {
            stopping.cancelled().await;
            let _ = scheduler.shutdown().await;
        }));
    }
    let (app, serving, writers) = if let Some(token) = admin_token {
        let (state, writers) = api_state(&pool, engine.clone(), metrics.clone(), token, &settings, &shutdown);
        // A replica that does not serve the default model waits for none.
        let serving = state
            .serves
            .serves(&state.default_model)
            .then(|| (state.serving.clone(), state.default_model.clone()));
        (routes::router(state), serving, Some(writers))
    } else {
        // A worker serves its health and metrics only.
        tokio::spawn(crate::facts::keep_fresh(
            pool.clone(),
            metrics.clone(),
            Duration::from_secs(5),
            shutdown.clone(),
        ));
        (routes::worker_router(metrics.clone()), None, None)
    };
    tracing::info!(address = %listener.local_addr()?, role = ?settings.role, "serving HTTP");
    // Header and body read timeouts, a header size limit and a connection
    // cap: slow or stalled clients cannot tie the server up (see `server`).
    let server = tokio::spawn(crate::server::serve(
        listener,
        app,
        crate::server::HttpLimits::default(),
        shutdown.clone(),
    ));
    Ok(Running {
        shutdown,
        serving,
        server,
        writers,
        background,
    })
}

impl Running {
    /// Returns once the API serves the default model (at once for a worker).
    pub async fn loaded(&self) {
        if let Some((serving, default_model)) = &self.serving {
            serving.loaded(default_model).await;
        }
    }

    /// Runs until the shutdown token fires, then stops in order: the HTTP
    /// server stops accepting and drains the requests in flight (meanwhile
    /// the scheduler stops and the worker hands back its step); then the
    /// writers commit what those requests queued (feedback and the
    /// prediction log) and end; then the worker and scheduler are awaited.
    ///
    /// # Errors
    /// The HTTP server's, or its not stopping in time.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        tracing::info!("shutting down");
        let served = tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .context("the HTTP server did not stop in time");
        if let Some(writers) = self.writers {
            writers.finish(Duration::from_secs(10)).await;
        }
        for task in self.background {
            let _ = tokio::time::timeout(Duration::from_secs(35), task).await;
        }
        served???;
        Ok(())
    }
}
