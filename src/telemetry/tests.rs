//! Tests across the telemetry module: events rendered through a local
//! Prometheus recorder, and the exposition checked by `promtool` when it is
//! installed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

use super::events::{
    AlertProduced, AlertRecordSkipped, AlertSuppressed, CheckpointFailed, ConsumerLag, DeliveryFailed, HeldRecords,
    InputsExpired, InternalRecordSkipped, InternalRecordsProduced, LateEventRouted, NotifyOutcome, OpenEpisodes,
    PartitionRestored, PeerDayRejected, PeerDecisionsLag, ProcessingLatency, ProducerQueueFull, Rebalance,
    RebalanceKind, RecordConsumed, RecordDeadLettered, ReferenceRecordRead, ReferenceTableState, RulesEntryRead,
    SinkDatabase, SinkOutcome, SinkRecords, SinkTransaction, SnapshotTrigger, SnapshotWritten, StaffOverLimit,
    StateDiscarded, StateGauges, StateRecordsSkipped, WatermarkLag, sink_alert_to_row,
};
use super::names;
use super::{Health, Loop, describe_all};
use tillsyn_core::alerting::{AlertStatus, Severity};
use tillsyn_core::engine::{Input, StateSize};
use tillsyn_core::model::EventTime;
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::validate::Validator;

/// One sample line of the text exposition.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The parsed exposition: `# TYPE` per family, `# HELP` per family, samples.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the subset of the text format the exporter writes (label
    /// values without escaped quotes). Panics on anything else.
    fn parse(text: &str) -> Self {
        let mut out = Exposition::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
                assert!(out.types.insert(name.to_owned(), kind.to_owned()).is_none(), "{name} typed twice");
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("bad HELP line {line:?}"));
                out.helps.insert(name.to_owned(), help.to_owned());
            } else if line.starts_with('#') {
                continue;
            } else {
                out.samples.push(Self::sample(line));
            }
        }
        out
    }

    fn sample(line: &str) -> Sample {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let labels = inner
                    .split("\",")
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name, labels)
            }
        };
        Sample { name: name.to_owned(), labels, value }
    }

    /// The value of the series `name{labels}` (labels in order), if present.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && s.labels.iter().zip(labels).all(|((k, v), (k2, v2))| k == k2 && v == v2)
            })
            .map(|s| s.value)
    }

    /// The family a sample belongs to (strips histogram suffixes).
    fn family_of<'a>(&self, sample: &'a str) -> &'a str {
        if self.types.contains_key(sample) {
            return sample;
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && self.types.get(base).map(String::as_str) == Some("histogram")
            {
                return base;
            }
        }
        sample
    }
}

fn recorder() -> PrometheusRecorder {
    match super::http::builder() {
        Ok(builder) => builder.build_recorder(),
        Err(e) => panic!("recorder configuration: {e:#}"),
    }
}

