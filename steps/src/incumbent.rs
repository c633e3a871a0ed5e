//! The learner a run measures its data against: the model's own learner
//! when it names one, and under `auto` the concrete learner its champion
//! was fitted with. Screening fits it out-of-fold (one fit per fold, not a
//! model selection per fold) and selection keeps it unless another
//! candidate is better by more than the folds' noise, so versions do not
//! switch learner, and disagree with each other, on a coin flip.

use crate::error::StepsError;
use crate::ml::Learner;
use crate::reproduce::learner_of;
use crate::store::models::ModelSpec;
use crate::store::{promotions, versions};
use sqlx::PgConnection;

/// The champion's learner under `auto` (`None` without a champion, or for
/// a model that names its learner).
///
/// # Errors
/// `Database`; `Inconsistent` if the champion names no learner.
pub async fn champion_learner(conn: &mut PgConnection, model: &ModelSpec) -> Result<Option<Learner>, StepsError> {
    if !matches!(model.learner.0, Learner::Auto(_)) {
        return Ok(None);
    }
    let Some((_, version)) = promotions::champion(conn, model.id).await? else {
        return Ok(None);
    };
    let record = versions::by_version(conn, model.id, version).await?;
    Ok(Some(learner_of(&record)?))
}

/// The learner screening fits: the champion's under `auto`, else the
/// model's own.
///
/// # Errors
/// As [`champion_learner`].
pub async fn screening_learner(conn: &mut PgConnection, model: &ModelSpec) -> Result<Learner, StepsError> {
    Ok(champion_learner(conn, model)
        .await?
        .unwrap_or_else(|| model.learner.0.clone()))
}
