//! The service's Prometheus metrics, registered once in a registry of our own
//! and served at `/metrics`. Names are prefixed `retrain_`.

use arc_swap::ArcSwap;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Every metric the service exports, shared: a clone is one reference count
/// (request handlers clone the state, so this is on the hot path).
#[derive(Debug, Clone)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;

    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

/// The metrics themselves.
#[derive(Debug)]
pub struct MetricSet {
    registry: Registry,
    /// `predictions` children by (model version, label), so a prediction
    /// counts without formatting or hashing label strings.
    /// The prediction counters made so far: by model, version, then label.
    prediction_counters: ArcSwap<PredictionCounters>,
    pub predictions: IntCounterVec,
    pub prediction_latency: Histogram,
    pub feedback: IntCounterVec,
    pub feedback_unlinked: IntCounterVec,
    pub model_reloads: IntCounterVec,
    pub served_version: IntGaugeVec,
    /// The (version, version id) labels set on `served_version`, by model.
    served_labels: Arc<std::sync::Mutex<HashMap<String, [String; 2]>>>,
    /// 1 while this replica cannot confirm it serves the champion.
    pub served_behind_champion: IntGauge,
    pub swap_lag: Histogram,
    pub prediction_log_failed: IntCounterVec,
    pub runs: IntCounterVec,
    pub step_duration: HistogramVec,
    pub step_retries: IntCounterVec,
    pub golden_accuracy: prometheus::GaugeVec,
    pub feedback_waiting: IntGaugeVec,
    pub champion_version: IntGaugeVec,
    pub http_requests: IntCounterVec,
    pub last_success_timestamp: prometheus::GaugeVec,
    pub prediction_log_written: IntCounter,
    /// How long the most overdue runnable step has waited for a worker.
    pub step_wait: prometheus::Gauge,
    pub prediction_partitions_dropped: IntCounter,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Panics
    /// Only if two metrics share a name: a programming error caught by any test.
    pub fn new() -> Self {
        let registry = Registry::new();
        let latency_buckets = vec![
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ];
        let metrics = Self(Arc::new(MetricSet {
            prediction_counters: ArcSwap::default(),
            served_labels: Arc::default(),
            predictions: IntCounterVec::new(
                opts(
                    "retrain_predictions_total",
                    "Predictions served, by model, model version and predicted label.",
                ),
                &["model", "model_version", "label"],
            )
            .unwrap(),
            prediction_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "retrain_prediction_latency_seconds",
                    "Time to answer a prediction request, from parsed body to response.",
                )
                .buckets(latency_buckets),
            )
            .unwrap(),
            feedback: IntCounterVec::new(
                opts(
                    "retrain_feedback_total",
                    "Feedback rows stored, by model and verdict: correct or incorrect (the predicted label \
                     matched the correct one or not: the logged prediction's label, or the client's when none \
                     is logged yet), unknown when no predicted label is known.",
                ),
                &["model", "verdict"],
            )
            .unwrap(),
            feedback_unlinked: IntCounterVec::new(
                opts(
                    "retrain_feedback_unlinked_total",
                    "Feedback rows stored, by model, citing a prediction not in the log when they arrived \
                     (logged by another replica and not written yet, or lost); they link once it lands.",
                ),
                &["model"],
            )
            .unwrap(),
            model_reloads: IntCounterVec::new(
                opts(
                    "retrain_model_reloads_total",
                    "Attempts to load a promoted model, by result.",
                ),
                &["result"],
            )
            .unwrap(),
            served_version: IntGaugeVec::new(
                opts(
                    "retrain_served_model_info",
                    "1 for each model version this replica serves (info-style: the version is a label).",
                ),
                &["model", "version", "model_id"],
            )
            .unwrap(),
            served_behind_champion: IntGauge::new(
                "retrain_served_behind_champion",
                "1 while this replica could not load the champion (or read which model it is) and serves \
                 an older model or none; 0 once it serves the champion. sum() counts replicas behind.",
            )
            .unwrap(),
            swap_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "retrain_swap_lag_seconds",
                    "Time from a promotion's commit to this replica serving the new model.",
                )
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
            )
            .unwrap(),
            prediction_log_failed: IntCounterVec::new(
                opts(
                    "retrain_prediction_log_failed_total",
                    "Prediction log rows that could not be written, by reason (queue_full, database).",
                ),
                &["reason"],
            )
            .unwrap(),
            prediction_log_written: IntCounter::new(
                "retrain_prediction_log_written_total",
                "Prediction log rows written to the database.",
            )
            .unwrap(),
            prediction_partitions_dropped: IntCounter::new(
                "retrain_prediction_partitions_dropped_total",
                "Day partitions of the prediction log dropped by retention.",
            )
            .unwrap(),
            runs: IntCounterVec::new(
                opts("retrain_runs_total", "Retrain runs that ended, by trigger and outcome."),
                &["model", "trigger", "outcome"],
            )
            .unwrap(),
            step_duration: HistogramVec::new(
                HistogramOpts::new(
                    "retrain_step_duration_seconds",
                    "Duration of step attempts, by step and result.",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                ]),
                &["model", "step", "result"],
            )
            .unwrap(),
            step_retries: IntCounterVec::new(
                opts(
                    "retrain_step_retries_total",
                    "Step attempts that failed and were scheduled for retry.",
                ),
                &["model", "step"],
            )
            .unwrap(),
            golden_accuracy: prometheus::GaugeVec::new(
                opts(
                    "retrain_golden_accuracy",
                    "Golden-set accuracy of each model's champion and of its last candidate (role label).",
                ),
                &["model", "role"],
            )
            .unwrap(),
            feedback_waiting: IntGaugeVec::new(
                opts(
                    "retrain_feedback_waiting",
                    "Feedback rows of each model waiting for its next run that passes collect.",
                ),
                &["model"],
            )
            .unwrap(),
            champion_version: IntGaugeVec::new(
                opts(
                    "retrain_champion_version",
                    "Each model's champion version in the database.",
                ),
                &["model"],
            )
            .unwrap(),
            http_requests: IntCounterVec::new(
                opts(
                    "retrain_http_requests_total",
                    "HTTP requests answered, by route and status class.",
                ),
                &["route", "status"],
            )
            .unwrap(),
            last_success_timestamp: prometheus::GaugeVec::new(
                opts(
                    "retrain_last_successful_run_timestamp_seconds",
                    "Unix time at which the model's last retrain run succeeded (0 if none).",
                ),
                &["model"],
            )
            .unwrap(),
            step_wait: prometheus::Gauge::with_opts(opts(
                "retrain_step_wait_seconds",
                "How long the most overdue runnable step (of any run) has waited for a worker to take it; 0 when none waits.",
            ))
            .unwrap(),
            registry,
        }));
        metrics.register_all();
        metrics.start_known_series_at_zero();
        metrics
    }

    /// Exports the counters that alerts take `increase()` of at 0 from the
    /// start: Prometheus cannot see the first increment of a series that
    /// appears with value 1, so the first failure after a restart would go
    /// unnoticed.
    /// Makes a model's run and retry series exist at zero, so the first
    /// failure of its runs is an increase Prometheus sees (a counter that
    /// appears at 1 shows none). The stored-fact refresh calls this for
    /// every model.
    pub fn start_model_series(&self, model: &str) {
        use retrain_engine::{RunStatus, TriggerKind};
        for trigger in [TriggerKind::Manual, TriggerKind::Schedule, TriggerKind::Threshold] {
            for outcome in [
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::Cancelled,
                RunStatus::Skipped,
                RunStatus::Rejected,
            ] {
                self.runs
                    .with_label_values(&[model, trigger.as_str(), outcome.as_str()]);
            }
        }
        for step in retrain_steps::pipeline::STEPS {
            self.step_retries.with_label_values(&[model, step]);
        }
        for verdict in ["correct", "incorrect", "unknown"] {
            self.feedback.with_label_values(&[model, verdict]);
        }
    }

    fn start_known_series_at_zero(&self) {
        for result in ["success", "failure"] {
            self.model_reloads.with_label_values(&[result]);
        }
        for reason in ["queue_full", "database"] {
            self.prediction_log_failed.with_label_values(&[reason]);
        }
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.predictions.clone()),
            Box::new(self.prediction_latency.clone()),
            Box::new(self.feedback.clone()),
            Box::new(self.model_reloads.clone()),
            Box::new(self.served_version.clone()),
            Box::new(self.served_behind_champion.clone()),
            Box::new(self.feedback_unlinked.clone()),
            Box::new(self.swap_lag.clone()),
            Box::new(self.prediction_log_failed.clone()),
            Box::new(self.prediction_log_written.clone()),
            Box::new(self.prediction_partitions_dropped.clone()),
            Box::new(self.runs.clone()),
            Box::new(self.step_duration.clone()),
            Box::new(self.step_retries.clone()),
            Box::new(self.golden_accuracy.clone()),
            Box::new(self.feedback_waiting.clone()),
            Box::new(self.champion_version.clone()),
            Box::new(self.http_requests.clone()),
            Box::new(self.last_success_timestamp.clone()),
            Box::new(self.step_wait.clone()),
        ];
        for collector in collectors {
            self.registry.register(collector).expect("metric names are unique");
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Counts one prediction of `label` by version `version` of `model`.
    /// A counter seen before is found without allocating.
    pub fn count_prediction(&self, model: &str, version: i32, label: &str) {
        let known = self.prediction_counters.load();
        if let Some(counter) = known
            .get(model)
            .and_then(|v| v.get(&version))
            .and_then(|l| l.get(label))
        {
            counter.inc();
            return;
        }
        drop(known);
        let counter = self
            .predictions
            .with_label_values(&[model, &version.to_string(), label]);
        counter.inc();
        self.prediction_counters.rcu(|known| {
            let mut known = PredictionCounters::clone(known);
            known
                .entry(model.to_owned())
                .or_default()
                .entry(version)
                .or_default()
                .insert(label.to_owned(), counter.clone());
            known
        });
    }

    /// Marks `version` as the one of `model` served (and no other of it).
    pub fn set_served(&self, model: &str, version: i32, version_id: i64) {
        let labels = [version.to_string(), version_id.to_string()];
        let mut served = self
            .served_labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some([old_version, old_id]) = served.insert(model.to_owned(), labels.clone()) {
            let _ = self.served_version.remove_label_values(&[model, &old_version, &old_id]);
        }
        self.served_version
            .with_label_values(&[model, &labels[0], &labels[1]])
            .set(1);
    }
}

/// Prediction counters by model, version and label.
type PredictionCounters = HashMap<String, HashMap<i32, HashMap<String, IntCounter>>>;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
