//! From findings to alerts: one alert per (rule, provider, episode).
//!
//! Rules emit a [`Finding`] every time they see the pattern; a fraudulent
//! provider may cause thousands. [`Episodes`] turns that stream into a short
//! lifecycle per rule and provider:
//! - the first finding opens an episode and emits an `opened` alert;
//! - a finding of higher severity emits an `escalated` alert;
//! - other findings are absorbed (counted, evidence kept, bounded);
//! - when the rule has not fired for its quiet period (event time), the
//!   episode is closed with a `resolved` alert.
//!
//! Alert and episode ids are hashes of (rule, provider, episode start,
//! revision), so a replay of the same events gives byte-identical alerts
//! and consumers can deduplicate on the id.

mod episode;
mod wire;

pub use episode::{EpisodeKey, Episodes};

use crate::model::{EventId, EventTime, MunicipalityCode, ProviderId};
use crate::rules::RuleInfo;

/// How serious a finding is. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Severity {
    /// Worth a look when time allows.
    Low,
    /// Worth a look this week.
    Medium,
    /// Strong evidence; look now.
    High,
    /// Physical impossibility or large sums.
    Critical,
}

impl Severity {
    /// Lowercase name for metric labels and text.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A quantity with its unit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measure {
    /// The value.
    pub value: f64,
    /// The unit, one of [`UNITS`].
    #[serde(with = "unit_by_name")]
    pub unit: Unit,
}

/// A unit's name. (An alias, so that serde's derive does not take the
/// field for a string borrowed from the input.)
pub type Unit = &'static str;

/// Every unit a rule measures in. A restored state names units by these
/// strings; a unit missing here makes a state unreadable (a test replays
/// every rule's alerts through a snapshot).
pub const UNITS: [&str; 10] =
    ["clients", "count", "hours per client", "hours", "km/h", "lines", "metres", "minutes", "share", "visits"];

/// Serde of a `&'static str` unit as its name, read back from [`UNITS`].
mod unit_by_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(unit: &&'static str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(unit)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::UNITS
            .iter()
            .copied()
            .find(|u| *u == name)
            .ok_or_else(|| D::Error::custom(format!("unknown unit {name}")))
    }
}

impl Measure {
    /// A value with a unit.
    pub fn new(value: f64, unit: &'static str) -> Self {
        Measure { value, unit }
    }
}

/// One observation of a pattern by a rule, at one provider.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// Which rule.
    #[serde(with = "crate::rules::catalogue::by_rule_id")]
    pub rule: &'static RuleInfo,
    /// At which provider.
    pub provider: ProviderId,
    /// Paying municipality.
    pub municipality: MunicipalityCode,
    /// How serious.
    pub severity: Severity,
    /// Rule-specific strength (e.g. a z-score, an excess ratio).
    pub score: f64,
    /// Event-time window of the statistic, `[start, end)`.
    pub window: (EventTime, EventTime),
    /// What was seen.
    pub observed: Measure,
    /// The limit or baseline.
    pub expected: Measure,
    /// One paragraph for a case officer. No client or staff identifiers.
    pub explanation: String,
    /// Event ids an investigator can follow.
    pub evidence: Vec<EventId>,
}

/// Where an alert stands in its episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AlertStatus {
    /// First alert of an episode.
    Opened,
    /// The episode got worse.
    Escalated,
    /// The pattern stopped.
    Resolved,
}

impl AlertStatus {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            AlertStatus::Opened => "opened",
            AlertStatus::Escalated => "escalated",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// An alert: a state change of an episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Deterministic id (hex).
    pub alert_id: String,
    /// Deterministic id of the episode (hex).
    pub episode_id: String,
    /// Which rule.
    pub rule: &'static RuleInfo,
    /// Severity of the episode now.
    pub severity: Severity,
    /// Score of the finding that caused this alert.
    pub score: f64,
    /// The provider.
    pub provider: ProviderId,
    /// The municipality.
    pub municipality: MunicipalityCode,
    /// Window of the statistic.
    pub window: (EventTime, EventTime),
    /// What was seen.
    pub observed: Measure,
    /// The limit or baseline.
    pub expected: Measure,
    /// For a case officer.
    pub explanation: String,
    /// Bounded list of event ids.
    pub evidence: Vec<EventId>,
    /// Opened, escalated or resolved.
    pub status: AlertStatus,
    /// Event time of the decision.
    pub detected_at: EventTime,
    /// 0 for the opening alert, then 1, 2, ...
    pub revision: u32,
}
