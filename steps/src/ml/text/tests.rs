//! What a text model's user relies on: it learns from labelled text, the
//! same training set gives the same artifact bytes, the artifact predicts as
//! the model did, and the numbers are the textbook TF-IDF and naive Bayes.

use super::*;
use crate::ml::ModelError;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Labelled sentences made by this project: each topic has its own words,
/// mixed with words every topic uses, so a model must weigh evidence.
fn sentences(n: usize, seed: u64) -> (Vec<String>, Vec<String>) {
    const TOPICS: [(&str, [&str; 6]); 3] = [
        ("sports", ["match", "goal", "team", "coach", "score", "league"]),
        ("cooking", ["oven", "recipe", "flour", "simmer", "spice", "bake"]),
        ("travel", ["flight", "hotel", "passport", "beach", "luggage", "train"]),
    ];
    const COMMON: [&str; 8] = ["the", "was", "really", "good", "today", "we", "quite", "long"];
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut texts, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (topic, own) = TOPICS[rng.gen_range(0..TOPICS.len())];
        let words: Vec<&str> = (0..rng.gen_range(4..10))
            .map(|_| {
                if rng.gen_bool(0.35) {
                    own[rng.gen_range(0..6)]
                } else {
                    COMMON[rng.gen_range(0..8)]
                }
            })
            .collect();
        texts.push(words.join(" "));
        labels.push(topic.to_owned());
    }
    (texts, labels)
}

fn accuracy(model: &TextModel, texts: &[String], labels: &[String]) -> f64 {
    let right = texts
        .iter()
        .zip(labels)
        .filter(|(t, l)| model.classes()[model.predict(t).class] == **l)
        .count();
    right as f64 / texts.len() as f64
}

#[test]
fn a_model_learns_topics_from_generated_sentences() {
    let (texts, labels) = sentences(600, 1);
    let (test_texts, test_labels) = sentences(300, 2);
    for weighting in [Weighting::TfIdf, Weighting::Counts] {
        let settings = TextSettings {
            weighting,
            ngram_max: 2,
            ..TextSettings::default()
        };
        let model = TextModel::fit(&texts, &labels, &settings).unwrap();
        assert_eq!(model.classes(), ["cooking", "sports", "travel"]);
        // A sentence of only common words carries no topic; most carry some.
        let acc = accuracy(&model, &test_texts, &test_labels);
        assert!(acc > 0.8, "{weighting:?}: accuracy {acc}");
        let p = model.predict("we bake bread with flour in the oven");
        assert_eq!(
            (model.classes()[p.class].as_str(), p.confidence > 0.9),
            ("cooking", true)
        );
    }
}

#[test]
fn the_same_training_set_in_any_order_gives_the_same_artifact_bytes() {
    let (texts, labels) = sentences(400, 3);
    let settings = TextSettings {
        ngram_max: 2,
        min_df: 2,
        max_features: Some(60),
        sublinear_tf: true,
        ..TextSettings::default()
    };
    let bytes = TextModel::fit(&texts, &labels, &settings).unwrap().to_bytes();
    let mut pairs: Vec<_> = texts.into_iter().zip(labels).collect();
    for seed in 0..3 {
        pairs.shuffle(&mut StdRng::seed_from_u64(seed));
        let (t, l): (Vec<_>, Vec<_>) = pairs.iter().cloned().unzip();
        // On another thread too: nothing depends on a thread's state.
        let settings = settings.clone();
        let again = std::thread::spawn(move || TextModel::fit(&t, &l, &settings).unwrap().to_bytes());
        assert!(again.join().unwrap() == bytes, "order {seed} changed the artifact");
    }
}

#[test]
fn a_model_can_be_shared_by_serving_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<TextModel>();
}

#[test]
fn an_artifact_round_trip_predicts_identically() {
    let (texts, labels) = sentences(300, 4);
    let model = TextModel::fit(&texts, &labels, &TextSettings::default()).unwrap();
    let decoded = TextModel::from_bytes(&model.to_bytes()).unwrap();
    assert_eq!(decoded, model);
    let (probe, _) = sentences(100, 5);
    for text in probe
        .iter()
        .map(String::as_str)
        .chain(["", "unknown words only", "OVEN!!"])
    {
        assert_eq!(decoded.predict(text), model.predict(text), "{text:?}");
    }
}

