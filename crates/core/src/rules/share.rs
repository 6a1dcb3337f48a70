//! The peer rules on shares of visits, written once: a provider's share of
//! visits with some property, compared with the other providers of its
//! municipality. Each such rule is a [`ShareKind`] (what it counts, its
//! identity, its defaults) in a file of its own; [`ShareRule`] is the rule,
//! [`ShareParams`] its parameters.
//!
//! **Outages.** Days on which `outage_share` (80 %) or more of a
//! provider's visits were registered by hand or edited (its lock or tag
//! system down: every visit typed) are left out of every window, of the
//! provider's own past and of the share it gives its peers: such a day
//! says nothing about the provider's habits. An outage is short: a run of
//! more than `max_outage_days` (3) such days in a row, as far as the
//! closed day shows, is a habit, not an outage, and all its days count (a
//! provider typing nearly every visit from the schedule would otherwise
//! never be seen).
//!
//! **Decision.** The peers are the municipality's providers' shares over
//! `window_days` (30): their median and MAD (floored at `mad_floor`). The
//! *limit* is the share at the outlier threshold, `median + z_threshold ×
//! MAD / 0.6745`, and at least `min_share`. A provider is decided at a day
//! close in either of two ways:
//! - **evidence that accumulates**: over the trailing windows of
//!   `min_window_days` (3), doubled while shorter than `window_days`, and
//!   `window_days` itself, the shortest window whose Wilson lower bound on
//!   the share (at `confidence_z`, 4 standard errors) is above the limit,
//!   with at least `min_visits` visits in it (outage days, below, left
//!   out). A large deviation at a busy
//!   provider is decided in days; a small one or a small provider needs
//!   the longer windows.
//! - **its own past**: over trailing windows of every multiple of
//!   `min_window_days` up to the longest bound window shorter than
//!   `window_days` (3, 6, 9, … 24 days), the visits with the property in the window against
//!   those in the `baseline_days` (28) before it, by an exact test: given
//!   how many there were in the two together, the chance that as many or
//!   more fall in the window when the share did not change (the upper tail
//!   of a binomial with the window's part of all the visits). Decided when
//!   that chance is at most `own_chance` (3·10⁻⁷, as rare as 5 standard
//!   errors) and the share rose by `min_rise` points at least, with at
//!   least `min_expected` (2) such visits expected in the window from its
//!   past share. Exact, it holds for the few visits of a rare property (a
//!   normal z-score would need ten or more expected and so weeks of
//!   visits). It allows for the provider's own day-to-day variation: both
//!   counts are divided by the past days' dispersion (Pearson's χ² per
//!   degree of freedom, at least 1; quasi-binomial), so a provider whose
//!   typed visits come in clusters needs more evidence. A provider whose
//!   share was low and doubles is seen in days, below the peers' limit.
//!
//! Not by the month's share alone (v4 and before: a 30-day share with a
//! modified z-score of `z_threshold` or more, at least `min_share`, fired
//! without any confidence in the provider's own share). At a provider
//! with a few hundred visits a month that share is itself noisy, and in a
//! small municipality the peers' spread is too: on the project's
//! evaluation (11 simulated runs, 2,149 clean provider-months,
//! 2026-12-02) that test made 12 false alerts of `rounded-visits` (8 in
//! the region's municipalities of 6–8 peers) and found no fraudulent
//! provider or label that the bound and the own-past test did not; the
//! 30-day window's bound is the same comparison with the provider's
//! sampling noise allowed for.
//!
//! **False alarms.** For an honest provider whose true share is at or
//! below the limit, a window's bound passes the limit with probability
//! below Φ(−4) ≈ 3·10⁻⁵ at a day close; the windows overlap and a day's
//! visits are in several of them, so the rate over a year of day closes
//! stays of that order per provider. What does alarm is an honest provider
//! whose share really is above the municipality's limit (unusual: the
//! limit is the peers' outlier threshold). Against its own past, an honest
//! provider whose share is stable passes with probability at most
//! `own_chance` (3·10⁻⁷) per window and day close, eight windows: at most
//! 2.4·10⁻⁶ a day close, under 10⁻³ a year (the exact test errs on
//! the safe side; visits that come in clusters are allowed for by the
//! dispersion); a share that changes for an honest reason (new staff who
//! type their visits, a changed routine) by `min_rise` or more is found,
//! and says so.
//!
//! **Speed.** A share `s` above the limit `L` is decided in the first
//! window with about `n ≥ 16·s(1−s)/(s−L)²` visits: a provider with 100
//! visits a day registering half of them by hand against a limit of 30 %
//! in 3 days; 5 % ghost visits against a limit of 2 % in 6 days. Against
//! its own past: a provider with 65 visits a day whose visits copied from
//! the schedule go from 1 % to 7 % in 3 to 6 days.

