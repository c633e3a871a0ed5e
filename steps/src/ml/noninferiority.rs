//! The paired non-inferiority test the gate decides by: a one-sided lower
//! confidence bound on accuracy(candidate) - accuracy(champion) over the
//! same rows, compared with a margin.
//!
//! Method: exact conditional. Only the discordant rows carry evidence about
//! the difference: of the `m = b + c` rows where exactly one model is right,
//! `b` (only the candidate right) is Binomial(m, pi) given `m`, and the
//! difference is `(m / n) (2 pi - 1)`. The Clopper-Pearson lower bound of
//! `pi` at level `1 - alpha`, put through that map, bounds the difference.
//! It is exact in `pi` (never anti-conservative there, unlike the Wald
//! interval which fails badly when `b` or `c` is small, as on a few dozen
//! golden rows), needs no large-sample argument, and is what the stored
//! McNemar counts already give. It treats the discordant share `m / n` as
//! known; on the golden sets here its own noise is small beside that of `pi`.

use serde::{Deserialize, Serialize};

/// The evidence for one non-inferiority decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NonInferiority {
    /// Rows compared.
    pub n: usize,
    /// Rows only the candidate got right.
    pub only_candidate_right: usize,
    /// Rows only the champion got right.
    pub only_champion_right: usize,
    /// Observed difference, candidate minus champion.
    pub difference: f64,
    /// The difference is at least this with confidence `1 - alpha`.
    pub lower_bound: f64,
    /// How much worse the candidate may be.
    pub margin: f64,
    /// Significance level of the bound.
    pub alpha: f64,
    /// `lower_bound >= -margin`.
    pub passed: bool,
}

impl NonInferiority {
    /// Tests paired correctness (the same rows, in the same order) for
    /// `candidate` being at most `margin` worse than `champion`.
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn test(champion: &[bool], candidate: &[bool], margin: f64, alpha: f64) -> Self {
        assert_eq!(champion.len(), candidate.len(), "a paired test needs the same rows");
        let b = champion.iter().zip(candidate).filter(|&(&h, &c)| c && !h).count();
        let c = champion.iter().zip(candidate).filter(|&(&h, &c)| h && !c).count();
        Self::from_counts(champion.len(), b, c, margin, alpha)
    }

    /// The test from the counts: `n` rows, `b` only the candidate right,
    /// `c` only the champion right.
    pub fn from_counts(n: usize, b: usize, c: usize, margin: f64, alpha: f64) -> Self {
        let (difference, lower_bound) = if n == 0 {
            (0.0, 0.0)
        } else {
            let share = (b + c) as f64 / n as f64;
            let lower_pi = clopper_pearson_lower(b, b + c, alpha);
            ((b as f64 - c as f64) / n as f64, share * (2.0 * lower_pi - 1.0))
        };
        // Rounding must not fail a candidate whose bound sits on the margin.
        let passed = lower_bound >= -margin - 1e-12;
        Self {
            n,
            only_candidate_right: b,
            only_champion_right: c,
            difference,
            lower_bound,
            margin,
            alpha,
            passed,
        }
    }

    /// The decision in words, in points (hundredths): "candidate at most
    /// 0.8 points worse with 95% confidence; margin 1 point: pass".
    pub fn words(&self) -> String {
        let worst = -self.lower_bound * 100.0;
        let bound = if worst > 0.0 {
            format!("at most {} worse", points(worst))
        } else {
            format!("at least {} better", points(-worst))
        };
        format!(
            "candidate {bound} with {}% confidence (observed {:+.1} on {} rows, {} vs {} discordant); margin {}: {}",
            trim((1.0 - self.alpha) * 100.0),
            self.difference * 100.0,
            self.n,
            self.only_candidate_right,
            self.only_champion_right,
            points(self.margin * 100.0),
            if self.passed { "pass" } else { "fail" }
        )
    }
}

fn points(value: f64) -> String {
    let value = trim(value);
    if value == "1" {
        "1 point".to_owned()
    } else {
        format!("{value} points")
    }
}

