//! The per-source decision: is a source's flagged share explained by the
//! data's own noise? The reference is the base data's (the model's own
//! imported rows') flagged share in the same out-of-fold screening, so the
//! rule needs no share tuned to one data set: a source is quarantined when
//! its flagged share exceeds the reference by at least `min_excess` and a
//! one-sided binomial test against the reference is significant, or when
//! it makes up `max_training_share` of the training set.

use super::ScreeningSettings;
use serde::{Deserialize, Serialize};

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
    /// Why it was quarantined, in words; `None`: it was not.
    pub quarantined_because: Option<String>,
}

/// Judges one source with `rows_sent` rows, `rows_flagged` of them flagged,
/// making up `training_share` of the set, against `reference` (the base
/// data's flagged share).
pub fn judge(
    rows_sent: usize,
    rows_flagged: usize,
    training_share: f64,
    reference: f64,
    settings: &ScreeningSettings,
) -> SourceReport {
    let flagged_share = if rows_sent == 0 {
        0.0
    } else {
        rows_flagged as f64 / rows_sent as f64
    };
    let p_value = binomial_upper_tail(rows_sent, rows_flagged, reference);
    let excess = flagged_share - reference;
    let quarantined_because = if rows_sent >= settings.min_rows
        && excess >= settings.min_excess
        && p_value <= settings.significance
    {
        Some(format!(
            "{rows_flagged} of {rows_sent} rows ({flagged_share:.3}) contradicted by a confident out-of-fold model, \
             against {reference:.3} of the base data: {excess:.3} above it (at least {} needed), \
             binomial p = {p_value:.2e} (at most {} needed)",
            settings.min_excess, settings.significance
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

    #[test]
    fn a_source_flagged_far_above_the_base_data_is_quarantined() {
        // 30 of 56 flagged against a 0.18 reference: 0.536 - 0.18 = 0.356 excess.
        let report = judge(56, 30, 0.05, 0.18, &ScreeningSettings::default());
        assert!(report.p_value < 1e-6, "{}", report.p_value);
        let because = report.quarantined_because.expect("quarantined");
        assert!(because.contains("30 of 56 rows"), "{because}");
    }

    #[test]
    fn an_honest_source_as_noisy_as_the_base_data_is_not() {
        // 60 of 288 (0.208) against 0.18: within noise (and under the excess).
        let report = judge(288, 60, 0.3, 0.18, &ScreeningSettings::default());
        assert_eq!(report.quarantined_because, None);
        // Significant but small: 2,300 of 10,000 (0.23) is 0.05 above 0.18.
        let report = judge(10_000, 2_300, 0.4, 0.18, &ScreeningSettings::default());
        assert!(report.p_value < 1e-9);
        assert_eq!(report.quarantined_because, None);
        // Too few rows to judge.
        assert_eq!(
            judge(5, 5, 0.01, 0.18, &ScreeningSettings::default()).quarantined_because,
            None
        );
    }

    #[test]
    fn a_source_that_is_most_of_the_training_set_is_quarantined() {
        let because = judge(1_500, 270, 0.6, 0.18, &ScreeningSettings::default())
            .quarantined_because
            .expect("quarantined");
        assert!(because.contains("0.600 of the training set"), "{because}");
    }
}
