//! collect: snapshot the feedback watermark; too little new feedback since
//! the last run that passed collect ends the run `skipped`, unless the
//! model has data its champion was not trained on (a first version is due,
//! a data set was imported since, or an operator released a quarantine
//! rule since, which lets the rows it covered train).
//!
//! The watermark is commit-order safe: collect reads max(id) holding the
//! `retrain.collect` advisory lock exclusively, and every statement that
//! inserts feedback holds it shared from before it draws ids until it
//! commits (a trigger, migrations/0006). So no id at or below a watermark
//! can still commit later, and each row is counted in exactly one window.

use super::outputs::{self, CollectOutput};
use super::{PipelineEnv, run_model};
use crate::store::feedback;
use async_trait::async_trait;
use retrain_engine::{EarlyFinish, Step, StepContext, StepError, StepOutcome};

/// The collect step.
#[derive(Debug, Clone)]
pub struct Collect(pub PipelineEnv);

#[derive(sqlx::FromRow)]
struct Collection {
    previous_watermark: i64,
    watermark: i64,
    new_rows: i64,
    threshold: i64,
    passed: bool,
}

#[async_trait]
impl Step for Collect {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let mut tx = self.0.pool.begin().await?;
        let model = run_model(&mut tx, &ctx).await?;
        // Serialize with other collects so two runs never read the same
        // "previous", and wait out feedback inserts still in flight.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('retrain.collect'))")
            .execute(&mut *tx)
            .await?;
        let existing: Option<Collection> = sqlx::query_as(
            "SELECT previous_watermark, watermark, new_rows, threshold, passed FROM collections WHERE run_id = $1",
        )
        .bind(ctx.run_id)
        .fetch_optional(&mut *tx)
        .await?;
        let collection = match existing {
            Some(done) => done,
            None => {
                let previous = feedback::last_watermark(&mut tx, model.id).await?;
                let watermark = feedback::high_watermark(&mut tx).await?.max(previous);
                let new_rows = feedback::count_between(&mut tx, model.id, previous, watermark).await?;
                let threshold = model.threshold_or(self.0.config.threshold);
                let collection = Collection {
                    previous_watermark: previous,
                    watermark,
                    new_rows,
                    threshold,
                    passed: new_rows >= threshold || has_new_data(&mut tx, model.id).await?,
                };
                sqlx::query(
                    "INSERT INTO collections (run_id, previous_watermark, watermark, new_rows, threshold, passed, model_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(ctx.run_id)
                .bind(collection.previous_watermark)
                .bind(collection.watermark)
                .bind(collection.new_rows)
                .bind(collection.threshold)
                .bind(collection.passed)
                .bind(model.id)
                .execute(&mut *tx)
                .await?;
                collection
            }
        };
        tx.commit().await?;
        let output = outputs::write(&CollectOutput {
            previous_watermark: collection.previous_watermark,
            watermark: collection.watermark,
            new_rows: collection.new_rows,
            threshold: collection.threshold,
        });
        if collection.passed {
            return Ok(StepOutcome::Continue(output));
        }
        Ok(StepOutcome::Finish {
            how: EarlyFinish::Skipped,
            reason: format!(
                "{} new feedback rows since watermark {}; the threshold is {}",
                collection.new_rows, collection.previous_watermark, collection.threshold
            ),
            output,
        })
    }
}

/// Whether the model has data its champion was not trained on: it has no
/// champion (its first version is due), a data set was imported since, or
/// a quarantine rule was released after the champion's training set was
/// made (the released rows may train now). Such a run goes ahead whatever
/// the feedback.
async fn has_new_data(conn: &mut sqlx::PgConnection, model_id: i32) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "WITH trained AS (
            SELECT ts.dataset_id, ts.created_at FROM champion c
            JOIN versions v ON v.id = c.version_id
            JOIN training_sets ts ON ts.id = v.training_set_id
            WHERE c.model_id = $1
         )
         SELECT (SELECT max(id) FROM datasets WHERE model_id = $1) IS DISTINCT FROM (SELECT dataset_id FROM trained)
             OR EXISTS (SELECT 1 FROM quarantine_releases r
                        WHERE r.model_id = $1 AND r.released_at > (SELECT created_at FROM trained))",
    )
    .bind(model_id)
    .fetch_one(conn)
    .await
}
