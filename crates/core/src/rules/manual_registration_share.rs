//! Pattern 5: manual or edited registrations far above peers.
//!
//! **Fraud it catches**: a provider whose visits are increasingly entered
//! by hand or edited after the fact instead of read from the NFC tag or
//! lock at the door: the classic channel for inventing or stretching visits.
//!
//! **Statistic**: the provider's share of manual + edited registrations
//! among its visits in the last `window_days`, compared with the providers
//! of the same municipality by modified z-score `0.6745 (x − median) / MAD`
//! (MAD floored at `mad_floor`), evaluated at every day close.
//!
//! **Parameters** ([`Params`]): `window_days` (30), `min_visits` (100),
//! `min_peers` (5), `z_threshold` (3.5), `min_share` (0.2), `mad_floor`
//! (0.02). Severity: medium, high from z = `high_z` (7), critical from
//! z = `critical_z` (14).

use super::share::{ShareKind, ShareParams, ShareRule};
use crate::baseline::PeerMetric;
use crate::finding::{RuleInfo, RuleStage};
use crate::model::Visit;
use crate::text::Phrase;

/// Identity of `manual-registration-share` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "manual-registration-share",
    version: 1,
    pattern: 5,
    name: "Manual or edited registrations above peers",
    quiet_days: 30,
    stage: RuleStage::Provider,
};

/// Parameters of `manual-registration-share`: see [`ShareParams`] (defaults above).
pub type Params = ShareParams<ManualOrEdited>;

/// The rule.
pub type ManualRegistrationShare = ShareRule<ManualOrEdited>;

/// What `manual-registration-share` counts.
#[derive(Debug, PartialEq)]
pub struct ManualOrEdited;

impl ShareKind for ManualOrEdited {
    const INFO: &'static RuleInfo = &INFO;
    const SLOT: usize = 0;
    const METRIC: PeerMetric = PeerMetric::ManualShare;
    const MIN_SHARE: f64 = 0.2;
    const MAD_FLOOR: f64 = 0.02;
    const WHAT: Phrase = Phrase {
        en: "were registered manually or edited afterwards",
        sv: "registrerades manuellt eller ändrades i efterhand",
    };
    const WHY: Phrase = Phrase {
        en: "Manual registration bypasses the check at the door.",
        sv: "Manuell registrering kringgår kontrollen vid dörren (nyckelfri låsregistrering eller NFC-tagg).",
    };

    fn counts(visit: &Visit) -> bool {
        visit.method.is_manual_or_edited()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::RegistrationMethod;
    use crate::rules::testkit::Scenario;

    /// Eight providers, 10 visits a day for 30 days; provider 0 registers
    /// `manual_per_10` of every 10 by hand, the others 0–1 of 10.
    fn run(manual_per_10: u32) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("manual-registration-share");
        for day in 1..=30 {
            for provider in 0..8u64 {
                for i in 0..10u32 {
                    let manual = if provider == 0 { i < manual_per_10 } else { i < (provider % 2) as u32 };
                    let method = if manual { RegistrationMethod::Manual } else { RegistrationMethod::Nfc };
                    s.visit()
                        .provider(provider)
                        .staff(provider * 10 + u64::from(i))
                        .client(u64::from(i))
                        .day(2026, 3, day)
                        .at(8 + i, 0)
                        .method(method)
                        .send();
                }
            }
        }
        s.advance_to(2026, 4, 3);
        s.alerts()
    }

    #[test]
    fn half_of_visits_by_hand_against_peers_at_five_percent_fires() {
        let alerts = run(5);
        assert!(!alerts.is_empty());
        assert!(alerts.iter().all(|a| a.provider == crate::rules::testkit::provider(0)));
        let terms = ["utförarens", "besök", "registrerades manuellt", "jämförbara utförare", "kommunen", "z-värde"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
    }

    #[test]
    fn a_share_within_the_peers_spread_does_not_fire() {
        assert!(run(1).is_empty());
    }
}
