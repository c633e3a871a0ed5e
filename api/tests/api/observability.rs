//! Observability, tested on real parts: no Grafana or Docker engine runs
//! here, so their inputs are checked against what they would talk to. A real
//! Prometheus (Debian's `prometheus` package) scrapes the running service
//! while the test makes traffic, a promotion and a rejected run; then every
//! PromQL expression of the dashboards and alert rules parses and every
//! dashboard query returns data, and every dashboard SQL query runs against
//! the migrated database and returns the columns its panel uses, with the
//! dashboards' `model` variable evaluated as Grafana would and expanded into
//! every query. Plain tests check the panels' data sources and the variable
//! against the provisioning and run promtool on the configuration and the
//! alert rule unit tests.
//!
//! Prometheus and promtool missing is a failure, not a skip: CI installs them.

mod dashboards;
mod prometheus;

use crate::support::*;
use dashboards::{
    POSTGRES, PROMETHEUS, columns_used, dashboards, label_values, model_variable, panels, promql,
    provisioned_datasources, queries, sql,
};
use prometheus::Prometheus;
use retrain_steps::ml::{Example, Split};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Column, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a freshly made series may take to show in every query: a few
/// 1 s scrapes, and the stored-fact gauges' 5 s refresh.
const SETTLE_SECS: u64 = 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The path of an installed tool; a clear failure if it is missing.
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed, and the observability tests need it: install Debian's \
                 `prometheus` package (apt-get install prometheus), as .ci/run does"
            )
        })
}

