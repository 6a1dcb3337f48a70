//! Hours above the granted hours.
//!
//! **Fraud it catches**: a provider that performs, or invoices, more time
//! for a client than the municipality granted (biståndsbeslut): padded
//! visits, visits that were never needed, hours invoiced above the
//! decision. The most common finding of municipal audits; honest
//! providers perform about 80 % of the granted time (79–86 %).
//!
//! **Statistic**: per client and service type, the minutes this provider
//! performed in the calendar month up to the decided day, against the
//! minutes granted for the whole month by the decisions in force (the
//! reference data as of the decision time; a decision covering part of
//! the month counts pro rata). A client-month is over the grant once its
//! performed minutes exceed `granted × (1 + tolerance_ratio) +
//! tolerance_minutes`: a decision makes a finding when a client-month goes
//! over (each client-month once), counting the excess hours of every
//! client-month over in the current and the previous month, so the
//! severity grows with them. A client-month `visit-above-granted-hours`
//! found at one of its visits (over the grant as registered when the
//! visit began) is left to it: this rule finds the client-months that only
//! a registration after their visits shows (a decision revised downward,
//! backdated). Per invoice, once the reference data is known
//! through its decision: the lines whose minutes exceed the grant for the
//! period by the same tolerance. Clients without any decision for the
//! service are not judged (reference data may cover some clients only).
//!
//! **Parameters** ([`Params`]): `tolerance_ratio` (0.10), `tolerance_minutes`
//! (60). Severity by excess hours: medium, high from `high_excess_hours`
//! (20), critical from `critical_excess_hours` (80).

use rustc_hash::FxHashMap;

use super::reference_support::{ids_text, take_decided};
use super::{DayContext, InvoiceContext, Rule, RuleSpec, VisitContext, check};
use crate::baseline::ReferenceTable;
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::{ClientKey, Day, EventId, EventTime, Month, ServiceType};
use crate::state::sorted_map;
use crate::text::{Text, en, sv};

/// Identity of `above-granted-hours` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "above-granted-hours",
    version: 1,
    pattern: 15,
    name: "Hours above the granted hours",
    quiet_days: 45,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `above-granted-hours`.
    pub struct Params {
        /// Share of the granted minutes allowed above them.
        pub tolerance_ratio: f64 = 0.10,
        /// Minutes allowed above the granted minutes besides the share.
        pub tolerance_minutes: u32 = 60,
        /// Excess hours from which a finding is high severity.
        pub high_excess_hours: f64 = 20.0,
        /// Excess hours from which a finding is critical.
        pub critical_excess_hours: f64 = 80.0,
    }
}

/// One client's month of one service type with this provider.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientMonth {
    /// The month of the last decided day counted.
    pub month: Month,
    /// Minutes performed in `month` through the last decided day.
    pub through: u32,
    /// Minutes of visits on days not decided yet, by day (ascending).
    pub pending: Vec<(Day, u32)>,
    /// Excess minutes when `month` went over the grant (0: not over).
    pub excess: u32,
    /// The decisions it went over.
    pub decisions: Vec<EventId>,
    /// The previous month's excess minutes, if it went over.
    pub previous_excess: u32,
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
    /// Minutes per client and service type.
    pub lines: Vec<(ClientKey, ServiceType, u32)>,
}

/// What `above-granted-hours` keeps per provider.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Per client and service type: the month so far.
    #[serde(serialize_with = "sorted_map")]
    pub months: FxHashMap<(ClientKey, ServiceType), ClientMonth>,
    /// Invoices waiting for the reference data, in the order decided.
    pub invoices: Vec<WaitingInvoice>,
}

/// Minutes performed above `granted` when they exceed it beyond the
/// tolerance, `granted × (1 + ratio) + minutes` (0 if within it).
pub(super) fn excess(performed: u32, granted: f64, ratio: f64, minutes: u32) -> u32 {
    let allowed = granted * (1.0 + ratio) + f64::from(minutes);
    let over = f64::from(performed) - allowed;
    if over > 0.0 { (f64::from(performed) - granted).round().max(0.0) as u32 } else { 0 }
}

