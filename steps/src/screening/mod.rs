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
//! Feedback an operator vouched for, by releasing a quarantine rule that
//! covered it, is not judged again: it trains, and it joins the base data
//! as the reference the fold models learn from, so later rows that agree
//! with it (new words of a class, say) are not contradicted either. Rows a
//! released source sends after the release are judged like any others.
//!
//! The decision is recorded with the training set (the excluded feedback
//! ids by reason, the quarantine rule ids and the per-source report), so
//! train rebuilds the set without screening again. Cost: k fits of at most
//! `max_fit_rows` rows each per chunk of judged rows, then one prediction
//! per candidate row; memory: the scan's compact rows and one chunk of
//! examples at a time.

pub mod conflicts;
pub mod disagreement;
mod settings;
pub mod sources;
pub mod welch;

pub use settings::ScreeningSettings;
pub use sources::{LabelProbability, SourceReport};

use crate::data::InputHash;
use crate::error::StepsError;
use crate::ml::{Example, Learner};
use crate::trainset::{self, BaseData, FeedbackRow, Scan};
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

/// One source's rows as screening counts them.
#[derive(Debug, Default)]
struct SourceTally {
    sent: usize,
    flagged: usize,
    /// The out-of-fold probability of its labels, per class.
    label_probability: BTreeMap<String, LabelProbability>,
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
    /// Feedback rows not judged because an operator vouched for them
    /// (released a rule that covered them); they joined the reference.
    #[serde(default)]
    pub vouched_rows: usize,
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

/// Reads the examples of feedback rows given by id (ascending), in order.
pub type ReadExamples<'a> = dyn FnMut(&[i64]) -> Result<Vec<Example>, StepsError> + 'a;

/// Feedback rows judged at a time: read back by id, judged, dropped.
const JUDGED_CHUNK: usize = trainset::READ_CHUNK;

/// Screens the usable feedback of `scan` (oldest first) against `base`
/// with the model's `learner`, asking `stop` between fits; the rows
/// `vouched` for ([`crate::store::feedback::vouched`]) join the reference
/// instead of being judged. The feedback
/// rows the candidate set keeps are judged a chunk at a time, their
/// examples asked of `read` (given ids, ascending); each chunk fits the
/// fold models again (k fits of at most `max_fit_rows` base rows, the same
/// models every time), the price of never holding every row at once.
///
/// # Errors
/// The learner's errors, [`crate::ml::ModelError::Stopped`], and `read`'s.
pub fn screen(
    base: &BaseData,
    scan: &Scan,
    read: &mut ReadExamples<'_>,
    vouched: &HashSet<i64>,
    learner: &Learner,
    settings: &ScreeningSettings,
    stop: &dyn Fn() -> bool,
) -> Result<Screening, StepsError> {
    let rows = &scan.rows;
    // Only an input sent at least twice can have conflicting labels: only
    // those rows are labelled for the rule (in order).
    let mut repeated: Vec<u32> = trainset::by_input(rows.len(), &|p| &rows[p].hash)
        .chunk_by(|&a, &b| rows[a as usize].hash == rows[b as usize].hash)
        .filter(|group| group.len() > 1)
        .flatten()
        .copied()
        .collect();
    repeated.sort_unstable();
    let labelled: Vec<Labelled<'_>> = repeated
        .iter()
        .map(|&p| {
            let row = &rows[p as usize];
            Labelled {
                hash: row.hash,
                source: scan.source(row),
                label: scan.label(row),
            }
        })
        .collect();
    let conflicting = conflicts::conflicting(&labelled, &settings.trusted_sources);
    let mut exclusions = HashMap::new();
    let mut in_conflict = vec![false; rows.len()];
    for (&p, conflict) in repeated.iter().zip(conflicting) {
        if conflict {
            exclusions.insert(rows[p as usize].id, CONFLICTING_LABELS);
            in_conflict[p as usize] = true;
        }
    }
    let conflicting_rows = exclusions.len();
    let remaining: Vec<&FeedbackRow> = rows
        .iter()
        .zip(&in_conflict)
        .filter_map(|(row, conflict)| (!conflict).then_some(row))
        .collect();
    drop(in_conflict);
    // The candidate training set, as merge would make it without screening.
    let (keep_base, keep_feedback) = trainset::latest_rows(|i| &remaining[i].hash, remaining.len(), &base.base_hashes);
    let (kept_base, kept_base_hashes): (Vec<Example>, Vec<InputHash>) = base
        .base
        .iter()
        .zip(&base.base_hashes)
        .zip(&keep_base)
        .filter(|(_, keep)| **keep)
        .map(|((e, h), _)| (e.clone(), *h))
        .unzip();
    let kept_feedback: Vec<&FeedbackRow> = remaining
        .iter()
        .zip(&keep_feedback)
        .filter_map(|(row, keep)| keep.then_some(*row))
        .collect();
    // Rows an operator vouched for are not judged: they join the base data
    // as the reference the fold models learn from.
    let (vouched, judged): (Vec<&FeedbackRow>, Vec<&FeedbackRow>) =
        kept_feedback.iter().copied().partition(|row| vouched.contains(&row.id));
    let joined: (Vec<Example>, Vec<InputHash>);
    let reference = if vouched.is_empty() {
        (base.base.as_slice(), base.base_hashes.as_slice())
    } else {
        let ids: Vec<i64> = vouched.iter().map(|row| row.id).collect();
        joined = (
            base.base.iter().cloned().chain(read(&ids)?).collect(),
            base.base_hashes
                .iter()
                .copied()
                .chain(vouched.iter().map(|row| row.hash))
                .collect(),
        );
        (joined.0.as_slice(), joined.1.as_slice())
    };
    let fold_models = disagreement::FoldModels::fit(learner, reference, settings, stop)?;
    let base_judged = fold_models.judge(&kept_base, &kept_base_hashes)?;
    let reference_flagged = base_judged.iter().filter(|j| j.flagged).count();
    let reference_share = reference_flagged as f64 / kept_base.len().max(1) as f64;
    let mut reference_by_class: BTreeMap<String, LabelProbability> = BTreeMap::new();
    for (example, judged) in kept_base.iter().zip(&base_judged) {
        reference_by_class
            .entry(example.label.clone())
            .or_default()
            .push(judged.label_probability);
    }
    // Per source: rows sent, rows flagged, label probabilities per class.
    let mut tallies: BTreeMap<String, SourceTally> = BTreeMap::new();
    let mut flagged_inputs: HashSet<InputHash> = HashSet::new();
    for chunk in judged.chunks(JUDGED_CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|row| row.id).collect();
        let examples = read(&ids)?;
        let hashes: Vec<InputHash> = chunk.iter().map(|row| row.hash).collect();
        let judged = fold_models.judge(&examples, &hashes)?;
        for (row, judged) in chunk.iter().zip(judged) {
            let tally = tallies
                .entry(scan.source(row).unwrap_or(NO_SOURCE).to_owned())
                .or_default();
            tally.sent += 1;
            tally
                .label_probability
                .entry(scan.label(row).to_owned())
                .or_default()
                .push(judged.label_probability);
            if judged.flagged {
                tally.flagged += 1;
                flagged_inputs.insert(row.hash);
            }
        }
    }
    for row in &remaining {
        if flagged_inputs.contains(&row.hash) {
            exclusions.insert(row.id, SCREENED_DISAGREEMENT);
        }
    }
    let total = (kept_base.len() + kept_feedback.len()).max(1) as f64;
    let sources = tallies
        .into_iter()
        .map(|(source, tally)| {
            let probability = welch::lower_than_reference(&tally.label_probability, &reference_by_class);
            let mut report = sources::judge(
                (tally.sent, tally.flagged),
                reference_share,
                &probability,
                tally.sent as f64 / total,
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
            vouched_rows: vouched.len(),
            sources,
            settings: settings.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::{Input, TreeParams};
    use crate::store::datasets::Dataset;
    use crate::store::feedback::FeedbackExample;

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
        let scan = Scan::of(&dataset(), &HashSet::new(), &feedback);
        let base = BaseData::new(base, HashSet::new());
        let mut read = |ids: &[i64]| Ok(trainset::held_examples(&feedback, ids));
        let found = screen(&base, &scan, &mut read, &HashSet::new(), &learner, &settings, &|| false).unwrap();
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

    #[test]
    fn rows_an_operator_vouched_for_train_and_teach_the_models_that_judge_later_rows() {
        let base: Vec<Example> = (0..400).map(point).collect();
        // A new region, x in 3000..3080, is "a", where the base data would
        // say "b": 60 rows sent before an operator's release, 20 after.
        let feedback: Vec<FeedbackExample> = (0..80)
            .map(|i| FeedbackExample {
                id: i64::from(i) + 1,
                example: Example::tabular(vec![3000.0 + f64::from(i), 1.0], "a"),
                source: Some("drift".to_owned()),
                quarantined: false,
            })
            .collect();
        let learner = Learner::DecisionTree(TreeParams::default());
        let settings = ScreeningSettings::default();
        let base = BaseData::new(base, HashSet::new());
        let scan = Scan::of(&dataset(), &HashSet::new(), &feedback);
        let mut read = |ids: &[i64]| Ok(trainset::held_examples(&feedback, ids));
        let mut screen_vouching =
            |vouched: &HashSet<i64>| screen(&base, &scan, &mut read, vouched, &learner, &settings, &|| false).unwrap();
        let before = screen_vouching(&HashSet::new());
        assert_eq!(
            before.report.to_quarantine().count(),
            1,
            "without the release the region is an attack"
        );
        assert_eq!(before.report.sources["drift"].rows_flagged, 80);

        let after = screen_vouching(&(1..=60).collect());
        assert_eq!(after.report.to_quarantine().count(), 0);
        assert_eq!(after.report.vouched_rows, 60);
        let drift = &after.report.sources["drift"];
        assert_eq!((drift.rows_sent, drift.rows_flagged), (20, 0));
        assert!(after.exclusions.by_reason().is_empty());
    }
}
