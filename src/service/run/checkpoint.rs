//! Checkpoints and restores of a partition's state on the state topic.
//!
//! - A **checkpoint** waits until every output produced so far is
//!   acknowledged (the caller drains or flushes first), writes the entities
//!   of the state that changed since the previous one and a manifest naming
//!   the input offsets it covers and `alerts_from` (the end of the alert
//!   partition at that moment, or the oldest alert still to be suppressed),
//!   and once all of it is acknowledged commits those offsets. What is
//!   written, and why a crash at any point leaves the previous checkpoint
//!   whole: `service::changelog`.
//! - A **restore** reads the partition of the state topic, takes the
//!   committed checkpoint of its newest owner, checks it against the
//!   configuration and the input logs, reads the ids of the alerts produced
//!   after it, builds the partition's driver, and writes the new owner's
//!   first checkpoint (every entity, under its own epoch) before any record
//!   is processed.
//! - [`due`] says which partitions a checkpoint is due for: dirty, and the
//!   interval passed or idle a while, and not just failed.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tillsyn_core::decode;
use tillsyn_core::driver::{HoldLimit, Offsets, PartitionDriver};
use tillsyn_core::engine::{Engine, Entity, StaffStage, StagePartition, snapshot};
use tillsyn_core::model::EventTime;
use tillsyn_core::proto::v1 as wire;
use tracing::warn;

use crate::service::changelog::{self, Changelog, Epoch, Recovered};
use crate::service::config::ServiceConfig;
use crate::service::state_store::{self, STATE_CONTENT_TYPE};
use crate::telemetry::events::{
    CheckpointFailed, InputsExpired, PartitionRestored, SnapshotTrigger, SnapshotWritten, StateDiscarded,
    StateRecordsSkipped,
};

/// Time allowed for reading a partition's snapshot and alert tail.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);

/// A partition with no new record for this long is checkpointed.
pub const IDLE_CHECKPOINT: Duration = Duration::from_secs(1);

/// After a checkpoint that failed, the next is tried no sooner than this.
pub const CHECKPOINT_RETRY: Duration = Duration::from_secs(5);

/// One assigned partition: its driver and when it was last touched.
pub struct Partition {
    /// The engine and its bookkeeping.
    pub driver: PartitionDriver<OwnedMessage>,
    /// The invoice partition's end offset (none if the broker did not
    /// answer), and when it was asked.
    pub invoice_end: Option<(Instant, Option<i64>)>,
    /// When the last checkpoint was written (or the partition restored).
    pub last_checkpoint: Instant,
    /// When the last record was offered.
    pub last_record: Instant,
    /// What its checkpoints have committed (which entity is in which slot).
    pub changelog: Changelog,
    /// When the last checkpoint failed, if the one after has not succeeded.
    pub failed_at: Option<Instant>,
}

/// Which checkpoint is due for a partition: dirty, and either `interval`
/// passed since its last checkpoint or no record came for [`IDLE_CHECKPOINT`].
pub fn due(
    dirty: bool,
    since_checkpoint: Duration,
    since_record: Duration,
    interval: Duration,
) -> Option<SnapshotTrigger> {
    if !dirty {
        None
    } else if since_checkpoint >= interval {
        Some(SnapshotTrigger::Interval)
    } else if since_record >= IDLE_CHECKPOINT {
        Some(SnapshotTrigger::Idle)
    } else {
        None
    }
}

/// The state a restore starts from: the engine, the staff stage and where
/// the inputs resume, and `alerts_from`.
struct Resumed {
    engine: Engine,
    staff: Option<StaffStage>,
    next: Offsets,
    /// How far the partition's share of the reference topics had come.
    reference_progress: [Option<EventTime>; 3],
    alerts_from: Option<i64>,
    bytes: usize,
}

