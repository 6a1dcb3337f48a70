//! Pattern 5: manual or edited registrations far above peers.
//!
//! **Fraud it catches**: a provider whose visits are increasingly entered
//! by hand or edited after the fact instead of read from the NFC tag or
//! lock at the door: the classic channel for inventing or stretching visits.
//!
//! **Statistic**: the provider's share of manual + edited registrations
//! among its visits in the last `window_days`, compared with the providers
//! of the same municipality by modified z-score `0.6745 (x − median) / MAD`
//! (MAD floored at `mad_floor`), evaluated at every day close.
//!
//! **Parameters** ([`Params`]): `window_days` (30), `min_visits` (100),
//! `min_peers` (5), `z_threshold` (3.5), `min_share` (0.2), `mad_floor`
//! (0.02). Severity: medium, high from z = `high_z` (7), critical from
//! z = `critical_z` (14).

use super::share::ShareTest;
use super::{DayContext, Rule, RuleSpec, VisitContext};
use crate::baseline::{PeerMetric, PeerTable};
use crate::finding::{Finding, RuleInfo};

/// Parameters of `manual-registration-share`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Window length, days.
    pub window_days: u32,
    /// Fewer visits in the window: not compared.
    pub min_visits: u32,
    /// Fewest peers for a comparison.
    pub min_peers: usize,
    /// Modified z-score threshold.
    pub z_threshold: f64,
    /// Smallest share that can fire.
    pub min_share: f64,
    /// Floor of the MAD.
    pub mad_floor: f64,
    /// Modified z-score from which a finding is high severity.
    pub high_z: f64,
    /// Modified z-score from which a finding is critical.
    pub critical_z: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            window_days: 30,
            min_visits: 100,
            min_peers: 5,
            z_threshold: 3.5,
            min_share: 0.2,
            mad_floor: 0.02,
            high_z: 7.0,
            critical_z: 14.0,
        }
    }
}

/// Identity of `manual-registration-share` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "manual-registration-share",
    version: 1,
    pattern: 5,
    name: "Manual or edited registrations above peers",
    quiet_days: 30,
};

/// This rule's slot of per-day counters (see [`crate::state::RULE_SLOTS`]).
const SLOT: usize = 0;

/// The rule.
pub struct ManualRegistrationShare(pub Params);

impl RuleSpec for ManualRegistrationShare {
    const INFO: &'static RuleInfo = &INFO;
    const SLOT: Option<usize> = Some(SLOT);
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        Self::new(p.clone()).test().validate()
    }

    fn new(params: Params) -> Self {
        ManualRegistrationShare(params)
    }

    fn window_days(p: &Params) -> u32 {
        p.window_days
    }
}

impl ManualRegistrationShare {
    fn test(&self) -> ShareTest {
        let p = &self.0;
        ShareTest {
            metric: PeerMetric::ManualShare,
            window_days: p.window_days,
            min_visits: p.min_visits,
            min_peers: p.min_peers,
            z_threshold: p.z_threshold,
            min_share: p.min_share,
            mad_floor: p.mad_floor,
            high_z: p.high_z,
            critical_z: p.critical_z,
        }
    }
}

impl Rule for ManualRegistrationShare {
    fn on_visit(&self, ctx: &mut VisitContext<'_>, _out: &mut Vec<Finding>) {
        if ctx.visit.method.is_manual_or_edited()
            && let Some(bucket) = ctx.day_bucket()
        {
            bucket.rule_counts[SLOT] += 1;
            ctx.provider.rule_recent[SLOT].push(&ctx.visit.event_id);
        }
    }

    fn record_peer_samples(&self, ctx: &DayContext<'_>, peers: &mut PeerTable) {
        self.test().record(ctx, peers, |b| b.rule_counts[SLOT]);
    }

    fn on_day_closed(&self, ctx: &mut DayContext<'_>, out: &mut Vec<Finding>) {
        let Some(o) = self.test().outlier(ctx, |b| b.rule_counts[SLOT]) else { return };
        out.push(o.finding(
            &INFO,
            ctx,
            self.0.window_days,
            "were registered manually or edited afterwards",
            "Manual registration bypasses the check at the door.",
            ctx.provider.rule_recent[SLOT].to_vec(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::model::RegistrationMethod;
    use crate::rules::testkit::Scenario;

    /// Eight providers, 10 visits a day for 30 days; provider 0 registers
    /// `manual_per_10` of every 10 by hand, the others 0–1 of 10.
    fn run(manual_per_10: u32) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("manual-registration-share");
        for day in 1..=30 {
            for provider in 0..8u64 {
                for i in 0..10u32 {
                    let manual = if provider == 0 { i < manual_per_10 } else { i < (provider % 2) as u32 };
                    let method = if manual { RegistrationMethod::Manual } else { RegistrationMethod::Nfc };
                    s.visit()
                        .provider(provider)
                        .staff(provider * 10 + u64::from(i))
                        .client(u64::from(i))
                        .day(2026, 3, day)
                        .at(8 + i, 0)
                        .method(method)
                        .send();
                }
            }
        }
        s.advance_to(2026, 4, 3);
        s.alerts()
    }

    #[test]
    fn half_of_visits_by_hand_against_peers_at_five_percent_fires() {
        let alerts = run(5);
        assert!(!alerts.is_empty());
        assert!(alerts.iter().all(|a| a.provider == crate::rules::testkit::provider(0)));
    }

    #[test]
    fn a_share_within_the_peers_spread_does_not_fire() {
        assert!(run(1).is_empty());
    }
}
