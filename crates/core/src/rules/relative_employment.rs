//! Pattern 13: relative employment.
//!
//! **Fraud it catches**: a provider employs a relative of a client as
//! home-care staff, who then registers (often inflated) visits almost only
//! at that one client: the hours are billed as home care, the care is the
//! family's own.
//!
//! **Statistic**: in the staff stage (every visit of a staff member,
//! whatever provider registered it, in arrival-clock order), the staff
//! member's home-care minutes (personal assistance, where one assistant
//! per client is normal, and the night patrol excluded) over the
//! `window_weeks` weeks (Monday to Sunday) ending with the visit's week,
//! and the share of them at the visit's place: its client, or its household (a couple's visits
//! count together). Decided at the visit: a finding when the staff member
//! has at least `min_hours` of home care in the window and the share is at
//! least `min_share`, against the provider that registered the most of
//! the minutes at that place. The finding repeats with the staff member's
//! visits there while it holds; the provider's episode takes them as one.
//!
//! The minutes are kept by week, per place and provider, in a ring of the
//! last five weeks (`crate::state::StaffState::record_care`): by day they
//! were the staff stage's largest state, half of it at national scale.
//!
//! **Parameters** ([`Params`]): `window_weeks` (4; at most 5, and 7 ×
//! `window_weeks` within the staff horizon), `min_hours` (40), `min_share` (0.8), `high_share` (0.9),
//! `critical_hours` (120). Severity: medium; high from `high_share` with
//! at least twice `min_hours` at the place; critical from `critical_hours`
//! at the place.

use super::{Rule, RuleSpec, StaffVisitContext, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::state::{CARE_WEEKS, Place, is_home_care, week_of};
use crate::text::{Text, en, sv};

/// Identity of `relative-employment` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "relative-employment",
    version: 1,
    pattern: 13,
    name: "Relative employment",
    quiet_days: 14,
    stage: RuleStage::Staff,
};

params! {
    /// Parameters of `relative-employment`.
    pub struct Params {
        /// Weeks of home care looked at, the visit's week last (at most 5; 7 ×
        /// `window_weeks` within `staff_horizon_days`).
        pub window_weeks: u32 = 4,
        /// Hours of home care the staff member must have in the window.
        pub min_hours: f64 = 40.0,
        /// Share of those hours at one client or household that fires.
        pub min_share: f64 = 0.8,
        /// Share (with at least twice `min_hours` there) that is high.
        pub high_share: f64 = 0.9,
        /// Hours at the one client or household that are critical.
        pub critical_hours: f64 = 120.0,
    }
}

/// The rule.
pub struct RelativeEmployment(pub Params);

impl RuleSpec for RelativeEmployment {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        check::within("window_weeks", f64::from(p.window_weeks), 1.0, CARE_WEEKS as f64)?;
        check::positive("min_hours", p.min_hours)?;
        check::positive("min_share", p.min_share)?;
        check::share("min_share", p.min_share)?;
        check::share("high_share", p.high_share)?;
        check::ascending(&[("min_share", p.min_share), ("high_share", p.high_share)])?;
        check::ascending(&[("min_hours", p.min_hours), ("critical_hours", p.critical_hours)])?;
        check::within("critical_hours", p.critical_hours, 1.0, 24.0 * 365.0)?;
        Ok(())
    }

    fn new(params: Params) -> Self {
        RelativeEmployment(params)
    }
}

