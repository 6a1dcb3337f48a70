//! Pattern 6: ghost or rounded visits.
//!
//! **Fraud it catches**: visits that were never made but entered to match
//! the schedule: their duration equals the planned time exactly, or lands
//! on whole hours, and no door event (NFC tag or lock) backs them. Real
//! visits registered at the door vary by minutes.
//!
//! **Statistic**: the provider's share of ghost-like visits (duration equal
//! to the planned minutes, or a positive whole number of hours, and not
//! registered by a door event) among its visits in the last `window_days`,
//! compared with the providers of the same municipality by modified
//! z-score (MAD floored at `mad_floor`), evaluated at every day close.
//!
//! **Parameters** ([`Params`]): `window_days` (30), `min_visits` (100),
//! `min_peers` (5), `z_threshold` (3.5), `min_share` (0.02), `mad_floor`
//! (0.003: honest providers have well under 1 % such visits). Severity:
//! medium, high from z = `high_z` (7), critical from z = `critical_z` (14).

use super::share::{ShareKind, ShareParams, ShareRule};
use crate::baseline::PeerMetric;
use crate::finding::{RuleInfo, RuleStage};
use crate::model::{RegistrationMethod, Visit};
use crate::text::Phrase;

/// Identity of `rounded-visits` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "rounded-visits",
    version: 1,
    pattern: 6,
    name: "Ghost or rounded visits",
    quiet_days: 30,
    stage: RuleStage::Provider,
};

/// Parameters of `rounded-visits`: see [`ShareParams`] (defaults above).
pub type Params = ShareParams<Rounded>;

/// The rule.
pub type RoundedVisits = ShareRule<Rounded>;

/// Whether a visit looks entered rather than registered: its duration is
/// exactly the planned time or whole hours, and no door event backs it.
pub fn is_rounded(v: &Visit) -> bool {
    let d = v.duration();
    v.method != RegistrationMethod::Nfc && (v.planned == Some(d) || (d.0 > 0 && d.0.is_multiple_of(60)))
}

/// What `rounded-visits` counts.
#[derive(Debug, PartialEq)]
pub struct Rounded;

impl ShareKind for Rounded {
    const INFO: &'static RuleInfo = &INFO;
    const SLOT: usize = 1;
    const METRIC: PeerMetric = PeerMetric::RoundedShare;
    const MIN_SHARE: f64 = 0.02;
    const MAD_FLOOR: f64 = 0.003;
    const WHAT: Phrase = Phrase {
        en: "lasted exactly the planned time or a whole number of hours without a door event",
        sv: "varade exakt den planerade tiden eller ett jämnt antal timmar utan registrering vid dörren",
    };
    const WHY: Phrase = Phrase {
        en: "Visits registered at the door vary by minutes; identical durations entered by hand suggest visits \
             copied from the schedule.",
        sv: "Besök som registreras vid dörren varierar med några minuter; identiska tider som förts in för hand \
             tyder på besök som kopierats från planeringen.",
    };

    fn counts(visit: &Visit) -> bool {
        is_rounded(visit)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::RegistrationMethod::{Manual, MobileApp, Nfc};
    use crate::rules::testkit::Scenario;

    /// Eight providers, 10 planned 30-minute visits a day for 30 days;
    /// provider 0 enters `exact_per_10` of every 10 by hand lasting exactly
    /// 30 minutes; the others register at the door, one in ten exact.
    fn run(exact_per_10: u32) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("rounded-visits");
        for day in 1..=30 {
            for provider in 0..8u64 {
                for i in 0..10u32 {
                    let exact = if provider == 0 { i < exact_per_10 } else { i < 1 };
                    let minutes = if exact { 30 } else { 25 + (i % 4) as i64 + (provider % 2) as i64 * 6 };
                    let method = if exact && provider == 0 {
                        Manual
                    } else if i == 9 {
                        MobileApp
                    } else {
                        Nfc
                    };
                    s.visit()
                        .provider(provider)
                        .method(method)
                        .staff(provider * 10 + u64::from(i))
                        .client(u64::from(i))
                        .day(2026, 3, day)
                        .at(8 + i, 0)
                        .planned(30)
                        .minutes(minutes)
                        .send();
                }
            }
        }
        s.advance_to(2026, 4, 3);
        s.alerts()
    }

    #[test]
    fn a_fifth_of_visits_entered_exactly_as_planned_fires() {
        let alerts = run(2);
        assert!(!alerts.is_empty());
        assert!(alerts.iter().all(|a| a.provider == crate::rules::testkit::provider(0)));
        let terms = ["utförarens", "besök", "planerade tiden", "vid dörren", "jämförbara utförare", "z-värde"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &terms);
    }

    #[test]
    fn exact_durations_registered_at_the_door_do_not_fire() {
        assert!(run(0).is_empty());
    }
}
