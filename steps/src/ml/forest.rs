//! Random forests (issue 12): bagged CART trees, each grown by [`super::cart`]
//! on a bootstrap sample with a fresh random subset of features at every
//! split, answered by averaging the trees' leaf class shares.
//!
//! Reproducible: the examples are put in one canonical order first (by
//! class, then features), tree `t` draws its rows and features from its own
//! stream of `(seed, t)`, and trees are stored by index, so the same
//! examples in any order, on any number of threads, give the same bytes.
//! Serving walks one contiguous node array for all trees (no pointers, no
//! per-leaf allocation) and a leaf table of class shares, laid out for
//! prediction by [`walk`].

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::cart::{self, FeatureSampler};
use super::model::{canonical_order, check_classes, check_input};
use super::rng::Rng;
use super::table::{Matrix, Rows};
use super::tree::{FlatTree, Node, TreeParams};
use super::{ModelError, Prediction, artifact};

mod walk;

/// The artifact format this build writes and reads.
const FORMAT: u32 = 1;

/// A node's `feature` when it is a leaf; its `left` then indexes the leaves.
const LEAF: u32 = u32::MAX;

/// Hyper-parameters of a random forest (scikit-learn's meanings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForestParams {
    /// Number of trees (>= 1).
    pub trees: usize,
    /// Features each split considers; `None`: the rounded square root of
    /// the feature count (scikit-learn's `max_features="sqrt"`).
    pub max_features: Option<usize>,
    /// Rows each side of a split must keep at least (>= 1).
    pub min_leaf: usize,
    /// A node at this depth becomes a leaf; `None`: no limit.
    pub max_depth: Option<usize>,
    /// Seeds the bootstrap samples and feature subsets.
    pub seed: u64,
}

impl Default for ForestParams {
    /// 100 fully grown trees over sqrt(features) per split: scikit-learn's
    /// `RandomForestClassifier()` defaults.
    fn default() -> Self {
        Self {
            trees: 100,
            max_features: None,
            min_leaf: 1,
            max_depth: None,
            seed: 12,
        }
    }
}