use std::marker::PhantomData;

use super::{DayContext, Rule, RuleSpec, VisitContext, check};
use crate::baseline::{PeerGroup, PeerMetric, PeerStats, PeerTable, modified_z};
use crate::finding::{Finding, RuleInfo, Severity, Unit};
use crate::model::{Day, Visit};
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
    /// Default of [`ShareParams::min_rise`].
    const MIN_RISE: f64;
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
    /// Window length of the peers' shares and the longest window judged by
    /// its confidence bound, days.
    pub window_days: u32,
    /// Shortest window judged by its confidence bound, days (doubled up to
    /// `window_days`).
    pub min_window_days: u32,
    /// Standard errors of the Wilson lower bound a window's share must
    /// have above the limit.
    pub confidence_z: f64,
    /// Fewer visits in a window: not judged (too noisy).
    pub min_visits: u32,
    /// The provider's own past a window is compared with: the days before
    /// it.
    pub baseline_days: u32,
    /// Chance, under its own past share, of as many visits with the
    /// property in the window or more (exact test), at or below which
    /// the rise decides.
    pub own_chance: f64,
    /// Smallest rise of the share over its own past that decides, points
    /// (0–1).
    pub min_rise: f64,
    /// Fewest visits with the property its own past share predicts in a
    /// window for the comparison (a provider that had almost none is
    /// judged by its peers: a few typed visits more are not a habit).
    pub min_expected: f64,
    /// A day with at least this share of its visits registered by hand or
    /// edited is an outage (a lock or tag system down), left out ...
    pub outage_share: f64,
    /// ... unless it is in a run of more than this many such days in a
    /// row (a habit, not an outage).
    pub max_outage_days: u32,
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
            min_window_days: 3,
            confidence_z: 4.0,
            min_visits: 100,
            baseline_days: 28,
            own_chance: 3e-7,
            min_rise: K::MIN_RISE,
            min_expected: 2.0,
            outage_share: 0.8,
            max_outage_days: 3,
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
        check::days("min_window_days", p.min_window_days)?;
        check::ascending(&[
            ("min_window_days", f64::from(p.min_window_days)),
            ("window_days", f64::from(p.window_days)),
        ])?;
        check::positive("confidence_z", p.confidence_z)?;
        check::days("baseline_days", p.baseline_days)?;
        check::within("own_chance", p.own_chance, f64::MIN_POSITIVE, 0.01)?;
        check::share("min_rise", p.min_rise)?;
        check::positive("min_expected", p.min_expected)?;
        check::share("outage_share", p.outage_share)?;
        check::days("max_outage_days", p.max_outage_days)?;
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

    /// The peers' window, or the longest window compared with its own
    /// past with that past, whichever is longer.
    fn window_days(p: &Self::Params) -> u32 {
        let own = p.own_windows().max().unwrap_or(0);
        p.window_days.max(own + p.baseline_days)
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
        out.push(o.finding(K::INFO, ctx, K::WHAT, K::WHY, ctx.provider.rule_recent[K::SLOT].through(ctx.day)));
    }
}