/// A number with at most one decimal, without a trailing `.0` (and no
/// sign on a zero: two identical models are "at least 0 points better").
fn trim(value: f64) -> String {
    let text = format!("{value:.1}");
    let text = if text == "-0.0" { "0.0".to_owned() } else { text };
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

/// One-sided Clopper-Pearson lower bound of a binomial proportion from `k`
/// successes in `m` trials: the `p` where `P(X >= k; m, p) = alpha`
/// (0 when `k = 0`; with no trials, 0). Found by bisection, since the tail
/// rises with `p`.
pub fn clopper_pearson_lower(k: usize, m: usize, alpha: f64) -> f64 {
    if k == 0 || m == 0 {
        return 0.0;
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if upper_tail(k, m, mid) < alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `P(X >= k)` for `X ~ Binomial(m, p)`, `0 < p < 1`, summed in logs term
/// by term so nothing overflows for any `m`.
fn upper_tail(k: usize, m: usize, p: f64) -> f64 {
    let (ln_p, ln_q) = (p.ln(), (-p).ln_1p());
    let m_f = m as f64;
    // ln C(m, k), then each next term from the one before.
    let mut ln_choose: f64 = (0..k).map(|i| ((m_f - i as f64) / (i as f64 + 1.0)).ln()).sum();
    let mut sum = 0.0;
    for j in k..=m {
        sum += (ln_choose + j as f64 * ln_p + (m - j) as f64 * ln_q).exp();
        ln_choose += ((m_f - j as f64) / (j as f64 + 1.0)).ln();
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clopper_pearson_matches_textbook_values() {
        // k = m: the bound solves p^m = alpha.
        assert!((clopper_pearson_lower(10, 10, 0.05) - 0.05_f64.powf(0.1)).abs() < 1e-9);
        // k = 1: 1 - (1 - p)^m = alpha.
        let one = 1.0 - 0.95_f64.powf(1.0 / 20.0);
        assert!((clopper_pearson_lower(1, 20, 0.05) - one).abs() < 1e-9);
        // R: binom.test(5, 10, alternative = "greater")$conf.int[1] = 0.2224411
        assert!((clopper_pearson_lower(5, 10, 0.05) - 0.222_441_1).abs() < 1e-6);
        // qbeta(0.05, 30, 71), checked with exact integer binomial sums.
        assert!((clopper_pearson_lower(30, 100, 0.05) - 0.224_923_2).abs() < 1e-6);
        assert_eq!(clopper_pearson_lower(0, 50, 0.05), 0.0);
    }

    #[test]
    fn the_bound_follows_the_discordant_rows() {
        // 200 rows, 10 only candidate right, 10 only champion right:
        // pi_L = qbeta(0.05, 10, 11) = 0.30195, so the bound is
        // 20/200 * (2 * 0.30195 - 1) = -0.0396.
        let even = NonInferiority::from_counts(200, 10, 10, 0.05, 0.05);
        assert_eq!(even.difference, 0.0);
        assert!((even.lower_bound - (-0.039_61)).abs() < 1e-4, "{even:?}");
        assert!(even.passed);
        assert!(!NonInferiority::from_counts(200, 10, 10, 0.03, 0.05).passed);
        // No disagreement at all: the two are the same on these rows.
        let same = NonInferiority::from_counts(200, 0, 0, 0.0, 0.05);
        assert_eq!((same.lower_bound, same.passed), (0.0, true));
        // A clear loss fails even a generous margin.
        assert!(!NonInferiority::from_counts(200, 2, 30, 0.05, 0.05).passed);
    }

    #[test]
    fn test_counts_paired_rows() {
        let champion = [true, true, false, false, true];
        let candidate = [true, false, true, true, true];
        let t = NonInferiority::test(&champion, &candidate, 0.0, 0.05);
        assert_eq!((t.n, t.only_candidate_right, t.only_champion_right), (5, 2, 1));
        assert!((t.difference - 0.2).abs() < 1e-12);
    }

    #[test]
    fn words_say_the_bound_the_margin_and_the_decision() {
        let t = NonInferiority {
            n: 300,
            only_candidate_right: 12,
            only_champion_right: 15,
            difference: -0.01,
            lower_bound: -0.008,
            margin: 0.01,
            alpha: 0.05,
            passed: true,
        };
        assert_eq!(
            t.words(),
            "candidate at most 0.8 points worse with 95% confidence (observed -1.0 on 300 rows, \
             12 vs 15 discordant); margin 1 point: pass"
        );
        let better = NonInferiority::from_counts(100, 30, 0, 0.02, 0.05);
        assert!(better.words().starts_with("candidate at least "), "{}", better.words());
        assert!(better.words().ends_with("margin 2 points: pass"));
        // Two models that agree on every row: no signed zero.
        let same = NonInferiority::from_counts(322, 0, 0, 0.03, 0.05);
        assert!(
            same.words()
                .starts_with("candidate at least 0 points better with 95% confidence (observed +0.0 on"),
            "{}",
            same.words()
        );
    }
}
