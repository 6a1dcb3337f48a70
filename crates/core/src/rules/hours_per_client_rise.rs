//! Pattern 10: hours per client rising above the provider's own past.
//!
//! **Fraud it catches**: a provider that starts reporting (and billing)
//! more time for the clients it already had: each visit stretched, more
//! visits planned and "performed", by a third or by three times. The
//! peers rule (`hours-per-client-above-peers`) sees it only once the
//! provider's month is far above the municipality's; a provider whose
//! clients are lighter than its peers' can inflate them by half and stay
//! under it. Here each client is compared with itself.
//!
//! **Statistic**: at each day close, for every client of the provider with
//! care on at least `min_baseline_days` days of the `baseline_days` days
//! before the last `recent_days` days, and on at least `min_recent_days`
//! of those: the client's minutes per day with care in the recent days
//! against the baseline days. A client *rose* when that ratio is at least
//! `1 + min_rise`. With `k` of `n` such clients risen (`n` at least
//! `min_clients`), the provider is decided when the Wilson lower bound of
//! `k / n` at `confidence_z` standard errors is above the share of clients
//! an honest provider has risen: `honest_rise_share`, or the median share
//! among the municipality's providers (their samples in the peer table)
//! plus `peer_margin`, whichever is higher, so that a municipality-wide
//! change (a winter, a new decision practice) raises the bar for every
//! provider alike. Per day with care, so a hospital stay or a missed visit
//! is no change; per client, so new clients with more needs, or clients
//! taken over from another provider, are no change either (they have no
//! baseline).
//!
//! **False alarms**: an honest provider's clients vary from week to week
//! (visits running long or short, a plan revised upward, an extra visit
//! when ill): in the simulator's honest providers (seed 1, weekly day
//! closes from March to June, providers with 8 clients or more to
//! compare) a median of 10 % of clients rise by 15 % in a week against
//! their previous four, 19 % at the 90th percentile. Deciding above 25 %
//! at 4 standard errors, a provider whose true share is at the honest rate
//! passes it with probability below 3·10⁻⁵ at a day close; the rule opened
//! no false alert in the evaluation.
//!
//! **Speed**: when every client's time is raised by a factor `f` with
//! `f − 1` well above `min_rise` (×1.3 against 15 %), nearly every client
//! rises; the bound passes 25 % with 8 of 8 clients, 12 of 14, 18 of 24:
//! decided once the recent week's mean per client has risen by
//! `min_rise`, after `recent_days × min_rise / (f − 1)` days of inflated
//! care (every visit a third longer: at the fourth day's close). A factor
//! near `1 + min_rise` raises about half the clients and needs the whole
//! week and more clients.
//!
//! **Parameters** ([`Params`]): `recent_days` (7), `baseline_days` (28),
//! `min_recent_days` (3), `min_baseline_days` (8), `min_rise` (0.15),
//! `min_clients` (8), `confidence_z` (4), `honest_rise_share` (0.25),
//! `peer_margin` (0.15), `min_peers` (5). Severity by the median ratio of
//! the risen clients: medium, high from `high_ratio` (1.5), critical from
//! `critical_ratio` (2).

use super::share::wilson_lower;
use super::{DayContext, Rule, RuleSpec, check};
use crate::baseline::{PeerGroup, PeerMetric, PeerTable};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::Day;
use crate::state::MINUTES_DAYS;
use crate::text::{Text, en, sv};

