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
    /// The alert as a `tillsyn.v1.Alert` message: `explanation` in the
    /// alert's language, `explanations` in every language (by tag).
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
            explanation: self.explanation_text().to_string(),
            explanations: self.explanation.entries().map(|(l, t)| (l.tag().to_string(), t.to_string())).collect(),
            evidence_event_ids: self.evidence.iter().map(|e| e.as_str().to_string()).collect(),
            status: wire::AlertStatus::from(self.status) as i32,
            detected_at: timestamp(self.detected_at),
            revision: self.revision,
            configuration_version: self.configuration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::{Finding, Language, Text, Unit};
    use crate::model::{EventId, MunicipalityCode, ProviderId};

    fn alert(language: Language) -> Alert {
        let finding = Finding::new(
            &crate::rules::staff_double_booking::INFO,
            ProviderId::from_nine_digits(556_000_001),
            MunicipalityCode::parse("2480").unwrap(),
            (EventTime(0), EventTime(60)),
        )
        .observed(25.0, Unit::Minutes)
        .explain(Text { en: "25 minutes of overlap.".into(), sv: "25 minuters överlappning.".into() })
        .evidence(vec![EventId::new("tr-1")]);
        let mut alerts = Vec::new();
        crate::alerting::Episodes::new(20, 0, language).observe(finding, EventTime(60), &mut alerts);
        alerts.remove(0)
    }

    #[test]
    fn explanation_is_in_the_configured_language_and_explanations_has_both() {
        let sv = alert(Language::Sv).to_wire();
        assert_eq!(sv.explanation, "25 minuters överlappning.");
        let both: Vec<(&str, &str)> = sv.explanations.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(both, [("en", "25 minutes of overlap."), ("sv", "25 minuters överlappning.")]);
        let en = alert(Language::En).to_wire();
        assert_eq!(en.explanation, "25 minutes of overlap.");
        assert_eq!(en.explanations, sv.explanations);
        assert_eq!(en.alert_id, sv.alert_id, "the language is not in the id");
        assert_eq!(
            wire::Alert { explanation: String::new(), ..en.clone() },
            wire::Alert { explanation: String::new(), ..sv.clone() }
        );
    }

    #[test]
    fn the_json_mapping_carries_explanations_and_reads_alerts_without_them() {
        let wire = alert(Language::Sv).to_wire();
        let json = serde_json::to_value(&wire).unwrap();
        assert_eq!(json["explanation"], "25 minuters överlappning.");
        assert_eq!(
            json["explanations"],
            serde_json::json!({"en": "25 minutes of overlap.", "sv": "25 minuters överlappning."})
        );
        assert_eq!(serde_json::from_value::<wire::Alert>(json).unwrap(), wire);
        // An alert of a build before `explanations` (JSON and protobuf).
        let old = serde_json::json!({"alertId": "a", "explanation": "25 minutes of overlap."});
        let old: wire::Alert = serde_json::from_value(old).unwrap();
        assert!(old.explanations.is_empty());
        let bytes = prost::Message::encode_to_vec(&wire::Alert { explanations: Default::default(), ..wire.clone() });
        let read: wire::Alert = prost::Message::decode(bytes.as_slice()).unwrap();
        assert!(read.explanations.is_empty() && read.explanation == wire.explanation);
    }

    #[test]
    fn the_same_alert_encodes_to_the_same_bytes() {
        // The map is encoded in key order (a BTreeMap), not a hash map's.
        let bytes = |a: &Alert| prost::Message::encode_to_vec(&a.to_wire());
        let a = alert(Language::Sv);
        let encoded = bytes(&a);
        for _ in 0..20 {
            assert_eq!(bytes(&a.clone()), encoded);
        }
        let en = encoded.windows(3).position(|w| w == b"\x02en");
        let sv = encoded.windows(3).position(|w| w == b"\x02sv");
        assert!(en.is_some() && sv.is_some() && en < sv, "\"en\" is written before \"sv\"");
    }
}
