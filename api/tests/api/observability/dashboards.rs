//! The dashboards' queries as Grafana would send them: found in
//! dashboards/*.json (panels and annotations), with Grafana's variables
//! (the interval ones, and the `model` template variable as Grafana formats a
//! multi-value selection for each data source) and SQL macros expanded, and
//! the result columns each panel reads by name; and the data sources the
//! provisioning file declares.

use super::repo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A query of a dashboard: where it is, the panel (or annotation) it feeds
/// and its target.
#[derive(Debug)]
pub struct Query {
    pub place: String,
    pub annotation: bool,
    pub panel: Value,
    pub target: Value,
}

impl Query {
    pub fn datasource(&self) -> &Value {
        if self.target["datasource"].is_object() {
            &self.target["datasource"]
        } else {
            &self.panel["datasource"]
        }
    }

    pub fn is(&self, kind: &str) -> bool {
        self.datasource()["type"] == kind
    }
}

pub const PROMETHEUS: &str = "prometheus";
pub const POSTGRES: &str = "grafana-postgresql-datasource";

pub fn dashboards() -> Vec<(String, Value)> {
    let mut found: Vec<_> = std::fs::read_dir(repo().join("dashboards"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<_> = found.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["retraining.json", "serving.json"]);
    found
}

/// Every panel of a dashboard, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        all.push(panel.clone());
        if let Some(nested) = panel["panels"].as_array() {
            all.extend(nested.iter().cloned());
        }
    }
    all
}

pub fn queries() -> Vec<Query> {
    let mut all = Vec::new();
    for (file, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                all.push(Query {
                    place: format!("{file}: panel {:?} target {}", panel["title"], target["refId"]),
                    annotation: false,
                    panel: panel.clone(),
                    target: target.clone(),
                });
            }
        }
        for annotation in dashboard["annotations"]["list"].as_array().into_iter().flatten() {
            all.push(Query {
                place: format!("{file}: annotation {:?}", annotation["name"]),
                annotation: true,
                panel: annotation.clone(),
                target: annotation["target"].clone(),
            });
        }
    }
    all
}

/// The dashboard's `model` template variable: one variable, the same in
/// every dashboard, that panels of both data sources filter by.
pub fn model_variable(dashboard: &Value) -> &Value {
    let variables = dashboard["templating"]["list"].as_array().expect("a templating list");
    let found: Vec<_> = variables.iter().filter(|v| v["name"] == "model").collect();
    assert_eq!(found.len(), 1, "one `model` variable: {variables:?}");
    found[0]
}

/// The (metric, label) of a `label_values(metric, label)` variable query.
pub fn label_values(variable: &Value) -> (String, String) {
    let definition = variable["definition"].as_str().expect("a variable definition");
    let inner = definition
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a label_values(metric, label) query: {definition}"));
    let (metric, label) = inner.split_once(',').unwrap();
    (metric.trim().to_owned(), label.trim().to_owned())
}

/// `$model` in PromQL as Grafana's Prometheus data source writes a
/// multi-value (or All) selection: each name regex-escaped, several as
/// `(a|b)`. The panels use it as `model=~"$model"`.
fn promql_models(models: &[String]) -> String {
    let escaped: Vec<String> = models
        .iter()
        .map(|m| {
            m.chars().fold(String::new(), |mut out, c| {
                if "$^*{}[]'+?.()|".contains(c) {
                    out.push_str("\\\\");
                }
                out.push(c);
                out
            })
        })
        .collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", escaped.join("|")),
    }
}

