//! Welch's one-sided t-test of "a source's rows have a lower mean than the
//! reference's", with Student's t distribution computed here (regularized
//! incomplete beta by Lentz's continued fraction, ln-gamma by Lanczos), so
//! a source of a dozen rows is judged by the t distribution it has, not a
//! normal approximation that would call it significant too easily.

use super::sources::LabelProbability;

/// Welch's t statistic for `reference.mean - source.mean > 0`, its degrees
/// of freedom (Welch-Satterthwaite), and the one-sided p-value. Sample
/// variances are the population ones times n / (n - 1). No evidence (p = 1)
/// for fewer than two rows on either side, or a source at or above the
/// reference; a gap with no variance at all is certain (p = 0).
pub fn lower_mean(source: &LabelProbability, reference: &LabelProbability) -> (f64, f64, f64) {
    let gap = reference.mean - source.mean;
    if source.rows < 2 || reference.rows < 2 || gap <= 0.0 {
        return (0.0, 0.0, 1.0);
    }
    let sample_variance = |group: &LabelProbability| group.variance * group.rows as f64 / (group.rows - 1) as f64;
    let (ns, nr) = (source.rows as f64, reference.rows as f64);
    let (vs, vr) = (sample_variance(source) / ns, sample_variance(reference) / nr);
    if vs + vr <= 0.0 {
        return (f64::INFINITY, ns + nr - 2.0, 0.0);
    }
    let t = gap / (vs + vr).sqrt();
    let df = (vs + vr).powi(2) / (vs * vs / (ns - 1.0) + vr * vr / (nr - 1.0));
    (t, df, student_t_upper_tail(t, df))
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

    #[test]
    fn a_lower_mean_is_tested_with_welchs_degrees_of_freedom() {
        let reference = LabelProbability {
            rows: 900,
            mean: 0.5,
            variance: 0.04,
        };
        let source = LabelProbability {
            rows: 50,
            mean: 0.4,
            variance: 0.04,
        };
        let (t, df, p) = lower_mean(&source, &reference);
        // se^2 = 0.04 * 50/49 / 50 + 0.04 * 900/899 / 900.
        let se = (0.04_f64 / 49.0 + 0.04 / 899.0).sqrt();
        assert!((t - 0.1 / se).abs() < 1e-9, "{t}");
        assert!(df > 49.0 && df < 60.0, "{df}");
        assert!(p > 1e-5 && p < 1e-3, "{p}");
        // At or above the reference, or a single row: no evidence.
        assert_eq!(lower_mean(&reference, &reference).2, 1.0);
        assert_eq!(lower_mean(&LabelProbability { rows: 1, ..source }, &reference).2, 1.0);
    }
}