/// A provider's own past share a window was compared with.
#[derive(Debug, Clone, Copy)]
pub struct OwnPast {
    /// Its share then.
    pub share: f64,
    /// Its visits then.
    pub visits: u64,
    /// The days of the past.
    pub days: u32,
    /// Outage days left out of the window and its past.
    pub outage_days: u32,
    /// How much more its daily shares varied in the past than chance
    /// alone would make them (1 = binomial); the counts are divided by it.
    pub dispersion: f64,
    /// The chance of as many visits with the property in the window or
    /// more had its share not changed (exact test).
    pub chance: f64,
    /// The chance at or below which it decides.
    pub own_chance: f64,
}

/// What decided an outlying share.
#[derive(Debug, Clone, Copy)]
pub enum Decided {
    /// Its Wilson lower bound, above the peers' limit.
    Bound(f64),
    /// Its rise over its own past.
    OwnPast(OwnPast),
}

/// An outlying share.
pub struct ShareOutlier {
    /// The window it was decided over, days.
    pub window_days: u32,
    /// The provider's share.
    pub share: f64,
    /// What decided it.
    pub decided: Decided,
    /// The standard errors of that bound.
    pub confidence_z: f64,
    /// The share at the outlier threshold (see the module docs).
    pub limit: f64,
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

impl<K: ShareKind> ShareParams<K> {
    fn group(&self, ctx: &DayContext<'_>) -> PeerGroup {
        PeerGroup { municipality: ctx.provider.municipality, metric: K::METRIC, service: None }
    }

    /// Whether a day's visits were (nearly) all typed by hand or edited.
    fn all_typed(&self, b: &ProviderDay) -> bool {
        b.visits >= OUTAGE_MIN_VISITS && f64::from(b.manual_visits) >= self.outage_share * f64::from(b.visits)
    }

    /// The days `days` through `end`, outage days left out; `None` when
    /// the provider's history does not cover them. An all-typed day is an
    /// outage when the run of all-typed days it is in, through the closed
    /// day, is at most `max_outage_days` long.
    fn tally(&self, ctx: &DayContext<'_>, end: Day, days: u32, count: impl Fn(&ProviderDay) -> u32) -> Option<Tally> {
        if !ctx.provider.has_full_window(end, days) {
            return None;
        }
        // Each day from `max_outage_days` before the window to as many
        // after it (through the closed day): (all typed, visits, counted).
        let m = self.max_outage_days as i32;
        let last = Day((end.0 + m).min(ctx.day.0).max(end.0));
        let first = end.0 - days as i32 + 1 - m;
        let span = (last.0 - first + 1) as u32;
        let seen = ctx.provider.days.fold(last, span, Vec::with_capacity(span as usize), |mut v, b| {
            v.push((self.all_typed(b), b.visits, count(b)));
            v
        });
        // `seen` ends at `last`; days before the horizon are missing at
        // its start.
        let at =
            |d: i32| (d <= last.0 && last.0 - d < seen.len() as i32).then(|| seen.len() - 1 - (last.0 - d) as usize);
        let typed = |d: i32| at(d).is_some_and(|i| seen[i].0);
        let outage = |d: i32| {
            let mut run = 1;
            let mut before = d - 1;
            while run <= m && typed(before) {
                run += 1;
                before -= 1;
            }
            let mut after = d + 1;
            while run <= m && typed(after) {
                run += 1;
                after += 1;
            }
            run <= m
        };
        let mut t = Tally::default();
        for d in (end.0 - days as i32 + 1)..=end.0 {
            let Some(i) = at(d) else { continue };
            let (all_typed, visits, n) = seen[i];
            if all_typed && outage(d) {
                t.outage_days += 1;
            } else if visits > 0 {
                t.visits += u64::from(visits);
                t.counted += u64::from(n);
                t.days += 1;
                t.sum_sq += f64::from(n) * f64::from(n) / f64::from(visits);
            }
        }
        Some(t)
    }

