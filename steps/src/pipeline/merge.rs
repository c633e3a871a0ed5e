//! merge: build the training set (base data + feedback up to the watermark,
//! latest label wins, quarantined rows left out; streamed, never held:
//! [`crate::trainset`]), screen its feedback
//! ([`crate::screening`]: conflicting labels, confident out-of-fold
//! disagreement, sources quarantined by the pipeline itself) and record it:
//! its lineage, the quarantine rules it was made under, what screening left
//! out and its content hash, enough for train to rebuild exactly this set.

use super::outputs::{self, CollectOutput, MergeOutput};
use super::{PipelineEnv, run_model};
use crate::error::StepsError;
use crate::incumbent;
use crate::screening::{self, Exclusions};
use crate::store::datasets::{self, Dataset};
use crate::store::feedback::{self, NewQuarantine};
use crate::store::models::ModelSpec;
use crate::trainset::{self, BaseData, Keep, LeftOut, Scan};
use async_trait::async_trait;
use retrain_engine::{Step, StepContext, StepError, StepOutcome};
use sqlx::PgConnection;
use std::time::Instant;

/// The actor of the quarantine rules screening adds.
pub const SCREENING_ACTOR: &str = "screening";

/// The merge step.
#[derive(Debug, Clone)]
pub struct Merge(pub PipelineEnv);

#[async_trait]
impl Step for Merge {
    async fn run(&self, ctx: StepContext) -> Result<StepOutcome, StepError> {
        let collected: CollectOutput = outputs::read(&ctx, "collect")?;
        let mut conn = self.0.pool.acquire().await?;
        // A repeat attempt reports the set recorded first and assembles
        // nothing (a quarantine in between would make a new one differ).
        let id = match trainset::of_run(&mut conn, ctx.run_id).await? {
            Some(id) => id,
            None => {
                let model = run_model(&mut conn, &ctx).await?;
                let dataset = datasets::current(&mut conn, model.id)
                    .await?
                    .ok_or_else(|| StepError::fatal(format!("model {:?} has no data set: import one", model.name)))?;
                screen_and_record(&self.0, &mut conn, &ctx, &model, &dataset, collected.watermark).await?
            }
        };
        let lineage = trainset::recorded_lineage(&mut conn, id).await?;
        let dataset_id: i32 = lineage["dataset_id"]
            .as_i64()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| StepError::fatal(format!("training set {id} has no usable dataset_id")))?;
        let recorded = datasets::by_id(&mut conn, dataset_id).await?;
        Ok(StepOutcome::Continue(outputs::write(&MergeOutput {
            training_set_id: id,
            dataset_id,
            dataset: format!("{}@{}", recorded.name, recorded.version),
            lineage,
        })))
    }
}

/// Builds the run's training set, screened, and records it; its id. The
/// sources screening finds are quarantined (actor [`SCREENING_ACTOR`], with
/// the evidence and the run) and left out with the rows screening drops.
/// The feedback is streamed into compact rows and screened outside any
/// transaction (screening fits models for as long as the data needs,
/// longer than a session may idle in one); the rules screening adds and
/// the set they shaped commit together. Merge never holds the set's rows:
/// they are read back by id to be judged and hashed, a chunk at a time.
async fn screen_and_record(
    env: &PipelineEnv,
    conn: &mut PgConnection,
    ctx: &StepContext,
    model: &ModelSpec,
    dataset: &Dataset,
    watermark: i64,
) -> Result<i64, StepsError> {
    let recent_share = model.gate_or(&env.config.gate)?.recent_share;
    let settings = &env.config.screening;
    let started = Instant::now();
    let mut rules = feedback::quarantine_rules(conn, model.id).await?;
    let base = BaseData::read(conn, dataset).await?;
    let scan = Scan::read(conn, dataset, watermark, &rules, &base.golden).await?;
    let scan_ms = started.elapsed().as_millis();
    if !settings.enabled {
        let left_out = LeftOut {
            screened: &Exclusions::default(),
            recent_share,
        };
        let rows = scan.rows.len();
        let set = trainset::build(conn, dataset, &base, scan, (watermark, rules), left_out, Keep::Lineage).await?;
        tracing::info!(model = %model.name, rows, scan_ms, build_ms = started.elapsed().as_millis() - scan_ms, "merge: the set is built, unscreened");
        return Ok(trainset::record(conn, Some(ctx.run_id), &set.lineage).await?);
    }
    // Screening fits k models: off the async threads, like train's fit,
    // reading the judged rows back through a connection of its own.
    let learner = incumbent::screening_learner(conn, model).await?;
    let vouched = feedback::vouched(conn, model.id, watermark).await?;
    let (dataset_owned, settings_owned) = (dataset.clone(), settings.clone());
    let cancel = ctx.cancel.clone();
    let mut reader = env.pool.acquire().await?;
    let runtime = tokio::runtime::Handle::current();
    let (found, base, mut scan) = tokio::task::spawn_blocking(move || {
        let mut read = |ids: &[i64]| runtime.block_on(trainset::read_back(&mut reader, &dataset_owned, ids));
        let found = screening::screen(&base, &scan, &mut read, &vouched, &learner, &settings_owned, &|| {
            cancel.is_cancelled()
        });
        (found, base, scan)
    })
    .await
    .map_err(|e| StepsError::Inconsistent(format!("screening task failed: {e}")))?;
    let found = found?;
    let screen_ms = started.elapsed().as_millis() - scan_ms;
    let mut tx = env.pool.begin().await?;
    let mut quarantined = false;
    for (source, report) in found.report.to_quarantine() {
        let (rule, matched) = feedback::quarantine(
            &mut tx,
            &NewQuarantine {
                model_id: model.id,
                source: Some(source.to_owned()),
                received_from: None,
                received_until: None,
                reason: format!(
                    "screening: {}",
                    report.quarantined_because.as_deref().unwrap_or_default()
                ),
                actor: SCREENING_ACTOR.to_owned(),
                run_id: Some(ctx.run_id),
                evidence: Some(serde_json::json!({
                    "source": report,
                    "reference_share": found.report.reference_share,
                    "reference_label_probability": found.report.reference_label_probability,
                    "reference_rows": found.report.reference_rows,
                    "settings": found.report.settings,
                })),
            },
        )
        .await?;
        tracing::info!(model = %model.name, source, rule, matched, run_id = %ctx.run_id, "screening quarantined a source");
        rules.push(rule);
        quarantined = true;
    }
    if quarantined {
        // Read again under the new rules, as train's rebuild will read it.
        scan = Scan::read(&mut tx, dataset, watermark, &rules, &base.golden).await?;
    }
    let left_out = LeftOut {
        screened: &found.exclusions,
        recent_share,
    };
    let rows = scan.rows.len();
    let mut set = trainset::build(
        &mut tx,
        dataset,
        &base,
        scan,
        (watermark, rules),
        left_out,
        Keep::Lineage,
    )
    .await?;
    set.lineage.screening = Some(found.report);
    let id = trainset::record(&mut tx, Some(ctx.run_id), &set.lineage).await?;
    tx.commit().await?;
    let build_ms = started.elapsed().as_millis() - scan_ms - screen_ms;
    tracing::info!(model = %model.name, rows, scan_ms, screen_ms, build_ms, "merge: the set is screened and built");
    Ok(id)
}
