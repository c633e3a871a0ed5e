//! The validation gate: whether a candidate's golden-set metrics are good
//! enough to replace the champion, with every check's reason spelled out for
//! the run's audit trail.

use serde::{Deserialize, Serialize};

use super::Metrics;

/// Thresholds of the gate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GateConfig {
    /// Lowest golden accuracy a candidate may have.
    pub accuracy_floor: f64,
    /// Largest recall drop from the champion any one class may suffer.
    pub recall_tolerance: f64,
    /// Classes with fewer golden rows are too noisy for the recall check.
    pub min_class_support: usize,
    /// The candidate's accuracy must reach the champion's plus this.
    pub margin: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            accuracy_floor: 0.45,
            recall_tolerance: 0.15,
            min_class_support: 10,
            margin: 0.0,
        }
    }
}

/// One rule of the gate and how the candidate fared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `accuracy_floor`, `class_recall` or `not_worse_than_champion`.
    pub name: String,
    /// Whether the candidate satisfied the rule.
    pub passed: bool,
    /// What was compared, with the numbers.
    pub detail: String,
}

/// The gate's decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when every check passed.
    pub passed: bool,
    /// Every check applied, in order.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// The details of the failed checks: why the candidate was rejected.
    pub fn reasons(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.detail.clone())
            .collect()
    }
}

/// Judges `candidate` against the floor and, if there is one, the champion.
/// Both must be metrics on the same golden set. Without a champion only the
/// accuracy floor applies.
pub fn judge(config: &GateConfig, champion: Option<&Metrics>, candidate: &Metrics) -> Verdict {
    let mut checks = vec![accuracy_floor(config, candidate)];
    if let Some(champion) = champion {
        checks.push(class_recall(config, champion, candidate));
        checks.push(not_worse(config, champion, candidate));
    }
    Verdict {
        passed: checks.iter().all(|c| c.passed),
        checks,
    }
}

fn accuracy_floor(config: &GateConfig, candidate: &Metrics) -> Check {
    let passed = candidate.accuracy >= config.accuracy_floor;
    let relation = if passed { "meets" } else { "is below" };
    Check {
        name: "accuracy_floor".into(),
        passed,
        detail: format!(
            "candidate accuracy {:.4} {relation} the floor {:.4}",
            candidate.accuracy, config.accuracy_floor
        ),
    }
}

/// Every class with enough golden rows (by the champion's count) keeps its
/// recall within the tolerance; a class missing from the candidate's metrics
/// counts as recall 0.
fn class_recall(config: &GateConfig, champion: &Metrics, candidate: &Metrics) -> Check {
    let mut checked = Vec::new();
    let mut regressions = Vec::new();
    for (label, before) in &champion.per_class {
        if before.support < config.min_class_support {
            continue;
        }
        checked.push(label.to_string());
        let after = candidate.per_class.get(label).map_or(0.0, |c| c.recall);
        let drop = before.recall - after;
        if drop > config.recall_tolerance {
            regressions.push(format!(
                "class {label} recall {:.4} -> {after:.4} (drop {drop:.4})",
                before.recall
            ));
        }
    }
    let passed = regressions.is_empty();
    let detail = if passed {
        format!(
            "no class lost more than {:.4} recall (checked classes with >= {} golden rows: {})",
            config.recall_tolerance,
            config.min_class_support,
            if checked.is_empty() {
                "none".to_string()
            } else {
                checked.join(", ")
            }
        )
    } else {
        format!(
            "recall fell by more than {:.4}: {}",
            config.recall_tolerance,
            regressions.join("; ")
        )
    };
    Check {
        name: "class_recall".into(),
        passed,
        detail,
    }
}