    /// The window `days` through the closed day against the provider's own
    /// past before it, if that decides.
    fn against_own_past(
        &self,
        ctx: &DayContext<'_>,
        days: u32,
        count: &impl Fn(&ProviderDay) -> u32,
    ) -> Option<(u64, u64, OwnPast)> {
        let recent = self.tally(ctx, ctx.day, days, count)?;
        let past = self.tally(ctx, ctx.day.plus(-(days as i32)), self.baseline_days, count)?;
        let (n, k, big_n, big_k) = (recent.visits, recent.counted, past.visits, past.counted);
        if n < u64::from(self.min_visits) || big_n < u64::from(self.min_visits) {
            return None;
        }
        let (p1, p0) = (k as f64 / n as f64, big_k as f64 / big_n as f64);
        if p0 * (n as f64) < self.min_expected {
            return None;
        }
        if p1 - p0 < self.min_rise {
            return None;
        }
        // Conditional on the two counts' sum, the window's count is
        // binomial with the window's part of the visits if the share did
        // not change. Quasi-binomial: the counts divided by the dispersion,
        // the window's rounded down and the past's up (erring on the safe
        // side).
        let dispersion = past.dispersion();
        let in_window = (k as f64 / dispersion).floor() as u64;
        let in_past = (big_k as f64 / dispersion).ceil() as u64;
        let chance = binomial_upper_tail(in_window, in_window + in_past, n as f64 / (n + big_n) as f64);
        (chance <= self.own_chance).then_some((
            n,
            k,
            OwnPast {
                share: p0,
                visits: big_n,
                days: self.baseline_days,
                outage_days: recent.outage_days + past.outage_days,
                dispersion,
                chance,
                own_chance: self.own_chance,
            },
        ))
    }

    /// The windows judged by their confidence bound, shortest first.
    fn bound_windows(&self) -> impl Iterator<Item = u32> {
        let last = self.window_days;
        std::iter::successors(Some(self.min_window_days.min(last)), move |&d| (d < last).then(|| (d * 2).min(last)))
    }

    /// The windows compared with the provider's own past, shortest first:
    /// every multiple of `min_window_days` up to the longest bound window
    /// shorter than `window_days` (3, 6, 9, … 24 days). The exact test
    /// needs more evidence than a z-score at moderate counts; windows a few
    /// days apart keep that from costing a doubling of the window. Eight
    /// windows at `own_chance` each: at most 8 × `own_chance` per day close.
    fn own_windows(&self) -> impl Iterator<Item = u32> {
        let last = self.bound_windows().filter(|&d| d < self.window_days).max().unwrap_or(0);
        let step = self.min_window_days.max(1);
        (1..).map(move |i| i * step).take_while(move |&d| d <= last)
    }

    /// The share at the outlier threshold of `stats`, at least `min_share`.
    fn limit(&self, stats: &PeerStats) -> f64 {
        (stats.median + self.z_threshold * stats.mad.max(self.mad_floor) / 0.6745).max(self.min_share)
    }

    /// Records the provider's share, or removes it when it has too few visits.
    pub fn record(&self, ctx: &DayContext<'_>, peers: &mut PeerTable, count: impl Fn(&ProviderDay) -> u32) {
        let Tally { visits, counted: n, .. } = self.tally(ctx, ctx.day, self.window_days, count).unwrap_or_default();
        if visits >= u64::from(self.min_visits) {
            peers.record(self.group(ctx), ctx.provider_id, n as f64 / visits as f64);
        } else {
            peers.forget(self.group(ctx), ctx.provider_id);
        }
    }

