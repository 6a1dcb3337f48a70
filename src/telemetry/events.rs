//! Typed telemetry events: one struct per thing that happens in the
//! service, each with an `emit(&self)` that writes the log line (through
//! `tracing`, with key/value fields) and updates its metrics (through the
//! `metrics` macros, so whichever recorder is current receives them).
//!
//! The fields of an event are exactly what may leave the process: topic
//! names, partition numbers, offsets, rule ids, severities, statuses, stable
//! reason codes and numbers. No event carries a provider, client or staff
//! identifier, a payload, or an error text that could contain one (see
//! [`RecordDeadLettered`]).
//!
//! Levels: per-record events log at `trace`; periodic gauges at `debug`
//! (consumer lag at `trace`); late events at `debug`; alerts and rebalances
//! at `info`; dead letters at `warn` and delivery failures at `error`. The
//! lines that can come in floods (dead letters, late events, delivery
//! failures) are rate limited per event type (at most 10 lines per 10 s; the
//! next line carries `suppressed`, the number left out); their metrics are
//! always updated.
//!
//! Label values are `String`s built from `&str` fields where the value is
//! not `'static` (topic, partition), and every `emit()` looks its series up
//! in the recorder's registry: about 150 ns for [`RecordConsumed`] (measured
//! in release on the development machine). On the per-record path use
//! [`RecordConsumed::register`], whose handle counts in a few nanoseconds.
//! [`ProcessingLatency`] costs about 80 ns a record either way (the exporter
//! stores each sample until the next upkeep or scrape); if that matters,
//! emit it for every n-th record only: the quantiles stay about the same,
//! and `_count` then counts samples, not records.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{Counter, counter, gauge, histogram};
use tracing::{Level, debug, error, info, trace, warn};

use super::names;
use super::ratelimit::LogLimit;
use tillsyn_core::alerting::{Alert, AlertStatus, Severity};
use tillsyn_core::engine::{Input, LateEvent, StateSize};
use tillsyn_core::model::EventTime;

/// A record was read from an input topic (before decoding). Per record:
/// logs at `trace`, increments [`names::CONSUMED_RECORDS`].
#[derive(Debug, Clone, Copy)]
pub struct RecordConsumed<'a> {
    /// The input topic.
    pub topic: &'a str,
    /// Which input the topic carries (label `kind`: `time_report` | `invoice`).
    pub kind: Input,
}

impl RecordConsumed<'_> {
    /// Logs and counts the record.
    pub fn emit(&self) {
        trace!(topic = self.topic, kind = self.kind.name(), "record consumed");
        counter!(names::CONSUMED_RECORDS, "topic" => self.topic.to_owned(), "kind" => self.kind.name()).increment(1);
    }

    /// The same event with its counter looked up once, for the per-record
    /// path (vector's "registered event"): [`RegisteredRecordConsumed::emit`]
    /// costs a few nanoseconds where [`emit`](Self::emit) costs one label
    /// allocation and a registry lookup (about 150 ns). The handle is bound
    /// to the recorder current when this is called: register after
    /// [`install_recorder`](super::install_recorder), e.g. once per input
    /// topic when the consumer starts.
    pub fn register(&self) -> RegisteredRecordConsumed {
        RegisteredRecordConsumed {
            counter: counter!(names::CONSUMED_RECORDS, "topic" => self.topic.to_owned(), "kind" => self.kind.name()),
            topic: self.topic.into(),
            kind: self.kind,
        }
    }
}

/// [`RecordConsumed`] for one topic and kind, registered once (see
/// [`RecordConsumed::register`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RegisteredRecordConsumed {
    counter: Counter,
    topic: Arc<str>,
    kind: Input,
}

impl RegisteredRecordConsumed {
    /// Logs (at `trace`) and counts one record.
    pub fn emit(&self) {
        trace!(topic = &*self.topic, kind = self.kind.name(), "record consumed");
        self.counter.increment(1);
    }
}

/// A record failed decoding or validation and was sent to the dead-letter
/// topic. Logs at `warn` (rate limited) with its location, increments
/// [`names::DEAD_LETTERED_RECORDS`].
///
/// `reason` is `'static` on purpose: it must come from a fixed set
/// (`ValidationError::reason()` or [`tillsyn_core::decode::reason`]), never from the record. The
/// validation error's text is not logged because it can quote a field's
/// value (an organisation number, which for a sole trader is a personal
/// identity number); the partition and offset find the record instead.
#[derive(Debug, Clone, Copy)]
pub struct RecordDeadLettered<'a> {
    /// The input topic the record came from.
    pub topic: &'a str,
    /// Its partition (log only).
    pub partition: i32,
    /// Its offset (log only).
    pub offset: i64,
    /// Stable reason code (label `reason`).
    pub reason: &'static str,
}

static DEAD_LETTER_LOG: LogLimit = LogLimit::new(10, 10);

impl RecordDeadLettered<'_> {
    /// Logs and counts the dead letter.
    pub fn emit(&self) {
        if tracing::enabled!(Level::WARN)
            && let Some(suppressed) = DEAD_LETTER_LOG.admit()
        {
            warn!(
                topic = self.topic,
                partition = self.partition,
                offset = self.offset,
                reason = self.reason,
                suppressed,
                "record dead-lettered"
            );
        }
        counter!(names::DEAD_LETTERED_RECORDS, "topic" => self.topic.to_owned(), "reason" => self.reason).increment(1);
    }
}

