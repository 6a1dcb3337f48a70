//! Pattern 5: manual or edited registrations far above peers.
//!
//! **Fraud it catches**: a provider whose visits are increasingly entered
//! by hand or edited after the fact instead of read from the NFC tag or
//! lock at the door: the classic channel for inventing or stretching visits.
//!
//! **Statistic**: the provider's share of manual + edited registrations
//! among its visits, against the share at the outlier threshold of the
//! providers of the same municipality (their 30-day shares' median plus
//! `z_threshold` MADs / 0.6745, MAD floored at `mad_floor`, at least
//! `min_share`), at every day close: decided over the shortest trailing
//! window of 3, 6, 12, 24 or 30 days whose Wilson lower bound (at
//! `confidence_z`) is above it, or against the provider's own past 28
//! days by an exact test (the chance of as many typed visits in the
//! window had its share not changed at most `own_chance`, a rise of
//! `min_rise` points at least); v5 no longer decides on the 30-day
//! share's modified z-score alone (see [`super::share`]). Days
//! with `outage_share` or more typed (a lock system down) are left out,
//! unless more than `max_outage_days` of them come in a row (a habit).
//! See [`super::share`] for the decision, its false-alarm rate (about
//! 3·10⁻⁵ per honest provider and day close against the peers, at most
//! `own_chance` against its own past) and its speed (half of 100 visits a
//! day by hand against a limit of 30 %: three days).
//!
//! **Parameters** ([`Params`]): `window_days` (30), `min_window_days` (3),
//! `confidence_z` (4), `min_visits` (100), `baseline_days` (28),
//! `own_chance` (3·10⁻⁷), `min_rise` (0.04), `min_expected` (2),
//! `outage_share` (0.8), `max_outage_days` (3), `min_peers` (5),
//! `z_threshold` (3.5), `min_share` (0.2), `mad_floor` (0.02). Severity: medium, high
//! from z = `high_z` (7), critical from z = `critical_z` (14).

use super::share::{ShareKind, ShareParams, ShareRule};
use crate::baseline::PeerMetric;
use crate::finding::{RuleInfo, RuleStage};
use crate::model::Visit;
use crate::text::Phrase;

