//! Pattern 8: duplicate billing.
//!
//! **Fraud it catches**: the same client, service type and month billed on
//! two invoice lines, in one invoice or in a second invoice for the period.
//!
//! **Statistic**: per invoice, the lines whose (client, service type,
//! period month) was already billed by this provider. A redelivered invoice
//! (same invoice id) is recognised by the engine and not counted again.
//!
//! **State** ([`Billed`], per provider): which invoice first billed each
//! (client, service type, month), kept for the months of client history.
//!
//! **Parameters** ([`Params`]): `min_duplicates` (1). Severity by the
//! number of duplicated lines: low below `medium_lines` (1), high from
//! `high_lines` (3), critical from `critical_lines` (10).

use rustc_hash::FxHashMap;

use super::{InvoiceContext, Rule, RuleSpec, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::{ClientKey, Day, EventId, Month, ServiceType};
use crate::state::{CLIENT_MONTHS, sorted_map};
use crate::text::{Text, en, sv};

/// Identity of `duplicate-billing` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "duplicate-billing",
    version: 1,
    pattern: 8,
    name: "Duplicate billing",
    quiet_days: 45,
    stage: RuleStage::Provider,
};

params! {
    /// Parameters of `duplicate-billing`.
    pub struct Params {
        /// Duplicated lines per invoice that make a finding.
        pub min_duplicates: u32 = 1,
        /// Duplicated lines per invoice from which a finding is medium severity.
        pub medium_lines: u32 = 1,
        /// Duplicated lines per invoice from which a finding is high severity.
        pub high_lines: u32 = 3,
        /// Duplicated lines per invoice from which a finding is critical.
        pub critical_lines: u32 = 10,
    }
}

/// What `duplicate-billing` keeps per provider.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Billed {
    /// (client, service, month) → the invoice that billed it first.
    #[serde(serialize_with = "sorted_map")]
    pub first: FxHashMap<(ClientKey, ServiceType, Month), EventId>,
}

/// The rule.
pub struct DuplicateBilling(pub Params);

impl RuleSpec for DuplicateBilling {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = Billed;

    fn validate(p: &Params) -> Result<(), String> {
        check::positive_count("min_duplicates", u64::from(p.min_duplicates))?;
        check::positive_count("medium_lines", u64::from(p.medium_lines))?;
        check::ascending(&[
            ("medium_lines", f64::from(p.medium_lines)),
            ("high_lines", f64::from(p.high_lines)),
            ("critical_lines", f64::from(p.critical_lines)),
        ])
    }

    fn new(params: Params) -> Self {
        DuplicateBilling(params)
    }

    /// Months older than the client history are forgotten.
    fn evict(state: &mut Billed, closed: Day) {
        let oldest_month = closed.month().0 - CLIENT_MONTHS as i32 + 1;
        state.first.retain(|(_, _, m), _| m.0 >= oldest_month);
    }
}

