//! Pattern 16, at the visit: a visit by a provider the register already
//! said was not permitted when the visit was reported.
//!
//! **Fraud it catches**: a provider that keeps working after the
//! municipality (or IVO) revoked or suspended its permit, or outside the
//! period of its entry in the customer-choice register, found at the
//! first such visit rather than at the day's decision, which waits out
//! the allowed lateness of the time reports (`provider-without-permit`
//! finds what only a later registration shows, a revocation backdated).
//!
//! **Statistic**: per visit, when it is judged (its provider's clock when
//! it arrived, or its check-in plus `core.reference.visit_grace` if later)
//! and the reference data is known through then, the provider register as
//! registered by then: the visit's day is
//! not permitted when no valid period of the provider's entries in the
//! municipality covers it, or a suspension or revocation does. A finding
//! at the first such visit of a day (a day counts once), counting the
//! days found in the last `window_days`. A provider the register does not
//! know is not judged (a register loaded for some municipalities only
//! must not accuse every other provider). An honest provider renews its
//! entry before it ends and stops when its permit goes.
//!
//! **Parameters** ([`Params`]): `window_days` (31), `critical_days` (7).
//! Severity: medium when no valid period covers the day (a lapsed or not
//! yet started entry), high when a suspension or revocation does, critical
//! from `critical_days` such days in the window.

use super::provider_without_permit::Found;
use super::reference_support::ids_text;
use super::{ReferenceVisitContext, Rule, RuleSpec, check};
use crate::baseline::PermitState;
use crate::finding::{Finding, RuleInfo, RuleStage, Unit};
use crate::model::reference::PermitStatus;
use crate::model::{Day, EventId};
use crate::text::{Text, en, sv};

/// Identity of `visit-without-permit` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "visit-without-permit",
    version: 1,
    pattern: 16,
    name: "Visit by a provider without a valid permit",
    quiet_days: 31,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `visit-without-permit`.
    pub struct Params {
        /// Days back from the visit's day whose days without a permit a
        /// finding counts.
        pub window_days: u32 = 31,
        /// Days without a permit in the window from which a finding is critical.
        pub critical_days: u32 = 7,
    }
}

/// Days kept in [`State`]: as far back as `provider-without-permit` looks
/// (at most 120 days), so that it leaves every day found here to this rule.
const KEEP_DAYS: i32 = 120;

/// One day found without a permit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoundDay {
    /// The day.
    pub day: Day,
    /// The worst status covering it ([`PermitStatus::Valid`]: none).
    pub status: PermitStatus,
    /// The register entries that said so.
    pub entries: Vec<EventId>,
}

/// The days found without a permit, ascending.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Days found, ascending, for [`KEEP_DAYS`] days.
    pub days: Vec<FoundDay>,
}

impl State {
    /// Whether a visit of `day` was found without a permit.
    pub fn found_on(&self, day: Day) -> bool {
        self.days.binary_search_by_key(&day, |f| f.day).is_ok()
    }
}

/// The rule.
pub struct VisitWithoutPermit(pub Params);

impl RuleSpec for VisitWithoutPermit {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = State;

    fn validate(p: &Params) -> Result<(), String> {
        check::within("window_days", f64::from(p.window_days), 1.0, f64::from(KEEP_DAYS as u32))?;
        check::positive_count("critical_days", u64::from(p.critical_days))
    }

    fn new(params: Params) -> Self {
        VisitWithoutPermit(params)
    }

    fn evict(state: &mut State, closed: Day) {
        let oldest = closed.plus(1 - KEEP_DAYS);
        state.days.retain(|f| f.day >= oldest);
    }
}

