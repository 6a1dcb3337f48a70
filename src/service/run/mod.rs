//! The consume → detect → produce loop of `tillsyn run`, and the recovery
//! that makes its effect exactly once.
//!
//! One consumer in the configured group reads the time-report and invoice
//! topics. Both are keyed by provider id and co-partitioned (same partition
//! count, the keyed partitioner, and the `range` assignor, enforced, which
//! gives a member the same partition numbers of both), so partition `k` of
//! both topics feeds one partition driver. Its alerts go to partition `k` of
//! the alert topic, its snapshots to partition `k` of the state topic: every
//! topic of the service has the same partition count (checked at start).
//!
//! The loop owns every partition's state and is a thin adapter around the
//! core's partition driver ([`tillsyn_core::driver`]): per record it
//! decodes and validates at the edge, offers the record to its partition's
//! driver, and carries out what the driver hands back (produce an alert,
//! dead-letter a rejected record with its reason and original key, value
//! and headers, route a late event, pause or resume). A thread of its own
//! polls librdkafka (`consumer`); its rebalance callback only signals.
//! The number of records whose outputs await acknowledgement is bounded, so
//! memory is; a delivery that fails for good stops the service with an
//! error.
//!
//! # Exactly-once alerts without transactions
//!
//! - **Checkpoints.** Every `kafka.commit_interval` (and when a partition
//!   has been idle a second, on revocation and at shutdown) a partition is
//!   checkpointed (`checkpoint`): wait until every output produced so far
//!   is acknowledged; write the engine's snapshot with a manifest naming the
//!   input offsets it covers and `alerts_from`, the end of the alert
//!   partition at that moment (every alert produced before it is reflected
//!   in the state); once the snapshot is acknowledged, commit those offsets.
//! - **Takeover.** An assigned partition is paused in the callback. The loop
//!   restores it on a blocking task, outside librdkafka's poll: read its
//!   newest complete snapshot ([`super::state_store`]) and
//!   restore the engine, read the ids of the alerts in the alert partition
//!   from `alerts_from` to its end (produced after the snapshot, before the
//!   previous owner stopped). The consumer thread then seeks both inputs to
//!   the snapshot's offsets and resumes them; no record of the partition is
//!   processed before. Without a snapshot: an empty engine, the inputs from
//!   their beginning, and every alert already in the partition. `/readyz`
//!   says "restoring partitions" meanwhile.
//! - **Replay.** The engine is deterministic and its alert ids are a
//!   function of the events (independent of how the two inputs interleave),
//!   so replaying the records after the snapshot computes those alerts
//!   again, with the same ids: the driver suppresses each one found in the
//!   set read back (once). Alerts past the crash point are produced as usual.
//! - **Revocation.** The callback tells the loop and waits, at most
//!   `kafka.revocation_budget`: the loop waits until every output is
//!   acknowledged (so the next owner reads every alert produced),
//!   checkpoints the revoked partitions and drops their state.
//!
//! What remains possible is written in the README ("Guarantees").
//!
//! Files: `consumer` (the polling thread, statistics, rebalances),
//! `checkpoint` (snapshots, restores, when one is due), `produce` (every
//! record written, typed delivery errors).

mod checkpoint;
mod consumer;
mod global;
pub mod produce;
mod reference;
pub mod rules;
mod topic_reader;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, Producer};
use tillsyn_core::baseline::{GlobalPeerTable, ReferenceTable};
use tillsyn_core::decode::{self, Rejection};
use tillsyn_core::driver::{Output, Record, Stream};
use tillsyn_core::engine::{Input, StateSize, ToStaff};
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::reference::ReferenceKind;
use tillsyn_core::model::validate::Validator;
use tillsyn_core::model::{DomainEvent, EventTime};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use self::checkpoint::Partition;
use self::consumer::{Command, ConsumerThread, Context, Fetched, LAG_OK, Rebalance};
use self::global::GlobalTableReader;
use self::produce::Delivery;
use super::config::ServiceConfig;
use super::state_store;
use crate::telemetry::events::{
    AlertProduced, AlertSuppressed, HeldRecords, InternalRecordSkipped, LateEventRouted, OpenEpisodes,
    PeerDecisionsLag, ProcessingLatency, Rebalance as RebalanceEvent, RebalanceKind, RecordConsumed,
    RecordDeadLettered, RulesEntryRead, SnapshotTrigger, StaffOverLimit, StateGauges, WatermarkLag,
};
use crate::telemetry::{Health, Loop};

pub use tillsyn_core::driver::ALIGNMENT_SECS;

/// Most records whose produced records await acknowledgement.
const MAX_IN_FLIGHT: usize = 20_000;

/// Records for the staff stage gathered before they are sent regardless
/// (a batch of this many visits is about 200 kB).
const STAFF_BATCH_ENTRIES: usize = 2_000;

/// How long a read end offset of an invoice partition is trusted.
const END_OFFSET_TTL: Duration = Duration::from_millis(500);

/// Failed starts (seeks) of partitions the service tolerates before it
/// stops (about ten seconds of retrying).
const MAX_START_ATTEMPTS: u32 = 100;

/// Most consumer lag (records) of every partition for `/readyz`.
const READY_MAX_LAG: i64 = 1_000;

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