#[test]
fn bad_artifacts_and_settings_are_refused() {
    let (texts, labels) = sentences(50, 6);
    let bytes = TextModel::fit(&texts, &labels, &TextSettings::default())
        .unwrap()
        .to_bytes();
    assert!(matches!(
        TextModel::from_bytes(&bytes[..bytes.len() / 2]),
        Err(ModelError::Decode(_))
    ));
    let mut other_format = bytes.clone();
    other_format[0] = 9;
    assert!(matches!(
        TextModel::from_bytes(&other_format),
        Err(ModelError::UnsupportedFormat { expected: 1, found: 9 })
    ));
    let invalid = |s: TextSettings| matches!(TextModel::fit(&texts, &labels, &s), Err(ModelError::InvalidParams(_)));
    let base = TextSettings::default();
    assert!(invalid(TextSettings {
        ngram_max: 0,
        ..base.clone()
    }));
    assert!(invalid(TextSettings {
        min_df: 0,
        ..base.clone()
    }));
    assert!(
        invalid(TextSettings {
            min_df: 51,
            ..base.clone()
        }),
        "no term in 51 of 50 texts"
    );
    assert!(invalid(TextSettings {
        max_features: Some(0),
        ..base.clone()
    }));
    assert!(invalid(TextSettings {
        learner: TextLearner::MultinomialNb { alpha: 0.0 },
        ..base.clone()
    }));
    assert!(matches!(
        TextModel::fit(&texts, &labels[1..], &base),
        Err(ModelError::InvalidParams(_))
    ));
    assert!(matches!(
        TextModel::fit::<&str, &str>(&[], &[], &base),
        Err(ModelError::Empty)
    ));
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The tiny corpus: "good film" (pos), "good good plot" (pos), "bad film" (neg).
fn tiny(weighting: Weighting) -> TextModel {
    let texts = ["Good film", "good GOOD plot!", "bad film"];
    let settings = TextSettings {
        weighting,
        ..TextSettings::default()
    };
    TextModel::fit(&texts, &["pos", "pos", "neg"], &settings).unwrap()
}

#[test]
fn naive_bayes_over_counts_follows_the_multinomial_formula() {
    let model = tiny(Weighting::Counts);
    let (vocabulary, nb) = model.parts();
    // Terms bad 0, film 1, good 2, plot 3; counts as they are.
    assert_eq!(
        vocabulary.vectorize("good good plot", model.settings()),
        vec![(2, 2.0), (3, 1.0)]
    );
    // neg counts: bad 1, film 1 (total 2); pos: film 1, good 1 + 2 = 3, plot 1 (total 5).
    // With alpha 1 and 4 terms the denominators are 2 + 4 = 6 and 5 + 4 = 9:
    // neg: bad ln(2/6), film ln(2/6), good ln(1/6), plot ln(1/6);
    // pos: bad ln(1/9), film ln(2/9), good ln(4/9), plot ln(2/9).
    let (_, flp) = nb.log_probs();
    let want: [[f64; 2]; 4] = [
        [2.0 / 6.0, 1.0 / 9.0],
        [2.0 / 6.0, 2.0 / 9.0],
        [1.0 / 6.0, 4.0 / 9.0],
        [1.0 / 6.0, 2.0 / 9.0],
    ];
    for (term, classes) in want.iter().enumerate() {
        for (class, p) in classes.iter().enumerate() {
            assert!(close(flp[term * 2 + class], p.ln()), "term {term} class {class}");
        }
    }
    // "good": P(neg) is proportional to 1/3 * 1/6 = 1/18, P(pos) to 2/3 * 4/9 = 8/27;
    // P(pos | good) = (8/27) / (8/27 + 1/18) = 16/19.
    let p = model.predict("good");
    assert_eq!(p.class, 1);
    assert!(close(p.confidence, 16.0 / 19.0), "{p:?}");
}

#[test]
fn tf_idf_weights_are_smoothed_idf_times_count_scaled_to_unit_length() {
    let model = tiny(Weighting::TfIdf);
    let (vocabulary, _) = model.parts();
    let (terms, idf) = vocabulary.terms();
    assert_eq!(terms, ["bad", "film", "good", "plot"]);
    // n = 3 texts; idf = ln((1 + n) / (1 + df)) + 1:
    // bad, plot (df 1): ln(4/2) + 1 = 1.6931471806; film, good (df 2): ln(4/3) + 1 = 1.2876820725.
    let (rare, common) = (2f64.ln() + 1.0, (4.0f64 / 3.0).ln() + 1.0);
    assert!(close(idf[0], rare) && close(idf[1], common) && close(idf[2], common) && close(idf[3], rare));
    // "good good plot": good 2 * 1.2876820725 = 2.5753641449, plot 1.6931471806;
    // length sqrt(2.5753641449^2 + 1.6931471806^2) = sqrt(6.6325006 + 2.8667474) = 3.0820849849;
    // so good 0.8355915419, plot 0.5493512310.
    let v = vocabulary.vectorize("good good plot", model.settings());
    assert_eq!(v.len(), 2);
    assert!(v[0].0 == 2 && (v[0].1 - 0.8355915419).abs() < 1e-9, "{v:?}");
    assert!(v[1].0 == 3 && (v[1].1 - 0.5493512310).abs() < 1e-9, "{v:?}");
    // Sublinear tf: good 1 + ln 2 = 1.6931471806, times idf 1.2876820725 = 2.1802352704, and
    // plot 1.6931471806; length sqrt(4.7534258344 + 2.8667473750) = 2.7604661218; good 0.7898069291.
    let sub = TextSettings {
        sublinear_tf: true,
        ..model.settings().clone()
    };
    let v = vocabulary.vectorize("good good plot", &sub);
    let good = (1.0 + 2f64.ln()) * common;
    assert!(close(v[0].1, good / (good * good + rare * rare).sqrt()), "{v:?}");
    assert!((v[0].1 - 0.7898069291).abs() < 1e-9, "{v:?}");
    // Unknown words and one-letter words count for nothing.
    assert_eq!(vocabulary.vectorize("a great x", model.settings()), vec![]);
}

#[test]
fn naive_bayes_over_tf_idf_follows_the_multinomial_formula() {
    let model = tiny(Weighting::TfIdf);
    let (_, nb) = model.parts();
    let (prior, flp) = nb.log_probs();
    // Classes sorted: neg (1 text), pos (2 texts); log priors ln(1/3), ln(2/3).
    assert!(close(prior[0], (1.0f64 / 3.0).ln()) && close(prior[1], (2.0f64 / 3.0).ln()));
    // Class weights w(term, class), summing the texts' unit vectors:
    // neg, "bad film": bad 1.6931471806 / 2.1271747683 = 0.7959605416, film 1.2876820725 / 2.1271747683 = 0.6053485081
    //   (2.1271747683 = sqrt(1.6931471806^2 + 1.2876820725^2)); total 1.4013090497.
    // pos: film 1/sqrt2 = 0.7071067812; good 0.7071067812 + 0.8355915419 = 1.5426983231;
    //   plot 0.5493512310; total 2.7991563353.
    // log P(term | class) = ln((w + 1) / (total + 1 * 4 terms)):
    // neg denominator 5.4013090497: bad ln(1.7959605416/5.4013090497) = -1.1011013413,
    //   film ln(1.6053485081/5.4013090497) = -1.2133004688, good, plot ln(1/5.4013090497) = -1.6866413408.
    // pos denominator 6.7991563353: bad ln(1/6.7991563353) = -1.9167985362,
    //   film ln(1.7071067812/6.7991563353) = -1.3819985394, good ln(2.5426983231/6.7991563353) = -0.9835726871,
    //   plot ln(1.5493512310/6.7991563353) = -1.4789622535.
    let want = [
        (0, 0, -1.1011013413),
        (1, 0, -1.2133004688),
        (2, 0, -1.6866413408),
        (3, 0, -1.6866413408),
        (0, 1, -1.9167985362),
        (1, 1, -1.3819985394),
        (2, 1, -0.9835726871),
        (3, 1, -1.4789622535),
    ];
    for (term, class, log_prob) in want {
        assert!(
            (flp[term * 2 + class] - log_prob).abs() < 1e-9,
            "term {term} class {class}: {}",
            flp[term * 2 + class]
        );
    }
    // "good" alone is the unit vector on good:
    // neg ln(1/3) - 1.6866413408 = -2.7852536295; pos ln(2/3) - 0.9835726871 = -1.3890377952;
    // P(pos) = 1 / (1 + exp(-2.7852536295 + 1.3890377952)) = 0.8015827119.
    let p = model.predict("good");
    assert_eq!(p.class, 1);
    assert!((p.confidence - 0.8015827119).abs() < 1e-9, "{p:?}");
    // "bad plot": each term 1/sqrt2 = 0.7071067812 (equal idf);
    // neg ln(1/3) + 0.7071067812 * (-1.1011013413 - 1.6866413408) = -3.0698440434;
    // pos ln(2/3) + 0.7071067812 * (-1.9167985362 - 1.4789622535) = -2.8066305897;
    // pos wins with 1 / (1 + exp(-3.0698440434 + 2.8066305897)) = 0.5654260652.
    let p = model.predict("bad plot");
    assert_eq!(p.class, 1);
    assert!((p.confidence - 0.5654260652).abs() < 1e-9, "{p:?}");
}
