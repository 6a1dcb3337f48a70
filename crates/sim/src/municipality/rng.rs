//! Seeded randomness.
//!
//! Every random choice comes from a [`Rng`] (ChaCha8) whose seed is derived
//! from the configuration seed and a *stream* path such as
//! `[DAY, provider, day]`. Separate streams keep the output stable: adding a
//! fraud scenario at one provider does not reshuffle the visits of another.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Stream tags: the first element of a stream path.
pub(super) mod tag {
    pub const PROVIDERS: u64 = 1;
    pub const FRAUD_SETUP: u64 = 2;
    pub const CLIENTS: u64 = 3;
    pub const CHURN: u64 = 4;
    pub const DAY: u64 = 5;
    pub const NIGHT: u64 = 6;
    pub const REPORT: u64 = 7;
    pub const INVOICE: u64 = 8;
    pub const FRAUD_DAY: u64 = 9;
    pub const FRAUD_CLIENT: u64 = 10;
    pub const ACTIVATE: u64 = 11;
    pub const SECOND_JOBS: u64 = 12;
    /// Reference data and its fraud patterns (only with reference data).
    pub const REFERENCE: u64 = 13;
    /// Clients changing provider, and pattern 14.
    pub const CHANGES: u64 = 14;
}

/// A seeded random number generator with the few distributions the
/// simulator needs.
pub(super) struct Rng(ChaCha8Rng);

fn mix(mut z: u64) -> u64 {
    // SplitMix64 finaliser.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The generator of stream `path` under `seed`.
    pub fn new(seed: u64, path: &[u64]) -> Self {
        let mut h = mix(seed);
        for &p in path {
            h = mix(h ^ mix(p.wrapping_add(0x5851_F42D_4C95_7F2D)));
        }
        let mut bytes = [0u8; 32];
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&mix(h ^ (i as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes());
        }
        Rng(ChaCha8Rng::from_seed(bytes))
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [lo, hi] (inclusive); `lo` if the range is empty.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo { lo } else { self.0.random_range(lo..=hi) }
    }

    /// Uniform index below `n`; 0 if `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 { 0 } else { self.0.random_range(0..n) }
    }

    /// True with probability `p` (clamped to [0, 1]).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-scale spread.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Poisson with mean `lambda` (Knuth below 30, normal approximation above).
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda >= 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let limit = (-lambda).exp();
        let mut k = 0u32;
        let mut p = self.unit();
        while p > limit {
            k += 1;
            p *= self.unit();
        }
        k
    }

    /// A uniformly chosen element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() { None } else { items.get(self.below(items.len())) }
    }

    /// Index drawn with probability proportional to `weights` (non-negative).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// `digits` random lowercase hexadecimal digits.
    pub fn hex(&mut self, digits: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..digits).map(|_| char::from(HEX[self.below(16)])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, &[1, 2]).int(0, 1 << 40) as u64).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::new(7, &[1, 2]);
        let mut y = Rng::new(7, &[2, 1]);
        let xs: Vec<i64> = (0..8).map(|_| x.int(0, 1 << 40)).collect();
        let ys: Vec<i64> = (0..8).map(|_| y.int(0, 1 << 40)).collect();
        assert_ne!(xs, ys);
    }

    #[test]
    fn poisson_mean_is_about_lambda() {
        let mut r = Rng::new(1, &[]);
        for lambda in [0.3, 4.0, 50.0] {
            let n = 20_000;
            let mean = (0..n).map(|_| f64::from(r.poisson(lambda))).sum::<f64>() / f64::from(n);
            assert!((mean - lambda).abs() < 0.05 * lambda + 0.02, "{lambda}: {mean}");
        }
    }
}
