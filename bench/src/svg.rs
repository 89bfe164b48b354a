//! The chart: hand-written SVG, one horizontal bar group per metric, grouped by workload.
//!
//! Each bar is a runtime's cost relative to the baseline (see `results`), drawn on a log scale
//! from the baseline's line at 1× outwards: right of the line is worse than the baseline, left
//! is better. Log scale because the ratios span four orders of magnitude (a served getpid
//! against a native one), and bars from 1× because a ratio has no natural zero.

use std::fmt::Write as _;

use crate::report::num;
use crate::results::Results;

const WIDTH: f64 = 980.0;
const LABEL_X: f64 = 16.0;
const PLOT_X0: f64 = 330.0;
const PLOT_X1: f64 = 900.0;
const TOP: f64 = 100.0;
const BAR_H: f64 = 11.0;
const BAR_GAP: f64 = 2.0;
const GROUP_PAD: f64 = 9.0;
const SECTION_H: f64 = 26.0;
const COLORS: [&str; 6] = ["#e8590c", "#1c7ed6", "#2f9e44", "#9c36b5", "#c2255c", "#0c8599"];

/// One runtime's bar in a metric's group: its cost, or `None` when the cell failed.
struct Bar {
    color: &'static str,
    cost: Option<f64>,
}

enum Row {
    Section { title: String, note: Option<String> },
    Metric { label: String, bars: Vec<Bar> },
}

/// Renders `chart.svg`.
pub fn chart(results: &Results) -> String {
    let baseline = results.meta.baseline.clone().unwrap_or_default();
    let others: Vec<&str> =
        results.meta.runtimes.iter().map(|r| r.name.as_str()).filter(|name| *name != baseline).collect();
    let rows = rows(results, &others);
    let costs = rows.iter().flat_map(|r| match r {
        Row::Metric { bars, .. } => bars.iter().filter_map(|b| b.cost).collect(),
        Row::Section { .. } => Vec::new(),
    });
    let scale = Scale::fit(costs);

    let height = TOP + rows.iter().map(|r| row_height(r, others.len())).sum::<f64>() + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    header(&mut svg, results, &baseline, &others);
    grid(&mut svg, &scale, height - 30.0, &baseline);

    let mut y = TOP;
    for row in &rows {
        match row {
            Row::Section { title, note } => {
                let text = match note {
                    Some(n) => format!("{} — {}", esc(title), esc(n)),
                    None => esc(title),
                };
                let _ = writeln!(
                    svg,
                    r##"<text x="{LABEL_X}" y="{:.1}" font-size="13" font-weight="bold" fill="#212529">{text}</text>"##,
                    y + 18.0
                );
            }
            Row::Metric { label, bars } => metric_group(&mut svg, &scale, y, label, bars),
        }
        y += row_height(row, others.len());
    }
    svg.push_str("</svg>\n");
    svg
}

fn rows(results: &Results, others: &[&str]) -> Vec<Row> {
    let mut rows = Vec::new();
    for workload in &results.workloads {
        let note = workload.skipped.clone().or_else(|| workload.error.as_ref().map(|_| "not run (see report)".into()));
        let metrics: Vec<_> = workload.metrics.iter().filter(|m| m.chart).collect();
        rows.push(Row::Section { title: workload.title.into(), note: note.clone() });
        if note.is_some() {
            continue;
        }
        for metric in metrics {
            let bars = others
                .iter()
                .enumerate()
                .map(|(i, name)| Bar {
                    color: COLORS[i % COLORS.len()],
                    cost: metric.cells.iter().find(|c| c.runtime == *name).and_then(|c| c.cost),
                })
                .collect();
            rows.push(Row::Metric { label: format!("{} ({})", metric.label, metric.unit), bars });
        }
    }
    rows
}

fn row_height(row: &Row, bars: usize) -> f64 {
    match row {
        Row::Section { .. } => SECTION_H,
        Row::Metric { .. } => {
            let n = bars.max(1) as f64;
            n * BAR_H + (n - 1.0) * BAR_GAP + GROUP_PAD
        }
    }
}

fn header(svg: &mut String, results: &Results, baseline: &str, others: &[&str]) {
    let meta = &results.meta;
    let _ = writeln!(
        svg,
        r##"<text x="{LABEL_X}" y="26" font-size="17" font-weight="bold" fill="#212529">moat-bench: cost relative to {} (log scale, shorter is better)</text>"##,
        esc(baseline)
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LABEL_X}" y="46" font-size="11" fill="#495057">{} · {} run · {} CPUs · Linux {} · medians; cost = time or memory ÷ {b}'s, or {b}'s throughput ÷ this one's</text>"##,
        esc(&meta.date),
        meta.mode,
        meta.cpus,
        esc(&meta.kernel),
        b = esc(baseline)
    );
    let mut x = LABEL_X;
    for (i, name) in others.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(svg, r#"<rect x="{x}" y="58" width="14" height="11" fill="{color}"/>"#);
        let _ =
            writeln!(svg, r##"<text x="{:.1}" y="68" font-size="12" fill="#212529">{}</text>"##, x + 19.0, esc(name));
        x += 30.0 + 7.0 * name.len() as f64;
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{x}" y1="63" x2="{:.1}" y2="63" stroke="#212529" stroke-width="2"/><text x="{:.1}" y="68" font-size="12" fill="#212529">{} = 1×</text>"##,
        x + 14.0,
        x + 19.0,
        esc(baseline)
    );
}

