//! Visits or invoices by a provider without a valid permit.
//!
//! **Fraud it catches**: a provider that keeps working and billing after
//! the municipality (or IVO) revoked or suspended its permit, or outside
//! the period of its entry in the customer-choice register: a company
//! struck off for cause that carries on under the same organisation number
//! while the paperwork catches up.
//!
//! **Statistic**: at each day's decision, the days of the last
//! `lookback_days` on which the provider registered visits in a
//! municipality whose provider register (the reference data as of the
//! decision time) has an entry for it, and on which no valid period
//! covers the day or a suspension or revocation does. A decision makes a
//! finding when it finds a day no earlier decision found (the day decided,
//! or an earlier day whose revocation was registered since, backdated),
//! counting all of them. A day `visit-without-permit` found at one of its
//! visits (the register already said so when the visit began) is left to
//! it: this rule finds the days that only a registration after their
//! visits shows (a revocation backdated). Per invoice, once the reference data is known
//! through its decision, an invoice whose period has such a day. A
//! provider the register does not know is not judged (a register loaded
//! for some municipalities only must not accuse every other provider).
//!
//! **Parameters** ([`Params`]): `lookback_days` (31). Severity: medium when
//! no valid period covers the day (a lapsed or not yet started entry),
//! high when a suspension or revocation does, critical from
//! `critical_days` (7) such days.

use super::reference_support::{ids_text, take_decided};
use super::{DayContext, InvoiceContext, Rule, RuleSpec, check};
use crate::baseline::{PermitState, ReferenceTable};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::reference::PermitStatus;
use crate::model::{Day, EventId, EventTime, MunicipalityCode, ProviderId};
use crate::text::{Text, en, sv};

/// Identity of `provider-without-permit` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "provider-without-permit",
    version: 1,
    pattern: 16,
    name: "Provider without a valid permit",
    quiet_days: 31,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `provider-without-permit`.
    pub struct Params {
        /// Days back from the decided day in which a day worked without a
        /// permit counts: how late a revocation may be registered and
        /// still be found.
        pub lookback_days: u32 = 31,
        /// Days worked without a permit from which a finding is critical.
        pub critical_days: u32 = 7,
    }
}

/// An invoice waiting for the reference data to be known through its
/// decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WaitingInvoice {
    /// When it was decided (its period complete in the time reports).
    pub decided_at: EventTime,
    /// Its id.
    pub invoice_id: EventId,
    /// Its period, `[start, end)`.
    pub period: (EventTime, EventTime),
    /// Minutes billed.
    pub minutes: u64,
}

/// The rule.
pub struct ProviderWithoutPermit(pub Params);

impl RuleSpec for ProviderWithoutPermit {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = Vec<WaitingInvoice>;

    fn validate(p: &Params) -> Result<(), String> {
        check::within("lookback_days", f64::from(p.lookback_days), 1.0, 120.0)?;
        check::positive_count("critical_days", u64::from(p.critical_days))
    }

    fn new(params: Params) -> Self {
        ProviderWithoutPermit(params)
    }
}

/// Days not permitted, with the worst status and the register entries.
#[derive(Default)]
pub(super) struct Found {
    pub(super) days: Vec<Day>,
    pub(super) worst: Option<PermitStatus>,
    pub(super) entries: Vec<EventId>,
}

impl Found {
    pub(super) fn add(&mut self, day: Day, status: PermitStatus, entries: &[EventId]) {
        self.days.push(day);
        // Valid (no period covers the day) is the mildest.
        self.worst = Some(self.worst.map_or(status, |w| w.max(status)));
        for e in entries {
            if !self.entries.contains(e) {
                self.entries.push(e.clone());
            }
        }
    }

    pub(super) fn status_text(&self, swedish: bool) -> &'static str {
        match (self.worst.unwrap_or(PermitStatus::Valid), swedish) {
            (PermitStatus::Revoked, false) => "its permit was revoked",
            (PermitStatus::Suspended, false) => "its permit was suspended",
            (PermitStatus::Valid, false) => "no valid period of its register entry covered them",
            (PermitStatus::Revoked, true) => "tillståndet var återkallat",
            (PermitStatus::Suspended, true) => "tillståndet var tillfälligt indraget",
            (PermitStatus::Valid, true) => "ingen giltig period i registret omfattade dem",
        }
    }
}

