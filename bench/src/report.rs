//! The human report: a Markdown page with one table (a row per metric, a column per runtime)
//! and numbered footnotes for the errors.

use std::fmt::Write as _;

use crate::results::{Cell, Results};

/// Renders `report.md`.
pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    header(results, &mut out);
    let mut notes: Vec<String> = Vec::new();
    table(results, &mut out, &mut notes);
    if !notes.is_empty() {
        out.push_str("\nErrors:\n\n");
        for (i, note) in notes.iter().enumerate() {
            let _ = writeln!(out, "{}. {note}", i + 1);
        }
    }
    out
}

fn header(results: &Results, out: &mut String) {
    let meta = &results.meta;
    let _ = writeln!(out, "# moat-bench results\n");
    let _ = writeln!(out, "- date: {} ({} run, {:.0} s)", meta.date, meta.mode, meta.duration_s);
    let _ = writeln!(
        out,
        "- host: `{}`, Linux {}, {} CPUs, {:.1} GiB RAM",
        meta.host,
        meta.kernel,
        meta.cpus,
        meta.memory_mib as f64 / 1024.0
    );
    let _ = writeln!(
        out,
        "- host load: 1-minute load average {:.2} when the run started (before any of its own work) \
         and {:.2} when it ended, on {} CPUs",
        meta.load_start, meta.load_end, meta.cpus
    );
    out.push_str("- runtimes:\n");
    for rt in &meta.runtimes {
        let _ = writeln!(out, "  - **{}**: `{}` ({})", rt.name, rt.command, rt.version);
    }
    let base = meta.baseline.as_deref().unwrap_or("the baseline");
    let _ = writeln!(
        out,
        "\nEach cell: median (min–max) over the runs named in the workload's row, after warm-up. \
         **×N** is the cost relative to {base}: time or memory over {base}'s, or for throughput \
         {base}'s over this one, so ×2.0 means twice as slow (or twice the memory) as {base}.\n"
    );
}

fn table(results: &Results, out: &mut String, notes: &mut Vec<String>) {
    let runtimes: Vec<&str> = results.meta.runtimes.iter().map(|r| r.name.as_str()).collect();
    let baseline = results.meta.baseline.as_deref();
    let _ = writeln!(out, "| metric | unit | {} |", runtimes.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---:|".repeat(runtimes.len()));
    let blank = " |".repeat(runtimes.len());
    for workload in &results.workloads {
        if let Some(reason) = &workload.skipped {
            let _ = writeln!(out, "| **{}**: *{reason}* | |{blank}", workload.title);
            continue;
        }
        if let Some(error) = &workload.error {
            notes.push(format!("{}: {error}", workload.title));
            let _ = writeln!(out, "| **{}**: *not run, see error {}* | |{blank}", workload.title, notes.len());
            continue;
        }
        let runs = format!("{} runs, {} warm-up", workload.reps, workload.warmup);
        let _ = writeln!(out, "| **{}** ({runs}) | |{blank}", workload.title);
        for metric in &workload.metrics {
            let cells: Vec<String> = metric
                .cells
                .iter()
                .map(|cell| {
                    let note = cell_note(cell, workload.title, notes);
                    render_cell(cell, Some(cell.runtime.as_str()) == baseline, note)
                })
                .collect();
            let _ = writeln!(out, "| {} | {} | {} |", metric.label, metric.unit, cells.join(" | "));
        }
    }
}

/// Files the cell's errors as a footnote, once per distinct set; returns its number.
fn cell_note(cell: &Cell, workload: &str, notes: &mut Vec<String>) -> Option<usize> {
    if cell.errors.is_empty() {
        return None;
    }
    let text = format!("{} on {}: {}", workload, cell.runtime, cell.errors.join("; "));
    if let Some(i) = notes.iter().position(|n| *n == text) {
        return Some(i + 1);
    }
    notes.push(text);
    Some(notes.len())
}

fn render_cell(cell: &Cell, is_baseline: bool, note: Option<usize>) -> String {
    let mark = note.map(|n| format!(" ⚠{n}")).unwrap_or_default();
    let Some(s) = cell.summary else {
        return match note {
            Some(n) => format!("error {n}"),
            None => "—".into(),
        };
    };
    let spread = if cell.samples.len() > 1 { format!(" ({}–{})", num(s.min), num(s.max)) } else { String::new() };
    let ratio = match cell.cost {
        Some(cost) if !is_baseline => format!(" **×{}**", num(cost)),
        _ => String::new(),
    };
    format!("{}{spread}{ratio}{mark}", num(s.median))
}

/// Three significant digits, without scientific notation.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn three_significant_digits() {
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(45.67), "45.7");
        assert_eq!(num(4.56789), "4.57");
        assert_eq!(num(0.14159), "0.142");
    }
}
