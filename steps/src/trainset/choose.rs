//! Which rows a training set keeps, decided on the scan's compact records
//! alone: feedback screening left out and the recent holdout go first,
//! then the latest row per input wins (feedback over the base data, newer
//! feedback over older). Inputs are grouped by sorting 16-byte keys (a hash
//! prefix and a position) rather than in a hash set of whole hashes: about
//! 20 bytes a row instead of 55 at ten million rows.

use super::LeftOut;
use super::scan::{FeedbackRow, Scan};
use crate::data::InputHash;
use crate::recent;
use std::collections::BTreeMap;

/// The rows chosen for a training set.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// Per base row, whether it stays.
    pub keep_base: Vec<bool>,
    /// Ids of the feedback rows that train, ascending.
    pub feedback: Vec<i64>,
    /// Ids of the feedback held out as the recent set, the latest row per
    /// input, ascending.
    pub recent: Vec<i64>,
    /// Every row left out, by reason (the scan's and these).
    pub dropped: BTreeMap<&'static str, usize>,
}

/// Chooses from `scan` and the base rows (`base_hashes`, one per row).
pub fn choose(scan: &Scan, base_hashes: &[InputHash], left_out: LeftOut<'_>) -> Chosen {
    let mut dropped = scan.dropped.clone();
    let mut usable: Vec<&FeedbackRow> = Vec::with_capacity(scan.rows.len());
    let mut held_out: Vec<&FeedbackRow> = Vec::new();
    for row in &scan.rows {
        if let Some(reason) = left_out.screened.reason(row.id) {
            *dropped.entry(reason).or_default() += 1;
        } else if recent::held_out(&row.hash, left_out.recent_share) {
            *dropped.entry("recent_holdout").or_default() += 1;
            held_out.push(row);
        } else {
            usable.push(row);
        }
    }
    let (keep_base, keep_feedback) = latest_rows(|i| &usable[i].hash, usable.len(), base_hashes);
    let base_rows = keep_base.iter().filter(|k| **k).count();
    if base_rows < keep_base.len() {
        *dropped.entry("base_overridden_by_feedback").or_default() += keep_base.len() - base_rows;
    }
    let feedback: Vec<i64> = usable
        .iter()
        .zip(&keep_feedback)
        .filter_map(|(row, keep)| keep.then_some(row.id))
        .collect();
    if feedback.len() < usable.len() {
        *dropped.entry("feedback_superseded").or_default() += usable.len() - feedback.len();
    }
    let (_, keep_recent) = latest_rows(|i| &held_out[i].hash, held_out.len(), &[]);
    let recent = held_out
        .iter()
        .zip(&keep_recent)
        .filter_map(|(row, keep)| keep.then_some(row.id))
        .collect();
    Chosen {
        keep_base,
        feedback,
        recent,
        dropped,
    }
}

/// Which rows stay, as (base, feedback) flags: those with no later
/// feedback row for the same input. The feedback is `n` rows, oldest
/// first, whose hashes `hash` gives by position.
pub(crate) fn latest_rows<'a>(
    hash: impl Fn(usize) -> &'a InputHash,
    n: usize,
    base_hashes: &[InputHash],
) -> (Vec<bool>, Vec<bool>) {
    let order = by_input(n, &hash);
    let mut keep_feedback = vec![false; n];
    for group in order.chunk_by(|&a, &b| hash(a as usize) == hash(b as usize)) {
        keep_feedback[*group.last().expect("a group has a row") as usize] = true;
    }
    let keep_base = base_hashes
        .iter()
        .map(|h| order.binary_search_by(|&p| hash(p as usize).cmp(h)).is_err())
        .collect();
    (keep_base, keep_feedback)
}

/// Positions `0..n` ordered by their input's hash, then position.
pub(crate) fn by_input<'a>(n: usize, hash: &impl Fn(usize) -> &'a InputHash) -> Vec<u32> {
    let n = u32::try_from(n).expect("fewer than 2^32 feedback rows");
    let head = |p: u32| u64::from_be_bytes(hash(p as usize).0[..8].try_into().expect("8 bytes"));
    let mut keyed: Vec<(u64, u32)> = (0..n).map(|p| (head(p), p)).collect();
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| hash(a.1 as usize).cmp(hash(b.1 as usize)))
            .then(a.1.cmp(&b.1))
    });
    keyed.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(byte: u8) -> InputHash {
        InputHash([byte; 32])
    }

    #[test]
    fn the_latest_row_of_each_input_stays_and_base_rows_of_those_inputs_go() {
        // Feedback inputs a b a c b: positions 2 (a), 3 (c) and 4 (b) are the
        // latest of theirs; base rows of a and d: a is overridden, d stays.
        let feedback = [h(1), h(2), h(1), h(3), h(2)];
        let (keep_base, keep_feedback) = latest_rows(|i| &feedback[i], feedback.len(), &[h(1), h(4)]);
        assert_eq!(keep_feedback, vec![false, false, true, true, true]);
        assert_eq!(keep_base, vec![false, true]);
    }

    #[test]
    fn hashes_that_share_their_first_eight_bytes_are_still_told_apart() {
        let mut a = h(7);
        let mut b = h(7);
        a.0[31] = 1;
        b.0[31] = 2;
        let feedback = [b, a, b];
        let (keep_base, keep_feedback) = latest_rows(|i| &feedback[i], feedback.len(), &[a, h(7)]);
        assert_eq!(keep_feedback, vec![false, true, true]);
        assert_eq!(keep_base, vec![false, true]);
    }
}
