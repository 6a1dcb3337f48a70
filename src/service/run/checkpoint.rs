//! Checkpoints and restores of a partition's state on the state topic.
//!
//! - A **checkpoint** waits until every output produced so far is
//!   acknowledged (the caller drains or flushes first), writes the engine's
//!   snapshot with a manifest naming the input offsets it covers and
//!   `alerts_from` (the end of the alert partition at that moment, or the
//!   oldest alert still to be suppressed), and once the snapshot is
//!   acknowledged commits those offsets.
//! - A **restore** reads the newest complete snapshot and the ids of the
//!   alerts produced after it, and builds the partition's driver from them.
//! - [`due`] says which partitions a checkpoint is due for: dirty, and the
//!   interval passed or idle a while.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tillsyn_core::decode;
use tillsyn_core::driver::{HoldLimit, Offsets, PartitionDriver};
use tillsyn_core::engine::{Engine, RestoreError, StagePartition, snapshot};
use tillsyn_core::proto::v1 as wire;
use tracing::warn;

use crate::service::config::ServiceConfig;
use crate::service::state_store::{self, STATE_CONTENT_TYPE};
use crate::telemetry::events::{PartitionRestored, SnapshotTrigger, SnapshotWritten};

/// Time allowed for reading a partition's snapshot and alert tail.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);

/// A partition with no new record for this long is checkpointed.
pub const IDLE_CHECKPOINT: Duration = Duration::from_secs(1);

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

/// The state of `partition` as the previous owner left it: the newest
/// snapshot (or an empty engine) and the alerts produced since. Blocking.
pub fn restore(config: &ServiceConfig, partition: i32, partitions: i32) -> anyhow::Result<Partition> {
    let started = Instant::now();
    let stage = StagePartition { index: partition as u32, count: partitions as u32 };
    let stored = state_store::read_latest_snapshot(config, partition, RESTORE_TIMEOUT)?;
    let restored = stored.as_ref().map(|s| {
        PartitionDriver::<OwnedMessage>::restore_parts(&config.core, &s.state).and_then(|(engine, staff)| {
            if engine.partition() == stage {
                Ok((engine, Some(staff)))
            } else {
                // Another partition's state, or the stage's partition count changed.
                Err(RestoreError::ConfigurationChanged)
            }
        })
    });
    let ((engine, staff), next, alerts_from, bytes) = match (&stored, restored) {
        (Some(s), Some(restored)) => match restored {
            Ok(parts) => {
                let m = &s.manifest;
                let next = Offsets {
                    time_reports: m.time_reports_offset,
                    invoices: m.invoices_offset,
                    staff_visits: m.staff_visits_offset,
                    staff_findings: m.staff_findings_offset,
                };
                (parts, next, Some(m.alerts_from), s.state.len())
            }
            Err(e) => {
                // A format this build cannot read, or another windows
                // configuration: rebuild from the inputs.
                warn!(partition, error = %e, "the snapshot cannot be used; rebuilding the state from the inputs");
                ((Engine::for_partition(config.core.clone(), stage), None), Offsets::default(), None, 0)
            }
        },
        _ => ((Engine::for_partition(config.core.clone(), stage), None), Offsets::default(), None, 0),
    };
    let (ids, _end) = state_store::read_alert_ids(config, partition, alerts_from, RESTORE_TIMEOUT)?;
    let suppress: HashMap<String, i64> = ids.into_iter().collect();
    PartitionRestored {
        partition,
        from_snapshot: alerts_from.is_some(),
        bytes,
        suppressing: suppress.len(),
        offsets: (next.time_reports, next.invoices),
        seconds: started.elapsed().as_secs_f64(),
    }
    .emit();
    let now = Instant::now();
    // The driver starts dirty: checkpointed (and its offsets committed) once
    // idle even if no record comes, so that the group's committed offsets
    // catch up with the snapshot (a previous owner may have died between
    // its snapshot and its commit).
    Ok(Partition {
        driver: {
            let driver = PartitionDriver::new(engine, next, suppress, HoldLimit::default());
            match staff {
                Some(staff) => driver.with_staff(staff),
                None => driver,
            }
        },
        invoice_end: None,
        last_checkpoint: now,
        last_record: now,
    })
}

/// Writes a snapshot of `state` and, once it is acknowledged, commits the
/// offsets it covers. Every output produced before must already be
/// acknowledged (the caller flushes or drains first). Blocking.
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
    let alerts_end = state_store::alert_log_end(config, partition, budget.max(Duration::from_secs(1)))?;
    let next = state.driver.next();
    let written_at_ms =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let manifest = wire::StateManifest {
        partition,
        time_reports_offset: next.time_reports,
        invoices_offset: next.invoices,
        staff_visits_offset: next.staff_visits,
        staff_findings_offset: next.staff_findings,
        alerts_from: state.driver.alerts_from(alerts_end),
        engine_format: snapshot::FORMAT_VERSION,
        written_at_ms,
        ..Default::default()
    };
    let bytes = state.driver.snapshot();
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
    for (topic, offset) in config.topics.partition_topics().iter().zip(next.in_topic_order()) {
        offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    // The snapshot, not the committed offsets, is where a new owner starts;
    // the commit keeps the group's lag meaningful for monitoring.
    if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
        warn!(partition, error = %e, "commit after the snapshot failed");
    }
    state.driver.mark_checkpointed();
    state.last_checkpoint = Instant::now();
    SnapshotWritten {
        partition,
        trigger,
        bytes: bytes.len(),
        records: records.len(),
        seconds: started.elapsed().as_secs_f64(),
        offsets: (next.time_reports, next.invoices),
    }
    .emit();
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