/// Emits one of every event (and readiness) into `recorder`.
fn emit_everything(recorder: &PrometheusRecorder) {
    let reason = Validator::new(Pseudonymizer::from_secret("telemetry-test"))
        .event(&tillsyn_core::proto::v1::Event::default())
        .expect_err("an empty envelope is invalid")
        .reason();
    metrics::with_local_recorder(recorder, || {
        describe_all();
        RecordConsumed { topic: "time-reports", kind: Input::TimeReports }.emit();
        RecordConsumed { topic: "invoices", kind: Input::Invoices }.emit();
        RecordDeadLettered { topic: "time-reports", partition: 3, offset: 17, reason }.emit();
        RecordDeadLettered {
            topic: "invoices",
            partition: 1,
            offset: 4,
            reason: tillsyn_core::decode::reason::PROTOBUF_DECODE,
        }
        .emit();
        LateEventRouted { input: Input::Invoices, behind_secs: 7_200 }.emit();
        AlertProduced::register_counters(&["time-reports", "invoices"], &["alerts", "staff-findings"]);
        RulesEntryRead::register();
        RulesEntryRead::Accepted { version: 2 }.emit();
        RulesEntryRead::Rejected.emit();
        RulesEntryRead::Sealed { through: EventTime(1_772_000_000) }.emit();
        AlertProduced { rule: "phantom-clients", severity: Severity::High, status: AlertStatus::Opened }.emit();
        AlertProduced { rule: "phantom-clients", severity: Severity::High, status: AlertStatus::Opened }.emit();
        AlertProduced { rule: "staff-impossible-day", severity: Severity::Critical, status: AlertStatus::Resolved }
            .emit();
        let size = StateSize { providers: 40, clients: 2_500, staff: 900, open_episodes: 12, pending_invoices: 3 };
        StateGauges { partition: 3, size }.emit();
        StateGauges { partition: 5, size: StateSize { clients: 100, ..size } }.emit();
        let open = BTreeMap::from([
            (("phantom-clients", Severity::High), 2),
            (("staff-impossible-day", Severity::Critical), 1),
        ]);
        OpenEpisodes { partition: 3, counts: &open }.emit();
        OpenEpisodes { partition: 5, counts: &open }.emit();
        // An episode resolved since: its series goes back to 0.
        OpenEpisodes { partition: 5, counts: &BTreeMap::from([(("phantom-clients", Severity::High), 2)]) }.emit();
        WatermarkLag::new(3, EventTime(400), UNIX_EPOCH + Duration::from_secs(1_000)).emit();
        ConsumerLag { topic: "time-reports", partition: 3, lag: 42 }.emit();
        ConsumerLag { topic: "invoices", partition: 3, lag: -1 }.emit();
        Rebalance { kind: RebalanceKind::Assign, partitions: &[("time-reports", 3), ("invoices", 3)], assigned: 2 }
            .emit();
        DeliveryFailed { topic: "alerts", error: &"Local: Message timed out" }.emit();
        for seconds in [3e-6, 2e-5, 2e-5, 0.5, 2.0] {
            ProcessingLatency { seconds }.emit();
        }
        ProcessingLatency::from_duration(Duration::from_micros(700)).emit();
        SnapshotWritten {
            partition: 3,
            trigger: SnapshotTrigger::Interval,
            bytes: 4_096,
            records: 2,
            written: 300,
            entities_written: 2,
            seconds: 0.25,
            offsets: (100, 7),
        }
        .emit();
        SnapshotWritten {
            partition: 3,
            trigger: SnapshotTrigger::Revoke,
            bytes: 5_000,
            records: 2,
            written: 200,
            entities_written: 1,
            seconds: 0.5,
            offsets: (120, 7),
        }
        .emit();
        PartitionRestored {
            partition: 3,
            from_snapshot: true,
            bytes: 5_000,
            entities: 12,
            records: 30,
            epoch: 2,
            suppressing: 2,
            offsets: (120, 7),
            seconds: 0.75,
        }
        .emit();
        AlertSuppressed { partition: 3 }.emit();
        PeerDayRejected { offset: 7 }.emit();
        ReferenceRecordRead { kind: "absences", outcome: "refused" }.emit();
        ReferenceTableState {
            facts: [("granted_hours", 5), ("absences", 2), ("provider_register", 1)],
            lag_secs: Some(90.0),
        }
        .emit();
        InternalRecordSkipped { partition: 3, offset: 9 }.emit();
        InternalRecordsProduced { topic: "visits-by-staff", records: 2, bytes: 4_000 }.emit();
        ProducerQueueFull { topic: "alerts" }.emit();
        AlertRecordSkipped { partition: 3, offset: 11 }.emit();
        StaffOverLimit { partition: 3, visits: 4, client_visits: 6 }.emit();
        HeldRecords { partition: 3, for_invoices: 2, for_rules: 5 }.emit();
        SinkRecords::register_counters();
        SinkRecords { outcome: SinkOutcome::Stored, records: 7 }.emit();
        SinkTransaction::Committed.emit();
        sink_alert_to_row(0.03);
        SinkDatabase { up: true, error: None }.emit();
        NotifyOutcome::register_counters();
        NotifyOutcome::Sent.emit(2);
        NotifyOutcome::FailedAttempt.emit(1);
        InternalRecordsProduced { topic: "visits-by-staff", records: 1, bytes: 96 }.emit();
        PeerDecisionsLag { partition: 3, days: 2 }.emit();
        let error = anyhow::anyhow!("not acknowledged within the budget");
        CheckpointFailed { partition: 3, trigger: SnapshotTrigger::Interval, error: &error }.emit();
        StateDiscarded { partition: 3, reason: "offsets_beyond_log", detail: "recreated" }.emit();
        InputsExpired { partition: 3, topic: "time-reports", next: 5, low: 9 }.emit();
        StateRecordsSkipped { partition: 3, records: 2 }.emit();
        let health = Health::new();
        health.set_ready(true);
        health.beat(Loop::Processing);
        health.beat(Loop::Consumer);
        health.emit_gauges(std::time::Instant::now());
    });
    // A registered handle keeps counting into the recorder it was
    // registered with, also outside `with_local_recorder`.
    let registered = metrics::with_local_recorder(recorder, || {
        RecordConsumed { topic: "time-reports", kind: Input::TimeReports }.register()
    });
    registered.clone().emit();
}