/// An event arrived behind its input's watermark and was routed aside
/// instead of applied. Logs at `debug` (rate limited), increments
/// [`names::LATE_EVENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateEventRouted {
    /// Its input (label `input`).
    pub input: Input,
    /// How far behind the watermark it was, in seconds (log only).
    pub behind_secs: i64,
}

impl From<&LateEvent> for LateEventRouted {
    fn from(late: &LateEvent) -> Self {
        LateEventRouted { input: late.input, behind_secs: late.behind_secs }
    }
}

static LATE_LOG: LogLimit = LogLimit::new(10, 10);

impl LateEventRouted {
    /// Logs and counts the late event.
    pub fn emit(&self) {
        if tracing::enabled!(Level::DEBUG)
            && let Some(suppressed) = LATE_LOG.admit()
        {
            debug!(input = self.input.name(), behind_secs = self.behind_secs, suppressed, "late event routed");
        }
        counter!(names::LATE_EVENTS, "input" => self.input.name()).increment(1);
    }
}

/// An alert was produced to the alert topic (emit it when the producer
/// confirms delivery). Logs at `info`, increments [`names::PRODUCED_ALERTS`].
/// The provider is not logged: the alert topic is where alerts are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertProduced {
    /// Rule id (label `rule`).
    pub rule: &'static str,
    /// Severity (label `severity`).
    pub severity: Severity,
    /// Episode status (label `status`).
    pub status: AlertStatus,
}

impl AlertProduced {
    /// The event for `alert`.
    pub fn from_alert(alert: &Alert) -> Self {
        AlertProduced { rule: alert.rule.id, severity: alert.severity, status: alert.status }
    }

    /// Creates, at 0, the counters of the things that happen rarely and
    /// matter when they do: dead letters of every input topic and reason,
    /// late events of both inputs, delivery failures of every output topic,
    /// checkpoints and checkpoint failures of every trigger, restores,
    /// rebalances, and every rule's alerts ([`Self::register_all`]). A
    /// counter that appears at 1 has no increase in Prometheus, so its first
    /// event would be invisible to `increase()` and `rate()`. Once, at start.
    pub fn register_counters(inputs: &[&str], outputs: &[&str]) {
        let reasons = tillsyn_core::decode::reason::ALL.iter().chain(tillsyn_core::model::validate::REASONS.iter());
        for reason in reasons {
            for topic in inputs {
                counter!(names::DEAD_LETTERED_RECORDS, "topic" => topic.to_string(), "reason" => *reason).increment(0);
            }
        }
        for input in [Input::TimeReports, Input::Invoices] {
            counter!(names::LATE_EVENTS, "input" => input.name()).increment(0);
        }
        for topic in outputs {
            counter!(names::PRODUCER_DELIVERY_FAILURES, "topic" => topic.to_string()).increment(0);
        }
        let triggers = [
            SnapshotTrigger::Interval,
            SnapshotTrigger::Idle,
            SnapshotTrigger::Revoke,
            SnapshotTrigger::Shutdown,
            SnapshotTrigger::Takeover,
        ];
        for trigger in triggers {
            counter!(names::STATE_SNAPSHOTS, "trigger" => trigger.name()).increment(0);
            counter!(names::STATE_CHECKPOINT_FAILURES, "trigger" => trigger.name()).increment(0);
        }
        for from in ["snapshot", "empty"] {
            counter!(names::STATE_RESTORES, "from" => from).increment(0);
        }
        for kind in [RebalanceKind::Assign, RebalanceKind::Revoke] {
            counter!(names::CONSUMER_REBALANCES, "kind" => kind.name()).increment(0);
        }
        Self::register_all();
    }

    /// Creates the counter of every rule, severity and status at 0, so that
    /// the first alert of a kind is an increase Prometheus sees (a series
    /// that appears at 1 has no increase). Once, at start.
    pub fn register_all() {
        for rule in tillsyn_core::rules::ALL.iter() {
            for severity in Severity::ALL {
                for status in [AlertStatus::Opened, AlertStatus::Escalated, AlertStatus::Resolved] {
                    counter!(
                        names::PRODUCED_ALERTS,
                        "rule" => rule.id,
                        "severity" => severity.name(),
                        "status" => status.name()
                    )
                    .increment(0);
                }
            }
        }
    }

    /// Logs and counts the alert.
    pub fn emit(&self) {
        info!(rule = self.rule, severity = self.severity.name(), status = self.status.name(), "alert produced");
        counter!(
            names::PRODUCED_ALERTS,
            "rule" => self.rule,
            "severity" => self.severity.name(),
            "status" => self.status.name()
        )
        .increment(1);
    }
}

/// Sizes of one engine's state. Emit it periodically (every few seconds)
/// for each engine, and after a rebalance. Logs at `debug`, sets
/// [`names::STATE_PROVIDERS`], [`names::STATE_CLIENTS`], [`names::STATE_STAFF`]
/// and [`names::PENDING_INVOICES`], labelled
/// `partition`. The instance's totals are the sum over partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateGauges {
    /// The engine's partition (label `partition`).
    pub partition: i32,
    /// Its sizes (`Engine::state_size()`).
    pub size: StateSize,
}

impl StateGauges {
    /// Logs and sets the gauges.
    pub fn emit(&self) {
        let s = &self.size;
        debug!(
            partition = self.partition,
            providers = s.providers,
            clients = s.clients,
            staff = s.staff,
            open_episodes = s.open_episodes,
            pending_invoices = s.pending_invoices,
            "engine state"
        );
        set_state_gauges(self.partition, s);
    }
}