fn not_worse(config: &GateConfig, champion: &Metrics, candidate: &Metrics) -> Check {
    let required = champion.accuracy + config.margin;
    let passed = candidate.accuracy >= required;
    let relation = if passed { "reaches" } else { "is below" };
    Check {
        name: "not_worse_than_champion".into(),
        passed,
        detail: format!(
            "candidate accuracy {:.4} {relation} champion accuracy {:.4} + margin {:.4}",
            candidate.accuracy, champion.accuracy, config.margin
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ml::{ClassMetrics, Confusion};

    /// Metrics with the given accuracy and (label, support, recall) classes.
    fn metrics(accuracy: f64, classes: &[(i32, usize, f64)]) -> Metrics {
        let per_class: BTreeMap<String, ClassMetrics> = classes
            .iter()
            .map(|&(label, support, recall)| {
                (
                    label.to_string(),
                    ClassMetrics {
                        support,
                        recall,
                        precision: recall,
                        f1: recall,
                    },
                )
            })
            .collect();
        Metrics {
            n: classes.iter().map(|c| c.1).sum(),
            accuracy,
            macro_f1: 0.0,
            per_class,
            confusion: Confusion {
                labels: Vec::new(),
                counts: Vec::new(),
            },
        }
    }

    fn check<'a>(verdict: &'a Verdict, name: &str) -> &'a Check {
        verdict.checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn without_champion_only_the_floor_applies() {
        let config = GateConfig::default();
        let good = judge(&config, None, &metrics(0.5, &[(5, 100, 0.1)]));
        assert!(good.passed);
        assert_eq!(good.checks.len(), 1);
        assert!(good.reasons().is_empty());

        let bad = judge(&config, None, &metrics(0.40, &[]));
        assert!(!bad.passed);
        assert_eq!(
            bad.reasons(),
            vec!["candidate accuracy 0.4000 is below the floor 0.4500"]
        );
    }

    #[test]
    fn a_candidate_as_good_as_the_champion_passes() {
        let champion = metrics(0.60, &[(5, 100, 0.70), (6, 90, 0.60)]);
        let candidate = metrics(0.60, &[(5, 100, 0.60), (6, 90, 0.65)]);
        let verdict = judge(&GateConfig::default(), Some(&champion), &candidate);
        assert!(verdict.passed, "{verdict:?}");
        let names: Vec<&str> = verdict.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["accuracy_floor", "class_recall", "not_worse_than_champion"]);
        assert!(check(&verdict, "class_recall").detail.contains("5, 6"));
    }

    #[test]
    fn every_regressing_class_is_named() {
        let champion = metrics(0.60, &[(5, 100, 0.70), (6, 90, 0.60), (7, 30, 0.50)]);
        let candidate = metrics(0.62, &[(5, 100, 0.50), (6, 90, 0.60), (7, 30, 0.20)]);
        let verdict = judge(&GateConfig::default(), Some(&champion), &candidate);
        assert!(!verdict.passed);
        let recall = check(&verdict, "class_recall");
        assert!(!recall.passed);
        assert!(
            recall.detail.contains("class 5 recall 0.7000 -> 0.5000"),
            "{}",
            recall.detail
        );
        assert!(
            recall.detail.contains("class 7 recall 0.5000 -> 0.2000"),
            "{}",
            recall.detail
        );
        assert!(!recall.detail.contains("class 6"));
        assert_eq!(verdict.reasons(), vec![recall.detail.clone()]);
    }

    #[test]
    fn small_classes_are_not_checked_and_missing_ones_count_as_zero() {
        let config = GateConfig::default();
        let champion = metrics(0.60, &[(3, 9, 1.0), (8, 10, 0.5)]);
        let candidate = metrics(0.60, &[(3, 9, 0.0)]);
        let verdict = judge(&config, Some(&champion), &candidate);
        let recall = check(&verdict, "class_recall");
        assert!(!recall.passed);
        assert!(recall.detail.contains("class 8 recall 0.5000 -> 0.0000"));
        assert!(!recall.detail.contains("class 3"));
    }

    #[test]
    fn worse_than_champion_or_short_of_the_margin_fails() {
        let champion = metrics(0.60, &[]);
        let worse = judge(&GateConfig::default(), Some(&champion), &metrics(0.59, &[]));
        assert!(!check(&worse, "not_worse_than_champion").passed);
        assert_eq!(worse.reasons().len(), 1);

        let config = GateConfig {
            margin: 0.02,
            ..GateConfig::default()
        };
        let short = judge(&config, Some(&champion), &metrics(0.61, &[]));
        assert!(!short.passed);
        assert!(short.reasons()[0].contains("margin 0.0200"));
        assert!(judge(&config, Some(&champion), &metrics(0.63, &[])).passed);
    }

    #[test]
    fn config_defaults_fill_missing_fields() {
        let config: GateConfig = serde_json::from_str(r#"{"margin": 0.01}"#).unwrap();
        assert_eq!(
            config,
            GateConfig {
                margin: 0.01,
                ..GateConfig::default()
            }
        );
    }
}
