//! The consume → detect → produce loop of `tillsyn run`, and the recovery
//! that makes its effect exactly once.
//!
//! One consumer in the configured group reads the time-report and invoice
//! topics. Both are keyed by provider id and co-partitioned (same partition
//! count, the keyed partitioner, and the `range` assignor, enforced, which
//! gives a member the same partition numbers of both), so partition `k` of
//! both topics feeds one [`Engine`]. Its alerts go to partition `k` of the
//! alert topic, its snapshots to partition `k` of the state topic: every
//! topic of the service has the same partition count (checked at start).
//!
//! Per record: decode and validate (a rejection goes to the dead-letter
//! topic with the reason, the original key, value and headers), feed the
//! engine, produce its alerts and route a late event to the late-event
//! topic (or the dead-letter topic). The number of records whose outputs
//! await acknowledgement is bounded, so memory is; a delivery that fails
//! for good stops the service with an error.
//!
//! # Exactly-once alerts without transactions
//!
//! - **Checkpoints.** Every `kafka.commit_interval` (and when a
//!   partition has been idle a second, on revocation and at shutdown) a
//!   partition is checkpointed: wait until every output produced so far is
//!   acknowledged; write the engine's [`snapshot`](Engine::snapshot) with a
//!   manifest naming the input offsets it covers and `alerts_from`, the
//!   end of the alert partition at that moment (every alert produced before
//!   it is reflected in the state); once the snapshot is acknowledged,
//!   commit those offsets.
//! - **Takeover.** When a partition is assigned, before any of its records
//!   is processed (inside the rebalance callback): read its newest complete
//!   snapshot ([`state_store`](super::state_store)) and restore the engine,
//!   read the ids of the alerts in the alert partition from `alerts_from` to
//!   its end (produced after the snapshot, before the previous owner
//!   stopped), and start both inputs at the snapshot's offsets. Without a
//!   snapshot: an empty engine, the inputs from their beginning, and every
//!   alert already in the partition.
//! - **Replay.** The engine is deterministic and its alert ids are a
//!   function of the events (independent of how the two inputs interleave),
//!   so replaying the records after the snapshot computes those alerts
//!   again, with the same ids: each one found in the set read back is not
//!   produced again (and leaves the set). Alerts past the crash point are
//!   produced as usual.
//! - **Revocation.** In the revoke callback, within
//!   `kafka.revocation_budget`: flush the producer (so the next owner
//!   reads every alert produced), checkpoint the revoked partitions, drop
//!   their state.
//!
//! What remains possible is written in the README ("Guarantees").

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tracing::{error, info, warn};

use super::config::ServiceConfig;
use super::state_store::{self, ALERT_ID_HEADER, STATE_CONTENT_TYPE};
use crate::telemetry::Health;
use crate::telemetry::events::{
    AlertProduced, AlertSuppressed, ConsumerLag, DeliveryFailed, LateEventRouted, PartitionRestored, ProcessingLatency,
    Rebalance as RebalanceEvent, RebalanceKind, RecordConsumed, RecordDeadLettered, SnapshotTrigger, SnapshotWritten,
    StateGauges, WatermarkLag,
};
use tillsyn_core::alerting::Alert;
use tillsyn_core::decode::{self, Format, Rejection};
use tillsyn_core::engine::Input;
use tillsyn_core::engine::{Disposition, Engine, LateEvent, snapshot};
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::validate::Validator;
use tillsyn_core::model::{DomainEvent, EventTime};
use tillsyn_core::proto::v1 as wire;

/// Most records whose produced records await acknowledgement.
const MAX_IN_FLIGHT: usize = 20_000;

/// A partition with no new record for this long is checkpointed.
const IDLE_CHECKPOINT: Duration = Duration::from_secs(1);

/// Time allowed for reading a partition's snapshot and alert tail.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);

/// One assigned partition: its engine and where it stands.
struct PartitionState {
    engine: Engine,
    /// Next offsets of the time-report and invoice partitions: every record
    /// before them is in the engine's state, none after.
    next: (i64, i64),
    /// Alerts on the alert topic that a replay will compute again: id →
    /// offset in the alert partition.
    suppress: HashMap<String, i64>,
    /// Time reports read but held back until the invoices catch up (see
    /// [`ALIGNMENT_SECS`]), with their event times (none if they did not
    /// decode), in offset order.
    held: VecDeque<(Option<EventTime>, OwnedMessage)>,
    /// Whether fetching the time-report partition is paused (too many held).
    paused: bool,
    /// Issue time of the newest invoice processed.
    invoices_through: Option<EventTime>,
    /// The invoice partition's end offset (none if the broker did not
    /// answer), and when it was asked.
    invoice_end: Option<(Instant, Option<i64>)>,
    /// Whether records were applied since the last checkpoint.
    dirty: bool,
    last_checkpoint: Instant,
    last_record: Instant,
}

