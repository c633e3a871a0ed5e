//! Charts as inline SVG written on the server: a confusion matrix as a heat
//! map, per-class recall as paired bars, accuracy per version as a line.
//! No script draws anything, so a page reads the same with JavaScript off.
//! SVG shapes are always closed (`{}`, never maud's void `;`): inside an
//! `<svg>` the HTML parser closes no tag by itself, so an unclosed `<rect>`
//! would swallow what follows it.

use maud::{Markup, html};
use retrain_steps::ml::{Confusion, Metrics};

/// Side of a heat map cell, in SVG units.
const CELL: usize = 40;
/// Room for the labels left of and above a heat map.
const MARGIN: usize = 56;

/// A confusion matrix: rows are true labels, columns predicted ones, each
/// cell as dark as its share of its row, with its count written in it.
/// Cells carry `data-true` and `data-predicted` for tests and tooltips.
pub fn heat_map(id: &str, title: &str, confusion: &Confusion) -> Markup {
    let n = confusion.labels.len();
    let side = MARGIN + n * CELL + 8;
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg.heat viewBox={ "0 0 " (side) " " (side) } width=(side) height=(side) role="img"
                aria-label={ (title) ": rows are true labels, columns predicted labels" } {
                text.axis x=(MARGIN + n * CELL / 2) y="12" text-anchor="middle" { "predicted" }
                text.axis x="12" y=(MARGIN + n * CELL / 2) text-anchor="middle"
                    transform={ "rotate(-90 12 " (MARGIN + n * CELL / 2) ")" } { "true" }
                @for (i, label) in confusion.labels.iter().enumerate() {
                    text.label x=(MARGIN + i * CELL + CELL / 2) y=(MARGIN - 8) text-anchor="middle" { (label) }
                    text.label x=(MARGIN - 8) y=(MARGIN + i * CELL + CELL / 2 + 4) text-anchor="end" { (label) }
                }
                @for (row, counts) in confusion.counts.iter().enumerate() {
                    @let total: u64 = counts.iter().sum();
                    @for (col, count) in counts.iter().enumerate() {
                        @let share = if total == 0 { 0.0 } else { *count as f64 / total as f64 };
                        g.cell data-true=(confusion.labels[row]) data-predicted=(confusion.labels[col]) {
                            title { "true " (confusion.labels[row]) ", predicted " (confusion.labels[col]) ": " (count) }
                            rect x=(MARGIN + col * CELL) y=(MARGIN + row * CELL) width=(CELL) height=(CELL)
                                class=[(row == col).then_some("diagonal")]
                                fill={ "rgba(37, 99, 235, " (format!("{:.3}", 0.08 + 0.92 * share)) ")" } {}
                            text x=(MARGIN + col * CELL + CELL / 2) y=(MARGIN + row * CELL + CELL / 2 + 4)
                                text-anchor="middle" class=(if share > 0.5 { "on-dark" } else { "on-light" }) { (count) }
                        }
                    }
                }
            }
        }
    }
}

/// Recall per class, the champion's bar above the candidate's; classes
/// either model knows. `None`: there was no champion.
pub fn recall_bars(champion: Option<&Metrics>, candidate: &Metrics) -> Markup {
    const WIDTH: usize = 420;
    const LEFT: usize = 48;
    const BAR: usize = 12;
    const ROW: usize = 34;
    let mut classes: Vec<&String> = candidate.per_class.keys().collect();
    if let Some(champion) = champion {
        classes.extend(champion.per_class.keys());
    }
    classes.sort();
    classes.dedup();
    let height = classes.len() * ROW + 24;
    let span = (WIDTH - LEFT - 60) as f64;
    let recall = |metrics: &Metrics, class: &str| metrics.per_class.get(class).map_or(0.0, |c| c.recall);
    html! {
        figure.chart {
            figcaption {
                "Recall per class: "
                @if champion.is_some() { span.key.champion { "champion" } " and " }
                span.key.candidate { "candidate" }
            }
            svg.bars viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height) role="img"
                aria-label="recall per class" {
                @for (i, class) in classes.iter().enumerate() {
                    @let y = i * ROW + 4;
                    text.label x=(LEFT - 8) y=(y + BAR + 4) text-anchor="end" { (class) }
                    @for (j, (who, metrics)) in champion.map(|m| ("champion", m)).into_iter()
                        .chain([("candidate", candidate)]).enumerate() {
                        @let value = recall(metrics, class);
                        @let bar_y = y + j * (BAR + 2);
                        rect class=(who) x=(LEFT) y=(bar_y) height=(BAR)
                            width=(format!("{:.1}", (value * span).max(1.0)))
                            data-class=(class) data-who=(who) data-recall=(format!("{value:.4}")) {
                            title { (who) " recall of " (class) ": " (super::format::percent(value)) }
                        }
                        text.value x=(format!("{:.1}", LEFT as f64 + value * span + 4.0)) y=(bar_y + BAR - 2) {
                            (super::format::percent(value))
                        }
                    }
                }
                text.axis x=(LEFT) y=(height - 4) { "0%" }
                text.axis x=(LEFT + span as usize) y=(height - 4) text-anchor="end" { "100%" }
            }
        }
    }
}

/// Golden accuracy per version, oldest first, as a line with a dot per
/// version (`points`: version number and accuracy).
pub fn accuracy_line(points: &[(i32, f64)]) -> Markup {
    const WIDTH: f64 = 240.0;
    const HEIGHT: f64 = 60.0;
    const PAD: f64 = 6.0;
    if points.is_empty() {
        return html! { span.muted { "no versions scored" } };
    }
    let low = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let high = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let range = (high - low).max(0.01);
    let step = if points.len() > 1 {
        (WIDTH - 2.0 * PAD) / (points.len() - 1) as f64
    } else {
        0.0
    };
    let xy: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .map(|(i, (_, accuracy))| {
            (
                PAD + i as f64 * step,
                HEIGHT - PAD - (accuracy - low) / range * (HEIGHT - 2.0 * PAD),
            )
        })
        .collect();
    let line: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    html! {
        svg.spark viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width=(WIDTH) height=(HEIGHT) role="img"
            aria-label="golden accuracy per version" {
            polyline points=(line.join(" ")) {}
            @for ((version, accuracy), (x, y)) in points.iter().zip(&xy) {
                circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="3" {
                    title { "v" (version) ": " (super::format::percent(*accuracy)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_is_closed_and_every_cell_written() {
        let confusion = Confusion {
            labels: vec!["5".into(), "6".into()],
            counts: vec![vec![7, 3], vec![0, 12]],
        };
        let svg = heat_map("m", "matrix", &confusion).into_string();
        assert_eq!(svg.matches("<rect").count(), 4);
        assert_eq!(svg.matches("</rect>").count(), 4);
        // Row "5" holds 7 of 10: its diagonal cell is 0.08 + 0.92 * 0.7 = 0.724 dark.
        assert!(svg.contains("rgba(37, 99, 235, 0.724)"), "{svg}");
        for count in [">7<", ">3<", ">0<", ">12<"] {
            assert!(svg.contains(count), "{count} in {svg}");
        }
        let line = accuracy_line(&[(1, 0.6), (2, 0.62)]).into_string();
        assert_eq!(line.matches("<polyline").count(), line.matches("</polyline>").count());
    }
}