impl Rule for DuplicateBilling {
    fn on_invoice(&self, ctx: &mut InvoiceContext<'_>, out: &mut Vec<Finding>) {
        let inv = ctx.invoice;
        let month = inv.period_start.month();
        let mut duplicates = 0u32;
        let mut minutes = 0u64;
        let mut evidence = vec![inv.invoice_id.clone()];
        let billed = &mut ctx.provider.rules.duplicate_billing.first;
        for line in &inv.lines {
            let key = (line.client, line.service, month);
            match billed.get(&key) {
                Some(first) => {
                    duplicates += 1;
                    minutes += u64::from(line.minutes.0);
                    if !evidence.contains(first) {
                        evidence.push(first.clone());
                    }
                }
                None => {
                    billed.insert(key, inv.invoice_id.clone());
                }
            }
        }
        if duplicates == 0 || duplicates < self.0.min_duplicates {
            return;
        }
        let p = &self.0;
        let severity = Severity::by_cutoffs(
            f64::from(duplicates),
            f64::from(p.medium_lines),
            f64::from(p.high_lines),
            f64::from(p.critical_lines),
        );
        let (lines, hours) = (u64::from(duplicates), minutes as f64 / 60.0);
        let explanation = Text {
            en: format!(
                "Invoice {} has {} ({}) whose client, service type and month ({}) were already billed, on the same \
                 invoice or on an earlier one listed in the evidence.",
                inv.invoice_id,
                en::count(lines, "line", "lines"),
                en::hours(hours, 1),
                en::month(month),
            ),
            sv: format!(
                "Faktura {} har {} ({}) där samma brukare, insats och månad ({}) redan har fakturerats, på samma \
                 faktura eller på en tidigare faktura som anges i underlaget.",
                inv.invoice_id,
                sv::count(lines, "fakturarad", "fakturarader"),
                sv::hours(hours, 1),
                sv::month(month),
            ),
        };
        out.push(
            Finding::new(&INFO, inv.provider, inv.municipality, (inv.period_start, inv.period_end))
                .severity(severity)
                .score(f64::from(duplicates))
                .observed(f64::from(duplicates), Unit::Lines)
                .expected(0.0, Unit::Lines)
                .explain(explanation)
                .evidence(evidence),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::testkit::Scenario;

    #[test]
    fn a_second_invoice_for_the_same_client_and_month_fires() {
        let mut s = Scenario::only("duplicate-billing");
        s.advance_to(2026, 4, 6);
        s.invoice(2026, 3).id("inv-a").lines(vec![(1, 600), (2, 300)]).send();
        s.invoice(2026, 3).id("inv-b").lines(vec![(2, 300)]).send();
        let alerts = s.alerts();
        assert_eq!(alerts.len(), 1);
        let evidence: Vec<_> = alerts[0].evidence.iter().map(|e| e.as_str()).collect();
        assert_eq!(evidence, ["inv-b", "inv-a"]);
        let terms = ["faktura", "1 fakturarad", "5,0 timmar", "brukare", "insats", "mars 2026", "fakturerats"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
    }

    #[test]
    fn what_was_billed_survives_a_restart() {
        let mut s = Scenario::only("duplicate-billing");
        s.advance_to(2026, 4, 6);
        s.invoice(2026, 3).id("inv-a").lines(vec![(1, 600)]).send();
        s.restart();
        s.invoice(2026, 3).id("inv-b").lines(vec![(1, 600)]).send();
        let alerts = s.alerts();
        assert_eq!(alerts.len(), 1);
        let evidence: Vec<_> = alerts[0].evidence.iter().map(|e| e.as_str()).collect();
        assert_eq!(evidence, ["inv-b", "inv-a"]);
    }

    #[test]
    fn months_older_than_the_client_history_are_forgotten() {
        use super::{Billed, DuplicateBilling};
        use crate::model::{ClientKey, Day, EventId, ServiceType};
        use crate::rules::RuleSpec;
        let mut state = Billed::default();
        for month in 1..=6 {
            let m = Day::from_ymd(2026, month, 1).month();
            state.first.insert((ClientKey(1), ServiceType::PersonalCare, m), EventId::new(&format!("inv-{month}")));
        }
        DuplicateBilling::evict(&mut state, Day::from_ymd(2026, 6, 15));
        let mut kept: Vec<_> = state.first.values().map(|id| id.as_str().to_string()).collect();
        kept.sort();
        assert_eq!(kept, ["inv-3", "inv-4", "inv-5", "inv-6"]);
    }

    #[test]
    fn next_month_and_a_redelivered_invoice_do_not_fire() {
        let mut s = Scenario::only("duplicate-billing");
        s.advance_to(2026, 5, 6);
        s.invoice(2026, 3).id("inv-a").lines(vec![(1, 600)]).send();
        s.invoice(2026, 3).id("inv-a").lines(vec![(1, 600)]).send();
        s.invoice(2026, 4).id("inv-b").lines(vec![(1, 600)]).send();
        assert!(s.alerts().is_empty());
    }
}
