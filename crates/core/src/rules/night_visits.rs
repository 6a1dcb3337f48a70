//! Pattern 12: night visits by a private provider.
//!
//! **Fraud it catches**: a private provider registering visits at night,
//! outside the hours its customer-choice contract covers (in Umeå free
//! choice covers 06–22; nights are the municipal night patrol's). Such
//! visits are either not billable or not real.
//!
//! **Statistic**: per visit, whether its check-in (Swedish local time) is
//! outside `[free_choice_start - grace, free_choice_end + grace)` and the
//! provider is private (its organisation number does not start with one of
//! `municipal_prefixes`) and the service type is not exempt. Counted per
//! provider and day; fires when the last `window_days` hold `min_visits`.
//!
//! **Parameters** ([`Params`]): `free_choice_start` ("06:00"),
//! `free_choice_end` ("22:00"), `grace_minutes` (30: a visit that runs
//! late), `municipal_prefixes` (["2120"]: kommuner), `exempt_services`
//! (personal assistance, which is not under LOV and runs around the clock),
//! `window_days` (7), `min_visits` (3). Severity: medium, high from
//! `high_visits` (10), critical from `critical_visits` (30) in the window.

use super::{Rule, RuleSpec, VisitContext, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::model::ServiceType;
use crate::text::{Text, en, sv};

/// Identity of `night-visits-private-provider` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "night-visits-private-provider",
    version: 1,
    pattern: 12,
    name: "Night visits by a private provider",
    quiet_days: 14,
    stage: RuleStage::Provider,
};

/// This rule's slot of per-day counters (see [`crate::state::RULE_SLOTS`]).
const SLOT: usize = 2;

params! {
    /// Parameters of `night-visits-private-provider`.
    pub struct Params {
        /// Start of free-choice hours, local "HH:MM".
        pub free_choice_start: String = "06:00".into(),
        /// End of free-choice hours, local "HH:MM".
        pub free_choice_end: String = "22:00".into(),
        /// Minutes of slack on both ends.
        pub grace_minutes: u32 = 30,
        /// Organisation-number prefixes of municipal providers.
        pub municipal_prefixes: Vec<String> = vec!["2120".into()],
        /// Service types that may be given at night by anyone.
        pub exempt_services: Vec<ServiceType> = vec![ServiceType::PersonalAssistance],
        /// Window length, days.
        pub window_days: u32 = 7,
        /// Night visits in the window that make a finding.
        pub min_visits: u32 = 3,
        /// Night visits in the window from which a finding is high severity.
        pub high_visits: u32 = 10,
        /// Night visits in the window from which a finding is critical.
        pub critical_visits: u32 = 30,
    }
}

fn minute_of_day(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Params {
    /// Checks the times, prefixes, window and counts.
    pub fn validate(&self) -> Result<(), String> {
        for (field, t) in [("free_choice_start", &self.free_choice_start), ("free_choice_end", &self.free_choice_end)] {
            minute_of_day(t).ok_or_else(|| format!("{field} = {t:?} is not HH:MM"))?;
        }
        if self.grace_minutes > 720 {
            return Err(format!("grace_minutes must be <= 720 (is {})", self.grace_minutes));
        }
        for p in &self.municipal_prefixes {
            if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("municipal_prefixes: prefix {p:?} is not 1-10 digits"));
            }
        }
        check::days("window_days", self.window_days)?;
        check::positive_count("min_visits", u64::from(self.min_visits))?;
        check::ascending(&[
            ("min_visits", f64::from(self.min_visits)),
            ("high_visits", f64::from(self.high_visits)),
            ("critical_visits", f64::from(self.critical_visits)),
        ])
    }
}

/// The rule, with its parameters parsed once.
pub struct NightVisitsPrivateProvider {
    params: Params,
    /// First minute of the day (local) that is not night.
    open: u32,
    /// First minute of the evening that is night again.
    close: u32,
    /// (number of digits, value) of each municipal prefix.
    prefixes: Vec<(u32, u64)>,
}

impl NightVisitsPrivateProvider {
    /// The rule with `params` (validated with [`Params::validate`]).
    pub fn new(params: Params) -> Self {
        let start = minute_of_day(&params.free_choice_start).unwrap_or(360);
        let end = minute_of_day(&params.free_choice_end).unwrap_or(1320);
        let prefixes =
            params.municipal_prefixes.iter().filter_map(|p| Some((p.len() as u32, p.parse::<u64>().ok()?))).collect();
        NightVisitsPrivateProvider {
            open: start.saturating_sub(params.grace_minutes),
            close: (end + params.grace_minutes).min(1440),
            prefixes,
            params,
        }
    }

    fn is_municipal(&self, provider: crate::model::ProviderId) -> bool {
        self.prefixes.iter().any(|(digits, value)| provider.leading_digits(*digits) == *value)
    }

