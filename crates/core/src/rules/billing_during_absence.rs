//! Pattern 11: billing during absence.
//!
//! **Fraud it catches**: visits registered, and hours invoiced, for a
//! client who was not at home to be cared for: admitted to hospital, in
//! short-term care, dead or moved away (the Södertälje cases: clients
//! billed while in hospital). Nobody can be cared for at home while in a
//! hospital bed; an honest provider's staff find the home empty and
//! register no visit.
//!
//! **Statistic**: at each day's decision, per provider, the client-days
//! of the last `lookback_days` with a visit that lie inside an absence the
//! municipality had registered by the decision (the reference data as of
//! the decision time): from the day after the admission (or death, or
//! move) to the day before the discharge, less `edge_days` more at each
//! end. The day of admission and the day of discharge never count (a
//! morning visit before an admission is honest). A decision makes a
//! finding when it finds a client-day no earlier decision found (the day
//! decided, or an earlier day whose absence was registered since), and the
//! finding counts all of them, so its severity grows as they add up; an
//! absence registered days late is found at the first decision after its
//! registration. A client-day `visit-during-absence` found at one of its
//! visits (the absence registered when the visit was reported) is left to
//! it: this rule finds the client-days only a later registration shows.
//! And per invoice, once the reference data is known through its decision, the lines for a
//! client who was absent on every day of the invoice's period.
//!
//! **Parameters** ([`Params`]): `edge_days` (0), `lookback_days` (31).
//! Severity by client-days (or lines): medium from 1, high from
//! `high_count` (3), critical from `critical_count` (10).

use super::reference_support::{ids_text, take_decided};
use super::{DayContext, InvoiceContext, Rule, RuleSpec, check};
use crate::baseline::ReferenceTable;
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::reference::{Absence, AbsenceKind};
use crate::model::{ClientKey, Day, EventId, EventTime};
use crate::text::{Text, en, sv};

/// Identity of `billing-during-absence` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "billing-during-absence",
    version: 1,
    pattern: 11,
    name: "Billing during absence",
    quiet_days: 31,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `billing-during-absence`.
    pub struct Params {
        /// Days after the admission day and before the discharge day that
        /// do not count either (0: only those two days are exempt).
        pub edge_days: u32 = 0,
        /// Days back from the decided day in which a visit during an
        /// absence counts: how late an absence may be registered and still
        /// be found.
        pub lookback_days: u32 = 31,
        /// Client-days (or invoice lines) from which a finding is high severity.
        pub high_count: u32 = 3,
        /// Client-days (or invoice lines) from which a finding is critical.
        pub critical_count: u32 = 10,
    }
}

/// An invoice waiting for the reference data to be known through its
/// decision: what the rule needs of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WaitingInvoice {
    /// When it was decided (its period complete in the time reports).
    pub decided_at: EventTime,
    /// Its id.
    pub invoice_id: EventId,
    /// Its period, `[start, end)`.
    pub period: (EventTime, EventTime),
    /// Its lines: client and minutes.
    pub lines: Vec<(ClientKey, u32)>,
}

/// The invoices of one provider waiting for the reference data, in the
/// order they were decided.
pub type State = Vec<WaitingInvoice>;

/// The rule.
pub struct BillingDuringAbsence(pub Params);

impl RuleSpec for BillingDuringAbsence {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = State;

    fn validate(p: &Params) -> Result<(), String> {
        check::within("edge_days", f64::from(p.edge_days), 0.0, 7.0)?;
        check::days("lookback_days", p.lookback_days)?;
        check::within("lookback_days", f64::from(p.lookback_days), 1.0, 120.0)?;
        check::positive_count("high_count", u64::from(p.high_count))?;
        check::ascending(&[("high_count", f64::from(p.high_count)), ("critical_count", f64::from(p.critical_count))])
    }

    fn new(params: Params) -> Self {
        BillingDuringAbsence(params)
    }
}

/// Whether all of local day `day` lies inside `absence`, its admission and
/// discharge days and `edge_days` beside them excepted.
pub(super) fn inside(absence: &Absence, day: Day, edge_days: u32) -> bool {
    let edge = edge_days as i32;
    let admitted = absence.period.from.day();
    if day.0 <= admitted.0 + edge {
        return false;
    }
    match absence.period.to {
        // The discharge day is the day of the absence's last instant.
        Some(to) => day.0 < to.plus_secs(-1).day().0 - edge,
        None => true,
    }
}

impl BillingDuringAbsence {
    fn inside(&self, absence: &Absence, day: Day) -> bool {
        inside(absence, day, self.0.edge_days)
    }