fn set_state_gauges(partition: i32, s: &StateSize) {
    let p = partition.to_string();
    gauge!(names::STATE_PROVIDERS, "partition" => p.clone()).set(s.providers as f64);
    gauge!(names::STATE_CLIENTS, "partition" => p.clone()).set(s.clients as f64);
    gauge!(names::STATE_STAFF, "partition" => p.clone()).set(s.staff as f64);
    gauge!(names::PENDING_INVOICES, "partition" => p).set(s.pending_invoices as f64);
}

/// The open alert episodes of one engine by rule and severity. Emit it
/// periodically for each engine. Sets [`names::OPEN_EPISODES`] (labels
/// `partition`, `rule`, `severity`) for every registered rule and every
/// severity, 0 where none is open, so that an episode that escalates or
/// resolves leaves no stale series.
#[derive(Debug, Clone, Copy)]
pub struct OpenEpisodes<'a> {
    /// The engine's partition (label `partition`).
    pub partition: i32,
    /// Its open episodes (`Engine::open_episodes_by_rule()`).
    pub counts: &'a BTreeMap<(&'static str, Severity), usize>,
}

impl OpenEpisodes<'_> {
    /// Sets the gauges.
    pub fn emit(&self) {
        set_open_episodes(self.partition, self.counts);
    }
}

fn set_open_episodes(partition: i32, counts: &BTreeMap<(&'static str, Severity), usize>) {
    let p = partition.to_string();
    for rule in tillsyn_core::rules::ALL.iter() {
        for severity in Severity::ALL {
            let open = counts.get(&(rule.id, severity)).copied().unwrap_or(0);
            gauge!(names::OPEN_EPISODES, "partition" => p.clone(), "rule" => rule.id, "severity" => severity.name())
                .set(open as f64);
        }
    }
}

/// How far one engine's time-report watermark is behind the wall clock.
/// Emit it periodically for each engine that has a watermark. Logs at
/// `debug`, sets [`names::WATERMARK_LAG_SECONDS`] (label `partition`). A
/// negative lag means event times ahead of the clock (skewed producers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WatermarkLag {
    /// The engine's partition (label `partition`).
    pub partition: i32,
    /// Wall clock minus watermark, in seconds.
    pub lag_secs: f64,
}

impl WatermarkLag {
    /// The lag of `watermark` (`Engine::watermark()`) behind `now`.
    pub fn new(partition: i32, watermark: EventTime, now: SystemTime) -> Self {
        let now_secs = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(before) => -before.duration().as_secs_f64(),
        };
        WatermarkLag { partition, lag_secs: now_secs - watermark.0 as f64 }
    }

    /// Logs and sets the gauge.
    pub fn emit(&self) {
        debug!(partition = self.partition, lag_secs = self.lag_secs, "watermark lag");
        gauge!(names::WATERMARK_LAG_SECONDS, "partition" => self.partition.to_string()).set(self.lag_secs);
    }
}

/// Consumer lag of one assigned topic partition, from librdkafka statistics
/// (see [`ConsumerLag::from_statistics`]). Logs at `trace`, sets
/// [`names::CONSUMER_LAG_MESSAGES`] (labels `topic`, `partition`). A
/// negative `lag` (librdkafka's "unknown") leaves the gauge as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerLag<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// Messages behind the high watermark, or -1 if unknown.
    pub lag: i64,
}

impl<'a> ConsumerLag<'a> {
    /// The lags of the partitions this consumer is fetching (librdkafka's
    /// `desired` partitions; the internal partition -1 is skipped), from a
    /// statistics callback (`statistics.interval.ms`). Partitions whose lag
    /// is not known yet are left out (see [`partition_lag`]).
    pub fn from_statistics(stats: &'a rdkafka::Statistics) -> Vec<ConsumerLag<'a>> {
        let mut lags: Vec<ConsumerLag<'a>> = stats
            .topics
            .iter()
            .flat_map(|(topic, t)| {
                t.partitions.values().filter(|p| p.partition >= 0 && p.desired).filter_map(|p| {
                    partition_lag(p).map(|lag| ConsumerLag { topic: topic.as_str(), partition: p.partition, lag })
                })
            })
            .collect();
        lags.sort_by(|a, b| (a.topic, a.partition).cmp(&(b.topic, b.partition)));
        lags
    }

    /// Logs and sets the gauge.
    pub fn emit(&self) {
        trace!(topic = self.topic, partition = self.partition, lag = self.lag, "consumer lag");
        if self.lag >= 0 {
            gauge!(
                names::CONSUMER_LAG_MESSAGES,
                "topic" => self.topic.to_owned(),
                "partition" => self.partition.to_string()
            )
            .set(self.lag as f64);
        }
    }
}

/// Messages between a partition's end and this consumer's position, or
/// `None` while unknown. The position is the application's (`app_offset`,
/// the next record it will be given) once it has one; before that,
/// librdkafka's `consumer_lag`, counted from the last committed offset. A
/// partition that is empty (end offset 0) has lag 0. The end is the last
/// stable offset (`ls_offset`, the high watermark unless transactions are
/// open).
pub fn partition_lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    let end = if p.ls_offset >= 0 { p.ls_offset } else { p.hi_offset };
    if end >= 0 && p.app_offset >= 0 {
        return Some((end - p.app_offset).max(0));
    }
    if p.consumer_lag >= 0 {
        return Some(p.consumer_lag);
    }
    match (end, p.committed_offset) {
        (end, committed) if end >= 0 && committed >= 0 => Some((end - committed).max(0)),
        (0, _) => Some(0),
        _ => None,
    }
}

