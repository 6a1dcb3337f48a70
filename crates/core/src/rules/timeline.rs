//! Rule configurations that change while the service runs, decided by
//! event time.
//!
//! The rules' parameters (thresholds, severity cut-offs, which rules are
//! switched off) form a *timeline* of versions. Version 0 is the
//! configuration the engine was built with (`[core.rules]`), in force from
//! the beginning of time. Each later version is a complete
//! [`RulesConfig`] with an effective event time: a decision made at event
//! time `t` (a visit at its provider's clock, an invoice when its period
//! is complete, a day at its close) is made under the version with the
//! highest number among those whose effective time is at or before `t`.
//!
//! A decision therefore depends on the event times involved, never on
//! when a version reached the engine, provided the engine knows every
//! version effective at or before the decisions it makes. The shell
//! guarantees that (see the service's rules topic), and replay knows the
//! whole history from the start: the same inputs and the same history
//! give the same alerts, live or replayed, for any partition count.

use std::sync::Arc;

use super::{Rule, RuleStage, RulesConfig};
use crate::model::EventTime;

/// One version of the rules' configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RulesVersion {
    /// Its number: 0 is the configuration the engine was built with; a
    /// later version has a higher number.
    pub version: u32,
    /// Decisions at or after this event time are made under it (unless a
    /// higher version is in force by then).
    pub effective_from: EventTime,
    /// The complete configuration of every rule.
    pub rules: RulesConfig,
}

/// A version with its rules built, shared between the stages of a
/// partition and between partitions.
struct Built {
    version: u32,
    effective_from: EventTime,
    provider: Vec<Box<dyn Rule>>,
    staff: Vec<Box<dyn Rule>>,
    /// The widest window its rules read, in days.
    window_days: u32,
    /// Its configuration.
    rules: RulesConfig,
}

/// The versions an engine decides under, with their rules built. Cheap to
/// clone (the built rules are shared).
#[derive(Clone)]
pub struct RuleTimeline {
    /// By version number, ascending; the first is version 0.
    versions: Vec<Arc<Built>>,
}

/// Why a version cannot join a timeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimelineError {
    /// Its number is not above every version's already in the timeline.
    #[error("version {version} is not above the newest version {newest}")]
    NotNewer {
        /// The version offered.
        version: u32,
        /// The highest version in the timeline.
        newest: u32,
    },
    /// Its configuration fails a rule's range checks.
    #[error("{0}")]
    Invalid(String),
    /// It changes how many days a rule's window reads: the state the
    /// engine keeps was sized for the windows of version 0.
    #[error(
        "it changes the widest window a rule reads from {base} to {offered} days, which needs the state rebuilt: \
         change it in the service's configuration file instead"
    )]
    WindowChanged {
        /// Days read by version 0's widest window.
        base: u32,
        /// Days read by the offered version's widest window.
        offered: u32,
    },
}

impl RuleTimeline {
    /// Version 0 only: `base` (assumed validated), from the beginning of time.
    pub fn new(base: &RulesConfig) -> Self {
        RuleTimeline { versions: vec![Arc::new(Built::of(0, EventTime(i64::MIN), base))] }
    }

    /// Checks that `version` could join this timeline, without adding it.
    pub fn check(&self, version: &RulesVersion) -> Result<(), TimelineError> {
        let newest = self.newest();
        if version.version <= newest {
            return Err(TimelineError::NotNewer { version: version.version, newest });
        }
        version.rules.validate().map_err(TimelineError::Invalid)?;
        let base = self.base_window_days();
        let offered = version.rules.widest_window_days();
        if offered != base {
            return Err(TimelineError::WindowChanged { base, offered });
        }
        Ok(())
    }

    /// Adds `version` if it can join (see [`check`](Self::check)).
    pub fn add(&mut self, version: &RulesVersion) -> Result<(), TimelineError> {
        self.check(version)?;
        self.versions.push(Arc::new(Built::of(version.version, version.effective_from, &version.rules)));
        Ok(())
    }

    /// The highest version number in the timeline.
    pub fn newest(&self) -> u32 {
        self.versions.last().map_or(0, |b| b.version)
    }

    /// The versions in the timeline: number and effective time.
    pub fn versions(&self) -> impl Iterator<Item = (u32, EventTime)> + '_ {
        self.versions.iter().map(|b| (b.version, b.effective_from))
    }

    /// The configuration of version `version` (version 0's if it is not in
    /// the timeline).
    pub fn rules_of(&self, version: u32) -> &RulesConfig {
        let built = self.versions.iter().find(|b| b.version == version).unwrap_or(&self.versions[0]);
        &built.rules
    }

    /// The version in force for a decision at `t` and its rules of `stage`.
    pub fn at(&self, t: EventTime, stage: RuleStage) -> (u32, &[Box<dyn Rule>]) {
        let built = self.versions.iter().rev().find(|b| b.effective_from <= t).unwrap_or(&self.versions[0]);
        let rules = match stage {
            RuleStage::Provider => &built.provider,
            RuleStage::Staff => &built.staff,
        };
        (built.version, rules)
    }

    /// Whether the base configuration (version 0) runs a client rule (see
    /// [`super::Rule::sees_clients`]): the provider stage sends the staff
    /// stage the client copies of its visits only then. The base, not the
    /// version in force, so that whether a visit is sent never depends on
    /// which later versions are known yet.
    pub fn has_client_rules(&self) -> bool {
        self.versions[0].staff.iter().any(|r| r.sees_clients())
    }

    fn base_window_days(&self) -> u32 {
        self.versions[0].window_days
    }
}

