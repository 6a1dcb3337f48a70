//! What one batch of alert records does to the case store, decided without
//! the database: which records become rows, and where each partition's
//! stored position moves. Pure, so that the exactly-once rules are tested
//! here and the SQL only carries them out.
//!
//! The rules: a partition's stored position is the next offset to write;
//! every record before it is in the tables. A record below it was stored
//! before (read again after a crash, a restart or a rebalance) and is
//! skipped. A record at or after it is written, and the position moves past
//! the batch's last record of that partition, in the same transaction, on
//! the condition that the position is still the one read (a member that
//! lost the partition cannot move it back or write over its successor).

use std::collections::BTreeMap;
use std::time::SystemTime;

use tillsyn_core::proto::v1 as wire;

/// One record read from the alert topic.
#[derive(Debug, Clone)]
pub struct Read {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The alert, or why the record is none.
    pub alert: Result<AlertRow, String>,
}

/// An alert as the case store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Unique: the row's key.
    pub alert_id: String,
    /// Its episode.
    pub episode_id: String,
    /// 0 for the opening alert, then 1, 2, ...
    pub revision: i32,
    /// `opened`, `escalated` or `resolved`.
    pub status: &'static str,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: &'static str,
    /// 1 (low) to 4 (critical).
    pub severity_rank: i16,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's version.
    pub rule_version: i32,
    /// The fraud pattern of the domain catalogue.
    pub pattern: i32,
    /// The rules' configuration version it was decided under.
    pub configuration_version: i32,
    /// The rule's score.
    pub score: f64,
    /// The provider.
    pub provider_id: String,
    /// The municipality.
    pub municipality_code: String,
    /// The window the statistic covers.
    pub window_start: Option<SystemTime>,
    /// Its end.
    pub window_end: Option<SystemTime>,
    /// What was observed, and its unit.
    pub observed: Option<(f64, String)>,
    /// What was expected, and its unit.
    pub expected: Option<(f64, String)>,
    /// The explanation in the service's language.
    pub explanation: String,
    /// Every language's explanation, as JSON (`{"sv": ..., "en": ...}`).
    pub explanations: serde_json::Value,
    /// The evidence's event ids.
    pub evidence_event_ids: Vec<String>,
    /// Event time of the decision.
    pub detected_at: SystemTime,
    /// The record's timestamp on the topic, when it has one.
    pub produced_at: Option<SystemTime>,
}

fn time(t: Option<&pbjson_types::Timestamp>) -> Option<SystemTime> {
    let t = t?;
    let nanos = u32::try_from(t.nanos).ok()?;
    let since = std::time::Duration::new(u64::try_from(t.seconds).ok()?, nanos);
    SystemTime::UNIX_EPOCH.checked_add(since)
}

impl AlertRow {
    /// The row of `alert`, or why it is no alert tillsyn wrote (an id, an
    /// episode, a rule, a known status and severity and a detection time
    /// are required).
    pub fn new(alert: &wire::Alert, produced_at: Option<SystemTime>) -> Result<AlertRow, String> {
        let status = match wire::AlertStatus::try_from(alert.status) {
            Ok(wire::AlertStatus::Opened) => "opened",
            Ok(wire::AlertStatus::Escalated) => "escalated",
            Ok(wire::AlertStatus::Resolved) => "resolved",
            _ => return Err(format!("unknown alert status {}", alert.status)),
        };
        let (severity, severity_rank) = match wire::Severity::try_from(alert.severity) {
            Ok(wire::Severity::Low) => ("low", 1),
            Ok(wire::Severity::Medium) => ("medium", 2),
            Ok(wire::Severity::High) => ("high", 3),
            Ok(wire::Severity::Critical) => ("critical", 4),
            _ => return Err(format!("unknown severity {}", alert.severity)),
        };
        for (field, value) in
            [("alert_id", &alert.alert_id), ("episode_id", &alert.episode_id), ("rule_id", &alert.rule_id)]
        {
            if value.trim().is_empty() {
                return Err(format!("no {field}"));
            }
        }
        let detected_at = time(alert.detected_at.as_ref()).ok_or("no detected_at")?;
        let int = |field: &str, v: u32| i32::try_from(v).map_err(|_| format!("{field} {v} out of range"));
        let measure = |m: Option<&wire::Measure>| m.map(|m| (m.value, m.unit.clone()));
        Ok(AlertRow {
            alert_id: alert.alert_id.clone(),
            episode_id: alert.episode_id.clone(),
            revision: int("revision", alert.revision)?,
            status,
            severity,
            severity_rank,
            rule_id: alert.rule_id.clone(),
            rule_version: int("rule_version", alert.rule_version)?,
            pattern: int("pattern", alert.pattern)?,
            configuration_version: int("configuration_version", alert.configuration_version)?,
            score: alert.score,
            provider_id: alert.provider_id.clone(),
            municipality_code: alert.municipality_code.clone(),
            window_start: time(alert.window_start.as_ref()),
            window_end: time(alert.window_end.as_ref()),
            observed: measure(alert.observed.as_ref()),
            expected: measure(alert.expected.as_ref()),
            explanation: alert.explanation.clone(),
            explanations: explanations(alert),
            evidence_event_ids: alert.evidence_event_ids.clone(),
            detected_at,
            produced_at,
        })
    }
}