/// The state of `partition` as the previous owner left it (its committed
/// checkpoint, or an empty engine), the alerts produced since, and this
/// owner's first checkpoint written under `generation`. Blocking.
pub fn restore(
    config: &ServiceConfig,
    producer: &FutureProducer,
    partition: i32,
    partitions: i32,
    generation: i32,
) -> anyhow::Result<Partition> {
    let started = Instant::now();
    let stage = StagePartition { index: partition as u32, count: partitions as u32 };
    let log = state_store::read_state(config, partition, RESTORE_TIMEOUT)?;
    let records = log.len();
    let recovered = changelog::recover(partition, log);
    if recovered.foreign_records > 0 {
        StateRecordsSkipped { partition, records: recovered.foreign_records }.emit();
    }
    let empty = || Resumed {
        engine: Engine::for_partition(config.core.clone(), stage),
        staff: None,
        next: Offsets::default(),
        reference_progress: [None; 3],
        alerts_from: None,
        bytes: 0,
    };
    // The input logs' ranges (a broker that does not answer fails the
    // restore, as reading the state topic does; it is no reason to throw
    // the checkpoint away).
    let mut ranges = Vec::new();
    for topic in config.topics.partition_topics(config.core.reference.enabled) {
        ranges.push(state_store::log_range(config, &topic, partition, Duration::from_secs(30))?);
    }
    let resumed = match usable(config, partition, stage, &recovered, &ranges) {
        Ok(Some(resumed)) => resumed,
        Ok(None) => empty(),
        Err((reason, detail)) => {
            StateDiscarded { partition, reason, detail: &detail }.emit();
            empty()
        }
    };
    let entities = recovered.entities.len();
    let epoch = Epoch { sequence: recovered.next_sequence, generation, rebase: 0 };
    let (ids, _end) = state_store::read_alert_ids(config, partition, resumed.alerts_from, RESTORE_TIMEOUT)?;
    let suppress: HashMap<String, i64> = ids.into_iter().collect();
    PartitionRestored {
        partition,
        from_snapshot: resumed.alerts_from.is_some(),
        bytes: resumed.bytes,
        entities,
        records,
        epoch: epoch.sequence,
        suppressing: suppress.len(),
        offsets: (resumed.next.time_reports, resumed.next.invoices),
        seconds: started.elapsed().as_secs_f64(),
    }
    .emit();
    let now = Instant::now();
    let driver = PartitionDriver::new(resumed.engine, resumed.next, suppress, HoldLimit::default())
        .with_reference_progress(resumed.reference_progress);
    let mut restored = Partition {
        driver: match resumed.staff {
            Some(staff) => driver.with_staff(staff),
            None => driver,
        },
        invoice_end: None,
        last_checkpoint: now,
        last_record: now,
        changelog: Changelog::new(partition, epoch, recovered.keys),
        failed_at: None,
    };
    // The new owner's first checkpoint, before any record: from here on,
    // whatever a member that owned the partition before still writes is
    // ignored. Should it fail, the partition goes on dirty and the next
    // checkpoint writes every entity (it is never committed until then).
    let alerts_end = state_store::alert_log_end(config, partition, RESTORE_TIMEOUT)?;
    if let Err(e) =
        write(config, producer, partition, &mut restored, alerts_end, SnapshotTrigger::Takeover, RESTORE_TIMEOUT)
    {
        CheckpointFailed { partition, trigger: SnapshotTrigger::Takeover, error: &e }.emit();
        restored.failed_at = Some(Instant::now());
    }
    // The driver stays dirty: checkpointed (and its offsets committed) once
    // idle even if no record comes, so that the group's committed offsets
    // catch up with the checkpoint (a previous owner may have died between
    // its checkpoint and its commit).
    Ok(restored)
}