impl Rule for VisitWithoutPermit {
    fn on_reference_visit(&self, ctx: &mut ReferenceVisitContext<'_>, out: &mut Vec<Finding>) {
        let (day, municipality) = (ctx.day, ctx.provider.municipality);
        let state = &mut ctx.provider.rules.visit_without_permit;
        let Err(at) = state.days.binary_search_by_key(&day, |f| f.day) else { return };
        let PermitState::NotPermitted(status, entries) =
            ctx.reference.permit(ctx.provider_id, municipality, day, ctx.now)
        else {
            return;
        };
        state.days.insert(at, FoundDay { day, status, entries: entries.clone() });
        let mut found = Found::default();
        let first = day.plus(1 - self.0.window_days as i32);
        for f in state.days.iter().filter(|f| f.day >= first && f.day <= day) {
            found.add(f.day, f.status, &f.entries);
        }
        let n = found.days.len() as u64;
        let this = Found { worst: Some(status), ..Found::default() };
        let explanation = Text {
            en: format!(
                "The provider registered a visit on {} although the provider register, as it stood when the visit \
                 was reported, says it was not permitted in the municipality that day: {}. Days with visits without a \
                 permit in the last {}: {}. Register entries: {}.",
                en::date(day),
                this.status_text(false),
                en::count(u64::from(self.0.window_days), "day", "days"),
                n,
                ids_text(&entries),
            ),
            sv: format!(
                "Utföraren har registrerat ett besök den {} fast registret över utförare, så som det såg ut när \
                 besöket rapporterades, säger att den inte fick utföra insatser i kommunen den dagen: {}. Dagar med \
                 besök utan tillstånd de senaste {}: {}. Registerposter: {}.",
                sv::date(day),
                this.status_text(true),
                sv::count(u64::from(self.0.window_days), "dag", "dagar"),
                n,
                ids_text(&entries),
            ),
        };
        let mut evidence = entries;
        evidence.push(ctx.visit.event_id.clone());
        out.push(
            Finding::new(&INFO, ctx.provider_id, municipality, (found.days[0].start(), day.plus(1).start()))
                .severity(found.severity(self.0.critical_days))
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
    use crate::model::reference::{Fact, PermitStatus};
    use crate::model::{Day, EventTime};
    use crate::rules::testkit::Scenario;

    fn at(month: u32, day: u32) -> EventTime {
        Day::from_ymd(2026, month, day).start()
    }

    /// Provider 0 registered in 2025; a visit every day of March at 9:00
    /// (and one at 15:00 on the 10th); the register gets `change`
    /// (registered at its `.1`), if any; the reference data is known
    /// through each visit's hour as it arrives.
    fn run(change: Option<(Fact, EventTime)>, rules: &[&str]) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::with_reference("visit-without-permit");
        s.enable(rules);
        s.reference("lov-1", Day::from_ymd(2025, 12, 1).start(), Scenario::permit(PermitStatus::Valid, at(1, 1), None));
        s.reference_through(2026, 3, 1);
        let mut registered = false;
        for day in 1..=31 {
            for hour in [9, 15].into_iter().filter(|h| *h == 9 || day == 10) {
                let check_in = at(3, day).plus_secs(hour * 3600);
                if let Some((fact, recorded)) = &change
                    && !registered
                    && *recorded < check_in
                {
                    s.reference("lov-2", *recorded, fact.clone());
                    registered = true;
                }
                s.visit().client(1).day(2026, 3, day).at(hour as u32, 0).minutes(60).send();
                s.reference_through_time(check_in.plus_secs(3600));
            }
        }
        s.reference_through(2026, 4, 30);
        s.advance_to(2026, 4, 10);
        s.alerts()
    }

    #[test]
    fn a_visit_after_a_registered_revocation_fires_at_the_visit_and_escalates() {
        // Revoked from the 20th, registered at 8:00 on the 20th.
        let revoked = Scenario::permit(PermitStatus::Revoked, at(3, 20), None);
        let alerts = run(Some((revoked, at(3, 20).plus_secs(8 * 3600))), &[]);
        let seen: Vec<(&str, &str, f64)> =
            alerts.iter().map(|a| (a.status.name(), a.severity.name(), a.observed.value)).collect();
        assert_eq!(seen, [("opened", "high", 1.0), ("escalated", "critical", 7.0)], "{alerts:?}");
        // Decided when the visit is judged (its check-in plus the 6 h of
        // `core.reference.visit_grace`), not at a day's decision.
        assert_eq!(alerts[0].detected_at, at(3, 20).plus_secs(15 * 3600));
        assert_eq!(alerts[1].detected_at, at(3, 26).plus_secs(15 * 3600));
        assert_eq!(alerts[0].evidence[0].as_str(), "lov-2");
        let terms = ["utföraren", "besök", "återkallat", "registerposter", "tillstånd"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
    }

    #[test]
    fn a_revocation_registered_after_the_visit_is_left_to_the_days_decision() {
        // Registered at 16:00 on the 10th: after the 9:00 visit is judged
        // (15:00), before the 15:00 visit is (21:00).
        let revoked = Scenario::permit(PermitStatus::Revoked, at(3, 10), None);
        let rules = ["provider-without-permit"];
        let alerts = run(Some((revoked.clone(), at(3, 10).plus_secs(16 * 3600))), &rules);
        let first: Vec<(&str, f64)> =
            alerts.iter().filter(|a| a.status.name() == "opened").map(|a| (a.rule.id, a.observed.value)).collect();
        // The visit rule found the 10th at its 15:00 visit; the day rule
        // counts no day twice, and the days after are the visit rule's.
        assert_eq!(first, [("visit-without-permit", 1.0)], "{alerts:?}");
        // Backdated to the 5th: the days before the registration only the
        // day rule sees, first at the 7th's decision (the 11th, the allowed
        // lateness after it): the 5th to the 7th. It never counts the 10th
        // on, which are the visit rule's: it would reach 7 days, critical.
        let backdated = Scenario::permit(PermitStatus::Revoked, at(3, 5), None);
        let alerts = run(Some((backdated, at(3, 10).plus_secs(16 * 3600))), &rules);
        let day_rule: Vec<(&str, f64)> = alerts
            .iter()
            .filter(|a| a.rule.id == "provider-without-permit" && a.status.name() != "resolved")
            .map(|a| (a.status.name(), a.observed.value))
            .collect();
        assert_eq!(day_rule, [("opened", 3.0)], "{alerts:?}");
    }

    #[test]
    fn a_provider_with_a_valid_entry_a_renewal_or_none_does_not_fire() {
        assert!(run(None, &[]).is_empty());
        let renewal = Scenario::permit(PermitStatus::Valid, at(3, 15), None);
        assert!(run(Some((renewal, at(3, 10))), &[]).is_empty());
        let mut s = Scenario::with_reference("visit-without-permit");
        s.reference_through(2026, 3, 1);
        s.visit().client(1).day(2026, 3, 2).at(9, 0).minutes(60).send();
        s.reference_through(2026, 4, 30);
        s.advance_to(2026, 4, 10);
        assert!(s.alerts().is_empty(), "a provider the register does not know is not judged");
    }
}
