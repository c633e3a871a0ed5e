//! The forest as serving walks it, built in memory from the stored nodes
//! whenever a forest is trained or loaded (the artifact format is not
//! touched): 16-byte steps laid out depth-first, so a left child sits
//! right after its parent and only the right one is indexed; identical
//! leaf share rows (every pure leaf of a class) kept once; and the trees
//! of one request walked a block at a time, so the loads of several walks
//! are in flight together instead of each waiting for the one before.
//!
//! The answers are bit for bit those of walking the stored nodes one tree
//! after another: the same leaves, their shares added in tree order.

use std::collections::HashMap;

use super::{FlatNode, LEAF};

/// Trees walked side by side.
const BLOCK: usize = 8;

/// A split (`feature < n_features`: go on at the next step when
/// `features[feature] < threshold`, else at `next`) or a leaf
/// (`feature == LEAF`, `next` its row in the share table).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Step {
    threshold: f64,
    feature: u32,
    next: u32,
}

/// A checked forest laid out for prediction.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Walk {
    n_classes: usize,
    roots: Vec<u32>,
    steps: Vec<Step>,
    /// Distinct leaf share rows, `n_classes` each.
    shares: Vec<f64>,
}

impl Walk {
    /// Lays out the stored forest; its nodes passed the forest's check
    /// (children after parents, in range), so every walk ends at a leaf.
    pub(super) fn new(roots: &[u32], nodes: &[FlatNode], leaves: &[f64], n_classes: usize) -> Walk {
        let mut walk = Walk {
            n_classes,
            roots: Vec::with_capacity(roots.len()),
            steps: Vec::with_capacity(nodes.len()),
            shares: Vec::new(),
        };
        let mut rows: HashMap<Vec<u64>, u32> = HashMap::new();
        // Stored nodes still to lay out, each with the step whose `next`
        // must point at it (a right child) if any.
        let mut pending: Vec<(u32, Option<usize>)> = Vec::new();
        for &root in roots {
            walk.roots.push(walk.steps.len() as u32);
            pending.push((root, None));
            while let Some((index, parent)) = pending.pop() {
                let at = walk.steps.len();
                if let Some(parent) = parent {
                    walk.steps[parent].next = at as u32;
                }
                let node = &nodes[index as usize];
                if node.feature == LEAF {
                    let row = &leaves[node.left as usize * n_classes..][..n_classes];
                    let next = *rows
                        .entry(row.iter().map(|s| s.to_bits()).collect())
                        .or_insert_with(|| {
                            walk.shares.extend_from_slice(row);
                            (walk.shares.len() / n_classes - 1) as u32
                        });
                    walk.steps.push(Step {
                        threshold: 0.0,
                        feature: LEAF,
                        next,
                    });
                } else {
                    walk.steps.push(Step {
                        threshold: node.threshold,
                        feature: node.feature,
                        next: 0,
                    });
                    pending.push((node.right, Some(at)));
                    pending.push((node.left, None));
                }
            }
        }
        walk
    }

    /// Each class's share in the leaf `features` reach, summed over the
    /// trees in order; `features` already checked against the forest.
    pub(super) fn share_sums(&self, features: &[f64]) -> Vec<f64> {
        let n = self.n_classes;
        let mut sums = vec![0.0; n];
        for block in self.roots.chunks(BLOCK) {
            let mut at = [0u32; BLOCK];
            let at = &mut at[..block.len()];
            at.copy_from_slice(block);
            let mut moving = true;
            while moving {
                moving = false;
                for index in at.iter_mut() {
                    let step = &self.steps[*index as usize];
                    if step.feature != LEAF {
                        *index = if features[step.feature as usize] < step.threshold {
                            *index + 1
                        } else {
                            step.next
                        };
                        moving = true;
                    }
                }
            }
            for &index in at.iter() {
                let row = &self.shares[self.steps[index as usize].next as usize * n..][..n];
                sums.iter_mut().zip(row).for_each(|(sum, share)| *sum += share);
            }
        }
        sums
    }
}