impl PartitionState {
    fn next_mut(&mut self, input: Input) -> &mut i64 {
        match input {
            Input::TimeReports => &mut self.next.0,
            Input::Invoices => &mut self.next.1,
        }
    }
}

type Partitions = BTreeMap<i32, PartitionState>;

/// What the loop and the consumer's callbacks share.
struct Shared {
    partitions: Mutex<Partitions>,
    /// Set when a callback failed in a way the loop must stop for.
    fatal: Mutex<Option<String>>,
    /// Whether every fetched partition's lag is known and small.
    lag_ok: Mutex<Option<bool>>,
    /// Input partitions currently assigned, for readiness and gauges.
    assigned: Mutex<BTreeSet<(String, i32)>>,
}

/// Consumer context: rebalances (restore, checkpoint) and statistics.
struct Context {
    shared: Arc<Shared>,
    config: ServiceConfig,
    producer: FutureProducer,
    ready_max_lag: i64,
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let lags = ConsumerLag::from_statistics(&statistics);
        let fetching = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.desired)
            .count();
        for lag in &lags {
            lag.emit();
        }
        // Caught up: every partition being fetched has a known lag within
        // the limit.
        let caught_up = fetching > 0 && lags.len() == fetching && lags.iter().all(|l| l.lag <= self.ready_max_lag);
        if let Ok(mut ok) = self.shared.lag_ok.lock() {
            *ok = Some(caught_up);
        }
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect()
}

impl ConsumerContext for Context {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Err(e) = self.take_over(tpl) {
                    error!(error = %e, "cannot restore the state of assigned partitions; stopping");
                    if let Ok(mut fatal) = self.shared.fatal.lock() {
                        fatal.get_or_insert(format!("restoring assigned partitions: {e:#}"));
                    }
                    // Assign nothing: no record of a partition without its
                    // state may be processed. The loop stops.
                    let _ = consumer.assign(&TopicPartitionList::new());
                    return;
                }
                if let Err(e) = consumer.assign(tpl) {
                    error!(error = %e, "assign failed");
                }
                let list = partitions_of(tpl);
                self.note_assignment(RebalanceKind::Assign, &list);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let list = partitions_of(tpl);
                self.hand_over(consumer, &list);
                let _ = consumer.unassign();
                self.note_assignment(RebalanceKind::Revoke, &list);
            }
            other => {
                error!(error = ?other, "rebalance error; dropping the assignment");
                let list: Vec<(String, i32)> =
                    self.shared.assigned.lock().map(|a| a.iter().cloned().collect()).unwrap_or_default();
                self.hand_over(consumer, &list);
                let _ = consumer.unassign();
                self.note_assignment(RebalanceKind::Revoke, &list);
            }
        }
    }
}

impl Context {
    fn note_assignment(&self, kind: RebalanceKind, list: &[(String, i32)]) {
        let Ok(mut assigned) = self.shared.assigned.lock() else { return };
        for tp in list {
            match kind {
                RebalanceKind::Assign => assigned.insert(tp.clone()),
                RebalanceKind::Revoke => assigned.remove(tp),
            };
        }
        let refs: Vec<(&str, i32)> = list.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        RebalanceEvent { kind, partitions: &refs, assigned: assigned.len() }.emit();
    }