/// The committed checkpoint of `recovered`, if there is one and it can be
/// used: written by this format under this configuration, for this
/// partition of a stage of this size, resuming within the input logs.
/// `Err` says why not (reason label, detail).
fn usable(
    config: &ServiceConfig,
    partition: i32,
    stage: StagePartition,
    recovered: &Recovered,
    ranges: &[(i64, i64)],
) -> Result<Option<Resumed>, (&'static str, String)> {
    let Some((_, m)) = &recovered.manifest else { return Ok(None) };
    if recovered.corrupt > 0 {
        return Err(("corrupt", format!("{} entity records do not decode", recovered.corrupt)));
    }
    if m.engine_format != snapshot::FORMAT_VERSION {
        return Err(("format", format!("format {}, this build reads {}", m.engine_format, snapshot::FORMAT_VERSION)));
    }
    if m.fingerprint.as_slice() != snapshot::state_fingerprint(&config.core) {
        return Err(("configuration", "written under other windows, lateness, pseudonym key id or rules".to_string()));
    }
    let entities: Vec<(Entity, &[u8])> = recovered.entities.iter().map(|(e, b)| (*e, b.as_slice())).collect();
    let (engine, staff) = PartitionDriver::<OwnedMessage>::restore_entities(&config.core, &entities)
        .map_err(|e| ("corrupt", e.to_string()))?;
    if engine.partition() != stage {
        return Err(("configuration", format!("the state of {:?}, not of {stage:?}", engine.partition())));
    }
    let next = Offsets {
        time_reports: m.time_reports_offset,
        invoices: m.invoices_offset,
        staff_visits: m.staff_visits_offset,
        staff_findings: m.staff_findings_offset,
        reference: std::array::from_fn(|i| m.reference_offsets.get(i).copied().unwrap_or(0)),
    };
    let reference_progress = std::array::from_fn(|i| m.reference_progress.get(i).and_then(|p| p.at).map(EventTime));
    // Every offset within its log: beyond its end, the topic was recreated
    // (or truncated) and the checkpoint is of records that are gone;
    // before its start, records were removed before they were processed.
    for ((topic, offset), &(low, high)) in
        config.topics.partition_topics(config.core.reference.enabled).iter().zip(next.in_topic_order()).zip(ranges)
    {
        if offset > high {
            return Err((
                "offsets_beyond_log",
                format!("resumes {topic}[{partition}] at {offset}, but the log ends at {high} (recreated?)"),
            ));
        }
        if offset < low {
            InputsExpired { partition, topic, next: offset, low }.emit();
        }
    }
    let bytes = recovered.entities.iter().map(|(_, b)| b.len()).sum();
    Ok(Some(Resumed { engine, staff: Some(staff), next, reference_progress, alerts_from: Some(m.alerts_from), bytes }))
}

/// Writes a checkpoint of `state` (the entities that changed, then the
/// manifest) and waits for all of it to be acknowledged. Every output
/// produced before must already be acknowledged. On failure the
/// partition's changelog starts over (see [`Changelog::rebase`]). Blocking.
fn write(
    config: &ServiceConfig,
    producer: &FutureProducer,
    partition: i32,
    state: &mut Partition,
    alerts_end: i64,
    trigger: SnapshotTrigger,
    budget: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let next = state.driver.next();
    let written_at_ms =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let manifest = wire::StateManifest {
        partition,
        time_reports_offset: next.time_reports,
        invoices_offset: next.invoices,
        staff_visits_offset: next.staff_visits,
        staff_findings_offset: next.staff_findings,
        reference_offsets: if config.core.reference.enabled { next.reference.to_vec() } else { Vec::new() },
        reference_progress: if config.core.reference.enabled {
            state
                .driver
                .reference_progress()
                .iter()
                .map(|p| wire::ReferenceSourceProgress { at: p.map(|t| t.0) })
                .collect()
        } else {
            Vec::new()
        },
        alerts_from: state.driver.alerts_from(alerts_end),
        engine_format: snapshot::FORMAT_VERSION,
        written_at_ms,
        fingerprint: snapshot::state_fingerprint(&config.core).to_vec(),
        ..Default::default()
    };
    let driver = &state.driver;
    let planned = state.changelog.plan(|out| driver.entities(out), manifest);
    let result = produce_all(config, producer, partition, &planned.records, budget);
    if let Err(e) = result {
        state.changelog.rebase(&planned);
        return Err(e);
    }
    let (records, written, entities_written, total) =
        (planned.records.len(), planned.bytes, planned.entities_written, planned.state_bytes);
    state.changelog.committed(planned);
    // A takeover's checkpoint leaves the partition dirty: its offsets are
    // committed at its next checkpoint (when idle, at the latest).
    if trigger != SnapshotTrigger::Takeover {
        state.driver.mark_checkpointed();
    }
    state.last_checkpoint = Instant::now();
    state.failed_at = None;
    SnapshotWritten {
        partition,
        trigger,
        bytes: total as usize,
        records,
        written,
        entities_written,
        seconds: started.elapsed().as_secs_f64(),
        offsets: (next.time_reports, next.invoices),
    }
    .emit();
    Ok(())
}