    /// The provider's share if it is an outlier: over the shortest window
    /// whose confidence bound is above the peers' limit, or whose rise over
    /// its own past decides (see the module docs).
    pub fn outlier(&self, ctx: &DayContext<'_>, count: impl Fn(&ProviderDay) -> u32) -> Option<ShareOutlier> {
        let stats = *ctx.peers.stats(&self.group(ctx))?;
        if stats.n < self.min_peers {
            return None;
        }
        let limit = self.limit(&stats);
        let outlier = |window_days: u32, visits: u64, n: u64, decided: Decided| {
            let share = n as f64 / visits as f64;
            ShareOutlier {
                window_days,
                share,
                decided,
                confidence_z: self.confidence_z,
                limit,
                visits,
                count: n,
                z: modified_z(share, &stats, self.mad_floor),
                peers: stats,
                high_z: self.high_z,
                critical_z: self.critical_z,
            }
        };
        let mut windows: Vec<u32> = self.bound_windows().chain(self.own_windows()).collect();
        windows.sort_unstable();
        windows.dedup();
        for days in windows {
            if self.bound_windows().any(|d| d == days)
                && let Some(Tally { visits, counted: n, .. }) = self.tally(ctx, ctx.day, days, &count)
                && visits >= u64::from(self.min_visits)
            {
                let lower = wilson_lower(n, visits, self.confidence_z);
                if lower > limit {
                    return Some(outlier(days, visits, n, Decided::Bound(lower)));
                }
            }
            if self.own_windows().any(|d| d == days)
                && let Some((visits, n, own)) = self.against_own_past(ctx, days, &count)
            {
                return Some(outlier(days, visits, n, Decided::OwnPast(own)));
            }
        }
        None
    }
}

/// Days of a provider's visits, outage days left out.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    /// Visits.
    visits: u64,
    /// Visits with the property.
    counted: u64,
    /// Days with visits.
    days: u32,
    /// Outage days left out.
    outage_days: u32,
    /// Sum over the days of counted² / visits (for the dispersion).
    sum_sq: f64,
}

impl Tally {
    /// Pearson's χ² of the daily counts against the pooled share, per
    /// degree of freedom, at least 1: how much more than binomial the
    /// share varies from day to day (visits typed in clusters: a staff
    /// member whose phone is broken for days). Beta-binomial in effect.
    fn dispersion(&self) -> f64 {
        if self.days < 2 || self.visits == 0 {
            return 1.0;
        }
        let p = self.counted as f64 / self.visits as f64;
        if p <= 0.0 || p >= 1.0 {
            return 1.0;
        }
        let chi2 = (self.sum_sq - p * self.counted as f64) / (p * (1.0 - p));
        (chi2 / f64::from(self.days - 1)).max(1.0)
    }
}

/// N of "once in N" for a chance (rounded; at most u64's largest).
fn once_in(chance: f64) -> u64 {
    if chance <= 0.0 { u64::MAX } else { (1.0 / chance).round().min(u64::MAX as f64) as u64 }
}

/// Fewest visits a day needs to count as an outage day.
const OUTAGE_MIN_VISITS: u32 = 10;

/// P(X ≥ k) for X binomial with `trials` trials of probability `p`: the
/// terms summed from k up, each from the one before (past the largest
/// term they fall, and the sum stops when they no longer change it).
pub fn binomial_upper_tail(k: u64, trials: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > trials || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (t, odds) = (trials as f64, p / (1.0 - p));
    // ln P(X = k) = ln C(t, k) + k ln p + (t − k) ln(1 − p).
    let ln_choose: f64 = (1..=k).map(|i| ((t - k as f64 + i as f64) / i as f64).ln()).sum();
    let mut term = (ln_choose + k as f64 * p.ln() + (t - k as f64) * (1.0 - p).ln()).exp();
    let mut sum = 0.0;
    for x in k..=trials {
        sum += term;
        let x = x as f64;
        term *= (t - x) / (x + 1.0) * odds;
        if term <= sum * 1e-17 && x + 1.0 > t * p {
            break;
        }
    }
    sum.min(1.0)
}

