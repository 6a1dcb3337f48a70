//! Robust peer statistics: median and MAD within a peer group.
//!
//! The modified z-score (Iglewicz & Hoaglin) is `0.6745 (x - median) / MAD`;
//! values above ~3.5 are outliers. It is robust to the outliers themselves:
//! a few fraudulent providers barely move the median or the MAD.

use std::collections::BTreeMap;

use crate::model::{MunicipalityCode, ProviderId, ServiceType};

/// Which per-provider statistic a sample is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum PeerMetric {
    /// Share of visits registered manually or edited afterwards (pattern 5).
    ManualShare,
    /// Share of visits with exact-planned or whole-hour durations (pattern 6).
    RoundedShare,
    /// Performed hours per active client in 30 days (pattern 10).
    HoursPerClient,
    /// Performed home-care hours over granted hours (pattern 15).
    GrantedUtilisation,
    /// Share of a provider's clients whose time per day with care rose
    /// against their own past (pattern 10).
    ClientRiseShare,
}

/// A peer group: providers of one municipality compared on one metric,
/// optionally within one service type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct PeerGroup {
    /// The paying municipality.
    pub municipality: MunicipalityCode,
    /// The statistic.
    pub metric: PeerMetric,
    /// The service type, for per-service metrics.
    pub service: Option<ServiceType>,
}

/// Median and MAD of a peer group.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeerStats {
    /// Number of providers in the group.
    pub n: usize,
    /// Median of the providers' values.
    pub median: f64,
    /// Median absolute deviation from the median.
    pub mad: f64,
}

/// The modified z-score of `x` in a group, with the MAD floored at
/// `mad_floor` so that a group of near-identical providers does not make
/// every small difference infinite.
pub fn modified_z(x: f64, stats: &PeerStats, mad_floor: f64) -> f64 {
    0.6745 * (x - stats.median) / stats.mad.max(mad_floor)
}

/// Median of a slice (sorted in place). `None` if empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

impl PeerStats {
    /// Median and MAD of `values`. `None` if empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v = values.to_vec();
        let m = median(&mut v)?;
        let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
        let mad = median(&mut dev)?;
        Some(PeerStats { n: v.len(), median: m, mad })
    }
}

/// The latest sample of every provider in every peer group, and the group
/// statistics computed from them.
///
/// Samples are keyed by provider, so feeding the same provider twice
/// replaces its value: the table can be fed from this engine's providers,
/// or from a shared table holding every instance's providers, with the
/// same result. Iteration is ordered, so statistics are deterministic.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PeerTable {
    samples: BTreeMap<PeerGroup, BTreeMap<ProviderId, f64>>,
    stats: BTreeMap<PeerGroup, PeerStats>,
}

impl PeerTable {
    /// Records `provider`'s current value in `group` (replacing the last one).
    pub fn record(&mut self, group: PeerGroup, provider: ProviderId, value: f64) {
        self.samples.entry(group).or_default().insert(provider, value);
    }

    /// Removes `provider` from `group` (e.g. too few visits to compare).
    pub fn forget(&mut self, group: PeerGroup, provider: ProviderId) {
        if let Some(g) = self.samples.get_mut(&group) {
            g.remove(&provider);
        }
    }

    /// Removes `provider` from every group (its state was evicted).
    pub fn forget_provider(&mut self, provider: ProviderId) {
        for g in self.samples.values_mut() {
            g.remove(&provider);
        }
    }

    /// Recomputes every group's statistics from the current samples.
    pub fn recompute(&mut self) {
        self.stats = self
            .samples
            .iter()
            .filter_map(|(group, values)| {
                let v: Vec<f64> = values.values().copied().collect();
                PeerStats::of(&v).map(|s| (*group, s))
            })
            .collect();
    }

    /// Every sample, in (group, provider) order.
    pub fn samples(&self) -> impl Iterator<Item = (PeerGroup, ProviderId, f64)> + '_ {
        self.samples.iter().flat_map(|(g, values)| values.iter().map(move |(p, v)| (*g, *p, *v)))
    }

    /// Forgets the samples, keeping the statistics.
    pub fn drop_samples(&mut self) {
        self.samples.clear();
    }

    /// The statistics of a group as of the last [`PeerTable::recompute`].
    pub fn stats(&self, group: &PeerGroup) -> Option<&PeerStats> {
        self.stats.get(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad() {
        let s = PeerStats::of(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!((s.n, s.median, s.mad), (5, 3.0, 1.0));
        let even = PeerStats::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(even.median, 2.5);
        assert!(PeerStats::of(&[]).is_none());
    }

    #[test]
    fn an_outlier_has_a_large_modified_z_and_a_typical_value_a_small_one() {
        let s = PeerStats::of(&[0.05, 0.06, 0.04, 0.05, 0.07, 0.05, 0.45]).unwrap();
        assert!(modified_z(0.45, &s, 0.01) > 3.5);
        assert!(modified_z(0.07, &s, 0.01).abs() < 3.5);
    }

    #[test]
    fn the_mad_floor_keeps_identical_peers_finite() {
        let s = PeerStats::of(&[0.1, 0.1, 0.1]).unwrap();
        assert!((modified_z(0.11, &s, 0.02) - 0.6745 * 0.01 / 0.02).abs() < 1e-9);
    }

    #[test]
    fn recording_a_provider_again_replaces_its_sample() {
        let g = PeerGroup {
            municipality: MunicipalityCode::parse("2480").unwrap(),
            metric: PeerMetric::ManualShare,
            service: None,
        };
        let mut t = PeerTable::default();
        let p = ProviderId::from_nine_digits(556_000_001);
        t.record(g, p, 1.0);
        t.record(g, p, 3.0);
        t.record(g, ProviderId::from_nine_digits(556_000_002), 5.0);
        t.recompute();
        assert_eq!(t.stats(&g).map(|s| (s.n, s.median)), Some((2, 4.0)));
    }
}