/// Identity of `hours-per-client-rise` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "hours-per-client-rise",
    version: 1,
    pattern: 10,
    name: "Hours per client rising above the provider's own past",
    quiet_days: 30,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `hours-per-client-rise`.
    pub struct Params {
        /// The recent window, days (through the closed day).
        pub recent_days: u32 = 7,
        /// The baseline window before it, days.
        pub baseline_days: u32 = 28,
        /// Fewest days with care in the recent window for a client to count.
        pub min_recent_days: u32 = 3,
        /// Fewest days with care in the baseline for a client to count.
        pub min_baseline_days: u32 = 8,
        /// Relative rise of a client's minutes per day with care that
        /// counts as risen.
        pub min_rise: f64 = 0.15,
        /// Fewest clients with both windows for a decision.
        pub min_clients: u32 = 8,
        /// Standard errors of the Wilson lower bound on the risen share.
        pub confidence_z: f64 = 4.0,
        /// Share of risen clients an honest provider stays under.
        pub honest_rise_share: f64 = 0.25,
        /// Added to the municipality's median risen share for its limit.
        pub peer_margin: f64 = 0.15,
        /// Fewest providers in the municipality's median.
        pub min_peers: usize = 5,
        /// Median ratio of the risen clients from which a finding is high
        /// severity.
        pub high_ratio: f64 = 1.5,
        /// Median ratio of the risen clients from which a finding is
        /// critical.
        pub critical_ratio: f64 = 2.0,
    }
}

/// The rule.
pub struct HoursPerClientRise(pub Params);

/// A provider's clients compared with their own past at a day close.
struct Rise {
    /// Clients with both windows.
    clients: u32,
    /// Of which risen.
    risen: u32,
    /// Median ratio of the risen clients.
    median_ratio: f64,
    /// Their mean minutes per day with care, recent and baseline.
    recent_minutes: f64,
    baseline_minutes: f64,
}

impl HoursPerClientRise {
    fn group(ctx: &DayContext<'_>) -> PeerGroup {
        PeerGroup { municipality: ctx.provider.municipality, metric: PeerMetric::ClientRiseShare, service: None }
    }

    /// The provider's clients at the close of `ctx.day`; `None` with too
    /// little history.
    fn rise(&self, ctx: &DayContext<'_>) -> Option<Rise> {
        let p = &self.0;
        let day = ctx.day;
        if !ctx.provider.has_full_window(day, p.recent_days + p.baseline_days) {
            return None;
        }
        let baseline_end: Day = day.plus(-(p.recent_days as i32));
        let (mut clients, mut risen) = (0u32, 0u32);
        // The risen clients' (ratio, recent, baseline), summed in sorted
        // order below: the clients' map has no order of its own (it differs
        // after a restore), and a sum of floats depends on its order.
        let mut rises: Vec<(f64, f64, f64)> = Vec::new();
        for activity in ctx.provider.clients.values() {
            if activity.newest < baseline_end.0 - p.baseline_days as i32 {
                continue;
            }
            let (recent_n, recent) = activity.care_days(day, p.recent_days);
            let (baseline_n, baseline) = activity.care_days(baseline_end, p.baseline_days);
            if recent_n < p.min_recent_days || baseline_n < p.min_baseline_days {
                continue;
            }
            let (recent, baseline) = (recent as f64 / f64::from(recent_n), baseline as f64 / f64::from(baseline_n));
            clients += 1;
            let ratio = recent / baseline.max(1.0);
            if ratio >= 1.0 + p.min_rise {
                risen += 1;
                rises.push((ratio, recent, baseline));
            }
        }
        if clients < p.min_clients {
            return None;
        }
        rises.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.total_cmp(&b.2)));
        let mut ratios: Vec<f64> = rises.iter().map(|r| r.0).collect();
        let median_ratio = crate::baseline::peer::median(&mut ratios).unwrap_or(1.0);
        let (recent_sum, baseline_sum) = rises.iter().fold((0.0, 0.0), |(r, b), x| (r + x.1, b + x.2));
        let n = f64::from(risen.max(1));
        Some(Rise { clients, risen, median_ratio, recent_minutes: recent_sum / n, baseline_minutes: baseline_sum / n })
    }
}

