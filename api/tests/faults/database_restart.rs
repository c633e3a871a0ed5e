//! PostgreSQL stopped and started under the running service: an API process
//! and a worker process on a private cluster (the machine's shared server is
//! never touched), feedback and prediction load throughout, and a retrain
//! run caught in its train step when the database goes away.
//!
//! What must hold: both processes reconnect by themselves; the run
//! finishes; every feedback row the API acknowledged (201) is in the table;
//! `/ready` answers 503 while the database is away and 200 after; `/predict`
//! keeps answering 200 from the loaded model; `/feedback` answers 503 with
//! `Retry-After` within about 3 s instead of hanging.
//!
//! Why no queue grows without bound: the feedback queue is a bounded channel
//! whose producers `try_send` and answer 503 when it is full, and whose
//! consumers answer every row (stored or not) before taking more; the
//! prediction log is a bounded channel that drops and counts what does not
//! fit. The test checks the consequences it can see: 503s come back
//! promptly, and the API's resident memory stays within a few tens of MB of
//! where it started.

use crate::cluster::Cluster;
use crate::support::*;
use retrain_steps::ml::{Example, Split};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the worker holds train's result before committing it. The
/// database goes away during the hold and stays away past its end by
/// `AWAY_AFTER_HOLD`, longer than the pool's 2 s connection wait: the
/// worker's commit fails, the 3 s lease expires meanwhile, and requests
/// meet the pool's timeout more than once.
const HOLD: Duration = Duration::from_secs(4);
const AWAY_AFTER_HOLD: Duration = Duration::from_secs(4);
/// How long a 503 may take while the database is away ("about 3 s").
const PROMPT_503: Duration = Duration::from_millis(3_500);
/// How long a prediction may take at worst; it never waits on the database.
const PROMPT_PREDICT: Duration = Duration::from_secs(1);
const FEEDBACK_CLIENTS: usize = 4;

/// One answer a load client got.
#[derive(Debug, Clone)]
struct Sample {
    sent: Instant,
    took: Duration,
    /// 0: no HTTP answer at all (connection error or the client's 15 s timeout).
    status: u16,
    retry_after: bool,
    feedback_id: Option<i64>,
}

type Samples = Arc<Mutex<Vec<Sample>>>;

async fn record(samples: &Samples, sent: Instant, response: Result<reqwest::Response, reqwest::Error>) {
    let took = sent.elapsed();
    let sample = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or_default();
            Sample {
                sent,
                took,
                status,
                retry_after,
                feedback_id: body["feedback_id"].as_i64(),
            }
        }
        Err(_) => Sample {
            sent,
            took,
            status: 0,
            retry_after: false,
            feedback_id: None,
        },
    };
    samples.lock().unwrap().push(sample);
}

/// Sends feedback with true labels as source `source` until `stop`.
fn feedback_load(
    api: &Process,
    rows: Vec<Example>,
    source: String,
    stop: Arc<AtomicBool>,
) -> (Samples, tokio::task::JoinHandle<()>) {
    let samples: Samples = Arc::default();
    let (client, url, out) = (api.client.clone(), api.url("/feedback"), samples.clone());
    let task = tokio::spawn(async move {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let row = &rows[i % rows.len()];
            i += 1;
            let sent = Instant::now();
            let body = json!({"features": row.input.features(), "correct_label": row.label, "source": source});
            record(
                &out,
                sent,
                client.post(&url).bearer_auth(TOKEN).json(&body).send().await,
            )
            .await;
        }
    });
    (samples, task)
}

/// Asks for predictions until `stop`.
fn predict_load(api: &Process, row: Example, stop: Arc<AtomicBool>) -> (Samples, tokio::task::JoinHandle<()>) {
    let samples: Samples = Arc::default();
    let (client, url, out) = (api.client.clone(), api.url("/predict"), samples.clone());
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            record(
                &out,
                sent,
                client
                    .post(&url)
                    .json(&json!({"features": row.input.features()}))
                    .send()
                    .await,
            )
            .await;
        }
    });
    (samples, task)
}