/// Which side of a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RebalanceKind {
    /// Partitions were assigned to this member.
    Assign,
    /// Partitions were taken away from this member.
    Revoke,
}

impl RebalanceKind {
    /// Lowercase name for the `kind` label.
    pub fn name(self) -> &'static str {
        match self {
            RebalanceKind::Assign => "assign",
            RebalanceKind::Revoke => "revoke",
        }
    }
}

/// A rebalance callback. Logs at `info`, increments
/// [`names::CONSUMER_REBALANCES`] (label `kind`) and sets
/// [`names::ASSIGNED_PARTITIONS`] to `assigned`.
///
/// On a revoke it also sets to 0 the per-partition series of the revoked
/// partitions (consumer lag of each topic partition; state gauges and
/// watermark lag of each partition number), so that sums over partitions
/// stay right while another member owns them. If an engine is kept (for
/// instance its partition is still assigned on the other topic), its next
/// [`StateGauges`] and [`WatermarkLag`] restore its values.
#[derive(Debug, Clone, Copy)]
pub struct Rebalance<'a> {
    /// Assign or revoke.
    pub kind: RebalanceKind,
    /// The topic partitions assigned or revoked.
    pub partitions: &'a [(&'a str, i32)],
    /// Topic partitions assigned to this member after the change.
    pub assigned: usize,
}

impl Rebalance<'_> {
    /// Logs, counts and updates the gauges.
    pub fn emit(&self) {
        info!(
            kind = self.kind.name(),
            changed = self.partitions.len(),
            assigned = self.assigned,
            partitions = %PartitionList(self.partitions),
            "consumer group rebalance"
        );
        counter!(names::CONSUMER_REBALANCES, "kind" => self.kind.name()).increment(1);
        gauge!(names::ASSIGNED_PARTITIONS).set(self.assigned as f64);
        if self.kind == RebalanceKind::Revoke {
            let mut numbers: Vec<i32> = Vec::with_capacity(self.partitions.len());
            for &(topic, partition) in self.partitions {
                ConsumerLag { topic, partition, lag: 0 }.emit();
                numbers.push(partition);
            }
            numbers.sort_unstable();
            numbers.dedup();
            for partition in numbers {
                set_state_gauges(partition, &StateSize::default());
                set_open_episodes(partition, &BTreeMap::new());
                gauge!(names::WATERMARK_LAG_SECONDS, "partition" => partition.to_string()).set(0.0);
            }
        }
    }
}

/// `topic[0,1,2] other[3]` for a log field.
struct PartitionList<'a>(&'a [(&'a str, i32)]);

impl fmt::Display for PartitionList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sorted: Vec<(&str, i32)> = self.0.to_vec();
        sorted.sort_unstable();
        let mut current: Option<&str> = None;
        for (topic, partition) in sorted {
            if current == Some(topic) {
                write!(f, ",{partition}")?;
            } else {
                if current.is_some() {
                    f.write_str("] ")?;
                }
                write!(f, "{topic}[{partition}")?;
                current = Some(topic);
            }
        }
        if current.is_some() {
            f.write_str("]")?;
        }
        Ok(())
    }
}

/// The producer failed to deliver a message. Logs at `error` (rate
/// limited), increments [`names::PRODUCER_DELIVERY_FAILURES`] (label
/// `topic`). `error` is the producer's error (a Kafka error code and its
/// text, which carry no payload).
#[derive(Clone, Copy)]
pub struct DeliveryFailed<'a> {
    /// The destination topic.
    pub topic: &'a str,
    /// The producer's error (log only).
    pub error: &'a dyn fmt::Display,
}

impl fmt::Debug for DeliveryFailed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryFailed").field("topic", &self.topic).field("error", &self.error.to_string()).finish()
    }
}

static DELIVERY_LOG: LogLimit = LogLimit::new(10, 10);

impl DeliveryFailed<'_> {
    /// Logs and counts the failure.
    pub fn emit(&self) {
        if tracing::enabled!(Level::ERROR)
            && let Some(suppressed) = DELIVERY_LOG.admit()
        {
            error!(topic = self.topic, error = %self.error, suppressed, "producer delivery failed");
        }
        counter!(names::PRODUCER_DELIVERY_FAILURES, "topic" => self.topic.to_owned()).increment(1);
    }
}

/// Wall-clock time to handle one record. Per record: logs at `trace`,
/// records into [`names::RECORD_PROCESSING_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessingLatency {
    /// Seconds.
    pub seconds: f64,
}

impl ProcessingLatency {
    /// The event for an elapsed [`Duration`].
    pub fn from_duration(elapsed: Duration) -> Self {
        ProcessingLatency { seconds: elapsed.as_secs_f64() }
    }

    /// Logs and records the latency.
    pub fn emit(&self) {
        trace!(seconds = self.seconds, "record processed");
        histogram!(names::RECORD_PROCESSING_SECONDS).record(self.seconds);
    }
}

/// Why a snapshot was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotTrigger {
    /// `kafka.commit_interval` passed.
    Interval,
    /// The partition had no new record for a while.
    Idle,
    /// The partition is being revoked.
    Revoke,
    /// The service is stopping.
    Shutdown,
    /// The partition was taken over: its owner's first checkpoint, with
    /// every entity.
    Takeover,
}

impl SnapshotTrigger {
    /// Label value.
    pub fn name(self) -> &'static str {
        match self {
            SnapshotTrigger::Interval => "interval",
            SnapshotTrigger::Idle => "idle",
            SnapshotTrigger::Revoke => "revoke",
            SnapshotTrigger::Shutdown => "shutdown",
            SnapshotTrigger::Takeover => "takeover",
        }
    }
}

