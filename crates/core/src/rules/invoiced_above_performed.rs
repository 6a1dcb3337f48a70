//! Pattern 1: invoiced hours above performed hours.
//!
//! **Fraud it catches**: a provider bills a client for more time than its
//! own staff reported at the client's home (hours that were never worked).
//!
//! **Statistic**: per invoice line, billed minutes against the minutes of
//! time reports for the same client and service type in the invoice period
//! (a line is over when `billed > performed × (1 + tolerance_ratio) +
//! rounding_minutes_per_visit × visits + tolerance_minutes`: billing may
//! round each visit up, e.g. to whole five minutes). Evaluated once per invoice, after the time-report
//! watermark passed the period end, so late-but-allowed reports count.
//! Lines for clients with no visits at all are left to `phantom-clients`.
//! The finding carries the excess hours and its value in kronor.
//!
//! **Parameters** ([`Params`]): `tolerance_ratio` (0.02),
//! `rounding_minutes_per_visit` (4: the most that rounding each visit up to
//! five minutes adds), `tolerance_minutes` (30 per line), `min_excess_hours`
//! (4: per invoice, below it a finding is not worth a case). Severity:
//! medium, high from `high_excess_hours` (40), critical from
//! `critical_excess_hours` (200) of excess per invoice.

use super::{InvoiceContext, Rule, RuleSpec, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::text::{Text, en, sv};

/// Identity of `invoiced-above-performed` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "invoiced-above-performed",
    version: 1,
    pattern: 1,
    name: "Invoiced hours above performed hours",
    quiet_days: 45,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `invoiced-above-performed`.
    pub struct Params {
        /// Relative tolerance per line.
        pub tolerance_ratio: f64 = 0.02,
        /// Tolerance per performed visit, minutes (rounding of each visit).
        pub rounding_minutes_per_visit: u32 = 4,
        /// Absolute tolerance per line, minutes.
        pub tolerance_minutes: u32 = 30,
        /// Smallest total excess per invoice that makes a finding, hours.
        pub min_excess_hours: f64 = 4.0,
        /// Excess per invoice from which a finding is high severity, hours.
        pub high_excess_hours: f64 = 40.0,
        /// Excess per invoice from which a finding is critical, hours.
        pub critical_excess_hours: f64 = 200.0,
    }
}

/// The rule.
pub struct InvoicedAbovePerformed(pub Params);