#[test]
fn every_panel_reads_a_provisioned_data_source_with_a_well_formed_query() {
    let provisioned = provisioned_datasources();
    assert_eq!(
        provisioned,
        BTreeMap::from([
            ("postgres".into(), POSTGRES.into()),
            ("prometheus".into(), PROMETHEUS.into())
        ])
    );
    for (file, dashboard) in dashboards() {
        assert!(dashboard["schemaVersion"].as_i64().unwrap() >= 39, "{file}");
        assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()), "{file}");
        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            let title = &panel["title"];
            assert!(
                ids.insert(panel["id"].as_i64().unwrap()),
                "{file}: duplicate panel id in {title}"
            );
            assert!(
                panel["gridPos"]["w"].as_i64().is_some(),
                "{file}: {title} has no gridPos"
            );
            if panel["type"] == "row" {
                continue;
            }
            assert!(panel["datasource"].is_object(), "{file}: {title} names no data source");
            let targets = panel["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: {title} has no targets"));
            assert!(!targets.is_empty(), "{file}: {title} has no targets");
            let refs: BTreeSet<_> = targets.iter().map(|t| t["refId"].as_str().unwrap()).collect();
            assert_eq!(refs.len(), targets.len(), "{file}: {title} repeats a refId");
        }
        for annotation in dashboard["annotations"]["list"].as_array().into_iter().flatten() {
            assert!(
                annotation["datasource"].is_object(),
                "{file}: annotation without a data source"
            );
        }
        // The model variable: one query both data sources can use (a
        // multi-value selection, All meaning every listed name), from a
        // provisioned Prometheus.
        let variable = model_variable(&dashboard);
        assert_eq!(variable["type"], "query", "{file}");
        assert_eq!(
            (&variable["multi"], &variable["includeAll"]),
            (&json!(true), &json!(true)),
            "{file}"
        );
        assert!(
            variable["allValue"].is_null(),
            "{file}: All must list the names, for SQL's IN"
        );
        let uid = variable["datasource"]["uid"].as_str().unwrap();
        assert_eq!(provisioned.get(uid).map(String::as_str), Some(PROMETHEUS), "{file}");
        assert_eq!(variable["query"]["query"], variable["definition"], "{file}");
        assert_eq!(label_values(variable).1, "model", "{file}");
    }
    let queries = queries();
    assert!(queries.iter().any(|q| q.is(PROMETHEUS)) && queries.iter().any(|q| q.is(POSTGRES)));
    for query in &queries {
        for datasource in [&query.panel["datasource"], query.datasource()] {
            let uid = datasource["uid"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no uid", query.place));
            let kind = provisioned
                .get(uid)
                .unwrap_or_else(|| panic!("{}: data source {uid} is not provisioned", query.place));
            assert_eq!(
                datasource["type"].as_str(),
                Some(kind.as_str()),
                "{}: type of {uid}",
                query.place
            );
        }
        if query.is(PROMETHEUS) {
            assert!(
                query.target["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{}",
                query.place
            );
        } else {
            assert!(
                query.target["rawSql"].as_str().is_some_and(|s| !s.trim().is_empty()),
                "{}",
                query.place
            );
            assert_eq!(query.target["rawQuery"], true, "{}", query.place);
            // Every table the dashboards read belongs to a model.
            assert!(
                query.target["rawSql"].as_str().unwrap().contains(" IN ($model)"),
                "{}: not filtered by the model variable",
                query.place
            );
            let format = query.target["format"].as_str();
            assert!(
                matches!(format, Some("table" | "time_series")),
                "{}: format {format:?}",
                query.place
            );
        }
    }
}

#[test]
fn promtool_accepts_the_configuration_and_the_alert_rule_tests() {
    let promtool = tool("promtool");
    let prometheus = repo().join("prometheus");
    for args in [
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let output = Command::new(&promtool)
            .args(args)
            .current_dir(&prometheus)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Base rows with labels 5 and 6 swapped: a label-flipping attack the gate rejects.
fn poisoned(base: Vec<Example>, rows: usize) -> Vec<Example> {
    retrain_testkit::fixtures::label_flipped(base, rows)
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn dashboards_and_alerts_work_against_a_real_prometheus_and_the_schema(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let started = Instant::now();
    let binary = tool("prometheus");
    let app = spawn(&connect, "all", &["--screening", "false"]).await; // the gate must see the poison
    let prometheus = Prometheus::start(binary, app.address).await;
    // The first scrape records each counter at its starting value, so what
    // follows shows as an increase.
    prometheus.wait_for(10, "up{job=\"retrain-all\"} == 1").await;

    // A run with no feedback: skipped at collect.
    let skipped = run_to_end(&app, "nothing to learn yet").await;
    assert_eq!(skipped["status"], "skipped");
    prometheus
        .wait_for(10, "retrain_runs_total{outcome=\"skipped\"} > 0")
        .await;

    // Traffic: predictions (one by one and a batch), feedback citing them.
    let pool_rows = rows(&app.pool, Split::Pool).await;
    let mut feedback = Vec::new();
    for example in &pool_rows[..30] {
        let answer: Value = app
            .post("/predict", json!({"features": features(example)}))
            .await
            .json()
            .await
            .unwrap();
        feedback.push(json!({"features": features(example), "correct_label": example.label,
                             "prediction_id": answer["prediction_id"], "source": "app"}));
    }
    let batch = app
        .post(
            "/predict/batch",
            json!({"instances": pool_rows[30..40].iter().map(features).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(batch.status(), 200);
    send_all(&app, feedback).await;

    // Poisoned feedback, then a run the gate rejects.
    let poison = poisoned(rows(&app.pool, Split::Base).await, 400);
    let poison: Vec<Value> = poison
        .iter()
        .map(|e| json!({"features": features(e), "correct_label": e.label, "source": "attacker"}))
        .collect();
    send_all(&app, poison).await;
    let rejected = run_to_end(&app, "poisoned feedback").await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");

    // A promotion over HTTP.
    let version = second_model(&app.pool).await;
    let promoted = app
        .admin_post(
            &format!("/models/wine-quality/versions/{version}/promote"),
            json!({"reason": "observability test"}),
        )
        .await;
    assert_eq!(promoted.status(), 200);
    eventually(5, "the new version serves", || async {
        app.served_version().await == i64::from(version)
    })
    .await;

    // Prometheus has it all: the served version, the champion (refreshed
    // from the database every 5 s), the rejection, the candidate's accuracy.
    for expr in [
        format!("retrain_served_model_info{{version=\"{version}\"}}"),
        format!("retrain_champion_version == {version}"),
        "retrain_runs_total{outcome=\"rejected\"} > 0".to_owned(),
        "retrain_golden_accuracy{role=\"candidate\"}".to_owned(),
        "retrain_feedback_total{verdict=~\"correct|incorrect\"} > 0".to_owned(),
    ] {
        prometheus.wait_for(SETTLE_SECS, &expr).await;
    }

    // The alert rules loaded, were evaluated without errors, and each parses
    // as a query. A replica serving the champion is not reported.
    let alert_names: BTreeSet<String> = std::fs::read_to_string(repo().join("prometheus/alerts.yml"))
        .unwrap()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:").map(|name| name.trim().to_owned()))
        .collect();
    let rules = loop {
        let body: Value = prometheus
            .http
            .get(format!("{}/api/v1/rules", prometheus.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rules: Vec<Value> = body["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        if rules.iter().all(|r| r["health"] != "unknown") {
            break rules;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the rules were never evaluated: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let loaded: BTreeSet<String> = rules.iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(loaded, alert_names);
    for rule in &rules {
        assert_eq!(
            rule["health"], "ok",
            "rule {} failed to evaluate: {}",
            rule["name"], rule["lastError"]
        );
        let expr = rule["query"].as_str().unwrap();
        let (status, body) = prometheus.query(expr).await;
        assert_ne!(body["errorType"], "bad_data", "alert {}: {expr}\n{body}", rule["name"]);
        assert_eq!(status, 200, "alert {}: {expr}\n{body}", rule["name"]);
    }
    let off_champion = rules
        .iter()
        .find(|r| r["name"] == "RetrainReplicaServesOtherThanChampion")
        .unwrap();
    let off_champion = off_champion["query"].as_str().unwrap();
    eventually(SETTLE_SECS, "no replica off the champion", || async {
        prometheus.result(off_champion).await.is_empty()
    })
    .await;

    // The model variable, evaluated as Grafana does (the label's values on
    // the series of its metric), lists the registry's models; the queries
    // below run with them all selected.
    let registry: Vec<String> = sqlx::query_scalar("SELECT name FROM models ORDER BY name")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(registry, ["wine-quality"]);
    for (file, dashboard) in dashboards() {
        let (metric, label) = label_values(model_variable(&dashboard));
        let values: Value = prometheus
            .http
            .get(format!("{}/api/v1/label/{label}/values", prometheus.url))
            .query(&[("match[]", metric.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(values["data"], json!(registry), "{file}: the model variable\n{values}");
    }
    let models = registry;

    // The metrics that carry a model label: a dashboard query that reads one
    // filters it by the model variable in every selector.
    let labelled: BTreeSet<String> = prometheus
        .result("count by (__name__) ({__name__=~\"retrain_.+\", model!=\"\"})")
        .await
        .iter()
        .map(|s| s["metric"]["__name__"].as_str().unwrap().to_owned())
        .collect();
    for metric in [
        "retrain_predictions_total",
        "retrain_champion_version",
        "retrain_served_model_info",
    ] {
        assert!(labelled.contains(metric), "{metric} has no model label: {labelled:?}");
    }

    // Every dashboard PromQL query parses and returns data.
    let queries = queries();
    for query in queries.iter().filter(|q| q.is(PROMETHEUS)) {
        let raw = query.target["expr"].as_str().unwrap();
        for metric in &labelled {
            for (at, _) in raw.match_indices(metric.as_str()) {
                let after = &raw[at + metric.len()..];
                let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
                if raw[..at].ends_with(word) || after.starts_with(word) {
                    continue;
                }
                let selector = after.strip_prefix('{').and_then(|s| s.split_once('}')).map(|s| s.0);
                assert!(
                    selector.is_some_and(|s| s.contains("model=~\"$model\"")),
                    "{}: {metric} not filtered by the model variable: {raw}",
                    query.place
                );
            }
        }
        let expr = promql(query, &models);
        let (status, body) = prometheus.query(&expr).await;
        assert_eq!(status, 200, "{}: {expr}\n{body}", query.place);
        prometheus.wait_for(SETTLE_SECS, &expr).await;
    }

    // Every dashboard SQL query runs against this database (a skipped and a
    // rejected run, three versions, two promotions), finds rows, and returns
    // the columns its panel reads.
    for query in queries.iter().filter(|q| q.is(POSTGRES)) {
        let sql = sql(query, &models);
        let rows = sqlx::query(&sql)
            .fetch_all(&app.pool)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", query.place));
        assert!(!rows.is_empty(), "{}: no rows\n{sql}", query.place);
        let columns: BTreeSet<String> = rows[0].columns().iter().map(|c| c.name().to_owned()).collect();
        let missing: Vec<_> = columns_used(query)
            .into_iter()
            .filter(|c| !columns.contains(c))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: no column {missing:?} among {columns:?}\n{sql}",
            query.place
        );
    }

    drop(prometheus);
    app.stop().await;
    eprintln!("observability test took {:.1} s", started.elapsed().as_secs_f64());
}

/// The value of the unlabelled gauge `name` in a `/metrics` text.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn the_step_wait_gauge_says_how_long_a_runnable_step_has_waited_for_a_worker(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // An API replica alone: nothing takes the run's first step.
    let app = spawn(&connect, "api", &[]).await;
    let waited = || async {
        gauge(
            &app.get("/metrics").await.text().await.unwrap(),
            "retrain_step_wait_seconds",
        )
    };
    assert_eq!(waited().await, Some(0.0), "no run, no wait");
    let run: Value = app
        .admin_post("/runs", json!({"reason": "nobody takes it"}))
        .await
        .json()
        .await
        .unwrap();
    let id: uuid::Uuid = run["id"].as_str().unwrap().parse().unwrap();
    // As if it had been queued 90 s ago with every worker busy.
    sqlx::query("UPDATE steps SET next_attempt_at = next_attempt_at - interval '90 seconds' WHERE run_id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    eventually(15, "the gauge shows the 90 s wait", || async {
        waited().await.is_some_and(|s| (90.0..200.0).contains(&s))
    })
    .await;
    // Cancelled, the run waits for nobody.
    assert_eq!(
        app.admin_post(&format!("/runs/{id}/cancel"), json!({})).await.status(),
        200
    );
    eventually(15, "the gauge is back to 0", || async { waited().await == Some(0.0) }).await;
    app.stop().await;
}
