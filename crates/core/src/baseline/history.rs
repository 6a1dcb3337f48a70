//! A provider's own history: EWMA and one-sided CUSUM.

/// Exponentially weighted moving mean and variance.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Ewma {
    /// Current mean.
    pub mean: f64,
    /// Current variance.
    pub variance: f64,
    /// Observations so far.
    pub n: u32,
}

impl Ewma {
    /// Adds an observation with smoothing factor `alpha` (0..1, larger
    /// forgets faster). The first observation sets the mean.
    pub fn update(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.variance = 0.0;
        } else {
            let diff = x - self.mean;
            let incr = alpha * diff;
            self.mean += incr;
            self.variance = (1.0 - alpha) * (self.variance + diff * incr);
        }
        self.n = self.n.saturating_add(1);
    }

    /// Standard deviation.
    pub fn std_dev(&self) -> f64 {
        self.variance.max(0.0).sqrt()
    }
}

/// Upper one-sided CUSUM: accumulates how far observations exceed a target
/// by more than an allowance `k`; signals a persistent upward shift when the
/// sum exceeds a decision threshold `h`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Cusum {
    /// Current cumulative sum (never negative).
    pub sum: f64,
    /// Consecutive steps the sum has been above zero.
    pub run_length: u32,
}

impl Cusum {
    /// Adds the excess `x` (observation minus target) with allowance `k`;
    /// returns the new sum.
    pub fn update(&mut self, x: f64, k: f64) -> f64 {
        self.sum = (self.sum + x - k).max(0.0);
        self.run_length = if self.sum > 0.0 { self.run_length + 1 } else { 0 };
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_follows_a_level_shift() {
        let mut e = Ewma::default();
        for _ in 0..50 {
            e.update(10.0, 0.2);
        }
        assert!((e.mean - 10.0).abs() < 1e-9);
        for _ in 0..50 {
            e.update(20.0, 0.2);
        }
        assert!((e.mean - 20.0).abs() < 0.01);
    }

    #[test]
    fn cusum_ignores_noise_within_the_allowance_and_signals_a_shift() {
        let mut c = Cusum::default();
        for x in [0.01, -0.02, 0.015, -0.01, 0.0, 0.01] {
            c.update(x, 0.02);
        }
        assert_eq!(c.sum, 0.0);
        for _ in 0..6 {
            c.update(0.05, 0.02);
        }
        assert!((c.sum - 0.18).abs() < 1e-9);
        assert_eq!(c.run_length, 6);
    }
}
