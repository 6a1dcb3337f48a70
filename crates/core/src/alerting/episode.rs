//! The episode lifecycle: open, escalate, absorb, resolve.
//!
//! An episode resolves at the first day close (the end of a local day plus
//! the allowed lateness `settle`) at least its rule's quiet period after
//! its last finding: its *resolution time*, a function of the findings
//! alone. The resolution is emitted either by a day close `settle` past
//! that time (no finding of the rule can be decided before it any more:
//! every later record is on time, so at or after the watermark) or by a
//! finding decided at or after it, whichever is processed first; both give
//! the same alerts, so the interleaving of findings and day closes, which
//! depends on the other partitions' progress, does not show.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::{Alert, AlertStatus, Finding, Severity};
use crate::finding::{RuleInfo, RuleStage};
use crate::model::{EventId, EventTime, ProviderKey};
use crate::text::{Language, Text, en, sv};

/// An episode is identified by its provider (in one municipality) and rule.
pub type EpisodeKey = (ProviderKey, &'static str);

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Episode {
    #[serde(with = "super::by_rule_id")]
    rule: &'static RuleInfo,
    started: EventTime,
    last_seen: EventTime,
    severity: Severity,
    revision: u32,
    findings: u64,
    last: Finding,
}

/// The open episodes of every rule and provider of one engine. Serialized
/// as the list of episodes (their keys follow from them); the language of
/// the alerts' `explanation` is configuration, not state: not serialized,
/// the default until [`Episodes::set_language`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "EpisodeList", try_from = "EpisodeList")]
pub struct Episodes {
    open: BTreeMap<EpisodeKey, Episode>,
    evidence_limit: usize,
    settle_secs: i64,
    language: Language,
}

/// The serialized form of [`Episodes`].
#[derive(serde::Serialize, serde::Deserialize)]
struct EpisodeList {
    episodes: Vec<Episode>,
    evidence_limit: usize,
    settle_secs: i64,
}

impl From<Episodes> for EpisodeList {
    fn from(e: Episodes) -> Self {
        EpisodeList {
            episodes: e.open.into_values().collect(),
            evidence_limit: e.evidence_limit,
            settle_secs: e.settle_secs,
        }
    }
}

impl TryFrom<EpisodeList> for Episodes {
    type Error = String;

    fn try_from(list: EpisodeList) -> Result<Self, String> {
        let mut open = BTreeMap::new();
        for episode in list.episodes {
            if episode.rule.id != episode.last.rule.id {
                return Err(format!("episode of {} holds a finding of {}", episode.rule.id, episode.last.rule.id));
            }
            let key = (episode.last.provider_key(), episode.rule.id);
            if open.insert(key, episode).is_some() {
                return Err("two episodes for one rule and provider".into());
            }
        }
        Ok(Episodes {
            open,
            evidence_limit: list.evidence_limit.max(1),
            settle_secs: list.settle_secs.max(0),
            language: Language::default(),
        })
    }
}

impl Episodes {
    /// No open episodes; alerts carry at most `evidence_limit` event ids;
    /// day closes happen `settle_secs` after the end of each local day
    /// (the allowed lateness of time reports); alerts say their
    /// `explanation` in `language`.
    pub fn new(evidence_limit: usize, settle_secs: i64, language: Language) -> Self {
        Episodes {
            open: BTreeMap::new(),
            evidence_limit: evidence_limit.max(1),
            settle_secs: settle_secs.max(0),
            language,
        }
    }

    /// Alerts from now on say their `explanation` in `language` (after a
    /// restore: the language is configuration, not state).
    pub fn set_language(&mut self, language: Language) {
        self.language = language;
    }

    /// When `episode` resolves if nothing more is found: the first day
    /// close at least its quiet period after its last finding.
    fn resolution_time(&self, episode: &Episode) -> EventTime {
        let due = episode.last_seen.plus_secs(i64::from(episode.rule.quiet_days) * 86_400 - self.settle_secs);
        let day = due.day();
        let midnight = if day.start() >= due { day.start() } else { day.plus(1).start() };
        midnight.plus_secs(self.settle_secs)
    }

    /// Number of open episodes.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Open episodes by rule id and current severity (only the pairs that
    /// have one).
    pub fn open_by_rule(&self) -> BTreeMap<(&'static str, Severity), usize> {
        let mut counts = BTreeMap::new();
        for episode in self.open.values() {
            *counts.entry((episode.rule.id, episode.severity)).or_insert(0) += 1;
        }
        counts
    }

    /// Whether `provider` has any open episode (its state must be kept).
    pub fn has_open(&self, provider: ProviderKey) -> bool {
        self.open.range((provider, "")..).next().is_some_and(|((p, _), _)| *p == provider)
    }

    /// Takes a finding made at event time `now` (a rule's findings come in
    /// the order of their decision times); pushes an alert if it opens or
    /// escalates an episode, after the resolution of the rule's previous
    /// episode if `now` is past its resolution time.
    pub fn observe(&mut self, finding: Finding, now: EventTime, alerts: &mut Vec<Alert>) {
        let key = (finding.provider_key(), finding.rule.id);
        let (limit, language) = (self.evidence_limit, self.language);
        if let Some(episode) = self.open.get(&key) {
            let resolves = self.resolution_time(episode);
            if now >= resolves
                && let Some(mut episode) = self.open.remove(&key)
            {
                episode.revision += 1;
                alerts.push(alert(&episode, AlertStatus::Resolved, resolves, language));
            }
        }
        match self.open.get_mut(&key) {
            None => {
                let mut finding = finding;
                finding.evidence.truncate(limit);
                let episode = Episode {
                    rule: finding.rule,
                    started: now,
                    last_seen: now,
                    severity: finding.severity,
                    revision: 0,
                    findings: 1,
                    last: finding,
                };
                alerts.push(alert(&episode, AlertStatus::Opened, now, language));
                self.open.insert(key, episode);
            }
            Some(episode) => {
                episode.last_seen = episode.last_seen.max(now);
                episode.findings += 1;
                let escalates = finding.severity > episode.severity;
                let mut evidence = std::mem::take(&mut episode.last.evidence);
                merge_evidence(&mut evidence, &finding.evidence, limit);
                episode.last = finding;
                episode.last.evidence = evidence;
                if escalates {
                    episode.severity = episode.last.severity;
                    episode.revision += 1;
                    alerts.push(alert(episode, AlertStatus::Escalated, now, language));
                }
            }
        }
    }

    /// At the day close at event time `now`: resolves every episode whose
    /// resolution time is at least `settle` behind `now` (no finding can
    /// be decided before it any more), in a deterministic order, each at
    /// its resolution time.
    pub fn resolve_quiet(&mut self, now: EventTime, alerts: &mut Vec<Alert>) {
        self.resolve(now.plus_secs(-self.settle_secs), None, alerts);
    }

    /// Resolves every episode of a rule of `stage` whose resolution time is
    /// at or before `settled` (no finding of those rules can be decided
    /// before it any more), in a deterministic order, each at its
    /// resolution time.
    pub fn resolve_settled(&mut self, settled: EventTime, stage: RuleStage, alerts: &mut Vec<Alert>) {
        self.resolve(settled, Some(stage), alerts);
    }

    fn resolve(&mut self, settled: EventTime, stage: Option<RuleStage>, alerts: &mut Vec<Alert>) {
        let quiet: Vec<(EpisodeKey, EventTime)> = self
            .open
            .iter()
            .filter(|(_, e)| stage.is_none_or(|s| e.rule.stage == s))
            .map(|(k, e)| (*k, self.resolution_time(e)))
            .filter(|(_, at)| *at <= settled)
            .collect();
        for (key, at) in quiet {
            if let Some(mut episode) = self.open.remove(&key) {
                episode.revision += 1;
                alerts.push(alert(&episode, AlertStatus::Resolved, at, self.language));
            }
        }
    }
}

/// Appends the new ids not yet present, keeping the newest `limit`.
fn merge_evidence(evidence: &mut Vec<EventId>, new: &[EventId], limit: usize) {
    for id in new {
        if !evidence.contains(id) {
            evidence.push(id.clone());
        }
    }
    if evidence.len() > limit {
        let excess = evidence.len() - limit;
        evidence.drain(..excess);
    }
}

/// First 16 bytes of SHA-256 over the parts, as hex.
fn stable_id(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..16])
}