    /// Restores the state of every newly assigned partition and sets the
    /// offsets the assignment starts at.
    fn take_over(&self, tpl: &mut TopicPartitionList) -> anyhow::Result<()> {
        let wanted: BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        for partition in wanted {
            let held = self.shared.partitions.lock().map(|p| p.contains_key(&partition)).unwrap_or(false);
            if !held {
                let state = restore(&self.config, partition)?;
                if let Ok(mut partitions) = self.shared.partitions.lock() {
                    partitions.insert(partition, state);
                }
            }
        }
        let partitions = self.shared.partitions.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut starts = Vec::new();
        for e in tpl.elements() {
            let Some(state) = partitions.get(&e.partition()) else { continue };
            let offset = match self.config.topics.input_of(e.topic()) {
                Some(Input::TimeReports) => state.next.0,
                Some(Input::Invoices) => state.next.1,
                None => continue,
            };
            starts.push((e.topic().to_string(), e.partition(), offset));
        }
        for (topic, partition, offset) in starts {
            tpl.set_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        Ok(())
    }

    /// Lets partitions go: flush the producer so that everything produced
    /// is in the log before the next owner reads it, checkpoint each, drop
    /// their state. Bounded by `kafka.revocation_budget`.
    fn hand_over(&self, consumer: &BaseConsumer<Self>, list: &[(String, i32)]) {
        let started = Instant::now();
        let budget = self.config.kafka.revocation_budget;
        if let Err(e) = self.producer.flush(budget) {
            warn!(error = %e, "revocation: the producer did not flush within the budget");
        }
        let numbers: BTreeSet<i32> = list.iter().map(|(_, p)| *p).collect();
        let Ok(mut partitions) = self.shared.partitions.lock() else { return };
        for partition in numbers {
            let Some(mut state) = partitions.remove(&partition) else { continue };
            let left = budget.saturating_sub(started.elapsed());
            if state.dirty
                && let Err(e) = checkpoint(
                    &self.config,
                    &self.producer,
                    consumer,
                    partition,
                    &mut state,
                    SnapshotTrigger::Revoke,
                    left,
                )
            {
                warn!(partition, error = %e, "revocation: no checkpoint; the next owner replays from the previous one");
            }
        }
    }
}

/// The state of `partition` as the previous owner left it: the newest
/// snapshot (or an empty engine) and the alerts produced since.
fn restore(config: &ServiceConfig, partition: i32) -> anyhow::Result<PartitionState> {
    let started = Instant::now();
    let stored = state_store::read_latest_snapshot(config, partition, RESTORE_TIMEOUT)?;
    let (engine, next, alerts_from, bytes) = match &stored {
        Some(s) => match Engine::restore(config.core.clone(), &s.state) {
            Ok(engine) => {
                let m = &s.manifest;
                (engine, (m.time_reports_offset, m.invoices_offset), Some(m.alerts_from), s.state.len())
            }
            Err(e) => {
                // A format this build cannot read, or another windows
                // configuration: rebuild from the inputs.
                warn!(partition, error = %e, "the snapshot cannot be used; rebuilding the state from the inputs");
                (Engine::new(config.core.clone()), (0, 0), None, 0)
            }
        },
        None => (Engine::new(config.core.clone()), (0, 0), None, 0),
    };
    let (ids, _end) = state_store::read_alert_ids(config, partition, alerts_from, RESTORE_TIMEOUT)?;
    let suppress: HashMap<String, i64> = ids.into_iter().collect();
    let restored_from_snapshot = alerts_from.is_some();
    PartitionRestored {
        partition,
        from_snapshot: restored_from_snapshot,
        bytes,
        suppressing: suppress.len(),
        offsets: next,
        seconds: started.elapsed().as_secs_f64(),
    }
    .emit();
    let now = Instant::now();
    // Dirty: checkpointed (and its offsets committed) once idle even if no
    // record comes, so that the group's committed offsets catch up with the
    // snapshot (a previous owner may have died between its snapshot and
    // its commit).
    Ok(PartitionState {
        engine,
        next,
        suppress,
        held: VecDeque::new(),
        paused: false,
        invoices_through: None,
        invoice_end: None,
        dirty: true,
        last_checkpoint: now,
        last_record: now,
    })
}

/// Writes a snapshot of `state` and, once it is acknowledged, commits the
/// offsets it covers. Every output produced before must already be
/// acknowledged (the caller flushes or drains first). Blocking.
fn checkpoint<C: ConsumerContext>(
    config: &ServiceConfig,
    producer: &FutureProducer,
    consumer: &impl Consumer<C>,
    partition: i32,
    state: &mut PartitionState,
    trigger: SnapshotTrigger,
    budget: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let alerts_end = state_store::alert_log_end(config, partition, budget.max(Duration::from_secs(1)))?;
    // Alerts read back but not computed again yet stay to be suppressed
    // after a later restore too.
    let alerts_from = state.suppress.values().copied().min().map_or(alerts_end, |o| o.min(alerts_end));
    let written_at_ms =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let manifest = wire::StateManifest {
        partition,
        time_reports_offset: state.next.0,
        invoices_offset: state.next.1,
        alerts_from,
        engine_format: snapshot::FORMAT_VERSION,
        written_at_ms,
        ..Default::default()
    };
    let bytes = state.engine.snapshot();
    let snapshot_id = (written_at_ms as u64) << 8 | u64::from(partition as u8);
    let records = state_store::snapshot_records(manifest, snapshot_id, &bytes);
    let key = partition.to_string();
    let mut deliveries = Vec::with_capacity(records.len());
    for value in &records {
        let headers =
            OwnedHeaders::new().insert(Header { key: decode::CONTENT_TYPE_HEADER, value: Some(STATE_CONTENT_TYPE) });
        let record = FutureRecord::to(&config.topics.state)
            .partition(partition)
            .key(key.as_bytes())
            .payload(value)
            .headers(headers);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((e, _)) => anyhow::bail!("snapshot of partition {partition}: {e}"),
        }
    }
    producer.flush(budget.saturating_sub(started.elapsed()).max(Duration::from_millis(100)))?;
    for delivery in deliveries {
        match delivery.now_or_never() {
            Some(Ok(Ok(_))) => {}
            Some(Ok(Err((e, _)))) => anyhow::bail!("snapshot of partition {partition}: {e}"),
            _ => anyhow::bail!("snapshot of partition {partition}: not acknowledged within the budget"),
        }
    }
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&config.topics.time_reports, partition, Offset::Offset(state.next.0))?;
    offsets.add_partition_offset(&config.topics.invoices, partition, Offset::Offset(state.next.1))?;
    // The snapshot, not the committed offsets, is where a new owner starts;
    // the commit keeps the group's lag meaningful for monitoring.
    if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
        warn!(partition, error = %e, "commit after the snapshot failed");
    }
    state.dirty = false;
    state.last_checkpoint = Instant::now();
    SnapshotWritten {
        partition,
        trigger,
        bytes: bytes.len(),
        records: records.len(),
        seconds: started.elapsed().as_secs_f64(),
        offsets: state.next,
    }
    .emit();
    Ok(())
}

