//! Every metric tillsyn exports, in one place.
//!
//! Names follow `tillsyn_<noun>_<unit>[_total]` in lowercase snake case:
//! counters end in `_total`, durations are in seconds (`_seconds`), and
//! counts of things use the thing as the unit (`_records_total`,
//! `_partitions`). [`ALL`] lists each name with its kind and help text;
//! [`describe_all`](super::describe_all) registers them with the recorder at
//! startup so every family has a `# HELP` line.
//!
//! Labels take values from bounded sets only: topic (configured), partition
//! (the topics' partition count), rule id, severity, alert status,
//! dead-letter reason and input. No label ever carries a provider, client or
//! staff identifier or any other value taken from a record.
//!
//! The gauges labelled `partition` are per engine (one engine per assigned
//! partition number of the co-partitioned input topics); sum them for the
//! instance (`sum without (partition) (tillsyn_state_clients)`). When a
//! partition is revoked, its series are set to 0 (see
//! [`Rebalance`](super::events::Rebalance)), so sums stay right.

/// The kind of a metric, as Prometheus types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonic counter (`# TYPE … counter`); its name ends in `_total`.
    Counter,
    /// A value that goes up and down (`# TYPE … gauge`).
    Gauge,
    /// A bucketed distribution (`# TYPE … histogram`).
    Histogram,
}