/// Produces `records` to partition `partition` of the state topic, in
/// order, and waits until each is acknowledged. `budget` bounds a stall,
/// not the whole: the checkpoint fails when no record of it could be
/// enqueued or was acknowledged for that long (a broker that answers
/// slowly, or a small producer queue, only makes it take longer).
fn produce_all(
    config: &ServiceConfig,
    producer: &FutureProducer,
    partition: i32,
    records: &[changelog::StateRecord],
    budget: Duration,
) -> anyhow::Result<()> {
    let stalled = || anyhow::anyhow!("checkpoint of partition {partition}: no progress for {budget:?}");
    let mut progress = Instant::now();
    let mut deliveries = Vec::with_capacity(records.len());
    for (key, value) in records {
        let headers =
            OwnedHeaders::new().insert(Header { key: decode::CONTENT_TYPE_HEADER, value: Some(STATE_CONTENT_TYPE) });
        let topic = &config.topics.state;
        // Waits while the producer's queue is full (librdkafka delivers
        // meanwhile): enqueued means room was made, which is progress.
        deliveries.push(super::produce::send_value(
            producer,
            topic,
            Some(partition),
            Some(key),
            value.as_deref(),
            headers,
        ));
        if progress.elapsed() > budget {
            return Err(stalled());
        }
        progress = Instant::now();
    }
    // Acknowledgements come in order (one partition, an idempotent
    // producer); the producer's own thread serves them.
    let mut pending: std::collections::VecDeque<_> = deliveries.into();
    while let Some(front) = pending.front_mut() {
        match front.now_or_never() {
            Some(Ok(())) => {
                pending.pop_front();
                progress = Instant::now();
            }
            Some(Err(e)) => anyhow::bail!("checkpoint of partition {partition}: {e}"),
            None if progress.elapsed() > budget => return Err(stalled()),
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Ok(())
}

/// Writes a checkpoint and, once it is acknowledged, commits the offsets it
/// covers. Every output produced before must already be acknowledged (the
/// caller flushes or drains first). Blocking.
pub fn checkpoint<C: ConsumerContext>(
    config: &ServiceConfig,
    producer: &FutureProducer,
    consumer: &impl Consumer<C>,
    partition: i32,
    state: &mut Partition,
    trigger: SnapshotTrigger,
    budget: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let result = state_store::alert_log_end(config, partition, budget.max(Duration::from_secs(1))).and_then(|end| {
        let left = budget.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
        write(config, producer, partition, state, end, trigger, left)
    });
    if let Err(e) = &result {
        CheckpointFailed { partition, trigger, error: e }.emit();
        state.failed_at = Some(Instant::now());
        return result;
    }
    let next = state.driver.next();
    let mut offsets = TopicPartitionList::new();
    for (topic, offset) in
        config.topics.partition_topics(config.core.reference.enabled).iter().zip(next.in_topic_order())
    {
        offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    // The checkpoint, not the committed offsets, is where a new owner
    // starts; the commit keeps the group's lag meaningful for monitoring.
    if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
        warn!(partition, error = %e, "commit after the checkpoint failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_clean_partition_is_never_due() {
        assert_eq!(due(false, 100 * S, 100 * S, 5 * S), None);
    }

    #[test]
    fn a_busy_partition_is_due_each_interval_and_an_idle_one_after_a_second() {
        assert_eq!(due(true, 5 * S, Duration::ZERO, 5 * S), Some(SnapshotTrigger::Interval));
        assert_eq!(due(true, 2 * S, Duration::from_millis(999), 5 * S), None);
        assert_eq!(due(true, 2 * S, IDLE_CHECKPOINT, 5 * S), Some(SnapshotTrigger::Idle));
    }
}