    fn severity(&self, n: u32) -> Severity {
        Severity::by_cutoffs(f64::from(n), 1.0, f64::from(self.0.high_count), f64::from(self.0.critical_count))
    }
}

/// What one decision found for one provider.
#[derive(Default)]
struct Found {
    client_days: u32,
    clients: Vec<ClientKey>,
    days: Vec<Day>,
    kinds: Vec<AbsenceKind>,
    absences: Vec<EventId>,
}

impl Found {
    fn add(&mut self, client: ClientKey, day: Day, id: &EventId, kind: AbsenceKind) {
        self.client_days += 1;
        if !self.clients.contains(&client) {
            self.clients.push(client);
        }
        self.days.push(day);
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
        if !self.absences.contains(id) {
            self.absences.push(id.clone());
        }
    }
}

pub(super) fn kinds_text(kinds: &[AbsenceKind], swedish: bool) -> String {
    let mut kinds = kinds.to_vec();
    kinds.sort_unstable();
    let names: Vec<&str> = kinds
        .iter()
        .map(|k| match (k, swedish) {
            (AbsenceKind::HospitalStay, false) => "hospital stay",
            (AbsenceKind::ShortTermCare, false) => "short-term care",
            (AbsenceKind::Death, false) => "death",
            (AbsenceKind::MovedAway, false) => "moved away",
            (AbsenceKind::HospitalStay, true) => "sjukhusvistelse",
            (AbsenceKind::ShortTermCare, true) => "korttidsboende",
            (AbsenceKind::Death, true) => "dödsfall",
            (AbsenceKind::MovedAway, true) => "utflyttning",
        })
        .collect();
    names.join(", ")
}

impl Rule for BillingDuringAbsence {
    fn on_invoice(&self, ctx: &mut InvoiceContext<'_>, _out: &mut Vec<Finding>) {
        let inv = ctx.invoice;
        ctx.provider.rules.billing_during_absence.push(WaitingInvoice {
            decided_at: ctx.now,
            invoice_id: inv.invoice_id.clone(),
            period: (inv.period_start, inv.period_end),
            lines: inv.lines.iter().map(|l| (l.client, l.minutes.0)).collect(),
        });
    }

    fn on_day_closed(&self, ctx: &mut DayContext<'_>, out: &mut Vec<Finding>) {
        let Some(reference) = ctx.reference.filter(|r| r.in_use()) else {
            // Without reference data there is nothing to compare with.
            ctx.provider.rules.billing_during_absence.clear();
            return;
        };
        self.visits(ctx, reference, out);
        self.invoices(ctx, reference, out);
    }
}

impl BillingDuringAbsence {
    /// Client-days with a visit inside an absence, found at this decision.
    fn visits(&self, ctx: &DayContext<'_>, reference: &ReferenceTable, out: &mut Vec<Finding>) {
        let (today, now) = (ctx.day, ctx.now);
        // The previous day's decision: a day earlier (whatever its length).
        let previous = now.plus_secs(ctx.day.start().0 - ctx.day.plus(1).start().0);
        let first = today.plus(1 - self.0.lookback_days as i32);
        let at_visits = &ctx.provider.rules.visit_during_absence;
        let mut clients: Vec<(&ClientKey, _)> = ctx.provider.clients.iter().collect();
        clients.sort_unstable_by_key(|(k, _)| **k);
        let mut found = Found::default();
        let mut new = 0u32;
        for (client, activity) in clients {
            if activity.last_any() < first.0 {
                continue;
            }
            let absences = reference.absences(*client, now);
            if absences.is_empty() {
                continue;
            }
            let before = reference.absences(*client, previous);
            for d in first.0..=today.0 {
                let day = Day(d);
                // A client-day `visit-during-absence` found at one of its
                // visits is its finding (every visit of a decided day was
                // judged).
                if !activity.visited_on(day) || at_visits.found_on(*client, day) {
                    continue;
                }
                let Some((id, absence)) = absences.iter().find(|(_, a)| self.inside(a, day)) else { continue };
                found.add(*client, day, id, absence.kind);
                // New unless an earlier decision found it already.
                if day == today || !before.iter().any(|(_, a)| self.inside(a, day)) {
                    new += 1;
                }
            }
        }
        // A finding when something new is found; it counts every
        // client-day of the window, so the severity grows with them.
        if new == 0 {
            return;
        }
        found.days.sort_unstable();
        found.days.dedup();
        let (first_day, last_day) = (found.days[0], *found.days.last().expect("a day"));
        let clients = found.clients.len() as u64;
        let n = u64::from(found.client_days);
        let explanation = Text {
            en: format!(
                "Visits were registered for {} on {} (client-days) from {} to {}, while the municipality's \
                 records have them away from home ({}): no one can be cared for at home then. The day of \
                 admission and the day of discharge do not count. Absence records: {}.",
                en::count(clients, "client", "clients"),
                en::count(n, "day", "days"),
                en::date(first_day),
                en::date(last_day),
                kinds_text(&found.kinds, false),
                ids_text(&found.absences),
            ),
            sv: format!(
                "Besök har registrerats hos {} under {} (brukardagar) från {} till {}, då brukarna enligt \
                 kommunens uppgifter inte var hemma ({}): ingen kan få hemtjänst i hemmet då. Dagen för \
                 inskrivning och dagen för utskrivning räknas inte. Frånvaroposter: {}.",
                sv::count(clients, "brukare", "brukare"),
                sv::count(n, "dag", "dagar"),
                sv::date(first_day),
                sv::date(last_day),
                kinds_text(&found.kinds, true),
                ids_text(&found.absences),
            ),
        };
        out.push(
            Finding::new(&INFO, ctx.provider_id, ctx.provider.municipality, (first_day.start(), today.plus(1).start()))
                .severity(self.severity(found.client_days))
                .score(n as f64)
                .observed(n as f64, Unit::Days)
                .expected(0.0, Unit::Days)
                .explain(explanation)
                .evidence(found.absences),
        );
    }