/// Every language's explanation of `alert`, as a JSON object by language
/// tag (an alert of a build before the field: its one explanation, under
/// no tag, is the `explanation` column only).
fn explanations(alert: &wire::Alert) -> serde_json::Value {
    serde_json::Value::Object(
        alert.explanations.iter().map(|(tag, text)| (tag.clone(), serde_json::Value::String(text.clone()))).collect(),
    )
}

/// Where a partition's stored position moves in a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// The partition.
    pub partition: i32,
    /// The position read from the database (none: no row yet).
    pub from: Option<i64>,
    /// The new position.
    pub to: i64,
}

/// What a batch does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Rows to insert, with their partition and offset, in log order per
    /// partition.
    pub rows: Vec<(i32, i64, AlertRow)>,
    /// Positions to move.
    pub moves: Vec<Move>,
    /// Records below the stored position: stored before.
    pub already_stored: u64,
    /// Records at or after it that are no alert: skipped (the position
    /// moves past them), with partition, offset and why.
    pub not_alerts: Vec<(i32, i64, String)>,
}

impl Plan {
    /// Decides `batch` against the stored `positions` (every partition of
    /// the batch must have an entry: `None` when it has no row yet, so every
    /// record of it is new).
    ///
    /// # Panics
    /// When a partition of `batch` has no entry in `positions`: the caller
    /// reads the positions of the partitions it owns before it writes.
    pub fn new(batch: &[Read], positions: &BTreeMap<i32, Option<i64>>) -> Plan {
        let mut plan = Plan::default();
        let mut moved: BTreeMap<i32, i64> = BTreeMap::new();
        for read in batch {
            let stored = positions
                .get(&read.partition)
                .unwrap_or_else(|| panic!("no stored position read for partition {}", read.partition));
            let next = moved.get(&read.partition).copied().or(*stored);
            if next.is_some_and(|n| read.offset < n) {
                plan.already_stored += 1;
                continue;
            }
            moved.insert(read.partition, read.offset + 1);
            match &read.alert {
                Ok(row) => plan.rows.push((read.partition, read.offset, row.clone())),
                Err(why) => plan.not_alerts.push((read.partition, read.offset, why.clone())),
            }
        }
        plan.moves =
            moved.into_iter().map(|(partition, to)| Move { partition, from: positions[&partition], to }).collect();
        plan
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, revision: u32, status: wire::AlertStatus) -> wire::Alert {
        wire::Alert {
            alert_id: id.into(),
            episode_id: "ep-1".into(),
            rule_id: "invoiced-above-performed".into(),
            rule_version: 1,
            pattern: 1,
            severity: wire::Severity::High as i32,
            status: status as i32,
            revision,
            provider_id: "P-1".into(),
            municipality_code: "2480".into(),
            detected_at: Some(pbjson_types::Timestamp { seconds: 1_767_225_600, nanos: 0 }),
            observed: Some(wire::Measure { value: 12.5, unit: "hours".into() }),
            explanation: "x".into(),
            explanations: [("sv".to_string(), "x på svenska".to_string()), ("en".to_string(), "x".to_string())].into(),
            evidence_event_ids: vec!["i-1".into()],
            ..Default::default()
        }
    }