impl RuleSpec for InvoicedAbovePerformed {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        check::non_negative("tolerance_ratio", p.tolerance_ratio)?;
        if p.rounding_minutes_per_visit > 60 {
            return Err(format!("rounding_minutes_per_visit must be <= 60 (is {})", p.rounding_minutes_per_visit));
        }
        if p.tolerance_minutes > 24 * 60 {
            return Err(format!("tolerance_minutes must be <= 1440 (is {})", p.tolerance_minutes));
        }
        check::positive("min_excess_hours", p.min_excess_hours)?;
        check::ascending(&[
            ("min_excess_hours", p.min_excess_hours),
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
        let (mut lines_over, mut billed, mut performed_total, mut excess, mut excess_ore) =
            (0u32, 0u64, 0u64, 0u64, 0f64);
        for line in &inv.lines {
            if ctx.provider.performed_minutes_all(line.client, inv.period_start, inv.period_end) == 0 {
                continue; // no visits at all: phantom-clients' case
            }
            let (performed, visits) =
                ctx.provider.performed(line.client, line.service, inv.period_start, inv.period_end);
            let limit = f64::from(performed) * (1.0 + p.tolerance_ratio)
                + f64::from(p.rounding_minutes_per_visit * visits)
                + f64::from(p.tolerance_minutes);
            if f64::from(line.minutes.0) > limit {
                lines_over += 1;
                billed += u64::from(line.minutes.0);
                performed_total += u64::from(performed);
                let over = u64::from(line.minutes.0 - performed.min(line.minutes.0));
                excess += over;
                excess_ore += over as f64 * line.tariff_per_hour.0 as f64 / 60.0;
            }
        }
        let excess_hours = excess as f64 / 60.0;
        if lines_over == 0 || excess_hours < p.min_excess_hours {
            return;
        }
        let ratio = billed as f64 / (performed_total as f64).max(1.0);
        let severity =
            Severity::by_cutoffs(excess_hours, 0.0, p.high_excess_hours, p.critical_excess_hours).max(Severity::Medium);
        let (billed_h, performed_h, kr) = (billed as f64 / 60.0, performed_total as f64 / 60.0, excess_ore / 100.0);
        let (lines, more, month) = (u64::from(lines_over), (ratio - 1.0) * 100.0, inv.period_start.month());
        let (tolerance, per_visit, per_line) =
            (p.tolerance_ratio * 100.0, u64::from(p.rounding_minutes_per_visit), u64::from(p.tolerance_minutes));
        let explanation = Text {
            en: format!(
                "Invoice {} for {} bills {} on {} where the provider's own time reports show {} for the same \
                 clients and service types ({} more; {} ≈ {} kr above what was reported as performed). Tolerated: \
                 {} plus {} per visit and {} per line.",
                inv.invoice_id,
                en::month(month),
                en::hours(billed_h, 1),
                en::count(lines, "line", "lines"),
                en::hours(performed_h, 1),
                en::percent(more, 0),
                en::hours(excess_hours, 1),
                en::num(kr, 0),
                en::percent_short(tolerance),
                en::count(per_visit, "minute", "minutes"),
                en::count(per_line, "minute", "minutes"),
            ),
            sv: format!(
                "Faktura {} för {} tar upp {} fakturerade timmar på {}, men utförarens egna tidrapporter för samma \
                 brukare och insatser visar {} utförda timmar ({} fler; {} ≈ {} kr mer än vad som rapporterats som \
                 utfört). Toleransen är {} plus {} per besök och {} per fakturarad.",
                inv.invoice_id,
                sv::month(month),
                sv::num(billed_h, 1),
                sv::count(lines, "fakturarad", "fakturarader"),
                sv::num(performed_h, 1),
                sv::percent(more, 0),
                sv::hours(excess_hours, 1),
                sv::num(kr, 0),
                sv::percent_short(tolerance),
                sv::count(per_visit, "minut", "minuter"),
                sv::count(per_line, "minut", "minuter"),
            ),
        };
        out.push(
            Finding::new(&INFO, inv.provider, inv.municipality, (inv.period_start, inv.period_end))
                .severity(severity)
                .score(excess_hours)
                .observed(billed_h, Unit::Hours)
                .expected(performed_h, Unit::Hours)
                .explain(explanation)
                .evidence(vec![inv.invoice_id.clone()]),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testkit::Scenario;

    fn run(billed_minutes: i64) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("invoiced-above-performed");
        // 20 visits of 30 minutes to each of 5 clients in March: 10 h each.
        for day in 1..=20 {
            for client in 0..5 {
                s.visit().client(client).staff(client).day(2026, 3, day).at(9, 0).minutes(30).send();
            }
        }
        s.advance_to(2026, 4, 6);
        s.invoice(2026, 3).lines((0..5).map(|c| (c, billed_minutes)).collect()).send();
        s.alerts()
    }

    #[test]
    fn billing_a_third_more_than_performed_fires() {
        let alerts = run(800); // 13.3 h billed per client against 10 h
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].observed.value, 5.0 * 800.0 / 60.0);
        assert_eq!(alerts[0].expected.value, 50.0);
    }

    #[test]
    fn the_swedish_explanation_names_the_figures_of_the_english() {
        let alerts = run(800);
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
    fn billing_within_rounding_tolerance_does_not_fire() {
        // 20 visits of 30 minutes each rounded up to 34: 680 minutes against 600.
        assert!(run(680).is_empty());
    }
}