impl RuleSpec for HoursPerClientRise {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        check::days("recent_days", p.recent_days)?;
        check::days("baseline_days", p.baseline_days)?;
        if p.recent_days + p.baseline_days > MINUTES_DAYS as u32 - 14 {
            return Err(format!(
                "recent_days + baseline_days must be <= {} (the days of minutes kept per client, less two weeks)",
                MINUTES_DAYS - 14
            ));
        }
        check::ascending(&[
            ("min_recent_days", f64::from(p.min_recent_days)),
            ("recent_days", f64::from(p.recent_days)),
        ])?;
        check::ascending(&[
            ("min_baseline_days", f64::from(p.min_baseline_days)),
            ("baseline_days", f64::from(p.baseline_days)),
        ])?;
        check::positive_count("min_recent_days", u64::from(p.min_recent_days))?;
        check::positive_count("min_baseline_days", u64::from(p.min_baseline_days))?;
        check::positive("min_rise", p.min_rise)?;
        check::positive_count("min_clients", u64::from(p.min_clients))?;
        check::positive("confidence_z", p.confidence_z)?;
        check::share("honest_rise_share", p.honest_rise_share)?;
        check::share("peer_margin", p.peer_margin)?;
        check::positive_count("min_peers", p.min_peers as u64)?;
        check::ascending(&[("high_ratio", p.high_ratio), ("critical_ratio", p.critical_ratio)])
    }

    fn new(params: Params) -> Self {
        HoursPerClientRise(params)
    }

    fn window_days(p: &Params) -> u32 {
        p.recent_days + p.baseline_days
    }
}

impl Rule for HoursPerClientRise {
    fn record_peer_samples(&self, ctx: &DayContext<'_>, peers: &mut PeerTable) {
        match self.rise(ctx) {
            Some(r) => peers.record(Self::group(ctx), ctx.provider_id, f64::from(r.risen) / f64::from(r.clients)),
            None => peers.forget(Self::group(ctx), ctx.provider_id),
        }
    }

