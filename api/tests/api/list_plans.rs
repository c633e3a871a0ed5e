//! The list queries, the prediction lookup feedback makes and the retention
//! drop's catalog read, planned on a database of 1M predictions (35 days),
//! 100k runs and 20k models (a model's versions stay few: their list is
//! checked not to scan runs): each reads by index, never by a sequential
//! scan of a big table, and the run lists never sort. The SQL is the handlers' own text.
//! Prints each query's execution time (median of 5 `EXPLAIN ANALYZE`) and
//! the prediction log's bytes per row, indexes included.

use crate::support::*;
use retrain_api::{predlog, retention, routes};
use retrain_engine::RunStatus;
use retrain_engine::list_runs_sql;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const PREDICTIONS: i64 = 1_000_000;
const DAYS: i64 = 35;
const RUNS: i64 = 100_000;
const MODELS: i64 = 20_000;

/// 1M predictions of the wine model over the last 35 days (11 features,
/// as the wine data has), 100k runs of 11 subjects in four end states, and
/// 20k models.
async fn fill(pool: &PgPool) {
    sqlx::query(
        "SELECT prediction_partition_create((now() AT TIME ZONE 'UTC')::date - n) FROM generate_series(0, $1) n",
    )
    .bind(DAYS as i32 - 1)
    .execute(pool)
    .await
    .unwrap();
    let mut tx = history(pool).await;
    sqlx::query(
        "INSERT INTO predictions (id, model_id, model_version, features, label, confidence, predicted_at)
         SELECT gen_random_uuid(), m.id, 1, array_fill(g::float8 / 7, ARRAY[11]), (3 + g % 6)::text, 0.5,
                now() - (g % $2) * interval '1 day' - (g % 997) * interval '1 second'
         FROM models m, generate_series(1, $1) g WHERE m.name = 'wine-quality'",
    )
    .bind(PREDICTIONS)
    .bind(DAYS)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO runs (id, pipeline, subject, status, trigger, requested_by, created_at)
         SELECT gen_random_uuid(), 'retrain', CASE WHEN g % 11 = 0 THEN 'wine-quality' ELSE 'model-' || g % 11 END,
                (ARRAY['succeeded', 'skipped', 'rejected', 'failed']::run_status[])[1 + g % 4], 'schedule', 'test',
                now() - g * interval '1 minute'
         FROM generate_series(1, $1) g",
    )
    .bind(RUNS)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO models (name, kind, feature_names, text_column, classes, learner)
         SELECT 'model-' || g, 'text', '{}', 'text', '{}', '{\"name\": \"decision_tree\", \"settings\": {}}'
         FROM generate_series(1, $1) g",
    )
    .bind(MODELS)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
}

/// Every plan node, depth first (init plans and subplans included).
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    for child in plan["Plans"].as_array().into_iter().flatten() {
        nodes(child, out);
    }
}

/// A parameter of a listed query.
enum Arg {
    Big(i64),
    Int(Option<i32>),
    Text(String),
    Id(Uuid),
    Status(RunStatus),
    Day(chrono::NaiveDate),
}

/// The plan of `sql` run with `args` (`EXPLAIN (ANALYZE, FORMAT JSON)`),
/// five times: the last plan's nodes and the median execution time in ms.
async fn explain(pool: &PgPool, sql: &str, args: &[Arg]) -> (Vec<Value>, f64) {
    let text = format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}");
    let mut times = Vec::new();
    let mut plan = Value::Null;
    for _ in 0..5 {
        let mut query = sqlx::query_scalar::<_, Value>(&text);
        for arg in args {
            query = match arg {
                Arg::Big(v) => query.bind(*v),
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.clone()),
                Arg::Id(v) => query.bind(*v),
                Arg::Status(v) => query.bind(*v),
                Arg::Day(v) => query.bind(*v),
            };
        }
        plan = query.fetch_one(pool).await.unwrap();
        times.push(plan[0]["Execution Time"].as_f64().unwrap());
    }
    times.sort_by(f64::total_cmp);
    let mut out = Vec::new();
    nodes(&plan[0]["Plan"], &mut out);
    (out, times[2])
}

/// Whether a node reads one of the `big` tables by a sequential scan (empty
/// partitions, of days to come, are rightly read so).
fn scans_a_big_table(node: &Value, big: &[String]) -> bool {
    let relation = node["Relation Name"].as_str().unwrap_or("");
    node["Node Type"] == "Seq Scan" && big.iter().any(|b| b == relation)
}

