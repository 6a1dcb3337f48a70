//! Pattern 10: hours per client far above peers.
//!
//! **Fraud it catches**: a provider that reports (and bills) far more time
//! per client than other providers give comparable clients: stretched or
//! invented visits that are consistent between time reports and invoices,
//! so the reconciliation rule cannot see them. Most of all a provider that
//! did so before the data began, which `hours-per-client-rise` (each
//! client against its own past) cannot see; a provider that starts is
//! found by that rule first (every pattern-10 label of the project's
//! evaluation, days to weeks before this one).
//!
//! **Statistic**: per service type, performed hours in the activity window
//! (`activity_days`, 30 by default) divided by the clients of that service
//! type active in the window; compared with the providers of the same
//! municipality and service type by modified z-score (MAD floored at
//! `mad_floor_hours`), evaluated at every day close. Fires only if also at
//! least `min_ratio` times the peer median, so a tight peer group does not
//! make small differences look extreme. Providers with less history than
//! the window are not compared. Age bands are not in the event
//! contract yet; service type is the peer grouping.
//!
//! **False alarms.** What a provider's clients need differs more than a
//! z-score on the peers' MAD allows for: honest providers of the
//! project's evaluation (11 simulated runs, 2,149 clean provider-months,
//! 2026-12-02) reach 2.1 times the median of personal care, from 9
//! clients of a small provider to 190 of a large one whose clients are
//! heavier. With `min_ratio` 1.8 (v1) they made 9 false alerts (0.42 per
//! 100 clean provider-months); at 2.3 (v2) none, and every fraudulent
//! provider and label found before is found still. The price: a provider over-billing by less than 2.3 times since
//! before the window (and so with no rise) is not seen by this rule; with
//! the granted hours (`core.reference`), `granted-hours-utilisation` and
//! `client-hours-above-granted` measure the same against what was
//! decided instead of against the peers.
//!
//! **Parameters** ([`Params`]): `min_clients` (5), `min_peers` (5),
//! `z_threshold` (3.5), `min_ratio` (2.3: above the honest spread of the
//! client mix, above), `mad_floor_hours` (1.0). Severity: medium, high at
//! `high_ratio` (2.8) times the median, critical at `critical_ratio` (3.5)
//! times.

use super::{DayContext, Rule, RuleSpec, check};
use crate::baseline::{PeerGroup, PeerMetric, PeerTable, modified_z};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::ServiceType;
use crate::text::{Text, en, sv};

/// Identity of `hours-per-client-above-peers` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "hours-per-client-above-peers",
    version: 2,
    pattern: 10,
    name: "Hours per client far above peers",
    quiet_days: 30,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `hours-per-client-above-peers`.
    pub struct Params {
        /// Fewer active clients of a service type: not compared.
        pub min_clients: u32 = 5,
        /// Fewest peers for a comparison.
        pub min_peers: usize = 5,
        /// Modified z-score threshold.
        pub z_threshold: f64 = 3.5,
        /// Smallest ratio to the peer median that can fire: above what the
        /// honest providers' client mix gives (2.1 times in the evaluation).
        pub min_ratio: f64 = 2.3,
        /// Floor of the MAD, hours per client.
        pub mad_floor_hours: f64 = 1.0,
        /// Ratio to the peer median from which a finding is high severity.
        pub high_ratio: f64 = 2.8,
        /// Ratio to the peer median from which a finding is critical.
        pub critical_ratio: f64 = 3.5,
    }
}

/// The rule.
pub struct HoursPerClientAbovePeers(pub Params);

fn group(ctx: &DayContext<'_>, service: ServiceType) -> PeerGroup {
    PeerGroup { municipality: ctx.provider.municipality, metric: PeerMetric::HoursPerClient, service: Some(service) }
}

/// Hours per active client of `service` in the activity window, if enough clients.
fn hours_per_client(ctx: &DayContext<'_>, service: ServiceType, min_clients: u32) -> Option<(f64, u32, f64)> {
    let clients = ctx.active_by_service[service.index()];
    if clients < min_clients.max(1) || !ctx.provider.has_full_window(ctx.day, ctx.activity_days) {
        return None;
    }
    let minutes =
        ctx.provider.days.sum(ctx.day, ctx.activity_days, |b| u64::from(b.minutes_by_service[service.index()]));
    let hours = minutes as f64 / 60.0;
    Some((hours / f64::from(clients), clients, hours))
}

impl RuleSpec for HoursPerClientAbovePeers {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        check::positive_count("min_clients", u64::from(p.min_clients))?;
        check::positive_count("min_peers", p.min_peers as u64)?;
        check::positive("z_threshold", p.z_threshold)?;
        check::positive("mad_floor_hours", p.mad_floor_hours)?;
        check::ascending(&[
            ("1", 1.0),
            ("min_ratio", p.min_ratio),
            ("high_ratio", p.high_ratio),
            ("critical_ratio", p.critical_ratio),
        ])
    }

    fn new(params: Params) -> Self {
        HoursPerClientAbovePeers(params)
    }
}

impl Rule for HoursPerClientAbovePeers {
    fn record_peer_samples(&self, ctx: &DayContext<'_>, peers: &mut PeerTable) {
        for service in ServiceType::ALL {
            match hours_per_client(ctx, service, self.0.min_clients) {
                Some((hpc, _, _)) => peers.record(group(ctx, service), ctx.provider_id, hpc),
                None => peers.forget(group(ctx, service), ctx.provider_id),
            }
        }
    }