/// The exposition after [`emit_everything`].
fn sample_exposition() -> (PrometheusHandle, String) {
    let recorder = recorder();
    emit_everything(&recorder);
    let handle = recorder.handle();
    let text = handle.render();
    (handle, text)
}

#[test]
fn events_render_the_expected_series() {
    let (_, text) = sample_exposition();
    let e = Exposition::parse(&text);
    let v = |name: &str, labels: &[(&str, &str)]| {
        e.value(name, labels).unwrap_or_else(|| panic!("no series {name}{labels:?} in\n{text}"))
    };
    assert_eq!(v(names::CONSUMED_RECORDS, &[("topic", "time-reports"), ("kind", "time_report")]), 2.0);
    assert_eq!(v(names::CONSUMED_RECORDS, &[("topic", "invoices"), ("kind", "invoice")]), 1.0);
    assert_eq!(v(names::DEAD_LETTERED_RECORDS, &[("topic", "time-reports"), ("reason", "missing_field")]), 1.0);
    assert_eq!(v(names::DEAD_LETTERED_RECORDS, &[("topic", "invoices"), ("reason", "protobuf_decode")]), 1.0);
    assert_eq!(v(names::LATE_EVENTS, &[("input", "invoice")]), 1.0);
    assert_eq!(
        v(names::PRODUCED_ALERTS, &[("rule", "phantom-clients"), ("severity", "high"), ("status", "opened")]),
        2.0
    );
    assert_eq!(
        v(
            names::PRODUCED_ALERTS,
            &[("rule", "staff-impossible-day"), ("severity", "critical"), ("status", "resolved")]
        ),
        1.0
    );
    assert_eq!(v(names::STATE_PROVIDERS, &[("partition", "3")]), 40.0);
    assert_eq!(v(names::STATE_CLIENTS, &[("partition", "3")]), 2_500.0);
    assert_eq!(v(names::STATE_CLIENTS, &[("partition", "5")]), 100.0);
    assert_eq!(v(names::STATE_STAFF, &[("partition", "3")]), 900.0);
    let open = |p: &str, rule: &str, severity: &str| {
        v(names::OPEN_EPISODES, &[("partition", p), ("rule", rule), ("severity", severity)])
    };
    assert_eq!(open("3", "phantom-clients", "high"), 2.0);
    assert_eq!(open("3", "staff-impossible-day", "critical"), 1.0);
    assert_eq!(open("3", "phantom-clients", "low"), 0.0, "every rule and severity has a series");
    assert_eq!(open("5", "staff-impossible-day", "critical"), 0.0, "resolved since");
    assert_eq!(v(names::DEAD_LETTERED_RECORDS, &[("topic", "invoices"), ("reason", "total_mismatch")]), 0.0);
    assert_eq!(v(names::LATE_EVENTS, &[("input", "time_report")]), 0.0, "from the start");
    assert_eq!(v(names::PRODUCER_DELIVERY_FAILURES, &[("topic", "staff-findings")]), 0.0);
    assert_eq!(v(names::STATE_CHECKPOINT_FAILURES, &[("trigger", "takeover")]), 0.0);
    assert_eq!(v(names::STATE_RESTORES, &[("from", "empty")]), 0.0);
    assert_eq!(v(names::RULES_CHANGES, &[("outcome", "accepted")]), 1.0);
    assert_eq!(v(names::RULES_CHANGES, &[("outcome", "skipped")]), 0.0);
    assert_eq!(v(names::RULES_VERSION, &[]), 2.0);
    assert_eq!(v(names::RULES_SEALED_THROUGH, &[]), 1_772_000_000.0);
    let series = e.samples.iter().filter(|s| s.name == names::PRODUCED_ALERTS).count();
    assert_eq!(series, tillsyn_core::rules::ALL.len() * Severity::ALL.len() * 3, "every alert counter from the start");
    assert_eq!(
        v(names::PRODUCED_ALERTS, &[("rule", "duplicate-billing"), ("severity", "critical"), ("status", "opened")]),
        0.0
    );
    let series = e.samples.iter().filter(|s| s.name == names::OPEN_EPISODES).count();
    assert_eq!(series, 2 * tillsyn_core::rules::ALL.len() * Severity::ALL.len());
    assert_eq!(v(names::PENDING_INVOICES, &[("partition", "3")]), 3.0);
    assert_eq!(v(names::WATERMARK_LAG_SECONDS, &[("partition", "3")]), 600.0);
    assert_eq!(v(names::CONSUMER_LAG_MESSAGES, &[("topic", "time-reports"), ("partition", "3")]), 42.0);
    assert_eq!(e.value(names::CONSUMER_LAG_MESSAGES, &[("topic", "invoices"), ("partition", "3")]), None);
    assert_eq!(v(names::CONSUMER_REBALANCES, &[("kind", "assign")]), 1.0);
    assert_eq!(v(names::ASSIGNED_PARTITIONS, &[]), 2.0);
    assert_eq!(v(names::PRODUCER_DELIVERY_FAILURES, &[("topic", "alerts")]), 1.0);
    assert_eq!(v(names::SERVICE_READY, &[]), 1.0);
    assert_eq!(v(names::STATE_SNAPSHOTS, &[("trigger", "interval")]), 1.0);
    assert_eq!(v(names::STATE_SNAPSHOTS, &[("trigger", "revoke")]), 1.0);
    assert_eq!(v(names::STATE_SNAPSHOT_BYTES, &[("partition", "3")]), 5_000.0, "the last snapshot's size");
    assert_eq!(v(names::STATE_SNAPSHOT_SECONDS, &[("partition", "3")]), 0.5);
    assert_eq!(v(names::STATE_RESTORES, &[("from", "snapshot")]), 1.0);
    assert_eq!(v(names::STATE_RESTORE_SECONDS, &[("partition", "3")]), 0.75);
    assert_eq!(v(names::SUPPRESSED_ALERTS, &[]), 1.0);
    assert_eq!(v(names::PEER_DAYS_REJECTED, &[]), 1.0);
    assert_eq!(v(names::REFERENCE_RECORDS, &[("kind", "absences"), ("outcome", "refused")]), 1.0);
    assert_eq!(v(names::REFERENCE_FACTS, &[("kind", "granted_hours")]), 5.0);
    assert_eq!(v(names::REFERENCE_LAG_SECONDS, &[]), 90.0);
    assert_eq!(v(names::INTERNAL_RECORDS_SKIPPED, &[]), 1.0);
    assert_eq!(v(names::INTERNAL_RECORDS_PRODUCED, &[("topic", "visits-by-staff")]), 3.0);
    assert_eq!(v(names::PRODUCER_QUEUE_FULL, &[("topic", "alerts")]), 1.0);
    assert_eq!(v(names::ALERT_RECORDS_SKIPPED, &[]), 1.0);
    assert_eq!(v(names::STAFF_OVER_LIMIT, &[("partition", "3")]), 4.0);
    assert_eq!(v(names::CLIENT_VISITS_OVER_LIMIT, &[("partition", "3")]), 6.0);
    assert_eq!(v(names::HELD_RECORDS, &[("partition", "3"), ("waiting_for", "invoices")]), 2.0);
    assert_eq!(v(names::HELD_RECORDS, &[("partition", "3"), ("waiting_for", "rules")]), 5.0);
    assert_eq!(v(names::SINK_RECORDS, &[("outcome", "stored")]), 7.0);
    assert_eq!(v(names::SINK_RECORDS, &[("outcome", "not_an_alert")]), 0.0, "from the start");
    assert_eq!(v(names::SINK_TRANSACTIONS, &[("outcome", "committed")]), 1.0);
    assert_eq!(v(names::SINK_TRANSACTIONS, &[("outcome", "fenced")]), 0.0, "from the start");
    assert_eq!(v(&format!("{}_bucket", names::SINK_ALERT_TO_ROW_SECONDS), &[("le", "0.05")]), 1.0);
    assert_eq!(v(names::SINK_DATABASE_UP, &[]), 1.0);
    assert_eq!(v(names::NOTIFY_ALERTS, &[("outcome", "sent")]), 2.0);
    assert_eq!(v(names::NOTIFY_ALERTS, &[("outcome", "refused")]), 0.0, "from the start");
    assert_eq!(v(names::NOTIFY_FAILED_ATTEMPTS, &[]), 1.0);
    assert_eq!(v(names::INTERNAL_BYTES_PRODUCED, &[("topic", "visits-by-staff")]), 4_096.0);
    assert_eq!(v(names::PEER_DECISIONS_LAG_SECONDS, &[("partition", "3")]), 2.0 * 86_400.0);

    // The latency histogram: cumulative buckets from the configured bounds.
    let h = names::RECORD_PROCESSING_SECONDS;
    let bucket = |le: &str| v(&format!("{h}_bucket"), &[("le", le)]);
    assert_eq!(e.types.get(h).map(String::as_str), Some("histogram"), "{text}");
    assert_eq!(bucket("0.000001"), 0.0);
    assert_eq!(bucket("0.000005"), 1.0);
    assert_eq!(bucket("0.000025"), 3.0);
    assert_eq!(bucket("0.001"), 4.0);
    assert_eq!(bucket("0.5"), 5.0);
    assert_eq!(bucket("1"), 5.0);
    assert_eq!(bucket("+Inf"), 6.0);
    assert_eq!(v(&format!("{h}_count"), &[]), 6.0);
    let sum = v(&format!("{h}_sum"), &[]);
    assert!((sum - (3e-6 + 4e-5 + 0.5 + 2.0 + 7e-4)).abs() < 1e-9, "sum {sum}");
    let buckets = e.samples.iter().filter(|s| s.name == format!("{h}_bucket")).count();
    assert_eq!(buckets, names::LATENCY_BUCKETS.len() + 1, "one bucket per bound and +Inf");
}

