//! What `tillsyn notify` posts: which alerts qualify, and the text and body
//! of a notification or a digest. Pure.
//!
//! A message names the rule, the severity, the provider and municipality,
//! the explanation the alert carries, and the alert and episode ids (which
//! a receiver can deduplicate on). Alerts hold no client or staff data (the
//! contract); the message adds none, and leaves the evidence ids out (they
//! are for the case store and `tillsyn evidence`).

use serde_json::json;
use tillsyn_core::proto::v1 as wire;

use crate::service::config::{NotifyFormat, NotifyLanguage, NotifySeverity};

/// Whether `alert` is posted: opened or escalated, at or above `min`.
pub fn qualifies(alert: &wire::Alert, min: NotifySeverity) -> bool {
    let status = wire::AlertStatus::try_from(alert.status).ok();
    let opened_or_escalated = matches!(status, Some(wire::AlertStatus::Opened | wire::AlertStatus::Escalated));
    let severity = match wire::Severity::try_from(alert.severity).ok() {
        Some(wire::Severity::Low) => NotifySeverity::Low,
        Some(wire::Severity::Medium) => NotifySeverity::Medium,
        Some(wire::Severity::High) => NotifySeverity::High,
        Some(wire::Severity::Critical) => NotifySeverity::Critical,
        _ => return false,
    };
    opened_or_escalated && severity >= min
}

fn severity_word(alert: &wire::Alert, language: NotifyLanguage) -> &'static str {
    let s = wire::Severity::try_from(alert.severity).unwrap_or(wire::Severity::Unspecified);
    match (language, s) {
        (NotifyLanguage::Sv, wire::Severity::Low) => "LÅG",
        (NotifyLanguage::Sv, wire::Severity::Medium) => "MEDEL",
        (NotifyLanguage::Sv, wire::Severity::High) => "HÖG",
        (NotifyLanguage::Sv, wire::Severity::Critical) => "KRITISK",
        (NotifyLanguage::En, wire::Severity::Low) => "LOW",
        (NotifyLanguage::En, wire::Severity::Medium) => "MEDIUM",
        (NotifyLanguage::En, wire::Severity::High) => "HIGH",
        (NotifyLanguage::En, wire::Severity::Critical) => "CRITICAL",
        _ => "?",
    }
}

fn status_words(alert: &wire::Alert, language: NotifyLanguage) -> &'static str {
    let escalated = alert.status == wire::AlertStatus::Escalated as i32;
    match (language, escalated) {
        (NotifyLanguage::Sv, false) => "Ny misstanke",
        (NotifyLanguage::Sv, true) => "Misstanken har skärpts",
        (NotifyLanguage::En, false) => "New suspicion",
        (NotifyLanguage::En, true) => "Suspicion escalated",
    }
}

/// The explanation in `language` when the alert carries it, else its own.
fn explanation(alert: &wire::Alert, language: NotifyLanguage) -> &str {
    let tag = match language {
        NotifyLanguage::Sv => "sv",
        NotifyLanguage::En => "en",
    };
    alert.explanations.get(tag).unwrap_or(&alert.explanation)
}

/// One alert as a paragraph of plain text.
pub fn text(alert: &wire::Alert, language: NotifyLanguage) -> String {
    let (provider, municipality, ids) = match language {
        NotifyLanguage::Sv => ("utförare", "kommun", "larm-id"),
        NotifyLanguage::En => ("provider", "municipality", "alert id"),
    };
    format!(
        "{} [{}] {}: {} {}, {} {}. {} ({} {}, episod/episode {})",
        status_words(alert, language),
        severity_word(alert, language),
        alert.rule_id,
        provider,
        alert.provider_id,
        municipality,
        alert.municipality_code,
        explanation(alert, language).trim_end_matches('.'),
        ids,
        alert.alert_id,
        alert.episode_id,
    )
}

/// A digest of `alerts` as text: a heading and one line per alert.
pub fn digest_text(alerts: &[wire::Alert], language: NotifyLanguage) -> String {
    let heading = match language {
        NotifyLanguage::Sv => {
            format!("Tillsyn: {} nya eller skärpta misstankar sedan förra sammanställningen", alerts.len())
        }
        NotifyLanguage::En => format!("Tillsyn: {} new or escalated suspicions since the last digest", alerts.len()),
    };
    let mut out = heading;
    for alert in alerts {
        out.push_str("\n- ");
        out.push_str(&text(alert, language));
    }
    out
}

