//! A model's data sets and their stored split (base, golden and, for the
//! demo's wine data, the traffic pool). Re-importing makes a new version;
//! runs train on the newest.

use crate::ml::{Example, Input, Split};
use futures_util::TryStreamExt;
use sqlx::{PgConnection, QueryBuilder};

/// A stored data set version.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Dataset {
    pub id: i32,
    pub model_id: i32,
    /// Where the rows came from (a file name, or the built-in wine data).
    pub name: String,
    /// Numbered per model from 1.
    pub version: i32,
    pub n_features: i32,
    pub feature_names: Vec<String>,
    /// The class names found in the rows, sorted.
    pub labels: Vec<String>,
}

/// The name under which the built-in wine data set is stored.
pub const DEFAULT_DATASET: &str = "winequality-red";

const COLUMNS: &str = "id, model_id, name, version, n_features, feature_names, labels";

/// The newest data set of a model, if it has one.
pub async fn current(conn: &mut PgConnection, model_id: i32) -> Result<Option<Dataset>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM datasets WHERE model_id = $1 ORDER BY version DESC LIMIT 1");
    sqlx::query_as(&sql).bind(model_id).fetch_optional(conn).await
}

/// A data set by id.
pub async fn by_id(conn: &mut PgConnection, id: i32) -> Result<Dataset, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM datasets WHERE id = $1");
    sqlx::query_as(&sql).bind(id).fetch_one(conn).await
}

/// A data set version to store, before its rows.
#[derive(Debug, Clone)]
pub struct NewDataset<'a> {
    pub model_id: i32,
    pub name: &'a str,
    pub feature_names: &'a [String],
    /// The class names of the rows, sorted and unique.
    pub labels: &'a [String],
    /// How the split was made, for reproducibility.
    pub split_spec: &'a serde_json::Value,
}

/// Stores a new data set version (numbered after the model's newest);
/// its rows follow through [`insert_examples`] in the same transaction.
pub async fn insert(conn: &mut PgConnection, new: NewDataset<'_>) -> Result<Dataset, sqlx::Error> {
    let sql = format!(
        "INSERT INTO datasets (model_id, name, version, n_features, feature_names, labels, split_spec)
         SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6 FROM datasets WHERE model_id = $1
         RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql)
        .bind(new.model_id)
        .bind(new.name)
        .bind(new.feature_names.len() as i32)
        .bind(new.feature_names)
        .bind(new.labels)
        .bind(new.split_spec)
        .fetch_one(conn)
        .await
}

/// Stores rows of a data set, in chunks that stay well under PostgreSQL's
/// 65,535 parameters a statement (5 a row).
pub async fn insert_examples(
    conn: &mut PgConnection,
    dataset_id: i32,
    rows: &[(Split, Example)],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(10_000) {
        let mut insert = QueryBuilder::new("INSERT INTO examples (dataset_id, split, features, text, label) ");
        insert.push_values(chunk, |mut row, (split, example)| {
            row.push_bind(dataset_id)
                .push_bind(split.as_str())
                .push_unseparated("::example_split")
                .push_bind(example.input.features())
                .push_bind(example.input.text())
                .push_bind(&example.label);
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The rows of one split, in stored order, streamed from the server.
pub async fn examples(conn: &mut PgConnection, dataset_id: i32, split: Split) -> Result<Vec<Example>, sqlx::Error> {
    let mut rows = sqlx::query_as::<_, (Option<Vec<f64>>, Option<String>, String)>(
        "SELECT features, text, label FROM examples WHERE dataset_id = $1 AND split = $2::example_split ORDER BY id",
    )
    .bind(dataset_id)
    .bind(split.as_str())
    .fetch(conn);
    let mut out = Vec::new();
    while let Some((features, text, label)) = rows.try_next().await? {
        out.push(Example {
            input: stored_input(features, text)?,
            label,
        });
    }
    Ok(out)
}

/// A stored row's input: the table's CHECK keeps exactly one of the two.
pub fn stored_input(features: Option<Vec<f64>>, text: Option<String>) -> Result<Input, sqlx::Error> {
    match (features, text) {
        (Some(features), None) => Ok(Input::Tabular(features)),
        (None, Some(text)) => Ok(Input::Text(text)),
        _ => Err(sqlx::Error::Protocol("a stored row has both or neither input".into())),
    }
}
