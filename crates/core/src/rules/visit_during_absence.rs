//! Pattern 11, at the visit: a visit for a client the municipality had
//! already registered as away from home when the visit was reported.
//!
//! **Fraud it catches**: visits registered for a client who was not at
//! home to be cared for: in hospital, in short-term care, dead or moved
//! away (the Södertälje cases: clients billed while in hospital). Found at
//! the visit rather than at the day's decision, which waits out the
//! allowed lateness of the time reports (`billing-during-absence` finds
//! what only a later registration shows, a stay registered days late, and
//! compares the invoices). An honest provider's staff find the home empty
//! and register no visit.
//!
//! **Statistic**: per visit, when it is judged (its provider's clock when
//! it arrived, or its check-in plus `core.reference.visit_grace` if later)
//! and the reference data is known through then: whether the visit's day
//! lies inside one of the client's absences as registered by then, from
//! the day after the admission (or death, or move) to the day before the
//! discharge, less `edge_days` more at each end. The days of admission and
//! discharge never count: a morning visit before an admission, or an
//! evening visit after a discharge, is honest, and a discharge registered
//! later that day changes nothing. A discharge registered after midnight
//! would: set `core.reference.visit_grace` to how late the sources
//! register one. A finding at the first such visit of a client-day (each
//! client-day once), counting the client-days found in the last
//! `window_days`.
//!
//! **Parameters** ([`Params`]): `edge_days` (0), `window_days` (31).
//! Severity by client-days: medium from 1, high from `high_count` (3),
//! critical from `critical_count` (10).

use super::billing_during_absence::{inside, kinds_text};
use super::reference_support::ids_text;
use super::{ReferenceVisitContext, Rule, RuleSpec, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::{ClientKey, Day};
use crate::text::{Text, en, sv};

/// Identity of `visit-during-absence` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "visit-during-absence",
    version: 1,
    pattern: 11,
    name: "Visit during an absence",
    quiet_days: 31,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `visit-during-absence`.
    pub struct Params {
        /// Days after the admission day and before the discharge day that
        /// do not count either (0: only those two days are exempt).
        pub edge_days: u32 = 0,
        /// Days back from the visit's day whose client-days found a
        /// finding counts.
        pub window_days: u32 = 31,
        /// Client-days from which a finding is high severity.
        pub high_count: u32 = 3,
        /// Client-days from which a finding is critical.
        pub critical_count: u32 = 10,
    }
}

/// Days kept in [`State`]: as far back as `billing-during-absence` looks
/// (at most 120 days), so that it leaves every client-day found here to
/// this rule.
const KEEP_DAYS: i32 = 120;

/// The client-days found at a visit, ascending.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// (day, client), ascending, for [`KEEP_DAYS`] days.
    pub found: Vec<(Day, ClientKey)>,
}

impl State {
    /// Whether a visit of `client` on `day` was found during an absence.
    pub fn found_on(&self, client: ClientKey, day: Day) -> bool {
        self.found.binary_search(&(day, client)).is_ok()
    }
}

/// The rule.
pub struct VisitDuringAbsence(pub Params);

impl RuleSpec for VisitDuringAbsence {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = State;

    fn validate(p: &Params) -> Result<(), String> {
        check::within("edge_days", f64::from(p.edge_days), 0.0, 7.0)?;
        check::within("window_days", f64::from(p.window_days), 1.0, f64::from(KEEP_DAYS as u32))?;
        check::positive_count("high_count", u64::from(p.high_count))?;
        check::ascending(&[("high_count", f64::from(p.high_count)), ("critical_count", f64::from(p.critical_count))])
    }

    fn new(params: Params) -> Self {
        VisitDuringAbsence(params)
    }

    fn evict(state: &mut State, closed: Day) {
        let oldest = closed.plus(1 - KEEP_DAYS);
        state.found.retain(|(day, _)| *day >= oldest);
    }
}

