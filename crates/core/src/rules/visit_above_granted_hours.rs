//! Pattern 15, at the visit: the visit that takes a client's month over
//! the hours the municipality had granted when it began.
//!
//! **Fraud it catches**: a provider that performs more time for a client
//! than the municipality granted (biståndsbeslut): padded visits, visits
//! that were never needed. Found at the visit that goes over, rather than
//! at the day's decision, which waits out the allowed lateness of the time
//! reports (`above-granted-hours` finds what only a later registration
//! shows, a decision revised downward after the fact, and compares the
//! invoices). Honest providers perform about 80 % of the granted time
//! (79–86 %).
//!
//! **Statistic**: per visit, when it is judged (its provider's clock when
//! it arrived, or its check-in plus `core.reference.visit_grace` if later)
//! and the reference data is known through then: the minutes of the client's service type this provider
//! performed in the visit's calendar month, counted in the order the
//! visits arrived and this one included, against the minutes granted for
//! the whole month by the decisions in force as registered by then (a
//! decision covering part of the month counts pro rata). Over
//! once they exceed `granted × (1 + tolerance_ratio) + tolerance_minutes`:
//! a finding at the first visit that goes over (each client-month once),
//! counting the client-months over in the visit's month and the one
//! before. Clients without any decision for the service are not judged.
//!
//! **Parameters** ([`Params`]): `tolerance_ratio` (0.10),
//! `tolerance_minutes` (60). Severity by client-months over: medium from
//! 1, high from `high_count` (3), critical from `critical_count` (10).

use rustc_hash::FxHashMap;

use super::above_granted_hours::excess;
use super::reference_support::ids_text;
use super::{ReferenceVisitContext, Rule, RuleSpec, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::{ClientKey, Day, Month, ServiceType};
use crate::state::sorted_map;
use crate::text::{Text, en, sv};

/// Identity of `visit-above-granted-hours` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "visit-above-granted-hours",
    version: 1,
    pattern: 15,
    name: "Visit above the granted hours",
    quiet_days: 45,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `visit-above-granted-hours`.
    pub struct Params {
        /// Share of the granted minutes allowed above them.
        pub tolerance_ratio: f64 = 0.10,
        /// Minutes allowed above the granted minutes besides the share.
        pub tolerance_minutes: u32 = 60,
        /// Client-months over the grant from which a finding is high severity.
        pub high_count: u32 = 3,
        /// Client-months over the grant from which a finding is critical.
        pub critical_count: u32 = 10,
    }
}

/// What `visit-above-granted-hours` keeps per provider: the client-months
/// found over the grant, with the earliest day of a visit that was over
/// (a visit of an earlier day may arrive later, within the lateness).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Per client, service type and month: the earliest day over.
    #[serde(serialize_with = "sorted_map")]
    pub found: FxHashMap<(ClientKey, ServiceType, Month), Day>,
}

impl State {
    /// Whether a visit on or before `day` took the client-month over.
    pub fn found_by(&self, client: ClientKey, service: ServiceType, month: Month, day: Day) -> bool {
        self.found.get(&(client, service, month)).is_some_and(|d| *d <= day)
    }
}

/// The rule.
pub struct VisitAboveGrantedHours(pub Params);

impl RuleSpec for VisitAboveGrantedHours {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = State;

    fn validate(p: &Params) -> Result<(), String> {
        check::within("tolerance_ratio", p.tolerance_ratio, 0.0, 2.0)?;
        check::within("tolerance_minutes", f64::from(p.tolerance_minutes), 0.0, 6000.0)?;
        check::positive_count("high_count", u64::from(p.high_count))?;
        check::ascending(&[("high_count", f64::from(p.high_count)), ("critical_count", f64::from(p.critical_count))])
    }

    fn new(params: Params) -> Self {
        VisitAboveGrantedHours(params)
    }

    fn evict(state: &mut State, closed: Day) {
        // `above-granted-hours` asks about the decided day's month only.
        let oldest = closed.month().0 - 1;
        state.found.retain(|(_, _, month), _| month.0 >= oldest);
    }
}