impl MetricKind {
    /// The type as written on a `# TYPE` line of the text exposition.
    pub fn exposition_type(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Counter. Records read from an input topic, before decoding.
/// Labels: `topic`, `kind` (`time_report` | `invoice`).
pub const CONSUMED_RECORDS: &str = "tillsyn_consumed_records_total";

/// Counter. Records that failed decoding or validation and were sent to the
/// dead-letter topic. Labels: `topic` (the input topic), `reason` (a stable
/// code: `ValidationError::reason()` or one of
/// [`tillsyn_core::decode::reason`]).
pub const DEAD_LETTERED_RECORDS: &str = "tillsyn_dead_lettered_records_total";

/// Counter. Events that arrived behind their input's watermark and were
/// routed aside instead of applied. Labels: `input` (`time_report` | `invoice`).
pub const LATE_EVENTS: &str = "tillsyn_late_events_total";

/// Counter. Alerts produced to the alert topic. Labels: `rule` (rule id),
/// `severity` (`low` | `medium` | `high` | `critical`), `status` (`opened` |
/// `escalated` | `resolved`).
pub const PRODUCED_ALERTS: &str = "tillsyn_produced_alerts_total";

/// Counter. Consumer-group rebalance callbacks. Labels: `kind` (`assign` |
/// `revoke`).
pub const CONSUMER_REBALANCES: &str = "tillsyn_consumer_rebalances_total";

/// Counter. Messages the producer failed to deliver (alerts, dead letters,
/// late events). Labels: `topic` (the destination topic).
pub const PRODUCER_DELIVERY_FAILURES: &str = "tillsyn_producer_delivery_failures_total";

/// Gauge. Providers held in an engine's state. Labels: `partition`.
pub const STATE_PROVIDERS: &str = "tillsyn_state_providers";

/// Gauge. (provider, client) pairs held in an engine's state. Labels: `partition`.
pub const STATE_CLIENTS: &str = "tillsyn_state_clients";

/// Gauge. Staff members held in an engine's state. Labels: `partition`.
pub const STATE_STAFF: &str = "tillsyn_state_staff";

/// Gauge. Alert episodes open in an engine. Labels: `partition`.
pub const OPEN_EPISODES: &str = "tillsyn_open_episodes";

/// Gauge. Invoices waiting in an engine for their period's time reports to
/// be complete. Labels: `partition`.
pub const PENDING_INVOICES: &str = "tillsyn_pending_invoices";

/// Gauge. Records a partition holds back, by what they wait for
/// (`waiting_for`: `invoices`, time reports waiting for the invoice
/// partition to catch up; `rules`, records waiting for the rules topic's
/// seal). Labels: `partition`, `waiting_for`.
pub const HELD_RECORDS: &str = "tillsyn_held_records";

/// Counter. Alert records `tillsyn sink postgres` handled, by `outcome`:
/// `stored` (a new row, in a committed transaction), `already_stored` (read
/// again after a restart or a rebalance: behind the stored position, or its
/// alert id already a row), `not_an_alert` (skipped, not written by tillsyn).
pub const SINK_RECORDS: &str = "tillsyn_sink_records_total";

/// Counter. Transactions of `tillsyn sink postgres`, by `outcome`:
/// `committed`, `fenced` (another member had moved a partition's stored
/// position: rolled back, positions read again), `failed` (the database
/// did not answer or refused: retried with backoff).
pub const SINK_TRANSACTIONS: &str = "tillsyn_sink_transactions_total";

/// Histogram. Seconds from an alert's record on the alert topic (its
/// timestamp) to the commit of its row ([`SINK_LATENCY_BUCKETS`]).
pub const SINK_ALERT_TO_ROW_SECONDS: &str = "tillsyn_sink_alert_to_row_seconds";

/// Gauge. 1 while `tillsyn sink postgres` has a working database connection.
pub const SINK_DATABASE_UP: &str = "tillsyn_sink_database_up";

/// Counter. Alerts `tillsyn notify` handled, by `outcome`: `sent` (in a
/// post or digest the receiver accepted), `skipped` (not qualifying: below
/// the severity, resolved, already posted, or no alert), `refused` (the
/// receiver refused the post for good: a 4xx other than 408 and 429).
pub const NOTIFY_ALERTS: &str = "tillsyn_notify_alerts_total";

/// Counter. Posts of `tillsyn notify` that failed and were tried again
/// (network, 5xx, 408, 429).
pub const NOTIFY_FAILED_ATTEMPTS: &str = "tillsyn_notify_failed_attempts_total";

/// Gauge. How far an engine's time-report watermark (event time) is behind
/// the wall clock, in seconds. Labels: `partition`.
pub const WATERMARK_LAG_SECONDS: &str = "tillsyn_watermark_lag_seconds";

/// Gauge. Messages between the committed offset and the high watermark of a
/// partition, from librdkafka statistics (`consumer_lag`). Labels: `topic`,
/// `partition`.
pub const CONSUMER_LAG_MESSAGES: &str = "tillsyn_consumer_lag_messages";

/// Gauge. Topic partitions currently assigned to this group member, over all
/// input topics. No labels.
pub const ASSIGNED_PARTITIONS: &str = "tillsyn_assigned_partitions";

/// Gauge. 1 when the service is ready (`GET /readyz` answers 200), else 0.
/// No labels.
pub const SERVICE_READY: &str = "tillsyn_service_ready";
/// Counter, label `outcome` (`accepted`, `rejected`, `skipped`): entries
/// of the rules topic that proposed a change of the rules' configuration.
pub const RULES_CHANGES: &str = "tillsyn_rules_changes_total";
/// Gauge: the newest accepted version of the rules' configuration (0: the
/// configuration file's).
pub const RULES_VERSION: &str = "tillsyn_rules_version";
/// Gauge: event time (Unix seconds) through which the rules topic is
/// sealed: decisions up to it may be made.
pub const RULES_SEALED_THROUGH: &str = "tillsyn_rules_sealed_through_seconds";
/// Gauge, label `loop` (`processing`, `consumer`): seconds since the loop
/// last made progress; `/healthz` reports the process stuck past
/// `http.stuck_after`. Set when `/metrics` is scraped.
pub const LOOP_SECONDS_SINCE_PROGRESS: &str = "tillsyn_loop_seconds_since_progress";

/// Histogram. Wall-clock time to handle one record (decode, validate,
/// engine, hand alerts to the producer), in seconds. No labels. Buckets
/// from 1 µs to 1 s ([`LATENCY_BUCKETS`]).
pub const RECORD_PROCESSING_SECONDS: &str = "tillsyn_record_processing_seconds";

/// Counter. Snapshots of a partition's state written to the state topic
/// and acknowledged, by `trigger` (`interval`, `idle`, `revoke`,
/// `shutdown`).
pub const STATE_SNAPSHOTS: &str = "tillsyn_state_snapshots_total";

/// Gauge. Size in bytes of a partition's state at its last checkpoint
/// (every entity; a checkpoint writes the ones that changed). Label
/// `partition`.
pub const STATE_SNAPSHOT_BYTES: &str = "tillsyn_state_snapshot_bytes";

/// Gauge. Seconds the last snapshot of a partition took: serialize, produce,
/// acknowledgement, commit. Label `partition`.
pub const STATE_SNAPSHOT_SECONDS: &str = "tillsyn_state_snapshot_seconds";

/// Counter. Bytes written to the state topic by checkpoints (keys and
/// values of changed entities, tombstones, manifests). No labels.
pub const STATE_CHECKPOINT_WRITTEN_BYTES: &str = "tillsyn_state_checkpoint_written_bytes_total";

/// Counter. Entities of the state (engine, providers, clients, staff)
/// written by checkpoints because they changed. No labels.
pub const STATE_CHECKPOINT_ENTITIES: &str = "tillsyn_state_checkpoint_entities_written_total";

/// Counter. Checkpoints not acknowledged within their budget, by
/// `trigger`: the partition goes on and is checkpointed again later, in
/// full (a new rebase of its epoch).
pub const STATE_CHECKPOINT_FAILURES: &str = "tillsyn_state_checkpoint_failures_total";

/// Counter. Restores that found a checkpoint they could not use and
/// rebuilt the partition's state from its inputs, by `reason`
/// (`corrupt`, `format`, `configuration`, `offsets_beyond_log`).
pub const STATE_DISCARDED: &str = "tillsyn_state_checkpoints_discarded_total";

/// Counter. Restores whose checkpoint covers input records no longer in
/// the log (retention removed records it had not processed). No labels.
pub const STATE_INPUTS_EXPIRED: &str = "tillsyn_state_inputs_expired_total";

/// Counter. Records of the state topic a restore ignored: not written by
/// this format of tillsyn for this partition. No labels.
pub const STATE_RECORDS_SKIPPED: &str = "tillsyn_state_records_skipped_total";

/// Counter. Partitions taken over, by `from`: `snapshot` (state restored),
/// `empty` (no snapshot: the inputs are replayed from their beginning).
pub const STATE_RESTORES: &str = "tillsyn_state_restores_total";

/// Gauge. Seconds the last restore of a partition took (read the snapshot
/// and the alerts produced since). Label `partition`.
pub const STATE_RESTORE_SECONDS: &str = "tillsyn_state_restore_seconds";

/// Counter. Alerts a replay after a restore computed again and did not
/// produce, because the alert topic already holds them. No labels.
pub const SUPPRESSED_ALERTS: &str = "tillsyn_replayed_alerts_suppressed_total";

/// Counter. Records of the peer-days topic that did not decode and were
/// skipped by the global peer table. No labels.
pub const PEER_DAYS_REJECTED: &str = "tillsyn_peer_table_rejected_records_total";

/// Counter. Records of the reference-data topics the instance's global
/// reader took into its reference table or skipped. Labels: `kind`
/// (`granted_hours` | `absences` | `provider_register`), `outcome`
/// (`applied`, `heartbeat`, or `refused`: not decoded, not valid, or
/// registered behind its source's progress; the owner of its partition
/// dead-letters it).
pub const REFERENCE_RECORDS: &str = "tillsyn_reference_records_total";

/// Gauge. Facts the reference table holds. Label `kind`.
pub const REFERENCE_FACTS: &str = "tillsyn_reference_facts";

/// Gauge. How far the time the reference data is known through (the
/// slowest partition of its topics) is behind the wall clock, in seconds:
/// every day decision waits for it. No labels.
pub const REFERENCE_LAG_SECONDS: &str = "tillsyn_reference_lag_seconds";

/// Counter. Records of the staff stage's internal topics (visits by staff,
/// staff findings) that did not decode and were skipped. No labels.
pub const INTERNAL_RECORDS_SKIPPED: &str = "tillsyn_internal_records_skipped_total";

/// Counter. Records of the alert topic that are no alert (nothing tillsyn
/// wrote: no id header, not decodable), skipped when a restore reads the
/// alerts back. No labels.
pub const ALERT_RECORDS_SKIPPED: &str = "tillsyn_alert_records_skipped_total";

/// Gauge. Visits of new staff members a partition's staff stage left out of
/// the staff rules since it started from its state, because it held
/// `core.limits.staff` staff members already (a flood of new references).
/// Label `partition`.
pub const STAFF_OVER_LIMIT: &str = "tillsyn_staff_visits_over_limit";

/// Gauge. Client copies of visits of new clients a partition's staff stage
/// left out of the client rules since it started from its state, because
/// it held `core.limits.clients` clients already. Label `partition`.
pub const CLIENT_VISITS_OVER_LIMIT: &str = "tillsyn_client_visits_over_limit";

/// Counter. Records that found the producer's queue full and waited for
/// room (back-pressure from a slow broker), by topic.
pub const PRODUCER_QUEUE_FULL: &str = "tillsyn_producer_queue_full_waits_total";

/// Counter. Records produced to the internal topics, by topic
/// (`peer-days`, `visits-by-staff`, `staff-findings`).
pub const INTERNAL_RECORDS_PRODUCED: &str = "tillsyn_internal_records_produced_total";

/// Counter. Bytes (record values) produced to the internal topics, by
/// topic: the broker traffic the global table and the staff stage add.
pub const INTERNAL_BYTES_PRODUCED: &str = "tillsyn_internal_bytes_produced_total";

/// Gauge. Event time (seconds, whole days) a partition has closed but not
/// yet decided, because not every partition of the provider stage has
/// closed it (peer statistics are not final): how far peer decisions wait
/// for the slowest partition. Label `partition`.
pub const PEER_DECISIONS_LAG_SECONDS: &str = "tillsyn_peer_decisions_lag_seconds";

/// Upper bounds (seconds) of the buckets of [`SINK_ALERT_TO_ROW_SECONDS`]:
/// from 5 ms (a batch written at once) to a minute (a database outage).
pub const SINK_LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Upper bounds (seconds) of the buckets of [`RECORD_PROCESSING_SECONDS`]:
/// 1-2.5-5 steps from 1 µs to 1 s. A record normally takes a few
/// microseconds (the core alone handles about 3 M events/s), so the buckets
/// reach down to 1 µs, below the 10 µs .. 1 s range of interest, and end at
/// 1 s, beyond which a record is an incident whatever its exact time.
pub const LATENCY_BUCKETS: &[f64] = &[
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
    1.0,
];

/// Every metric: name, kind and help text (the `# HELP` line).
pub const ALL: &[(&str, MetricKind, &str)] = &[
    (CONSUMED_RECORDS, MetricKind::Counter, "Records read from an input topic, by topic and kind."),
    (
        DEAD_LETTERED_RECORDS,
        MetricKind::Counter,
        "Records that failed decoding or validation and went to the dead-letter topic, by input topic and reason.",
    ),
    (LATE_EVENTS, MetricKind::Counter, "Events behind their input's watermark, routed aside instead of applied."),
    (PRODUCED_ALERTS, MetricKind::Counter, "Alerts produced, by rule, severity and status."),
    (CONSUMER_REBALANCES, MetricKind::Counter, "Consumer-group rebalances, by kind (assign or revoke)."),
    (PRODUCER_DELIVERY_FAILURES, MetricKind::Counter, "Messages the producer failed to deliver, by topic."),
    (STATE_PROVIDERS, MetricKind::Gauge, "Providers held in an engine's state."),
    (STATE_CLIENTS, MetricKind::Gauge, "Provider-client pairs held in an engine's state."),
    (STATE_STAFF, MetricKind::Gauge, "Staff members held in an engine's state."),
    (OPEN_EPISODES, MetricKind::Gauge, "Alert episodes open in an engine, by rule and current severity."),
    (PENDING_INVOICES, MetricKind::Gauge, "Invoices waiting for their period's time reports to be complete."),
    (SINK_RECORDS, MetricKind::Counter, "Alert records the PostgreSQL sink handled, by outcome."),
    (SINK_TRANSACTIONS, MetricKind::Counter, "Transactions of the PostgreSQL sink, by outcome."),
    (
        SINK_ALERT_TO_ROW_SECONDS,
        MetricKind::Histogram,
        "Seconds from an alert's record on the alert topic to the commit of its row.",
    ),
    (SINK_DATABASE_UP, MetricKind::Gauge, "1 while the PostgreSQL sink has a working database connection."),
    (NOTIFY_ALERTS, MetricKind::Counter, "Alerts the notifier handled, by outcome."),
    (NOTIFY_FAILED_ATTEMPTS, MetricKind::Counter, "Posts of the notifier that failed and were tried again."),
    (HELD_RECORDS, MetricKind::Gauge, "Records a partition holds back, by what they wait for (invoices or rules)."),
    (
        WATERMARK_LAG_SECONDS,
        MetricKind::Gauge,
        "Seconds the time-report watermark (event time) is behind the wall clock.",
    ),
    (CONSUMER_LAG_MESSAGES, MetricKind::Gauge, "Messages behind the high watermark, from librdkafka statistics."),
    (ASSIGNED_PARTITIONS, MetricKind::Gauge, "Topic partitions assigned to this group member."),
    (SERVICE_READY, MetricKind::Gauge, "1 when the service is ready, else 0."),
    (RULES_CHANGES, MetricKind::Counter, "Changes of the rules' configuration read from the rules topic, by outcome."),
    (RULES_VERSION, MetricKind::Gauge, "The newest accepted version of the rules' configuration."),
    (
        RULES_SEALED_THROUGH,
        MetricKind::Gauge,
        "Event time (Unix seconds) through which the rules' configuration is sealed.",
    ),
    (
        LOOP_SECONDS_SINCE_PROGRESS,
        MetricKind::Gauge,
        "Seconds since a loop of the service (processing, consumer) last made progress.",
    ),
    (STATE_SNAPSHOTS, MetricKind::Counter, "Snapshots of a partition's state written and acknowledged, by trigger."),
    (STATE_SNAPSHOT_BYTES, MetricKind::Gauge, "Size of a partition's state at its last checkpoint, in bytes."),
    (STATE_SNAPSHOT_SECONDS, MetricKind::Gauge, "Seconds a partition's last snapshot took, write to commit."),
    (STATE_CHECKPOINT_WRITTEN_BYTES, MetricKind::Counter, "Bytes checkpoints wrote to the state topic."),
    (STATE_CHECKPOINT_ENTITIES, MetricKind::Counter, "State entities checkpoints wrote because they changed."),
    (
        STATE_CHECKPOINT_FAILURES,
        MetricKind::Counter,
        "Checkpoints not acknowledged within their budget, by trigger (retried later, in full).",
    ),
    (
        STATE_DISCARDED,
        MetricKind::Counter,
        "Checkpoints a restore could not use (state rebuilt from the inputs), by reason.",
    ),
    (STATE_INPUTS_EXPIRED, MetricKind::Counter, "Restores whose checkpoint covers records no longer in the input log."),
    (STATE_RECORDS_SKIPPED, MetricKind::Counter, "State-topic records a restore ignored (not this format's)."),
    (STATE_RESTORES, MetricKind::Counter, "Partitions taken over, by where their state came from (snapshot or empty)."),
    (STATE_RESTORE_SECONDS, MetricKind::Gauge, "Seconds a partition's last restore took."),
    (
        SUPPRESSED_ALERTS,
        MetricKind::Counter,
        "Alerts recomputed by a replay and not produced again: already on the alert topic.",
    ),
    (PEER_DAYS_REJECTED, MetricKind::Counter, "Records of the peer-days topic that did not decode and were skipped."),
    (
        REFERENCE_RECORDS,
        MetricKind::Counter,
        "Records of the reference-data topics taken into the reference table or skipped, by kind and outcome.",
    ),
    (REFERENCE_FACTS, MetricKind::Gauge, "Facts the reference table holds, by kind."),
    (
        REFERENCE_LAG_SECONDS,
        MetricKind::Gauge,
        "How far the time the reference data is known through is behind the wall clock.",
    ),
    (
        INTERNAL_RECORDS_SKIPPED,
        MetricKind::Counter,
        "Records of the staff stage's internal topics that did not decode and were skipped.",
    ),
    (
        STAFF_OVER_LIMIT,
        MetricKind::Gauge,
        "Visits of new staff members left out of the staff rules at the staff stage's cap.",
    ),
    (
        CLIENT_VISITS_OVER_LIMIT,
        MetricKind::Gauge,
        "Visits of new clients left out of the client rules at the staff stage's client cap.",
    ),
    (
        ALERT_RECORDS_SKIPPED,
        MetricKind::Counter,
        "Records of the alert topic that are no alert, skipped when a restore reads the alerts back.",
    ),
    (
        PRODUCER_QUEUE_FULL,
        MetricKind::Counter,
        "Records that found the producer's queue full and waited for room, by topic.",
    ),
    (INTERNAL_RECORDS_PRODUCED, MetricKind::Counter, "Records produced to the internal topics, by topic."),
    (INTERNAL_BYTES_PRODUCED, MetricKind::Counter, "Bytes of record values produced to the internal topics, by topic."),
    (
        PEER_DECISIONS_LAG_SECONDS,
        MetricKind::Gauge,
        "Event time a partition closed but cannot decide yet, because not every partition has closed it.",
    ),
    (
        RECORD_PROCESSING_SECONDS,
        MetricKind::Histogram,
        "Seconds to handle one record, from decode to alerts handed over.",
    ),
];

/// The kind of the metric called `name`, if it is one of [`ALL`].
pub fn kind_of(name: &str) -> Option<MetricKind> {
    ALL.iter().find(|(n, _, _)| *n == name).map(|&(_, kind, _)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The README's metrics table lists every metric (and a user finds the
    /// one a dashboard shows).
    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../../README.md");
        for (name, _, _) in ALL {
            assert!(readme.contains(&format!("| `{name}` |")), "{name} is missing from the README's metrics table");
        }
    }

    /// Hand-written check of `^tillsyn_[a-z][a-z0-9]*(_[a-z][a-z0-9]*)+$`:
    /// the prefix, then at least two lowercase snake segments (noun and
    /// unit), each starting with a letter.
    fn follows_pattern(name: &str) -> bool {
        let Some(rest) = name.strip_prefix("tillsyn_") else { return false };
        let segments: Vec<&str> = rest.split('_').collect();
        segments.len() >= 2
            && segments.iter().all(|s| {
                let mut chars = s.chars();
                matches!(chars.next(), Some('a'..='z')) && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9'))
            })
    }

    #[test]
    fn the_pattern_check_rejects_bad_names() {
        for bad in [
            "tillsyn_records",
            "records_consumed_total",
            "tillsyn_Records_total",
            "tillsyn__records_total",
            "tillsyn_records_total_",
            "tillsyn_records-consumed_total",
            "tillsyn_1records_total",
            "tillsyn_records_total ",
        ] {
            assert!(!follows_pattern(bad), "{bad:?} passed the pattern check");
        }
        assert!(follows_pattern("tillsyn_consumed_records_total"));
    }

    #[test]
    fn names_follow_the_naming_rule() {
        for &(name, kind, _) in ALL {
            assert!(follows_pattern(name), "{name} does not match tillsyn_<noun>_<unit>[_total]");
            let counter_suffix = name.ends_with("_total");
            assert_eq!(counter_suffix, kind == MetricKind::Counter, "{name}: only counters end in _total");
            if kind == MetricKind::Counter {
                let base = name.strip_suffix("_total").unwrap_or(name);
                assert!(follows_pattern(base), "{name}: needs a noun and a unit before _total");
            }
            // Suffixes the exposition format reserves for histograms and
            // summaries, or that Prometheus gives a meaning of its own.
            for reserved in ["_bucket", "_count", "_sum", "_created", "_info", "_ratio_total"] {
                assert!(!name.ends_with(reserved), "{name} ends in the reserved {reserved}");
            }
            // Time is in the base unit, seconds.
            for unit in ["_ms", "_millis", "_milliseconds", "_micros", "_minutes", "_hours", "_days", "_secs"] {
                let with_underscore = format!("{unit}_");
                assert!(!name.ends_with(unit) && !name.contains(&with_underscore), "{name} uses {unit}; use seconds");
            }
            if kind == MetricKind::Histogram {
                assert!(name.ends_with("_seconds"), "{name}: histograms here measure time in seconds");
            }
        }
    }

    #[test]
    fn names_are_unique_and_described() {
        let mut seen = HashSet::new();
        for &(name, _, help) in ALL {
            assert!(seen.insert(name), "{name} is listed twice");
            assert!(!help.trim().is_empty(), "{name} has no help text");
            assert!(!help.contains('\n') && !help.contains('\\'), "{name}: help must be one plain line");
        }
        // Histogram series add _bucket/_sum/_count: they must not collide
        // with another family either.
        for &(name, kind, _) in ALL {
            if kind == MetricKind::Histogram {
                for suffix in ["_bucket", "_sum", "_count"] {
                    assert!(!seen.contains(format!("{name}{suffix}").as_str()));
                }
            }
        }
    }

    #[test]
    fn latency_buckets_cover_ten_microseconds_to_one_second() {
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]), "buckets must increase");
        assert!(LATENCY_BUCKETS[0] <= 1e-5);
        assert_eq!(*LATENCY_BUCKETS.last().unwrap(), 1.0);
        // At least two buckets per decade between 10 µs and 1 s.
        for decade in [1e-5, 1e-4, 1e-3, 1e-2, 1e-1] {
            let inside = LATENCY_BUCKETS.iter().filter(|&&b| b > decade && b <= decade * 10.0).count();
            assert!(inside >= 2, "only {inside} buckets in ({decade}, {}]", decade * 10.0);
        }
    }

    #[test]
    fn kind_of_finds_listed_names_only() {
        assert_eq!(kind_of(CONSUMED_RECORDS), Some(MetricKind::Counter));
        assert_eq!(kind_of(RECORD_PROCESSING_SECONDS), Some(MetricKind::Histogram));
        assert_eq!(kind_of("tillsyn_unknown_things"), None);
    }
}