fn grid(svg: &mut String, scale: &Scale, bottom: f64, baseline: &str) {
    for &tick in &scale.ticks {
        let x = scale.x(tick);
        let (stroke, width) = if (tick - 1.0).abs() < 1e-9 { ("#212529", 1.5) } else { ("#dee2e6", 1.0) };
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="{stroke}" stroke-width="{width}"/>"##,
            TOP - 8.0
        );
        for y in [TOP - 12.0, bottom + 14.0] {
            let _ = writeln!(
                svg,
                r##"<text x="{x:.1}" y="{y:.1}" font-size="10" fill="#495057" text-anchor="middle">{}×</text>"##,
                tick_label(tick)
            );
        }
    }
    let one = scale.x(1.0);
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#495057" text-anchor="end">← better than {b}</text><text x="{:.1}" y="{:.1}" font-size="10" fill="#495057">worse than {b} →</text>"##,
        one - 6.0,
        bottom + 28.0,
        one + 6.0,
        bottom + 28.0,
        b = esc(baseline)
    );
}

fn metric_group(svg: &mut String, scale: &Scale, y: f64, label: &str, bars: &[Bar]) {
    let n = bars.len().max(1) as f64;
    let group_h = n * BAR_H + (n - 1.0) * BAR_GAP;
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#212529">{}</text>"##,
        LABEL_X + 10.0,
        y + group_h / 2.0 + 4.0,
        esc(label)
    );
    let one = scale.x(1.0);
    for (i, bar) in bars.iter().enumerate() {
        let top = y + i as f64 * (BAR_H + BAR_GAP);
        let Some(cost) = bar.cost else {
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#c92a2a">no result</text>"##,
                one + 4.0,
                top + BAR_H - 2.0
            );
            continue;
        };
        let end = scale.x(cost);
        let (x, w) = if end >= one { (one, end - one) } else { (end, one - end) };
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{BAR_H}" fill="{}"/>"#,
            w.max(1.0),
            bar.color
        );
        let (tx, anchor) = if end >= one { (end + 4.0, "start") } else { (end - 4.0, "end") };
        let _ = writeln!(
            svg,
            r##"<text x="{tx:.1}" y="{:.1}" font-size="10" fill="#212529" text-anchor="{anchor}">×{}</text>"##,
            top + BAR_H - 2.0,
            num(cost)
        );
    }
}

/// A log-scale axis over [lo, hi], both on the 1-2-5 tick series.
struct Scale {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Scale {
    fn fit(costs: impl Iterator<Item = f64>) -> Self {
        let (mut min, mut max) = (1.0f64, 1.0f64);
        for c in costs.filter(|c| c.is_finite() && *c > 0.0) {
            min = min.min(c);
            max = max.max(c);
        }
        // Room on both sides of 1×, and for the value labels at the bar ends.
        let series = tick_series();
        let lo = series.iter().rev().copied().find(|t| *t <= (min / 1.2).min(0.5)).unwrap_or(series[0]);
        let hi = series.iter().copied().find(|t| *t >= (max * 1.6).max(2.0)).unwrap_or(series[series.len() - 1]);
        let ticks = series.into_iter().filter(|t| *t >= lo && *t <= hi).collect();
        Self { lo, hi, ticks }
    }

    fn x(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        let f = (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        PLOT_X0 + f * (PLOT_X1 - PLOT_X0)
    }
}

/// 0.01, 0.02, 0.05, 0.1 … 100000.
fn tick_series() -> Vec<f64> {
    (-2..=5).flat_map(|exp| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(exp))).collect()
}

/// A tick value without trailing zeros: 0.05, 0.2, 1, 20, 5000.
fn tick_label(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::Scale;

    #[test]
    fn scale_covers_costs_and_one() {
        let s = Scale::fit([0.8, 35.0].into_iter());
        assert!(s.lo <= 0.5 && s.hi >= 35.0 * 1.6);
        assert!(s.ticks.iter().any(|t| (t - 1.0).abs() < 1e-9));
        assert!(s.x(s.lo) < s.x(1.0) && s.x(1.0) < s.x(s.hi));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(super::tick_label(0.05), "0.05");
        assert_eq!(super::tick_label(0.2), "0.2");
        assert_eq!(super::tick_label(1.0), "1");
        assert_eq!(super::tick_label(5000.0), "5000");
    }
}