    fn on_day_closed(&self, ctx: &mut DayContext<'_>, out: &mut Vec<Finding>) {
        let p = &self.0;
        let Some(r) = self.rise(ctx) else { return };
        let peer_median = ctx.peers.stats(&Self::group(ctx)).filter(|s| s.n >= p.min_peers).map(|s| s.median);
        let limit = peer_median.map_or(p.honest_rise_share, |m| (m + p.peer_margin).max(p.honest_rise_share));
        let lower = wilson_lower(u64::from(r.risen), u64::from(r.clients), p.confidence_z);
        if lower <= limit {
            return;
        }
        let share = f64::from(r.risen) / f64::from(r.clients);
        let severity = Severity::by_cutoffs(r.median_ratio, 0.0, p.high_ratio, p.critical_ratio).max(Severity::Medium);
        let (recent_days, baseline_days) = (u64::from(p.recent_days), u64::from(p.baseline_days));
        let (risen, clients) = (u64::from(r.risen), u64::from(r.clients));
        let (rise, more) = (p.min_rise * 100.0, (r.median_ratio - 1.0) * 100.0);
        let (recent_h, baseline_h) = (r.recent_minutes / 60.0, r.baseline_minutes / 60.0);
        let peers_en = peer_median.map_or(String::new(), |m| {
            format!(" (the municipality's providers' median is {})", en::percent(m * 100.0, 0))
        });
        let peers_sv = peer_median.map_or(String::new(), |m| {
            format!(" (medianen bland kommunens utförare är {})", sv::percent(m * 100.0, 0))
        });
        let explanation = Text {
            en: format!(
                "In the {} through {}, {} of this provider's {} with care both then and in the {} before got at \
                 least {} more time per day with care than before (median {} more: {} a day against {}). That is \
                 {} of its clients, at least {} with the certainty of {} standard errors (Wilson bound), where an \
                 honest provider's clients rise so in at most {}{}.",
                en::count(recent_days, "day", "days"),
                en::date(ctx.day),
                risen,
                en::count(clients, "client", "clients"),
                en::count(baseline_days, "day", "days"),
                en::percent(rise, 0),
                en::percent(more, 0),
                en::hours(recent_h, 1),
                en::hours(baseline_h, 1),
                en::percent(share * 100.0, 0),
                en::percent(lower * 100.0, 0),
                en::num(p.confidence_z, 1),
                en::percent(limit * 100.0, 0),
                peers_en,
            ),
            sv: format!(
                "Under de {} till och med {} fick {} av utförarens {} med insatser både då och under de {} före \
                 minst {} mer tid per dag med insatser än tidigare (median {} mer: {} per dag mot {}). Det är {} \
                 av brukarna, minst {} med en säkerhet på {} standardfel (Wilsons gräns), där en ärlig utförares \
                 brukare ökar så till högst {}{}.",
                sv::count(recent_days, "dag", "dagarna"),
                sv::date(ctx.day),
                risen,
                sv::count(clients, "brukare", "brukare"),
                sv::count(baseline_days, "dag", "dagarna"),
                sv::percent(rise, 0),
                sv::percent(more, 0),
                sv::hours(recent_h, 1),
                sv::hours(baseline_h, 1),
                sv::percent(share * 100.0, 0),
                sv::percent(lower * 100.0, 0),
                sv::num(p.confidence_z, 1),
                sv::percent(limit * 100.0, 0),
                peers_sv,
            ),
        };
        out.push(
            Finding::new(&INFO, ctx.provider_id, ctx.provider.municipality, ctx.window(p.recent_days))
                .severity(severity)
                .score(r.median_ratio)
                .observed(share, Unit::Share)
                .expected(limit, Unit::Share)
                .explain(explanation)
                .evidence(ctx.provider.recent_visits.through(ctx.day)),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testkit::Scenario;

    /// Six providers with 10 clients each, one visit per client and day
    /// from 1 February for `days` days; provider 0's visits last
    /// `minutes_after` minutes from day `from` on, 30 before. The others'
    /// vary between 28 and 32 minutes.
    fn run(minutes_after: i64, from: u32, days: u32) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("hours-per-client-rise");
        let first = crate::model::Day::from_ymd(2026, 2, 1);
        for k in 0..days {
            let day = first.plus(k as i32);
            let (y, m, d) = day.ymd();
            for provider in 0..6u64 {
                for client in 0..10u64 {
                    let minutes = match provider {
                        0 if k + 1 >= from => minutes_after,
                        0 => 30,
                        _ => 28 + ((provider + client + u64::from(k)) % 5) as i64,
                    };
                    s.visit()
                        .provider(provider)
                        .client(provider * 100 + client)
                        .staff(provider * 100 + client)
                        .day(y, m, d)
                        .at(8 + client as u32, 0)
                        .minutes(minutes)
                        .send();
                }
            }
        }
        let (y, m, d) = first.plus(days as i32 + 2).ymd();
        s.advance_to(y, m, d);
        s.alerts()
    }

    #[test]
    fn a_third_more_for_every_client_is_decided_within_days() {
        // Day 41 on: 40 minutes instead of 30 for all ten clients.
        let alerts = run(40, 41, 45);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        let closed = a.window.1.plus_secs(-1).day();
        let started = crate::model::Day::from_ymd(2026, 2, 1).plus(40);
        assert_eq!(closed.0 - started.0, 3, "decided at the fourth day's close: {}", a.explanation.en);
        assert!(a.explanation.en.contains("10 of this provider's 10 clients"), "{}", a.explanation.en);
        crate::rules::testkit::assert_bilingual(
            &a.explanation,
            &["utförarens", "brukare", "per dag", "wilsons gräns", "ärlig utförare"],
        );
    }

    #[test]
    fn a_rise_below_the_minimum_or_a_fall_is_no_finding() {
        // 10 % more (below the 15 % a client must rise), and a fall.
        assert!(run(33, 41, 45).is_empty());
        assert!(run(20, 41, 45).is_empty());
    }

    #[test]
    fn without_a_baseline_nothing_is_decided() {
        // 40 minutes from the first day: no client has a past to rise from.
        assert!(run(40, 1, 45).is_empty());
    }
}
