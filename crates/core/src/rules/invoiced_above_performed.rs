//! Pattern 1: invoiced hours above performed hours.
//!
//! **Fraud it catches**: a provider bills a client for more time than its
//! own staff reported at the client's home (hours that were never worked):
//! blatantly (a third more on every line) or quietly (a few percent more on
//! a tenth of its lines, month after month).
//!
//! **Statistic**: per invoice line, the billed minutes against the most an
//! honest line bills for the same client, service type and period: the
//! minutes of the provider's time reports with each visit rounded up to
//! whole five minutes ([`crate::state::BILLING_ROUNDING_MINUTES`]). A line is
//! *over* when it bills more than that plus `line_tolerance_ratio` and
//! `line_tolerance_minutes`; its excess is what it bills above the rounded
//! minutes. Lines for clients with no visits at all are left to
//! `phantom-clients`. Each invoice is judged once, after the time-report
//! watermark passed its period end, so late-but-allowed reports count.
//!
//! The excess **accumulates across invoices** (a one-sided CUSUM per
//! provider): `S = max(0, S + excess of the invoice − drift_hours)`. While
//! `S` stays above zero the over lines add up too. The rule decides when
//! `S` reaches `decision_hours` or the over lines reach `decision_lines`,
//! then starts again from zero (a further finding is an escalation of the
//! same episode). An invoice without over lines drains `drift_hours`; when
//! `S` is back at zero the evidence is forgotten.
//!
//! **False alarms**: under the honest model (lines bill the performed
//! minutes, or each visit rounded up to five minutes) no line is ever over
//! and the rule never fires; it fired on none of the simulator's honest
//! providers. In real data a line can be over by a correction or a report
//! lost after the invoice: one such line alone never decides (it needs
//! `decision_hours` of excess, or `decision_lines` over lines before the
//! drift drains it: with one over line of 1 h a quarter, `S` is back at
//! zero after two invoices and three such lines never meet).
//!
//! **Speed**: over-invoicing by a fraction `e` of lines of `m` hours on `k`
//! lines an invoice adds about `k·e·m` hours an invoice. It decides at the
//! first invoice when `k >= decision_lines` or `k·e·m >= decision_hours +
//! drift_hours`, else after `ceil(decision_lines / k)` invoices at most
//! (the subtlest the simulator injects, 3 % on a tenth of the clients,
//! bills a line of 23 h 41 minutes over: three such lines, one to three
//! invoices).
//!
//! **Parameters** ([`Params`]): `line_tolerance_ratio` (0.01),
//! `line_tolerance_minutes` (10), `drift_hours` (0.5 an invoice),
//! `decision_hours` (3), `decision_lines` (3). Severity by the accumulated
//! excess: medium, high from `high_excess_hours` (40), critical from
//! `critical_excess_hours` (200). The finding carries the excess hours and
//! their value in kronor, and its evidence is every invoice that added to
//! it.

use super::{InvoiceContext, Rule, RuleSpec, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::{EventId, EventTime, Month};
use crate::text::{Text, en, sv};

/// Identity of `invoiced-above-performed` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "invoiced-above-performed",
    version: 2,
    pattern: 1,
    name: "Invoiced hours above performed hours",
    quiet_days: 45,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `invoiced-above-performed`.
    pub struct Params {
        /// Relative tolerance per line, of the rounded performed minutes.
        pub line_tolerance_ratio: f64 = 0.01,
        /// Absolute tolerance per line, minutes.
        pub line_tolerance_minutes: u32 = 10,
        /// Excess an invoice may bring without adding to the evidence,
        /// hours (the CUSUM's reference value).
        pub drift_hours: f64 = 0.5,
        /// Accumulated excess that decides, hours.
        pub decision_hours: f64 = 3.0,
        /// Accumulated over lines that decide.
        pub decision_lines: u32 = 3,
        /// Accumulated excess from which a finding is high severity, hours.
        pub high_excess_hours: f64 = 40.0,
        /// Accumulated excess from which a finding is critical, hours.
        pub critical_excess_hours: f64 = 200.0,
    }
}

