//! Hours above the granted hours, summed over the client's providers.
//!
//! **Fraud it catches**: providers that together report more care for a
//! client than the municipality granted, each staying within the grant
//! on its own: a provider that keeps registering (and billing) visits to a
//! client who has moved to another provider, a second provider (or the
//! same owner under another name) billing a client's grant again.
//! `visit-above-granted-hours` and `above-granted-hours` compare one
//! provider's minutes with the grant and cannot see it: a client's grant
//! is for all of its care, whoever performs it.
//!
//! **Statistic**: a client rule, asked in the staff stage and answered in
//! the provider stage. The staff stage sees every provider's visits of a
//! client in arrival-clock order and keeps each provider's minutes of the
//! client's two newest months by service type
//! ([`crate::client_care::ProviderCare::months`]). At each visit of a
//! client whose month of the visit's service type has minutes from two
//! providers or more, it asks the visit's provider's partition about the
//! month: every provider's minutes through this visit, and this
//! provider's ([`crate::client_care::GrantQuestion`]). That partition
//! answers once the reference data is known through the judging time
//! (the visit's arrival clock, at least its check-in plus
//! `core.reference.visit_grace`), against the grant of the whole month as
//! registered then (a decision covering part of the month counts pro
//! rata): a finding when the providers' minutes together exceed `granted ×
//! (1 + tolerance_ratio) + tolerance_minutes` while no provider's own do
//! (a provider over on its own is `visit-above-granted-hours`' finding),
//! once per client-month and provider. Which provider the client chose is
//! the municipality's order, the decision's `provider_id` (a client who
//! changes provider gets a new decision naming the new one): a provider
//! is found only when its own minutes are also above the part of the
//! month's grant ordered from it (the decisions naming it, pro rata by
//! the days they cover), with the same tolerance; a provider the client
//! did not choose has no part. So a provider that goes on billing a
//! client who left is found, the one the client moved to is not, and
//! neither is a client's provider that shares the month with another
//! within each one's part. Where a decision of the month names no
//! provider, the data does not say which one the client chose, and every
//! provider whose visits go on after the month is over is found in turn:
//! the explanation gives each one's part. The municipality's own unit,
//! which makes every client's night visits whichever provider the client
//! chose, is never the one named: it is found when its visit takes the
//! month over, as any provider not chosen. Clients without a decision
//! for the service are not judged.
//!
//! A client who changes provider in the middle of a month is served by
//! both in that month, each for part of it: together about the usual 80 %
//! of the grant, no finding.
//!
//! **Parameters** ([`Params`]): `tolerance_ratio` (0.10),
//! `tolerance_minutes` (60), as `above-granted-hours`'. Severity by the
//! hours above the grant: medium, high from `high_excess_hours` (20),
//! critical from `critical_excess_hours` (80).

use rustc_hash::FxHashMap;

use super::above_granted_hours::{excess, validate_limits};
use super::reference_support::ids_text;
use super::{ClientVisitContext, GrantQuestionContext, Rule, RuleSpec};
use crate::client_care::GrantQuestion;
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::{ClientKey, Day, Month, ServiceType};
use crate::state::sorted_map;
use crate::text::{Text, en, sv};

/// Identity of `client-hours-above-granted` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "client-hours-above-granted",
    version: 2,
    pattern: 15,
    name: "Hours above the granted hours, across the client's providers",
    quiet_days: 45,
    stage: RuleStage::Staff,
};

params! {
    /// Parameters of `client-hours-above-granted`.
    pub struct Params {
        /// Share of the granted minutes allowed above them.
        pub tolerance_ratio: f64 = 0.10,
        /// Minutes allowed above the granted minutes besides the share.
        pub tolerance_minutes: u32 = 60,
        /// Hours above the grant from which a finding is high severity.
        pub high_excess_hours: f64 = 20.0,
        /// Hours above the grant from which a finding is critical.
        pub critical_excess_hours: f64 = 80.0,
    }
}

/// What `client-hours-above-granted` keeps per provider: the client-months
/// found, with the day of the visit that found each.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Per client, service type and month.
    #[serde(serialize_with = "sorted_map")]
    pub found: FxHashMap<(ClientKey, ServiceType, Month), Day>,
}