/// Counters of one run, for tests and the final log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records consumed from the input topics.
    pub records: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Late events routed aside.
    pub late: u64,
    /// Alerts produced.
    pub alerts: u64,
    /// Alerts a replay computed again and did not produce (already on the
    /// alert topic).
    pub suppressed: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
}

type Ack = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Checks that every topic of the service has the input topics' partition
/// count: the alerts and snapshots of input partition `k` go to partition
/// `k` of their topics.
fn check_partitions(consumer: &StreamConsumer<Context>, config: &ServiceConfig) -> anyhow::Result<i32> {
    let t = &config.topics;
    let mut counts = Vec::new();
    for topic in [&t.time_reports, &t.invoices, &t.alerts, &t.state] {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
        let n = metadata.topics().first().map(|m| m.partitions().len()).unwrap_or(0);
        if n == 0 {
            anyhow::bail!("topic {topic} does not exist (create the topics: tillsyn topics create)");
        }
        counts.push((topic.as_str(), n));
    }
    if counts.iter().any(|(_, n)| *n != counts[0].1) {
        anyhow::bail!(
            "the input, alert and state topics must have the same number of partitions (co-partitioning): {}",
            counts.iter().map(|(t, n)| format!("{t}: {n}")).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(counts[0].1 as i32)
}

/// Runs the service until `shutdown` completes: then stops consuming,
/// waits for in-flight deliveries, checkpoints every partition and returns.
pub async fn run(
    config: ServiceConfig,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let validator = Validator::new(Pseudonymizer::from_secret(&config.core.pseudonym_secret));
    let shared = Arc::new(Shared {
        partitions: Mutex::new(BTreeMap::new()),
        fatal: Mutex::new(None),
        lag_ok: Mutex::new(None),
        assigned: Mutex::new(BTreeSet::new()),
    });
    let producer: FutureProducer = config.kafka.producer_config().create()?;
    let context =
        Context { shared: shared.clone(), config: config.clone(), producer: producer.clone(), ready_max_lag: 1_000 };
    let consumer: StreamConsumer<Context> = config.kafka.consumer_config().create_with_context(context)?;
    let offsets = state_store::reader(&config)?;
    let partitions = check_partitions(&consumer, &config)?;
    let topics = &config.topics;
    consumer.subscribe(&[topics.time_reports.as_str(), topics.invoices.as_str()])?;
    info!(
        brokers = config.kafka.brokers.as_str(),
        group = config.kafka.group_id.as_str(),
        time_reports = topics.time_reports.as_str(),
        invoices = topics.invoices.as_str(),
        partitions,
        "consuming"
    );

    let mut in_flight: FuturesOrdered<Ack> = FuturesOrdered::new();
    let mut summary = RunSummary::default();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut last_gauges = Instant::now();
    let mut failure: Option<anyhow::Error> = None;
    let interval = config.kafka.commit_interval;
    // Wakes the loop when no record arrives, so checkpoints, gauges and
    // readiness keep being updated while idle.
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(ack) = in_flight.next(), if !in_flight.is_empty() => {
                if let Err(error) = ack {
                    failure = Some(anyhow::anyhow!("a delivery failed for good: {error}"));
                    break;
                }
            },
            _ = ticker.tick() => {
                let io = Io { config: &config, validator: &validator, producer: &producer, consumer: &consumer, offsets: &offsets };
                if let Some(ack) = release_all(&io, &shared, &mut alerts, &mut summary) {
                    in_flight.push_back(ack);
                }
            }
            message = consumer.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let message = match message {
                    Ok(m) => m,
                    Err(error) => {
                        warn!(%error, "consumer error");
                        continue;
                    }
                };
                let started = Instant::now();
                let io = Io { config: &config, validator: &validator, producer: &producer, consumer: &consumer, offsets: &offsets };
                if let Some(ack) = process(&message, &io, &shared, &mut alerts, &mut summary) {
                    in_flight.push_back(ack);
                }
                ProcessingLatency::from_duration(started.elapsed()).emit();
            }
        }
        if let Some(fatal) = shared.fatal.lock().ok().and_then(|f| f.clone()) {
            failure = Some(anyhow::anyhow!(fatal));
            break;
        }
        if let Err(e) =
            checkpoint_due(&config, &producer, &consumer, &shared, &mut in_flight, interval, &mut summary).await
        {
            failure = Some(e);
            break;
        }
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            last_gauges = Instant::now();
            if let Ok(partitions) = shared.partitions.lock() {
                for (partition, state) in partitions.iter() {
                    StateGauges { partition: *partition, size: state.engine.state_size() }.emit();
                    if let Some(w) = state.engine.watermark() {
                        WatermarkLag::new(*partition, w, SystemTime::now()).emit();
                    }
                }
            }
            let lag_ok = shared.lag_ok.lock().ok().and_then(|s| *s).unwrap_or(false);
            let assigned = shared.assigned.lock().map(|a| !a.is_empty()).unwrap_or(false);
            if !assigned {
                health.set_not_ready("no partitions assigned");
            } else if lag_ok {
                health.set_ready(true);
            } else {
                health.set_not_ready("catching up");
            }
        }
    }

    // Shutdown: no new records; wait for what is in flight, checkpoint.
    health.set_not_ready("shutting down");
    info!(in_flight = in_flight.len(), "stopping: flushing in-flight deliveries");
    if failure.is_none()
        && let Err(e) = drain(&mut in_flight).await
    {
        failure = Some(e);
    }
    producer.flush(Duration::from_secs(30))?;
    if failure.is_none() {
        let budget = config.kafka.revocation_budget;
        let result = tokio::task::block_in_place(|| -> anyhow::Result<u64> {
            let mut written = 0;
            let mut partitions = shared.partitions.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            for (partition, state) in partitions.iter_mut() {
                if state.dirty {
                    checkpoint(&config, &producer, &consumer, *partition, state, SnapshotTrigger::Shutdown, budget)?;
                    written += 1;
                }
            }
            Ok(written)
        });
        match result {
            Ok(n) => summary.checkpoints += n,
            Err(e) => failure = Some(e),
        }
    }
    // Nothing dirty is left: the revocation that leaving the group causes
    // has nothing to write.
    consumer.unsubscribe();
    info!(
        records = summary.records,
        dead_lettered = summary.dead_lettered,
        late = summary.late,
        alerts = summary.alerts,
        suppressed = summary.suppressed,
        checkpoints = summary.checkpoints,
        "stopped"
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Waits for every in-flight delivery.
async fn drain(in_flight: &mut FuturesOrdered<Ack>) -> anyhow::Result<()> {
    while let Some(ack) = in_flight.next().await {
        ack.map_err(|e| anyhow::anyhow!("a delivery failed for good: {e}"))?;
    }
    Ok(())
}

/// Checkpoints the partitions that are due: dirty, and either the interval
/// passed or idle for [`IDLE_CHECKPOINT`].
async fn checkpoint_due(
    config: &ServiceConfig,
    producer: &FutureProducer,
    consumer: &StreamConsumer<Context>,
    shared: &Arc<Shared>,
    in_flight: &mut FuturesOrdered<Ack>,
    interval: Duration,
    summary: &mut RunSummary,
) -> anyhow::Result<()> {
    let due: Vec<(i32, SnapshotTrigger)> = match shared.partitions.lock() {
        Ok(partitions) => partitions
            .iter()
            .filter(|(_, s)| s.dirty)
            .filter_map(|(p, s)| {
                if s.last_checkpoint.elapsed() >= interval {
                    Some((*p, SnapshotTrigger::Interval))
                } else if s.last_record.elapsed() >= IDLE_CHECKPOINT {
                    Some((*p, SnapshotTrigger::Idle))
                } else {
                    None
                }
            })
            .collect(),
        Err(_) => anyhow::bail!("poisoned partition state"),
    };
    if due.is_empty() {
        return Ok(());
    }
    // Every output so far acknowledged: the alert partition's end is then
    // exactly where this partition's alerts after the snapshot begin.
    drain(in_flight).await?;
    let budget = config.kafka.revocation_budget;
    tokio::task::block_in_place(|| {
        let mut partitions = shared.partitions.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        for (partition, trigger) in due {
            // Revoked meanwhile (the revocation checkpointed it).
            let Some(state) = partitions.get_mut(&partition) else { continue };
            checkpoint(config, producer, consumer, partition, state, trigger, budget)?;
            summary.checkpoints += 1;
        }
        Ok(())
    })
}

/// How far (event time) a partition's time reports may run ahead of the
/// newest invoice processed while its invoice partition still has unread
/// records. The core's alerts are the same for any interleaving of the two
/// inputs within this bound (checked offline: invoices delayed by 2, 5 and
/// 10 days against the time reports give the replay's alerts; by 20 days
/// they do not); a consumer catching up on a backlog would otherwise read
/// the large time-report partitions months ahead of the small invoice ones.
pub const ALIGNMENT_SECS: i64 = 5 * 86_400;

/// Time reports held back per partition before its fetching is paused.
const HOLD_LIMIT: usize = 5_000;

/// How long a read end offset of an invoice partition is trusted.
const END_OFFSET_TTL: Duration = Duration::from_millis(500);

/// Everything the processing of records needs, borrowed from the loop.
struct Io<'a> {
    config: &'a ServiceConfig,
    validator: &'a Validator,
    producer: &'a FutureProducer,
    consumer: &'a StreamConsumer<Context>,
    /// A client of its own for end offsets: the group's consumer, whose
    /// queue the loop polls, was seen to time out on them.
    offsets: &'a BaseConsumer,
}

