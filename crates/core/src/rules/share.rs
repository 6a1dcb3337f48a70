//! The peer rules on shares of visits, written once: a provider's share of
//! visits with some property over a window, compared with the other
//! providers of its municipality by modified z-score. Each such rule is a
//! [`ShareKind`] (what it counts, its identity, its defaults) in a file of
//! its own; [`ShareRule`] is the rule, [`ShareParams`] its parameters.

use std::marker::PhantomData;

use super::{DayContext, Rule, RuleSpec, VisitContext, check};
use crate::baseline::{PeerGroup, PeerMetric, PeerStats, PeerTable, modified_z};
use crate::finding::{Finding, RuleInfo, Severity, Unit};
use crate::model::Visit;
use crate::state::ProviderDay;
use crate::text::{Phrase, Text, en, sv};

/// What one share rule counts, and what differs between share rules.
pub trait ShareKind: std::fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The rule's identity.
    const INFO: &'static RuleInfo;
    /// Its slot of per-day counters (see [`crate::state::RULE_SLOTS`]).
    const SLOT: usize;
    /// Its metric in the peer table.
    const METRIC: PeerMetric;
    /// Default of [`ShareParams::min_share`].
    const MIN_SHARE: f64;
    /// Default of [`ShareParams::mad_floor`].
    const MAD_FLOOR: f64;
    /// Completes "… of this provider's N visits in the last D days (n
    /// visits) …" ("… av utförarens N besök de senaste D dagarna (n
    /// besök) …") in the explanation.
    const WHAT: Phrase;
    /// Why it matters, the explanation's last sentence.
    const WHY: Phrase;
    /// Whether a visit has the property counted.
    fn counts(visit: &Visit) -> bool;
}

/// Parameters of a share rule (`[core.rules.<section>]`).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default, bound(serialize = "", deserialize = "K: ShareKind"))]
pub struct ShareParams<K> {
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
    #[serde(skip)]
    kind: PhantomData<K>,
}

impl<K: ShareKind> Default for ShareParams<K> {
    fn default() -> Self {
        ShareParams {
            window_days: 30,
            min_visits: 100,
            min_peers: 5,
            z_threshold: 3.5,
            min_share: K::MIN_SHARE,
            mad_floor: K::MAD_FLOOR,
            high_z: 7.0,
            critical_z: 14.0,
            kind: PhantomData,
        }
    }
}

impl<K> Clone for ShareParams<K> {
    fn clone(&self) -> Self {
        ShareParams { kind: PhantomData, ..*self }
    }
}

/// A share rule of kind `K`.
pub struct ShareRule<K>(pub ShareParams<K>);

impl<K: ShareKind> RuleSpec for ShareRule<K> {
    const INFO: &'static RuleInfo = K::INFO;
    const SLOT: Option<usize> = Some(K::SLOT);
    type Params = ShareParams<K>;
    type ProviderState = ();

    fn validate(p: &Self::Params) -> Result<(), String> {
        check::days("window_days", p.window_days)?;
        check::positive_count("min_visits", u64::from(p.min_visits))?;
        check::positive_count("min_peers", p.min_peers as u64)?;
        check::positive("z_threshold", p.z_threshold)?;
        check::share("min_share", p.min_share)?;
        check::positive("mad_floor", p.mad_floor)?;
        check::ascending(&[("z_threshold", p.z_threshold), ("high_z", p.high_z), ("critical_z", p.critical_z)])
    }

    fn new(params: Self::Params) -> Self {
        ShareRule(params)
    }

    fn window_days(p: &Self::Params) -> u32 {
        p.window_days
    }
}

impl<K: ShareKind> Rule for ShareRule<K> {
    fn on_visit(&self, ctx: &mut VisitContext<'_>, _out: &mut Vec<Finding>) {
        if K::counts(ctx.visit)
            && let Some(bucket) = ctx.day_bucket()
        {
            bucket.rule_counts[K::SLOT] += 1;
            ctx.provider.rule_recent[K::SLOT].push(ctx.day, &ctx.visit.event_id);
        }
    }

    fn record_peer_samples(&self, ctx: &DayContext<'_>, peers: &mut PeerTable) {
        self.0.record(ctx, peers, |b| b.rule_counts[K::SLOT]);
    }

    fn on_day_closed(&self, ctx: &mut DayContext<'_>, out: &mut Vec<Finding>) {
        let Some(o) = self.0.outlier(ctx, |b| b.rule_counts[K::SLOT]) else { return };
        out.push(o.finding(
            K::INFO,
            ctx,
            self.0.window_days,
            K::WHAT,
            K::WHY,
            ctx.provider.rule_recent[K::SLOT].through(ctx.day),
        ));
    }
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
    /// The modified z-score from which a share is an outlier.
    pub z_threshold: f64,
    /// Severity cut-offs of the rule (modified z-scores).
    pub high_z: f64,
    /// See `high_z`.
    pub critical_z: f64,
}

impl<K: ShareKind> ShareParams<K> {
    fn group(&self, ctx: &DayContext<'_>) -> PeerGroup {
        PeerGroup { municipality: ctx.provider.municipality, metric: K::METRIC, service: None }
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
            z_threshold: self.z_threshold,
            high_z: self.high_z,
            critical_z: self.critical_z,
        })
    }
}

impl ShareOutlier {
    /// The finding for this outlier: severity medium, high from z =
    /// `high_z`, critical from z = `critical_z`. `what` completes "… of
    /// this provider's N visits in the last D days (n visits) …"; `why`
    /// says why it matters.
    pub fn finding(
        &self,
        rule: &'static RuleInfo,
        ctx: &DayContext<'_>,
        window_days: u32,
        what: Phrase,
        why: Phrase,
        evidence: Vec<crate::model::EventId>,
    ) -> Finding {
        let (share, median) = (self.share * 100.0, self.peers.median * 100.0);
        let (days, peers, through) = (u64::from(window_days), self.peers.n as u64, ctx.day);
        let explanation = Text {
            en: format!(
                "{} of this provider's {} in the {} through {} ({}) {}, against a median of {} among its {} in \
                 the municipality (modified z-score {}; the limit is {}). {}",
                en::percent(share, 0),
                en::count(self.visits, "visit", "visits"),
                en::count(days, "day", "days"),
                en::date(through),
                en::count(self.count, "visit", "visits"),
                what.en,
                en::percent(median, 0),
                en::count(peers, "peer", "peers"),
                en::num(self.z, 1),
                en::short(self.z_threshold),
                why.en,
            ),
            sv: format!(
                "{} av utförarens {} under de {} till och med {} ({}) {}, jämfört med en median på {} bland {} i \
                 kommunen (modifierat z-värde {}; gränsen är {}). {}",
                sv::percent(share, 0),
                sv::count(self.visits, "besök", "besök"),
                sv::count(days, "dag", "dagarna"),
                sv::date(through),
                sv::count(self.count, "besök", "besök"),
                what.sv,
                sv::percent(median, 0),
                sv::count(peers, "jämförbar utförare", "jämförbara utförare"),
                sv::num(self.z, 1),
                sv::short(self.z_threshold),
                why.sv,
            ),
        };
        Finding::new(rule, ctx.provider_id, ctx.provider.municipality, ctx.window(window_days))
            .severity(Severity::by_cutoffs(self.z, 0.0, self.high_z, self.critical_z).max(Severity::Medium))
            .score(self.z)
            .observed(self.share, Unit::Share)
            .expected(self.peers.median, Unit::Share)
            .evidence(evidence)
            .explain(explanation)
    }
}