impl Found {
    /// Critical from `critical_days` days, high when a suspension or
    /// revocation covers one, medium otherwise.
    pub(super) fn severity(&self, critical_days: u32) -> Severity {
        if self.days.len() as u32 >= critical_days {
            Severity::Critical
        } else if self.worst.is_some_and(|w| w != PermitStatus::Valid) {
            Severity::High
        } else {
            Severity::Medium
        }
    }
}

impl ProviderWithoutPermit {
    /// A finding of `found`'s days without a permit.
    fn finding(
        &self,
        found: &Found,
        (provider, municipality): (ProviderId, MunicipalityCode),
        window: (EventTime, EventTime),
        explanation: Text,
        evidence: Vec<EventId>,
    ) -> Finding {
        let n = found.days.len() as f64;
        Finding::new(&INFO, provider, municipality, window)
            .severity(self.severity(found))
            .score(n)
            .observed(n, Unit::Days)
            .expected(0.0, Unit::Days)
            .explain(explanation)
            .evidence(evidence)
    }

    fn severity(&self, found: &Found) -> Severity {
        found.severity(self.0.critical_days)
    }
}

impl Rule for ProviderWithoutPermit {
    fn on_invoice(&self, ctx: &mut InvoiceContext<'_>, _out: &mut Vec<Finding>) {
        let inv = ctx.invoice;
        ctx.provider.rules.provider_without_permit.push(WaitingInvoice {
            decided_at: ctx.now,
            invoice_id: inv.invoice_id.clone(),
            period: (inv.period_start, inv.period_end),
            minutes: inv.lines.iter().map(|l| u64::from(l.minutes.0)).sum(),
        });
    }

    fn on_day_closed(&self, ctx: &mut DayContext<'_>, out: &mut Vec<Finding>) {
        let Some(reference) = ctx.reference.filter(|r| r.in_use()) else {
            ctx.provider.rules.provider_without_permit.clear();
            return;
        };
        self.days(ctx, reference, out);
        self.invoices(ctx, reference, out);
    }
}

impl ProviderWithoutPermit {
    fn days(&self, ctx: &DayContext<'_>, reference: &ReferenceTable, out: &mut Vec<Finding>) {
        let (today, now) = (ctx.day, ctx.now);
        let previous = now.plus_secs(ctx.day.start().0 - ctx.day.plus(1).start().0);
        let (provider, municipality) = (ctx.provider_id, ctx.provider.municipality);
        let mut found = Found::default();
        let mut new = 0u32;
        for d in (today.0 + 1 - self.0.lookback_days as i32)..=today.0 {
            let day = Day(d);
            // A day `visit-without-permit` found at one of its visits is
            // its finding (every visit of a decided day was checked).
            if ctx.provider.days.get(day).visits == 0 || ctx.provider.rules.visit_without_permit.found_on(day) {
                continue;
            }
            let PermitState::NotPermitted(status, entries) = reference.permit(provider, municipality, day, now) else {
                continue;
            };
            found.add(day, status, &entries);
            let before = reference.permit(provider, municipality, day, previous);
            if day == today || !matches!(before, PermitState::NotPermitted(..)) {
                new += 1;
            }
        }
        if new == 0 {
            return;
        }
        let n = found.days.len() as u64;
        let (first, last) = (found.days[0], *found.days.last().expect("a day"));
        let mut evidence = found.entries.clone();
        evidence.extend(ctx.provider.recent_visits.through(last));
        let explanation = Text {
            en: format!(
                "The provider registered visits on {} from {} to {} in a municipality whose provider register \
                 says it was not permitted then: {}. Register entries: {}.",
                en::count(n, "day", "days"),
                en::date(first),
                en::date(last),
                found.status_text(false),
                ids_text(&found.entries),
            ),
            sv: format!(
                "Utföraren har registrerat besök under {} från {} till {} i en kommun vars register över \
                 utförare säger att den inte fick utföra insatser då: {}. Registerposter: {}.",
                sv::count(n, "dag", "dagar"),
                sv::date(first),
                sv::date(last),
                found.status_text(true),
                ids_text(&found.entries),
            ),
        };
        out.push(self.finding(
            &found,
            (provider, municipality),
            (first.start(), today.plus(1).start()),
            explanation,
            evidence,
        ));
    }

