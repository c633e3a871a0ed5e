//! Percentiles as the benchmarks report them: nearest rank, so every figure
//! printed is a value that was measured.

/// The nearest-rank `p`th percentile (0 < p <= 100) of `sorted` (ascending):
/// the smallest value with at least p % of the values at or below it. NaN
/// for no values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The arithmetic mean; NaN for no values.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_a_measured_value() {
        // Ten values 1..=10: p50 is rank ceil(0.5 * 10) = 5, the value 5;
        // p99 is rank ceil(9.9) = 10; p1 is rank ceil(0.1) = 1.
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 5.0);
        assert_eq!(percentile(&values, 99.0), 10.0);
        assert_eq!(percentile(&values, 100.0), 10.0);
        assert_eq!(percentile(&values, 1.0), 1.0);
        // (1 + ... + 10) / 10 = 55 / 10.
        assert_eq!(mean(&values), 5.5);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
