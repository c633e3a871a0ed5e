//! A run's timeline: every attempt of every step as a bar on one time axis
//! (a Gantt chart), read from the run's event history, where each attempt
//! starts with a move to `running` and ends with the move out of it.

use super::format;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use retrain_engine::{RunEvent, StepRecord};

/// One attempt of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub step: String,
    pub attempt: i32,
    pub start: DateTime<Utc>,
    /// `None`: still running.
    pub end: Option<DateTime<Utc>>,
    /// Where the step went from `running`: `succeeded`, `pending` (a retry
    /// follows), `failed`, `cancelled`; `running` while it runs.
    pub ended_as: String,
}

/// The attempts in `events` (a run's history, oldest first), in the order
/// they started.
pub fn attempts(events: &[RunEvent]) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = Vec::new();
    for event in events {
        let Some(step) = &event.step else { continue };
        let was_running = event.from_status.as_deref() == Some("running");
        let is_running = event.to_status == "running";
        // running -> running is a note during an attempt (the gate's
        // decision): it neither starts nor ends one.
        if is_running && !was_running {
            out.push(Attempt {
                step: step.clone(),
                attempt: event.attempt.unwrap_or(0),
                start: event.at,
                end: None,
                ended_as: "running".to_owned(),
            });
        } else if was_running
            && !is_running
            && let Some(open) = out.iter_mut().rev().find(|a| &a.step == step && a.end.is_none())
        {
            open.end = Some(event.at);
            open.ended_as = event.to_status.clone();
        }
    }
    out
}

/// The chart: a row per step in pipeline order, a bar per attempt, time
/// running left to right from the first attempt to the last end (or `now`).
pub fn gantt(steps: &[StepRecord], attempts: &[Attempt], now: DateTime<Utc>) -> Markup {
    const WIDTH: f64 = 760.0;
    const LEFT: f64 = 90.0;
    const ROW: f64 = 30.0;
    let Some(first) = attempts.iter().map(|a| a.start).min() else {
        return html! { p.muted { "No step has started yet." } };
    };
    let last = attempts.iter().map(|a| a.end.unwrap_or(now)).max().unwrap_or(now);
    let span_ms = (last - first).num_milliseconds().max(1) as f64;
    let scale = (WIDTH - LEFT - 70.0) / span_ms;
    let x = |at: DateTime<Utc>| LEFT + (at - first).num_milliseconds() as f64 * scale;
    let height = steps.len() as f64 * ROW + 22.0;
    html! {
        svg.gantt viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height) role="img"
            aria-label="each step's attempts over time" {
            @for (row, step) in steps.iter().enumerate() {
                @let y = row as f64 * ROW;
                text.label x=(LEFT - 8.0) y=(y + 19.0) text-anchor="end" { (step.name) }
                line.lane x1=(LEFT) x2=(WIDTH) y1=(y + ROW) y2=(y + ROW) {}
                @for attempt in attempts.iter().filter(|a| a.step == step.name) {
                    @let start = x(attempt.start);
                    @let end = x(attempt.end.unwrap_or(now));
                    @let took = format::between(Some(attempt.start), Some(attempt.end.unwrap_or(now)));
                    g.attempt data-step=(attempt.step) data-attempt=(attempt.attempt) data-ended=(attempt.ended_as) {
                        title { (attempt.step) " attempt " (attempt.attempt) ": " (attempt.ended_as) " after " (took) }
                        rect class={ "attempt-" (attempt.ended_as) } x=(format!("{start:.1}")) y=(y + 6.0)
                            width=(format!("{:.1}", (end - start).max(3.0))) height=(ROW - 12.0) rx="3" {}
                        text.value x=(format!("{:.1}", start.max(end) + 4.0)) y=(y + 19.0) { "#" (attempt.attempt) " " (took) }
                    }
                }
            }
            text.axis x=(LEFT) y=(height - 4.0) { (format::time(first)) " UTC" }
            text.axis x=(WIDTH - 4.0) y=(height - 4.0) text-anchor="end" { "+" (format::millis((last - first).num_milliseconds())) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, step: &str, attempt: i32, from: &str, to: &str, second: i64) -> RunEvent {
        RunEvent {
            id,
            run_id: uuid::Uuid::nil(),
            step: Some(step.to_owned()),
            attempt: Some(attempt),
            from_status: Some(from.to_owned()),
            to_status: to.to_owned(),
            actor: "worker".to_owned(),
            reason: None,
            detail: None,
            at: DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap(),
        }
    }

    #[test]
    fn a_retried_step_has_one_bar_per_attempt() {
        let events = [
            event(1, "train", 1, "pending", "running", 0),
            event(2, "train", 1, "running", "pending", 2),
            event(3, "train", 2, "pending", "running", 5),
            event(4, "train", 2, "running", "running", 8),
            event(5, "train", 2, "running", "succeeded", 9),
            event(6, "validate", 1, "pending", "running", 9),
        ];
        let got = attempts(&events);
        let summary: Vec<(i32, i64, Option<i64>, &str)> = got
            .iter()
            .map(|a| {
                (
                    a.attempt,
                    a.start.timestamp() - 1_700_000_000,
                    a.end.map(|e| e.timestamp() - 1_700_000_000),
                    a.ended_as.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, 0, Some(2), "pending"),
                (2, 5, Some(9), "succeeded"),
                (1, 9, None, "running"),
            ]
        );
    }
}