impl Rule for RelativeEmployment {
    fn on_staff_visit(&self, ctx: &StaffVisitContext<'_>, out: &mut Vec<Finding>) {
        let p = &self.0;
        let v = ctx.visit;
        if !is_home_care(v.service) {
            return;
        }
        let (week, weeks) = (week_of(ctx.day), p.window_weeks);
        let total = ctx.staff.care_minutes(week, weeks);
        let total_hours = total as f64 / 60.0;
        if total == 0 || total_hours < p.min_hours {
            return;
        }
        let place = Place::of(v.client, v.household);
        let here = ctx.staff.place_minutes(place, week, weeks);
        let at_place: u64 = here.iter().map(|(_, m)| m).sum();
        let share = at_place as f64 / total as f64;
        if share < p.min_share {
            return;
        }
        // The provider that registered the most of them (the lowest id on a tie).
        let Some(&(accused, _)) = here.iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))) else { return };
        let municipality = if accused == v.provider {
            v.municipality
        } else {
            ctx.staff.recent.iter().rev().find(|r| r.provider == accused).map_or(v.municipality, |r| r.municipality)
        };
        let hours = at_place as f64 / 60.0;
        let others = ctx.staff.other_places(place, week, weeks);
        let severity = if hours >= p.critical_hours {
            Severity::Critical
        } else if share >= p.high_share && hours >= 2.0 * p.min_hours {
            Severity::High
        } else {
            Severity::Medium
        };
        let (first, last) = (week.plus(-7 * (weeks as i32 - 1)), week.plus(6));
        let pct = share * 100.0;
        let explanation = Text {
            en: format!(
                "One staff member has {} of {} of home-care visits in {}, {} to {}, at one client or household, \
                 registered by the provider ({} of the visits' hours; at most {} are expected), and visited {} \
                 besides, including time report {}.",
                en::hours(hours, 1),
                en::hours(total_hours, 1),
                en::count(u64::from(weeks), "week", "weeks"),
                en::date(first),
                en::date(last),
                en::percent(pct, 0),
                en::percent_short(p.min_share * 100.0),
                en::count(others, "other client", "other clients"),
                v.event_id
            ),
            sv: format!(
                "En anställd har {} av {} hemtjänstbesök under {}, {} till och med {}, hos en och samma brukare \
                 eller hushåll, registrerade av utföraren ({} av besökens timmar; högst {} förväntas), och har \
                 besökt {} utöver det, bland annat tidrapport {}.",
                sv::hours(hours, 1),
                sv::hours(total_hours, 1),
                sv::count(u64::from(weeks), "vecka", "veckor"),
                sv::date(first),
                sv::date(last),
                sv::percent(pct, 0),
                sv::percent_short(p.min_share * 100.0),
                sv::count(others, "annan brukare", "andra brukare"),
                v.event_id
            ),
        };
        let mut evidence: Vec<_> = ctx
            .staff
            .recent
            .iter()
            .filter(|r| Place::of(r.client, r.household) == place)
            .map(|r| r.event_id.clone())
            .collect();
        evidence.push(v.event_id.clone());
        out.push(
            Finding::new(&INFO, accused, municipality, (first.start(), last.plus(1).start()))
                .severity(severity)
                .score(share / p.min_share)
                .observed(share, Unit::Share)
                .expected(p.min_share, Unit::Share)
                .explain(explanation)
                .evidence(evidence),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::alerting::Severity;
    use crate::model::ServiceType;
    use crate::rules::testkit::{Scenario, assert_bilingual, provider};

    /// Sends, for 21 days from 2026-03-02, two visits a day by staff
    /// member 1: `main` minutes at client 1 (household `household`) and
    /// `other` minutes at one of ten other clients.
    fn three_weeks(s: &mut Scenario, main: i64, other: i64, service: ServiceType, household: Option<u64>) {
        for d in 0..21u32 {
            let mut v = s.visit().provider(1).staff(1).client(1).service(service).day(2026, 3, 2 + d);
            if let Some(h) = household {
                v = v.household(h);
            }
            v.at(9, 0).minutes(main).send();
            if other > 0 {
                let client = 10 + u64::from(d % 10);
                s.visit().provider(1).staff(1).client(client).day(2026, 3, 2 + d).at(14, 0).minutes(other).send();
            }
        }
        s.settle();
    }

    #[test]
    fn ninety_percent_of_fifty_hours_at_one_client_fires() {
        // 21 × (129 + 14) min ≈ 50 h, 90 % at client 1.
        let mut s = Scenario::only("relative-employment");
        three_weeks(&mut s, 129, 14, ServiceType::PersonalCare, None);
        let alerts = s.alerts();
        assert_eq!(alerts.len(), 1, "one episode: {alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.provider, provider(1));
        assert!(a.observed.value >= 0.89 && a.observed.value < 0.91, "{}", a.observed.value);
        assert_eq!(a.severity, Severity::Medium, "45 h at the client is below twice 40 h");
        let terms = ["anställd", "brukare", "besök", "hemtjänst", "utförare", "4 veckor", "tidrapport"];
        assert_bilingual(&a.explanation, &terms);
        assert!(a.explanation.en.contains("10 other clients"), "{}", a.explanation.en);
    }

    #[test]
    fn seventy_percent_or_thirty_hours_or_personal_assistance_do_not_fire() {
        // 70 % of 50 h.
        let mut s = Scenario::only("relative-employment");
        three_weeks(&mut s, 100, 43, ServiceType::PersonalCare, None);
        assert!(s.alerts().is_empty(), "70 %");
        // 90 % of 30 h.
        let mut s = Scenario::only("relative-employment");
        three_weeks(&mut s, 77, 9, ServiceType::PersonalCare, None);
        assert!(s.alerts().is_empty(), "30 h");
        // All of 50 h, but personal assistance.
        let mut s = Scenario::only("relative-employment");
        three_weeks(&mut s, 143, 0, ServiceType::PersonalAssistance, None);
        assert!(s.alerts().is_empty(), "personal assistance");
    }

    #[test]
    fn a_couples_household_counts_as_one() {
        // Staff member 2 alternates between the two clients of household
        // 5: half each, all of it at one home.
        let mut s = Scenario::only("relative-employment");
        for d in 0..21u32 {
            for (client, hour) in [(1, 8), (2, 11)] {
                s.visit()
                    .provider(2)
                    .staff(2)
                    .client(client)
                    .household(5)
                    .day(2026, 3, 2 + d)
                    .at(hour, 0)
                    .minutes(90)
                    .send();
            }
        }
        s.settle();
        let alerts = s.alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].observed.value, 1.0);
        assert_eq!(alerts[0].provider, provider(2));
        // The same visits without the household: half at each client.
        let mut s = Scenario::only("relative-employment");
        for d in 0..21u32 {
            for (client, hour) in [(1, 8), (2, 11)] {
                s.visit().provider(2).staff(2).client(client).day(2026, 3, 2 + d).at(hour, 0).minutes(90).send();
            }
        }
        s.settle();
        assert!(s.alerts().is_empty());
    }

    #[test]
    fn the_provider_registering_most_of_the_minutes_is_accused() {
        let mut s = Scenario::only("relative-employment");
        for d in 0..21u32 {
            s.visit().provider(3).staff(4).client(1).day(2026, 3, 2 + d).at(8, 0).minutes(120).send();
            if d % 7 == 0 {
                s.visit().provider(4).staff(4).client(1).day(2026, 3, 2 + d).at(14, 0).minutes(60).send();
            }
        }
        s.settle();
        let accused: Vec<_> = s.alerts().iter().map(|a| a.provider).collect();
        assert_eq!(accused, [provider(3)]);
    }
}
