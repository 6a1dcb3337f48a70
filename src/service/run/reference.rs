//! The reference table's reader: a thread that reads every partition of the
//! three reference-data topics from the beginning, and keeps reading, as a
//! Kafka Streams GlobalKTable does, and hands each record, decoded and
//! validated at the edge (client references pseudonymised), to the loop,
//! which applies it to the instance's [`ReferenceTable`].
//!
//! It belongs to no consumer group (every instance reads every record) and
//! commits nothing: the table is rebuilt from the compacted topics at every
//! start. Each partition of each topic is a source of the table (its
//! progress moves with its records and heartbeats). What the table refuses
//! (a record that does not decode or validate, a version registered behind
//! its source's progress) is skipped here and counted
//! (`tillsyn_reference_records_total{outcome="refused"}`); the member of the
//! group that owns the partition dead-letters it, once (see
//! `PartitionDriver::offer_reference`).

use std::time::SystemTime;

use rdkafka::message::{Headers, Message};
use tillsyn_core::baseline::ReferenceTable;
use tillsyn_core::decode::{self, Rejection};
use tillsyn_core::model::DomainEvent;
use tillsyn_core::model::reference::ReferenceKind;
use tillsyn_core::model::validate::Validator;
use tokio::sync::mpsc;

use super::topic_reader::{self, TopicReader};
use crate::service::config::ServiceConfig;
use crate::telemetry::events::{ReferenceRecordRead, ReferenceTableState};

/// One record of a reference-data topic, decoded.
pub struct Update {
    /// Its source in the table: the topic's kind and partition.
    source: u32,
    kind: ReferenceKind,
    decoded: Result<DomainEvent, Rejection>,
}

/// The reader thread; stops when dropped.
pub struct ReferenceReader {
    /// Every record read, per partition in offset order.
    pub updates: mpsc::UnboundedReceiver<Update>,
    sources: u32,
    _reader: TopicReader,
}

/// Decodes and validates a record of `kind`'s topic.
pub fn decode<M: Message>(message: &M, kind: ReferenceKind, validator: &Validator) -> Result<DomainEvent, Rejection> {
    let headers = message.headers();
    let pairs = headers.iter().flat_map(|h| h.iter()).map(|h| (h.key, h.value));
    decode::content_type_header(pairs)
        .and_then(|content_type| decode::decode_reference_record(kind, message.payload(), content_type, validator))
}

impl ReferenceReader {
    /// Starts reading every partition of the reference-data topics from the
    /// beginning. Every topic must have the inputs' partition count
    /// (checked at start with the other co-partitioned topics).
    pub fn start(config: &ServiceConfig, validator: Validator) -> anyhow::Result<Self> {
        let topics: Vec<(String, ReferenceKind)> =
            ReferenceKind::ALL.iter().map(|k| (config.topics.reference_topic(*k).to_string(), *k)).collect();
        let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
        let assigned = topic_reader::assign(config, "reference", &names)?;
        let partitions = assigned.partitions.clone();
        anyhow::ensure!(
            partitions.iter().all(|n| *n == partitions[0]),
            "the reference-data topics must have the same number of partitions: {partitions:?}"
        );
        let per_kind = partitions[0] as u32;
        let (tx, updates) = mpsc::unbounded_channel();
        let reader = TopicReader::spawn(assigned, "tillsyn-reference", "the reference-data topics", move |message| {
            let Some(kind) = topics.iter().find(|(t, _)| t == message.topic()).map(|(_, k)| *k) else {
                return true;
            };
            let source = kind as u32 * per_kind + message.partition() as u32;
            let decoded = decode(message, kind, &validator);
            tx.send(Update { source, kind, decoded }).is_ok()
        })?;
        Ok(ReferenceReader { updates, sources: 3 * per_kind, _reader: reader })
    }

    /// The table's sources: every partition of every reference-data topic.
    pub fn sources(&self) -> u32 {
        self.sources
    }
}

/// Applies one record to the table; returns whether the time the table is
/// known through moved.
pub fn apply(table: &mut ReferenceTable, update: Update) -> bool {
    let (outcome, moved) = match update.decoded {
        Ok(DomainEvent::Heartbeat(at)) => ("heartbeat", table.heartbeat(update.source, at)),
        Ok(DomainEvent::Reference(record)) => ("applied", table.apply(update.source, &record)),
        Ok(_) | Err(_) => ("refused", Ok(false)),
    };
    let (outcome, moved) = moved.map_or(("refused", false), |moved| (outcome, moved));
    ReferenceRecordRead { kind: update.kind.name(), outcome }.emit();
    moved
}

/// Sets the reference table's gauges.
pub fn gauges(table: &ReferenceTable) {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    ReferenceTableState {
        facts: table.facts_by_kind().map(|(kind, n)| (kind.name(), n)),
        lag_secs: table.known_through().map(|known| now.saturating_sub(known.0) as f64),
    }
    .emit();
}