/// A partition's state snapshot was written and acknowledged, and its
/// offsets committed. Logs at `debug` (`info` on revoke and shutdown),
/// updates [`names::STATE_SNAPSHOTS`], [`names::STATE_SNAPSHOT_BYTES`],
/// [`names::STATE_SNAPSHOT_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotWritten {
    /// The partition.
    pub partition: i32,
    /// Why.
    pub trigger: SnapshotTrigger,
    /// State size (every entity).
    pub bytes: usize,
    /// Records it wrote.
    pub records: usize,
    /// Bytes it wrote (keys and values).
    pub written: u64,
    /// Entities it wrote (changed since the previous checkpoint).
    pub entities_written: u64,
    /// Time from serializing to commit.
    pub seconds: f64,
    /// Next offsets of the time-report and invoice partitions it covers.
    pub offsets: (i64, i64),
}

impl SnapshotWritten {
    /// Logs and counts the snapshot.
    pub fn emit(&self) {
        let (time_reports, invoices) = self.offsets;
        match self.trigger {
            SnapshotTrigger::Revoke | SnapshotTrigger::Shutdown | SnapshotTrigger::Takeover => info!(
                partition = self.partition,
                trigger = self.trigger.name(),
                bytes = self.bytes,
                written = self.written,
                entities_written = self.entities_written,
                seconds = self.seconds,
                time_reports,
                invoices,
                "state snapshot written"
            ),
            _ => debug!(
                partition = self.partition,
                trigger = self.trigger.name(),
                bytes = self.bytes,
                written = self.written,
                entities_written = self.entities_written,
                records = self.records,
                seconds = self.seconds,
                time_reports,
                invoices,
                "state snapshot written"
            ),
        }
        counter!(names::STATE_SNAPSHOTS, "trigger" => self.trigger.name()).increment(1);
        counter!(names::STATE_CHECKPOINT_WRITTEN_BYTES).increment(self.written);
        counter!(names::STATE_CHECKPOINT_ENTITIES).increment(self.entities_written);
        let p = self.partition.to_string();
        gauge!(names::STATE_SNAPSHOT_BYTES, "partition" => p.clone()).set(self.bytes as f64);
        gauge!(names::STATE_SNAPSHOT_SECONDS, "partition" => p).set(self.seconds);
    }
}

/// A partition was taken over: its state restored from a snapshot (or
/// started empty) and the alerts produced since read back. Logs at `info`,
/// updates [`names::STATE_RESTORES`] and [`names::STATE_RESTORE_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionRestored {
    /// The partition.
    pub partition: i32,
    /// Whether a snapshot was found.
    pub from_snapshot: bool,
    /// Size of the restored state.
    pub bytes: usize,
    /// Entities restored.
    pub entities: usize,
    /// Records read from the state topic.
    pub records: usize,
    /// The new owner's epoch sequence.
    pub epoch: u32,
    /// Alerts already on the alert topic that a replay will not produce again.
    pub suppressing: usize,
    /// Where consumption resumes: time-report and invoice offsets.
    pub offsets: (i64, i64),
    /// Time it took.
    pub seconds: f64,
}

impl PartitionRestored {
    /// Logs and counts the restore.
    pub fn emit(&self) {
        let from = if self.from_snapshot { "snapshot" } else { "empty" };
        let (time_reports, invoices) = self.offsets;
        info!(
            partition = self.partition,
            from,
            bytes = self.bytes,
            entities = self.entities,
            records = self.records,
            epoch = self.epoch,
            suppressing = self.suppressing,
            time_reports,
            invoices,
            seconds = self.seconds,
            "partition state restored"
        );
        counter!(names::STATE_RESTORES, "from" => from).increment(1);
        gauge!(names::STATE_RESTORE_SECONDS, "partition" => self.partition.to_string()).set(self.seconds);
    }
}

/// An alert a replay computed again was not produced: the alert topic has
/// it already. Logs at `debug`, increments [`names::SUPPRESSED_ALERTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSuppressed {
    /// The partition.
    pub partition: i32,
}

impl AlertSuppressed {
    /// Logs and counts it.
    pub fn emit(&self) {
        debug!(partition = self.partition, "replayed alert already produced; not produced again");
        counter!(names::SUPPRESSED_ALERTS).increment(1);
    }
}

/// A record of a reference-data topic the global reader took into the
/// reference table, or skipped ([`names::REFERENCE_RECORDS`]).
pub struct ReferenceRecordRead {
    /// The topic's kind (`granted_hours`, `absences`, `provider_register`).
    pub kind: &'static str,
    /// `applied`, `heartbeat` or `refused`.
    pub outcome: &'static str,
}

impl ReferenceRecordRead {
    /// Counts it (a refused one logged at debug level: its partition's
    /// owner dead-letters it, with the reason).
    pub fn emit(&self) {
        if self.outcome == "refused" {
            tracing::debug!(kind = self.kind, "a reference record is refused; its partition's owner dead-letters it");
        }
        counter!(names::REFERENCE_RECORDS, "kind" => self.kind, "outcome" => self.outcome).increment(1);
    }
}

