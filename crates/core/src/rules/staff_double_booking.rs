//! Pattern 2: staff double-booking.
//!
//! **Fraud it catches**: one staff member checked in at two clients at
//! overlapping times: at least one of the visits did not happen (typically
//! a ghost visit registered on a real employee). Checked within a provider
//! and across the providers this engine sees.
//!
//! **Statistic**: for each new visit, the overlap in minutes with each of
//! the staff member's recent visits (kept by the engine, in any arrival
//! order) at a different client. Clients in the same household are exempt
//! (a couple served in one visit slot), as are visits at the same client.
//! When the two visits are billed by different providers, who is accused
//! follows [`super::attribution`].
//!
//! **Parameters** ([`Params`]): `min_overlap_minutes` (5: clock skew and
//! hand-over). Severity: medium, high from `high_overlap_minutes` (30) of
//! overlap or when the two visits are billed by different providers.

use super::{Rule, RuleSpec, StaffVisitContext, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::text::{Text, en, sv};

/// Identity of `staff-double-booking` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "staff-double-booking",
    version: 3,
    pattern: 2,
    name: "Staff double-booking",
    quiet_days: 14,
    stage: RuleStage::Staff,
};

params! {
    /// Parameters of `staff-double-booking`.
    pub struct Params {
        /// Smallest overlap that counts, minutes.
        pub min_overlap_minutes: u32 = 5,
        /// Overlap that makes the finding high severity, minutes.
        pub high_overlap_minutes: u32 = 30,
    }
}

/// The rule.
pub struct StaffDoubleBooking(pub Params);

impl RuleSpec for StaffDoubleBooking {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        check::positive_count("min_overlap_minutes", u64::from(p.min_overlap_minutes))?;
        check::ascending(&[
            ("min_overlap_minutes", f64::from(p.min_overlap_minutes)),
            ("high_overlap_minutes", f64::from(p.high_overlap_minutes)),
        ])
    }

    fn new(params: Params) -> Self {
        StaffDoubleBooking(params)
    }
}

impl Rule for StaffDoubleBooking {
    fn on_staff_visit(&self, ctx: &StaffVisitContext<'_>, out: &mut Vec<Finding>) {
        let v = ctx.visit;
        let min = i64::from(self.0.min_overlap_minutes) * 60;
        let worst = ctx
            .staff
            .recent
            .iter()
            .filter(|r| r.client != v.client)
            .filter(|r| !(r.household.is_some() && r.household == v.household))
            .map(|r| (v.check_out.0.min(r.check_out.0) - v.check_in.0.max(r.check_in.0), r))
            .filter(|(overlap, _)| *overlap >= min)
            .max_by_key(|(overlap, _)| *overlap);
        let Some((overlap, other)) = worst else { return };
        let overlap_minutes = overlap as f64 / 60.0;
        let cross_provider = other.provider != v.provider;
        let severity = if cross_provider || overlap >= i64::from(self.0.high_overlap_minutes) * 60 {
            Severity::High
        } else {
            Severity::Medium
        };
        for (provider, municipality) in super::attribution::accused(v, other, ctx.staff) {
            out.push(self.finding(v, other, provider, municipality, severity, overlap_minutes, cross_provider));
        }
    }
}

impl StaffDoubleBooking {
    #[allow(clippy::too_many_arguments)]
    fn finding(
        &self,
        v: &crate::model::Visit,
        other: &crate::state::RecentVisit,
        provider: crate::model::ProviderId,
        municipality: crate::model::MunicipalityCode,
        severity: Severity,
        overlap_minutes: f64,
        cross_provider: bool,
    ) -> Finding {
        let counterpart = if provider == v.provider { other.provider } else { v.provider };
        let window = (v.check_in.min(other.check_in), v.check_out.max(other.check_out));
        let (day, minutes, ignored) =
            (window.0.day(), overlap_minutes.round() as u64, u64::from(self.0.min_overlap_minutes));
        let explanation = Text {
            en: format!(
                "One staff member is registered at two different clients' homes at the same time on {}: {} of \
                 overlap between time report {} and time report {}{}. At most one of these visits can have taken \
                 place. (Overlaps under {} are not counted.)",
                en::date(day),
                en::count(minutes, "minute", "minutes"),
                v.event_id,
                other.event_id,
                if cross_provider {
                    format!(" (the other billed by another provider, {counterpart})")
                } else {
                    String::new()
                },
                en::count(ignored, "minute", "minutes"),
            ),
            sv: format!(
                "En och samma medarbetare är registrerad hemma hos två olika brukare samtidigt den {}: tidrapport {} \
                 och tidrapport {} överlappar med {}{}. Högst ett av besöken kan ha ägt rum. (Överlappningar under \
                 {} räknas inte.)",
                sv::date(day),
                v.event_id,
                other.event_id,
                sv::count(minutes, "minut", "minuter"),
                if cross_provider {
                    format!(" (det andra besöket fakturerades av en annan utförare, {counterpart})")
                } else {
                    String::new()
                },
                sv::count(ignored, "minut", "minuter"),
            ),
        };
        Finding::new(&INFO, provider, municipality, window)
            .severity(severity)
            .score(overlap_minutes)
            .observed(overlap_minutes, Unit::Minutes)
            .expected(0.0, Unit::Minutes)
            .explain(explanation)
            .evidence(vec![other.event_id.clone(), v.event_id.clone()])
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testkit::Scenario;

    #[test]
    fn one_staff_member_at_two_clients_at_once_fires() {
        let mut s = Scenario::only("staff-double-booking");
        s.visit().staff(7).client(1).day(2026, 3, 2).at(9, 0).minutes(60).send();
        s.visit().staff(7).client(2).day(2026, 3, 2).at(9, 30).minutes(45).send();
        s.settle();
        let alerts = s.alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].observed.value, 30.0);
        let terms = ["medarbetare", "brukare", "tidrapport", "besöken", "minuter", "2026-03-02"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
    }

