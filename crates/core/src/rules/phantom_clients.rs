//! Pattern 7: phantom clients.
//!
//! **Fraud it catches**: invoice lines for clients nobody visited in the
//! period: invented clients, clients who moved, died or changed provider.
//!
//! **Statistic**: per invoice, the number of lines of at least
//! `min_line_hours` for clients with no time report of any service type by
//! this provider in the months of the period. Evaluated when the period is
//! complete in the time reports.
//!
//! **Parameters** ([`Params`]): `min_line_hours` (1.0), `min_lines` (1).
//! Severity by the number of phantom clients: low below `medium_clients`
//! (1), high from `high_clients` (3), critical from `critical_clients` (10).

use super::{InvoiceContext, Rule, RuleSpec, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::text::{Text, en, sv};

/// Identity of `phantom-clients` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "phantom-clients",
    version: 1,
    pattern: 7,
    name: "Invoiced clients without visits",
    quiet_days: 45,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `phantom-clients`.
    pub struct Params {
        /// Lines shorter than this are ignored, hours.
        pub min_line_hours: f64 = 1.0,
        /// Phantom lines per invoice that make a finding.
        pub min_lines: u32 = 1,
        /// Phantom clients per invoice from which a finding is medium severity.
        pub medium_clients: u32 = 1,
        /// Phantom clients per invoice from which a finding is high severity.
        pub high_clients: u32 = 3,
        /// Phantom clients per invoice from which a finding is critical.
        pub critical_clients: u32 = 10,
    }
}

/// The rule.
pub struct PhantomClients(pub Params);

impl RuleSpec for PhantomClients {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        check::non_negative("min_line_hours", p.min_line_hours)?;
        check::within("min_line_hours", p.min_line_hours, 0.0, 744.0)?;
        check::positive_count("min_lines", u64::from(p.min_lines))?;
        check::positive_count("medium_clients", u64::from(p.medium_clients))?;
        check::ascending(&[
            ("medium_clients", f64::from(p.medium_clients)),
            ("high_clients", f64::from(p.high_clients)),
            ("critical_clients", f64::from(p.critical_clients)),
        ])
    }

    fn new(params: Params) -> Self {
        PhantomClients(params)
    }
}

impl Rule for PhantomClients {
    fn on_invoice(&self, ctx: &mut InvoiceContext<'_>, out: &mut Vec<Finding>) {
        let inv = ctx.invoice;
        let min_minutes = (self.0.min_line_hours * 60.0) as u32;
        let mut clients = Vec::new();
        let mut minutes = 0u64;
        for line in &inv.lines {
            if line.minutes.0 >= min_minutes
                && ctx.provider.performed_minutes_all(line.client, inv.period_start, inv.period_end) == 0
            {
                if !clients.contains(&line.client) {
                    clients.push(line.client);
                }
                minutes += u64::from(line.minutes.0);
            }
        }
        let n = clients.len() as u32;
        if n == 0 || n < self.0.min_lines {
            return;
        }
        let total_clients = {
            let mut all: Vec<_> = inv.lines.iter().map(|l| l.client).collect();
            all.sort_unstable();
            all.dedup();
            all.len()
        };
        let p = &self.0;
        let severity = Severity::by_cutoffs(
            f64::from(n),
            f64::from(p.medium_clients),
            f64::from(p.high_clients),
            f64::from(p.critical_clients),
        );
        let (hours, month, total) = (minutes as f64 / 60.0, inv.period_start.month(), total_clients as u64);
        let explanation = Text {
            en: format!(
                "Invoice {} for {} bills {} for {} of its {} who have no time report from this provider in the \
                 period: no visit was registered at their homes (lines of at least {} counted).",
                inv.invoice_id,
                en::month(month),
                en::hours(hours, 1),
                en::int(u64::from(n)),
                en::count(total, "client", "clients"),
                en::hours_short(p.min_line_hours),
            ),
            sv: format!(
                "Faktura {} för {} tar upp {} för {} av fakturans {} som saknar tidrapporter från utföraren under \
                 perioden: inget besök har registrerats i deras hem (fakturarader på minst {} räknas).",
                inv.invoice_id,
                sv::month(month),
                sv::hours(hours, 1),
                sv::int(u64::from(n)),
                sv::count(total, "brukare", "brukare"),
                sv::hours_short(p.min_line_hours),
            ),
        };
        out.push(
            Finding::new(&INFO, inv.provider, inv.municipality, (inv.period_start, inv.period_end))
                .severity(severity)
                .score(f64::from(n))
                .observed(f64::from(n), Unit::Clients)
                .expected(0.0, Unit::Clients)
                .explain(explanation)
                .evidence(vec![inv.invoice_id.clone()]),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testkit::Scenario;

    fn run(line_minutes_for_unvisited: i64) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("phantom-clients");
        for day in 1..=20 {
            s.visit().client(1).day(2026, 3, day).at(9, 0).minutes(30).send();
        }
        s.advance_to(2026, 4, 6);
        s.invoice(2026, 3).lines(vec![(1, 600), (2, line_minutes_for_unvisited)]).send();
        s.alerts()
    }

    #[test]
    fn billing_an_unvisited_client_fires() {
        let alerts = run(600);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].observed.value, 1.0);
        let terms = ["faktura", "mars 2026", "brukare", "tidrapporter", "utföraren", "besök", "fakturarader"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
    }

    #[test]
    fn a_short_line_for_an_unvisited_client_does_not_fire() {
        assert!(run(45).is_empty());
    }
}