    /// Invoice lines for clients absent the whole period, of the invoices
    /// decided by now.
    fn invoices(&self, ctx: &mut DayContext<'_>, reference: &ReferenceTable, out: &mut Vec<Finding>) {
        let now = ctx.now;
        let waiting = &mut ctx.provider.rules.billing_during_absence;
        for invoice in take_decided(waiting, |i| i.decided_at, now) {
            let days = invoice.period.0.day().0..=invoice.period.1.plus_secs(-1).day().0;
            let mut lines = 0u32;
            let mut minutes = 0u64;
            let mut found = Found::default();
            for (client, line_minutes) in &invoice.lines {
                let absences = reference.absences(*client, invoice.decided_at);
                let covering: Vec<_> = days
                    .clone()
                    .map(|d| absences.iter().find(|(_, a)| self.inside(a, Day(d))))
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default();
                if covering.is_empty() || *line_minutes == 0 {
                    continue;
                }
                lines += 1;
                minutes += u64::from(*line_minutes);
                for (id, a) in covering {
                    found.add(*client, a.period.from.day(), id, a.kind);
                }
            }
            if lines == 0 {
                continue;
            }
            let hours = minutes as f64 / 60.0;
            let month = invoice.period.0.month();
            let explanation = Text {
                en: format!(
                    "Invoice {} for {} bills {} on {} for clients who were away from home the whole period \
                     according to the municipality's records ({}). Absence records: {}.",
                    invoice.invoice_id,
                    en::month(month),
                    en::hours(hours, 1),
                    en::count(u64::from(lines), "line", "lines"),
                    kinds_text(&found.kinds, false),
                    ids_text(&found.absences),
                ),
                sv: format!(
                    "Faktura {} för {} tar upp {} på {} för brukare som enligt kommunens uppgifter inte var \
                     hemma under hela perioden ({}). Frånvaroposter: {}.",
                    invoice.invoice_id,
                    sv::month(month),
                    sv::hours(hours, 1),
                    sv::count(u64::from(lines), "fakturarad", "fakturarader"),
                    kinds_text(&found.kinds, true),
                    ids_text(&found.absences),
                ),
            };
            let mut evidence = vec![invoice.invoice_id.clone()];
            evidence.extend(found.absences);
            out.push(
                Finding::new(&INFO, ctx.provider_id, ctx.provider.municipality, invoice.period)
                    .severity(self.severity(lines))
                    .score(f64::from(lines))
                    .observed(f64::from(lines), Unit::Lines)
                    .expected(0.0, Unit::Lines)
                    .explain(explanation)
                    .evidence(evidence),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Day, EventTime};
    use crate::rules::testkit::Scenario;

    fn at(day: u32, hour: i64) -> EventTime {
        Day::from_ymd(2026, 3, day).start().plus_secs(hour * 3600)
    }

    /// Client 1 visited every morning of 1–20 March; a hospital stay from
    /// the 5th 10:00 to the 12th 14:00, registered at `recorded`.
    fn run(visit_days: &[u32], recorded: EventTime) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::with_reference("billing-during-absence");
        s.reference_through(2026, 3, 1);
        for &day in visit_days {
            if at(day, 12) >= recorded && at(day - 1, 12) < recorded {
                s.reference("abs-7", recorded, Scenario::hospital_stay(1, at(5, 10), Some(at(12, 14))));
            }
            s.visit().client(1).day(2026, 3, day).at(8, 0).minutes(45).send();
            s.visit().client(2).day(2026, 3, day).at(9, 0).minutes(45).send();
            s.reference_through(2026, 3, day);
        }
        s.reference_through(2026, 3, 21);
        s.advance_to(2026, 3, 28);
        s.reference_through(2026, 4, 1);
        s.alerts()
    }

    #[test]
    fn visits_inside_a_registered_hospital_stay_fire_and_escalate() {
        let alerts = run(&(1..=20).collect::<Vec<_>>(), at(5, 11));
        // Opened at the first day decided (the 6th), escalated at the third.
        let seen: Vec<(&str, f64)> = alerts.iter().map(|a| (a.status.name(), a.observed.value)).collect();
        assert_eq!(seen, [("opened", 1.0), ("escalated", 3.0)], "{alerts:?}");
        assert_eq!(alerts[0].detected_at, Day::from_ymd(2026, 3, 7).start().plus_secs(3 * 86_400));
        let a = &alerts[1];
        assert_eq!(a.evidence.iter().map(|e| e.as_str()).collect::<Vec<_>>(), ["abs-7"]);
        let terms = ["besök", "brukare", "brukardagar", "sjukhusvistelse", "inskrivning", "utskrivning"];
        crate::rules::testkit::assert_bilingual(&a.explanation, &terms);
    }

    #[test]
    fn a_stay_registered_late_is_found_once_at_its_registration() {
        // Registered on the 18th, after the days it covers were decided.
        let alerts = run(&(1..=20).collect::<Vec<_>>(), at(18, 9));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        // 6 to 11 March: the admission (5th) and discharge (12th) days are exempt.
        assert_eq!(alerts[0].observed.value, 6.0, "every covered day");
        assert!(alerts[0].detected_at >= at(18, 9), "decided after the registration");
    }

    /// Client 1 dies on 24 February (registered on the 26th); client 3 is
    /// in hospital 10–20 March. The March invoice bills both, and client 2.
    #[test]
    fn an_invoice_line_for_a_client_away_the_whole_period_fires() {
        use crate::model::reference::{Absence, AbsenceKind, Fact, Validity};
        let mut s = Scenario::with_reference("billing-during-absence");
        s.reference_through(2026, 2, 1);
        for day in 1..=20 {
            for client in 1..=3 {
                s.visit().client(client).day(2026, 2, day).at(8, client as u32).minutes(45).send();
            }
        }
        let death = Fact::Absence(Absence {
            municipality: crate::model::MunicipalityCode::parse("2480").unwrap(),
            client: crate::model::ClientKey(1),
            kind: AbsenceKind::Death,
            period: Validity { from: Day::from_ymd(2026, 2, 24).start().plus_secs(5 * 3600), to: None },
        });
        s.reference("death-1", Day::from_ymd(2026, 2, 26).start(), death);
        let stay = Scenario::hospital_stay(3, at(10, 9), Some(at(20, 15)));
        s.reference("abs-3", Day::from_ymd(2026, 3, 10).start().plus_secs(9 * 3600), stay);
        s.reference_through(2026, 4, 20);
        s.advance_to(2026, 4, 2);
        s.invoice(2026, 3).lines(vec![(1, 600), (2, 300), (3, 300)]).send();
        s.advance_to(2026, 4, 16);
        let alerts = s.alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!((a.observed.value, a.observed.unit), (1.0, crate::finding::Unit::Lines));
        let evidence: Vec<&str> = a.evidence.iter().map(|e| e.as_str()).collect();
        assert!(evidence.len() == 2 && evidence[0].starts_with("inv-") && evidence[1] == "death-1", "{evidence:?}");
        let terms = ["faktura", "mars 2026", "fakturarad", "brukare", "dödsfall"];
        crate::rules::testkit::assert_bilingual(&a.explanation, &terms);
    }

    #[test]
    fn visits_on_the_admission_and_discharge_days_only_do_not_fire() {
        let days: Vec<u32> = (1..=20).filter(|d| !(6..=11).contains(d)).collect();
        assert!(run(&days, at(5, 11)).is_empty());
    }
}
