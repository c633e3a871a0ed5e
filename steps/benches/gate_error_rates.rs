//! The statistical gate's error rates, measured: how often it passes a
//! candidate that is truly as good as the champion, and how often it fails
//! one truly 3 points worse, for several margins, on wine (the built-in
//! data) and the Rotten Tomatoes reviews. Release build, figures printed:
//!
//!   cargo bench -p retrain-steps --bench gate_error_rates -- --reviews /tmp/reviews
//!
//! (the reviews are fetched and split at measuring time, see
//! `steps/benches/text_reviews.rs`; without `--reviews` only wine runs).
//!
//! Every model is trained by the model kind's default learner
//! (`Learner::default_for`), whatever it is when this is run, as the
//! pipeline trains: the champion by `select_and_fit` alone, the candidate
//! with the champion's learner as the incumbent selection keeps unless
//! clearly beaten.
//!
//! - Equivalent: each trial trains a champion and a candidate on two
//!   bootstrap resamples (seeded, with replacement) of the same base rows,
//!   so both are drawn from the same distribution of models. (A champion
//!   fixed over all trials would be one lucky or unlucky draw, and every
//!   candidate would look worse or better than it.)
//! - 3 points worse: an equivalent candidate that, in addition, errs on a
//!   random share `0.03 / accuracy` of the golden rows it gets right: its
//!   errors are the equivalent's plus 3% of all rows, made wrong at random,
//!   so its expected accuracy is exactly 3 points lower on any rows.
//!
//! Both kinds of candidate meet the same champion through the whole gate
//! (`judge`, the recent set empty and so skipped) with the default
//! settings but the margin.

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use retrain_steps::ml::selection::select_and_fit;
use retrain_steps::ml::winequality::part;
use retrain_steps::ml::{Answers, Example, GateConfig, InputKind, Learner, Split, Table, evaluate, judge};
use retrain_testkit::fixtures::text_csv;
use std::path::PathBuf;
use std::time::Instant;

/// Options after `--`.
#[derive(Debug, Parser)]
struct Options {
    /// Directory with the reviews' base.csv and golden.csv (label,text).
    #[arg(long)]
    reviews: Option<PathBuf>,
    /// Candidates of each kind per data set.
    #[arg(long, default_value_t = 200)]
    trials: u64,
    /// Margins to measure, in points.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4,5,6,8,10")]
    margins: Vec<f64>,
    /// Recall margin of the per-class check, in points (default: the gate's).
    #[arg(long)]
    recall_margin: Option<f64>,
    /// Accepted for `cargo bench`'s own flag.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Whether each golden row was answered right, per trial by the champion,
/// the equivalent candidate and its 3-points-worse twin.
struct Trials {
    labels: Vec<String>,
    trials: Vec<Trial>,
}

struct Trial {
    champion: Vec<bool>,
    equivalent: Vec<bool>,
    worse: Vec<bool>,
}

fn resample(rows: &[Example], seed: u64) -> Vec<Example> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..rows.len())
        .map(|_| rows[rng.gen_range(0..rows.len())].clone())
        .collect()
}

/// The golden answers of `learner` fitted on a resample of `train`, and
/// the learner selection chose.
fn answers(
    learner: &Learner,
    train: &[Example],
    golden: &[Example],
    seed: u64,
    incumbent: Option<&Learner>,
) -> (Vec<bool>, Learner) {
    let (model, selection) = select_and_fit(
        learner,
        Table::from_examples(&resample(train, seed)).expect("rows").all(),
        incumbent,
        &|| false,
    )
    .expect("a model");
    (evaluate(&model, golden).expect("golden rows").1, selection.chosen)
}

/// The equivalent's answers with a random `0.03 / accuracy` of its right
/// answers made wrong.
fn three_points_worse(equivalent: &[bool], seed: u64) -> Vec<bool> {
    let accuracy = equivalent.iter().filter(|&&r| r).count() as f64 / equivalent.len() as f64;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    equivalent
        .iter()
        .map(|&right| right && !rng.gen_bool((0.03 / accuracy).min(1.0)))
        .collect()
}