/// Most invoices named as evidence of one finding (the latest are kept).
const MAX_EVIDENCE: usize = 24;

/// What `invoiced-above-performed` keeps per provider: the evidence
/// accumulated since the statistic last left zero.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    /// The CUSUM, minutes.
    pub sum_minutes: f64,
    /// Over lines since it left zero.
    pub lines: u32,
    /// Their billed minutes.
    pub billed_minutes: u64,
    /// The rounded performed minutes of the same lines.
    pub rounded_minutes: u64,
    /// Their excess in öre.
    pub excess_ore: f64,
    /// The first period that added, its start.
    pub since: Option<EventTime>,
    /// The invoices that added, oldest first.
    pub invoices: Vec<EventId>,
}

/// The rule.
pub struct InvoicedAbovePerformed(pub Params);

impl RuleSpec for InvoicedAbovePerformed {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = Evidence;

    fn validate(p: &Params) -> Result<(), String> {
        check::non_negative("line_tolerance_ratio", p.line_tolerance_ratio)?;
        if p.line_tolerance_minutes > 24 * 60 {
            return Err(format!("line_tolerance_minutes must be <= 1440 (is {})", p.line_tolerance_minutes));
        }
        check::non_negative("drift_hours", p.drift_hours)?;
        check::positive("decision_hours", p.decision_hours)?;
        check::positive_count("decision_lines", u64::from(p.decision_lines))?;
        check::ascending(&[
            ("decision_hours", p.decision_hours),
            ("high_excess_hours", p.high_excess_hours),
            ("critical_excess_hours", p.critical_excess_hours),
        ])
    }

    fn new(params: Params) -> Self {
        InvoicedAbovePerformed(params)
    }
}

impl Rule for InvoicedAbovePerformed {
    fn on_invoice(&self, ctx: &mut InvoiceContext<'_>, out: &mut Vec<Finding>) {
        let p = &self.0;
        let inv = ctx.invoice;
        let (mut lines, mut billed, mut rounded, mut excess, mut excess_ore) = (0u32, 0u64, 0u64, 0u64, 0f64);
        for line in &inv.lines {
            if ctx.provider.performed_minutes_all(line.client, inv.period_start, inv.period_end) == 0 {
                continue; // no visits at all: phantom-clients' case
            }
            let honest = ctx.provider.billable(line.client, line.service, inv.period_start, inv.period_end);
            let limit = f64::from(honest) * (1.0 + p.line_tolerance_ratio) + f64::from(p.line_tolerance_minutes);
            if f64::from(line.minutes.0) > limit {
                let over = u64::from(line.minutes.0 - honest);
                lines += 1;
                billed += u64::from(line.minutes.0);
                rounded += u64::from(honest);
                excess += over;
                excess_ore += over as f64 * line.tariff_per_hour.0 as f64 / 60.0;
            }
        }
        let evidence = &mut ctx.provider.rules.invoiced_above_performed;
        evidence.sum_minutes = (evidence.sum_minutes + excess as f64 - p.drift_hours * 60.0).max(0.0);
        if evidence.sum_minutes == 0.0 {
            *evidence = Evidence::default();
            return;
        }
        if lines > 0 {
            evidence.lines += lines;
            evidence.billed_minutes += billed;
            evidence.rounded_minutes += rounded;
            evidence.excess_ore += excess_ore;
            evidence.since = Some(evidence.since.map_or(inv.period_start, |s| s.min(inv.period_start)));
            evidence.invoices.push(inv.invoice_id.clone());
            if evidence.invoices.len() > MAX_EVIDENCE {
                evidence.invoices.remove(0);
            }
        }
        let sum_hours = evidence.sum_minutes / 60.0;
        if sum_hours < p.decision_hours && evidence.lines < p.decision_lines {
            return;
        }
        let e = std::mem::take(evidence);
        out.push(self.finding(ctx, &e));
    }
}

