//! The recent set: a fixed share of a model's feedback, chosen by a hash of
//! the normalized input, held out of training so the gate can check the
//! candidate on what users send now (the golden set guards against
//! forgetting, the recent set against no longer fitting the traffic).
//!
//! The choice depends on the input alone, never on arrival order: the same
//! input is held out (or not) whenever and however often it is sent, so a
//! relabelled input never trains one run and tests the next.

use crate::data::InputHash;

/// Whether feedback with this input hash is held out at `share` (0 to 1):
/// the hash's first 8 bytes, read as a fraction of 2^64, fall below it.
pub fn held_out(hash: &InputHash, share: f64) -> bool {
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash.0[..8]);
    // u64 -> f64 rounds, but only within 2^-53 of the fraction.
    (u64::from_be_bytes(head) as f64 / 18_446_744_073_709_551_616.0) < share
}

/// The recent set the gate evaluates: the latest `max_rows` rows (of
/// anything that stands for them, such as their ids).
pub fn capped<T>(mut recent: Vec<T>, max_rows: usize) -> Vec<T> {
    recent.drain(..recent.len().saturating_sub(max_rows));
    recent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::input_hash;
    use crate::ml::Example;
    use std::collections::HashSet;

    fn hash(i: u32) -> InputHash {
        input_hash(&Example::tabular(vec![f64::from(i), 0.25], "5").input)
    }

    #[test]
    fn the_share_is_honoured_on_many_inputs() {
        for share in [0.05, 0.10, 0.30] {
            let held = (0..100_000).filter(|&i| held_out(&hash(i), share)).count();
            let observed = held as f64 / 100_000.0;
            // Binomial sd at 100,000 rows is under 0.0015; 4 sd of room.
            assert!((observed - share).abs() < 0.006, "share {share}: held out {observed}");
        }
        assert!(!(0..1000).any(|i| held_out(&hash(i), 0.0)));
        assert!((0..1000).all(|i| held_out(&hash(i), 1.0)));
    }

    #[test]
    fn the_choice_depends_on_the_input_not_on_arrival_order() {
        let inputs: Vec<u32> = (0..2000).collect();
        let forward: HashSet<u32> = inputs.iter().copied().filter(|&i| held_out(&hash(i), 0.1)).collect();
        let backward: HashSet<u32> = inputs
            .iter()
            .rev()
            .copied()
            .filter(|&i| held_out(&hash(i), 0.1))
            .collect();
        assert_eq!(forward, backward);
        // Text is chosen by its normalized form: spelling it differently
        // does not move it in or out.
        let a = input_hash(&Example::text("Great  MOVIE", "pos").input);
        let b = input_hash(&Example::text("great movie", "neg").input);
        assert_eq!(held_out(&a, 0.5), held_out(&b, 0.5));
    }

    #[test]
    fn the_cap_keeps_the_newest_rows() {
        let rows: Vec<Example> = ["6", "7", "5"]
            .iter()
            .map(|l| Example::tabular(vec![0.25], *l))
            .collect();
        let newest = capped(rows, 2);
        let labels: Vec<&str> = newest.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["7", "5"]);
    }
}
