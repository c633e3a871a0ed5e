//! How the console writes times, durations, shares and ids, the same on
//! every page.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A moment as `2026-11-30 17:21:36` (UTC, said once in each page's tables).
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A span of milliseconds as a person reads it: `850 ms`, `4.2 s`, `3 min 5 s`.
pub fn millis(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{} ms", ms.max(0)),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1_000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1_000),
    }
}

/// The time between two moments, if both are known.
pub fn between(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> String {
    match (from, to) {
        (Some(from), Some(to)) => millis((to - from).num_milliseconds()),
        _ => "–".to_owned(),
    }
}

/// A share as a percentage with one decimal: `61.3%`.
pub fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// An optional share, `–` if absent.
pub fn maybe_percent(share: Option<f64>) -> String {
    share.map_or_else(|| "–".to_owned(), percent)
}

/// The first 8 hex digits of a run id, enough to tell runs apart on a page.
pub fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_says_them() {
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(4_249), "4.2 s");
        // 185,000 ms = 3 min (180,000) + 5 s.
        assert_eq!(millis(185_000), "3 min 5 s");
        assert_eq!(percent(0.61349), "61.3%");
    }
}