impl InvoicedAbovePerformed {
    /// The finding the accumulated evidence `e` makes at invoice `ctx`.
    fn finding(&self, ctx: &InvoiceContext<'_>, e: &Evidence) -> Finding {
        let p = &self.0;
        let inv = ctx.invoice;
        let since = e.since.unwrap_or(inv.period_start);
        let (billed_h, rounded_h) = (e.billed_minutes as f64 / 60.0, e.rounded_minutes as f64 / 60.0);
        let excess_h = billed_h - rounded_h;
        let (sum_h, kr) = (e.sum_minutes / 60.0, e.excess_ore / 100.0);
        let severity =
            Severity::by_cutoffs(excess_h, 0.0, p.high_excess_hours, p.critical_excess_hours).max(Severity::Medium);
        let (first, last): (Month, Month) = (since.month(), inv.period_start.month());
        let (invoices, lines) = (e.invoices.len() as u64, u64::from(e.lines));
        let more = (billed_h / rounded_h.max(1.0 / 60.0) - 1.0) * 100.0;
        let (tolerance, per_line, drift) =
            (p.line_tolerance_ratio * 100.0, u64::from(p.line_tolerance_minutes), p.drift_hours);
        let explanation = Text {
            en: format!(
                "From {} to {}, {} of this provider (the latest {} for {}) bill {} on {} where its own time \
                 reports, each visit rounded up to 5 minutes, show {} for the same clients and service types ({} \
                 more; {} ≈ {} kr). Accumulated over the invoices, less {} allowed per invoice: {} of evidence \
                 (decides at {} or {} lines). An honest provider bills at most the rounded time; tolerated: {} \
                 plus {} per line.",
                en::month(first),
                en::month(last),
                en::count(invoices, "invoice", "invoices"),
                inv.invoice_id,
                en::month(last),
                en::hours(billed_h, 1),
                en::count(lines, "line", "lines"),
                en::hours(rounded_h, 1),
                en::percent(more, 0),
                en::hours(excess_h, 1),
                en::num(kr, 0),
                en::hours(drift, 1),
                en::hours(sum_h, 1),
                en::hours(p.decision_hours, 1),
                p.decision_lines,
                en::percent_short(tolerance),
                en::count(per_line, "minute", "minutes"),
            ),
            sv: format!(
                "Från {} till {} tar {} från utföraren (den senaste {} för {}) upp {} fakturerade timmar på {}, \
                 men utförarens egna tidrapporter, med varje besök avrundat uppåt till 5 minuter, visar {} utförda \
                 timmar för samma brukare och insatser ({} fler; {} ≈ {} kr). Summerat över fakturorna, med {} \
                 avdrag per faktura: {} samlade belägg (beslut vid {} eller {} fakturarader). En ärlig utförare \
                 fakturerar högst den avrundade tiden; toleransen är {} plus {} per fakturarad.",
                sv::month(first),
                sv::month(last),
                sv::count(invoices, "faktura", "fakturor"),
                inv.invoice_id,
                sv::month(last),
                sv::num(billed_h, 1),
                sv::count(lines, "fakturarad", "fakturarader"),
                sv::num(rounded_h, 1),
                sv::percent(more, 0),
                sv::hours(excess_h, 1),
                sv::num(kr, 0),
                sv::hours(drift, 1),
                sv::hours(sum_h, 1),
                sv::hours(p.decision_hours, 1),
                p.decision_lines,
                sv::percent_short(tolerance),
                sv::count(per_line, "minut", "minuter"),
            ),
        };
        Finding::new(&INFO, inv.provider, inv.municipality, (since, inv.period_end))
            .severity(severity)
            .score(excess_h)
            .observed(billed_h, Unit::Hours)
            .expected(rounded_h, Unit::Hours)
            .explain(explanation)
            .evidence(e.invoices.clone())
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testkit::Scenario;

    /// 20 visits of `visit_minutes` to each of 5 clients in each month of
    /// `months` (of 2026), each month invoiced at `billed(month, client)`
    /// minutes a line early the next month.
    fn run(months: &[u32], visit_minutes: i64, billed: impl Fn(u32, u64) -> i64) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("invoiced-above-performed");
        for &month in months {
            // Days 7–26: after the watermark the previous invoice needed.
            s.advance_to(2026, month, 6);
            for day in 7..=26 {
                let start = crate::model::Day::from_ymd(2026, month, day).start();
                s.heartbeat(crate::engine::Input::TimeReports, start);
                for client in 0..5 {
                    s.visit().client(client).staff(client).day(2026, month, day).at(9, 0).minutes(visit_minutes).send();
                }
            }
            s.advance_to(2026, month + 1, 6);
            s.invoice(2026, month).lines((0..5).map(|c| (c, billed(month, c))).collect()).send();
        }
        s.alerts()
    }