/// Checks the tolerance and the excess hours of the severities, as this
/// rule and `client-hours-above-granted` name them.
pub(super) fn validate_limits(ratio: f64, minutes: u32, high: f64, critical: f64) -> Result<(), String> {
    check::within("tolerance_ratio", ratio, 0.0, 2.0)?;
    check::within("tolerance_minutes", f64::from(minutes), 0.0, 6000.0)?;
    check::positive("high_excess_hours", high)?;
    check::ascending(&[("high_excess_hours", high), ("critical_excess_hours", critical)])
}

/// The rule.
pub struct AboveGrantedHours(pub Params);

impl RuleSpec for AboveGrantedHours {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = State;

    fn validate(p: &Params) -> Result<(), String> {
        validate_limits(p.tolerance_ratio, p.tolerance_minutes, p.high_excess_hours, p.critical_excess_hours)
    }

    fn new(params: Params) -> Self {
        AboveGrantedHours(params)
    }

    fn evict(state: &mut State, closed: Day) {
        let oldest = closed.month().0 - 1;
        state.months.retain(|_, m| m.month.0 >= oldest || !m.pending.is_empty());
    }
}

impl AboveGrantedHours {
    fn excess(&self, performed: u32, granted: f64) -> u32 {
        excess(performed, granted, self.0.tolerance_ratio, self.0.tolerance_minutes)
    }

    fn severity(&self, hours: f64) -> Severity {
        Severity::by_cutoffs(hours, 0.0, self.0.high_excess_hours, self.0.critical_excess_hours)
    }
}

impl Rule for AboveGrantedHours {
    fn on_visit(&self, ctx: &mut VisitContext<'_>, _out: &mut Vec<Finding>) {
        if !ctx.reference {
            return;
        }
        let v = ctx.visit;
        let minutes = v.duration().0;
        let entry =
            ctx.provider.rules.above_granted_hours.months.entry((v.client, v.service)).or_insert_with(|| ClientMonth {
                month: ctx.day.month(),
                through: 0,
                pending: Vec::new(),
                excess: 0,
                decisions: Vec::new(),
                previous_excess: 0,
            });
        let at = entry.pending.partition_point(|(d, _)| *d < ctx.day);
        match entry.pending.get_mut(at) {
            Some((d, m)) if *d == ctx.day => *m = m.saturating_add(minutes),
            _ => entry.pending.insert(at, (ctx.day, minutes)),
        }
    }

    fn on_invoice(&self, ctx: &mut InvoiceContext<'_>, _out: &mut Vec<Finding>) {
        let inv = ctx.invoice;
        let mut lines: Vec<(ClientKey, ServiceType, u32)> = Vec::new();
        for l in &inv.lines {
            match lines.iter_mut().find(|(c, s, _)| *c == l.client && *s == l.service) {
                Some((_, _, m)) => *m = m.saturating_add(l.minutes.0),
                None => lines.push((l.client, l.service, l.minutes.0)),
            }
        }
        ctx.provider.rules.above_granted_hours.invoices.push(WaitingInvoice {
            decided_at: ctx.now,
            invoice_id: inv.invoice_id.clone(),
            period: (inv.period_start, inv.period_end),
            lines,
        });
    }

    fn on_day_closed(&self, ctx: &mut DayContext<'_>, out: &mut Vec<Finding>) {
        let today = ctx.day;
        // The days decided: their visits now count in their month.
        for m in ctx.provider.rules.above_granted_hours.months.values_mut() {
            let ready = m.pending.partition_point(|(d, _)| *d <= today);
            let days: Vec<(Day, u32)> = m.pending.drain(..ready).collect();
            for (day, minutes) in days {
                if day.month() != m.month {
                    m.previous_excess = if day.month().0 == m.month.0 + 1 { m.excess } else { 0 };
                    m.month = day.month();
                    m.through = 0;
                    m.excess = 0;
                    m.decisions.clear();
                }
                m.through = m.through.saturating_add(minutes);
            }
        }
        let Some(reference) = ctx.reference.filter(|r| r.in_use()) else {
            ctx.provider.rules.above_granted_hours.invoices.clear();
            return;
        };
        self.months(ctx, reference, out);
        self.invoices(ctx, reference, out);
    }
}