    fn invoices(&self, ctx: &mut DayContext<'_>, reference: &ReferenceTable, out: &mut Vec<Finding>) {
        let (provider, municipality, now) = (ctx.provider_id, ctx.provider.municipality, ctx.now);
        let waiting = &mut ctx.provider.rules.provider_without_permit;
        for invoice in take_decided(waiting, |i| i.decided_at, now) {
            let mut found = Found::default();
            for d in invoice.period.0.day().0..=invoice.period.1.plus_secs(-1).day().0 {
                if let PermitState::NotPermitted(status, entries) =
                    reference.permit(provider, municipality, Day(d), invoice.decided_at)
                {
                    found.add(Day(d), status, &entries);
                }
            }
            if found.days.is_empty() || invoice.minutes == 0 {
                continue;
            }
            let n = found.days.len() as u64;
            let hours = invoice.minutes as f64 / 60.0;
            let month = invoice.period.0.month();
            let explanation = Text {
                en: format!(
                    "Invoice {} for {} bills {} for a period with {} on which the provider register says the \
                     provider was not permitted: {}. Register entries: {}.",
                    invoice.invoice_id,
                    en::month(month),
                    en::hours(hours, 1),
                    en::count(n, "day", "days"),
                    found.status_text(false),
                    ids_text(&found.entries),
                ),
                sv: format!(
                    "Faktura {} för {} tar upp {} för en period med {} då utföraren enligt registret inte fick \
                     utföra insatser: {}. Registerposter: {}.",
                    invoice.invoice_id,
                    sv::month(month),
                    sv::hours(hours, 1),
                    sv::count(n, "dag", "dagar"),
                    found.status_text(true),
                    ids_text(&found.entries),
                ),
            };
            let mut evidence = vec![invoice.invoice_id.clone()];
            evidence.extend(found.entries.iter().cloned());
            out.push(self.finding(&found, (provider, municipality), invoice.period, explanation, evidence));
        }
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

    /// Provider 0 registered in 2025; visits every day of March; the
    /// register gets `revocation` (registered at its `.1`), if any.
    fn run(revocation: Option<(Fact, EventTime)>) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::with_reference("provider-without-permit");
        s.reference("lov-1", Day::from_ymd(2025, 12, 1).start(), Scenario::permit(PermitStatus::Valid, at(1, 1), None));
        s.reference_through(2026, 3, 1);
        for day in 1..=31 {
            if let Some((fact, recorded)) = &revocation
                && at(3, day) > *recorded
                && at(3, day - 1) <= *recorded
            {
                s.reference("lov-2", *recorded, fact.clone());
            }
            s.visit().client(1).day(2026, 3, day).at(9, 0).minutes(60).send();
            s.reference_through(2026, 3, day);
        }
        s.reference_through(2026, 4, 30);
        s.advance_to(2026, 4, 10);
        s.alerts()
    }

    #[test]
    fn visits_after_a_revocation_fire_and_escalate() {
        let revoked = Scenario::permit(PermitStatus::Revoked, at(3, 20), None);
        let alerts = run(Some((revoked, at(3, 20).plus_secs(3600))));
        let seen: Vec<(&str, &str, f64)> =
            alerts.iter().map(|a| (a.status.name(), a.severity.name(), a.observed.value)).collect();
        assert_eq!(seen, [("opened", "high", 1.0), ("escalated", "critical", 7.0)], "{alerts:?}");
        let terms = ["utföraren", "besök", "återkallat", "registerposter"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
        assert_eq!(alerts[0].evidence[0].as_str(), "lov-2");
    }

    #[test]
    fn a_backdated_revocation_registered_late_counts_the_days_before_it() {
        // Revoked from the 10th, registered on the 25th.
        let revoked = Scenario::permit(PermitStatus::Revoked, at(3, 10), None);
        let alerts = run(Some((revoked, at(3, 25).plus_secs(600))));
        // The first decision after the registration is the 22nd's (at the
        // 26th, the allowed lateness after it): the 10th to the 22nd at once.
        assert_eq!(alerts[0].observed.value, 13.0, "{alerts:?}");
        assert_eq!(alerts[0].severity.name(), "critical");
    }

    #[test]
    fn a_provider_with_a_valid_entry_or_none_does_not_fire() {
        assert!(run(None).is_empty());
        // A renewal: a new valid period registered before the old one ends.
        let renewal = Scenario::permit(PermitStatus::Valid, at(3, 15), None);
        assert!(run(Some((renewal, at(3, 10)))).is_empty());
    }
}
