//! Conflicting labels: the same normalized input labelled differently by
//! different sources within the feedback a run considers. A source that
//! changes its own label is correcting itself (its latest label counts, as
//! everywhere in merge); two sources that disagree cannot both be right,
//! and nothing says which one is, so the rule is: if the trusted sources
//! among them (a setting) agree on one label, their rows stay and the
//! others' rows go; otherwise every feedback row of that input goes (the
//! base data's label, if any, stands). Dropped rows count as
//! `conflicting_labels`.

use crate::data::InputHash;
use std::collections::{BTreeMap, HashMap};

/// One usable feedback row as the rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    pub hash: InputHash,
    pub source: Option<&'a str>,
    pub label: &'a str,
}

/// Which of `rows` (oldest first) the rule drops.
pub fn conflicting(rows: &[Labelled<'_>], trusted: &[String]) -> Vec<bool> {
    let is_trusted = |source: Option<&str>| source.is_some_and(|s| trusted.iter().any(|t| t == s));
    // Each source's latest label per input.
    let mut latest: HashMap<InputHash, BTreeMap<Option<&str>, &str>> = HashMap::new();
    for row in rows {
        latest.entry(row.hash).or_default().insert(row.source, row.label);
    }
    // Inputs in conflict, with the label the trusted sources agree on.
    let verdicts: HashMap<InputHash, Option<&str>> = latest
        .into_iter()
        .filter(|(_, by_source)| {
            let mut labels = by_source.values();
            let first = labels.next();
            labels.any(|l| Some(l) != first)
        })
        .map(|(hash, by_source)| {
            let mut trusted_labels = by_source.iter().filter(|(s, _)| is_trusted(**s)).map(|(_, l)| *l);
            let first = trusted_labels.next();
            let agreed = first.filter(|f| trusted_labels.all(|l| l == *f));
            (hash, agreed)
        })
        .collect();
    rows.iter()
        .map(|row| match verdicts.get(&row.hash) {
            None => false,
            Some(Some(_)) => !is_trusted(row.source),
            Some(None) => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(input: u8, source: &'static str, label: &'static str) -> Labelled<'static> {
        Labelled {
            hash: InputHash([input; 32]),
            source: Some(source),
            label,
        }
    }

    #[test]
    fn a_source_correcting_itself_is_no_conflict() {
        let rows = [row(1, "a", "5"), row(1, "a", "6"), row(2, "b", "5"), row(2, "c", "5")];
        assert_eq!(conflicting(&rows, &[]), vec![false; 4]);
    }

    #[test]
    fn untrusted_sources_that_disagree_lose_every_row_of_the_input() {
        // Input 1: a says 5 then 6, b says 6, c says 5: latest labels 6, 6, 5.
        let rows = [
            row(1, "a", "5"),
            row(1, "a", "6"),
            row(1, "b", "6"),
            row(1, "c", "5"),
            row(2, "a", "7"),
        ];
        assert_eq!(conflicting(&rows, &[]), vec![true, true, true, true, false]);
    }

    #[test]
    fn the_trusted_source_wins_a_conflict_when_the_trusted_agree() {
        let trusted = vec!["ops".to_owned(), "qa".to_owned()];
        let rows = [row(1, "ops", "5"), row(1, "mob", "6"), row(1, "qa", "5")];
        assert_eq!(conflicting(&rows, &trusted), vec![false, true, false]);
        // Trusted sources that disagree: neither.
        let rows = [row(1, "ops", "5"), row(1, "mob", "6"), row(1, "qa", "6")];
        assert_eq!(conflicting(&rows, &trusted), vec![true, true, true]);
    }
}
