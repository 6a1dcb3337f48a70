//! Producing: every record the service writes (alerts, dead letters, late
//! events) goes through [`send`], which hands back a [`Delivery`]: a future
//! that resolves once the broker acknowledged the record, or with a typed
//! [`DeliveryError`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tillsyn_core::alerting::Alert;
use tillsyn_core::baseline::PeerDay;
use tillsyn_core::decode::{self, Format, Rejection};
use tillsyn_core::engine::LateEvent;
use tillsyn_core::engine::{FromStaff, ToStaff};
use tillsyn_core::partition::partition_for_key;

use crate::service::config::ServiceConfig;
use crate::service::state_store::ALERT_ID_HEADER;
use crate::telemetry::events::{DeliveryFailed, InternalRecordsProduced, ProducerQueueFull};

/// Why a record did not reach the broker.
/// How long a record waits, at most, for room in a full producer queue
/// before the service gives up (and restarts from its last checkpoint).
pub const QUEUE_FULL_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);
/// The pause between attempts to enqueue into a full producer queue.
const QUEUE_FULL_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// The producer refused the record (e.g. its queue is full, the record
    /// is too large).
    #[error("to {topic}: not enqueued: {source}")]
    Enqueue {
        /// The destination topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The broker did not acknowledge it (for good: librdkafka retried).
    #[error("to {topic}: {source}")]
    Failed {
        /// The destination topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The producer was dropped before the record was acknowledged.
    #[error("to {topic}: the producer was dropped")]
    Dropped {
        /// The destination topic.
        topic: String,
    },
}

/// The acknowledgement of one produced record.
pub type Delivery = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send>>;

/// Sends one record (to `partition`, or where its key's hash puts it);
/// the future resolves when the broker acknowledged it.
pub fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: &[u8],
    headers: OwnedHeaders,
) -> Delivery {
    send_value(producer, topic, partition, key, Some(value), headers)
}

/// [`send`] of a record whose value may be absent (`None`: a tombstone on
/// a compacted topic).
pub fn send_value(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: OwnedHeaders,
) -> Delivery {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(value) = value {
        record = record.payload(value);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    // A full producer queue is back-pressure, not a failure: wait for the
    // queue to drain (librdkafka's own threads deliver meanwhile) and
    // enqueue the same record again, blocking the loop so that nothing
    // overtakes it (records to one partition keep their order), within
    // QUEUE_FULL_BUDGET.
    let started = std::time::Instant::now();
    let mut waited = false;
    let result = loop {
        match producer.send_result(record) {
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if started.elapsed() < QUEUE_FULL_BUDGET =>
            {
                if !waited {
                    ProducerQueueFull { topic }.emit();
                    waited = true;
                }
                std::thread::sleep(QUEUE_FULL_PAUSE);
                record = back;
            }
            other => break other,
        }
    };
    let topic = topic.to_string();
    match result {
        Ok(future) => Box::pin(async move {
            match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((source, _))) => {
                    DeliveryFailed { topic: &topic, error: &source }.emit();
                    Err(DeliveryError::Failed { topic, source })
                }
                Err(_) => Err(DeliveryError::Dropped { topic }),
            }
        }),
        Err((source, _)) => {
            DeliveryFailed { topic: &topic, error: &source }.emit();
            Box::pin(async move { Err(DeliveryError::Enqueue { topic, source }) })
        }
    }
}

/// Every delivery acknowledged, in order; the first failure.
pub fn all(deliveries: Vec<Delivery>) -> Delivery {
    Box::pin(async move {
        for delivery in deliveries {
            delivery.await?;
        }
        Ok(())
    })
}

/// The record's headers except those starting with `skip_prefix` (the
/// service's own, which it writes anew).
fn copy_headers(message: &OwnedMessage, skip_prefix: &str, extra: usize) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(message.headers().map_or(0, |h| h.count()) + extra);
    if let Some(headers) = message.headers() {
        for h in headers.iter() {
            if !h.key.starts_with(skip_prefix) {
                out = out.insert(Header { key: h.key, value: h.value });
            }
        }
    }
    out
}

/// Sends a rejected record to the dead-letter topic: its key, value and
/// headers, plus the reason and where it came from.
pub fn dead_letter(
    producer: &FutureProducer,
    config: &ServiceConfig,
    message: &OwnedMessage,
    rejection: &Rejection,
) -> Delivery {
    let mut out = copy_headers(message, "tillsyn-dlq-", 5);
    for (key, value) in decode::dead_letter_headers(rejection, message.topic(), message.partition(), message.offset()) {
        out = out.insert(Header { key: &key, value: Some(&value) });
    }
    let value = message.payload().unwrap_or_default();
    send(producer, &config.topics.dead_letter, None, message.key(), value, out)
}