/// Handles one record from Kafka; returns the future that resolves once
/// everything produced because of it (and of the held time reports it
/// released) is acknowledged. `None` for a record not processed now.
fn process(
    message: &BorrowedMessage<'_>,
    io: &Io<'_>,
    shared: &Arc<Shared>,
    alerts: &mut Vec<Alert>,
    summary: &mut RunSummary,
) -> Option<Ack> {
    let topic = message.topic();
    let (partition, offset) = (message.partition(), message.offset());
    let input = io.config.topics.input_of(topic)?;
    let mut partitions = shared.partitions.lock().ok()?;
    // Not ours (revoked meanwhile), or before the snapshot's offsets (a
    // fetch from before the assignment's start): not processed here.
    let state = partitions.get_mut(&partition)?;
    if offset < *state.next_mut(input) {
        return None;
    }
    let mut deliveries = Vec::new();
    match input {
        Input::TimeReports => {
            let decoded = decode(message, input, io);
            let event_time = decoded.as_ref().ok().map(DomainEvent::event_time);
            if !state.held.is_empty() || event_time.is_some_and(|t| must_hold(state, t, io, partition)) {
                hold(state, message.detach(), event_time, io, partition);
                return None;
            }
            apply(message, input, decoded, state, io, alerts, summary, &mut deliveries);
        }
        Input::Invoices => {
            let decoded = decode(message, input, io);
            apply(message, input, decoded, state, io, alerts, summary, &mut deliveries);
            release(state, io, partition, alerts, summary, &mut deliveries);
        }
    }
    Some(acknowledged(deliveries))
}