/// The rule.
pub struct ClientHoursAboveGranted(pub Params);

impl RuleSpec for ClientHoursAboveGranted {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = State;

    fn validate(p: &Params) -> Result<(), String> {
        validate_limits(p.tolerance_ratio, p.tolerance_minutes, p.high_excess_hours, p.critical_excess_hours)
    }

    fn new(params: Params) -> Self {
        ClientHoursAboveGranted(params)
    }

    fn evict(state: &mut State, closed: Day) {
        // Questions are about the month of a visit a few days old at most.
        let oldest = closed.month().0 - 1;
        state.found.retain(|(_, _, month), _| month.0 >= oldest);
    }
}

impl Rule for ClientHoursAboveGranted {
    fn sees_clients(&self) -> bool {
        true
    }

    fn grant_question(&self, ctx: &ClientVisitContext<'_>) -> Option<GrantQuestion> {
        let v = ctx.visit;
        let month = ctx.day.month();
        let own_key = v.provider_key();
        let (mut total, mut own, mut others_max, mut providers) = (0u32, 0u32, 0u32, 0u32);
        let mut evidence = vec![v.event_id.clone()];
        for care in &ctx.client.providers {
            let minutes = care.month_minutes(month, v.service);
            if minutes == 0 {
                continue;
            }
            providers += 1;
            total = total.saturating_add(minutes);
            if care.provider == own_key {
                own = minutes;
            } else {
                others_max = others_max.max(minutes);
                evidence.push(care.last_visit.1.clone());
            }
        }
        (providers >= 2).then_some(GrantQuestion {
            provider: own_key,
            client: v.client,
            service: v.service,
            month,
            check_in: v.check_in,
            total_minutes: total,
            own_minutes: own,
            others_max_minutes: others_max,
            providers,
            evidence,
        })
    }