    fn read(partition: i32, offset: i64, id: &str) -> Read {
        Read { partition, offset, alert: AlertRow::new(&alert(id, 0, wire::AlertStatus::Opened), None) }
    }

    #[test]
    fn an_alert_becomes_a_row_and_a_non_alert_an_error() {
        let row = AlertRow::new(&alert("a", 2, wire::AlertStatus::Escalated), None).unwrap();
        assert_eq!((row.status, row.severity, row.severity_rank, row.revision), ("escalated", "high", 3, 2));
        assert_eq!(row.observed, Some((12.5, "hours".into())));
        assert_eq!(row.explanations, serde_json::json!({"sv": "x på svenska", "en": "x"}));
        assert_eq!(row.detected_at, SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600));
        let mut bad = alert("a", 0, wire::AlertStatus::Opened);
        bad.status = 0;
        assert!(AlertRow::new(&bad, None).unwrap_err().contains("status"));
        let mut bad = alert("", 0, wire::AlertStatus::Opened);
        assert!(AlertRow::new(&bad, None).unwrap_err().contains("alert_id"));
        bad.alert_id = "a".into();
        bad.detected_at = None;
        assert!(AlertRow::new(&bad, None).unwrap_err().contains("detected_at"));
        assert!(AlertRow::new(&wire::Alert::default(), None).is_err());
    }

    #[test]
    fn records_below_the_stored_position_are_skipped_and_positions_move_past_the_batch() {
        let batch = [read(0, 5, "a"), read(0, 6, "b"), read(1, 2, "c"), read(0, 7, "d"), read(2, 0, "e")];
        let positions = BTreeMap::from([(0, Some(6)), (1, Some(2)), (2, None)]);
        let plan = Plan::new(&batch, &positions);
        let ids: Vec<&str> = plan.rows.iter().map(|(_, _, r)| r.alert_id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "d", "e"]);
        assert_eq!(plan.already_stored, 1);
        assert_eq!(
            plan.moves,
            [
                Move { partition: 0, from: Some(6), to: 8 },
                Move { partition: 1, from: Some(2), to: 3 },
                Move { partition: 2, from: None, to: 1 }
            ]
        );
    }

    #[test]
    fn a_batch_read_twice_changes_nothing_the_second_time() {
        let batch = [read(0, 0, "a"), read(0, 1, "b")];
        let first = Plan::new(&batch, &BTreeMap::from([(0, None)]));
        let after: BTreeMap<i32, Option<i64>> = first.moves.iter().map(|m| (m.partition, Some(m.to))).collect();
        let second = Plan::new(&batch, &after);
        assert!(second.is_empty() && second.rows.is_empty());
        assert_eq!(second.already_stored, 2);
    }

    #[test]
    fn a_record_that_is_no_alert_moves_the_position_without_a_row() {
        let batch =
            [read(0, 3, "a"), Read { partition: 0, offset: 4, alert: Err("no alert_id".into()) }, read(0, 6, "b")];
        let plan = Plan::new(&batch, &BTreeMap::from([(0, Some(3))]));
        assert_eq!(plan.rows.len(), 2);
        assert_eq!(plan.not_alerts, [(0, 4, "no alert_id".to_string())]);
        // A gap (offset 5 absent) is fine: positions follow the records read.
        assert_eq!(plan.moves, [Move { partition: 0, from: Some(3), to: 7 }]);
    }

    #[test]
    #[should_panic(expected = "no stored position read for partition 4")]
    fn a_partition_whose_position_was_not_read_is_a_bug() {
        Plan::new(&[read(4, 0, "a")], &BTreeMap::new());
    }
}