/// The reference table's size and how far it is behind the wall clock
/// ([`names::REFERENCE_FACTS`], [`names::REFERENCE_LAG_SECONDS`]).
pub struct ReferenceTableState {
    /// Facts held by kind name.
    pub facts: [(&'static str, usize); 3],
    /// Wall clock minus the time the table is known through, if known.
    pub lag_secs: Option<f64>,
}

impl ReferenceTableState {
    /// Sets the gauges.
    pub fn emit(&self) {
        for (kind, n) in self.facts {
            gauge!(names::REFERENCE_FACTS, "kind" => kind).set(n as f64);
        }
        if let Some(lag) = self.lag_secs {
            gauge!(names::REFERENCE_LAG_SECONDS).set(lag.max(0.0));
        }
    }
}

/// A record of the peer-days topic that did not decode: skipped, counted
/// in [`names::PEER_DAYS_REJECTED`], logged with its offset only.
pub struct PeerDayRejected {
    /// Its offset.
    pub offset: i64,
}

impl PeerDayRejected {
    /// Logs and counts it.
    pub fn emit(&self) {
        warn!(offset = self.offset, "a record of the peer-days topic does not decode; skipped");
        counter!(names::PEER_DAYS_REJECTED).increment(1);
    }
}

/// A record of the staff stage's internal topics that did not decode:
/// skipped, counted in [`names::INTERNAL_RECORDS_SKIPPED`], logged with
/// its place only.
pub struct InternalRecordSkipped {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

impl InternalRecordSkipped {
    /// Logs and counts it.
    pub fn emit(&self) {
        warn!(
            partition = self.partition,
            offset = self.offset,
            "a record of the staff stage's topics does not decode; skipped"
        );
        counter!(names::INTERNAL_RECORDS_SKIPPED).increment(1);
    }
}

/// How many visits of new staff members a partition's staff stage left
/// out at its cap.
pub struct StaffOverLimit {
    /// The partition.
    pub partition: i32,
    /// Visits left out (from the stage's state: survives restarts).
    pub visits: u64,
    /// Client copies of visits left out of the client rules (likewise).
    pub client_visits: u64,
}

impl StaffOverLimit {
    /// Sets the gauges.
    pub fn emit(&self) {
        gauge!(names::STAFF_OVER_LIMIT, "partition" => self.partition.to_string()).set(self.visits as f64);
        gauge!(names::CLIENT_VISITS_OVER_LIMIT, "partition" => self.partition.to_string())
            .set(self.client_visits as f64);
    }
}

/// Records a partition holds back (see [`names::HELD_RECORDS`]).
pub struct HeldRecords {
    /// The partition.
    pub partition: i32,
    /// Time reports waiting for the invoices.
    pub for_invoices: usize,
    /// Records waiting for the rules' configuration.
    pub for_rules: usize,
}

impl HeldRecords {
    /// Sets the gauges.
    pub fn emit(&self) {
        let p = self.partition.to_string();
        gauge!(names::HELD_RECORDS, "partition" => p.clone(), "waiting_for" => "invoices")
            .set(self.for_invoices as f64);
        gauge!(names::HELD_RECORDS, "partition" => p, "waiting_for" => "rules").set(self.for_rules as f64);
    }
}

/// A record of the alert topic that is no alert (not written by tillsyn),
/// skipped when a restore reads the alerts back.
pub struct AlertRecordSkipped {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

impl AlertRecordSkipped {
    /// Logs and counts it.
    pub fn emit(&self) {
        warn!(
            partition = self.partition,
            offset = self.offset,
            "a record of the alert topic is no alert (not written by tillsyn); skipped"
        );
        counter!(names::ALERT_RECORDS_SKIPPED).increment(1);
    }
}

/// A checkpoint was not acknowledged within its budget: the partition
/// goes on, and is checkpointed again later, in full.
pub struct CheckpointFailed<'a> {
    /// The partition.
    pub partition: i32,
    /// Why it was written.
    pub trigger: SnapshotTrigger,
    /// What went wrong.
    pub error: &'a anyhow::Error,
}

impl CheckpointFailed<'_> {
    /// Logs and counts it.
    pub fn emit(&self) {
        warn!(
            partition = self.partition,
            trigger = self.trigger.name(),
            error = %self.error,
            "checkpoint not acknowledged; the partition goes on and is checkpointed again, in full"
        );
        counter!(names::STATE_CHECKPOINT_FAILURES, "trigger" => self.trigger.name()).increment(1);
    }
}

/// A restore found a checkpoint it cannot use and rebuilds the partition's
/// state from its inputs.
pub struct StateDiscarded<'a> {
    /// The partition.
    pub partition: i32,
    /// Label value: `corrupt`, `format`, `configuration`, `offsets_beyond_log`.
    pub reason: &'static str,
    /// For the log.
    pub detail: &'a str,
}

impl StateDiscarded<'_> {
    /// Logs (error) and counts it.
    pub fn emit(&self) {
        error!(
            partition = self.partition,
            reason = self.reason,
            detail = self.detail,
            "the partition's checkpoint cannot be used; rebuilding its state from the inputs"
        );
        counter!(names::STATE_DISCARDED, "reason" => self.reason).increment(1);
    }
}

/// A restore's checkpoint covers input records that are no longer in the
/// log: they were never processed and cannot be.
pub struct InputsExpired<'a> {
    /// The partition.
    pub partition: i32,
    /// The input topic.
    pub topic: &'a str,
    /// Where the checkpoint resumes, and where the log now starts.
    pub next: i64,
    /// The log's first offset.
    pub low: i64,
}

impl InputsExpired<'_> {
    /// Logs (error) and counts it.
    pub fn emit(&self) {
        error!(
            partition = self.partition,
            topic = self.topic,
            resume_at = self.next,
            log_starts_at = self.low,
            "records after the checkpoint were removed from the input log before they were processed"
        );
        counter!(names::STATE_INPUTS_EXPIRED).increment(1);
    }
}

