//! Are a source's labels less probable than the base data's, class for
//! class? The out-of-fold probability of a label depends on its class
//! (common classes get more), so each source row is compared with the base
//! rows of its own label: the expected mean is the base data's class means
//! weighted by the source's class mix, and the null variance is the base
//! data's within-class variance. The statistic is referred to Student's t
//! with n - 1 degrees of freedom (computed here: regularized incomplete
//! beta by Lentz's continued fraction, ln-gamma by Lanczos), so a source of
//! a dozen rows is not called significant as easily as a normal
//! approximation would.

use super::sources::LabelProbability;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A source's label probabilities against the base data's for its classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Source rows compared (those of classes with two or more base rows).
    pub rows: usize,
    /// Their mean label probability.
    pub mean: f64,
    /// The base data's mean for the same class mix.
    pub expected: f64,
    pub t: f64,
    /// One-sided: P(a mean this far below `expected` | honest rows).
    pub p_value: f64,
}

/// Compares a source's label probabilities per class (`source`) with the
/// base data's per-class summaries (`reference`); classes with fewer than
/// two base rows are left out.
pub fn lower_than_reference(
    source: &BTreeMap<String, LabelProbability>,
    reference: &BTreeMap<String, LabelProbability>,
) -> Comparison {
    let sample_variance = |group: &LabelProbability| group.variance * group.rows as f64 / (group.rows - 1) as f64;
    let compared: Vec<(&LabelProbability, &LabelProbability)> = source
        .iter()
        .filter_map(|(label, own)| Some((own, reference.get(label).filter(|c| c.rows >= 2)?)))
        .collect();
    let rows: usize = compared.iter().map(|(own, _)| own.rows).sum();
    if rows < 2 {
        return Comparison {
            rows,
            p_value: 1.0,
            ..Comparison::default()
        };
    }
    let n = rows as f64;
    let mean = compared.iter().map(|(own, _)| own.rows as f64 * own.mean).sum::<f64>() / n;
    let expected = compared
        .iter()
        .map(|(own, class)| own.rows as f64 * class.mean)
        .sum::<f64>()
        / n;
    // Var(source mean) = sum n_c v_c / n^2; Var(expected) = sum (n_c / n)^2 v_c / N_c.
    let variance: f64 = compared
        .iter()
        .map(|(own, class)| {
            let (nc, v) = (own.rows as f64, sample_variance(class));
            nc * v / (n * n) + (nc / n).powi(2) * v / class.rows as f64
        })
        .sum();
    let gap = expected - mean;
    let (t, p_value) = if gap <= 0.0 {
        (0.0, 1.0)
    } else if variance <= 0.0 {
        (f64::INFINITY, 0.0)
    } else {
        let t = gap / variance.sqrt();
        (t, student_t_upper_tail(t, n - 1.0))
    };
    Comparison {
        rows,
        mean,
        expected,
        t,
        p_value,
    }
}

/// P(T > t) for Student's t with `df` degrees of freedom, t >= 0:
/// I_{df / (df + t^2)}(df / 2, 1 / 2) / 2.
pub fn student_t_upper_tail(t: f64, df: f64) -> f64 {
    0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)
}

/// The regularized incomplete beta function I_x(a, b), by the continued
/// fraction on whichever side converges (Numerical Recipes' `betai`).
fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

/// The continued fraction of the incomplete beta, evaluated by the
/// modified Lentz method to relative precision 1e-14.
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - (a + b) * x / (a + 1.0));
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / clamp(1.0 + even * d);
        c = clamp(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / clamp(1.0 + odd * d);
        c = clamp(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-14 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0, Lanczos (g = 7, 9 terms; about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let sum = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |sum, (i, c)| sum + c / (x + i as f64 + 1.0));
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_tails_match_the_tables() {
        // As scipy.stats.t.sf gives them: P(T > 2.228) at 10 df, P(T > 4.144)
        // at 10 df, P(T > 3.098) at 1000 df (nearly normal).
        assert!((student_t_upper_tail(2.228, 10.0) - 0.025_005_886).abs() < 1e-9);
        assert!((student_t_upper_tail(4.144, 10.0) - 0.000_999_522_6).abs() < 1e-10);
        assert!((student_t_upper_tail(3.098, 1000.0) - 0.001_001_345).abs() < 1e-9);
        // One df is Cauchy: P(T > 1) = 1/4.
        assert!((student_t_upper_tail(1.0, 1.0) - 0.25).abs() < 1e-12);
        assert!((student_t_upper_tail(0.0, 7.0) - 0.5).abs() < 1e-12);
        // ln Γ(5) = ln 24, ln Γ(1/2) = ln √π.
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    /// Per-class summaries of (label, probability) rows.
    fn summarize<'a>(rows: impl IntoIterator<Item = (&'a str, f64)>) -> BTreeMap<String, LabelProbability> {
        let mut out: BTreeMap<String, LabelProbability> = BTreeMap::new();
        for (label, p) in rows {
            out.entry(label.to_owned()).or_default().push(p);
        }
        out
    }

    /// Base data where class "5" labels get 0.6 and class "3" labels 0.2.
    fn reference() -> BTreeMap<String, LabelProbability> {
        BTreeMap::from([
            (
                "5".to_owned(),
                LabelProbability {
                    rows: 400,
                    mean: 0.6,
                    variance: 0.04,
                },
            ),
            (
                "3".to_owned(),
                LabelProbability {
                    rows: 20,
                    mean: 0.2,
                    variance: 0.01,
                },
            ),
        ])
    }

    #[test]
    fn each_row_is_compared_with_the_base_rows_of_its_class() {
        // An honest source of rare-class rows: low probabilities, as expected for class 3.
        let rare = summarize((0..40).map(|i| ("3", 0.15 + 0.1 * f64::from(i % 2))));
        let honest = lower_than_reference(&rare, &reference());
        assert!(
            (honest.expected - 0.2).abs() < 1e-12 && (honest.mean - 0.2).abs() < 1e-12,
            "{honest:?}"
        );
        assert_eq!(honest.p_value, 1.0);
        // A source whose class-5 labels get 0.45 instead of 0.6.
        let doubted = summarize((0..50).map(|_| ("5", 0.45)));
        let found = lower_than_reference(&doubted, &reference());
        let se = (0.04_f64 * 400.0 / 399.0 / 50.0 + 0.04 * 400.0 / 399.0 / 400.0).sqrt();
        assert!((found.t - 0.15 / se).abs() < 1e-9, "{found:?}");
        assert!(found.p_value < 1e-4 && found.p_value > 1e-12, "{found:?}");
        // A label the base data never had is not compared; one row is no evidence.
        let unknown = lower_than_reference(&summarize([("9", 0.0), ("9", 0.0), ("5", 0.1)]), &reference());
        assert_eq!((unknown.rows, unknown.p_value), (1, 1.0));
    }
}