    #[test]
    fn across_providers_the_weaker_registration_is_accused() {
        use crate::model::RegistrationMethod::{Manual, Nfc};
        use crate::rules::testkit::provider;
        let mut s = Scenario::only("staff-double-booking");
        s.visit().provider(1).staff(7).client(1).method(Manual).day(2026, 3, 2).at(9, 0).minutes(60).send();
        s.visit().provider(2).staff(7).client(2).method(Nfc).day(2026, 3, 2).at(9, 10).minutes(60).send();
        s.settle();
        let accused: Vec<_> = s.alerts().iter().map(|a| a.provider).collect();
        assert_eq!(accused, vec![provider(1)]);
        let terms = ["medarbetare", "brukare", "tidrapport", "annan utförare", "fakturerades"];
        crate::rules::testkit::assert_bilingual(&s.alerts()[0].explanation, &terms);
    }

    #[test]
    fn on_equal_registrations_the_provider_borrowing_the_name_is_accused() {
        use crate::model::RegistrationMethod::Manual;
        use crate::rules::testkit::provider;
        let mut s = Scenario::only("staff-double-booking");
        // Staff member 7 works for provider 1; provider 2 registers them once, overlapping.
        for h in [7, 8] {
            s.visit().provider(1).staff(7).client(h).method(Manual).day(2026, 3, 2).at(h as u32, 0).send();
        }
        s.visit().provider(1).staff(7).client(1).method(Manual).day(2026, 3, 2).at(9, 0).minutes(60).send();
        s.visit().provider(2).staff(7).client(2).method(Manual).day(2026, 3, 2).at(9, 10).minutes(60).send();
        s.settle();
        let accused: Vec<_> = s.alerts().iter().map(|a| a.provider).collect();
        assert_eq!(accused, vec![provider(2)]);
    }

    #[test]
    fn a_borrowed_name_is_the_borrowers_even_when_the_employer_registered_by_hand() {
        use crate::model::RegistrationMethod::{Edited, Manual, Nfc};
        use crate::rules::testkit::provider;
        let mut s = Scenario::only("staff-double-booking");
        // Staff member 7 works for provider 1 (door events, then one visit
        // registered by hand); provider 2 registers them once, edited.
        for h in [7, 8] {
            s.visit().provider(1).staff(7).client(h).method(Nfc).day(2026, 3, 2).at(h as u32, 0).send();
        }
        s.visit().provider(1).staff(7).client(1).method(Manual).day(2026, 3, 2).at(9, 0).minutes(60).send();
        s.visit().provider(2).staff(7).client(2).method(Edited).day(2026, 3, 2).at(9, 10).minutes(60).send();
        s.settle();
        let accused: Vec<_> = s.alerts().iter().map(|a| a.provider).collect();
        assert_eq!(accused, vec![provider(2)]);
    }

    #[test]
    fn a_company_with_branches_in_two_municipalities_has_an_episode_in_each() {
        let mut s = Scenario::only("staff-double-booking");
        // The same company double-books in Umeå (staff 7) and in Vännäs (staff 8).
        s.visit().staff(7).client(1).day(2026, 3, 2).at(9, 0).minutes(60).send();
        s.visit().staff(7).client(2).day(2026, 3, 2).at(9, 30).minutes(45).send();
        s.visit().municipality("2460").staff(8).client(3).day(2026, 3, 2).at(11, 0).minutes(60).send();
        s.visit().municipality("2460").staff(8).client(4).day(2026, 3, 2).at(11, 30).minutes(45).send();
        s.settle();
        let alerts = s.alerts();
        let places: Vec<String> = alerts.iter().map(|a| format!("{} {}", a.provider, a.municipality)).collect();
        assert_eq!(places, ["556100-0000 2480", "556100-0000 2460"], "one episode per branch");
        assert_ne!(alerts[0].episode_id, alerts[1].episode_id);
        assert_eq!(s.state_size().providers, 2, "each branch has its own windows");
    }

    #[test]
    fn back_to_back_visits_and_a_couple_in_one_household_do_not_fire() {
        let mut s = Scenario::only("staff-double-booking");
        s.visit().staff(7).client(1).day(2026, 3, 2).at(9, 0).minutes(60).send();
        // Starts 3 minutes before the previous visit ends: under the 5-minute tolerance.
        s.visit().staff(7).client(2).day(2026, 3, 2).at(9, 57).minutes(30).send();
        // A couple: two clients, one household, one visit slot.
        s.visit().staff(8).client(3).household(1).day(2026, 3, 2).at(11, 0).minutes(30).send();
        s.visit().staff(8).client(4).household(1).day(2026, 3, 2).at(11, 0).minutes(30).send();
        s.settle();
        assert!(s.alerts().is_empty());
    }
}