#[test]
fn every_listed_metric_is_emitted_typed_and_described_and_nothing_else() {
    let (_, text) = sample_exposition();
    let e = Exposition::parse(&text);
    let listed: BTreeSet<&str> = names::ALL.iter().map(|&(n, _, _)| n).collect();
    let rendered: BTreeSet<&str> = e.types.keys().map(String::as_str).collect();
    assert_eq!(rendered, listed, "families rendered vs. names::ALL");
    for &(name, kind, help) in names::ALL {
        assert_eq!(e.types.get(name).map(String::as_str), Some(kind.exposition_type()), "type of {name}");
        assert_eq!(e.helps.get(name).map(String::as_str), Some(help), "help of {name}");
    }
    for sample in &e.samples {
        let family = e.family_of(&sample.name);
        assert!(names::kind_of(family).is_some(), "sample {} of an unlisted family", sample.name);
    }
}

#[test]
fn labels_come_from_bounded_sets_only() {
    let (_, text) = sample_exposition();
    let e = Exposition::parse(&text);
    let topics = ["time-reports", "invoices", "alerts", "peer-days", "visits-by-staff", "staff-findings"];
    for sample in &e.samples {
        for (key, value) in &sample.labels {
            let ok = match key.as_str() {
                "topic" => topics.contains(&value.as_str()),
                "kind" => {
                    ["time_report", "invoice", "assign", "revoke", "granted_hours", "absences", "provider_register"]
                        .contains(&value.as_str())
                }
                "input" => ["time_report", "invoice"].contains(&value.as_str()),
                "partition" => value.parse::<u16>().is_ok(),
                "rule" => tillsyn_core::rules::by_id(value).is_some(),
                "severity" => ["low", "medium", "high", "critical"].contains(&value.as_str()),
                "status" => ["opened", "escalated", "resolved"].contains(&value.as_str()),
                "reason" => value.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "trigger" => ["interval", "idle", "revoke", "shutdown", "takeover"].contains(&value.as_str()),
                "from" => ["snapshot", "empty"].contains(&value.as_str()),
                "le" => sample.name.ends_with("_bucket"),
                "loop" => Loop::ALL.iter().any(|l| l.name() == value),
                "outcome" => [
                    "accepted",
                    "rejected",
                    "skipped",
                    "stored",
                    "already_stored",
                    "not_an_alert",
                    "committed",
                    "fenced",
                    "failed",
                    "sent",
                    "refused",
                    "applied",
                    "heartbeat",
                ]
                .contains(&value.as_str()),
                "waiting_for" => ["invoices", "rules"].contains(&value.as_str()),
                _ => false,
            };
            assert!(ok, "label {key}={value:?} on {} is not from a bounded set", sample.name);
        }
    }
}

