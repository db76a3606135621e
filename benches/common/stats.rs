//! Medians and ratios with their run-to-run spread, shared by `benches/sched.rs` and
//! `benches/msgbench` (included with `#[path]`).

use std::fmt;

/// The median of `v` (the mean of the middle two for an even count; 0 when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// A ratio a ÷ b of two runtimes measured in alternating runs: the median and the min–max
/// of the per-round ratios (round i: `a[i] ÷ b[i]`). No ratio where a `b` is 0 (a metric
/// the scenario does not measure).
pub struct Ratio {
    mid: f64,
    lo: f64,
    hi: f64,
    rounds: usize,
}

impl Ratio {
    pub fn of(a: &[f64], b: &[f64]) -> Ratio {
        if b.iter().any(|&y| y <= 0.0) {
            return Ratio { mid: f64::NAN, lo: f64::NAN, hi: f64::NAN, rounds: 0 };
        }
        let per: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        Ratio {
            mid: median(&per),
            lo: per.iter().copied().fold(f64::INFINITY, f64::min),
            hi: per.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            rounds: per.len(),
        }
    }

    /// True when 1.0 lies within the per-round min–max: no difference shows beyond the spread.
    pub fn within_spread(&self) -> bool {
        self.rounds >= 2 && self.lo <= 1.0 && 1.0 <= self.hi
    }
}

/// `0.97 (0.91–1.04) ≈`: ≈ marks a ratio whose spread includes 1.0; one round shows no
/// range, no ratio shows "—".
impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rounds {
            0 => return write!(f, "—"),
            1 => return write!(f, "{:.2}", self.mid),
            _ => {}
        }
        write!(f, "{:.2} ({:.2}–{:.2})", self.mid, self.lo, self.hi)?;
        if self.within_spread() {
            write!(f, " ≈")?;
        }
        Ok(())
    }
}

/// The legend printed under every table with ratios.
pub const RATIO_LEGEND: &str = "ratio: median (min–max) of the per-round ratios; ≈: 1.0 is inside \
                                 that range, the difference is within the run-to-run spread";