/// `$model` in SQL as Grafana's SQL data sources write a multi-value (or
/// All) selection: each name quoted, comma-separated. The panels use it as
/// `model IN ($model)`.
fn sql_models(models: &[String]) -> String {
    assert!(!models.is_empty(), "the model variable has no values");
    models
        .iter()
        .map(|m| format!("'{}'", m.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// A dashboard's PromQL as Prometheus gets it from Grafana with `models`
/// selected: the interval variables become 1m, which a test lasting seconds
/// can fill (a rate over 1m needs two 1 s scrapes).
pub fn promql(query: &Query, models: &[String]) -> String {
    let expr = query.target["expr"].as_str().unwrap();
    let expr = ["$__rate_interval", "$__interval", "$__range"]
        .iter()
        .fold(expr.to_owned(), |expr, variable| expr.replace(variable, "1m"));
    let expr = expr.replace("$model", &promql_models(models));
    assert!(
        !expr.contains('$'),
        "{}: a variable the test does not know: {expr}",
        query.place
    );
    expr
}

/// A dashboard's SQL as Grafana's PostgreSQL data source expands it with
/// `models` selected, over the last six hours (and a minute ahead, for the
/// clock's sake).
pub fn sql(query: &Query, models: &[String]) -> String {
    let raw = query.target["rawSql"].as_str().unwrap();
    let interval = query.panel["interval"].as_str().unwrap_or("1m");
    let raw = raw
        .replace("$__interval", interval)
        .replace("$model", &sql_models(models));
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(6)).to_rfc3339();
    let to = (now + chrono::Duration::minutes(1)).to_rfc3339();
    let mut out = String::new();
    let mut rest = raw.as_str();
    while let Some(at) = rest.find("$__") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let mut tail = &after[name_len..];
        let mut args = Vec::new();
        if tail.starts_with('(') {
            let close = tail
                .find(')')
                .unwrap_or_else(|| panic!("{}: unclosed macro", query.place));
            args = tail[1..close]
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .collect();
            tail = &tail[close + 1..];
        }
        out.push_str(&match (name, args.as_slice()) {
            ("timeFilter", [column]) => format!("{column} BETWEEN '{from}' AND '{to}'"),
            ("timeFrom", []) => format!("'{from}'"),
            ("timeTo", []) => format!("'{to}'"),
            ("timeGroup", [column, step]) => {
                let s = seconds(step);
                format!("floor(extract(epoch from {column})/{s})*{s}")
            }
            ("timeGroupAlias", [column, step]) => {
                let s = seconds(step);
                format!("floor(extract(epoch from {column})/{s})*{s} AS \"time\"")
            }
            _ => panic!("{}: a macro the test does not expand: $__{name}({args:?})", query.place),
        });
        rest = tail;
    }
    out.push_str(rest);
    assert!(!out.contains('$'), "{}: an unexpanded variable: {out}", query.place);
    out
}

fn seconds(duration: &str) -> u64 {
    let duration = duration.trim_matches('\'');
    let (number, unit) = duration.split_at(duration.len() - 1);
    let number: u64 = number.parse().unwrap_or_else(|_| panic!("not a duration: {duration}"));
    number
        * match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => panic!("not a duration: {duration}"),
        }
}

/// The result columns a panel (or annotation) reads by name.
pub fn columns_used(query: &Query) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    if query.target["format"] == "time_series" || query.annotation {
        used.insert("time".to_owned());
    }
    if query.annotation {
        used.insert("text".to_owned());
    }
    let panel = &query.panel;
    for matcher in panel["fieldConfig"]["overrides"].as_array().into_iter().flatten() {
        if matcher["matcher"]["id"] == "byName" {
            used.insert(matcher["matcher"]["options"].as_str().unwrap().to_owned());
        }
    }
    for transformation in panel["transformations"].as_array().into_iter().flatten() {
        for key in ["indexByName", "renameByName", "excludeByName"] {
            if let Some(names) = transformation["options"][key].as_object() {
                used.extend(names.keys().cloned());
            }
        }
    }
    if let Some(x) = panel["options"]["xField"].as_str() {
        used.insert(x.to_owned());
    }
    used
}

/// (uid, type) of each data source in the provisioning file. A line scan:
/// the file is ours and lists each source as `- name:` with `uid:` and
/// `type:` keys (no YAML parser among the test's dependencies).
pub fn provisioned_datasources() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("dashboards/provisioning/datasources/datasources.yml")).unwrap();
    let body = text.split_once("\ndatasources:").expect("a datasources list").1;
    let mut sources = BTreeMap::new();
    for item in body.split("\n  - ").skip(1) {
        let value = |key: &str| {
            item.lines()
                .map(|line| line.trim().trim_start_matches("- "))
                .find_map(|line| line.strip_prefix(key))
                .map(|v| v.trim().trim_matches('"').to_owned())
        };
        let uid = value("uid:").unwrap_or_else(|| panic!("a data source without uid: {item}"));
        let kind = value("type:").unwrap_or_else(|| panic!("a data source without type: {item}"));
        sources.insert(uid, kind);
    }
    sources
}