#[test]
fn revoking_zeroes_the_partitions_series_and_keeps_the_others() {
    let recorder = recorder();
    emit_everything(&recorder);
    metrics::with_local_recorder(&recorder, || {
        Rebalance { kind: RebalanceKind::Revoke, partitions: &[("time-reports", 3), ("invoices", 3)], assigned: 0 }
            .emit();
    });
    let text = recorder.handle().render();
    let e = Exposition::parse(&text);
    let v = |name: &str, labels: &[(&str, &str)]| {
        e.value(name, labels).unwrap_or_else(|| panic!("no series {name}{labels:?} in\n{text}"))
    };
    assert_eq!(v(names::CONSUMER_REBALANCES, &[("kind", "revoke")]), 1.0);
    assert_eq!(v(names::CONSUMER_REBALANCES, &[("kind", "assign")]), 1.0);
    assert_eq!(v(names::ASSIGNED_PARTITIONS, &[]), 0.0);
    for gauge in [
        names::STATE_PROVIDERS,
        names::STATE_CLIENTS,
        names::STATE_STAFF,
        names::PENDING_INVOICES,
        names::WATERMARK_LAG_SECONDS,
    ] {
        assert_eq!(v(gauge, &[("partition", "3")]), 0.0, "{gauge} of the revoked partition");
    }
    let open: Vec<(&str, f64)> = e
        .samples
        .iter()
        .filter(|s| s.name == names::OPEN_EPISODES)
        .map(|s| (s.labels.iter().find(|(k, _)| k == "partition").map_or("", |(_, v)| v.as_str()), s.value))
        .collect();
    assert!(open.iter().filter(|(p, _)| *p == "3").all(|(_, v)| *v == 0.0), "open episodes of the revoked partition");
    assert!(open.iter().any(|(p, v)| *p == "5" && *v == 2.0), "other partitions' open episodes untouched");
    assert_eq!(v(names::STATE_CLIENTS, &[("partition", "5")]), 100.0, "other partitions untouched");
    assert_eq!(v(names::CONSUMER_LAG_MESSAGES, &[("topic", "time-reports"), ("partition", "3")]), 0.0);
    assert_eq!(v(names::CONSUMER_LAG_MESSAGES, &[("topic", "invoices"), ("partition", "3")]), 0.0);
}

