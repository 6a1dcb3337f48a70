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
//! `window_days` (7), `min_visits` (3). Severity: medium, high from 10,
//! critical from 30 in the window.

use super::catalogue::NIGHT_VISITS_PRIVATE_PROVIDER as INFO;
use super::{Rule, RuleInfo, VisitContext, severity_by};
use crate::alerting::{Finding, Measure};
use crate::model::ServiceType;

/// Parameters of `night-visits-private-provider`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Start of free-choice hours, local "HH:MM".
    pub free_choice_start: String,
    /// End of free-choice hours, local "HH:MM".
    pub free_choice_end: String,
    /// Minutes of slack on both ends.
    pub grace_minutes: u32,
    /// Organisation-number prefixes of municipal providers.
    pub municipal_prefixes: Vec<String>,
    /// Service types that may be given at night by anyone.
    pub exempt_services: Vec<ServiceType>,
    /// Window length, days.
    pub window_days: u32,
    /// Night visits in the window that make a finding.
    pub min_visits: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            free_choice_start: "06:00".into(),
            free_choice_end: "22:00".into(),
            grace_minutes: 30,
            municipal_prefixes: vec!["2120".into()],
            exempt_services: vec![ServiceType::PersonalAssistance],
            window_days: 7,
            min_visits: 3,
        }
    }
}

fn minute_of_day(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Params {
    /// Checks the times and prefixes.
    pub fn validate(&self) -> Result<(), String> {
        for t in [&self.free_choice_start, &self.free_choice_end] {
            minute_of_day(t).ok_or_else(|| format!("night_visits_private_provider: {t:?} is not HH:MM"))?;
        }
        for p in &self.municipal_prefixes {
            if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("night_visits_private_provider: prefix {p:?} is not 1-10 digits"));
            }
        }
        Ok(())
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

impl Rule for NightVisitsPrivateProvider {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn on_visit(&self, ctx: &mut VisitContext<'_>, out: &mut Vec<Finding>) {
        let v = ctx.visit;
        if !self.is_night(ctx.minute_of_day)
            || self.params.exempt_services.contains(&v.service)
            || self.is_municipal(v.provider)
        {
            return;
        }
        let Some(bucket) = ctx.day_bucket() else { return };
        bucket.night += 1;
        ctx.provider.recent_night.push(&v.event_id);
        let day = ctx.day;
        let count = ctx.provider.days.sum(day, self.params.window_days, |b| u64::from(b.night));
        if count < u64::from(self.params.min_visits) {
            return;
        }
        out.push(Finding {
            rule: &INFO,
            provider: v.provider,
            municipality: v.municipality,
            severity: severity_by(count as f64, 0.0, 10.0, 30.0).max(crate::alerting::Severity::Medium),
            score: count as f64,
            window: (day.plus(1 - self.params.window_days as i32).start(), day.plus(1).start()),
            observed: Measure::new(count as f64, "visits"),
            expected: Measure::new(f64::from(self.params.min_visits - 1), "visits"),
            explanation: format!(
                "This private provider registered {count} visits in {} days that started outside free-choice hours \
                 ({}–{}, ±{} min), the latest being time report {} ({}). Night care is the municipal night patrol's.",
                self.params.window_days,
                self.params.free_choice_start,
                self.params.free_choice_end,
                self.params.grace_minutes,
                v.event_id,
                v.service.name()
            ),
            evidence: ctx.provider.recent_night.to_vec(),
        });
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