impl Built {
    fn of(version: u32, effective_from: EventTime, rules: &RulesConfig) -> Self {
        Built {
            version,
            effective_from,
            provider: rules.build_for(RuleStage::Provider),
            staff: rules.build_for(RuleStage::Staff),
            window_days: rules.widest_window_days(),
            rules: rules.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Day;
    use crate::rules::testkit::Scenario;

    const HOME: (f64, f64) = (63.8258, 20.2630);
    /// About 1.1 km north of `HOME`: above the default 500 m, below 2 km.
    const AWAY: (f64, f64) = (63.8358, 20.2630);

    fn stricter(mut rules: RulesConfig, max_distance_m: f64) -> RulesConfig {
        rules.check_in_away_from_home.max_distance_m = max_distance_m;
        rules
    }

    #[test]
    fn a_version_applies_to_decisions_from_its_effective_time_and_alerts_carry_it() {
        let mut s = Scenario::only("check-in-away-from-home");
        let lax = stricter(s.rules(), 2_000.0);
        // From 10 March the limit is 2 km: the same check-in 1.1 km away
        // fires before, not after.
        s.add_rules_version(1, Day::from_ymd(2026, 3, 10).start(), lax).unwrap();
        s.visit().home(HOME).check_in_at(AWAY).day(2026, 3, 2).at(9, 0).send();
        s.visit().home(HOME).check_in_at(AWAY).provider(1).day(2026, 3, 12).at(9, 0).send();
        let alerts = s.alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].configuration, 0);
        assert_eq!(alerts[0].to_wire().configuration_version, 0);
    }

    #[test]
    fn the_newest_version_in_force_decides_and_alerts_name_it() {
        let mut s = Scenario::only("check-in-away-from-home");
        let base = s.rules();
        s.add_rules_version(1, Day::from_ymd(2026, 3, 20).start(), stricter(base.clone(), 2_000.0)).unwrap();
        // Version 2, published later, is in force from an earlier date: it
        // decides from 5 March on, version 1 never.
        s.add_rules_version(2, Day::from_ymd(2026, 3, 5).start(), stricter(base, 1_000.0)).unwrap();
        s.visit().home(HOME).check_in_at(AWAY).day(2026, 3, 22).at(9, 0).send();
        let alerts = s.alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].configuration, 2);
        assert_eq!(alerts[0].to_wire().configuration_version, 2);
        assert_eq!(alerts[0].expected.value, 1_000.0, "decided with version 2's limit");
    }

    #[test]
    fn an_invalid_or_stale_version_is_refused_and_the_timeline_kept() {
        let mut s = Scenario::only("check-in-away-from-home");
        let base = s.rules();
        let from = Day::from_ymd(2026, 3, 10).start();
        let err = s.add_rules_version(1, from, stricter(base.clone(), -1.0)).unwrap_err();
        assert!(matches!(&err, TimelineError::Invalid(e) if e.contains("max_distance_m")), "{err}");
        s.add_rules_version(1, from, stricter(base.clone(), 2_000.0)).unwrap();
        assert_eq!(
            s.add_rules_version(1, from, base.clone()).unwrap_err(),
            TimelineError::NotNewer { version: 1, newest: 1 }
        );
        let mut wider = base.clone();
        wider.manual_registration_share.window_days += 30;
        assert!(matches!(s.add_rules_version(2, from, wider).unwrap_err(), TimelineError::WindowChanged { .. }));
        // The refused versions changed nothing: version 1 decides.
        s.visit().home(HOME).check_in_at(AWAY).day(2026, 3, 12).at(9, 0).send();
        assert!(s.alerts().is_empty());
    }

    #[test]
    fn at_picks_the_highest_version_in_force() {
        let base = RulesConfig::default();
        let mut t = RuleTimeline::new(&base);
        let v = |version, secs| RulesVersion { version, effective_from: EventTime(secs), rules: base.clone() };
        t.add(&v(1, 100)).unwrap();
        t.add(&v(3, 50)).unwrap();
        t.add(&v(4, 200)).unwrap();
        let at = |secs| t.at(EventTime(secs), RuleStage::Provider).0;
        assert_eq!([at(i64::MIN), at(49), at(50), at(150), at(199), at(200)], [0, 0, 3, 3, 3, 4]);
        assert_eq!(t.newest(), 4);
        assert_eq!(t.versions().map(|(n, _)| n).collect::<Vec<_>>(), [0, 1, 3, 4]);
    }
}