#[test]
fn describe_all_without_a_recorder_is_harmless() {
    // No global recorder in unit tests: the macros go to the no-op recorder.
    describe_all();
    RecordConsumed { topic: "t", kind: Input::TimeReports }.emit();
}

/// Runs `promtool check metrics` on `exposition`; `None` if promtool is not
/// installed, else its success and output.
fn promtool_check(exposition: &str) -> Option<(bool, String)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running promtool: {e}"),
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(exposition.as_bytes()).expect("writing to promtool");
    drop(stdin);
    let output = child.wait_with_output().expect("waiting for promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Some((output.status.success(), text))
}

#[test]
fn promtool_accepts_the_exposition() {
    let (_, text) = sample_exposition();
    let Some((ok, output)) = promtool_check(&text) else {
        if std::env::var("TILLSYN_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
            panic!("TILLSYN_REQUIRE_PROMTOOL=1 but promtool is not on PATH: install it (Debian package `prometheus`)");
        }
        eprintln!(
            "promtool not found: skipped `promtool check metrics` (set TILLSYN_REQUIRE_PROMTOOL=1 to require it)"
        );
        return;
    };
    assert!(ok, "promtool check metrics rejected the exposition:\n{output}\n--- exposition ---\n{text}");
    // And the check can fail: promtool must reject a counter without
    // `_total` and without help, or this test proves nothing.
    let (bad_ok, bad_output) =
        promtool_check("# TYPE tillsyn_bad_counter counter\ntillsyn_bad_counter 1\n").expect("promtool ran once");
    assert!(!bad_ok, "promtool accepted a badly named counter:\n{bad_output}");
}