/// Everything the processing of records needs, borrowed from the loop.
struct Io<'a> {
    config: &'a ServiceConfig,
    validator: &'a Validator,
    producer: &'a FutureProducer,
    consumer: &'a BaseConsumer<Context>,
    /// A client of its own for end offsets and metadata.
    offsets: &'a BaseConsumer,
    /// Partitions of every co-partitioned topic.
    partitions: i32,
    /// The staff stage's internal topics.
    visits_by_staff: String,
    staff_findings: String,
    /// What the provider stage sends the staff stage, gathered per staff
    /// partition and sent as one record each by [`Io::flush_staff`].
    staff_batches: Mutex<StaffBatches>,
    /// The latest time a partition waited for the rules' configuration.
    rules_wanted: Mutex<Option<(EventTime, EventTime)>>,
}

/// Records for the staff stage not yet sent, per staff partition, in order.
#[derive(Default)]
struct StaffBatches {
    by_partition: BTreeMap<i32, Vec<ToStaff>>,
    /// Entries gathered.
    entries: usize,
}

impl Io<'_> {
    fn decode(&self, message: &OwnedMessage, input: Input) -> Result<DomainEvent, Rejection> {
        let headers = message.headers();
        let pairs = headers.iter().flat_map(|h| h.iter()).map(|h| (h.key, h.value));
        decode::content_type_header(pairs).and_then(|content_type| {
            decode::decode_record(
                input,
                message.payload(),
                content_type,
                self.config.topics.input_format(input),
                self.validator,
            )
        })
    }

    /// The end offset of `partition` of the invoice topic, asked of the
    /// broker at most every [`END_OFFSET_TTL`]. A failure is remembered as
    /// long as an answer, so that a broker that does not answer costs one
    /// wait per interval, not per record.
    fn invoice_end(&self, cache: &mut Option<(Instant, Option<i64>)>, partition: i32) -> Option<i64> {
        if let Some((read, end)) = *cache
            && read.elapsed() < END_OFFSET_TTL
        {
            return end;
        }
        let topic = &self.config.topics.invoices;
        let end = self.offsets.fetch_watermarks(topic, partition, Duration::from_secs(1)).ok().map(|(_, high)| high);
        *cache = Some((Instant::now(), end));
        end
    }

    /// Turns the driver's outputs into metrics and records to produce.
    fn carry_out(
        &self,
        partition: i32,
        outputs: &mut Vec<Output<OwnedMessage>>,
        summary: &mut RunSummary,
        deliveries: &mut Vec<Delivery>,
    ) {
        let topics = &self.config.topics;
        for output in outputs.drain(..) {
            match output {
                Output::Processed { input } => {
                    summary.records += 1;
                    RecordConsumed { topic: topics.input_topic(input), kind: input }.emit();
                }
                Output::Alert(alert) => {
                    summary.alerts += 1;
                    AlertProduced::from_alert(&alert).emit();
                    deliveries.push(produce::alert(self.producer, self.config, partition, &alert));
                }
                Output::Suppressed(_) => {
                    summary.suppressed += 1;
                    AlertSuppressed { partition }.emit();
                }
                Output::DeadLetter { handle, offset, rejection, .. }
                | Output::ReferenceDeadLetter { handle, offset, rejection, .. } => {
                    summary.dead_lettered += 1;
                    let topic = handle.topic();
                    RecordDeadLettered { topic, partition, offset, reason: rejection.reason }.emit();
                    deliveries.push(produce::dead_letter(self.producer, self.config, &handle, &rejection));
                }
                Output::Late { handle, late, .. } => {
                    summary.late += 1;
                    LateEventRouted::from(&late).emit();
                    deliveries.push(produce::late_event(self.producer, self.config, &handle, &late));
                }
                Output::PeerDay(day) => deliveries.push(produce::peer_day(self.producer, self.config, &day)),
                Output::ToStaff(record) => {
                    let mut batches = self.staff_batches();
                    match produce::staff_destination(&record, self.partitions) {
                        Some(p) => batches.by_partition.entry(p).or_default().push(record),
                        None => {
                            for p in 0..self.partitions {
                                batches.by_partition.entry(p).or_default().push(record.clone());
                            }
                        }
                    }
                    batches.entries += 1;
                }
                Output::FromStaff(record) => {
                    deliveries.extend(produce::from_staff(self.producer, self.config, self.partitions, &record))
                }
                Output::InternalSkipped { offset } => InternalRecordSkipped { partition, offset }.emit(),
                Output::Pause(stream) | Output::Resume(stream) => {
                    let topic = match stream {
                        Stream::TimeReports => topics.time_reports.clone(),
                        Stream::Invoices => topics.invoices.clone(),
                        Stream::StaffVisits => topics.visits_by_staff_topic(),
                    };
                    let mut list = TopicPartitionList::new();
                    list.add_partition(&topic, partition);
                    let pause = matches!(output, Output::Pause(_));
                    let result = if pause { self.consumer.pause(&list) } else { self.consumer.resume(&list) };
                    if let Err(e) = result {
                        warn!(partition, pause, topic = topic.as_str(), error = %e, "cannot pause or resume a partition");
                    }
                }
                Output::RulesNeeded { at, through } => {
                    let mut wanted = self.rules_wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    *wanted = Some(wanted.map_or((at, through), |(a, t)| (a.max(at), t.max(through))));
                }
            }
        }
    }

    /// Offers one record to its partition's driver; returns the
    /// acknowledgement of everything produced because of it (and of the
    /// held time reports it released). `None` for a record of a partition
    /// not started (yet, or any more) or nothing produced.
    fn process(&self, message: OwnedMessage, state: &mut Assignment, summary: &mut RunSummary) -> Option<Delivery> {
        let Some(input) = self.config.topics.input_of(message.topic()) else {
            return self.process_internal(message, state, summary);
        };
        let partition = message.partition();
        let Partition { driver, invoice_end, last_record, .. } = state.running.get_mut(&partition)?;
        let size = message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len);
        let record =
            Record { input, offset: message.offset(), decoded: self.decode(&message, input), handle: message, size };
        let mut outputs = Vec::new();
        driver.offer(record, &mut || self.invoice_end(invoice_end, partition), &mut outputs);
        *last_record = Instant::now();
        let mut deliveries = Vec::new();
        self.carry_out(partition, &mut outputs, summary, &mut deliveries);
        (!deliveries.is_empty()).then(|| produce::all(deliveries))
    }

    /// The gathered records for the staff stage (the loop's alone: the
    /// lock is never contended; it makes the loop's future `Send`).
    fn staff_batches(&self) -> std::sync::MutexGuard<'_, StaffBatches> {
        self.staff_batches.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records for the staff stage gathered and not yet sent.
    fn staff_pending(&self) -> usize {
        self.staff_batches().entries
    }

    /// Sends what was gathered for the staff stage: one record per staff
    /// partition. Must run before anything waits for every delivery so far
    /// (a checkpoint, a revocation, the shutdown): a checkpoint covers the
    /// records whose outputs these are.
    fn flush_staff(&self) -> Option<Delivery> {
        let batches = std::mem::take(&mut *self.staff_batches());
        let deliveries: Vec<Delivery> = batches
            .by_partition
            .iter()
            .map(|(p, records)| produce::staff_batch(self.producer, self.config, *p, records).0)
            .collect();
        (!deliveries.is_empty()).then(|| produce::all(deliveries))
    }

    /// Decides, in every running partition, the days the global peer table
    /// has made final (a partition that started since decides the days
    /// final before its start too).
    fn decide_all(
        &self,
        peers: &GlobalPeerTable,
        reference: &ReferenceTable,
        state: &mut Assignment,
        summary: &mut RunSummary,
    ) -> Option<Delivery> {
        let mut outputs = Vec::new();
        let mut deliveries = Vec::new();
        for (partition, Partition { driver, .. }) in state.running.iter_mut() {
            driver.decide(peers, reference, &mut outputs);
            self.carry_out(*partition, &mut outputs, summary, &mut deliveries);
        }
        (!deliveries.is_empty()).then(|| produce::all(deliveries))
    }

    /// Offers a record of the staff stage's internal topics (visits by
    /// staff, staff findings) to its partition's driver. A record that does
    /// not decode (nothing but tillsyn writes these topics) is skipped with
    /// a warning and a metric, as the global table does.
    fn process_internal(
        &self,
        message: OwnedMessage,
        state: &mut Assignment,
        summary: &mut RunSummary,
    ) -> Option<Delivery> {
        if let Some(kind) = self.config.topics.reference_of(message.topic()) {
            return self.process_reference(kind, message, state, summary);
        }
        let partition = message.partition();
        let Partition { driver, last_record, .. } = state.running.get_mut(&partition)?;
        let offset = message.offset();
        let payload = message.payload().unwrap_or_default();
        let mut outputs = Vec::new();
        let topic = message.topic();
        if topic == self.visits_by_staff {
            driver.offer_staff_visits(offset, tillsyn_core::engine::decode_batch(payload), &mut outputs);
        } else if topic == self.staff_findings {
            driver.offer_staff_finding(offset, serde_json::from_slice(payload).ok(), &mut outputs);
        } else {
            return None;
        }
        *last_record = Instant::now();
        let mut deliveries = Vec::new();
        self.carry_out(partition, &mut outputs, summary, &mut deliveries);
        (!deliveries.is_empty()).then(|| produce::all(deliveries))
    }

    /// Offers a record of partition `k` of a reference-data topic to the
    /// driver of partition `k`, which dead-letters it if the reference
    /// table refuses it (every instance's global reader feeds the table
    /// and skips what it refuses; this is the one place it is
    /// dead-lettered).
    fn process_reference(
        &self,
        kind: ReferenceKind,
        message: OwnedMessage,
        state: &mut Assignment,
        summary: &mut RunSummary,
    ) -> Option<Delivery> {
        let partition = message.partition();
        let Partition { driver, last_record, .. } = state.running.get_mut(&partition)?;
        let decoded = reference::decode(&message, kind, self.validator);
        let offset = message.offset();
        let mut outputs = Vec::new();
        driver.offer_reference(kind, offset, decoded, message, &mut outputs);
        *last_record = Instant::now();
        let mut deliveries = Vec::new();
        self.carry_out(partition, &mut outputs, summary, &mut deliveries);
        (!deliveries.is_empty()).then(|| produce::all(deliveries))
    }

    /// Releases the held time reports of every partition that may go on
    /// (e.g. its invoice partition reached its end). Called on the loop's tick.
    fn release_all(&self, state: &mut Assignment, summary: &mut RunSummary) -> Option<Delivery> {
        let mut outputs = Vec::new();
        let mut deliveries = Vec::new();
        for (partition, Partition { driver, invoice_end, .. }) in state.running.iter_mut() {
            if driver.held() > 0 {
                driver.release(&mut || self.invoice_end(invoice_end, *partition), &mut outputs);
                self.carry_out(*partition, &mut outputs, summary, &mut deliveries);
            }
        }
        (!deliveries.is_empty()).then(|| produce::all(deliveries))
    }

    /// Gives every partition the versions of the rules' configuration
    /// accepted now, and lets them decide up to the new seal.
    fn rules_changed(
        &self,
        changes: &rules::Changes,
        feed: &rules::RulesFeed,
        state: &mut Assignment,
        summary: &mut RunSummary,
    ) -> anyhow::Result<Option<Delivery>> {
        let mut outputs = Vec::new();
        let mut deliveries = Vec::new();
        let starting = state.starting.iter_mut().map(|(p, (_, partition))| (p, partition));
        for (partition, Partition { driver, invoice_end, .. }) in state.running.iter_mut().chain(starting) {
            for version in &changes.versions {
                driver.add_rules_version(version)?;
            }
            if changes.sealed.is_some() {
                driver.set_rules_known_through(
                    feed.known_through(),
                    &mut || self.invoice_end(invoice_end, *partition),
                    &mut outputs,
                );
                self.carry_out(*partition, &mut outputs, summary, &mut deliveries);
            }
        }
        Ok((!deliveries.is_empty()).then(|| produce::all(deliveries)))
    }

    /// The latest time a partition waited for the rules' configuration
    /// since the last call.
    fn take_rules_wanted(&self) -> Option<(EventTime, EventTime)> {
        self.rules_wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

/// The partitions of this instance, all owned by the loop: assigned,
/// being restored, restored and waiting for their start, running.
#[derive(Default)]
struct Assignment {
    /// Input partitions assigned (topic, partition), for readiness and gauges.
    assigned: BTreeSet<(String, i32)>,
    /// Partitions whose restore runs, with its generation.
    restoring: BTreeMap<i32, u64>,
    /// Restored partitions waiting for the consumer thread to start them.
    starting: BTreeMap<i32, (u64, Partition)>,
    /// Partitions whose records are processed.
    running: BTreeMap<i32, Partition>,
    /// Counter of restores.
    generation: u64,
    /// Failed starts (seeks) since the process began.
    start_failures: u32,
}

type Restore = JoinHandle<(i32, u64, anyhow::Result<Partition>)>;

fn numbers(list: &[(String, i32)]) -> BTreeSet<i32> {
    list.iter().map(|(_, p)| *p).collect()
}

fn note_assignment(state: &mut Assignment, kind: RebalanceKind, list: &[(String, i32)]) {
    for tp in list {
        match kind {
            RebalanceKind::Assign => state.assigned.insert(tp.clone()),
            RebalanceKind::Revoke => state.assigned.remove(tp),
        };
    }
    let refs: Vec<(&str, i32)> = list.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    RebalanceEvent { kind, partitions: &refs, assigned: state.assigned.len() }.emit();
}

/// Checks that every topic of the service has the input topics' partition
/// count: the alerts and snapshots of input partition `k` go to partition
/// `k` of their topics.
fn check_partitions(client: &BaseConsumer, config: &ServiceConfig) -> anyhow::Result<i32> {
    let t = &config.topics;
    let mut counts = Vec::new();
    let (visits_by_staff, staff_findings) = (t.visits_by_staff_topic(), t.staff_findings_topic());
    let mut co_partitioned = vec![&t.time_reports, &t.invoices, &t.alerts, &t.state, &visits_by_staff, &staff_findings];
    if config.core.reference.enabled {
        // Partition `k` of each is judged (dead letters) by the owner of
        // input partition `k`.
        co_partitioned.extend([&t.granted_hours, &t.absences, &t.provider_register]);
    }
    for topic in co_partitioned {
        let metadata = crate::service::broker::metadata(client.client(), Some(topic), Duration::from_secs(30))?;
        let n = metadata.topics().first().map(|m| m.partitions().len()).unwrap_or(0);
        if n == 0 {
            anyhow::bail!("topic {topic} does not exist (create the topics: tillsyn topics create)");
        }
        counts.push((topic.as_str(), n));
    }
    // Topics of any partition count: the global table's, and where
    // rejected and late records go (a record must never be dropped for
    // want of its topic).
    for topic in [t.peer_days_topic().as_str(), t.rules_topic().as_str(), t.dead_letter.as_str(), t.late_events_topic()]
    {
        let metadata = crate::service::broker::metadata(client.client(), Some(topic), Duration::from_secs(30))?;
        if metadata.topics().first().map_or(0, |m| m.partitions().len()) == 0 {
            anyhow::bail!("topic {topic} does not exist (create the topics: tillsyn topics create)");
        }
    }
    if counts.iter().any(|(_, n)| *n != counts[0].1) {
        anyhow::bail!(
            "the input, alert, state, staff-stage and reference-data topics must have the same number of partitions \
             (co-partitioning): {}",
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
    config.check_pseudonym_secret()?;
    crate::service::broker::probe_async(&config).await?;
    {
        let t = &config.topics;
        let internal = [t.peer_days_topic(), t.visits_by_staff_topic(), t.staff_findings_topic()];
        let mut outputs = vec![t.alerts.as_str(), t.dead_letter.as_str(), t.late_events_topic(), t.state.as_str()];
        outputs.extend(internal.iter().map(String::as_str));
        AlertProduced::register_counters(&[&t.time_reports, &t.invoices], &outputs);
    }
    let config = Arc::new(config);
    let validator = Validator::new(Pseudonymizer::from_secret(&config.core.pseudonym_secret));
    let producer: FutureProducer = config.kafka.producer_config().create()?;
    let offsets = state_store::reader(&config)?;
    let partitions = check_partitions(&offsets, &config)?;
    super::tools::check_compacted(&config, &config.topics.state).await?;
    // The rules' configuration history, read in full before any partition
    // decides (and then again as it grows; see `rules`).
    RulesEntryRead::register();
    let mut rules_feed = rules::RulesFeed::new(&config);
    {
        let c = config.clone();
        let (records, _end) = tokio::task::spawn_blocking(move || rules::RulesFeed::read(&c, 0)).await??;
        rules_feed.apply(records);
    }
    let mut rules_reads: FuturesUnordered<JoinHandle<anyhow::Result<rules::RulesRead>>> = FuturesUnordered::new();
    let mut last_rules_read = Instant::now();
    // Seals written and not yet acknowledged; once one is, the topic is
    // read again at once.
    let mut seal_acks: FuturesUnordered<Delivery> = FuturesUnordered::new();
    let mut read_now = false;
    let mut told_future: Option<EventTime> = None;
    let mut global = GlobalTableReader::start(&config)?;
    let mut peers = GlobalPeerTable::new(partitions as u32);
    // The reference data: every partition of its topics, read from the
    // beginning into the global table by a thread of its own (see
    // `reference`); without it, nothing waits for it.
    let (mut reference, mut reference_reader) = if config.core.reference.enabled {
        let reader = reference::ReferenceReader::start(&config, validator.clone())?;
        (config.core.reference.table(reader.sources()), Some(reader))
    } else {
        (ReferenceTable::unused(), None)
    };
    health.set_stuck_after(config.http.stuck_after);
    health.beat(Loop::Processing);
    let mut consumer = ConsumerThread::start(&config, producer.clone(), READY_MAX_LAG, health.clone())?;
    let topics = &config.topics;
    info!(
        brokers = config.kafka.brokers.as_str(),
        group = config.kafka.group_id.as_str(),
        time_reports = topics.time_reports.as_str(),
        invoices = topics.invoices.as_str(),
        partitions,
        "consuming"
    );

    let mut state = Assignment::default();
    let mut restores: FuturesUnordered<Restore> = FuturesUnordered::new();
    let mut in_flight: FuturesOrdered<Delivery> = FuturesOrdered::new();
    let mut summary = RunSummary::default();
    let mut last_gauges = Instant::now();
    let mut last_status = Instant::now();
    let mut failure: Option<anyhow::Error> = None;
    let interval = config.kafka.commit_interval;
    // Wakes the loop when no record arrives, so checkpoints, gauges and
    // readiness keep being updated while idle.
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    let client = consumer.consumer.clone();
    let io = Io {
        config: &config,
        validator: &validator,
        producer: &producer,
        consumer: &client,
        offsets: &offsets,
        partitions,
        visits_by_staff: topics.visits_by_staff_topic(),
        staff_findings: topics.staff_findings_topic(),
        staff_batches: Mutex::default(),
        rules_wanted: Mutex::default(),
    };

    loop {
        health.beat(Loop::Processing);
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(ack) = in_flight.next(), if !in_flight.is_empty() => {
                if let Err(error) = ack {
                    failure = Some(anyhow::anyhow!("a delivery failed for good: {error}"));
                    break;
                }
            },
            Some(rebalance) = consumer.rebalances.recv() => match rebalance {
                Rebalance::Assigned(list) => {
                    note_assignment(&mut state, RebalanceKind::Assign, &list);
                    for partition in numbers(&list) {
                        let known = state.running.contains_key(&partition)
                            || state.starting.contains_key(&partition)
                            || state.restoring.contains_key(&partition);
                        if !known {
                            state.generation += 1;
                            let generation = state.generation;
                            state.restoring.insert(partition, generation);
                            let config = config.clone();
                            let producer = producer.clone();
                            let group_generation = consumer::group_generation(&client);
                            restores.push(tokio::task::spawn_blocking(move || {
                                let restored = checkpoint::restore(
                                    &config,
                                    &producer,
                                    partition,
                                    partitions,
                                    group_generation,
                                );
                                (partition, generation, restored)
                            }));
                        }
                    }
                }
                Rebalance::Revoked { partitions: list, done } => {
                    if let Some(ack) = io.flush_staff() {
                        in_flight.push_back(ack);
                    }
                    let result = hand_over(&config, &producer, &client, &mut state, &mut in_flight, &list).await;
                    note_assignment(&mut state, RebalanceKind::Revoke, &list);
                    let _ = done.send(());
                    match result {
                        Ok(n) => summary.checkpoints += n,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            },
            Some(restored) = restores.next(), if !restores.is_empty() => {
                let (partition, generation, result) = match restored {
                    Ok(r) => r,
                    Err(e) => {
                        failure = Some(anyhow::anyhow!("a restore task failed: {e}"));
                        break;
                    }
                };
                // Revoked (or revoked and assigned again) meanwhile: not this one.
                if state.restoring.get(&partition) != Some(&generation) {
                    continue;
                }
                state.restoring.remove(&partition);
                match result {
                    Ok(mut restored) => {
                        // Nothing offered yet: priming releases nothing.
                        let mut outputs = Vec::new();
                        if let Err(e) = rules_feed.prime(&mut restored.driver, &mut || None, &mut outputs) {
                            failure = Some(e.context("giving a restored partition the rules' configuration"));
                            break;
                        }
                        debug_assert!(outputs.iter().all(|o| matches!(o, Output::RulesNeeded { .. })));
                        let offsets = restored.driver.next();
                        state.starting.insert(partition, (generation, restored));
                        if consumer.commands.send(Command::Start { partition, offsets, generation }).is_err() {
                            failure = Some(anyhow::anyhow!("the consumer thread stopped"));
                            break;
                        }
                    }
                    Err(e) => {
                        // No record of a partition without its state may be
                        // processed: stop (the partitions go to other members).
                        failure = Some(e.context(format!("restoring partition {partition}")));
                        break;
                    }
                }
            }
            Some(day) = global.days.recv() => {
                let mut finalised = false;
                let mut next = Some(day);
                while let Some(day) = next {
                    match peers.apply(day) {
                        Ok(f) => finalised |= f,
                        Err(e) => warn!(error = %e, "a peer day of another provider stage; skipped"),
                    }
                    next = global.days.try_recv().ok();
                }
                if finalised && let Some(ack) = io.decide_all(&peers, &reference, &mut state, &mut summary) {
                    in_flight.push_back(ack);
                }
            }
            Some(update) = async { reference_reader.as_mut()?.updates.recv().await }, if reference_reader.is_some() => {
                let mut moved = false;
                let mut next = Some(update);
                while let Some(update) = next {
                    moved |= reference::apply(&mut reference, update);
                    next = reference_reader.as_mut().and_then(|r| r.updates.try_recv().ok());
                }
                if moved {
                    if let Some(ack) = io.decide_all(&peers, &reference, &mut state, &mut summary) {
                        in_flight.push_back(ack);
                    }
                    reference.prune_behind(config.core.reference_keep_days());
                    reference::gauges(&reference);
                }
            }
            Some(ack) = seal_acks.next(), if !seal_acks.is_empty() => {
                if let Err(error) = ack {
                    failure = Some(anyhow::anyhow!("writing a seal to the rules topic failed: {error}"));
                    break;
                }
                read_now = true;
            },
            Some(read) = rules_reads.next(), if !rules_reads.is_empty() => {
                let (records, _end) = match read {
                    Ok(Ok(read)) => read,
                    Ok(Err(e)) => {
                        warn!(error = %format!("{e:#}"), "cannot read the rules topic; trying again");
                        continue;
                    }
                    Err(e) => {
                        failure = Some(anyhow::anyhow!("the rules topic's reader failed: {e}"));
                        break;
                    }
                };
                let changes = rules_feed.apply(records);
                match io.rules_changed(&changes, &rules_feed, &mut state, &mut summary) {
                    Ok(Some(ack)) => in_flight.push_back(ack),
                    Ok(None) => {}
                    Err(e) => {
                        failure = Some(e.context("giving the partitions the rules' configuration"));
                        break;
                    }
                }
            },
            _ = ticker.tick() => {
                if let Some(ack) = io.release_all(&mut state, &mut summary) {
                    in_flight.push_back(ack);
                }
                if let Some(ack) = io.decide_all(&peers, &reference, &mut state, &mut summary) {
                    in_flight.push_back(ack);
                }
                if let Some(ack) = io.flush_staff() {
                    in_flight.push_back(ack);
                }
            }
            fetched = consumer.fetched.recv(), if in_flight.len() < MAX_IN_FLIGHT => match fetched {
                Some(Fetched::Record(message)) => {
                    let started = Instant::now();
                    let input = topics.input_of(message.topic()).is_some();
                    if let Some(ack) = io.process(message, &mut state, &mut summary) {
                        in_flight.push_back(ack);
                    }
                    // The latency of input records (the staff stage's own
                    // records are part of their handling).
                    if input {
                        ProcessingLatency::from_duration(started.elapsed()).emit();
                    }
                }
                Some(Fetched::Started(partition, generation)) => {
                    if state.starting.get(&partition).is_some_and(|(g, _)| *g == generation)
                        && let Some((_, restored)) = state.starting.remove(&partition)
                    {
                        state.running.insert(partition, restored);
                    }
                }
                Some(Fetched::StartFailed(partition, generation, error)) => {
                    // Revoked meanwhile (the seek found it unassigned): nothing to start.
                    if state.starting.get(&partition).is_none_or(|(g, _)| *g != generation) {
                        continue;
                    }
                    state.start_failures += 1;
                    if state.start_failures > MAX_START_ATTEMPTS {
                        failure = Some(anyhow::anyhow!("starting partition {partition}: {error}"));
                        break;
                    }
                    warn!(partition, %error, "cannot start the partition yet; trying again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let offsets = state.starting.get(&partition).map(|(_, p)| p.driver.next()).unwrap_or_default();
                    if consumer.commands.send(Command::Start { partition, offsets, generation }).is_err() {
                        failure = Some(anyhow::anyhow!("the consumer thread stopped"));
                        break;
                    }
                }
                None => {
                    failure = Some(anyhow::anyhow!("the consumer thread stopped"));
                    break;
                }
            },
        }
        // The staff stage's records go out in batches: when enough are
        // gathered, on the tick (every 250 ms), and always before a
        // checkpoint (below), a revocation or the shutdown.
        if io.staff_pending() >= STAFF_BATCH_ENTRIES
            && let Some(ack) = io.flush_staff()
        {
            in_flight.push_back(ack);
        }
        // The rules topic: a seal where partitions wait for one, and a read
        // every second (at once after a seal), one at a time.
        if let Some((at, through)) = io.take_rules_wanted() {
            rules_feed.want(at, through);
        }
        let max_future = config.core.max_ahead;
        let seal = rules_feed.seal_due(std::time::SystemTime::now(), config.topics.rules_seal_ahead, max_future);
        if let Some((key, value)) = &seal {
            seal_acks.push(produce::rules_record(&producer, &config, key, value));
        }
        if rules_reads.is_empty() && (read_now || last_rules_read.elapsed() >= Duration::from_secs(1)) {
            read_now = false;
            last_rules_read = Instant::now();
            let (c, from) = (config.clone(), rules_feed.next_offset());
            rules_reads.push(tokio::task::spawn_blocking(move || rules::RulesFeed::read(&c, from)));
        }
        if let Err(e) = checkpoint_due(&io, &mut state, &mut in_flight, interval, &mut summary).await {
            failure = Some(e);
            break;
        }
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            last_gauges = Instant::now();
            let security = consumer.security.persistent_at(last_gauges, crate::service::broker::SECURITY_PERSISTENT);
            if let Some(why) = security {
                failure = Some(anyhow::anyhow!("cannot use the brokers at {}: {why}", config.kafka.brokers));
                break;
            }
            update_gauges(&state, consumer.lag.load(Ordering::Relaxed) == LAG_OK, &health);
            if last_status.elapsed() >= STATUS_INTERVAL {
                last_status = Instant::now();
                log_status(&state, &summary, in_flight.len(), io.staff_pending(), &health);
            }
            // Records waiting for a seal that is not written for them (more
            // than core.max_ahead after the wall clock) say so, once per time.
            let future = rules_feed.waiting_for_the_future(SystemTime::now(), config.core.max_ahead);
            if future.is_some() && future != told_future {
                warn!(
                    waiting_for = %future.unwrap_or(EventTime(0)),
                    "records wait for the rules' configuration through a time more than core.max_ahead after \
                     the wall clock; no seal is written for them until then (tillsyn_held_records)"
                );
            }
            told_future = future;
        }
    }

    // Shutdown: no new records; wait for what is in flight, checkpoint.
    // (Bounded by the orchestrator's grace period, not the stuck limit.)
    health.set_not_ready("shutting down");
    health.unwatch(Loop::Processing);
    tokio::task::block_in_place(|| consumer.stop());
    if let Some(ack) = io.flush_staff() {
        in_flight.push_back(ack);
    }
    info!(in_flight = in_flight.len(), "stopping: flushing in-flight deliveries");
    if failure.is_none()
        && let Err(e) = drain(&mut in_flight).await
    {
        failure = Some(e);
    }
    producer.flush(Duration::from_secs(30))?;
    if failure.is_none() {
        let dirty = state.running.iter().filter(|(_, s)| s.driver.is_dirty());
        let picks = dirty.map(|(p, _)| (*p, SnapshotTrigger::Shutdown)).collect();
        match checkpoint_all(&config, &producer, &client, &mut state, picks) {
            Ok(n) => summary.checkpoints += n,
            Err(e) => failure = Some(e),
        }
    }
    // Nothing dirty is left: the revocation that leaving the group causes
    // has nothing to write (and no loop to wait for).
    tokio::task::block_in_place(|| {
        client.unsubscribe();
        drop(consumer);
        drop(client);
        drop(global);
    });
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

/// Lets revoked partitions go: every output produced so far acknowledged
/// (so the next owner reads every alert produced), each dirty one
/// checkpointed within `kafka.revocation_budget`, their state dropped.
/// Returns the checkpoints written.
async fn hand_over(
    config: &ServiceConfig,
    producer: &FutureProducer,
    consumer: &BaseConsumer<Context>,
    state: &mut Assignment,
    in_flight: &mut FuturesOrdered<Delivery>,
    list: &[(String, i32)],
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let budget = config.kafka.revocation_budget;
    drain(in_flight).await?;
    let mut written = 0;
    tokio::task::block_in_place(|| {
        for partition in numbers(list) {
            state.restoring.remove(&partition);
            state.starting.remove(&partition);
            let Some(mut partition_state) = state.running.remove(&partition) else { continue };
            let left = budget.saturating_sub(started.elapsed());
            if partition_state.driver.is_dirty() {
                match checkpoint::checkpoint(
                    config,
                    producer,
                    consumer,
                    partition,
                    &mut partition_state,
                    SnapshotTrigger::Revoke,
                    left,
                ) {
                    Ok(()) => written += 1,
                    Err(e) => warn!(
                        partition,
                        error = %e,
                        "revocation: no checkpoint; the next owner replays from the previous one"
                    ),
                }
            }
        }
    });
    Ok(written)
}

/// State gauges, watermark lag and readiness, once a second.
fn update_gauges(state: &Assignment, lag_ok: bool, health: &Health) {
    for (partition, partition_state) in &state.running {
        let engine = partition_state.driver.engine();
        // Staff members are held by the partition's staff stage.
        let size = StateSize { staff: partition_state.driver.staff().size().0, ..engine.state_size() };
        StateGauges { partition: *partition, size }.emit();
        OpenEpisodes { partition: *partition, counts: &engine.open_episodes_by_rule() }.emit();
        let stats = partition_state.driver.staff().stats();
        StaffOverLimit { partition: *partition, visits: stats.over_limit, client_visits: stats.clients_over_limit }
            .emit();
        let held = partition_state.driver.held_by_reason();
        HeldRecords { partition: *partition, for_invoices: held.for_invoices, for_rules: held.for_rules }.emit();
        if let Some(w) = engine.watermark() {
            WatermarkLag::new(*partition, w, SystemTime::now()).emit();
        }
        if let Some(closed) = engine.closed_through() {
            let decided = engine.decided_through().map_or(0, |d| i64::from(closed.0 - d.0));
            PeerDecisionsLag { partition: *partition, days: decided.max(0) }.emit();
        }
    }
    if state.assigned.is_empty() {
        health.set_not_ready("no partitions assigned");
    } else if !state.restoring.is_empty() || !state.starting.is_empty() {
        health.set_not_ready("restoring partitions");
    } else if lag_ok {
        health.set_ready(true);
    } else {
        health.set_not_ready("catching up");
    }
}

/// How often the loop logs what it holds and waits for.
const STATUS_INTERVAL: Duration = Duration::from_secs(30);

/// One line of what the loop holds and waits for: partitions by phase,
/// records held per running partition, outputs awaiting acknowledgement,
/// readiness. What an operator (or a failing test) reads first when the
/// group does not move.
fn log_status(state: &Assignment, summary: &RunSummary, in_flight: usize, staff_pending: usize, health: &Health) {
    let held: Vec<String> = state
        .running
        .iter()
        .filter(|(_, p)| p.driver.held() > 0)
        .map(|(n, p)| {
            let h = p.driver.held_by_reason();
            format!("{n}:{}+{}", h.for_invoices, h.for_rules)
        })
        .collect();
    info!(
        assigned = state.assigned.len(),
        restoring = joined(state.restoring.keys()),
        starting = joined(state.starting.keys()),
        running = joined(state.running.keys()),
        held_for_invoices_and_rules = held.join(" "),
        in_flight,
        staff_pending,
        records = summary.records,
        checkpoints = summary.checkpoints,
        ready = health.readiness().err().unwrap_or("ready"),
        "status"
    );
}

/// Partition numbers, comma-separated.
fn joined<'a>(partitions: impl Iterator<Item = &'a i32>) -> String {
    partitions.map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Waits for every in-flight delivery.
async fn drain(in_flight: &mut FuturesOrdered<Delivery>) -> anyhow::Result<()> {
    while let Some(ack) = in_flight.next().await {
        ack.map_err(|e| anyhow::anyhow!("a delivery failed for good: {e}"))?;
    }
    Ok(())
}

/// Checkpoints the partitions that are due (see [`checkpoint::due`]).
async fn checkpoint_due(
    io: &Io<'_>,
    state: &mut Assignment,
    in_flight: &mut FuturesOrdered<Delivery>,
    interval: Duration,
    summary: &mut RunSummary,
) -> anyhow::Result<()> {
    let due: Vec<(i32, SnapshotTrigger)> = state
        .running
        .iter()
        .filter(|(_, s)| s.failed_at.is_none_or(|at| at.elapsed() >= checkpoint::CHECKPOINT_RETRY))
        .filter_map(|(p, s)| {
            let trigger =
                checkpoint::due(s.driver.is_dirty(), s.last_checkpoint.elapsed(), s.last_record.elapsed(), interval)?;
            Some((*p, trigger))
        })
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    // Every output so far sent and acknowledged: the alert partition's end
    // is then exactly where this partition's alerts after the snapshot
    // begin, and the staff stage has every visit the snapshot covers.
    if let Some(ack) = io.flush_staff() {
        in_flight.push_back(ack);
    }
    drain(in_flight).await?;
    // A checkpoint that fails here is tried again (in full) a little later:
    // the partition goes on, its state is in memory, and the previous
    // checkpoint is still whole on the topic.
    let budget = io.config.kafka.revocation_budget;
    tokio::task::block_in_place(|| {
        for (partition, trigger) in due {
            let Some(partition_state) = state.running.get_mut(&partition) else { continue };
            let written = checkpoint::checkpoint(
                io.config,
                io.producer,
                io.consumer,
                partition,
                partition_state,
                trigger,
                budget,
            );
            if written.is_ok() {
                summary.checkpoints += 1;
            }
        }
    });
    Ok(())
}

/// Checkpoints the running partitions picked, with their triggers; every
/// output must already be acknowledged. Returns the checkpoints written.
fn checkpoint_all(
    config: &ServiceConfig,
    producer: &FutureProducer,
    consumer: &BaseConsumer<Context>,
    state: &mut Assignment,
    picks: Vec<(i32, SnapshotTrigger)>,
) -> anyhow::Result<u64> {
    let budget = config.kafka.revocation_budget;
    tokio::task::block_in_place(|| {
        let mut written = 0;
        for (partition, trigger) in picks {
            let Some(partition_state) = state.running.get_mut(&partition) else { continue };
            checkpoint::checkpoint(config, producer, consumer, partition, partition_state, trigger, budget)?;
            written += 1;
        }
        Ok(written)
    })
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
