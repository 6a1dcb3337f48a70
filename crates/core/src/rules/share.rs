//! A shared building block of peer rules on shares of visits: a provider's
//! share of visits with some property over a window, compared with the
//! other providers of its municipality by modified z-score.

use super::DayContext;
use crate::baseline::{PeerGroup, PeerMetric, PeerStats, PeerTable, modified_z};
use crate::finding::{Finding, RuleInfo, Severity, Unit};
use crate::model::EventId;
use crate::state::ProviderDay;

/// Window and thresholds of a share rule.
pub struct ShareTest {
    /// Which metric in the peer table.
    pub metric: PeerMetric,
    /// Window length, days.
    pub window_days: u32,
    /// Fewer visits in the window: not compared (too noisy).
    pub min_visits: u32,
    /// Fewest peers for a comparison.
    pub min_peers: usize,
    /// Modified z-score at or above which a provider is an outlier.
    pub z_threshold: f64,
    /// Smallest share that can be an outlier at all.
    pub min_share: f64,
    /// Floor of the MAD.
    pub mad_floor: f64,
    /// Modified z-score from which a finding is high severity.
    pub high_z: f64,
    /// Modified z-score from which a finding is critical.
    pub critical_z: f64,
}

/// An outlying share.
pub struct ShareOutlier {
    /// The provider's share.
    pub share: f64,
    /// Visits in the window.
    pub visits: u64,
    /// Visits with the property.
    pub count: u64,
    /// Its modified z-score.
    pub z: f64,
    /// The peer group's statistics.
    pub peers: PeerStats,
    /// Severity cut-offs of the rule (modified z-scores).
    pub high_z: f64,
    /// See `high_z`.
    pub critical_z: f64,
}

impl ShareTest {
    /// Checks every field's range (errors name the rule parameter of the
    /// same name).
    pub fn validate(&self) -> Result<(), String> {
        use super::check;
        check::days("window_days", self.window_days)?;
        check::positive_count("min_visits", u64::from(self.min_visits))?;
        check::positive_count("min_peers", self.min_peers as u64)?;
        check::positive("z_threshold", self.z_threshold)?;
        check::share("min_share", self.min_share)?;
        check::positive("mad_floor", self.mad_floor)?;
        check::ascending(&[("z_threshold", self.z_threshold), ("high_z", self.high_z), ("critical_z", self.critical_z)])
    }

    fn group(&self, ctx: &DayContext<'_>) -> PeerGroup {
        PeerGroup { municipality: ctx.provider.municipality, metric: self.metric, service: None }
    }

    /// (visits, visits with the property) in the window; zero visits when
    /// the provider's history does not cover the whole window yet.
    fn counts(&self, ctx: &DayContext<'_>, count: impl Fn(&ProviderDay) -> u32) -> (u64, u64) {
        if !ctx.provider.has_full_window(ctx.day, self.window_days) {
            return (0, 0);
        }
        ctx.provider.days.fold(ctx.day, self.window_days, (0u64, 0u64), |(v, c), b| {
            (v + u64::from(b.visits), c + u64::from(count(b)))
        })
    }

    /// Records the provider's share, or removes it when it has too few visits.
    pub fn record(&self, ctx: &DayContext<'_>, peers: &mut PeerTable, count: impl Fn(&ProviderDay) -> u32) {
        let (visits, n) = self.counts(ctx, count);
        if visits >= u64::from(self.min_visits) {
            peers.record(self.group(ctx), ctx.provider_id, n as f64 / visits as f64);
        } else {
            peers.forget(self.group(ctx), ctx.provider_id);
        }
    }

    /// The provider's share if it is an outlier among its peers.
    pub fn outlier(&self, ctx: &DayContext<'_>, count: impl Fn(&ProviderDay) -> u32) -> Option<ShareOutlier> {
        let (visits, n) = self.counts(ctx, count);
        if visits < u64::from(self.min_visits) {
            return None;
        }
        let stats = *ctx.peers.stats(&self.group(ctx))?;
        if stats.n < self.min_peers {
            return None;
        }
        let share = n as f64 / visits as f64;
        let z = modified_z(share, &stats, self.mad_floor);
        (z >= self.z_threshold && share >= self.min_share).then_some(ShareOutlier {
            share,
            visits,
            count: n,
            z,
            peers: stats,
            high_z: self.high_z,
            critical_z: self.critical_z,
        })
    }
}

impl ShareOutlier {
    /// The finding for this outlier: severity medium, high from z =
    /// `high_z`, critical from z = `critical_z`. `what` completes "… of this provider's N
    /// visits in the last D days (n visits) …"; `why` says why it matters.
    pub fn finding(
        &self,
        rule: &'static RuleInfo,
        ctx: &DayContext<'_>,
        window_days: u32,
        what: &str,
        why: &str,
        evidence: Vec<EventId>,
    ) -> Finding {
        Finding::new(rule, ctx.provider_id, ctx.provider.municipality, ctx.window(window_days))
            .severity(Severity::by_cutoffs(self.z, 0.0, self.high_z, self.critical_z).max(Severity::Medium))
            .score(self.z)
            .observed(self.share, Unit::Share)
            .expected(self.peers.median, Unit::Share)
            .evidence(evidence)
            .explain(format!(
                "{:.0} % of this provider's {} visits in the last {} days ({} visits) {what}, against a median of \
                 {:.0} % among its {} peers in the municipality (modified z-score {:.1}). {why}",
                self.share * 100.0,
                self.visits,
                window_days,
                self.count,
                self.peers.median * 100.0,
                self.peers.n,
                self.z
            ))
    }
}
