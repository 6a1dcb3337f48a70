//! Pattern 4 (position): check-in far from the client's home.
//!
//! **Fraud it catches**: a visit checked in by phone or tag from somewhere
//! other than the client's home (a tag carried around, a registration made
//! from the office or from home).
//!
//! **Statistic**: great-circle distance between the registered check-in
//! position and the client's home, for visits that carry both.
//!
//! **Parameters** ([`Params`]): `max_distance_m` (500: GPS noise in town is
//! tens of metres). Severity: medium, high from `high_distance_m` (5,000).

use super::{Rule, RuleSpec, VisitContext, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::text::{Text, en, sv};

/// Identity of `check-in-away-from-home` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "check-in-away-from-home",
    version: 1,
    pattern: 4,
    name: "Check-in far from the client's home",
    quiet_days: 14,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `check-in-away-from-home`.
    pub struct Params {
        /// Largest plausible distance, metres.
        pub max_distance_m: f64 = 500.0,
        /// Distance that makes the finding high severity, metres.
        pub high_distance_m: f64 = 5_000.0,
    }
}

/// The rule.
pub struct CheckInAwayFromHome(pub Params);

impl RuleSpec for CheckInAwayFromHome {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        check::positive("max_distance_m", p.max_distance_m)?;
        check::ascending(&[("max_distance_m", p.max_distance_m), ("high_distance_m", p.high_distance_m)])
    }

    fn new(params: Params) -> Self {
        CheckInAwayFromHome(params)
    }
}

impl Rule for CheckInAwayFromHome {
    fn on_visit(&self, ctx: &mut VisitContext<'_>, out: &mut Vec<Finding>) {
        let v = ctx.visit;
        let (Some(home), Some(at)) = (v.client_home, v.check_in_location) else { return };
        if home.distance_upper_bound_m(at) <= self.0.max_distance_m {
            return;
        }
        let metres = home.distance_m(at);
        if metres <= self.0.max_distance_m {
            return;
        }
        let severity = if metres >= self.0.high_distance_m { Severity::High } else { Severity::Medium };
        let (km, max, day) = (metres / 1000.0, self.0.max_distance_m, v.check_in.day());
        let explanation = Text {
            en: format!(
                "Time report {} ({}) was checked in {} km from the client's home (at most {} m is plausible): \
                 the registration was not made at the door.",
                v.event_id,
                en::date(day),
                en::num(km, 1),
                en::short(max),
            ),
            sv: format!(
                "Incheckningen för tidrapport {} den {} gjordes {} km från brukarens bostad (högst {} m är \
                 rimligt): registreringen gjordes alltså inte vid dörren.",
                v.event_id,
                sv::date(day),
                sv::num(km, 1),
                sv::short(max),
            ),
        };
        out.push(
            Finding::new(&INFO, v.provider, v.municipality, (v.check_in, v.check_out))
                .severity(severity)
                .score(metres / max)
                .observed(metres, Unit::Metres)
                .expected(max, Unit::Metres)
                .explain(explanation)
                .evidence(vec![v.event_id.clone()]),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testkit::Scenario;

    const HOME: (f64, f64) = (63.8258, 20.2630);

    #[test]
    fn a_check_in_three_km_away_fires() {
        let mut s = Scenario::only("check-in-away-from-home");
        s.visit().home(HOME).check_in_at((63.8528, 20.2630)).day(2026, 3, 2).at(9, 0).send();
        assert_eq!(s.alerts().len(), 1);
        let terms = ["tidrapport", "incheckningen", "brukarens bostad", "dörren", "3,0 km", "2026-03-02"];
        crate::rules::testkit::assert_bilingual(&s.alerts()[0].explanation, &terms);
    }

    #[test]
    fn gps_noise_of_forty_metres_does_not_fire() {
        let mut s = Scenario::only("check-in-away-from-home");
        s.visit().home(HOME).check_in_at((63.8261, 20.2636)).day(2026, 3, 2).at(9, 0).send();
        assert!(s.alerts().is_empty());
    }
}