fn alert(episode: &Episode, status: AlertStatus, now: EventTime, language: Language) -> Alert {
    let rule = episode.rule.id.as_bytes();
    let provider = episode.last.provider.digits().to_le_bytes();
    let municipality = episode.last.municipality.value().to_le_bytes();
    let started = episode.started.0.to_le_bytes();
    let episode_id = stable_id(&[b"episode/v2", rule, &provider, &municipality, &started]);
    let alert_id = stable_id(&[b"alert/v2", rule, &provider, &municipality, &started, &episode.revision.to_le_bytes()]);
    let f = &episode.last;
    let explanation = match status {
        AlertStatus::Resolved => resolved(episode),
        _ => f.explanation.clone(),
    };
    Alert {
        alert_id,
        episode_id,
        rule: episode.rule,
        severity: episode.severity,
        score: f.score,
        provider: f.provider,
        municipality: f.municipality,
        window: f.window,
        observed: f.observed,
        expected: f.expected,
        explanation,
        evidence: f.evidence.clone(),
        status,
        detected_at: now,
        revision: episode.revision,
        configuration: f.configuration,
        language,
    }
}

/// The explanation of a resolution: the quiet period, the episode's
/// findings since its start (a Swedish local date), and the last finding's
/// explanation.
fn resolved(episode: &Episode) -> Text {
    let (quiet, findings, since) = (u64::from(episode.rule.quiet_days), episode.findings, episode.started.day());
    episode.last.explanation.map(|language, last| match language {
        Language::En => format!(
            "Resolved: not seen for {} ({} since {}). Last finding: {last}",
            en::count(quiet, "day", "days"),
            en::count(findings, "finding", "findings"),
            en::date(since),
        ),
        Language::Sv => format!(
            "Avslutat: mönstret har inte setts på {} ({} sedan {}). Senaste iakttagelse: {last}",
            sv::count(quiet, "dag", "dagar"),
            sv::count(findings, "iakttagelse", "iakttagelser"),
            sv::date(since),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::{Measure, Unit};
    use crate::model::{MunicipalityCode, ProviderId};
    use crate::rules::staff_double_booking::INFO as STAFF_DOUBLE_BOOKING;

    fn finding(severity: Severity, evidence: &str) -> Finding {
        Finding {
            rule: &STAFF_DOUBLE_BOOKING,
            provider: ProviderId::from_nine_digits(556_000_001),
            municipality: MunicipalityCode::parse("2480").unwrap(),
            severity,
            score: 1.0,
            window: (EventTime(0), EventTime(1)),
            observed: Measure::new(1.0, Unit::Count),
            expected: Measure::new(0.0, Unit::Count),
            explanation: Text { en: "Two visits overlap.".into(), sv: "Två besök överlappar.".into() },
            evidence: vec![EventId::new(evidence)],
            configuration: 0,
        }
    }

    #[test]
    fn repeated_findings_open_one_episode_escalate_once_and_resolve_when_quiet() {
        let mut e = Episodes::new(3, 0, Language::Sv);
        let mut alerts = Vec::new();
        for i in 0..100 {
            e.observe(finding(Severity::Medium, &format!("tr-{i}")), EventTime(i * 60), &mut alerts);
        }
        assert_eq!(e.open_by_rule(), BTreeMap::from([((STAFF_DOUBLE_BOOKING.id, Severity::Medium), 1)]));
        e.observe(finding(Severity::High, "tr-x"), EventTime(10_000), &mut alerts);
        assert_eq!(
            e.open_by_rule(),
            BTreeMap::from([((STAFF_DOUBLE_BOOKING.id, Severity::High), 1)]),
            "counted at the episode's current severity"
        );
        e.observe(finding(Severity::Medium, "tr-y"), EventTime(10_060), &mut alerts);
        let quiet = i64::from(STAFF_DOUBLE_BOOKING.quiet_days) * 86_400;
        // The first day close (local midnight, no lateness here) a quiet period after the last finding.
        let resolves = EventTime(10_060 + quiet).day().plus(1).start();
        e.resolve_quiet(resolves.plus_secs(-1), &mut alerts);
        assert_eq!(alerts.len(), 2, "still open one second before the resolution time");
        e.resolve_quiet(resolves, &mut alerts);
        assert_eq!(alerts.last().map(|a| a.detected_at), Some(resolves));
        let statuses: Vec<_> = alerts.iter().map(|a| (a.status, a.severity, a.revision)).collect();
        assert_eq!(
            statuses,
            vec![
                (AlertStatus::Opened, Severity::Medium, 0),
                (AlertStatus::Escalated, Severity::High, 1),
                (AlertStatus::Resolved, Severity::High, 2),
            ]
        );
        assert!(alerts.iter().all(|a| a.episode_id == alerts[0].episode_id));
        assert_eq!(alerts[2].evidence.len(), 3, "evidence is bounded");
        assert_eq!(alerts[2].evidence.last().unwrap().as_str(), "tr-y");
        assert_eq!(e.open_count(), 0);
    }

    #[test]
    fn ids_are_deterministic_and_distinct_per_revision() {
        let run = || {
            let mut e = Episodes::new(5, 0, Language::Sv);
            let mut alerts = Vec::new();
            e.observe(finding(Severity::Low, "a"), EventTime(5), &mut alerts);
            e.observe(finding(Severity::Critical, "b"), EventTime(6), &mut alerts);
            alerts.into_iter().map(|a| a.alert_id).collect::<Vec<_>>()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
        assert_eq!(a[0].len(), 32);
    }

    #[test]
    fn a_finding_past_the_resolution_time_gives_the_alerts_of_a_day_close_before_it() {
        let settle = 3 * 86_400;
        let quiet = i64::from(STAFF_DOUBLE_BOOKING.quiet_days) * 86_400;
        let first = EventTime(1_770_000_000);
        let later = first.plus_secs(quiet + 2 * 86_400);
        let close = later.day().plus(4).start().plus_secs(settle); // a day close after both
        let close_first = {
            let (mut e, mut alerts) = (Episodes::new(5, settle, Language::Sv), Vec::new());
            e.observe(finding(Severity::Low, "a"), first, &mut alerts);
            e.resolve_quiet(close, &mut alerts);
            e.observe(finding(Severity::Low, "b"), later, &mut alerts);
            alerts
        };
        let finding_first = {
            let (mut e, mut alerts) = (Episodes::new(5, settle, Language::Sv), Vec::new());
            e.observe(finding(Severity::Low, "a"), first, &mut alerts);
            e.observe(finding(Severity::Low, "b"), later, &mut alerts);
            e.resolve_quiet(close, &mut alerts);
            alerts
        };
        let statuses =
            |a: &[Alert]| a.iter().map(|a| (a.status, a.detected_at, a.alert_id.clone())).collect::<Vec<_>>();
        assert_eq!(statuses(&close_first), statuses(&finding_first));
        assert_eq!(
            close_first.iter().map(|a| a.status).collect::<Vec<_>>(),
            vec![AlertStatus::Opened, AlertStatus::Resolved, AlertStatus::Opened]
        );
        // A day close less than `settle` past the resolution time does not resolve yet.
        let (mut e, mut alerts) = (Episodes::new(5, settle, Language::Sv), Vec::new());
        e.observe(finding(Severity::Low, "a"), first, &mut alerts);
        e.resolve_quiet(close_first[1].detected_at.plus_secs(settle - 1), &mut alerts);
        assert_eq!(alerts.len(), 1);
    }

    #[test]
    fn a_new_episode_after_resolution_has_a_new_id() {
        let mut e = Episodes::new(5, 0, Language::Sv);
        let mut alerts = Vec::new();
        e.observe(finding(Severity::Low, "a"), EventTime(0), &mut alerts);
        e.resolve_quiet(EventTime(100 * 86_400), &mut alerts);
        e.observe(finding(Severity::Low, "a"), EventTime(101 * 86_400), &mut alerts);
        assert_eq!(alerts.len(), 3);
        assert_ne!(alerts[0].episode_id, alerts[2].episode_id);
    }

    #[test]
    fn alerts_explain_in_the_configured_language_and_carry_both() {
        for language in Language::ALL {
            let (mut e, mut alerts) = (Episodes::new(5, 0, language), Vec::new());
            e.observe(finding(Severity::Low, "a"), EventTime(1_772_438_400), &mut alerts); // 2026-03-02 09:00
            e.observe(finding(Severity::Low, "b"), EventTime(1_772_442_000), &mut alerts);
            e.resolve_quiet(EventTime(1_772_442_000 + 100 * 86_400), &mut alerts);
            assert_eq!(alerts.len(), 2);
            assert!(alerts.iter().all(|a| a.language == language));
            assert_eq!(alerts[0].explanation_text(), alerts[0].explanation.get(language));
            let resolved = &alerts[1].explanation;
            assert_eq!(
                resolved.en,
                "Resolved: not seen for 14 days (2 findings since 2026-03-02). Last finding: Two visits overlap."
            );
            assert_eq!(
                resolved.sv,
                "Avslutat: mönstret har inte setts på 14 dagar (2 iakttagelser sedan 2026-03-02). Senaste \
                 iakttagelse: Två besök överlappar."
            );
            assert_eq!(
                crate::text::figures(&resolved.sv, Language::Sv),
                crate::text::figures(&resolved.en, Language::En)
            );
        }
        // The language is configuration: a restored set of episodes takes the one it is given.
        let mut e = Episodes::new(5, 0, Language::En);
        e.observe(finding(Severity::Low, "a"), EventTime(0), &mut Vec::new());
        let mut restored: Episodes = postcard::from_bytes(&postcard::to_allocvec(&e).unwrap()).unwrap();
        assert_eq!(restored.language, Language::default(), "not in the bytes");
        restored.set_language(Language::En);
        assert_eq!(restored, e);
    }
}