/// Processes the held time reports of every partition that may go on
/// (e.g. its invoice partition reached its end). Called on the loop's tick.
fn release_all(io: &Io<'_>, shared: &Arc<Shared>, alerts: &mut Vec<Alert>, summary: &mut RunSummary) -> Option<Ack> {
    let mut partitions = shared.partitions.lock().ok()?;
    let mut deliveries = Vec::new();
    for (partition, state) in partitions.iter_mut() {
        if !state.held.is_empty() {
            release(state, io, *partition, alerts, summary, &mut deliveries);
        }
    }
    (!deliveries.is_empty()).then(|| acknowledged(deliveries))
}

fn acknowledged(deliveries: Vec<Delivery>) -> Ack {
    Box::pin(async move {
        for delivery in deliveries {
            delivery.await?;
        }
        Ok(())
    })
}

fn decode(message: &impl Message, input: Input, io: &Io<'_>) -> Result<DomainEvent, Rejection> {
    let headers: Vec<(&str, Option<&[u8]>)> =
        message.headers().map(|h| h.iter().map(|h| (h.key, h.value)).collect()).unwrap_or_default();
    decode::content_type_header(headers.iter().copied()).and_then(|content_type| {
        decode::decode_record(
            input,
            message.payload(),
            content_type,
            io.config.topics.input_format(input),
            io.validator,
        )
    })
}

