//! Pattern 3: impossible day / no rest.
//!
//! **Fraud it catches**: hours registered on staff who cannot have worked
//! them: more than 24 hours in a day (physically impossible), or days and
//! weeks far beyond the Working Hours Act (arbetstidslagen), or weeks
//! without a day off, which point to hours invented on real employees.
//!
//! **Statistic**: per staff member (across providers), visit minutes per
//! local day (by check-in day) kept for `staff_horizon_days`. Fires when a
//! visit makes the day cross `max_day_hours` (soft) or `hard_day_hours`
//! (hard), the last 7 days cross `max_week_hours`, or the staff member has
//! worked `max_consecutive_days` days in a row.
//!
//! **Parameters** ([`Params`]): `hard_day_hours` (24), `max_day_hours`
//! (13), `max_week_hours` (60), `max_consecutive_days` (14). Severity:
//! critical for the hard limit, medium otherwise.

use super::{Rule, RuleSpec, StaffVisitContext, check};
use crate::finding::{Finding, RuleInfo, RuleStage, Severity, Unit};
use crate::text::{Text, en, sv};

/// Identity of `staff-impossible-day` (part of the alert contract).
pub static INFO: RuleInfo = RuleInfo {
    id: "staff-impossible-day",
    version: 2,
    pattern: 3,
    name: "Impossible day / no rest",
    quiet_days: 14,
    stage: RuleStage::Staff,
};

params! {
    /// Parameters of `staff-impossible-day`.
    pub struct Params {
        /// Hours in one day that cannot be worked.
        pub hard_day_hours: f64 = 24.0,
        /// Hours in one day beyond any legal schedule.
        pub max_day_hours: f64 = 13.0,
        /// Hours in seven days beyond any legal schedule.
        pub max_week_hours: f64 = 60.0,
        /// Days in a row without a day off.
        pub max_consecutive_days: u32 = 14,
    }
}

/// The rule.
pub struct StaffImpossibleDay(pub Params);

impl RuleSpec for StaffImpossibleDay {
    const INFO: &'static RuleInfo = &INFO;
    type Params = Params;
    type ProviderState = ();

    fn validate(p: &Params) -> Result<(), String> {
        check::positive("max_day_hours", p.max_day_hours)?;
        check::ascending(&[("max_day_hours", p.max_day_hours), ("hard_day_hours", p.hard_day_hours)])?;
        check::within("hard_day_hours", p.hard_day_hours, 1.0, 24.0)?;
        check::ascending(&[("max_day_hours", p.max_day_hours), ("max_week_hours", p.max_week_hours)])?;
        check::within("max_week_hours", p.max_week_hours, 1.0, 168.0)?;
        if !(2..=365).contains(&p.max_consecutive_days) {
            return Err(format!("max_consecutive_days must be within 2..=365 (is {})", p.max_consecutive_days));
        }
        Ok(())
    }

    fn new(params: Params) -> Self {
        StaffImpossibleDay(params)
    }
}