fn run(name: &str, kind: InputKind, train: &[Example], golden: &[Example], trials: u64) -> Trials {
    let learner = Learner::default_for(kind);
    let started = Instant::now();
    let trials: Vec<Trial> = (0..trials)
        .map(|t| {
            let (champion, chosen) = answers(&learner, train, golden, 2 * t, None);
            let (equivalent, _) = answers(&learner, train, golden, 2 * t + 1, Some(&chosen));
            Trial {
                champion,
                worse: three_points_worse(&equivalent, t),
                equivalent,
            }
        })
        .collect();
    let mean = |pick: fn(&Trial) -> &Vec<bool>| {
        trials
            .iter()
            .map(|t| pick(t).iter().filter(|&&r| r).count())
            .sum::<usize>() as f64
            / (trials.len() * golden.len()) as f64
    };
    println!(
        "{name}: learner {}, base {} rows, golden {} rows, {} trials in {:.1} s; mean golden accuracy: \
         champions {:.3}, equivalents {:.3}, 3 worse {:.3}",
        learner.name(),
        train.len(),
        golden.len(),
        trials.len(),
        started.elapsed().as_secs_f64(),
        mean(|t| &t.champion),
        mean(|t| &t.equivalent),
        mean(|t| &t.worse),
    );
    Trials {
        labels: golden.iter().map(|e| e.label.clone()).collect(),
        trials,
    }
}

fn report(trials: &Trials, margins: &[f64], recall_margin: f64) {
    let none = Answers {
        labels: &[],
        candidate: &[],
        champion: None,
    };
    let discordant: f64 = trials
        .trials
        .iter()
        .map(|t| t.equivalent.iter().zip(&t.champion).filter(|(a, b)| a != b).count() as f64)
        .sum::<f64>()
        / (trials.trials.len() * trials.labels.len()) as f64;
    println!("  mean discordant share (champion vs equivalent): {discordant:.3}");
    println!(
        "  {:>7} {:>18} {:>18} {:>20} {:>20}",
        "margin", "equivalent pass", "3 worse fail", "equiv pass (acc)", "3 worse fail (acc)"
    );
    for &points in margins {
        let config = GateConfig {
            margin: points / 100.0,
            recall_margin,
            ..GateConfig::default()
        };
        let gate = |champion: &[bool], candidate: &[bool]| {
            let golden = Answers {
                labels: &trials.labels,
                candidate,
                champion: Some(champion),
            };
            let verdict = judge(&config, &golden, &none);
            let accuracy_alone = verdict.evidence("not_worse_than_champion").is_some_and(|e| e.passed);
            (verdict.passed, accuracy_alone)
        };
        let (mut pass, mut fail, mut pass_acc, mut fail_acc) = (0, 0, 0, 0);
        for trial in &trials.trials {
            let (passed, passed_acc) = gate(&trial.champion, &trial.equivalent);
            pass += usize::from(passed);
            pass_acc += usize::from(passed_acc);
            let (passed, passed_acc) = gate(&trial.champion, &trial.worse);
            fail += usize::from(!passed);
            fail_acc += usize::from(!passed_acc);
        }
        let n = trials.trials.len() as f64;
        let pct = |k: usize| format!("{:.1}%", 100.0 * k as f64 / n);
        println!(
            "  {:>7} {:>18} {:>18} {:>20} {:>20}",
            format!("{points}"),
            pct(pass),
            pct(fail),
            pct(pass_acc),
            pct(fail_acc)
        );
    }
}

fn main() {
    let options = Options::parse();
    let recall_margin = options
        .recall_margin
        .map_or(GateConfig::default().recall_margin, |points| points / 100.0);
    println!(
        "gate error rates: alpha {}, recall margin {recall_margin}, min class support {}; pass/fail rates of \
         the whole gate and of the golden-accuracy test alone (acc)",
        GateConfig::default().alpha,
        GateConfig::default().min_class_support
    );
    let wine = run(
        "wine",
        InputKind::Tabular,
        &part(Split::Base),
        &part(Split::Golden),
        options.trials,
    );
    report(&wine, &options.margins, recall_margin);
    if let Some(dir) = &options.reviews {
        let reviews = run(
            "reviews",
            InputKind::Text,
            &text_csv(&dir.join("base.csv")),
            &text_csv(&dir.join("golden.csv")),
            options.trials,
        );
        report(&reviews, &options.margins, recall_margin);
    }
}