/// Records of the state topic a restore ignored (another format, another
/// partition's keys).
pub struct StateRecordsSkipped {
    /// The partition.
    pub partition: i32,
    /// How many.
    pub records: u64,
}

impl StateRecordsSkipped {
    /// Logs and counts them.
    pub fn emit(&self) {
        warn!(partition = self.partition, records = self.records, "state-topic records not of this format ignored");
        counter!(names::STATE_RECORDS_SKIPPED).increment(self.records);
    }
}

/// A record found the producer's queue full and waits for room.
pub struct ProducerQueueFull<'a> {
    /// Its destination topic.
    pub topic: &'a str,
}

impl ProducerQueueFull<'_> {
    /// Counts it (labelled by the topic: the service's own few topics).
    pub fn emit(&self) {
        counter!(names::PRODUCER_QUEUE_FULL, "topic" => self.topic.to_string()).increment(1);
    }
}

/// Records produced to an internal topic (counted when sent).
pub struct InternalRecordsProduced {
    /// The topic's name without the internal prefix: `peer-days`,
    /// `visits-by-staff` or `staff-findings`.
    pub topic: &'static str,
    /// Records.
    pub records: u64,
    /// Bytes of their values.
    pub bytes: u64,
}

impl InternalRecordsProduced {
    /// Counts them.
    pub fn emit(&self) {
        counter!(names::INTERNAL_RECORDS_PRODUCED, "topic" => self.topic).increment(self.records);
        counter!(names::INTERNAL_BYTES_PRODUCED, "topic" => self.topic).increment(self.bytes);
    }
}

/// How many closed days of a partition wait for the other partitions.
pub struct PeerDecisionsLag {
    /// The partition.
    pub partition: i32,
    /// Days closed and not decided.
    pub days: i64,
}

impl PeerDecisionsLag {
    /// Sets the gauge.
    pub fn emit(&self) {
        gauge!(names::PEER_DECISIONS_LAG_SECONDS, "partition" => self.partition.to_string())
            .set((self.days * 86_400) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_list_groups_by_topic() {
        let list = [("tr", 2), ("inv", 1), ("tr", 0)];
        assert_eq!(PartitionList(&list).to_string(), "inv[1] tr[0,2]");
        assert_eq!(PartitionList(&[]).to_string(), "");
    }

    #[test]
    fn watermark_lag_is_wall_clock_minus_watermark() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(WatermarkLag::new(3, EventTime(400), now).lag_secs, 600.0);
        assert_eq!(WatermarkLag::new(3, EventTime(1_500), now).lag_secs, -500.0);
    }

    #[test]
    fn consumer_lag_from_statistics_keeps_assigned_known_partitions() {
        use rdkafka::statistics::{Partition, Topic};
        let unknown = Partition {
            consumer_lag: -1,
            app_offset: -1001,
            committed_offset: -1001,
            hi_offset: -1001,
            ls_offset: -1001,
            ..Partition::default()
        };
        let partition = |partition: i32, desired: bool, consumer_lag: i64| {
            (partition, Partition { partition, desired, consumer_lag, ..unknown.clone() })
        };
        let topic = Topic {
            topic: "time-reports".into(),
            partitions: [
                partition(0, true, 42),
                partition(1, false, 7),
                partition(2, true, -1),
                partition(-1, true, 3),
                // Nothing committed yet: counted from the application's position.
                (
                    3,
                    Partition {
                        partition: 3,
                        desired: true,
                        app_offset: 90,
                        hi_offset: 100,
                        ls_offset: 100,
                        ..unknown.clone()
                    },
                ),
                // An empty partition has nothing to catch up on.
                (4, Partition { partition: 4, desired: true, hi_offset: 0, ls_offset: 0, ..unknown.clone() }),
                // Known end, unknown position: left out.
                (5, Partition { partition: 5, desired: true, hi_offset: 100, ls_offset: 100, ..unknown.clone() }),
            ]
            .into_iter()
            .collect(),
            ..Topic::default()
        };
        let other = Topic {
            topic: "invoices".into(),
            partitions: [partition(0, true, 5)].into_iter().collect(),
            ..Topic::default()
        };
        let stats = rdkafka::Statistics {
            topics: [("time-reports".to_owned(), topic), ("invoices".to_owned(), other)].into_iter().collect(),
            ..rdkafka::Statistics::default()
        };
        let lags = ConsumerLag::from_statistics(&stats);
        assert_eq!(
            lags,
            vec![
                ConsumerLag { topic: "invoices", partition: 0, lag: 5 },
                ConsumerLag { topic: "time-reports", partition: 0, lag: 42 },
                ConsumerLag { topic: "time-reports", partition: 3, lag: 10 },
                ConsumerLag { topic: "time-reports", partition: 4, lag: 0 },
            ]
        );
    }
}

/// An entry of the rules topic was read. Accepted and rejected changes log
/// at `info` and `warn` where they are read; this counts them
/// ([`names::RULES_CHANGES`], label `outcome`: `accepted`, `rejected`,
/// `skipped` for a record that is no rules record) and sets
/// [`names::RULES_VERSION`] and [`names::RULES_SEALED_THROUGH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesEntryRead {
    /// A change joined the versions in force.
    Accepted {
        /// Its number.
        version: u32,
    },
    /// A change was refused.
    Rejected,
    /// A record that is no rules record.
    Skipped,
    /// The history is sealed through this time.
    Sealed {
        /// The seal.
        through: tillsyn_core::model::EventTime,
    },
}