impl Rule for StaffImpossibleDay {
    fn on_staff_visit(&self, ctx: &StaffVisitContext<'_>, out: &mut Vec<Finding>) {
        let p = &self.0;
        let v = ctx.visit;
        let day = ctx.day;
        let added = f64::from(v.duration().0) / 60.0;
        let today = f64::from(ctx.staff.days.get(day)) / 60.0;
        let week = ctx.staff.days.sum(day, 7, |m| u64::from(*m)) as f64 / 60.0;
        let crossed = |limit: f64, total: f64| total > limit && total - added <= limit;

        /// Which limit the visit crossed.
        enum Limit {
            Hard,
            Day,
            Week,
        }
        let (severity, observed, limit, which, window_days) = if crossed(p.hard_day_hours, today) {
            (Severity::Critical, today, p.hard_day_hours, Limit::Hard, 1)
        } else if crossed(p.max_day_hours, today) {
            (Severity::Medium, today, p.max_day_hours, Limit::Day, 1)
        } else if crossed(p.max_week_hours, week) {
            (Severity::Medium, week, p.max_week_hours, Limit::Week, 7)
        } else if today - added <= 0.0 {
            // First visit of the day: count the days in a row worked.
            let mut run = 0u32;
            while run <= p.max_consecutive_days && ctx.staff.days.get(day.plus(-(run as i32))) > 0 {
                run += 1;
            }
            if run != p.max_consecutive_days {
                return;
            }
            let (start, end) = (day.plus(1 - run as i32).start(), day.plus(1).start());
            let (days, expected) = (u64::from(run), u64::from(run - 1));
            let explanation = Text {
                en: format!(
                    "One staff member has visits registered on {} in a row, through {}, without a day off (at most \
                     {} in a row are expected), including time report {}.",
                    en::count(days, "day", "days"),
                    en::date(day),
                    en::int(expected),
                    v.event_id
                ),
                sv: format!(
                    "En medarbetare har registrerade besök {} i rad till och med {} utan någon ledig dag (högst {} i \
                     rad förväntas), bland annat tidrapport {}.",
                    sv::count(days, "dag", "dagar"),
                    sv::date(day),
                    sv::int(expected),
                    v.event_id
                ),
            };
            out.push(self.finding(
                ctx,
                Severity::Medium,
                f64::from(run),
                f64::from(run - 1),
                Unit::Days,
                (start, end),
                explanation,
            ));
            return;
        } else {
            return;
        };
        let first = day.plus(1 - window_days);
        let window = (first.start(), day.plus(1).start());
        let (hours_en, hours_sv, limit_en, limit_sv) =
            (en::hours(observed, 1), sv::hours(observed, 1), en::hours_short(limit), sv::hours_short(limit));
        let explanation = match which {
            Limit::Hard => Text {
                en: format!(
                    "One staff member has {hours_en} of visits registered on {}, more than a day has (limit \
                     {limit_en}), including time report {}.",
                    en::date(day),
                    v.event_id
                ),
                sv: format!(
                    "En medarbetare har besök på sammanlagt {hours_sv} registrerade under dygnet {}, fler timmar \
                     än ett dygn har (gräns {limit_sv}), bland annat tidrapport {}.",
                    sv::date(day),
                    v.event_id
                ),
            },
            Limit::Day => Text {
                en: format!(
                    "One staff member has {hours_en} of visits registered on {} (limit {limit_en}), including \
                     time report {}.",
                    en::date(day),
                    v.event_id
                ),
                sv: format!(
                    "En medarbetare har besök på sammanlagt {hours_sv} registrerade under dygnet {} (gräns \
                     {limit_sv}), bland annat tidrapport {}.",
                    sv::date(day),
                    v.event_id
                ),
            },
            Limit::Week => Text {
                en: format!(
                    "One staff member has {hours_en} of visits registered in {}, {} to {} (limit {limit_en}), \
                     including time report {}.",
                    en::count(window_days as u64, "day", "days"),
                    en::date(first),
                    en::date(day),
                    v.event_id
                ),
                sv: format!(
                    "En medarbetare har besök på sammanlagt {hours_sv} registrerade under {}, {} till och med {} \
                     (gräns {limit_sv}), bland annat tidrapport {}.",
                    sv::count(window_days as u64, "dag", "dagar"),
                    sv::date(first),
                    sv::date(day),
                    v.event_id
                ),
            },
        };
        out.push(self.finding(ctx, severity, observed, limit, Unit::Hours, window, explanation));
    }
}

