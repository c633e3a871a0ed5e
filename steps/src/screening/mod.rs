//! Screening before training, in merge: which feedback may train. Three
//! rules, applied to the feedback a run considers (every usable row up to
//! its watermark, after quarantine and the golden-input rule):
//! - [`conflicts`]: the same normalized input labelled differently by
//!   different sources keeps the trusted sources' label or none
//!   (`conflicting_labels`).
//! - [`disagreement`]: the model's own learner, fitted out-of-fold on the
//!   model's base data, judges the candidate training set's rows; a row
//!   whose label a confident prediction contradicts is flagged, and every
//!   feedback row of a flagged input stays out (`screened_disagreement`),
//!   so the base data's label stands.
//! - [`sources`]: a source whose flagged share is significantly above the
//!   base data's, whose labels the out-of-fold models find significantly
//!   less probable than the base data's, or that makes up too much of the
//!   set, is quarantined by the pipeline (actor `screening`) and its rows
//!   leave this very run.
//!
//! The decision is recorded with the training set (the excluded feedback
//! ids by reason, the quarantine rule ids and the per-source report), so
//! train rebuilds the set without screening again. Cost: k fits of at most
//! `max_fit_rows` rows each, then one prediction per candidate row.

pub mod conflicts;
pub mod disagreement;
mod settings;
pub mod sources;
pub mod welch;

pub use settings::ScreeningSettings;
pub use sources::{LabelProbability, SourceReport};

use crate::data::{InputHash, input_hash};
use crate::ml::{Example, Learner, ModelError};
use crate::store::datasets::Dataset;
use crate::store::feedback::FeedbackExample;
use crate::trainset;
use conflicts::Labelled;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Drop reason of feedback that another source labels differently.
pub const CONFLICTING_LABELS: &str = "conflicting_labels";
/// Drop reason of feedback a confident out-of-fold model contradicts.
pub const SCREENED_DISAGREEMENT: &str = "screened_disagreement";
/// How the report names feedback sent without a source (such feedback is
/// reported but never quarantined: a rule without a source covers all).
pub const NO_SOURCE: &str = "(no source)";

/// Feedback ids screening leaves out, with the reason of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exclusions(HashMap<i64, &'static str>);

impl Exclusions {
    /// Why feedback row `id` is left out, if it is.
    pub fn reason(&self, id: i64) -> Option<&'static str> {
        self.0.get(&id).copied()
    }

    /// The ids by reason, ascending, as the training set records them.
    pub fn by_reason(&self) -> BTreeMap<&'static str, Vec<i64>> {
        let mut out: BTreeMap<&'static str, Vec<i64>> = BTreeMap::new();
        for (id, reason) in &self.0 {
            out.entry(reason).or_default().push(*id);
        }
        out.values_mut().for_each(|ids| ids.sort_unstable());
        out
    }

    /// The exclusions a training set recorded.
    ///
    /// # Errors
    /// The reason it does not know.
    pub fn from_recorded(recorded: BTreeMap<String, Vec<i64>>) -> Result<Self, String> {
        let mut out = HashMap::new();
        for (reason, ids) in recorded {
            let reason = [CONFLICTING_LABELS, SCREENED_DISAGREEMENT]
                .into_iter()
                .find(|known| *known == reason)
                .ok_or(reason)?;
            out.extend(ids.into_iter().map(|id| (id, reason)));
        }
        Ok(Self(out))
    }
}

/// What screening found, as recorded with the training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Base rows in the candidate set, and how many of them were flagged:
    /// the noise any honest source is compared against.
    pub reference_rows: usize,
    pub reference_flagged: usize,
    pub reference_share: f64,
    /// The probabilities out-of-fold models give the base rows' labels,
    /// per class (reports written before this rule have none).
    #[serde(default)]
    pub reference_label_probability: BTreeMap<String, LabelProbability>,
    /// Feedback rows dropped as conflicting labels.
    pub conflicting_rows: usize,
    /// Per source (feedback without one as [`NO_SOURCE`]).
    pub sources: BTreeMap<String, SourceReport>,
    /// The settings the decision was taken under.
    pub settings: ScreeningSettings,
}