impl ForestParams {
    pub(super) fn check(&self) -> Result<(), ModelError> {
        if self.trees == 0 || self.min_leaf == 0 || self.max_features == Some(0) {
            return Err(ModelError::InvalidParams(
                "trees, min_leaf and max_features must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The features each split considers among `n_features`.
    fn per_split(&self, n_features: usize) -> usize {
        self.max_features
            .unwrap_or_else(|| (n_features as f64).sqrt().round() as usize)
            .clamp(1, n_features)
    }
}

/// One node of the flattened forest: a split (`feature < n_features`,
/// children at higher indices) or a leaf (`feature == LEAF`, `left` its
/// row in the leaf table).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct FlatNode {
    feature: u32,
    left: u32,
    right: u32,
    threshold: f64,
}

/// A trained random forest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    params: ForestParams,
    classes: Vec<String>,
    n_features: usize,
    /// The node index of each tree's root.
    roots: Vec<u32>,
    nodes: Vec<FlatNode>,
    /// Each leaf's class shares, `classes.len()` per leaf.
    leaves: Vec<f64>,
    /// The same trees laid out for prediction; not stored.
    #[serde(skip)]
    walk: walk::Walk,
}

impl Forest {
    /// Trains a forest, on two threads, asking `stop` between trees.
    ///
    /// Errors: as [`super::Model::train`], and [`ModelError::Stopped`].
    pub fn train_until(rows: Rows<'_>, params: &ForestParams, stop: &dyn Fn() -> bool) -> Result<Forest, ModelError> {
        params.check()?;
        let data = rows.matrix()?;
        let (classes, n_features) = (data.classes.clone(), data.width);
        let order = canonical_order(&data);
        let grow = |tree: usize| grow_tree(&data, &order, classes.len(), params, tree);
        let stopped = AtomicBool::new(false);
        let (even, odd) = std::thread::scope(|scope| {
            let odd = scope.spawn(|| {
                (1..params.trees)
                    .step_by(2)
                    .map_while(|t| (!stopped.load(Ordering::Relaxed)).then(|| grow(t)))
                    .collect::<Vec<_>>()
            });
            let even: Vec<_> = (0..params.trees)
                .step_by(2)
                .map_while(|t| {
                    let go = !stop();
                    stopped.fetch_or(!go, Ordering::Relaxed);
                    go.then(|| grow(t))
                })
                .collect();
            (even, odd.join().expect("a tree grower does not panic"))
        });
        if stopped.load(Ordering::Relaxed) {
            return Err(ModelError::Stopped);
        }
        let mut forest = Forest {
            params: params.clone(),
            classes,
            n_features,
            roots: Vec::with_capacity(params.trees),
            nodes: Vec::new(),
            leaves: Vec::new(),
            walk: walk::Walk::default(),
        };
        let (mut even, mut odd) = (even.into_iter(), odd.into_iter());
        for t in 0..params.trees {
            let tree = if t % 2 == 0 { even.next() } else { odd.next() };
            forest.append(&tree.expect("every tree was grown")?);
        }
        Ok(forest.laid_out())
    }

    /// Adds one tree's nodes after the others, its leaves to the table.
    fn append(&mut self, tree: &FlatTree) {
        let offset = self.nodes.len() as u32;
        self.roots.push(offset);
        for node in tree.nodes() {
            self.nodes.push(match node {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => FlatNode {
                    feature: *feature as u32,
                    left: offset + *left as u32,
                    right: offset + *right as u32,
                    threshold: *threshold,
                },
                Node::Leaf { counts, .. } => {
                    let leaf = (self.leaves.len() / self.classes.len()) as u32;
                    let total: u64 = counts.iter().sum();
                    self.leaves.extend(counts.iter().map(|&c| c as f64 / total as f64));
                    FlatNode {
                        feature: LEAF,
                        left: leaf,
                        right: 0,
                        threshold: 0.0,
                    }
                }
            });
        }
    }

    /// Predicts one input: the class with the highest mean share over the
    /// trees (ties to the lowest index), that share as the confidence.
    ///
    /// Errors: [`ModelError::FeatureCount`], [`ModelError::NonFinite`].
    pub fn predict(&self, features: &[f64]) -> Result<Prediction, ModelError> {
        check_input(features, self.n_features)?;
        let sums = self.walk.share_sums(features);
        let best = (0..sums.len()).fold(0, |best, c| if sums[c] > sums[best] { c } else { best });
        Ok(Prediction {
            label: self.classes[best].clone(),
            confidence: sums[best] / self.roots.len() as f64,
        })
    }

    /// Each class's mean share over the trees, in [`Forest::classes`] order.
    ///
    /// Errors: as [`Forest::predict`].
    pub fn probabilities(&self, features: &[f64]) -> Result<Vec<f64>, ModelError> {
        check_input(features, self.n_features)?;
        let trees = self.roots.len() as f64;
        Ok(self
            .walk
            .share_sums(features)
            .into_iter()
            .map(|sum| sum / trees)
            .collect())
    }

    /// The forest with its prediction layout built from the stored nodes,
    /// which are whole and checked.
    fn laid_out(mut self) -> Forest {
        self.walk = walk::Walk::new(&self.roots, &self.nodes, &self.leaves, self.classes.len());
        self
    }

    /// The classes, sorted.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The settings it was trained with.
    pub fn params(&self) -> &ForestParams {
        &self.params
    }

    /// The artifact bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        artifact::encode(FORMAT, self)
    }

    /// Decodes and checks an artifact written by [`Forest::to_bytes`].
    ///
    /// Errors: as [`artifact::decode`], and [`ModelError::Corrupt`] for
    /// parts that do not fit together.
    pub fn from_bytes(bytes: &[u8]) -> Result<Forest, ModelError> {
        let forest: Forest = artifact::decode(FORMAT, bytes)?;
        forest.check().map_err(ModelError::Corrupt)?;
        Ok(forest.laid_out())
    }

    /// What prediction relies on: every walk from a root moves to higher
    /// indices within the array and ends at a leaf in the table.
    fn check(&self) -> Result<(), String> {
        check_classes(&self.classes).map_err(|e| e.to_string())?;
        self.params.check().map_err(|e| e.to_string())?;
        let (len, n) = (self.nodes.len() as u32, self.classes.len());
        if self.roots.is_empty() || self.roots.iter().any(|&r| r >= len) || !self.leaves.len().is_multiple_of(n) {
            return Err("forest roots or leaf table out of shape".into());
        }
        let leaves = (self.leaves.len() / n) as u32;
        for (index, node) in self.nodes.iter().enumerate() {
            let index = index as u32;
            let ok = if node.feature == LEAF {
                node.left < leaves
            } else {
                (node.feature as usize) < self.n_features
                    && index < node.left
                    && node.left < len
                    && index < node.right
                    && node.right < len
            };
            if !ok {
                return Err(format!("forest node {index} points out of range"));
            }
        }
        Ok(())
    }
}

/// Grows tree `tree`: a bootstrap sample of the (canonically ordered)
/// table rows `order` and per-split features, both from the stream of
/// `(seed, tree)`. The sample is a list of row indices, not a copy.
fn grow_tree(
    data: &Matrix<'_>,
    order: &[u32],
    n_classes: usize,
    params: &ForestParams,
    tree: usize,
) -> Result<FlatTree, ModelError> {
    let mut rng = Rng::new(params.seed, tree as u64);
    let sample: Vec<u32> = (0..order.len()).map(|_| order[rng.below(order.len())]).collect();
    let tree_params = TreeParams {
        max_depth: params.max_depth,
        min_weight_split: 2.0 * params.min_leaf as f32,
        min_weight_leaf: params.min_leaf as f32,
        min_impurity_decrease: 1e-12,
    };
    let sampler = FeatureSampler {
        per_split: params.per_split(data.width),
        rng,
    };
    cart::train_sampled(data, &sample, n_classes, &tree_params, Some(sampler), &|| false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::Example;
    use crate::ml::table::Table;
    use crate::ml::winequality::{self, Split};

    fn accuracy(forest: &Forest, examples: &[Example]) -> f64 {
        let right = examples
            .iter()
            .filter(|e| forest.predict(e.input.features().unwrap()).unwrap().label == e.label)
            .count();
        right as f64 / examples.len() as f64
    }

    #[test]
    fn a_forest_beats_the_single_tree_on_wine_and_is_byte_reproducible() {
        let base = winequality::part(Split::Base);
        let params = ForestParams {
            trees: 40,
            ..ForestParams::default()
        };
        let forest = Forest::train_until(Table::from_examples(&base).unwrap().all(), &params, &|| false).unwrap();
        let golden = winequality::part(Split::Golden);
        let score = accuracy(&forest, &golden);
        eprintln!("golden accuracy of a 40-tree forest: {score:.4}");
        assert!(score > 0.6, "golden accuracy {score}");
        let bytes = forest.to_bytes();
        let reversed: Vec<Example> = base.iter().rev().cloned().collect();
        assert_eq!(
            Forest::train_until(Table::from_examples(&reversed).unwrap().all(), &params, &|| false)
                .unwrap()
                .to_bytes(),
            bytes
        );
        let decoded = Forest::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, forest);
        let other_seed = ForestParams { seed: 13, ..params };
        assert_ne!(
            Forest::train_until(Table::from_examples(&base).unwrap().all(), &other_seed, &|| false)
                .unwrap()
                .to_bytes(),
            bytes
        );
    }

    /// Each class's share summed over the trees by walking the stored
    /// nodes one tree after another, as the artifact defines them.
    fn stored_share_sums(forest: &Forest, features: &[f64]) -> Vec<f64> {
        let n = forest.classes.len();
        let mut sums = vec![0.0; n];
        for &root in &forest.roots {
            let mut node = &forest.nodes[root as usize];
            while node.feature != LEAF {
                let next = if features[node.feature as usize] < node.threshold {
                    node.left
                } else {
                    node.right
                };
                node = &forest.nodes[next as usize];
            }
            let shares = &forest.leaves[node.left as usize * n..][..n];
            sums.iter_mut().zip(shares).for_each(|(sum, share)| *sum += share);
        }
        sums
    }

    #[test]
    fn serving_answers_bit_for_bit_as_the_stored_trees_walked_one_by_one() {
        let base = winequality::part(Split::Base);
        let golden = winequality::part(Split::Golden);
        // 61 trees: the last block is partial; depth 6 leaves impure leaves.
        for max_depth in [None, Some(6)] {
            let params = ForestParams {
                trees: 61,
                max_depth,
                ..ForestParams::default()
            };
            let trained = Forest::train_until(Table::from_examples(&base).unwrap().all(), &params, &|| false).unwrap();
            let loaded = Forest::from_bytes(&trained.to_bytes()).unwrap();
            for example in base.iter().chain(&golden) {
                let features = example.input.features().unwrap();
                let expected: Vec<f64> = stored_share_sums(&trained, features).iter().map(|s| s / 61.0).collect();
                assert_eq!(trained.probabilities(features).unwrap(), expected);
                assert_eq!(loaded.probabilities(features).unwrap(), expected);
            }
        }
    }

    #[test]
    fn damaged_forests_and_bad_settings_are_refused() {
        let examples = [Example::tabular(vec![1.0], "a"), Example::tabular(vec![2.0], "b")];
        let params = ForestParams {
            trees: 3,
            ..ForestParams::default()
        };
        let forest = Forest::train_until(Table::from_examples(&examples).unwrap().all(), &params, &|| false).unwrap();
        let mut bad = forest.clone();
        bad.nodes[0].left = 0;
        bad.nodes[0].feature = 0;
        assert!(matches!(
            Forest::from_bytes(&bad.to_bytes()),
            Err(ModelError::Corrupt(_))
        ));
        let bytes = forest.to_bytes();
        assert!(Forest::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let zero = ForestParams { trees: 0, ..params };
        assert!(matches!(
            Forest::train_until(Table::from_examples(&examples).unwrap().all(), &zero, &|| false),
            Err(ModelError::InvalidParams(_))
        ));
        assert!(matches!(
            Forest::train_until(
                Table::from_examples(&examples).unwrap().all(),
                &ForestParams::default(),
                &|| true
            ),
            Err(ModelError::Stopped)
        ));
    }
}
