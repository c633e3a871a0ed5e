//! Base data sets and their stored split (base, golden, pool).

use crate::ml::{Example, Split};
use sqlx::{PgConnection, QueryBuilder};

/// A stored base data set version.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Dataset {
    pub id: i32,
    pub name: String,
    pub version: i32,
    pub n_features: i32,
    pub feature_names: Vec<String>,
    pub labels: Vec<i32>,
}

/// The name under which the default data set is stored.
pub const DEFAULT_DATASET: &str = "winequality-red";

/// The newest version of the named data set.
pub async fn current(conn: &mut PgConnection, name: &str) -> Result<Option<Dataset>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, version, n_features, feature_names, labels FROM datasets
         WHERE name = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await
}

/// A data set by id.
pub async fn by_id(conn: &mut PgConnection, id: i32) -> Result<Dataset, sqlx::Error> {
    sqlx::query_as("SELECT id, name, version, n_features, feature_names, labels FROM datasets WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Stores a new data set version with its split rows.
pub async fn insert(
    conn: &mut PgConnection,
    name: &str,
    feature_names: &[&str],
    split_spec: &serde_json::Value,
    rows: &[(Split, Example)],
) -> Result<Dataset, sqlx::Error> {
    let mut labels: Vec<i32> = rows.iter().map(|(_, e)| e.label).collect();
    labels.sort_unstable();
    labels.dedup();
    let dataset: Dataset = sqlx::query_as(
        "INSERT INTO datasets (name, version, n_features, feature_names, labels, split_spec)
         SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5 FROM datasets WHERE name = $1
         RETURNING id, name, version, n_features, feature_names, labels",
    )
    .bind(name)
    .bind(feature_names.len() as i32)
    .bind(feature_names)
    .bind(&labels)
    .bind(split_spec)
    .fetch_one(&mut *conn)
    .await?;
    // 4 binds a row; stay well under Postgres' 65,535 parameters a statement.
    for chunk in rows.chunks(10_000) {
        let mut insert = QueryBuilder::new("INSERT INTO examples (dataset_id, split, features, label) ");
        insert.push_values(chunk, |mut row, (split, example)| {
            row.push_bind(dataset.id)
                .push_bind(split.as_str())
                .push_unseparated("::example_split")
                .push_bind(&example.features)
                .push_bind(example.label);
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(dataset)
}

/// The rows of one split, in stored order.
pub async fn examples(conn: &mut PgConnection, dataset_id: i32, split: Split) -> Result<Vec<Example>, sqlx::Error> {
    let rows: Vec<(Vec<f64>, i32)> = sqlx::query_as(
        "SELECT features, label FROM examples WHERE dataset_id = $1 AND split = $2::example_split ORDER BY id",
    )
    .bind(dataset_id)
    .bind(split.as_str())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(features, label)| Example { features, label })
        .collect())
}