impl Rule for VisitDuringAbsence {
    fn on_reference_visit(&self, ctx: &mut ReferenceVisitContext<'_>, out: &mut Vec<Finding>) {
        let (client, day) = (ctx.visit.client, ctx.day);
        let state = &mut ctx.provider.rules.visit_during_absence;
        let Err(at) = state.found.binary_search(&(day, client)) else { return };
        let absences = ctx.reference.absences(client, ctx.now);
        let Some((id, absence)) = absences.iter().find(|(_, a)| inside(a, day, self.0.edge_days)) else { return };
        state.found.insert(at, (day, client));
        let first = day.plus(1 - self.0.window_days as i32);
        let n = state.found.iter().filter(|(d, _)| *d >= first && *d <= day).count() as u64;
        let kind = [absence.kind];
        let explanation = Text {
            en: format!(
                "A visit was registered on {} for a client the municipality's records had away from home when the \
                 visit was reported ({}, from {}): no one can be cared for at home then. Client-days with visits \
                 during an absence in the last {}: {}. Absence record: {}.",
                en::date(day),
                kinds_text(&kind, false),
                en::date(absence.period.from.day()),
                en::count(u64::from(self.0.window_days), "day", "days"),
                n,
                ids_text(&[(*id).clone()]),
            ),
            sv: format!(
                "Ett besök har registrerats den {} hos en brukare som enligt kommunens uppgifter inte var hemma när \
                 besöket rapporterades ({}, från {}): ingen kan få hemtjänst i hemmet då. Brukardagar med besök \
                 under frånvaro de senaste {}: {}. Frånvaropost: {}.",
                sv::date(day),
                kinds_text(&kind, true),
                sv::date(absence.period.from.day()),
                sv::count(u64::from(self.0.window_days), "dag", "dagar"),
                n,
                ids_text(&[(*id).clone()]),
            ),
        };
        let evidence = vec![(*id).clone(), ctx.visit.event_id.clone()];
        let severity =
            Severity::by_cutoffs(n as f64, 1.0, f64::from(self.0.high_count), f64::from(self.0.critical_count));
        out.push(
            Finding::new(&INFO, ctx.provider_id, ctx.provider.municipality, (first.start(), day.plus(1).start()))
                .severity(severity)
                .score(n as f64)
                .observed(n as f64, Unit::Days)
                .expected(0.0, Unit::Days)
                .explain(explanation)
                .evidence(evidence),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Day, EventTime};
    use crate::rules::testkit::Scenario;

    fn at(day: u32, hour: i64) -> EventTime {
        Day::from_ymd(2026, 3, day).start().plus_secs(hour * 3600)
    }

    /// Clients 1 and 2 visited every morning of 1–20 March at 8:00 and
    /// 9:00; client 1 in hospital from the 5th 10:00, the stay registered
    /// at `recorded` with its end open and closed on the 12th at 14:00
    /// (registered at `discharge_recorded`); the reference data known
    /// through 10:00 of each day after its visits.
    fn run(recorded: EventTime, discharge_recorded: EventTime, rules: &[&str]) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::with_reference("visit-during-absence");
        s.enable(rules);
        s.reference_through(2026, 3, 1);
        let (mut open, mut closed) = (false, false);
        for day in 1..=20 {
            if !open && recorded <= at(day, 8) {
                s.reference("abs-7", recorded, Scenario::hospital_stay(1, at(5, 10), None));
                open = true;
            }
            if !closed && discharge_recorded <= at(day, 8) {
                s.reference("abs-7", discharge_recorded, Scenario::hospital_stay(1, at(5, 10), Some(at(12, 14))));
                closed = true;
            }
            s.visit().client(1).day(2026, 3, day).at(8, 0).minutes(45).send();
            s.visit().client(2).day(2026, 3, day).at(9, 0).minutes(45).send();
            s.reference_through_time(at(day, 10));
        }
        s.reference_through(2026, 3, 21);
        s.advance_to(2026, 3, 28);
        s.reference_through(2026, 4, 1);
        s.alerts()
    }

