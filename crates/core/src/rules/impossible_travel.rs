//! Pattern 4 (travel): impossible travel between consecutive visits.
//!
//! **Fraud it catches**: a staff member whose consecutive visits are too far
//! apart for the time between them: at least one visit was registered
//! without the staff member being there.
//!
//! **Statistic**: for the new visit and each of the staff member's recent
//! visits immediately before or after it in time (not in arrival order),
//! the great-circle distance between the two clients' homes divided by the
//! gap between check-out and the next check-in (at least one minute).
//! Across providers, who is accused follows [`super::attribution`].
//! Needs client home positions; visits without them are skipped.
//!
//! **Parameters** ([`Params`]): `max_speed_kmh` (80: a car in town, with
//! margin), `min_distance_km` (3: below it GPS and address noise dominate),
//! `max_gap_hours` (4: a longer gap is a different shift). Severity: medium,
//! high at `high_speed_factor` (3) times the speed limit.

use super::{Rule, RuleSpec, StaffVisitContext, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::state::RecentVisit;
use crate::text::{Text, en, sv};

/// Identity of `impossible-travel` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "impossible-travel",
    version: 3,
    pattern: 4,
    name: "Impossible travel between visits",
    quiet_days: 14,
    stage: RuleStage::Staff,
};

params! {
    /// Parameters of `impossible-travel`.
    pub struct Params {
        /// Fastest plausible travel, km/h.
        pub max_speed_kmh: f64 = 80.0,
        /// Shortest distance considered, km.
        pub min_distance_km: f64 = 3.0,
        /// Longest gap between visits considered, hours.
        pub max_gap_hours: f64 = 4.0,
        /// Multiple of `max_speed_kmh` from which a finding is high severity.
        pub high_speed_factor: f64 = 3.0,
    }
}

/// The rule.
pub struct ImpossibleTravel(pub Params);

impl RuleSpec for ImpossibleTravel {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        check::positive("max_speed_kmh", p.max_speed_kmh)?;
        check::non_negative("min_distance_km", p.min_distance_km)?;
        check::positive("max_gap_hours", p.max_gap_hours)?;
        check::within("max_gap_hours", p.max_gap_hours, 0.0, 24.0)?;
        check::ascending(&[("1", 1.0), ("high_speed_factor", p.high_speed_factor)])
    }

    fn new(params: Params) -> Self {
        ImpossibleTravel(params)
    }
}

