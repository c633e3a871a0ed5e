//! The per-source decision: are a source's labels explained by the data's
//! own noise? The reference is the base data (the model's own imported
//! rows) judged by the same out-of-fold models, so no threshold is tuned
//! to one data set. A source is quarantined on any of three rules:
//! - its flagged share exceeds the reference's by at least `min_excess`
//!   and a one-sided binomial test against the reference is significant;
//! - the mean probability the out-of-fold models give its labels, as a
//!   share of their top class's, is at least `min_gap` below what the base
//!   data's rows of the same classes get, and a one-sided t-test says so
//!   significantly ([`welch`]; this sees a flip between two
//!   classes the model confuses, where few single rows are confidently
//!   wrong but every flipped row loses probability);
//! - it makes up `max_training_share` of the training set.

use super::{ScreeningSettings, welch};
use serde::{Deserialize, Serialize};

/// The probabilities out-of-fold models give a group of rows' labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelProbability {
    pub rows: usize,
    pub mean: f64,
    /// Population variance of the rows' probabilities.
    pub variance: f64,
}

impl LabelProbability {
    /// Adds one value (Welford's update: no sums of squares to lose
    /// precision in, nothing kept per row).
    pub fn push(&mut self, value: f64) {
        let squares = self.variance * self.rows as f64;
        self.rows += 1;
        let delta = value - self.mean;
        self.mean += delta / self.rows as f64;
        self.variance = ((squares + delta * (value - self.mean)) / self.rows as f64).max(0.0);
    }
}

/// One source's screening figures and the decision taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// Its rows in the candidate training set.
    pub rows_sent: usize,
    /// Of those, the rows a confident out-of-fold prediction contradicts.
    pub rows_flagged: usize,
    pub flagged_share: f64,
    /// Its rows' share of the candidate training set.
    pub training_share: f64,
    /// P(at least `rows_flagged` flagged | the reference share), one-sided.
    pub p_value: f64,
    /// Its labels' out-of-fold probabilities against the base data's for
    /// the same classes (reports written before this test read zeros).
    #[serde(default)]
    pub label_probability: welch::Comparison,
    /// Why it was quarantined, in words; `None`: it was not.
    pub quarantined_because: Option<String>,
}

/// Judges one source with `rows_sent` rows, `rows_flagged` of them
/// flagged (against the base data's `reference_flagged` share), its
/// labels' out-of-fold `probability` compared with the base data's,
/// making up `training_share` of the set.
pub fn judge(
    (rows_sent, rows_flagged): (usize, usize),
    reference_flagged: f64,
    probability: &welch::Comparison,
    training_share: f64,
    settings: &ScreeningSettings,
) -> SourceReport {
    let flagged_share = if rows_sent == 0 {
        0.0
    } else {
        rows_flagged as f64 / rows_sent as f64
    };
    let p_value = binomial_upper_tail(rows_sent, rows_flagged, reference_flagged);
    let excess = flagged_share - reference_flagged;
    let gap = probability.expected - probability.mean;
    let judged = rows_sent >= settings.min_rows;
    let quarantined_because = if judged && excess >= settings.min_excess && p_value <= settings.significance {
        Some(format!(
            "{rows_flagged} of {rows_sent} rows ({flagged_share:.3}) contradicted by a confident out-of-fold model, \
             against {:.3} of the base data: {excess:.3} above it (at least {} needed), \
             binomial p = {p_value:.2e} (at most {} needed)",
            reference_flagged, settings.min_excess, settings.significance
        ))
    } else if judged && gap >= settings.min_gap && probability.p_value <= settings.significance {
        Some(format!(
            "its {} rows' labels get {:.3} of the top class's probability from out-of-fold models \
             on average, against {:.3} for base rows of the same classes: {gap:.3} lower \
             (at least {} needed), t = {:.2}, p = {:.2e} (at most {} needed)",
            probability.rows,
            probability.mean,
            probability.expected,
            settings.min_gap,
            probability.t,
            probability.p_value,
            settings.significance
        ))
    } else if training_share >= settings.max_training_share {
        Some(format!(
            "{training_share:.3} of the training set from one source (at most {} allowed)",
            settings.max_training_share
        ))
    } else {
        None
    };
    SourceReport {
        rows_sent,
        rows_flagged,
        flagged_share,
        training_share,
        p_value,
        label_probability: *probability,
        quarantined_because,
    }
}