    #[test]
    fn a_visit_inside_a_registered_stay_fires_at_the_visit_and_escalates() {
        let alerts = run(at(5, 11), at(12, 18), &[]);
        let seen: Vec<(&str, f64, EventTime)> =
            alerts.iter().map(|a| (a.status.name(), a.observed.value, a.detected_at)).collect();
        // The 6th to the 11th: the admission and discharge days are exempt.
        assert_eq!(
            seen,
            [("opened", 1.0, at(6, 14)), ("escalated", 3.0, at(8, 14))],
            "decided at the check-in plus the 6 h of core.reference.visit_grace: {alerts:?}"
        );
        let terms = ["besök", "brukare", "brukardagar", "sjukhusvistelse", "frånvaropost"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
        assert_eq!(alerts[0].evidence[0].as_str(), "abs-7");
    }

    #[test]
    fn the_day_rule_finds_only_the_client_days_registered_after_their_visits() {
        let rules = ["billing-during-absence"];
        // Registered at admission: everything is the visit rule's.
        let alerts = run(at(5, 11), at(12, 18), &rules);
        assert!(!alerts.is_empty() && alerts.iter().all(|a| a.rule.id == "visit-during-absence"), "{alerts:?}");
        // Registered on the 9th at 7:00: the 6th to the 8th only the day
        // rule sees (first at the 6th's decision, three days after the
        // 7th begins); the 9th to the 11th the visit rule.
        let alerts = run(at(9, 7), at(12, 18), &rules);
        let opened: Vec<(&str, f64)> =
            alerts.iter().filter(|a| a.status.name() == "opened").map(|a| (a.rule.id, a.observed.value)).collect();
        assert_eq!(opened, [("visit-during-absence", 1.0), ("billing-during-absence", 1.0)], "{alerts:?}");
        let day_rule: Vec<f64> =
            alerts.iter().filter(|a| a.rule.id == "billing-during-absence").map(|a| a.observed.value).collect();
        assert_eq!(day_rule, [1.0, 3.0], "the 6th, then the 6th to the 8th, never the 9th on: {alerts:?}");
    }

    #[test]
    fn visits_on_the_admission_and_discharge_days_do_not_fire() {
        // A stay from the 5th to the 6th, registered at once: both days exempt.
        let mut s = Scenario::with_reference("visit-during-absence");
        s.reference_through(2026, 3, 1);
        s.reference("abs-1", at(5, 11), Scenario::hospital_stay(1, at(5, 10), Some(at(6, 12))));
        for day in 1..=10 {
            s.visit().client(1).day(2026, 3, day).at(8, 0).minutes(45).send();
            s.reference_through_time(at(day, 10));
        }
        s.reference_through(2026, 3, 20);
        assert!(s.alerts().is_empty(), "{:?}", s.alerts());
    }

    /// A stay from the 5th, open; discharged on the 12th at 14:00 and the
    /// discharge registered at 18:00; visits at 16:00 from the 12th on,
    /// with `grace` as `core.reference.visit_grace`.
    fn after_discharge(grace_hours: u64) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::with_reference("visit-during-absence");
        s.configure(|c| c.reference.visit_grace = std::time::Duration::from_secs(grace_hours * 3600));
        s.reference_through(2026, 3, 1);
        s.reference("abs-1", at(5, 11), Scenario::hospital_stay(1, at(5, 10), None));
        s.reference_through_time(at(12, 16));
        s.visit().client(1).day(2026, 3, 12).at(16, 0).minutes(45).send();
        s.reference_through_time(at(12, 17));
        s.reference("abs-1", at(12, 18), Scenario::hospital_stay(1, at(5, 10), Some(at(12, 14))));
        for day in 13..=15 {
            s.visit().client(1).day(2026, 3, day).at(16, 0).minutes(45).send();
        }
        s.reference_through(2026, 3, 25);
        s.alerts()
    }

    #[test]
    fn a_visit_after_a_discharge_registered_within_the_grace_does_not_fire() {
        // Judged at 22:00 (6 h of grace, the default), the stay is closed:
        // the 12th is its discharge day.
        assert!(after_discharge(6).is_empty());
        // Without the grace it is judged at 16:00, the stay still open:
        // what `core.reference.visit_grace` is for.
        let alerts = after_discharge(0);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].detected_at, at(12, 16));
    }
}
