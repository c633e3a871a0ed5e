//! The default data set: linfa-datasets' red wine quality data, split once
//! and for good into base training data, the golden set and the demo pool.
//!
//! The split uses no RNG: rows are ordered within their class by the SHA-256
//! of [`SEED`] and their features, so it never changes with an RNG's
//! implementation (rand documents `StdRng` as not portable across versions).
//! Identical rows hash alike and are kept together, so the golden set holds
//! no exact copy of a base row (the data has 240 duplicate rows).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Example;

/// Number of physicochemical features per wine.
pub const FEATURES: usize = 11;

/// Feature names, in the column order of `linfa_datasets::winequality()`.
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
];

/// The split's seed: mixed into every row hash, so changing it redraws the
/// whole split. Record it with the data set version.
pub const SEED: &str = "retrain/winequality/split/v1";

/// Which part of the data set a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Original training data (about 60% of each class).
    Base,
    /// Held-out validation set for the gate (about 20% of each class).
    Golden,
    /// Rows the demo sends as traffic and feedback (about 20% of each class).
    Pool,
}

impl Split {
    /// The stable lowercase name, as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Base => "base",
            Split::Golden => "golden",
            Split::Pool => "pool",
        }
    }
}

/// Loads the 1,599 red wines and tags each with its split, in the data set's
/// row order. Labels are the quality scores (3 to 8).
///
/// Deterministic: every call returns the same vector.
pub fn split() -> Vec<(Split, Example)> {
    let dataset = linfa_datasets::winequality();
    let examples: Vec<Example> = dataset
        .records()
        .rows()
        .into_iter()
        .zip(dataset.targets())
        .map(|(row, &quality)| Example::tabular(row.to_vec(), quality.to_string()))
        .collect();
    assign(&examples).into_iter().zip(examples).collect()
}

/// Assigns each example a split, stratified by label: per class the first
/// rows in hash order go to golden, the next to pool, the rest to base.
/// A run of identical rows is never cut, so a part may exceed its share by
/// the size of one such run.
fn assign(examples: &[Example]) -> Vec<Split> {
    let mut by_class: BTreeMap<&str, Vec<([u8; 32], usize)>> = BTreeMap::new();
    for (index, example) in examples.iter().enumerate() {
        let features = example.input.features().expect("the wine data is tabular");
        by_class
            .entry(&example.label)
            .or_default()
            .push((row_hash(features), index));
    }

    let mut splits = vec![Split::Base; examples.len()];
    for rows in by_class.values_mut() {
        rows.sort_unstable();
        let share = held_out_share(rows.len());
        let mut previous: Option<[u8; 32]> = None;
        let mut part = Split::Base;
        for (taken, &(hash, index)) in rows.iter().enumerate() {
            if previous != Some(hash) {
                part = if taken < share {
                    Split::Golden
                } else if taken < 2 * share {
                    Split::Pool
                } else {
                    Split::Base
                };
            }
            splits[index] = part;
            previous = Some(hash);
        }
    }
    splits
}

/// Rows of a class that go to golden (and as many to pool): a fifth,
/// rounded, and at least one once the class has three rows.
fn held_out_share(class_rows: usize) -> usize {
    if class_rows < 3 {
        0
    } else {
        ((class_rows + 2) / 5).max(1)
    }
}

fn row_hash(features: &[f64]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(SEED.as_bytes());
    for value in features {
        hasher.update(value.to_bits().to_le_bytes());
    }
    hasher.finalize().into()
}

/// The rows of one part of [`split`], in the data set's order.
pub fn part(which: Split) -> Vec<Example> {
    split()
        .into_iter()
        .filter(|(s, _)| *s == which)
        .map(|(_, e)| e)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::*;

    fn counts(rows: &[(Split, Example)]) -> BTreeMap<(String, Split), usize> {
        let mut counts = BTreeMap::new();
        for (split, example) in rows {
            *counts.entry((example.label.clone(), *split)).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn all_rows_are_split_with_eleven_features() {
        let rows = split();
        assert_eq!(rows.len(), 1599);
        assert!(
            rows.iter()
                .all(|(_, e)| e.input.features().map(<[f64]>::len) == Some(FEATURES))
        );
        let labels: HashSet<&str> = rows.iter().map(|(_, e)| e.label.as_str()).collect();
        assert_eq!(labels, HashSet::from(["3", "4", "5", "6", "7", "8"]));
    }

    #[test]
    fn split_is_deterministic() {
        assert_eq!(split(), split());
    }

    #[test]
    fn every_class_is_stratified_and_present_in_base_and_golden() {
        let rows = split();
        let counts = counts(&rows);
        for label in (3..=8).map(|q: i32| q.to_string()) {
            let get = |split| counts.get(&(label.clone(), split)).copied().unwrap_or(0);
            let (base, golden, pool) = (get(Split::Base), get(Split::Golden), get(Split::Pool));
            let total = (base + golden + pool) as f64;
            assert!(base > 0 && golden > 0, "class {label}: {base}/{golden}/{pool}");
            // Keeping duplicate runs together moves a row or two at most.
            for (part, share) in [(base, 0.6), (golden, 0.2), (pool, 0.2)] {
                let expected = share * total;
                assert!(
                    (part as f64 - expected).abs() <= 0.03 * total + 2.0,
                    "class {label}: {part} rows where {expected:.1} expected"
                );
            }
        }
        let total = |split| {
            counts
                .iter()
                .filter(|((_, s), _)| *s == split)
                .map(|(_, n)| n)
                .sum::<usize>()
        };
        assert_eq!(total(Split::Base) + total(Split::Golden) + total(Split::Pool), 1599);
    }

    #[test]
    fn identical_rows_share_a_split() {
        let mut seen: HashMap<(Vec<u64>, String), Split> = HashMap::new();
        for (split, example) in split() {
            let features = example.input.features().expect("wine rows are tabular");
            let key = (features.iter().map(|v| v.to_bits()).collect(), example.label);
            assert_eq!(*seen.entry(key).or_insert(split), split);
        }
    }

    #[test]
    fn small_classes_still_get_a_golden_row() {
        assert_eq!(held_out_share(1), 0);
        assert_eq!(held_out_share(2), 0);
        assert_eq!(held_out_share(3), 1);
        assert_eq!(held_out_share(10), 2);
        assert_eq!(held_out_share(681), 136);
    }

    #[test]
    fn split_names_are_lowercase() {
        assert_eq!(Split::Golden.as_str(), "golden");
        assert_eq!(serde_json::to_string(&Split::Pool).unwrap(), "\"pool\"");
    }
}