/// P(X >= k) for X ~ Binomial(n, p), summed in log space from the k-th
/// term on until the terms no longer count.
pub fn binomial_upper_tail(n: usize, k: usize, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    let (nf, kf) = (n as f64, k as f64);
    // ln C(n, k) = sum over i in 1..=k of ln((n - k + i) / i).
    let ln_choose: f64 = (1..=k).map(|i| ((nf - kf + i as f64) / i as f64).ln()).sum();
    let mut ln_term = ln_choose + kf * p.ln() + (nf - kf) * (1.0 - p).ln();
    let ln_odds = (p / (1.0 - p)).ln();
    let mut total = 0.0;
    for i in k..=n {
        let term = ln_term.exp();
        total += term;
        if term < total * 1e-17 && (i as f64) > nf * p {
            break;
        }
        ln_term += ((nf - i as f64) / (i as f64 + 1.0)).ln() + ln_odds;
    }
    total.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.max(1e-300)
    }

    #[test]
    fn binomial_tails_worked_by_hand() {
        // n = 10, p = 1/2, X >= 8: (C(10,8) + C(10,9) + C(10,10)) / 2^10 = (45 + 10 + 1) / 1024.
        assert!(close(binomial_upper_tail(10, 8, 0.5), 56.0 / 1024.0));
        // n = 3, p = 0.2, X >= 2: 3 * 0.04 * 0.8 + 0.008 = 0.104.
        assert!(close(binomial_upper_tail(3, 2, 0.2), 0.104));
        assert_eq!(binomial_upper_tail(5, 0, 0.3), 1.0);
        assert_eq!(binomial_upper_tail(5, 1, 0.0), 0.0);
        // A million rows stay finite: 20% flagged against a reference of 19%.
        let p = binomial_upper_tail(1_000_000, 200_000, 0.19);
        assert!(p > 0.0 && p < 1e-100);
    }

    /// Labels as probable as the base data's.
    fn as_probable(rows: usize) -> welch::Comparison {
        welch::Comparison {
            rows,
            mean: 0.55,
            expected: 0.55,
            t: 0.0,
            p_value: 1.0,
        }
    }

    #[test]
    fn a_source_flagged_far_above_the_base_data_is_quarantined() {
        // 30 of 56 flagged against a 0.18 reference: 0.536 - 0.18 = 0.356 excess.
        let report = judge((56, 30), 0.18, &as_probable(56), 0.05, &ScreeningSettings::default());
        assert!(report.p_value < 1e-6, "{}", report.p_value);
        let because = report.quarantined_because.expect("quarantined");
        assert!(because.contains("30 of 56 rows"), "{because}");
    }

    #[test]
    fn a_source_whose_labels_the_models_find_improbable_is_quarantined() {
        // As often flagged as the base data, but its labels 0.15 less probable.
        let doubted = welch::Comparison {
            rows: 48,
            mean: 0.40,
            expected: 0.55,
            t: 4.4,
            p_value: 3e-5,
        };
        let because = judge((48, 9), 0.18, &doubted, 0.05, &ScreeningSettings::default())
            .quarantined_because
            .expect("quarantined");
        assert!(
            because.contains("get 0.400 of the top class's probability"),
            "{because}"
        );
        assert!(because.contains("against 0.550 for base rows"), "{because}");
        assert!(because.contains("t = 4.40"), "{because}");
        // Not significant, or significant but a small gap: not quarantined.
        for weak in [
            welch::Comparison {
                p_value: 0.002,
                ..doubted
            },
            welch::Comparison { mean: 0.48, ..doubted },
        ] {
            let report = judge((48, 9), 0.18, &weak, 0.05, &ScreeningSettings::default());
            assert_eq!(report.quarantined_because, None, "{weak:?}");
        }
    }

    #[test]
    fn an_honest_source_as_noisy_as_the_base_data_is_not() {
        // 60 of 288 (0.208) against 0.18: within noise (and under the excess).
        let report = judge((288, 60), 0.18, &as_probable(288), 0.3, &ScreeningSettings::default());
        assert_eq!(report.quarantined_because, None);
        // Significant but small: 2,300 of 10,000 (0.23) is 0.05 above 0.18.
        let report = judge(
            (10_000, 2_300),
            0.18,
            &as_probable(10_000),
            0.4,
            &ScreeningSettings::default(),
        );
        assert!(report.p_value < 1e-9, "{report:?}");
        assert_eq!(report.quarantined_because, None);
        // Too few rows to judge.
        let hopeless = welch::Comparison {
            mean: 0.0,
            p_value: 0.0,
            ..as_probable(5)
        };
        assert_eq!(
            judge((5, 5), 0.18, &hopeless, 0.01, &ScreeningSettings::default()).quarantined_because,
            None
        );
    }

    #[test]
    fn a_source_that_is_most_of_the_training_set_is_quarantined() {
        let because = judge(
            (1_500, 270),
            0.18,
            &as_probable(1_500),
            0.6,
            &ScreeningSettings::default(),
        )
        .quarantined_because
        .expect("quarantined");
        assert!(because.contains("0.600 of the training set"), "{because}");
    }

    #[test]
    fn label_probabilities_are_summarized() {
        let mut summary = LabelProbability::default();
        [0.2, 0.4, 0.6].into_iter().for_each(|p| summary.push(p));
        assert_eq!(summary.rows, 3);
        assert!((summary.mean - 0.4).abs() < 1e-12);
        assert!((summary.variance - 0.08 / 3.0).abs() < 1e-12);
    }
}
