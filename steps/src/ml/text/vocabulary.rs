//! The fitted vocabulary and its TF-IDF weighting: which terms the model
//! knows, in a stable order (sorted by term, so the same training set gives
//! the same indices whatever its row order), each term's smoothed idf, and
//! the sparse vector of one text.

use super::TextSettings;
use super::tokenize::{for_each_term, words};
use crate::ml::ModelError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How a term's count in a text becomes its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Weighting {
    /// The raw count (scikit-learn's `CountVectorizer`).
    Counts,
    /// Count (or 1 + ln count, if sublinear) times idf, then scaled to unit
    /// length (scikit-learn's `TfidfVectorizer` with its defaults).
    TfIdf,
}

/// Terms sorted, with their idf; a hash index for lookups, rebuilt on decode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "Terms", try_from = "Terms")]
pub(super) struct Vocabulary {
    terms: Terms,
    index: HashMap<String, u32>,
}

/// What the artifact stores: terms in sorted order, and idf by term index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Terms {
    terms: Vec<String>,
    idf: Vec<f64>,
}

impl TryFrom<Terms> for Vocabulary {
    type Error = String;

    fn try_from(terms: Terms) -> Result<Self, String> {
        if terms.terms.len() != terms.idf.len() || !terms.terms.is_sorted_by(|a, b| a < b) {
            return Err("vocabulary terms unsorted or idf of another length".to_owned());
        }
        let index = terms
            .terms
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Ok(Self { terms, index })
    }
}

impl From<Vocabulary> for Terms {
    fn from(v: Vocabulary) -> Self {
        v.terms
    }
}

/// A text as sorted (term index, weight) pairs, zero weights left out.
pub(super) type Sparse = Vec<(u32, f64)>;

impl Vocabulary {
    /// Learns the terms of `texts` that occur in at least `min_df` texts,
    /// the `max_features` most frequent of them (ties to the earlier term),
    /// with idf = ln((1 + n) / (1 + df)) + 1 (scikit-learn's `smooth_idf`).
    ///
    /// Errors: [`ModelError::InvalidParams`] when no term is left.
    pub(super) fn fit(texts: &[&str], settings: &TextSettings) -> Result<Self, ModelError> {
        // term -> (texts it occurs in, occurrences in all texts)
        let mut counts: HashMap<String, (u32, u64)> = HashMap::new();
        let mut buf = String::new();
        let mut seen: Vec<String> = Vec::new();
        for text in texts {
            let lower = text.to_lowercase();
            seen.clear();
            for_each_term(&words(&lower), settings.ngram_max, &mut buf, |t| {
                seen.push(t.to_owned())
            });
            seen.sort_unstable();
            for run in seen.chunk_by(|a, b| a == b) {
                let entry = counts.entry(run[0].clone()).or_default();
                entry.0 += 1;
                entry.1 += run.len() as u64;
            }
        }
        let mut kept: Vec<(String, u32, u64)> = counts
            .into_iter()
            .filter(|(_, (df, _))| *df as usize >= settings.min_df)
            .map(|(term, (df, total))| (term, df, total))
            .collect();
        if let Some(max) = settings.max_features {
            kept.sort_unstable_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
            kept.truncate(max);
        }
        if kept.is_empty() {
            return Err(ModelError::InvalidParams(format!(
                "no term occurs in at least min_df = {} texts",
                settings.min_df
            )));
        }
        kept.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let n = texts.len() as f64;
        let idf = kept
            .iter()
            .map(|(_, df, _)| ((1.0 + n) / (1.0 + f64::from(*df))).ln() + 1.0)
            .collect();
        let terms = kept.into_iter().map(|(term, _, _)| term).collect();
        Self::try_from(Terms { terms, idf }).map_err(ModelError::Corrupt)
    }

    /// The number of terms.
    pub(super) fn len(&self) -> usize {
        self.terms.terms.len()
    }

    /// `text` as weighted known terms; unknown terms are ignored.
    pub(super) fn vectorize(&self, text: &str, settings: &TextSettings) -> Sparse {
        let lower = text.to_lowercase();
        let mut ids = Vec::new();
        let mut buf = String::new();
        for_each_term(&words(&lower), settings.ngram_max, &mut buf, |t| {
            if let Some(&id) = self.index.get(t) {
                ids.push(id);
            }
        });
        ids.sort_unstable();
        let mut vector: Sparse = ids
            .chunk_by(|a, b| a == b)
            .map(|run| {
                let count = run.len() as f64;
                let tf = if settings.sublinear_tf { 1.0 + count.ln() } else { count };
                (run[0], tf)
            })
            .collect();
        if settings.weighting == Weighting::TfIdf {
            for (id, w) in &mut vector {
                *w *= self.terms.idf[*id as usize];
            }
            let norm = vector.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
            if norm > 0.0 {
                vector.iter_mut().for_each(|(_, w)| *w /= norm);
            }
        }
        vector
    }

    #[cfg(test)]
    pub(super) fn terms(&self) -> (&[String], &[f64]) {
        (&self.terms.terms, &self.terms.idf)
    }
}
