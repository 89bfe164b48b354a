//! Order statistics of a handful of samples: median, quartiles, extremes.

use serde::Serialize;

/// Summary of one cell's samples.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// First and third quartile (linear interpolation between order statistics).
    pub q1: f64,
    pub q3: f64,
}

/// Summarises `samples`; `None` when there are none.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    Some(Summary {
        median: quantile(&sorted, 0.5),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        q1: quantile(&sorted, 0.25),
        q3: quantile(&sorted, 0.75),
    })
}

/// The `q`-quantile of sorted, non-empty data.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len() - 1;
    // Position on the 0..=last scale, and the order statistic at or below it.
    let pos = q * last as f64;
    let lower = (0..=last).rev().find(|&i| i as f64 <= pos).unwrap_or(0);
    let upper = (lower + 1).min(last);
    let frac = pos - lower as f64;
    sorted[lower] + (sorted[upper] - sorted[lower]) * frac
}

#[cfg(test)]
mod tests {
    use super::summarize;

    #[test]
    fn odd_and_even_counts() {
        let s = summarize(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        let s = summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!(s.q1, 1.75);
        assert_eq!(s.q3, 3.25);
        assert!(summarize(&[]).is_none());
    }
}
