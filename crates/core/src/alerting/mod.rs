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
//! Alert and episode ids are hashes of (rule, provider, municipality, episode start,
//! revision), so a replay of the same events gives byte-identical alerts
//! and consumers can deduplicate on the id.

mod episode;
mod wire;

/// The findings alerts are made of (defined in [`crate::finding`]).
pub use crate::finding::{Finding, Measure, Severity, Unit};
pub use episode::{EpisodeKey, Episodes};

use crate::finding::RuleInfo;
use crate::model::{EventId, EventTime, MunicipalityCode, ProviderId};
/// The languages of explanations (defined in [`crate::text`]).
pub use crate::text::{Language, Text};

/// Serde of a `&'static RuleInfo` as its id, read back from the catalogue
/// of [`crate::rules`] (a restored state refers to rules by id).
pub mod by_rule_id {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::finding::RuleInfo;

    /// Writes the rule's id.
    pub fn serialize<S: Serializer>(rule: &&'static RuleInfo, s: S) -> Result<S::Ok, S::Error> {
        crate::finding::serialize_rule_id(rule, s)
    }

    /// Reads a rule id; an id not in the catalogue is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static RuleInfo, D::Error> {
        let id = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        crate::rules::by_id(&id).ok_or_else(|| D::Error::custom(format!("unknown rule id {id}")))
    }
}

/// A [`Finding`] as read back from a snapshot: the same fields in the same
/// order, with the rule looked up by id in the catalogue.
#[derive(serde::Deserialize)]
struct FindingRecord {
    #[serde(with = "by_rule_id")]
    rule: &'static RuleInfo,
    provider: ProviderId,
    municipality: MunicipalityCode,
    severity: Severity,
    score: f64,
    window: (EventTime, EventTime),
    observed: Measure,
    expected: Measure,
    explanation: Text,
    evidence: Vec<EventId>,
    /// Absent in findings written before configuration versions existed.
    #[serde(default)]
    configuration: u32,
}

impl<'de> serde::Deserialize<'de> for Finding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Finding, D::Error> {
        let r = <FindingRecord as serde::Deserialize>::deserialize(d)?;
        Ok(Finding {
            rule: r.rule,
            provider: r.provider,
            municipality: r.municipality,
            severity: r.severity,
            score: r.score,
            window: r.window,
            observed: r.observed,
            expected: r.expected,
            explanation: r.explanation,
            evidence: r.evidence,
            configuration: r.configuration,
        })
    }
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
    /// For a case officer, in Swedish and English.
    pub explanation: Text,
    /// Bounded list of event ids.
    pub evidence: Vec<EventId>,
    /// Opened, escalated or resolved.
    pub status: AlertStatus,
    /// Event time of the decision.
    pub detected_at: EventTime,
    /// 0 for the opening alert, then 1, 2, ...
    pub revision: u32,
    /// The version of the rules' configuration the finding behind it was
    /// decided under (see [`Finding::configuration`]).
    pub configuration: u32,
    /// The language of the contract's `explanation` (`core.language`);
    /// `explanations` carries every language.
    pub language: Language,
}

impl Alert {
    /// The explanation in the alert's [`language`](Alert::language).
    pub fn explanation_text(&self) -> &str {
        self.explanation.get(self.language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A staff finding goes to the provider stage as JSON (the
    /// staff-findings topic): one written by a build before Swedish
    /// explanations, with its English explanation as a string, is still
    /// read during an upgrade, and its alerts say it in English.
    #[test]
    fn a_finding_in_json_reads_back_and_one_of_an_older_build_too() {
        let finding = Finding::new(
            &crate::rules::staff_double_booking::INFO,
            ProviderId::from_nine_digits(556_000_001),
            MunicipalityCode::parse("2480").unwrap(),
            (EventTime(0), EventTime(60)),
        )
        .explain(Text { en: "Two visits overlap.".into(), sv: "Två besök överlappar.".into() });
        let mut json = serde_json::to_value(&finding).unwrap();
        assert_eq!(serde_json::from_value::<Finding>(json.clone()).unwrap(), finding);
        json["explanation"] = "Two visits overlap.".into();
        let old: Finding = serde_json::from_value(json).unwrap();
        assert_eq!(old.explanation, Text { en: "Two visits overlap.".into(), sv: String::new() });
        let mut alerts = Vec::new();
        Episodes::new(20, 0, Language::Sv).observe(old, EventTime(60), &mut alerts);
        let wire = alerts[0].to_wire();
        assert_eq!(wire.explanation, "Two visits overlap.");
        assert_eq!(wire.explanations.keys().collect::<Vec<_>>(), ["en"], "no Swedish claimed where there is none");
        let bytes = postcard::to_allocvec(&finding).unwrap();
        assert_eq!(postcard::from_bytes::<Finding>(&bytes).unwrap(), finding);
    }
}