impl Report {
    /// The sources to quarantine, with why.
    pub fn to_quarantine(&self) -> impl Iterator<Item = (&str, &SourceReport)> {
        self.sources
            .iter()
            .filter(|(source, report)| *source != NO_SOURCE && report.quarantined_because.is_some())
            .map(|(source, report)| (source.as_str(), report))
    }
}

/// Screening's outcome: the rows it leaves out and its report.
#[derive(Debug, Clone, PartialEq)]
pub struct Screening {
    pub exclusions: Exclusions,
    pub report: Report,
}

/// Screens `feedback` (oldest first) against `base` with the model's
/// `learner`, asking `stop` between fits.
///
/// # Errors
/// The learner's errors, and [`ModelError::Stopped`].
pub fn screen(
    dataset: &Dataset,
    base: &[Example],
    feedback: &[FeedbackExample],
    golden: &HashSet<InputHash>,
    learner: &Learner,
    settings: &ScreeningSettings,
    stop: &dyn Fn() -> bool,
) -> Result<Screening, ModelError> {
    // The feedback merge would use, in order, with input hashes.
    let usable: Vec<(&FeedbackExample, InputHash)> = feedback
        .iter()
        .filter(|f| !f.quarantined && trainset::screen(dataset, &f.example).is_none())
        .map(|f| (f, input_hash(&f.example.input)))
        .filter(|(_, hash)| !golden.contains(hash))
        .collect();
    let labelled: Vec<Labelled<'_>> = usable
        .iter()
        .map(|(f, hash)| Labelled {
            hash: *hash,
            source: f.source.as_deref(),
            label: &f.example.label,
        })
        .collect();
    let conflicting = conflicts::conflicting(&labelled, &settings.trusted_sources);
    let mut exclusions = HashMap::new();
    let mut remaining = Vec::with_capacity(usable.len());
    for ((f, hash), conflict) in usable.into_iter().zip(conflicting) {
        if conflict {
            exclusions.insert(f.id, CONFLICTING_LABELS);
        } else {
            remaining.push((f, hash));
        }
    }
    let conflicting_rows = exclusions.len();
    // The candidate training set, as merge would make it without screening.
    let (keep_base, keep_feedback) = trainset::latest_rows(remaining.iter().map(|(_, h)| h), base);
    let kept_base: Vec<&Example> = base
        .iter()
        .zip(&keep_base)
        .filter(|(_, k)| **k)
        .map(|(e, _)| e)
        .collect();
    let kept_feedback: Vec<&(&FeedbackExample, InputHash)> = remaining
        .iter()
        .zip(&keep_feedback)
        .filter(|(_, k)| **k)
        .map(|(r, _)| r)
        .collect();
    let examples: Vec<Example> = kept_base
        .iter()
        .map(|e| (*e).clone())
        .chain(kept_feedback.iter().map(|(f, _)| f.example.clone()))
        .collect();
    let base_hashes: Vec<InputHash> = base.iter().map(|e| input_hash(&e.input)).collect();
    let hashes: Vec<InputHash> = base_hashes
        .iter()
        .zip(&keep_base)
        .filter_map(|(h, k)| k.then_some(*h))
        .chain(kept_feedback.iter().map(|(_, h)| *h))
        .collect();
    let judged = disagreement::judge_out_of_fold(learner, (base, &base_hashes), (&examples, &hashes), settings, stop)?;
    let (base_judged, feedback_judged) = judged.split_at(kept_base.len());
    let reference_flagged = base_judged.iter().filter(|j| j.flagged).count();
    let reference_share = reference_flagged as f64 / kept_base.len().max(1) as f64;
    let mut by_class: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (example, judged) in kept_base.iter().zip(base_judged) {
        by_class
            .entry(example.label.clone())
            .or_default()
            .push(judged.label_probability);
    }
    let reference_by_class: BTreeMap<String, LabelProbability> = by_class
        .into_iter()
        .map(|(label, values)| (label, LabelProbability::of(values)))
        .collect();
    // Per source: its rows' labels and judgements.
    let mut by_source: BTreeMap<String, Vec<(&str, disagreement::Judged)>> = BTreeMap::new();
    let mut flagged_inputs: HashSet<InputHash> = HashSet::new();
    for ((f, hash), judged) in kept_feedback.iter().zip(feedback_judged) {
        by_source
            .entry(f.source.clone().unwrap_or_else(|| NO_SOURCE.to_owned()))
            .or_default()
            .push((f.example.label.as_str(), *judged));
        if judged.flagged {
            flagged_inputs.insert(*hash);
        }
    }
    for (f, hash) in &remaining {
        if flagged_inputs.contains(hash) {
            exclusions.insert(f.id, SCREENED_DISAGREEMENT);
        }
    }
    let total = examples.len().max(1) as f64;
    let sources = by_source
        .into_iter()
        .map(|(source, judged)| {
            let (sent, flagged) = (judged.len(), judged.iter().filter(|(_, j)| j.flagged).count());
            let labelled: Vec<(&str, f64)> = judged.iter().map(|(l, j)| (*l, j.label_probability)).collect();
            let probability = welch::lower_than_reference(&labelled, &reference_by_class);
            let mut report = sources::judge(
                (sent, flagged),
                reference_share,
                &probability,
                sent as f64 / total,
                settings,
            );
            if settings.trusted_sources.contains(&source) {
                report.quarantined_because = None;
            }
            (source, report)
        })
        .collect();
    Ok(Screening {
        exclusions: Exclusions(exclusions),
        report: Report {
            reference_rows: kept_base.len(),
            reference_flagged,
            reference_share,
            reference_label_probability: reference_by_class,
            conflicting_rows,
            sources,
            settings: settings.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::{Input, TreeParams};

    fn dataset() -> Dataset {
        Dataset {
            labels: vec!["a".into(), "b".into()],
            ..crate::trainset::tests::dataset()
        }
    }

    /// Two clean clusters: x in 0..200 is "a", x in 1000..1200 is "b".
    fn point(i: u32) -> Example {
        if i < 200 {
            Example::tabular(vec![f64::from(i), 1.0], "a")
        } else {
            Example::tabular(vec![f64::from(i + 800), 1.0], "b")
        }
    }

    #[test]
    fn a_liar_is_quarantined_an_honest_source_is_not_and_conflicts_are_dropped() {
        let base: Vec<Example> = (0..400).map(point).collect();
        let mut feedback = Vec::new();
        let mut send = |example: Example, source: &str| {
            let id = feedback.len() as i64 + 1;
            feedback.push(FeedbackExample {
                id,
                example,
                source: Some(source.to_owned()),
                quarantined: false,
            });
        };
        // The liar flips 40 base rows; the honest source sends 40 new true rows.
        for i in (0..400).step_by(10) {
            let mut flipped = point(i);
            flipped.label = if flipped.label == "a" { "b" } else { "a" }.into();
            send(flipped, "liar");
        }
        for i in 0..40 {
            let mut row = point(i * 10 + 5);
            row.input = Input::Tabular(vec![row.input.features().unwrap()[0] + 0.5, 2.0]);
            send(row, "honest");
        }
        // Two sources disagree on one new input.
        let contested = Example::tabular(vec![5000.0, 3.0], "a");
        send(contested.clone(), "p");
        send(
            Example {
                label: "b".into(),
                ..contested
            },
            "q",
        );
        let learner = Learner::DecisionTree(TreeParams::default());
        let settings = ScreeningSettings::default();
        let found = screen(
            &dataset(),
            &base,
            &feedback,
            &HashSet::new(),
            &learner,
            &settings,
            &|| false,
        )
        .unwrap();
        let quarantined: Vec<&str> = found.report.to_quarantine().map(|(s, _)| s).collect();
        assert_eq!(quarantined, vec!["liar"]);
        let liar = &found.report.sources["liar"];
        assert_eq!((liar.rows_sent, liar.rows_flagged), (40, 40));
        assert_eq!(found.report.sources["honest"].rows_flagged, 0);
        assert_eq!((found.report.reference_rows, found.report.reference_flagged), (360, 0));
        let by_reason = found.exclusions.by_reason();
        assert_eq!(by_reason[CONFLICTING_LABELS], vec![81, 82]);
        assert_eq!(by_reason[SCREENED_DISAGREEMENT], (1..=40).collect::<Vec<i64>>());
    }
}