    #[test]
    fn billing_a_third_more_than_performed_fires_at_the_first_invoice() {
        let alerts = run(&[3], 30, |_, _| 800); // 13.3 h billed per client against 10 h
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].observed.value, 5.0 * 800.0 / 60.0);
        assert_eq!(alerts[0].expected.value, 50.0);
        assert_eq!(alerts[0].evidence.len(), 1);
    }

    #[test]
    fn a_few_percent_on_one_line_a_month_accumulates_to_a_finding() {
        // One client of five billed 4 % over its 10 h (24 minutes, above the
        // 1 % + 10 minutes tolerated): 0.4 h a month, below the 0.5 h
        // drift, so the hours never decide, but the third over line does.
        let alerts = run(&[2, 3, 4, 5], 30, |_, c| if c == 0 { 624 } else { 600 });
        assert_eq!(alerts.len(), 0, "0.4 h an invoice drains faster than it adds: {alerts:?}");
        // At 8 % (48 minutes a month) the evidence stays above zero and
        // the third over line decides, with the invoices named.
        let alerts = run(&[2, 3, 4, 5], 30, |_, c| if c == 0 { 648 } else { 600 });
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].evidence.len(), 3, "the three invoices that added");
        let en = &alerts[0].explanation.en;
        assert!(en.contains("3 lines"), "{en}");
        assert!(en.contains("rounded up to 5 minutes"), "{en}");
    }

    #[test]
    fn a_small_excess_on_many_lines_decides_at_the_first_invoice() {
        // Three of five clients 40 minutes over: three over lines at once.
        let alerts = run(&[3], 30, |_, c| if c < 3 { 640 } else { 600 });
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].observed.value, (3.0 * 640.0) / 60.0);
    }

    #[test]
    fn the_swedish_explanation_names_the_figures_of_the_english() {
        let alerts = run(&[3], 30, |_, _| 800);
        crate::rules::testkit::assert_bilingual(
            &alerts[0].explanation,
            &[
                "faktura",
                "fakturerade",
                "fakturarader",
                "utförarens",
                "tidrapporter",
                "brukare",
                "insatser",
                "utförda",
                "timmar",
                "mars 2026",
            ],
        );
    }

    #[test]
    fn billing_each_visit_rounded_up_to_five_minutes_does_not_fire() {
        // 20 visits of 31 minutes, each billed as 35: 700 minutes against
        // 620 performed, month after month.
        assert!(run(&[2, 3, 4, 5], 31, |_, _| 700).is_empty());
        // Five minutes more on every line is within 1 % + 10 minutes.
        assert!(run(&[2, 3, 4, 5], 31, |_, _| 705).is_empty());
        // But 30 minutes more on every line is not.
        assert_eq!(run(&[2], 31, |_, _| 730).len(), 1);
    }

    #[test]
    fn one_corrected_line_a_quarter_never_decides() {
        // One line 1 h over in February, then honest invoices: drained.
        let alerts = run(&[2, 3, 4, 5, 6, 7, 8], 30, |m, c| if c == 0 && m % 3 == 2 { 660 } else { 600 });
        assert!(alerts.is_empty(), "{alerts:?}");
    }
}