    fn on_grant_question(&self, ctx: &mut GrantQuestionContext<'_>, out: &mut Vec<Finding>) {
        let q = ctx.question;
        let p = &self.0;
        let Some((granted, decisions)) =
            ctx.reference.granted_minutes(q.client, q.service, q.month.start(), q.month.next().start(), ctx.now)
        else {
            return;
        };
        let over = |minutes| excess(minutes, granted, p.tolerance_ratio, p.tolerance_minutes) > 0;
        // Over together, and only together: a provider over on its own is
        // `visit-above-granted-hours`' finding.
        if !over(q.total_minutes) || over(q.own_minutes) || over(q.others_max_minutes) {
            return;
        }
        // The part of the grant ordered from this provider (the days the
        // client had chosen it): within it, the excess is another's.
        let ordered = ctx.reference.ordered_minutes(
            q.client,
            q.service,
            (q.month.start(), q.month.next().start()),
            ctx.now,
            q.provider.provider,
        );
        if ordered
            .as_ref()
            .is_some_and(|(share, _)| excess(q.own_minutes, *share, p.tolerance_ratio, p.tolerance_minutes) == 0)
        {
            return;
        }
        let excess_minutes = excess(q.total_minutes, granted, p.tolerance_ratio, p.tolerance_minutes);
        let (day, _) = q.check_in.local_day_and_minute();
        let found = &mut ctx.provider.rules.client_hours_above_granted.found;
        if found.contains_key(&(q.client, q.service, q.month)) {
            return;
        }
        found.insert((q.client, q.service, q.month), day);
        let hours = |minutes: u32| f64::from(minutes) / 60.0;
        let (total, own, others, granted_h) =
            (hours(q.total_minutes), hours(q.own_minutes), hours(q.total_minutes - q.own_minutes), granted / 60.0);
        let tolerance = (p.tolerance_ratio * 100.0, f64::from(p.tolerance_minutes) / 60.0);
        let (order_en, order_sv) = match &ordered {
            Some((_, orders)) if orders.is_empty() => (
                " The municipality ordered none of it from this provider: the client chose another.".to_string(),
                " Kommunen beställde inget av den från utföraren: brukaren valde en annan.".to_string(),
            ),
            Some((share, orders)) => (
                format!(
                    " The municipality ordered {} of it from this provider, for the days the client had chosen it \
                     (decisions {}); its part is above that.",
                    en::hours(share / 60.0, 1),
                    ids_text(orders)
                ),
                format!(
                    " Kommunen beställde {} av den från utföraren, för de dagar brukaren hade valt den \
                     (biståndsbeslut {}); utförarens del är över det.",
                    sv::hours(share / 60.0, 1),
                    ids_text(orders)
                ),
            ),
            None => (
                " The decisions do not say which provider the client chose.".to_string(),
                " Biståndsbesluten säger inte vilken utförare brukaren valt.".to_string(),
            ),
        };
        let explanation = Text {
            en: format!(
                "By a visit on {}, {} providers together reported {} of {} for one client in {}, above the {} the \
                 municipality had granted for the whole month, beyond a tolerance of {} plus {}. This provider's \
                 part: {}, within the grant on its own; the other providers': {}. The grant is for all of the client's care, \
                 whoever performs it.{} The visit: {}. Decisions: {}.",
                en::date(day),
                q.providers,
                en::hours(total, 1),
                q.service.name(),
                en::month(q.month),
                en::hours(granted_h, 1),
                en::percent(tolerance.0, 0),
                en::hours_short(tolerance.1),
                en::hours(own, 1),
                en::hours(others, 1),
                order_en,
                q.evidence[0],
                ids_text(&decisions),
            ),
            sv: format!(
                "Genom ett besök den {} rapporterade {} utförare tillsammans {} {} för en brukare under {}, över de \
                 {} som kommunen hade beviljat för hela månaden, utöver en tolerans på {} plus {}. Utförarens del: \
                 {}, inom beviljad tid för sig; de andra utförarnas: {}. Biståndsbeslutet gäller brukarens hela insats, vem som än \
                 utför den.{} Besöket: {}. Biståndsbeslut: {}.",
                sv::date(day),
                q.providers,
                sv::hours(total, 1),
                q.service.name_sv(),
                sv::month(q.month),
                sv::hours(granted_h, 1),
                sv::percent(tolerance.0, 0),
                sv::hours_short(tolerance.1),
                sv::hours(own, 1),
                sv::hours(others, 1),
                order_sv,
                q.evidence[0],
                ids_text(&decisions),
            ),
        };
        let mut evidence = decisions;
        evidence.extend(q.evidence.iter().cloned());
        out.push(
            Finding::new(&INFO, q.provider.provider, q.provider.municipality, (q.month.start(), day.plus(1).start()))
                .severity(Severity::by_cutoffs(
                    hours(excess_minutes),
                    0.0,
                    p.high_excess_hours,
                    p.critical_excess_hours,
                ))
                .score(total / granted_h.max(1.0 / 60.0))
                .observed(total, Unit::Hours)
                .expected(granted_h, Unit::Hours)
                .explain(explanation)
                .evidence(evidence),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::alerting::Alert;
    use crate::model::reference::Fact;
    use crate::model::{Day, EventTime};
    use crate::rules::testkit::{Scenario, assert_bilingual, decision, provider};

    /// The decision of [`decision`]`(1, 10)` naming provider `chosen`,
    /// valid over `[from, to)` days of March (`None`: from January, or
    /// until further notice).
    fn ordered(chosen: u64, from: Option<u32>, to: Option<u32>) -> Fact {
        let Fact::GrantedHours(mut g) = decision(1, 10) else { unreachable!("a decision") };
        g.provider = Some(provider(chosen));
        if let Some(from) = from {
            g.valid.from = at(from, 0);
        }
        g.valid.to = to.map(|to| at(to, 0));
        Fact::GrantedHours(g)
    }

    fn at(day: u32, hour: i64) -> EventTime {
        Day::from_ymd(2026, 3, day).start().plus_secs(hour * 3600)
    }

    /// Client 1, granted 10 h of care a month from January (12 h with the
    /// tolerance), visited every day of March by provider 1 at 8:00 for
    /// `first` minutes and by provider 2 at 9:00 on the days of `second`
    /// for 15 minutes. The reference data is known through 10:00 of each
    /// day after its visits (`lag`: of the day six days before).
    fn run_with(first: i64, second: impl Fn(u32) -> bool, restart_on: Option<u32>, lag: bool) -> Vec<Alert> {
        run_decided(first, second, restart_on, lag, &[("beslut-1", decision(1, 10))])
    }

    /// [`run_with`] under `decisions` (id, fact) instead of the one
    /// naming no provider.
    fn run_decided(
        first: i64,
        second: impl Fn(u32) -> bool,
        restart_on: Option<u32>,
        lag: bool,
        decisions: &[(&str, Fact)],
    ) -> Vec<Alert> {
        let mut s = Scenario::with_reference("client-hours-above-granted");
        for (id, fact) in decisions {
            s.reference(id, Day::from_ymd(2025, 12, 1).start(), fact.clone());
        }
        s.reference_through(2026, 3, 1);
        for day in 1..=31 {
            s.visit().provider(1).staff(1).client(1).day(2026, 3, day).at(8, 0).minutes(first).send();
            if second(day) {
                s.visit().provider(2).staff(2).client(1).day(2026, 3, day).at(9, 0).minutes(15).send();
            }
            if !lag {
                s.reference_through_time(at(day, 10));
            } else if day > 6 {
                s.reference_through_time(at(day - 6, 10));
            }
            if restart_on == Some(day) {
                s.restart();
            }
        }
        s.reference_through(2026, 5, 1);
        s.advance_to(2026, 4, 20);
        s.alerts()
    }

    fn run(first: i64, second: impl Fn(u32) -> bool, restart_on: Option<u32>) -> Vec<Alert> {
        run_with(first, second, restart_on, false)
    }

    #[test]
    fn two_providers_together_over_the_grant_are_both_found() {
        // 15 + 15 minutes a day: 12 h (720 minutes) is passed by provider
        // 1's visit on the 25th (735), then by provider 2's (750); each has
        // 6 h 15 min of its own, within the grant.
        let alerts = run(15, |_| true, None);
        let opened: Vec<_> = alerts
            .iter()
            .filter(|a| a.status.name() == "opened")
            .map(|a| (a.provider, a.detected_at, a.severity.name(), a.observed.value, a.expected.value))
            .collect();
        // Judged at the check-in plus the 6 h of `core.reference.visit_grace`.
        assert_eq!(
            opened,
            [(provider(1), at(25, 14), "medium", 12.25, 10.0), (provider(2), at(25, 15), "medium", 12.5, 10.0)],
            "{alerts:?}"
        );
        assert_eq!(alerts.len(), 2, "once per client-month and provider: {alerts:?}");
        let terms = ["utförare", "brukare", "beviljat", "biståndsbeslut", "tolerans"];
        assert_bilingual(&alerts[0].explanation, &terms);
        let evidence: Vec<&str> = alerts[1].evidence.iter().map(|e| e.as_str()).collect();
        assert_eq!(evidence.first(), Some(&"beslut-1"), "{evidence:?}");
        assert_eq!(evidence.len(), 3, "the decision, the visit and the other provider's newest visit: {evidence:?}");
    }

    #[test]
    fn late_reference_data_or_a_restart_while_questions_wait_changes_nothing() {
        let on_time = run(15, |_| true, None);
        assert_eq!(on_time.len(), 2);
        assert_eq!(run(15, |_| true, Some(25)), on_time);
        assert_eq!(run_with(15, |_| true, None, true), on_time);
        assert_eq!(run_with(15, |_| true, Some(28), true), on_time);
    }

    #[test]
    fn within_the_tolerance_or_over_alone_is_not_this_rules() {
        // Provider 2 on the first 16 days only: 705 minutes in all, above
        // the 600 granted but within the tolerance.
        assert!(run(15, |d| d <= 16, None).is_empty());
        // A change of provider on the 16th: 15 days of 20 minutes and 16
        // of 15 by the next.
        assert!(run(20, |_| false, None).is_empty());
        // Provider 1 over the grant on its own (30 minutes a day: 750 by
        // the 25th) before provider 2 comes on the 28th:
        // `visit-above-granted-hours`' finding, not this rule's, for either.
        assert!(run(30, |d| d == 28, None).is_empty());
        // But provider 2 on the 7th, 14th and 21st takes the two over
        // together on the 23rd (690 + 45), before provider 1 alone.
        let found: Vec<_> = run(30, |d| d % 7 == 0, None).iter().map(|a| (a.provider, a.detected_at)).collect();
        assert_eq!(found, [(provider(1), at(23, 14))]);
    }

    #[test]
    fn the_provider_the_client_chose_is_not_found_the_other_is() {
        // Both every day, as in the first test: the municipality's order
        // names provider 2, so only provider 1 is found, and the other way
        // round.
        for (chosen, found) in [(2, 1), (1, 2)] {
            let alerts = run_decided(15, |_| true, None, false, &[("beslut-1", ordered(chosen, None, None))]);
            let opened: Vec<_> = alerts.iter().map(|a| (a.provider, a.status.name())).collect();
            assert_eq!(opened, [(provider(found), "opened")], "chosen {chosen}: {alerts:?}");
            let explanation = &alerts[0].explanation;
            assert!(explanation.en.contains("ordered none of it from this provider"), "{}", explanation.en);
            assert!(explanation.sv.contains("beställde inget"), "{}", explanation.sv);
        }
    }

    #[test]
    fn a_provider_that_goes_on_after_its_client_moved_is_found_not_the_new_one() {
        // Provider 1's order ends on the 10th, provider 2's starts then:
        // provider 1 goes on visiting (15 minutes a day) and provider 2
        // visits from the 10th. Together over the grant's 720 minutes with
        // tolerance by provider 1's visit on the 29th (435 + 300); only
        // provider 1 is found.
        let decisions = [("beslut-1", ordered(1, None, Some(10))), ("beslut-2", ordered(2, Some(10), None))];
        let alerts = run_decided(15, |d| d >= 10, None, false, &decisions);
        let found: Vec<_> = alerts.iter().map(|a| a.provider).collect();
        assert_eq!(found, [provider(1)], "{alerts:?}");
        // Its part: the 9 days of March before the 10th, of 10 h a month.
        assert!(
            alerts[0].explanation.en.contains("ordered 2.9 hours of it from this provider"),
            "{}",
            alerts[0].explanation.en
        );
        // The same care, with decisions that name no provider: both.
        let mut unnamed = decisions.clone();
        for (_, fact) in &mut unnamed {
            if let Fact::GrantedHours(g) = fact {
                g.provider = None;
            }
        }
        let found: std::collections::BTreeSet<_> =
            run_decided(15, |d| d >= 10, None, false, &unnamed).iter().map(|a| a.provider).collect();
        assert_eq!(found, [provider(1), provider(2)].into_iter().collect());
    }

    #[test]
    fn a_provider_above_the_part_ordered_from_it_is_found() {
        // The client moves from provider 1 to provider 2 on the 10th:
        // provider 1 visits (15 minutes) until the 9th, provider 2 (30
        // minutes) from the 10th. Provider 2's part is 22 of March's 31
        // days of 10 h (7.1 h; 8.8 h with the tolerance): its 10 h by the
        // 29th are above it, and take the month over the grant's 12 h with
        // provider 1's 2.25 h. Within the grant on its own.
        let decisions = [("beslut-1", ordered(1, None, Some(10))), ("beslut-2", ordered(2, Some(10), None))];
        let care = |minutes_2: i64| {
            let mut s = Scenario::with_reference("client-hours-above-granted");
            for (id, fact) in &decisions {
                s.reference(id, Day::from_ymd(2025, 12, 1).start(), fact.clone());
            }
            s.reference_through(2026, 3, 1);
            for day in 1..=31 {
                if day < 10 {
                    s.visit().provider(1).staff(1).client(1).day(2026, 3, day).at(8, 0).minutes(15).send();
                } else {
                    s.visit().provider(2).staff(2).client(1).day(2026, 3, day).at(8, 0).minutes(minutes_2).send();
                }
                s.reference_through_time(at(day, 10));
            }
            s.reference_through(2026, 5, 1);
            s.advance_to(2026, 4, 20);
            s.alerts()
        };
        let alerts = care(30);
        let found: Vec<_> = alerts.iter().map(|a| (a.provider, a.detected_at, a.observed.value)).collect();
        assert_eq!(found, [(provider(2), at(29, 14), 12.25)], "{alerts:?}");
        assert!(alerts[0].explanation.en.contains("ordered 7.1 hours of it"), "{}", alerts[0].explanation.en);
        // 25 minutes a day: 9.2 h by the 31st, above its part, but 11.4 h
        // in all, within the grant and its tolerance: nobody.
        assert!(care(25).is_empty());
    }
}
