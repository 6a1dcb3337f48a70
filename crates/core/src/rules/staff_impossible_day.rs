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

        let (severity, observed, limit, what, window_days) = if crossed(p.hard_day_hours, today) {
            (Severity::Critical, today, p.hard_day_hours, "in one day, more than the day has", 1)
        } else if crossed(p.max_day_hours, today) {
            (Severity::Medium, today, p.max_day_hours, "in one day", 1)
        } else if crossed(p.max_week_hours, week) {
            (Severity::Medium, week, p.max_week_hours, "in seven days", 7)
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
            out.push(self.finding(
                ctx,
                Severity::Medium,
                f64::from(run),
                f64::from(run - 1),
                Unit::Days,
                (start, end),
                format!("One staff member has visits registered on {run} days in a row without a day off."),
            ));
            return;
        } else {
            return;
        };
        let window = (day.plus(1 - window_days).start(), day.plus(1).start());
        let text = format!(
            "One staff member has {observed:.1} hours of visits registered {what} (limit {limit:.0} hours), \
             including time report {}.",
            v.event_id
        );
        out.push(self.finding(ctx, severity, observed, limit, Unit::Hours, window, text));
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
        explanation: String,
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
    }
}
