//! Pattern 6: ghost or rounded visits.
//!
//! **Fraud it catches**: visits that were never made but entered to match
//! the schedule: their duration equals the planned time exactly, or lands
//! on whole hours, and no door event (NFC tag or lock) backs them. Real
//! visits registered at the door vary by minutes.
//!
//! **Statistic**: the provider's share of ghost-like visits (duration equal
//! to the planned minutes, or a positive whole number of hours, and not
//! registered by a door event) among its visits in the last `window_days`,
//! compared with the providers of the same municipality by modified
//! z-score (MAD floored at `mad_floor`), evaluated at every day close.
//!
//! **Parameters** ([`Params`]): `window_days` (30), `min_visits` (100),
//! `min_peers` (5), `z_threshold` (3.5), `min_share` (0.02), `mad_floor`
//! (0.003: honest providers have well under 1 % such visits). Severity:
//! medium, high from z = `high_z` (7), critical from z = `critical_z` (14).

use super::share::ShareTest;
use super::{DayContext, Rule, RuleSpec, VisitContext};
use crate::baseline::{PeerMetric, PeerTable};
use crate::finding::{Finding, RuleInfo};
use crate::model::{RegistrationMethod, Visit};

/// Parameters of `rounded-visits`.
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
            min_share: 0.02,
            mad_floor: 0.003,
            high_z: 7.0,
            critical_z: 14.0,
        }
    }
}

/// Whether a visit looks entered rather than registered: its duration is
/// exactly the planned time or whole hours, and no door event backs it.
pub fn is_rounded(v: &Visit) -> bool {
    let d = v.duration();
    v.method != RegistrationMethod::Nfc && (v.planned == Some(d) || (d.0 > 0 && d.0.is_multiple_of(60)))
}

/// Identity of `rounded-visits` (part of the alert contract).
pub static INFO: RuleInfo =
    RuleInfo { id: "rounded-visits", version: 1, pattern: 6, name: "Ghost or rounded visits", quiet_days: 30 };

/// This rule's slot of per-day counters (see [`crate::state::RULE_SLOTS`]).
const SLOT: usize = 1;

/// The rule.
pub struct RoundedVisits(pub Params);

impl RuleSpec for RoundedVisits {
    const INFO: &'static RuleInfo = &INFO;
    const SLOT: Option<usize> = Some(SLOT);
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        Self::new(p.clone()).test().validate()
    }

    fn new(params: Params) -> Self {
        RoundedVisits(params)
    }

    fn window_days(p: &Params) -> u32 {
        p.window_days
    }
}

impl RoundedVisits {
    fn test(&self) -> ShareTest {
        let p = &self.0;
        ShareTest {
            metric: PeerMetric::RoundedShare,
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

impl Rule for RoundedVisits {
    fn on_visit(&self, ctx: &mut VisitContext<'_>, _out: &mut Vec<Finding>) {
        if is_rounded(ctx.visit)
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
            "lasted exactly the planned time or a whole number of hours without a door event",
            "Visits registered at the door vary by minutes; identical durations entered by hand suggest visits \
             copied from the schedule.",
            ctx.provider.rule_recent[SLOT].to_vec(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::model::RegistrationMethod::{Manual, MobileApp, Nfc};
    use crate::rules::testkit::Scenario;

    /// Eight providers, 10 planned 30-minute visits a day for 30 days;
    /// provider 0 enters `exact_per_10` of every 10 by hand lasting exactly
    /// 30 minutes; the others register at the door, one in ten exact.
    fn run(exact_per_10: u32) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("rounded-visits");
        for day in 1..=30 {
            for provider in 0..8u64 {
                for i in 0..10u32 {
                    let exact = if provider == 0 { i < exact_per_10 } else { i < 1 };
                    let minutes = if exact { 30 } else { 25 + (i % 4) as i64 + (provider % 2) as i64 * 6 };
                    let method = if exact && provider == 0 {
                        Manual
                    } else if i == 9 {
                        MobileApp
                    } else {
                        Nfc
                    };
                    s.visit()
                        .provider(provider)
                        .method(method)
                        .staff(provider * 10 + u64::from(i))
                        .client(u64::from(i))
                        .day(2026, 3, day)
                        .at(8 + i, 0)
                        .planned(30)
                        .minutes(minutes)
                        .send();
                }
            }
        }
        s.advance_to(2026, 4, 3);
        s.alerts()
    }

    #[test]
    fn a_fifth_of_visits_entered_exactly_as_planned_fires() {
        let alerts = run(2);
        assert!(!alerts.is_empty());
        assert!(alerts.iter().all(|a| a.provider == crate::rules::testkit::provider(0)));
    }

    #[test]
    fn exact_durations_registered_at_the_door_do_not_fire() {
        assert!(run(0).is_empty());
    }
}