fn taken(samples: &Samples) -> Vec<Sample> {
    samples.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_rides_out_a_database_restart_losing_nothing_acknowledged() {
    let _machine = whole_machine().await;
    let cluster = Cluster::start();
    let url = cluster.url();
    let connect: PgConnectOptions = url.parse().unwrap();
    let api = RETRAIN.start(Role::Api, &url, &[]).await;
    let hold = format!("train:{}", HOLD.as_millis());
    let mut worker_env = vec![("RETRAIN_LEASE_SECS", "3"), ("RETRAIN_TEST_SLOW_STEP", hold.as_str())];
    worker_env.extend(PASSING_GATE);
    let worker = RETRAIN.start(Role::Worker, &url, &worker_env).await;
    let pool = pool(&connect).await;
    let rows = split_rows(&pool, Split::Pool).await;
    let golden = split_rows(&pool, Split::Golden).await;
    api.send_feedback(&rows[..30], "before-restart").await;

    // Load from the start to the end.
    let stop = Arc::new(AtomicBool::new(false));
    let mut feedback: Vec<_> = (0..FEEDBACK_CLIENTS)
        .map(|i| {
            let source = format!("restart-load-{i}");
            let (samples, task) = feedback_load(&api, rows.clone(), source.clone(), stop.clone());
            (source, samples, task)
        })
        .collect();
    let (predictions, predict_task) = predict_load(&api, golden[0].clone(), stop.clone());
    eventually(10.0, "feedback load is acknowledged", || async {
        feedback
            .iter()
            .all(|(_, s, _)| taken(s).iter().any(|x| x.status == 201))
    })
    .await;
    let rss_before = api.rss_kib();

    // A run caught in train, its model stored and its result held.
    let run = api.trigger().await;
    eventually(30.0, "train runs and has stored its model", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE run_id = $1)
                AND EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND name = 'train' AND status = 'running')",
        )
        .bind(run)
        .fetch_one(&pool)
        .await
        .unwrap()
    })
    .await;
    let caught_at = Instant::now();
    pool.close().await;

    // The database goes away.
    let down_at = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop_server();
        cluster
    })
    .await
    .unwrap();
    let stopped_at = Instant::now();
    assert!(
        caught_at.elapsed() < HOLD,
        "stopping PostgreSQL took {:?}, longer than the worker's hold: the scenario did not happen",
        stopped_at - down_at
    );
    let mut ready_while_down = Vec::new();
    loop {
        let sent = Instant::now();
        let status = api.get("/ready").await.status().as_u16();
        ready_while_down.push((status, sent.elapsed()));
        let refused_feedback = feedback.iter().all(|(_, s, _)| {
            taken(s)
                .iter()
                .filter(|x| x.sent > stopped_at && x.status == 503)
                .count()
                >= 2
        });
        if caught_at.elapsed() >= HOLD + AWAY_AFTER_HOLD && refused_feedback {
            break;
        }
        assert!(
            down_at.elapsed() < Duration::from_secs(30),
            "feedback was not refused while the database was away"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_during = api.rss_kib();

    // The database comes back.
    let restarting_at = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_server();
        cluster
    })
    .await
    .unwrap();
    let up_at = Instant::now();
    eventually(30.0, "/ready answers 200 again", || async {
        api.get("/ready").await.status() == 200
    })
    .await;
    let ready_again = up_at.elapsed();
    eventually(30.0, "feedback is acknowledged again", || async {
        feedback
            .iter()
            .all(|(_, s, _)| taken(s).iter().any(|x| x.sent > up_at && x.status == 201))
    })
    .await;
    let pool = crate::support::pool(&connect).await;
    let status = finished(&pool, run, 60).await;
    assert_eq!(
        status,
        "succeeded",
        "the run finished after the restart:\n{}",
        worker.log_tail(40)
    );
    let version = scalar_i64(&pool, "SELECT version::bigint FROM versions WHERE run_id = $1", run).await;
    eventually(
        15.0,
        "the API serves the run's model (its listener is back)",
        || async { api.served_version().await == version },
    )
    .await;
    // The promotion came after the restart; the listener was back for it.
    let info = api.json("/model/info").await;
    let at = |field: &str| chrono::DateTime::parse_from_rfc3339(info[field].as_str().unwrap()).unwrap();
    let swap_lag = (at("loaded_at") - at("promoted_at")).to_std().unwrap_or_default();
    assert!(
        swap_lag < Duration::from_secs(1),
        "the API loaded the promoted model {swap_lag:?} after the promotion"
    );
    assert_eq!(
        scalar_i64(&pool, "SELECT count(*) FROM versions WHERE run_id = $1", run).await,
        1
    );
    assert_eq!(
        scalar_i64(&pool, "SELECT count(*) FROM promotions WHERE run_id = $1", run).await,
        1
    );

    let events = history(&pool, run).await;
    // The worker committed train's result once the database was back,
    // instead of waiting for its lease to expire and training again.
    let train_attempts = events
        .iter()
        .filter(|e| e.is_step("train") && e.to_status == "running")
        .count();
    assert_eq!(train_attempts, 1, "train ran once:\n{}", show(&events));
    assert!(
        !events.iter().any(Event::is_retry),
        "no step was retried or reclaimed:\n{}",
        show(&events)
    );

    stop.store(true, Ordering::Relaxed);
    for (_, _, task) in &mut feedback {
        task.await.unwrap();
    }
    predict_task.await.unwrap();
    let rss_after = api.rss_kib();

    // /ready: 503 while away (promptly), 200 after.
    assert!(
        ready_while_down
            .iter()
            .all(|(s, took)| *s == 503 && *took < Duration::from_millis(1_500)),
        "/ready while the database was away: {ready_while_down:?}"
    );

    // Feedback: every acknowledged row is stored; refusals are prompt 503s
    // with Retry-After; nothing else.
    let (mut acknowledged, mut stored_total, mut refused, mut slowest_refusal) = (0, 0, 0, Duration::ZERO);
    for (source, samples, _) in &feedback {
        let samples = taken(samples);
        let acked: HashSet<i64> = samples
            .iter()
            .filter(|s| s.status == 201)
            .map(|s| s.feedback_id.unwrap())
            .collect();
        // The rows come under the admin key; the body's source is their sub-label.
        let stored: HashSet<i64> = sqlx::query_scalar("SELECT id FROM feedback WHERE sub_label = $1")
            .bind(source)
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let lost: Vec<_> = acked.difference(&stored).collect();
        assert!(lost.is_empty(), "{source}: acknowledged but not stored: {lost:?}");
        let unexpected: Vec<_> = samples.iter().filter(|s| s.status != 201 && s.status != 503).collect();
        assert!(
            unexpected.is_empty(),
            "{source}: answers other than 201 and 503: {unexpected:?}"
        );
        for s in samples.iter().filter(|s| s.status == 503) {
            assert!(s.retry_after, "{source}: a 503 without Retry-After");
            slowest_refusal = slowest_refusal.max(s.took);
            refused += 1;
        }
        acknowledged += acked.len();
        stored_total += stored.len();
    }
    assert!(
        slowest_refusal <= PROMPT_503,
        "a feedback 503 took {slowest_refusal:?} (limit {PROMPT_503:?})"
    );

    // Predictions: all answered from the loaded model, none waited on the database.
    let predictions = taken(&predictions);
    let failed: Vec<_> = predictions.iter().filter(|s| s.status != 200).collect();
    assert!(failed.is_empty(), "predictions failed: {failed:?}");
    let during: Vec<_> = predictions
        .iter()
        .filter(|s| s.sent > stopped_at && s.sent < restarting_at)
        .collect();
    assert!(
        !during.is_empty(),
        "predictions were asked for while the database was away"
    );
    let slowest_prediction = predictions.iter().map(|s| s.took).max().unwrap_or_default();
    assert!(
        slowest_prediction < PROMPT_PREDICT,
        "a prediction took {slowest_prediction:?}"
    );

    // Memory: no queue grew without bound.
    assert!(
        rss_after < rss_before + 64 * 1024,
        "API resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    eprintln!(
        "outage {:?} (stop took {:?}); ready again {ready_again:?} after start; swap lag of the run's promotion {swap_lag:?}; feedback: {acknowledged} acknowledged, \
         {stored_total} stored, {refused} refused with 503 (slowest {slowest_refusal:?}); predictions: {} answered, \
         {} while away, slowest {slowest_prediction:?}; API RSS {rss_before} -> {rss_during} -> {rss_after} KiB",
        restarting_at - down_at,
        stopped_at - down_at,
        predictions.len(),
        during.len(),
    );
    drop(worker);
    drop(api);
    pool.close().await;
    drop(cluster);
}
