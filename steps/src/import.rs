//! Importing a data set version for a model from a user's file, and
//! creating a model from its first file: read and split the rows
//! ([`crate::data`]) on a blocking thread, stream them in chunks into one
//! transaction, check the split at the end, and commit only then. Memory
//! stays flat in the file's size, and a refused file leaves nothing behind.

use crate::data::{Golden, ImportError, ImportSpec, InputColumns, Part, Row, SplitSummary, Splitter, read_rows};
use crate::error::StepsError;
use crate::ml::{Example, InputKind, Learner, Split};
use crate::store::datasets::{self, Dataset, NewDataset};
use crate::store::models::{self, ModelSpec, NewModel};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use std::io::Read;
use tokio::sync::mpsc;

/// Rows stored per statement (5 parameters each, under PostgreSQL's 65,535).
const CHUNK: usize = 10_000;

/// Why an import failed: the file (the user's to fix, fatal) or the
/// service (retry).
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// The file cannot be imported as it is.
    #[error("{0}")]
    File(#[from] ImportError),
    /// The model or the database refused.
    #[error(transparent)]
    Steps(#[from] StepsError),
}

impl From<sqlx::Error> for ImportFailure {
    fn from(err: sqlx::Error) -> Self {
        Self::Steps(StepsError::Database(err))
    }
}

/// A file to import, with how to read it and where its golden rows come
/// from: a share of its rows, or a second file of the same shape.
pub struct Upload {
    /// Where the rows came from, recorded with the data set (a file name).
    pub name: String,
    pub spec: ImportSpec,
    pub data: Box<dyn Read + Send>,
    pub golden: GoldenSource,
}

/// Where an upload's golden rows come from.
#[allow(missing_debug_implementations)]
pub enum GoldenSource {
    /// This share of the data file's rows, chosen by input hash.
    Share(crate::data::GoldenShare),
    /// Every row of this file (read as the data file is).
    File(Box<dyn Read + Send>),
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// What an import stored.
#[derive(Debug, Clone)]
pub struct Imported {
    pub model: ModelSpec,
    pub dataset: Dataset,
    /// Rows per class and part.
    pub summary: SplitSummary,
}

/// A model to create from its first file.
#[derive(Debug, Clone)]
pub struct NewModelFromFile<'a> {
    pub name: &'a str,
    pub kind: InputKind,
    /// The learner; the kind's default if `None`.
    pub learner: Option<Learner>,
    pub threshold: Option<i32>,
    /// A 6-field cron expression (seconds first, UTC) for the model's own runs.
    pub cron: Option<&'a str>,
}

/// Registers a model and imports its first data set, in one transaction.
///
/// # Errors
/// `File` for a file that cannot be imported; `Steps(ModelExists)`,
/// `Steps(Inconsistent)` for a learner of the other input kind; `Database`.
pub async fn create_model(
    pool: &PgPool,
    new: NewModelFromFile<'_>,
    upload: Upload,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<Imported, ImportFailure> {
    if let Some(problem) = models::name_problem(new.name) {
        return Err(StepsError::Inconsistent(problem.to_owned()).into());
    }
    if let Some(problem) = new.cron.and_then(crate::triggers::cron_problem) {
        return Err(StepsError::Inconsistent(problem).into());
    }
    let learner = new.learner.unwrap_or_else(|| Learner::default_for(new.kind));
    if !learner.reads(new.kind) {
        return Err(StepsError::Inconsistent(format!(
            "the learner {} does not read {} input",
            learner.name(),
            new.kind
        ))
        .into());
    }
    let text_column = match &upload.spec.input {
        InputColumns::Text { column } => Some(column.clone()),
        InputColumns::Tabular { .. } => None,
    };
    if (new.kind == InputKind::Text) != text_column.is_some() {
        return Err(StepsError::Inconsistent(format!("a {} model needs {} columns", new.kind, new.kind)).into());
    }
    let mut tx = pool.begin().await?;
    let model = models::create(
        &mut tx,
        NewModel {
            name: new.name,
            kind: new.kind,
            feature_names: &[],
            text_column: text_column.as_deref(),
            classes: &[],
            learner: &learner,
            threshold: new.threshold,
            cron: new.cron,
        },
    )
    .await?;
    let imported = import_in(&mut tx, model, upload, progress).await?;
    tx.commit().await?;
    Ok(imported)
}

/// Imports a new data set version for an existing model, in one
/// transaction; the model's next run trains on it.
///
/// # Errors
/// `File` for a file that cannot be imported (columns other than the
/// model's among them); `Database`.
pub async fn import_dataset(
    pool: &PgPool,
    model: ModelSpec,
    upload: Upload,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<Imported, ImportFailure> {
    let mut tx = pool.begin().await?;
    // One import of a model at a time, so versions number in order.
    sqlx::query("SELECT 1 FROM models WHERE id = $1 FOR UPDATE")
        .bind(model.id)
        .execute(&mut *tx)
        .await?;
    let imported = import_in(&mut tx, model, upload, progress).await?;
    tx.commit().await?;
    Ok(imported)
}

/// What the reading thread sends: rows to store, then the split's summary
/// (or the first error).
enum Batch {
    Rows(Vec<(Split, Example)>),
    Done(Result<(Vec<String>, SplitSummary), ImportError>),
}

async fn import_in(
    conn: &mut PgConnection,
    model: ModelSpec,
    upload: Upload,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<Imported, ImportFailure> {
    let spec = json!({
        "source": upload.name,
        "method": "by sha256 of each row's normalized input",
        "golden": match &upload.golden {
            GoldenSource::Share(share) => json!({"share": share.get()}),
            GoldenSource::File(_) => json!("file"),
        },
    });
    let dataset = datasets::insert(
        conn,
        NewDataset {
            model_id: model.id,
            name: &upload.name,
            feature_names: &model.feature_names,
            labels: &[],
            split_spec: &spec,
        },
    )
    .await?;
    let (sender, mut batches) = mpsc::channel::<Batch>(2);
    let known_classes = model.classes.clone();
    let reader = tokio::task::spawn_blocking(move || read_upload(upload, &known_classes, &sender, &progress));
    let mut outcome = None;
    while let Some(batch) = batches.recv().await {
        match batch {
            Batch::Rows(rows) => datasets::insert_examples(conn, dataset.id, &rows).await?,
            Batch::Done(done) => outcome = Some(done),
        }
    }
    reader
        .await
        .map_err(|e| StepsError::Inconsistent(format!("the import's reader failed: {e}")))?;
    let (feature_names, summary) =
        outcome.ok_or_else(|| StepsError::Inconsistent("the import's reader ended without a result".into()))??;
    if model.kind == InputKind::Tabular {
        check_columns(conn, &model, &feature_names).await?;
    }
    let classes: Vec<String> = summary.classes.keys().cloned().collect();
    let model = models::add_classes(conn, model.id, &classes).await?;
    let dataset: Dataset = sqlx::query_as(
        "UPDATE datasets SET labels = $2, feature_names = $3, n_features = cardinality($3::text[])
         WHERE id = $1
         RETURNING id, model_id, name, version, n_features, feature_names, labels",
    )
    .bind(dataset.id)
    .bind(&classes)
    .bind(&feature_names)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Imported {
        model,
        dataset,
        summary,
    })
}

/// A tabular model takes the first file's columns; later files must have
/// the same.
async fn check_columns(conn: &mut PgConnection, model: &ModelSpec, found: &[String]) -> Result<(), ImportFailure> {
    if model.feature_names.is_empty() {
        sqlx::query("UPDATE models SET feature_names = $2 WHERE id = $1")
            .bind(model.id)
            .bind(found)
            .execute(conn)
            .await?;
        return Ok(());
    }
    if model.feature_names != found {
        return Err(ImportError::OtherColumns {
            expected: model.feature_names.clone(),
            found: found.to_vec(),
        }
        .into());
    }
    Ok(())
}

/// Reads the data file (and the golden file, if any) on this blocking
/// thread, sending rows in chunks; ends with the file's feature columns and
/// the split's summary, or the first error.
fn read_upload(upload: Upload, known_classes: &[String], sender: &mpsc::Sender<Batch>, progress: &dyn Fn(u64)) {
    let result = (|| {
        let golden = match &upload.golden {
            GoldenSource::Share(share) => Golden::Share(*share),
            GoldenSource::File(_) => Golden::File,
        };
        let mut splitter = Splitter::new(golden);
        let rows = read_rows(upload.data, &upload.spec)?;
        let feature_names = rows.feature_names().to_vec();
        let mut seen = 0;
        send_rows(rows, sender, &mut seen, progress, |row| match splitter.assign(row).0 {
            Part::Base => Split::Base,
            Part::Golden => Split::Golden,
        })?;
        if let GoldenSource::File(file) = upload.golden {
            let rows = read_rows(file, &upload.spec)?;
            if rows.feature_names() != feature_names {
                return Err(ImportError::OtherColumns {
                    expected: feature_names,
                    found: rows.feature_names().to_vec(),
                });
            }
            send_rows(rows, sender, &mut seen, progress, |row| {
                splitter.assign_golden_file_row(row);
                Split::Golden
            })?;
        }
        Ok((feature_names, splitter.finish(known_classes)?))
    })();
    let _ = sender.blocking_send(Batch::Done(result));
}

fn send_rows(
    rows: impl Iterator<Item = Result<Row, ImportError>>,
    sender: &mpsc::Sender<Batch>,
    seen: &mut u64,
    progress: &dyn Fn(u64),
    mut part: impl FnMut(&Row) -> Split,
) -> Result<(), ImportError> {
    let mut chunk = Vec::with_capacity(CHUNK);
    for row in rows {
        let row = row?;
        let split = part(&row);
        chunk.push((
            split,
            Example {
                input: row.input,
                label: row.label,
            },
        ));
        *seen += 1;
        if chunk.len() == CHUNK {
            progress(*seen);
            if sender
                .blocking_send(Batch::Rows(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))))
                .is_err()
            {
                return Ok(());
            }
        }
    }
    if !chunk.is_empty() {
        progress(*seen);
        let _ = sender.blocking_send(Batch::Rows(chunk));
    }
    Ok(())
}