/// Identity of `manual-registration-share` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "manual-registration-share",
    version: 5,
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
    const MIN_RISE: f64 = 0.04;
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
        month(10, |_| manual_per_10)
    }

    /// Eight providers for 30 days of March, 10 visits a day each, the
    /// others 0–1 of 10 by hand; provider 0 with `visits_0` a day,
    /// `manual_on(day)` of them by hand.
    fn month(visits_0: u32, manual_on: impl Fn(u32) -> u32) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("manual-registration-share");
        for day in 1..=30 {
            for provider in 0..8u64 {
                let visits = if provider == 0 { visits_0 } else { 10 };
                for i in 0..visits {
                    let manual = if provider == 0 { i < manual_on(day) } else { i < (provider % 2) as u32 };
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

    #[test]
    fn a_small_providers_month_above_the_limit_by_its_noise_alone_does_not_fire() {
        // Provider 0 with 4 visits a day: 54 of 120 by hand (45 %)
        // against a limit of 36 % (the peers' median 10 %, their MAD 5
        // points): its month's modified z-score is 4.7 (v4 fired on that
        // alone), but 54 of 120 has a Wilson lower bound of 28 % at 4
        // standard errors, below the limit: its own sampling noise covers
        // the difference.
        let alerts = month(4, |day| if day % 5 == 0 { 1 } else { 2 });
        assert!(alerts.is_empty(), "{}", alerts[0].explanation.en);
        // 90 of 120 (75 %): a bound of 57 %, above it: decided.
        let alerts = month(4, |_| 3);
        assert!(!alerts.is_empty());
        assert!(alerts[0].explanation.en.contains("Wilson bound"), "{}", alerts[0].explanation.en);
    }

    /// Eight providers for 30 days as in `run(1)` (provider 0 with 40
    /// visits a day, 4 of them by hand), then `days` more days in which
    /// provider 0 registers `manual_per_40` of its 40 by hand.
    fn shift(manual_per_40: u32, days: u32) -> Vec<crate::alerting::Alert> {
        shift_with(|day| if day > 30 { manual_per_40 } else { 4 }, days)
    }

    /// The same with provider 0's manual visits of each day (1-based) from
    /// `manual_on`.
    fn shift_with(manual_on: impl Fn(u32) -> u32, days: u32) -> Vec<crate::alerting::Alert> {
        let mut s = Scenario::only("manual-registration-share");
        for day in 1..=30 + days {
            for provider in 0..8u64 {
                let visits = if provider == 0 { 40 } else { 10 };
                for i in 0..visits {
                    let manual = match provider {
                        0 => i < manual_on(day),
                        _ => i < (provider % 2) as u32,
                    };
                    let method = if manual { RegistrationMethod::Manual } else { RegistrationMethod::Nfc };
                    let (month, d) = if day > 31 { (4, day - 31) } else { (3, day) };
                    s.visit()
                        .provider(provider)
                        .staff(provider * 100 + u64::from(i))
                        .client(u64::from(i))
                        .day(2026, month, d)
                        .at(6 + i / 3, (i % 3) * 20)
                        .method(method)
                        .send();
                }
            }
        }
        s.advance_to(2026, 4, days.saturating_sub(1) + 3);
        s.alerts()
    }

    #[test]
    fn a_jump_at_a_busy_provider_is_decided_in_days() {
        // From 10 % to 60 % by hand: on its second day the last three
        // days' share (52 of 120 visits) passes the peers' limit with the
        // confidence bound. (Against its own past the first day is not yet
        // enough: 32 of 120 has a chance of 7·10⁻⁶ under its past 10 %,
        // above the 3·10⁻⁷ that decides.) A 30-day share would take weeks.
        let alerts = shift(24, 3);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let peers = &alerts[0];
        assert_eq!(peers.status, crate::alerting::AlertStatus::Opened);
        assert_eq!(peers.window.1.plus_secs(-1).day(), crate::model::Day::from_ymd(2026, 4, 1));
        assert_eq!(peers.window.1.0 - peers.window.0.0, 3 * 86_400, "decided over the three days");
        let en = &peers.explanation.en;
        assert!(en.contains("Wilson bound") && en.contains("120 visits"), "{en}");
        crate::rules::testkit::assert_bilingual(
            &peers.explanation,
            &["wilsons gräns", "standardfel", "ärlig utförare"],
        );
    }

    #[test]
    fn a_doubling_below_the_peers_limit_is_decided_against_its_own_past() {
        // From 10 % to 20 % of 40 visits a day: at the 20 % honest peers
        // reach here, so no bound passes it, but twice its own past. Over
        // 12 days the chance under its past share is 7·10⁻⁷, just short of
        // 3·10⁻⁷; the 15-day window decides (1·10⁻⁷).
        let alerts = shift(8, 20);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let en = &alerts[0].explanation.en;
        assert!(en.contains("in the 28 days before") && en.contains("by chance once in"), "{en}");
        // Whole days (the window spans the change to summer time).
        let days = (alerts[0].window.1.0 - alerts[0].window.0.0 + 43_200) / 86_400;
        assert_eq!(days, 15, "decided over {days} days: {en}");
        crate::rules::testkit::assert_bilingual(
            &alerts[0].explanation,
            &["egen historik", "procentenheter", "av en slump en gång på", "avbrott"],
        );
    }

    #[test]
    fn a_provider_whose_share_always_varied_needs_more_evidence() {
        // The same rise to 20 %, after days alternating between 0 and 20 %
        // (its typed visits come in clusters): its past varies 4.4 times
        // as much as chance, and the rise is within that.
        assert!(shift_with(|day| if day > 30 || day % 2 == 0 { 8 } else { 0 }, 14).is_empty());
    }

    #[test]
    fn a_day_of_lock_outage_is_left_out() {
        // Day 33: every visit typed by hand (the lock system down), then
        // back to 10 %: neither the peers' bound nor the own past decide.
        assert!(shift_with(|day| if day == 33 { 40 } else { 4 }, 10).is_empty());
        // Two such days are left out as well, and so are three in a row.
        assert!(shift_with(|day| if day == 33 || day == 36 { 40 } else { 4 }, 10).is_empty());
        assert!(shift_with(|day| if (33..=35).contains(&day) { 40 } else { 4 }, 10).is_empty());
    }

    #[test]
    fn every_visit_typed_for_more_days_than_an_outage_lasts_is_a_habit() {
        // From day 33 on, every visit typed by hand: the first three days
        // may be an outage; the fourth makes the run a habit, and all four
        // days count (else a provider typing nearly everything would never
        // be seen).
        let alerts = shift_with(|day| if day >= 33 { 40 } else { 4 }, 10);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let decided = alerts[0].window.1.plus_secs(-1).day();
        assert_eq!(decided, crate::model::Day::from_ymd(2026, 4, 5), "{:?}", alerts[0].window);
    }

    #[test]
    fn a_small_rise_within_the_limit_is_not_decided_by_short_windows() {
        // From 10 % to 12.5 %: above its own past by less than the 4 points
        // that count, below the 20 % honest peers reach here: never, over
        // 20 days.
        assert!(shift(5, 20).is_empty());
    }
}
