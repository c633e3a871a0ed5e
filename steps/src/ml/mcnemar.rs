//! The paired comparison of champion and candidate on the same golden rows:
//! the exact McNemar test, which asks whether the rows where exactly one
//! model is right lean to one side more than chance would.

use serde::{Deserialize, Serialize};

/// Agreement table of two models on the same examples, with the exact
/// two-sided McNemar p-value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Examples compared.
    pub n: usize,
    /// Both models right.
    pub both_right: usize,
    /// Only the candidate right.
    pub only_candidate_right: usize,
    /// Only the champion right.
    pub only_champion_right: usize,
    /// Both models wrong.
    pub both_wrong: usize,
    /// Probability of discordant counts at least this lopsided if both
    /// models were equally good; 1 when they never disagree.
    pub p_value: f64,
}

/// Compares per-example correctness of champion and candidate (as returned
/// by [`evaluate`](super::evaluate) on the same examples, in the same order).
///
/// # Panics
/// If the slices differ in length: they must describe the same examples.
pub fn compare(champion_correct: &[bool], candidate_correct: &[bool]) -> PairedComparison {
    assert_eq!(
        champion_correct.len(),
        candidate_correct.len(),
        "paired comparison needs both models evaluated on the same examples"
    );
    let mut table = PairedComparison {
        n: champion_correct.len(),
        both_right: 0,
        only_candidate_right: 0,
        only_champion_right: 0,
        both_wrong: 0,
        p_value: 1.0,
    };
    for (&champion, &candidate) in champion_correct.iter().zip(candidate_correct) {
        match (champion, candidate) {
            (true, true) => table.both_right += 1,
            (false, true) => table.only_candidate_right += 1,
            (true, false) => table.only_champion_right += 1,
            (false, false) => table.both_wrong += 1,
        }
    }
    table.p_value = exact_p_value(table.only_candidate_right, table.only_champion_right);
    table
}

/// Two-sided exact McNemar p-value: `min(1, 2 P(X <= min(b, c)))` with
/// `X ~ Binomial(b + c, 1/2)`, and 1 when `b + c = 0`.
///
/// With `m = min(b, c) <= n / 2` the largest term of the tail is `C(n, m)`,
/// so the tail is `C(n, m) / 2^n` times a sum of ratios that fall from 1,
/// added from the largest down until they stop mattering. Only `ln C(n, m)`
/// needs logarithms, so nothing overflows or underflows for any `n`.
fn exact_p_value(b: usize, c: usize) -> f64 {
    let n = b + c;
    let m = b.min(c);
    // No disagreement, or a perfect tie: the tail holds at least half the mass.
    if n == 0 || 2 * m == n {
        return 1.0;
    }
    let n_f = n as f64;
    // ln C(n, m) = sum over i < m of ln((n - i) / (i + 1)).
    let ln_peak: f64 = (0..m).map(|i| ((n_f - i as f64) / (i as f64 + 1.0)).ln()).sum();
    // Sum of C(n, k) / C(n, m) for k = m, m - 1, ..., 0.
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in (1..=m).rev() {
        // C(n, k - 1) / C(n, k) = k / (n - k + 1).
        term *= k as f64 / (n_f - k as f64 + 1.0);
        sum += term;
        if term < sum * f64::EPSILON {
            break;
        }
    }
    let tail = (ln_peak - n_f * std::f64::consts::LN_2 + sum.ln()).exp();
    (2.0 * tail).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn known_p_values() {
        assert_eq!(exact_p_value(0, 5), 0.0625);
        assert!(close(exact_p_value(1, 9), 22.0 / 1024.0, 1e-12)); // 0.021484375
        assert!(close(exact_p_value(9, 1), 22.0 / 1024.0, 1e-12));
        // 2 * (1 + 12 + 66 + 220) / 4096 for b = 3, c = 9.
        assert!(close(exact_p_value(3, 9), 2.0 * 299.0 / 4096.0, 1e-12));
        assert_eq!(exact_p_value(0, 1), 1.0);
        assert_eq!(exact_p_value(0, 0), 1.0);
        assert_eq!(exact_p_value(7, 7), 1.0);
        // 2 * P(X <= 4) for n = 9 exceeds 1.
        assert_eq!(exact_p_value(4, 5), 1.0);
    }

    #[test]
    fn large_counts_stay_finite_and_ordered() {
        // Equal halves of a million are no evidence at all.
        assert_eq!(exact_p_value(500_000, 500_000), 1.0);
        let near = exact_p_value(499_500, 500_500);
        assert!(near > 0.3 && near < 0.4, "p = {near}"); // z = 1.0, p ~ 0.317
        let far = exact_p_value(490_000, 510_000);
        assert!(far > 0.0 && far < 1e-80, "p = {far}"); // z = 20
        assert_eq!(exact_p_value(0, 2000), 0.0, "2^-1999 underflows to zero");
    }

    #[test]
    fn compare_counts_the_four_cells() {
        let champion = [true, true, false, false, true, false];
        let candidate = [true, false, true, false, true, true];
        let table = compare(&champion, &candidate);
        assert_eq!(
            (
                table.n,
                table.both_right,
                table.only_candidate_right,
                table.only_champion_right,
                table.both_wrong
            ),
            (6, 2, 2, 1, 1)
        );
        assert_eq!(table.p_value, 1.0);
        let table = compare(&[false; 5], &[true; 5]);
        assert_eq!(table.p_value, 0.0625);
    }

    #[test]
    #[should_panic(expected = "same examples")]
    fn different_lengths_are_a_bug() {
        compare(&[true], &[]);
    }
}