/// Sends a late record aside (the late-event or the dead-letter topic),
/// with how late it was.
pub fn late_event(
    producer: &FutureProducer,
    config: &ServiceConfig,
    message: &OwnedMessage,
    late: &LateEvent,
) -> Delivery {
    let mut out = copy_headers(message, "tillsyn-late-", 7);
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
pub fn alert(producer: &FutureProducer, config: &ServiceConfig, partition: i32, alert: &Alert) -> Delivery {
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

/// Publishes a closed day's peer samples to the peer-days topic (JSON,
/// keyed by [`PeerDay::key`], partition 0).
pub fn peer_day(producer: &FutureProducer, config: &ServiceConfig, day: &PeerDay) -> Delivery {
    let value = serde_json::to_vec(day).unwrap_or_default();
    InternalRecordsProduced { topic: "peer-days", records: 1, bytes: value.len() as u64 }.emit();
    let headers =
        OwnedHeaders::new().insert(Header { key: decode::CONTENT_TYPE_HEADER, value: Some("application/json") });
    send(producer, &config.topics.peer_days_topic(), Some(0), Some(day.key().as_bytes()), &value, headers)
}

/// The content type of a rules-topic record.
pub const RULES_CONTENT_TYPE: &str = "application/x-protobuf; proto=tillsyn.v1.RulesRecord";

/// Writes an entry of the rules' history (a seal, or a change from
/// `tillsyn rules set`) to the rules topic (one partition).
pub fn rules_record(producer: &FutureProducer, config: &ServiceConfig, key: &str, value: &[u8]) -> Delivery {
    let headers =
        OwnedHeaders::new().insert(Header { key: decode::CONTENT_TYPE_HEADER, value: Some(RULES_CONTENT_TYPE) });
    send(producer, &config.topics.rules_topic(), Some(0), Some(key.as_bytes()), value, headers)
}

/// The content type of a visits-by-staff record: a batch of staff-stage
/// records (see [`tillsyn_core::engine::encode_batch`]).
pub const STAFF_BATCH_CONTENT_TYPE: &str = "application/x-tillsyn-staff-batch";

/// Sends what the provider stage gathered for staff partition `partition`
/// (visits re-keyed by staff member, progress), in order, as one record
/// of the visits-by-staff topic. Returns the acknowledgement and the bytes.
pub fn staff_batch(
    producer: &FutureProducer,
    config: &ServiceConfig,
    partition: i32,
    records: &[ToStaff],
) -> (Delivery, usize) {
    let topic = config.topics.visits_by_staff_topic();
    let value = tillsyn_core::engine::encode_batch(records);
    InternalRecordsProduced { topic: "visits-by-staff", records: 1, bytes: value.len() as u64 }.emit();
    let headers =
        OwnedHeaders::new().insert(Header { key: decode::CONTENT_TYPE_HEADER, value: Some(STAFF_BATCH_CONTENT_TYPE) });
    (send(producer, &topic, Some(partition), None, &value, headers), value.len())
}

/// The staff partition `record` goes to (a visit's staff key's, or a client
/// copy's client key's); none for progress, which goes to every partition.
pub fn staff_destination(record: &ToStaff, partitions: i32) -> Option<i32> {
    record.partition(partitions).map(|p| p as i32)
}

/// Sends a record of the staff stage to the provider stage: a finding to
/// the staff-findings partition of its provider, a frontier to every
/// partition (JSON).
pub fn from_staff(
    producer: &FutureProducer,
    config: &ServiceConfig,
    partitions: i32,
    record: &FromStaff,
) -> Vec<Delivery> {
    let topic = config.topics.staff_findings_topic();
    let value = serde_json::to_vec(record).unwrap_or_default();
    let records = if record.provider().is_some() { 1 } else { partitions.max(0) as u64 };
    InternalRecordsProduced { topic: "staff-findings", records, bytes: records * value.len() as u64 }.emit();
    match record.provider() {
        Some(provider) => {
            let key = provider.to_string();
            let partition = partition_for_key(key.as_bytes(), partitions);
            vec![send(producer, &topic, Some(partition), Some(key.as_bytes()), &value, json_headers())]
        }
        None => (0..partitions).map(|p| send(producer, &topic, Some(p), None, &value, json_headers())).collect(),
    }
}

fn json_headers() -> OwnedHeaders {
    OwnedHeaders::new().insert(Header { key: decode::CONTENT_TYPE_HEADER, value: Some("application/json") })
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
    ) -> Result<(), DeliveryError> {
        self.send_to(producer, topic, None, Some(key), value, headers).await
    }

    /// Sends a record to `partition` (or where its key puts it), waiting
    /// first for the oldest delivery if full.
    pub async fn send_to(
        &mut self,
        producer: &FutureProducer,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), DeliveryError> {
        while self.queue.len() >= self.limit {
            if let Some(d) = self.queue.pop_front() {
                d.await?;
            }
        }
        self.queue.push_back(send(producer, topic, partition, key, value, headers));
        Ok(())
    }

    /// Waits for every outstanding delivery.
    pub async fn finish(mut self) -> Result<(), DeliveryError> {
        while let Some(d) = self.queue.pop_front() {
            d.await?;
        }
        Ok(())
    }
}