impl Rule for VisitAboveGrantedHours {
    fn on_reference_visit(&self, ctx: &mut ReferenceVisitContext<'_>, out: &mut Vec<Finding>) {
        let v = ctx.visit;
        let (day, month) = (ctx.day, ctx.day.month());
        let Some((granted, decisions)) =
            ctx.reference.granted_minutes(v.client, v.service, month.start(), month.next().start(), ctx.now)
        else {
            return;
        };
        let over = excess(v.month_minutes, granted, self.0.tolerance_ratio, self.0.tolerance_minutes);
        if over == 0 {
            return;
        }
        let found = &mut ctx.provider.rules.visit_above_granted_hours.found;
        match found.get_mut(&(v.client, v.service, month)) {
            Some(first) => {
                *first = (*first).min(day);
                return;
            }
            None => found.insert((v.client, v.service, month), day),
        };
        let months = found.keys().filter(|(_, _, m)| m.0 == month.0 || m.0 == month.0 - 1).count() as u64;
        let (performed, granted_h) = (f64::from(v.month_minutes) / 60.0, granted / 60.0);
        let p = &self.0;
        let tolerance = (p.tolerance_ratio * 100.0, f64::from(p.tolerance_minutes) / 60.0);
        let explanation = Text {
            en: format!(
                "A visit on {} took a client's {} in {} to {}, above the {} the municipality had granted for the \
                 whole month when the visit was reported, beyond a tolerance of {} plus {}. Client-months over the grant \
                 this month and last: {}. Decisions: {}.",
                en::date(day),
                v.service.name(),
                en::month(month),
                en::hours(performed, 1),
                en::hours(granted_h, 1),
                en::percent(tolerance.0, 0),
                en::hours_short(tolerance.1),
                months,
                ids_text(&decisions),
            ),
            sv: format!(
                "Ett besök den {} gjorde att en brukares {} under {} kom upp i {}, över de {} som kommunen hade \
                 beviljat för hela månaden när besöket rapporterades, utöver en tolerans på {} plus {}. Brukarmånader \
                 över beviljad tid denna och förra månaden: {}. Biståndsbeslut: {}.",
                sv::date(day),
                v.service.name_sv(),
                sv::month(month),
                sv::hours(performed, 1),
                sv::hours(granted_h, 1),
                sv::percent(tolerance.0, 0),
                sv::hours_short(tolerance.1),
                months,
                ids_text(&decisions),
            ),
        };
        let mut evidence = decisions;
        evidence.push(v.event_id.clone());
        out.push(
            Finding::new(&INFO, ctx.provider_id, ctx.provider.municipality, (month.start(), day.plus(1).start()))
                .severity(Severity::by_cutoffs(
                    months as f64,
                    1.0,
                    f64::from(self.0.high_count),
                    f64::from(self.0.critical_count),
                ))
                .score(months as f64)
                .observed(months as f64, Unit::Clients)
                .expected(0.0, Unit::Clients)
                .explain(explanation)
                .evidence(evidence),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Day, EventTime};
    use crate::rules::testkit::{Scenario, decision};

    fn at(day: u32, hour: i64) -> EventTime {
        Day::from_ymd(2026, 3, day).start().plus_secs(hour * 3600)
    }

    /// A decision for `client`'s care of `hours` a month from January on.
    /// Clients 1–4 granted 10 h of care a month; each visited every day of
    /// March at 8:00 for `minutes`; a version of a decision registered at
    /// `revision.2`, if any; the reference data is known through 9:00 of
    /// each day after its visits.
    fn run(minutes: i64, rules: &[&str], revision: Option<(u64, u32, EventTime)>) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::with_reference("visit-above-granted-hours");
        s.enable(rules);
        for client in 1..=4 {
            s.reference(&format!("beslut-{client}"), Day::from_ymd(2025, 12, 1).start(), decision(client, 10));
        }
        s.reference_through(2026, 3, 1);
        for day in 1..=31 {
            if let Some((client, hours, recorded)) = revision
                && recorded > at(day - 1, 9)
                && recorded <= at(day, 8)
            {
                s.reference(&format!("beslut-{client}"), recorded, decision(client, hours));
            }
            for client in 1..=4 {
                s.visit().client(client).day(2026, 3, day).at(8, client as u32).minutes(minutes).send();
            }
            s.reference_through_time(at(day, 9));
        }
        s.reference_through(2026, 5, 1);
        s.advance_to(2026, 4, 20);
        s.alerts()
    }

    #[test]
    fn the_visit_that_takes_a_month_over_the_grant_fires_at_once() {
        // 30 minutes a day: 10 h is passed on the 20th, 12 h (10 h, 10 %
        // and 1 h) on the 25th, by every client.
        let alerts = run(30, &[], None);
        let seen: Vec<(&str, &str, f64)> =
            alerts.iter().map(|a| (a.status.name(), a.severity.name(), a.observed.value)).collect();
        assert_eq!(seen, [("opened", "medium", 1.0), ("escalated", "high", 3.0)], "{alerts:?}");
        // Decided when the visit that went over is judged: its check-in plus
        // the 6 h of `core.reference.visit_grace`.
        assert_eq!(alerts[0].detected_at, at(25, 14).plus_secs(60));
        let terms = ["besök", "brukare", "beviljat", "biståndsbeslut", "tolerans"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
        assert_eq!(alerts[0].evidence.iter().map(|e| e.as_str()).next(), Some("beslut-1"));
    }

    #[test]
    fn a_month_within_the_tolerance_does_not_fire() {
        // 23 minutes a day: 11 h 53 min in March, under 12 h.
        assert!(run(23, &[], None).is_empty());
        // A decision raised to 20 h on the 10th (valid from January): the
        // 30 minutes a day stay under it.
        assert!(run(30, &[], Some((1, 20, at(10, 7)))).iter().all(|a| a.observed.value <= 3.0));
    }

    #[test]
    fn the_day_rule_counts_only_what_the_visits_did_not_find() {
        let rules = ["above-granted-hours"];
        // Over at the visits: the day rule finds nothing of its own.
        let alerts = run(30, &rules, None);
        assert!(!alerts.is_empty() && alerts.iter().all(|a| a.rule.id == "visit-above-granted-hours"), "{alerts:?}");
        // Client 1's decision cut to 5 h, backdated to January and
        // registered on the 19th at 10:00: its month went over 6.5 h on the
        // 14th, before anyone knew. The day rule finds it at the first
        // decision after the registration (the 16th's, on the 20th); the
        // visit rule at the first visit judged after it (the 19th's, judged
        // at 14:01).
        let alerts = run(30, &rules, Some((1, 5, at(19, 10))));
        let opened: Vec<(&str, EventTime)> =
            alerts.iter().filter(|a| a.status.name() == "opened").map(|a| (a.rule.id, a.detected_at)).collect();
        assert_eq!(
            opened,
            [("visit-above-granted-hours", at(19, 14).plus_secs(60)), ("above-granted-hours", at(20, 0))],
            "{alerts:?}"
        );
    }
}