impl AboveGrantedHours {
    fn months(&self, ctx: &mut DayContext<'_>, reference: &ReferenceTable, out: &mut Vec<Finding>) {
        let (today, now) = (ctx.day, ctx.now);
        let month = today.month();
        let at_visits = &ctx.provider.rules.visit_above_granted_hours;
        let state = &mut ctx.provider.rules.above_granted_hours;
        let mut keys: Vec<(ClientKey, ServiceType)> = state.months.keys().copied().collect();
        keys.sort_unstable();
        let mut new = 0u32;
        for key in &keys {
            let m = state.months.get_mut(key).expect("a key of the map");
            // A client-month `visit-above-granted-hours` found at a visit
            // of a decided day is its finding.
            if m.month != month || m.excess > 0 || at_visits.found_by(key.0, key.1, month, today) {
                continue;
            }
            let Some((granted, decisions)) =
                reference.granted_minutes(key.0, key.1, month.start(), month.next().start(), now)
            else {
                continue;
            };
            let excess = self.excess(m.through, granted);
            if excess > 0 {
                m.excess = excess;
                m.decisions = decisions;
                new += 1;
            }
        }
        if new == 0 {
            return;
        }
        // Every client-month over the grant in this month and the previous.
        let (mut clients, mut excess, mut decisions) = (0u64, 0u64, Vec::new());
        for key in &keys {
            let m = &state.months[key];
            if m.month == month {
                if m.excess > 0 {
                    clients += 1;
                    excess += u64::from(m.excess);
                    decisions.extend(m.decisions.iter().cloned());
                }
                excess += u64::from(m.previous_excess);
            }
        }
        decisions.sort_unstable();
        decisions.dedup();
        let hours = excess as f64 / 60.0;
        let p = &self.0;
        let tolerance = (p.tolerance_ratio * 100.0, f64::from(p.tolerance_minutes) / 60.0);
        let explanation = Text {
            en: format!(
                "In {} the provider performed more for {} than the municipality granted them for the whole \
                 month: {} above the granted hours (this month and, for the same clients, last month), beyond \
                 a tolerance of {} plus {}. Decisions: {}.",
                en::month(month),
                en::count(clients, "client", "clients"),
                en::hours(hours, 1),
                en::percent(tolerance.0, 0),
                en::hours_short(tolerance.1),
                ids_text(&decisions),
            ),
            sv: format!(
                "Under {} har utföraren utfört mer hos {} än kommunen beviljat för hela månaden: {} över \
                 beviljade timmar (denna månad och, för samma brukare, förra månaden), utöver en tolerans på \
                 {} plus {}. Biståndsbeslut: {}.",
                sv::month(month),
                sv::count(clients, "brukare", "brukare"),
                sv::hours(hours, 1),
                sv::percent(tolerance.0, 0),
                sv::hours_short(tolerance.1),
                ids_text(&decisions),
            ),
        };
        let mut evidence = decisions;
        evidence.extend(ctx.provider.recent_visits.through(today));
        out.push(
            Finding::new(&INFO, ctx.provider_id, ctx.provider.municipality, (month.start(), today.plus(1).start()))
                .severity(self.severity(hours))
                .score(hours)
                .observed(hours, Unit::Hours)
                .expected(0.0, Unit::Hours)
                .explain(explanation)
                .evidence(evidence),
        );
    }

