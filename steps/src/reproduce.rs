//! Reproduce a stored version (issue 12): rebuild its training set from the
//! record merge left, refit the learner and settings the version was
//! trained with (the selection's winner, so no second cross-validation),
//! and compare the artifact bytes with the stored ones. A match proves the
//! version is what its lineage says; a mismatch names the first differing
//! byte and both hashes.

use crate::error::StepsError;
use crate::ml::{Learner, sha256_hex};
use crate::store::versions::{self, VersionRecord};
use crate::trainset::{self, Keep};
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

/// The outcome of a reproduction.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reproduction {
    pub version: i32,
    /// The learner refitted, with its settings.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub learner: Learner,
    /// The training set rebuilt and refitted on.
    pub training_set_id: i64,
    pub rows: usize,
    /// Whether the refitted artifact is byte for byte the stored one.
    pub matches: bool,
    pub stored_sha256: String,
    pub reproduced_sha256: String,
    /// The offset of the first byte that differs (the shorter length when
    /// one artifact is a prefix of the other); none on a match.
    pub first_difference: Option<usize>,
    pub stored_bytes: usize,
    pub reproduced_bytes: usize,
}

/// The offset of the first byte where `a` and `b` differ, if they do.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(offset) => Some(offset),
        None => (a.len() != b.len()).then_some(a.len().min(b.len())),
    }
}

/// The learner a version was trained with: its kind names it (every
/// concrete learner's name is its artifact kind) and its hyperparams are
/// the settings.
///
/// # Errors
/// `Inconsistent` if the pair names no learner.
pub fn learner_of(record: &VersionRecord) -> Result<Learner, StepsError> {
    serde_json::from_value(json!({"name": record.kind, "settings": record.hyperparams})).map_err(|e| {
        StepsError::Inconsistent(format!(
            "version {} records no learner it could be refitted with: {e}",
            record.version
        ))
    })
}

/// Refits `record` from its stored training set and compares the bytes.
///
/// # Errors
/// `Inconsistent` if the training set no longer rebuilds to its recorded
/// hash or the version names no learner; `Model`; `Database`.
pub async fn reproduce(
    conn: &mut PgConnection,
    record: &VersionRecord,
    cancel: CancellationToken,
) -> Result<Reproduction, StepsError> {
    let learner = learner_of(record)?;
    let set = trainset::rebuild_recorded(conn, record.training_set_id, Keep::Training).await?;
    let stored = versions::artifact(conn, record.id).await?;
    let rows = set.table.len();
    let refit = learner.clone();
    let reproduced = tokio::task::spawn_blocking(move || {
        refit
            .fit_until(set.table.all(), &|| cancel.is_cancelled())
            .map(|classifier| classifier.to_bytes())
    })
    .await
    .map_err(|e| StepsError::Inconsistent(format!("reproduction task failed: {e}")))??;
    Ok(Reproduction {
        version: record.version,
        learner,
        training_set_id: record.training_set_id,
        rows,
        matches: stored == reproduced,
        stored_sha256: sha256_hex(&stored),
        reproduced_sha256: sha256_hex(&reproduced),
        first_difference: first_difference(&stored, &reproduced),
        stored_bytes: stored.len(),
        reproduced_bytes: reproduced.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::winequality::{self, Split};
    use crate::ml::{ForestParams, Table, TreeParams};

    #[test]
    fn the_first_differing_byte_is_found() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"abc", b"abcd"), Some(3));
        assert_eq!(first_difference(b"", b"x"), Some(0));
    }

    #[test]
    fn a_forest_refitted_with_another_seed_is_reported_as_a_mismatch() {
        let base = Table::from_examples(&winequality::part(Split::Base)).unwrap();
        let params = ForestParams {
            trees: 4,
            ..ForestParams::default()
        };
        let stored = Learner::RandomForest(params.clone())
            .fit_until(base.all(), &|| false)
            .unwrap()
            .to_bytes();
        let same = Learner::RandomForest(params.clone())
            .fit_until(base.all(), &|| false)
            .unwrap()
            .to_bytes();
        assert_eq!(first_difference(&stored, &same), None);
        let reseeded = ForestParams { seed: 99, ..params };
        let other = Learner::RandomForest(reseeded)
            .fit_until(base.all(), &|| false)
            .unwrap()
            .to_bytes();
        let offset = first_difference(&stored, &other).expect("another seed, other trees");
        assert!(offset > 0 && offset < stored.len().min(other.len()));
    }

    #[test]
    fn a_version_names_its_learner_by_kind_and_hyperparams() {
        let record = |kind: &str, hyperparams| VersionRecord {
            id: 1,
            model_id: 1,
            version: 3,
            kind: kind.into(),
            sha256: String::new(),
            hyperparams,
            training_set_id: 1,
            run_id: None,
            training_ms: 0,
            training_metrics: json!({}),
            selection: None,
            created_at: chrono::Utc::now(),
        };
        let tree = serde_json::to_value(TreeParams::default()).unwrap();
        assert_eq!(
            learner_of(&record("decision_tree", tree)).unwrap(),
            Learner::DecisionTree(TreeParams::default())
        );
        assert!(matches!(
            learner_of(&record("no_such_learner", json!({}))),
            Err(StepsError::Inconsistent(_))
        ));
    }
}