/// `text` with the day of partition names as `*`, so a day's scans read alike.
fn any_day(text: &str) -> String {
    text.split(' ')
        .map(|word| match word.strip_prefix("predictions_p") {
            Some(rest) if rest.len() >= 8 && rest[..8].bytes().all(|b| b.is_ascii_digit()) => {
                format!("predictions_p*{}", &rest[8..])
            }
            _ => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn list_queries_read_by_index_on_a_million_predictions(_: PgPoolOptions, connect: PgConnectOptions) {
    // The service bootstraps the wine model; the rest is written directly.
    let app = spawn(&connect, "api", &[]).await;
    let pool = app.pool.clone();
    fill(&pool).await;
    let run: Uuid = sqlx::query_scalar("SELECT id FROM runs ORDER BY created_at DESC, id DESC OFFSET 5000 LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let prediction: Uuid = sqlx::query_scalar("SELECT id FROM predictions LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let big: Vec<String> =
        sqlx::query_scalar("SELECT relname::text FROM pg_class WHERE relkind = 'r' AND reltuples >= 10000")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(big.contains(&"runs".to_owned()) && big.len() > DAYS as usize, "{big:?}");
    let page = Arg::Big(51);
    let mut cases: Vec<(String, String, Vec<Arg>)> = Vec::new();
    for status in [false, true] {
        for subject in [false, true] {
            for after in [false, true] {
                let mut args = vec![Arg::Big(51)];
                if status {
                    args.push(Arg::Status(RunStatus::Rejected));
                }
                if subject {
                    args.push(Arg::Text("model-3".into()));
                }
                if after {
                    args.push(Arg::Id(run));
                }
                let name = format!("GET /runs status={status} model={subject} after={after}");
                cases.push((name, list_runs_sql(status, subject, false, after), args));
            }
        }
    }
    cases.push((
        "GET /models".into(),
        retrain_steps::store::models::page_sql(),
        vec![Arg::Text(String::new()), Arg::Big(51)],
    ));
    cases.push((
        "GET /models?after=".into(),
        retrain_steps::store::models::page_sql(),
        vec![Arg::Text("model-5000".into()), Arg::Big(51)],
    ));
    cases.push((
        "GET /models/{name}/versions".into(),
        routes::versions::list_sql(),
        vec![Arg::Text("wine-quality".into()), Arg::Int(None), page],
    ));
    cases.push((
        "feedback's prediction lookup".into(),
        predlog::FIND_BY_ID.into(),
        vec![Arg::Id(prediction)],
    ));
    cases.push((
        "retention's partitions to drop".into(),
        retention::PARTITIONS_BEFORE.into(),
        vec![Arg::Day(chrono::Utc::now().date_naive() - chrono::Days::new(30))],
    ));
    for (name, sql, args) in &cases {
        let (plan, ms) = explain(&pool, sql, args).await;
        let kinds: Vec<String> = plan
            .iter()
            .filter(|n| n["Relation Name"].is_string())
            .map(|n| {
                let index = n["Index Name"].as_str().map(|i| format!(" by {i}")).unwrap_or_default();
                format!(
                    "{} {}{index}",
                    n["Node Type"],
                    n["Relation Name"].as_str().unwrap_or("")
                )
            })
            .collect();
        let mut shown: Vec<(String, usize)> = Vec::new();
        for kind in kinds.iter().map(|k| any_day(k)) {
            match shown.last_mut() {
                Some((last, n)) if *last == kind => *n += 1,
                _ => shown.push((kind, 1)),
            }
        }
        let shown: Vec<String> = shown.iter().map(|(kind, n)| format!("{n} x {kind}")).collect();
        println!("{name}: {ms:.3} ms; {}", shown.join(", "));
        assert!(
            !plan.iter().any(|n| scans_a_big_table(n, &big)),
            "{name} scans a big table: {kinds:?}"
        );
        if name.starts_with("GET /runs") {
            assert!(
                !plan
                    .iter()
                    .any(|n| n["Node Type"].as_str().unwrap_or("").contains("Sort")),
                "{name} sorts: {kinds:?}"
            );
        }
        if name.starts_with("retention") {
            assert!(
                !plan
                    .iter()
                    .any(|n| n["Relation Name"].as_str().unwrap_or("").starts_with("predictions")),
                "{name} reads predictions: {kinds:?}"
            );
        }
    }

    let bytes: i64 = sqlx::query_scalar(
        "SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits WHERE inhparent = 'predictions'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!(
        "predictions: {} bytes a row with indexes, {:.0} MiB a million",
        bytes / PREDICTIONS,
        bytes as f64 / PREDICTIONS as f64 * 1e6 / 1_048_576.0
    );
    app.stop().await;
}