impl Rule for ImpossibleTravel {
    fn on_staff_visit(&self, ctx: &StaffVisitContext<'_>, out: &mut Vec<Finding>) {
        let v = ctx.visit;
        let Some(home) = v.client_home else { return };
        let max_gap = (self.0.max_gap_hours * 3600.0) as i64;
        // The visit just before this one and the one just after, in time
        // (one pass: this runs for every visit).
        let (mut before, mut after): (Option<&RecentVisit>, Option<&RecentVisit>) = (None, None);
        for r in &ctx.staff.recent {
            if r.client == v.client || r.home.is_none() {
                continue;
            }
            if r.check_out <= v.check_in
                && v.check_in.0 - r.check_out.0 <= max_gap
                && before.is_none_or(|b| r.check_out > b.check_out)
            {
                before = Some(r);
            } else if r.check_in >= v.check_out
                && r.check_in.0 - v.check_out.0 <= max_gap
                && after.is_none_or(|a| r.check_in < a.check_in)
            {
                after = Some(r);
            }
        }
        let pairs = [before.map(|r| (r, r.check_out, v.check_in)), after.map(|r| (r, v.check_out, r.check_in))];
        let worst = pairs
            .into_iter()
            .flatten()
            .filter_map(|(r, from, to): (&RecentVisit, _, _)| {
                let other_home = r.home?;
                let hours = ((to.0 - from.0).max(60)) as f64 / 3600.0;
                let bound_km = home.distance_upper_bound_m(other_home) / 1000.0;
                if bound_km < self.0.min_distance_km || bound_km / hours <= self.0.max_speed_kmh {
                    return None; // even the upper bound is harmless: skip the trigonometry
                }
                let km = home.distance_m(other_home) / 1000.0;
                (km >= self.0.min_distance_km).then_some((km / hours, km, to.0 - from.0, r))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((speed, km, gap_secs, other)) = worst else { return };
        if speed <= self.0.max_speed_kmh {
            return;
        }
        let severity =
            if speed >= self.0.high_speed_factor * self.0.max_speed_kmh { Severity::High } else { Severity::Medium };
        let max = self.0.max_speed_kmh;
        let (gap, day) = ((gap_secs as f64 / 60.0).round() as u64, v.check_in.min(other.check_in).day());
        let explanation = Text {
            en: format!(
                "One staff member's consecutive visits on {} (time reports {} and {}) are {} km apart with {} \
                 between them: {} km/h would be needed, above the {} km/h any travel in town allows.",
                en::date(day),
                other.event_id,
                v.event_id,
                en::num(km, 1),
                en::count(gap, "minute", "minutes"),
                en::num(speed, 0),
                en::short(max),
            ),
            sv: format!(
                "En medarbetares två besök i följd den {} (tidrapport {} och {}) ligger {} km från varandra med {} \
                 emellan: det skulle kräva {} km/h, mer än de {} km/h som någon förflyttning i tätort medger.",
                sv::date(day),
                other.event_id,
                v.event_id,
                sv::num(km, 1),
                sv::count(gap, "minut", "minuter"),
                sv::num(speed, 0),
                sv::short(max),
            ),
        };
        for (provider, municipality) in super::attribution::accused(v, other, ctx.staff) {
            let window = (v.check_in.min(other.check_in), v.check_out.max(other.check_out));
            out.push(
                Finding::new(&INFO, provider, municipality, window)
                    .severity(severity)
                    .score(speed / max)
                    .observed(speed, Unit::KmPerHour)
                    .expected(max, Unit::KmPerHour)
                    .explain(explanation.clone())
                    .evidence(vec![other.event_id.clone(), v.event_id.clone()]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testkit::Scenario;

    const A: (f64, f64) = (63.8258, 20.2630);
    /// About 16 km north-east of A.
    const B: (f64, f64) = (63.9500, 20.5000);
    /// About 1 km from A.
    const NEAR: (f64, f64) = (63.8350, 20.2630);

    #[test]
    fn sixteen_km_in_ten_minutes_fires_whatever_the_arrival_order() {
        let mut seen = Vec::new();
        for reversed in [false, true] {
            let mut s = Scenario::only("impossible-travel");
            let first = s.visit().staff(1).client(1).home(A).day(2026, 3, 2).at(9, 0).minutes(30).build();
            let second = s.visit().staff(1).client(2).home(B).day(2026, 3, 2).at(9, 40).minutes(30).build();
            let (a, b) = if reversed { (second, first) } else { (first, second) };
            s.send_visit(a);
            s.send_visit(b);
            s.settle();
            let alerts = s.alerts();
            assert_eq!(alerts.len(), 1, "reversed: {reversed}");
            assert!(alerts[0].observed.value > 80.0);
            let terms = ["medarbetares", "besök", "tidrapport", "km/h", "minuter", "2026-03-02"];
            crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
            seen.push(alerts);
        }
        assert_eq!(seen[0], seen[1], "the same alert, id and content, in either order");
    }

    #[test]
    fn sixteen_km_in_forty_minutes_and_one_km_in_two_do_not_fire() {
        let mut s = Scenario::only("impossible-travel");
        s.visit().staff(1).client(1).home(A).day(2026, 3, 2).at(9, 0).minutes(30).send();
        s.visit().staff(1).client(2).home(B).day(2026, 3, 2).at(10, 10).minutes(30).send();
        s.visit().staff(2).client(3).home(A).day(2026, 3, 2).at(9, 0).minutes(30).send();
        s.visit().staff(2).client(4).home(NEAR).day(2026, 3, 2).at(9, 32).minutes(30).send();
        s.settle();
        assert!(s.alerts().is_empty());
    }
}