    fn on_day_closed(&self, ctx: &mut DayContext<'_>, out: &mut Vec<Finding>) {
        let p = &self.0;
        let worst = ServiceType::ALL
            .into_iter()
            .filter_map(|service| {
                let (hpc, clients, hours) = hours_per_client(ctx, service, p.min_clients)?;
                let stats = *ctx.peers.stats(&group(ctx, service))?;
                if stats.n < p.min_peers || stats.median <= 0.0 {
                    return None;
                }
                let z = modified_z(hpc, &stats, p.mad_floor_hours);
                let ratio = hpc / stats.median;
                (z >= p.z_threshold && ratio >= p.min_ratio).then_some((z, ratio, service, hpc, clients, hours, stats))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((z, ratio, service, hpc, clients, hours, stats)) = worst else { return };
        let severity = Severity::by_cutoffs(ratio, 0.0, p.high_ratio, p.critical_ratio).max(Severity::Medium);
        let (days, clients, peers) = (u64::from(ctx.activity_days), u64::from(clients), stats.n as u64);
        let explanation = Text {
            en: format!(
                "In the {} through {} this provider reported {} of {} per client ({} for {}), {} times the \
                 median of {} among its {} for the same service type (modified z-score {}; the limits \
                 are a z-score of {} and {} times the median).",
                en::count(days, "day", "days"),
                en::date(ctx.day),
                en::hours(hpc, 1),
                service.name(),
                en::hours(hours, 0),
                en::count(clients, "client", "clients"),
                en::num(ratio, 1),
                en::hours(stats.median, 1),
                en::count(peers, "peer", "peers"),
                en::num(z, 1),
                en::short(p.z_threshold),
                en::short(p.min_ratio),
            ),
            sv: format!(
                "Under de {} till och med {} rapporterade utföraren {} {} per brukare ({} för {}), {} gånger \
                 medianen på {} bland {} med samma insats (modifierat z-värde {}; gränserna är \
                 z-värde {} och {} gånger medianen).",
                sv::count(days, "dag", "dagarna"),
                sv::date(ctx.day),
                sv::hours(hpc, 1),
                service.name_sv(),
                sv::hours(hours, 0),
                sv::count(clients, "brukare", "brukare"),
                sv::num(ratio, 1),
                sv::hours(stats.median, 1),
                sv::count(peers, "jämförbar utförare", "jämförbara utförare"),
                sv::num(z, 1),
                sv::short(p.z_threshold),
                sv::short(p.min_ratio),
            ),
        };
        out.push(
            Finding::new(&INFO, ctx.provider_id, ctx.provider.municipality, ctx.window(ctx.activity_days))
                .severity(severity)
                .score(z)
                .observed(hpc, Unit::HoursPerClient)
                .expected(stats.median, Unit::HoursPerClient)
                .explain(explanation)
                .evidence(ctx.provider.recent_visits.through(ctx.day)),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testkit::Scenario;

    /// Seven providers with 6 clients each, one 30-minute visit per client
    /// and day in March (about 15 h per client); provider 0's visits last
    /// `minutes_0` minutes.
    fn run(minutes_0: i64) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("hours-per-client-above-peers");
        for day in 1..=31 {
            for provider in 0..7u64 {
                for client in 0..6u64 {
                    let minutes = if provider == 0 { minutes_0 } else { 28 + ((provider + client) % 5) as i64 };
                    s.visit()
                        .provider(provider)
                        .client(provider * 100 + client)
                        .staff(provider * 100 + client)
                        .day(2026, 3, day)
                        .at(8 + client as u32, 0)
                        .minutes(minutes)
                        .send();
                }
            }
        }
        s.advance_to(2026, 4, 4);
        s.alerts()
    }

    #[test]
    fn two_and_a_half_times_the_peer_hours_fires() {
        let alerts = run(75);
        assert!(!alerts.is_empty());
        assert!(alerts.iter().all(|a| a.provider == crate::rules::testkit::provider(0)));
        let terms = ["utföraren", "personlig omvårdnad", "per brukare", "medianen", "jämförbara utförare", "insats"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
    }

    #[test]
    fn half_again_the_peer_hours_does_not_fire() {
        assert!(run(45).is_empty());
    }

    /// Twice the peers' hours is within what honest providers' client mix
    /// gives (2.1 times in the project's evaluation): v1 (`min_ratio` 1.8)
    /// fired here.
    #[test]
    fn twice_the_peer_hours_does_not_fire() {
        assert!(run(60).is_empty());
    }

    #[test]
    fn a_min_ratio_above_the_severity_cutoffs_is_refused() {
        use crate::rules::RuleSpec;
        let p = super::Params { min_ratio: 3.0, ..Default::default() };
        let err = super::HoursPerClientAbovePeers::validate(&p).unwrap_err();
        assert!(err.contains("high_ratio"), "{err}");
        let p = super::Params { min_ratio: 0.9, ..Default::default() };
        assert!(super::HoursPerClientAbovePeers::validate(&p).unwrap_err().contains("min_ratio"));
        assert!(super::HoursPerClientAbovePeers::validate(&Default::default()).is_ok());
    }
}