/// Whether a time report at `event_time` must wait for invoices: it is
/// more than [`ALIGNMENT_SECS`] past the newest invoice processed, and the
/// invoice partition has records not read yet.
fn must_hold(state: &mut PartitionState, event_time: EventTime, io: &Io<'_>, partition: i32) -> bool {
    if state.invoices_through.is_some_and(|t| event_time.0 <= t.0.saturating_add(ALIGNMENT_SECS)) {
        return false;
    }
    let fresh = state.invoice_end.filter(|(read, _)| read.elapsed() < END_OFFSET_TTL);
    let end = match fresh {
        Some((_, end)) => end,
        None => {
            let topic = &io.config.topics.invoices;
            let end = io.offsets.fetch_watermarks(topic, partition, Duration::from_secs(1)).ok().map(|(_, high)| high);
            // A failure is remembered as long as an answer, so that a broker
            // that does not answer costs one wait per interval, not per record.
            state.invoice_end = Some((Instant::now(), end));
            end
        }
    };
    // Unknown: assume unread invoices (the next tick asks again).
    end.is_none_or(|end| state.next.1 < end)
}

fn hold(state: &mut PartitionState, message: OwnedMessage, event_time: Option<EventTime>, io: &Io<'_>, partition: i32) {
    state.held.push_back((event_time, message));
    if state.held.len() >= HOLD_LIMIT && !state.paused {
        let mut list = TopicPartitionList::new();
        list.add_partition(&io.config.topics.time_reports, partition);
        match io.consumer.pause(&list) {
            Ok(()) => state.paused = true,
            Err(e) => warn!(partition, error = %e, "cannot pause the time-report partition"),
        }
    }
}

/// Processes held time reports, oldest first, while they may go.
fn release(
    state: &mut PartitionState,
    io: &Io<'_>,
    partition: i32,
    alerts: &mut Vec<Alert>,
    summary: &mut RunSummary,
    deliveries: &mut Vec<Delivery>,
) {
    while let Some((event_time, _)) = state.held.front() {
        if let Some(t) = *event_time
            && must_hold(state, t, io, partition)
        {
            break;
        }
        let Some((_, message)) = state.held.pop_front() else { break };
        let decoded = decode(&message, Input::TimeReports, io);
        apply(&message, Input::TimeReports, decoded, state, io, alerts, summary, deliveries);
    }
    if state.held.is_empty() && state.paused {
        let mut list = TopicPartitionList::new();
        list.add_partition(&io.config.topics.time_reports, partition);
        match io.consumer.resume(&list) {
            Ok(()) => state.paused = false,
            Err(e) => warn!(partition, error = %e, "cannot resume the time-report partition"),
        }
    }
}

/// Applies one decoded record (or its rejection) to the partition's engine
/// and hands what it produces to the producer.
#[allow(clippy::too_many_arguments)]
fn apply(
    message: &impl Message,
    input: Input,
    decoded: Result<DomainEvent, Rejection>,
    state: &mut PartitionState,
    io: &Io<'_>,
    alerts: &mut Vec<Alert>,
    summary: &mut RunSummary,
    deliveries: &mut Vec<Delivery>,
) {
    let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
    summary.records += 1;
    RecordConsumed { topic, kind: input }.emit();
    let headers: Vec<(&str, Option<&[u8]>)> =
        message.headers().map(|h| h.iter().map(|h| (h.key, h.value)).collect()).unwrap_or_default();
    match decoded {
        Err(rejection) => {
            summary.dead_lettered += 1;
            RecordDeadLettered { topic, partition, offset, reason: rejection.reason }.emit();
            deliveries.push(dead_letter(io.producer, io.config, message, &headers, &rejection));
        }
        Ok(event) => {
            if let DomainEvent::Invoice(invoice) = &event {
                state.invoices_through =
                    Some(state.invoices_through.map_or(invoice.issued_at, |t| t.max(invoice.issued_at)));
            }
            alerts.clear();
            match state.engine.process(&event, alerts) {
                Disposition::Late(late) => {
                    summary.late += 1;
                    LateEventRouted::from(&late).emit();
                    deliveries.push(late_event(io.producer, io.config, message, &headers, &late));
                }
                Disposition::Applied | Disposition::Duplicate => {}
            }
            for alert in alerts.drain(..) {
                if state.suppress.remove(&alert.alert_id).is_some() {
                    summary.suppressed += 1;
                    AlertSuppressed { partition }.emit();
                    continue;
                }
                summary.alerts += 1;
                AlertProduced::from_alert(&alert).emit();
                deliveries.push(produce_alert(io.producer, io.config, partition, &alert));
            }
        }
    }
    *state.next_mut(input) = offset + 1;
    state.dirty = true;
    state.last_record = Instant::now();
}

