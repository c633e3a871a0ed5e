//! Fixtures over the pipeline's stored data, for tests and benches of the
//! crates that depend on retrain-steps: a database already bootstrapped
//! (by `bootstrap` or by the service) holds the default data split and a
//! first model.

use retrain_steps::fit::{FitRequest, fit_and_store};
use retrain_steps::ml::{Example, Learner, Split, TreeParams};
use retrain_steps::pipeline::FIRST_MODEL;
use retrain_steps::store::{datasets, models};
use retrain_steps::trainset;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// The wine model's newest data set.
async fn wine_dataset(conn: &mut sqlx::PgConnection) -> datasets::Dataset {
    let wine = models::by_name(conn, FIRST_MODEL)
        .await
        .expect("the database is bootstrapped");
    datasets::current(conn, wine.id)
        .await
        .expect("the data set is readable")
        .expect("the database is bootstrapped")
}

/// The rows of one split of the wine model's data set.
///
/// # Panics
/// If the database is not bootstrapped or cannot be read.
pub async fn split_rows(pool: &PgPool, split: Split) -> Vec<Example> {
    let mut conn = pool.acquire().await.expect("a connection");
    let dataset = wine_dataset(&mut conn).await;
    datasets::examples(&mut conn, dataset.id, split)
        .await
        .expect("the split is readable")
}

/// `rows` of `base` whose labels 5 and 6 are swapped: a label-flipping
/// attack on the two majority classes, which the gate must reject.
pub fn label_flipped(base: Vec<Example>, rows: usize) -> Vec<Example> {
    base.into_iter()
        .filter(|e| e.label == "5" || e.label == "6")
        .take(rows)
        .map(|e| Example {
            label: if e.label == "5" { "6" } else { "5" }.to_owned(),
            ..e
        })
        .collect()
}

/// Trains a tree of at most `max_depth` on the base split and stores it,
/// without promoting it; returns its version. A second model to promote,
/// roll back to, or swap in.
///
/// # Panics
/// If the database is not bootstrapped or the model cannot be stored.
pub async fn another_model(pool: &PgPool, max_depth: usize) -> i32 {
    let mut tx = pool.begin().await.expect("a transaction");
    let dataset = wine_dataset(&mut tx).await;
    let set = trainset::assemble(&mut tx, &dataset, 0, 0.0)
        .await
        .expect("a training set");
    let id = trainset::record(&mut tx, None, &set.lineage)
        .await
        .expect("the training set is recorded");
    let learner = Learner::DecisionTree(TreeParams {
        max_depth: Some(max_depth),
        ..TreeParams::default()
    });
    let request = FitRequest {
        model_id: dataset.model_id,
        learner: &learner,
        incumbent: None,
        training_set_id: id,
        run_id: None,
    };
    let model = fit_and_store(&mut tx, set, request, CancellationToken::new())
        .await
        .expect("the model is stored");
    tx.commit().await.expect("commit");
    model.version
}

/// The labelled texts of a CSV with the columns `label` and `text`, as
/// `bench/text_reviews.py` writes the Rotten Tomatoes splits.
///
/// # Panics
/// An unreadable file or row: a bench's data is wrong.
pub fn text_csv(path: &std::path::Path) -> Vec<Example> {
    use retrain_steps::data::{Format, ImportSpec, InputColumns, read_rows};
    let spec = ImportSpec::new(
        Format::Csv,
        InputColumns::Text {
            column: "text".to_owned(),
        },
    );
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read_rows(file, &spec)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|row| {
            let row = row.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Example {
                input: row.input,
                label: row.label,
            }
        })
        .collect()
}