impl RulesEntryRead {
    /// Counts it and sets the gauges.
    pub fn emit(&self) {
        match self {
            RulesEntryRead::Accepted { version } => {
                counter!(names::RULES_CHANGES, "outcome" => "accepted").increment(1);
                gauge!(names::RULES_VERSION).set(f64::from(*version));
            }
            RulesEntryRead::Rejected => counter!(names::RULES_CHANGES, "outcome" => "rejected").increment(1),
            RulesEntryRead::Skipped => counter!(names::RULES_CHANGES, "outcome" => "skipped").increment(1),
            RulesEntryRead::Sealed { through } => gauge!(names::RULES_SEALED_THROUGH).set(through.0 as f64),
        }
    }

    /// Creates the counters at 0 (see [`AlertProduced::register_counters`]).
    pub fn register() {
        for outcome in ["accepted", "rejected", "skipped"] {
            counter!(names::RULES_CHANGES, "outcome" => outcome).increment(0);
        }
        gauge!(names::RULES_VERSION).set(0.0);
    }
}

// ------------------------------------------------------------ The sink

/// What became of an alert record in `tillsyn sink postgres`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkOutcome {
    /// A new row, committed.
    Stored,
    /// Read again: already in the database.
    AlreadyStored,
    /// Not an alert (not written by tillsyn): skipped.
    NotAnAlert,
}

impl SinkOutcome {
    /// Every outcome, for counters that exist from the start.
    pub const ALL: [SinkOutcome; 3] = [SinkOutcome::Stored, SinkOutcome::AlreadyStored, SinkOutcome::NotAnAlert];

    fn label(self) -> &'static str {
        match self {
            SinkOutcome::Stored => "stored",
            SinkOutcome::AlreadyStored => "already_stored",
            SinkOutcome::NotAnAlert => "not_an_alert",
        }
    }
}

/// Alert records the sink handled (see [`names::SINK_RECORDS`]).
pub struct SinkRecords {
    /// What became of them.
    pub outcome: SinkOutcome,
    /// How many.
    pub records: u64,
}

impl SinkRecords {
    /// Counts them.
    pub fn emit(&self) {
        counter!(names::SINK_RECORDS, "outcome" => self.outcome.label()).increment(self.records);
    }

    /// Creates every counter at 0.
    pub fn register_counters() {
        for outcome in SinkOutcome::ALL {
            counter!(names::SINK_RECORDS, "outcome" => outcome.label()).increment(0);
        }
        for outcome in SinkTransaction::ALL {
            counter!(names::SINK_TRANSACTIONS, "outcome" => outcome.label()).increment(0);
        }
    }
}

/// How a transaction of the sink ended (see [`names::SINK_TRANSACTIONS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTransaction {
    /// Committed.
    Committed,
    /// Another member had moved a stored position: rolled back.
    Fenced,
    /// The database failed: rolled back or unknown, retried.
    Failed,
}

impl SinkTransaction {
    const ALL: [SinkTransaction; 3] = [SinkTransaction::Committed, SinkTransaction::Fenced, SinkTransaction::Failed];

    fn label(self) -> &'static str {
        match self {
            SinkTransaction::Committed => "committed",
            SinkTransaction::Fenced => "fenced",
            SinkTransaction::Failed => "failed",
        }
    }

    /// Counts it.
    pub fn emit(self) {
        counter!(names::SINK_TRANSACTIONS, "outcome" => self.label()).increment(1);
    }
}

/// Seconds from an alert's record to its committed row.
pub fn sink_alert_to_row(seconds: f64) {
    histogram!(names::SINK_ALERT_TO_ROW_SECONDS).record(seconds);
}

/// The sink's database connection went up or down: logged once per change.
pub struct SinkDatabase<'a> {
    /// Whether it works now.
    pub up: bool,
    /// Why not, when down.
    pub error: Option<&'a str>,
}

impl SinkDatabase<'_> {
    /// Logs and sets the gauge.
    pub fn emit(&self) {
        gauge!(names::SINK_DATABASE_UP).set(if self.up { 1.0 } else { 0.0 });
        match (self.up, self.error) {
            (true, _) => info!("case store database connected"),
            (false, Some(error)) => warn!(error, "case store database unavailable; retrying with backoff"),
            (false, None) => warn!("case store database unavailable; retrying with backoff"),
        }
    }
}

/// What became of alerts in `tillsyn notify` (see [`names::NOTIFY_ALERTS`]
/// and [`names::NOTIFY_FAILED_ATTEMPTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Posted.
    Sent,
    /// Not qualifying.
    Skipped,
    /// Refused for good by the receiver.
    Refused,
    /// A post that failed and is tried again.
    FailedAttempt,
}

impl NotifyOutcome {
    /// Counts `n`.
    pub fn emit(self, n: u64) {
        let outcome = match self {
            NotifyOutcome::Sent => "sent",
            NotifyOutcome::Skipped => "skipped",
            NotifyOutcome::Refused => "refused",
            NotifyOutcome::FailedAttempt => {
                counter!(names::NOTIFY_FAILED_ATTEMPTS).increment(n);
                return;
            }
        };
        counter!(names::NOTIFY_ALERTS, "outcome" => outcome).increment(n);
    }

    /// Creates every counter at 0.
    pub fn register_counters() {
        for outcome in
            [NotifyOutcome::Sent, NotifyOutcome::Skipped, NotifyOutcome::Refused, NotifyOutcome::FailedAttempt]
        {
            outcome.emit(0);
        }
    }
}