    fn invoices(&self, ctx: &mut DayContext<'_>, reference: &ReferenceTable, out: &mut Vec<Finding>) {
        let now = ctx.now;
        let waiting = &mut ctx.provider.rules.above_granted_hours.invoices;
        for invoice in take_decided(waiting, |i| i.decided_at, now) {
            let (mut lines, mut excess, mut billed, mut granted_all) = (0u64, 0u64, 0u64, 0.0);
            let mut decisions = Vec::new();
            for (client, service, minutes) in &invoice.lines {
                let Some((granted, ids)) = reference.granted_minutes(
                    *client,
                    *service,
                    invoice.period.0,
                    invoice.period.1,
                    invoice.decided_at,
                ) else {
                    continue;
                };
                let over = self.excess(*minutes, granted);
                if over > 0 {
                    lines += 1;
                    excess += u64::from(over);
                    billed += u64::from(*minutes);
                    granted_all += granted;
                    decisions.extend(ids);
                }
            }
            if lines == 0 {
                continue;
            }
            decisions.sort_unstable();
            decisions.dedup();
            let (hours, billed_h, granted_h) = (excess as f64 / 60.0, billed as f64 / 60.0, granted_all / 60.0);
            let month = invoice.period.0.month();
            let explanation = Text {
                en: format!(
                    "Invoice {} for {} bills {} on {} where the municipality granted {}: {} above the granted \
                     hours. Decisions: {}.",
                    invoice.invoice_id,
                    en::month(month),
                    en::hours(billed_h, 1),
                    en::count(lines, "line", "lines"),
                    en::hours(granted_h, 1),
                    en::hours(hours, 1),
                    ids_text(&decisions),
                ),
                sv: format!(
                    "Faktura {} för {} tar upp {} på {} där kommunen beviljat {}: {} över beviljade timmar. \
                     Biståndsbeslut: {}.",
                    invoice.invoice_id,
                    sv::month(month),
                    sv::hours(billed_h, 1),
                    sv::count(lines, "fakturarad", "fakturarader"),
                    sv::hours(granted_h, 1),
                    sv::hours(hours, 1),
                    ids_text(&decisions),
                ),
            };
            let mut evidence = vec![invoice.invoice_id.clone()];
            evidence.extend(decisions);
            out.push(
                Finding::new(&INFO, ctx.provider_id, ctx.provider.municipality, invoice.period)
                    .severity(self.severity(hours))
                    .score(hours)
                    .observed(billed_h, Unit::Hours)
                    .expected(granted_h, Unit::Hours)
                    .explain(explanation)
                    .evidence(evidence),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Day;
    use crate::rules::testkit::{Scenario, decision};

    /// Client 1 granted 20 h a month, visited `minutes` every day of March;
    /// client 2 granted 30 h, visited 40 minutes a day; client 3 has no
    /// decision and 3 hours a day. Invoiced as performed.
    fn run(minutes: i64, invoiced: i64) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::with_reference("above-granted-hours");
        s.reference("bb-1", Day::from_ymd(2025, 12, 20).start(), decision(1, 20));
        s.reference("bb-2", Day::from_ymd(2025, 12, 20).start(), decision(2, 30));
        s.reference_through(2026, 3, 1);
        for day in 1..=31 {
            s.visit().client(1).day(2026, 3, day).at(8, 0).minutes(minutes).send();
            s.visit().client(2).day(2026, 3, day).at(10, 0).minutes(40).send();
            s.visit().client(3).day(2026, 3, day).at(12, 0).minutes(180).send();
            s.reference_through(2026, 3, day);
        }
        s.reference_through(2026, 4, 20);
        s.advance_to(2026, 4, 2);
        s.invoice(2026, 3).lines(vec![(1, 31 * invoiced), (2, 31 * 40), (3, 31 * 180)]).send();
        s.advance_to(2026, 4, 16);
        s.alerts()
    }

    #[test]
    fn performing_far_above_the_grant_fires_when_the_month_goes_over() {
        // 60 min a day against 20 h a month: over 20 h × 1.1 + 1 h = 23 h on
        // the 24th (24 h).
        let alerts = run(60, 60);
        assert_eq!(alerts.len(), 1, "the invoice joins the open episode: {alerts:?}");
        assert_eq!(alerts[0].status.name(), "opened");
        assert_eq!(alerts[0].detected_at, Day::from_ymd(2026, 3, 25).start().plus_secs(3 * 86_400));
        assert_eq!(alerts[0].observed.value, 4.0, "24 h against 20 h");
        let terms = ["utföraren", "brukare", "beviljade timmar", "biståndsbeslut", "mars 2026"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
    }

    #[test]
    fn invoicing_above_the_grant_fires_on_the_invoice() {
        // Performed 40 minutes a day (20.7 h), invoiced an hour a day (31 h).
        let alerts = run(40, 60);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!((a.observed.value, a.expected.value), (31.0, 20.0));
        assert_eq!(a.evidence[1].as_str(), "bb-1");
        let terms = ["faktura", "fakturarad", "beviljat", "biståndsbeslut"];
        crate::rules::testkit::assert_bilingual(&a.explanation, &terms);
    }

    #[test]
    fn performing_within_the_tolerance_or_without_a_decision_does_not_fire() {
        // 44 minutes a day: 22.7 h in March, within 20 h × 1.1 + 1 h = 23 h.
        let alerts = run(44, 44);
        assert!(alerts.is_empty(), "{alerts:?}");
    }
}