impl StaffImpossibleDay {
    #[allow(clippy::too_many_arguments)]
    fn finding(
        &self,
        ctx: &StaffVisitContext<'_>,
        severity: Severity,
        observed: f64,
        expected: f64,
        unit: Unit,
        window: (crate::model::EventTime, crate::model::EventTime),
        explanation: Text,
    ) -> Finding {
        let v = ctx.visit;
        let mut evidence: Vec<_> =
            ctx.staff.recent.iter().filter(|r| r.check_in.day() == ctx.day).map(|r| r.event_id.clone()).collect();
        evidence.push(v.event_id.clone());
        Finding::new(&INFO, v.provider, v.municipality, window)
            .severity(severity)
            .score(observed / expected.max(1.0))
            .observed(observed, unit)
            .expected(expected, unit)
            .explain(explanation)
            .evidence(evidence)
    }
}

#[cfg(test)]
mod tests {
    use crate::alerting::Severity;
    use crate::rules::testkit::Scenario;

    #[test]
    fn twenty_five_hours_in_a_day_is_critical() {
        let mut s = Scenario::only("staff-impossible-day");
        for (i, h) in [0, 6, 12, 18].into_iter().enumerate() {
            let minutes = if i == 3 { 359 + 60 } else { 360 };
            s.visit().staff(1).client(i as u64).day(2026, 3, 2).at(h, 0).minutes(minutes).send();
        }
        s.settle();
        let alerts = s.alerts();
        assert_eq!(alerts.last().map(|a| a.severity), Some(Severity::Critical));
        assert!(alerts.last().unwrap().observed.value > 24.0);
        let terms = ["medarbetare", "besök", "dygn", "timmar", "tidrapport", "2026-03-02"];
        crate::rules::testkit::assert_bilingual(&alerts.last().unwrap().explanation, &terms);
    }

    #[test]
    fn a_fourteen_hour_day_and_a_sixty_six_hour_week_explain_themselves_in_both_languages() {
        let mut s = Scenario::only("staff-impossible-day");
        s.visit().staff(1).client(1).day(2026, 3, 2).at(6, 0).minutes(14 * 60).send();
        for day in 9..=14 {
            s.visit().provider(1).staff(2).client(2).day(2026, 3, day).at(7, 0).minutes(11 * 60).send();
        }
        s.settle();
        let alerts = s.alerts();
        let observed: Vec<f64> = alerts.iter().map(|a| a.observed.value).collect();
        assert_eq!(observed, [14.0, 66.0]);
        let day = ["medarbetare", "besök", "dygn", "14,0 timmar", "gräns 13 timmar", "2026-03-02"];
        crate::rules::testkit::assert_bilingual(&alerts[0].explanation, &day);
        let week = ["medarbetare", "66,0 timmar", "7 dagar", "2026-03-08 till och med 2026-03-14", "gräns 60 timmar"];
        crate::rules::testkit::assert_bilingual(&alerts[1].explanation, &week);
    }

    #[test]
    fn a_long_but_legal_day_and_a_normal_week_do_not_fire() {
        let mut s = Scenario::only("staff-impossible-day");
        for day in 2..=6 {
            s.visit().staff(1).client(1).day(2026, 3, day).at(7, 0).minutes(12 * 60).send();
        }
        s.settle();
        assert!(s.alerts().is_empty(), "5 × 12 h = 60 h is at, not over, the weekly limit");
    }

    #[test]
    fn fourteen_days_in_a_row_fires_and_thirteen_do_not() {
        let mut s = Scenario::only("staff-impossible-day");
        for day in 1..=13 {
            s.visit().staff(1).client(1).day(2026, 3, day).at(9, 0).minutes(120).send();
        }
        s.settle();
        assert!(s.alerts().is_empty());
        s.visit().staff(1).client(1).day(2026, 3, 14).at(9, 0).minutes(120).send();
        s.settle();
        assert_eq!(s.alerts().len(), 1);
        let terms = ["medarbetare", "14 dagar i rad", "ledig dag", "tidrapport", "2026-03-14"];
        crate::rules::testkit::assert_bilingual(&s.alerts()[0].explanation, &terms);
    }
}