    fn is_night(&self, minute: u32) -> bool {
        minute < self.open || minute >= self.close
    }
}

impl RuleSpec for NightVisitsPrivateProvider {
    const INFO: &'static RuleInfo = &INFO;
    const SLOT: Option<usize> = Some(SLOT);
    type Params = Params;
    type ProviderState = ();

    fn validate(params: &Params) -> Result<(), String> {
        params.validate()
    }

    fn new(params: Params) -> Self {
        NightVisitsPrivateProvider::new(params)
    }

    fn window_days(params: &Params) -> u32 {
        params.window_days
    }
}

impl Rule for NightVisitsPrivateProvider {
    fn on_visit(&self, ctx: &mut VisitContext<'_>, out: &mut Vec<Finding>) {
        let v = ctx.visit;
        if !self.is_night(ctx.minute_of_day)
            || self.params.exempt_services.contains(&v.service)
            || self.is_municipal(v.provider)
        {
            return;
        }
        let Some(bucket) = ctx.day_bucket() else { return };
        bucket.rule_counts[SLOT] += 1;
        ctx.provider.rule_recent[SLOT].push(ctx.day, &v.event_id);
        let day = ctx.day;
        let p = &self.params;
        let count = ctx.provider.days.sum(day, p.window_days, |b| u64::from(b.rule_counts[SLOT]));
        if count < u64::from(p.min_visits) {
            return;
        }
        let window = (day.plus(1 - p.window_days as i32).start(), day.plus(1).start());
        let severity = Severity::by_cutoffs(count as f64, 0.0, f64::from(p.high_visits), f64::from(p.critical_visits))
            .max(Severity::Medium);
        let (days, grace, least) = (u64::from(p.window_days), u64::from(p.grace_minutes), u64::from(p.min_visits));
        let explanation = Text {
            en: format!(
                "This private provider registered {} in the {} through {} that started outside free-choice hours \
                 ({}–{}, ±{} min), the latest being time report {} ({}). Night care is the municipal night \
                 patrol's. ({} or more in {} make a finding.)",
                en::count(count, "visit", "visits"),
                en::count(days, "day", "days"),
                en::date(day),
                en::clock(&p.free_choice_start),
                en::clock(&p.free_choice_end),
                en::int(grace),
                v.event_id,
                v.service.name(),
                en::int(least),
                en::count(days, "day", "days"),
            ),
            sv: format!(
                "Den privata utföraren har registrerat {} under de {} till och med {} som började utanför \
                 valfrihetstiden (kl. {}–{}, ±{} min), det senaste i tidrapport {} ({}). Insatser nattetid utförs av \
                 kommunens nattpatrull. ({} eller fler på {} ger en iakttagelse.)",
                sv::count(count, "besök", "besök"),
                sv::count(days, "dag", "dagarna"),
                sv::date(day),
                sv::clock(&p.free_choice_start),
                sv::clock(&p.free_choice_end),
                sv::int(grace),
                v.event_id,
                v.service.name_sv(),
                sv::int(least),
                sv::count(days, "dag", "dagar"),
            ),
        };
        out.push(
            Finding::new(&INFO, v.provider, v.municipality, window)
                .severity(severity)
                .score(count as f64)
                .observed(count as f64, Unit::Visits)
                .expected(f64::from(p.min_visits.saturating_sub(1)), Unit::Visits)
                .explain(explanation)
                .evidence(ctx.provider.rule_recent[SLOT].through(day)),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::model::ServiceType;
    use crate::rules::testkit::{MUNICIPAL, Scenario};

    #[test]
    fn three_visits_at_two_in_the_morning_fire() {
        let mut s = Scenario::only("night-visits-private-provider");
        for day in 2..=4 {
            s.visit().client(day as u64).day(2026, 3, day).at(2, 0).send();
        }
        assert_eq!(s.alerts().len(), 1);
        let terms = ["privata utföraren", "3 besök", "valfrihetstiden", "kl. 06.00–22.00", "tidrapport", "nattpatrull"];
        crate::rules::testkit::assert_bilingual(&s.alerts()[0].explanation, &terms);
    }

    #[test]
    fn late_evening_visits_the_municipal_night_patrol_and_assistance_do_not_fire() {
        let mut s = Scenario::only("night-visits-private-provider");
        for day in 2..=8 {
            s.visit().day(2026, 3, day).at(22, 10).send();
            s.visit().provider(MUNICIPAL).service(ServiceType::NightPatrol).day(2026, 3, day).at(2, 0).send();
            s.visit().service(ServiceType::PersonalAssistance).day(2026, 3, day).at(3, 0).send();
        }
        assert!(s.alerts().is_empty());
    }

    #[test]
    fn bad_times_are_rejected() {
        let p = super::Params { free_choice_end: "25:00".into(), ..Default::default() };
        assert!(p.validate().is_err());
    }
}