/// The Wilson score interval's lower bound on a share of `k` in `n` at `z`
/// standard errors.
pub fn wilson_lower(k: u64, n: u64, z: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

impl ShareOutlier {
    /// The finding for this outlier: severity medium, high from z =
    /// `high_z`, critical from z = `critical_z`. `what` completes "… of
    /// this provider's N visits in the last D days (n visits) …"; `why`
    /// says why it matters. The explanation says over which days, how
    /// strong the evidence is (the confidence bound, or the chance under
    /// its own past) and what an honest provider shows (the peers' median
    /// and the limit, or its own past).
    pub fn finding(
        &self,
        rule: &'static RuleInfo,
        ctx: &DayContext<'_>,
        what: Phrase,
        why: Phrase,
        evidence: Vec<crate::model::EventId>,
    ) -> Finding {
        let (share, median, limit) = (self.share * 100.0, self.peers.median * 100.0, self.limit * 100.0);
        let (days, peers, through) = (u64::from(self.window_days), self.peers.n as u64, ctx.day);
        let (evidence_en, evidence_sv) = match self.decided {
            Decided::OwnPast(own) => (
                format!(
                    "against {} of its {} in the {} before ({} points more; had its share not changed, as many \
                     or more would come by chance once in {}, with its day-to-day variation {} times chance's, and \
                     the limit is once in {}; {} left out as outages). An honest provider's share stays within \
                     that of its own past; the median of its {} in the municipality is {}",
                    en::percent(own.share * 100.0, 1),
                    en::count(own.visits, "visit", "visits"),
                    en::count(u64::from(own.days), "day", "days"),
                    en::num((self.share - own.share) * 100.0, 1),
                    en::int(once_in(own.chance)),
                    en::num(own.dispersion, 1),
                    en::int(once_in(own.own_chance)),
                    en::count(u64::from(own.outage_days), "day", "days"),
                    en::count(peers, "peer", "peers"),
                    en::percent(median, 0),
                ),
                format!(
                    "jämfört med {} av dess {} under de {} före ({} procentenheter mer; hade andelen inte \
                     ändrats skulle lika många eller fler komma av en slump en gång på {}, med dess variation från \
                     dag till dag {} gånger slumpens, och gränsen är en gång på {}; {} utelämnade som avbrott). En \
                     ärlig utförares andel håller sig inom den från sin egen historik; medianen bland {} i kommunen \
                     är {}",
                    sv::percent(own.share * 100.0, 1),
                    sv::count(own.visits, "besök", "besök"),
                    sv::count(u64::from(own.days), "dag", "dagarna"),
                    sv::num((self.share - own.share) * 100.0, 1),
                    sv::int(once_in(own.chance)),
                    sv::num(own.dispersion, 1),
                    sv::int(once_in(own.own_chance)),
                    sv::count(u64::from(own.outage_days), "dag", "dagar"),
                    sv::count(peers, "jämförbar utförare", "jämförbara utförare"),
                    sv::percent(median, 0),
                ),
            ),
            Decided::Bound(lower) => (
                format!(
                    "at least {} with the certainty of {} standard errors (Wilson bound), above the {} an honest \
                     provider reaches here (the median of its {} in the municipality is {}; modified z-score {})",
                    en::percent(lower * 100.0, 1),
                    en::num(self.confidence_z, 1),
                    en::percent(limit, 1),
                    en::count(peers, "peer", "peers"),
                    en::percent(median, 0),
                    en::num(self.z, 1),
                ),
                format!(
                    "minst {} med en säkerhet på {} standardfel (Wilsons gräns), över de {} som en ärlig utförare \
                     når här (medianen bland {} i kommunen är {}; modifierat z-värde {})",
                    sv::percent(lower * 100.0, 1),
                    sv::num(self.confidence_z, 1),
                    sv::percent(limit, 1),
                    sv::count(peers, "jämförbar utförare", "jämförbara utförare"),
                    sv::percent(median, 0),
                    sv::num(self.z, 1),
                ),
            ),
        };
        let explanation = Text {
            en: format!(
                "{} of this provider's {} in the {} through {} ({}) {}: {}. {}",
                en::percent(share, 0),
                en::count(self.visits, "visit", "visits"),
                en::count(days, "day", "days"),
                en::date(through),
                en::count(self.count, "visit", "visits"),
                what.en,
                evidence_en,
                why.en,
            ),
            sv: format!(
                "{} av utförarens {} under de {} till och med {} ({}) {}: {}. {}",
                sv::percent(share, 0),
                sv::count(self.visits, "besök", "besök"),
                sv::count(days, "dag", "dagarna"),
                sv::date(through),
                sv::count(self.count, "besök", "besök"),
                what.sv,
                evidence_sv,
                why.sv,
            ),
        };
        Finding::new(rule, ctx.provider_id, ctx.provider.municipality, ctx.window(self.window_days))
            .severity(Severity::by_cutoffs(self.z, 0.0, self.high_z, self.critical_z).max(Severity::Medium))
            .score(self.z)
            .observed(self.share, Unit::Share)
            .expected(self.peers.median, Unit::Share)
            .evidence(evidence)
            .explain(explanation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail by summing every term with binomial coefficients built
    /// from Pascal's triangle: the definition, for small `t`.
    fn by_definition(k: u64, t: u64, p: f64) -> f64 {
        let mut row = vec![1.0f64];
        for _ in 0..t {
            let mut next = vec![1.0; row.len() + 1];
            for i in 1..row.len() {
                next[i] = row[i - 1] + row[i];
            }
            row = next;
        }
        (k..=t).map(|x| row[x as usize] * p.powi(x as i32) * (1.0 - p).powi((t - x) as i32)).sum()
    }

    #[test]
    fn the_binomial_tail_is_that_of_the_definition() {
        for (t, p) in [(1, 0.5), (10, 0.1), (33, 0.095), (47, 0.174), (60, 0.9)] {
            for k in 0..=t + 1 {
                let (got, want) = (binomial_upper_tail(k, t, p), by_definition(k, t, p));
                assert!((got - want).abs() <= 1e-12 * want.max(1e-300) + 1e-15, "k {k} t {t} p {p}: {got} vs {want}");
            }
        }
        // Known values: a fair coin's 10 heads of 10, and Poisson-like tails.
        assert!((binomial_upper_tail(10, 10, 0.5) - 1.0 / 1024.0).abs() < 1e-15);
        assert_eq!(binomial_upper_tail(3, 2, 0.5), 0.0);
        assert_eq!(binomial_upper_tail(1, 5, 0.0), 0.0);
        assert_eq!(binomial_upper_tail(0, 5, 0.3), 1.0);
    }

    #[test]
    fn the_binomial_tail_holds_for_large_counts_and_small_chances() {
        // 2,000 trials: far in the tail it stays positive and finite, and
        // it falls with k.
        let mut last = 1.0;
        for k in [100, 150, 200, 300, 400] {
            let tail = binomial_upper_tail(k, 2_000, 0.05);
            assert!(tail > 0.0 && tail < last, "k {k}: {tail}");
            last = tail;
        }
        // Near the mean it is about a half.
        let mid = binomial_upper_tail(1_000, 2_000, 0.5);
        assert!((0.5..0.52).contains(&mid), "{mid}");
    }

    #[test]
    fn the_exact_test_decides_a_rare_property_in_days_and_the_z_score_would_not() {
        // 1 % of 1,900 visits over 28 days, then 7 % of 400 over 6 days:
        // as many or more by chance is far below 3·10⁻⁷.
        let (k, big_k, n, big_n) = (28u64, 19u64, 400u64, 1_900u64);
        let chance = binomial_upper_tail(k, k + big_k, n as f64 / (n + big_n) as f64);
        assert!(chance < 3e-7, "{chance}");
        // Its past predicts 4 such visits in the window: under the ten a
        // two-proportion z-score needs.
        assert!((big_k as f64 / big_n as f64) * (n as f64) < 10.0);
        // The same counts with no rise are unremarkable.
        let same = binomial_upper_tail(4, 4 + big_k, n as f64 / (n + big_n) as f64);
        assert!(same > 0.3, "{same}");
    }
}
