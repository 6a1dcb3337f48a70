//! Conversion of alerts to the wire contract (`tillsyn.v1.Alert`).

use super::{Alert, AlertStatus, Measure, Severity};
use crate::model::EventTime;
use crate::proto::v1 as wire;

fn timestamp(t: EventTime) -> Option<pbjson_types::Timestamp> {
    Some(pbjson_types::Timestamp { seconds: t.0, nanos: 0 })
}

fn measure(m: Measure) -> Option<wire::Measure> {
    Some(wire::Measure { value: m.value, unit: m.unit.name().to_string() })
}

impl From<Severity> for wire::Severity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Low => wire::Severity::Low,
            Severity::Medium => wire::Severity::Medium,
            Severity::High => wire::Severity::High,
            Severity::Critical => wire::Severity::Critical,
        }
    }
}

impl From<AlertStatus> for wire::AlertStatus {
    fn from(s: AlertStatus) -> Self {
        match s {
            AlertStatus::Opened => wire::AlertStatus::Opened,
            AlertStatus::Escalated => wire::AlertStatus::Escalated,
            AlertStatus::Resolved => wire::AlertStatus::Resolved,
        }
    }
}

impl Alert {
    /// The alert as a `tillsyn.v1.Alert` message.
    pub fn to_wire(&self) -> wire::Alert {
        wire::Alert {
            alert_id: self.alert_id.clone(),
            episode_id: self.episode_id.clone(),
            rule_id: self.rule.id.to_string(),
            rule_version: self.rule.version,
            pattern: self.rule.pattern,
            severity: wire::Severity::from(self.severity) as i32,
            score: self.score,
            provider_id: self.provider.to_string(),
            municipality_code: self.municipality.to_string(),
            window_start: timestamp(self.window.0),
            window_end: timestamp(self.window.1),
            observed: measure(self.observed),
            expected: measure(self.expected),
            explanation: self.explanation.clone(),
            evidence_event_ids: self.evidence.iter().map(|e| e.as_str().to_string()).collect(),
            status: wire::AlertStatus::from(self.status) as i32,
            detected_at: timestamp(self.detected_at),
            revision: self.revision,
            configuration_version: self.configuration,
        }
    }
}