/// The request body for `text` about `alerts` in `format`.
pub fn body(format: NotifyFormat, text: &str, alerts: &[wire::Alert]) -> serde_json::Value {
    match format {
        NotifyFormat::Slack | NotifyFormat::Mattermost => json!({ "text": text }),
        NotifyFormat::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "type": "AdaptiveCard",
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "version": "1.4",
                    "body": text.lines().map(|l| json!({"type": "TextBlock", "text": l, "wrap": true})).collect::<Vec<_>>(),
                }
            }]
        }),
        NotifyFormat::Json => {
            let alerts: Vec<serde_json::Value> = alerts
                .iter()
                .map(|a| {
                    let mut a = a.clone();
                    a.evidence_event_ids.clear();
                    serde_json::to_value(a).unwrap_or_default()
                })
                .collect();
            json!({ "text": text, "alerts": alerts })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(severity: wire::Severity, status: wire::AlertStatus) -> wire::Alert {
        wire::Alert {
            alert_id: "a-1".into(),
            episode_id: "e-1".into(),
            rule_id: "invoiced-above-performed".into(),
            severity: severity as i32,
            status: status as i32,
            provider_id: "P-007".into(),
            municipality_code: "2480".into(),
            explanation: "Invoiced 212.5 h against 150.0 h performed.".into(),
            explanations: [
                ("en".to_string(), "Invoiced 212.5 h against 150.0 h performed.".to_string()),
                ("sv".to_string(), "Fakturerat 212,5 timmar mot 150 utförda.".to_string()),
            ]
            .into(),
            evidence_event_ids: vec!["inv-991".into()],
            ..Default::default()
        }
    }

    #[test]
    fn opened_and_escalated_at_or_above_the_threshold_qualify() {
        use wire::AlertStatus::*;
        use wire::Severity::*;
        assert!(qualifies(&alert(High, Opened), NotifySeverity::High));
        assert!(qualifies(&alert(Critical, Escalated), NotifySeverity::High));
        assert!(!qualifies(&alert(Medium, Opened), NotifySeverity::High));
        assert!(!qualifies(&alert(Critical, Resolved), NotifySeverity::Low));
        assert!(qualifies(&alert(Low, Opened), NotifySeverity::Low));
        assert!(!qualifies(&alert(wire::Severity::Unspecified, Opened), NotifySeverity::Low));
    }

    #[test]
    fn the_text_names_rule_severity_provider_and_ids_but_no_evidence() {
        let a = alert(wire::Severity::High, wire::AlertStatus::Opened);
        let sv = text(&a, NotifyLanguage::Sv);
        assert!(sv.starts_with("Ny misstanke [HÖG] invoiced-above-performed: utförare P-007, kommun 2480."), "{sv}");
        assert!(sv.contains("212,5 timmar") && sv.contains("larm-id a-1") && sv.contains("e-1"), "{sv}");
        assert!(!sv.contains("inv-991"), "no evidence ids: {sv}");
        let en = text(&alert(wire::Severity::Critical, wire::AlertStatus::Escalated), NotifyLanguage::En);
        assert!(en.starts_with("Suspicion escalated [CRITICAL]") && en.contains("212.5 h"), "{en}");
        let mut old = a.clone();
        old.explanations.clear();
        assert!(text(&old, NotifyLanguage::Sv).contains("212.5 h"), "an older alert: its one explanation");
    }

    #[test]
    fn bodies_have_the_shape_of_their_receivers() {
        let a = alert(wire::Severity::High, wire::AlertStatus::Opened);
        let t = text(&a, NotifyLanguage::Sv);
        assert_eq!(body(NotifyFormat::Slack, &t, std::slice::from_ref(&a)), json!({ "text": t }));
        let teams = body(NotifyFormat::Teams, &t, std::slice::from_ref(&a));
        assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
        assert_eq!(teams["attachments"][0]["content"]["body"][0]["text"], t.as_str());
        let generic = body(NotifyFormat::Json, &t, std::slice::from_ref(&a));
        assert_eq!(generic["alerts"][0]["alertId"], "a-1");
        assert!(!generic.to_string().contains("inv-991"), "{generic}");
    }

    #[test]
    fn a_digest_has_a_line_per_alert() {
        let a = alert(wire::Severity::High, wire::AlertStatus::Opened);
        let mut b = a.clone();
        b.alert_id = "a-2".into();
        let d = digest_text(&[a, b], NotifyLanguage::Sv);
        assert_eq!(d.lines().count(), 3, "{d}");
        assert!(d.starts_with("Tillsyn: 2 nya"), "{d}");
    }
}