type Delivery = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Sends one record (to `partition`, or where its key's hash puts it);
/// the future resolves when the broker acknowledged it.
fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: &[u8],
    headers: OwnedHeaders,
) -> Delivery {
    let mut record = FutureRecord::to(topic).payload(value).headers(headers);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    let topic = topic.to_string();
    match producer.send_result(record) {
        Ok(future) => Box::pin(async move {
            match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => {
                    DeliveryFailed { topic: &topic, error: &error }.emit();
                    Err(format!("to {topic}: {error}"))
                }
                Err(_) => Err(format!("to {topic}: the producer was dropped")),
            }
        }),
        Err((error, _)) => {
            DeliveryFailed { topic: &topic, error: &error }.emit();
            let text = format!("to {topic}: {error}");
            Box::pin(async move { Err(text) })
        }
    }
}

fn copy_headers(headers: &[(&str, Option<&[u8]>)], skip_prefix: &str) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(headers.len() + 5);
    for (key, value) in headers {
        if !key.starts_with(skip_prefix) {
            out = out.insert(Header { key, value: *value });
        }
    }
    out
}

fn dead_letter(
    producer: &FutureProducer,
    config: &ServiceConfig,
    message: &impl Message,
    headers: &[(&str, Option<&[u8]>)],
    rejection: &Rejection,
) -> Delivery {
    let mut out = copy_headers(headers, "tillsyn-dlq-");
    for (key, value) in decode::dead_letter_headers(rejection, message.topic(), message.partition(), message.offset()) {
        out = out.insert(Header { key: &key, value: Some(&value) });
    }
    let value = message.payload().unwrap_or_default();
    send(producer, &config.topics.dead_letter, None, message.key(), value, out)
}

fn late_event(
    producer: &FutureProducer,
    config: &ServiceConfig,
    message: &impl Message,
    headers: &[(&str, Option<&[u8]>)],
    late: &LateEvent,
) -> Delivery {
    let mut out = copy_headers(headers, "tillsyn-late-");
    let fields = [
        ("tillsyn-late-input", late.input.name().to_string()),
        ("tillsyn-late-event-time", late.event_time.to_string()),
        ("tillsyn-late-watermark", late.watermark.to_string()),
        ("tillsyn-late-behind-secs", late.behind_secs.to_string()),
        ("tillsyn-late-source-topic", message.topic().to_string()),
        ("tillsyn-late-source-partition", message.partition().to_string()),
        ("tillsyn-late-source-offset", message.offset().to_string()),
    ];
    for (key, value) in &fields {
        out = out.insert(Header { key, value: Some(value.as_bytes()) });
    }
    let topic = config.topics.late_events_topic();
    let value = message.payload().unwrap_or_default();
    send(producer, topic, None, message.key(), value, out)
}

/// Produces an alert to partition `partition` of the alert topic: the
/// partition of its provider's input, where a restore looks for it.
fn produce_alert(producer: &FutureProducer, config: &ServiceConfig, partition: i32, alert: &Alert) -> Delivery {
    let wire = alert.to_wire();
    let format = config.topics.alerts_format;
    let value = match format {
        Format::Protobuf => prost::Message::encode_to_vec(&wire),
        Format::Json => serde_json::to_vec(&wire).unwrap_or_default(),
    };
    let key = wire.provider_id.clone();
    let headers = OwnedHeaders::new()
        .insert(Header { key: decode::CONTENT_TYPE_HEADER, value: Some(format.content_type()) })
        .insert(Header { key: ALERT_ID_HEADER, value: Some(wire.alert_id.as_str()) });
    send(producer, &config.topics.alerts, Some(partition), Some(key.as_bytes()), &value, headers)
}

/// Waits for SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM received"),
                    _ = int.recv() => info!("SIGINT received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The start of a partition, for tools that read a topic from the beginning.
pub fn beginning() -> Offset {
    Offset::Beginning
}

/// A queue of deliveries, for tools that produce many records (the
/// simulator) and want to bound how many are unacknowledged.
pub struct DeliveryWindow {
    queue: VecDeque<Delivery>,
    limit: usize,
}

impl DeliveryWindow {
    /// At most `limit` deliveries outstanding.
    pub fn new(limit: usize) -> Self {
        DeliveryWindow { queue: VecDeque::new(), limit: limit.max(1) }
    }

    /// Sends a record, waiting first for the oldest delivery if full.
    pub async fn send(
        &mut self,
        producer: &FutureProducer,
        topic: &str,
        key: &[u8],
        value: &[u8],
        headers: OwnedHeaders,
    ) -> anyhow::Result<()> {
        while self.queue.len() >= self.limit {
            if let Some(d) = self.queue.pop_front() {
                d.await.map_err(anyhow::Error::msg)?;
            }
        }
        self.queue.push_back(send(producer, topic, None, Some(key), value, headers));
        Ok(())
    }

    /// Waits for every outstanding delivery.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        while let Some(d) = self.queue.pop_front() {
            d.await.map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}
