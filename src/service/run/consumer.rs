//! The consumer's context: librdkafka statistics (consumer lag, readiness)
//! and rebalances (take over assigned partitions, hand over revoked ones).
//!
//! librdkafka calls the rebalance callback from the poll in the loop's
//! `recv`, so the callback runs on the loop's own task, between two
//! records: the partition map it locks is never contended there.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tracing::{error, warn};

use super::checkpoint::{self, Partition};
use crate::service::config::ServiceConfig;
use crate::telemetry::events::{ConsumerLag, Rebalance as RebalanceEvent, RebalanceKind, SnapshotTrigger};

/// The assigned partitions' state, by partition number.
pub type Partitions = BTreeMap<i32, Partition>;

/// What the loop and the consumer's callbacks share.
pub struct Shared {
    /// The assigned partitions' drivers.
    pub partitions: Mutex<Partitions>,
    /// Set when a callback failed in a way the loop must stop for.
    pub fatal: Mutex<Option<String>>,
    /// Whether every fetched partition's lag is known and small.
    pub lag_ok: Mutex<Option<bool>>,
    /// Input partitions currently assigned, for readiness and gauges.
    pub assigned: Mutex<BTreeSet<(String, i32)>>,
}

impl Shared {
    /// Nothing assigned yet.
    pub fn new() -> Self {
        Shared {
            partitions: Mutex::new(BTreeMap::new()),
            fatal: Mutex::new(None),
            lag_ok: Mutex::new(None),
            assigned: Mutex::new(BTreeSet::new()),
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

/// Consumer context: rebalances (restore, checkpoint) and statistics.
pub struct Context {
    /// State shared with the loop.
    pub shared: Arc<Shared>,
    /// The service's configuration.
    pub config: ServiceConfig,
    /// The producer of alerts and snapshots (flushed on revocation).
    pub producer: FutureProducer,
    /// Most consumer lag (records) a partition may have for `/readyz`.
    pub ready_max_lag: i64,
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
                self.note_assignment(RebalanceKind::Assign, &partitions_of(tpl));
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
        let mut partitions = self.shared.partitions.lock().map_err(|_| anyhow::anyhow!("poisoned partition state"))?;
        for partition in wanted {
            if let Entry::Vacant(slot) = partitions.entry(partition) {
                slot.insert(checkpoint::restore(&self.config, partition)?);
            }
        }
        let mut starts = Vec::new();
        for e in tpl.elements() {
            let Some(state) = partitions.get(&e.partition()) else { continue };
            let Some(input) = self.config.topics.input_of(e.topic()) else { continue };
            starts.push((e.topic().to_string(), e.partition(), state.driver.next().of(input)));
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
            if state.driver.is_dirty()
                && let Err(e) = checkpoint::checkpoint(
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
