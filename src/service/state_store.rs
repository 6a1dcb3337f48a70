//! The state topic and the alert log, as the recovery of a partition reads
//! them: everything a partition of the state topic holds (what
//! `changelog::recover` makes a state of), and the alerts produced for a
//! partition since a checkpoint.
//!
//! Nothing here decides anything: `changelog` and the runner do.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::broker;
use super::changelog::StateRecord;
use super::config::ServiceConfig;
use tillsyn_core::decode::CONTENT_TYPE_HEADER;
use tillsyn_core::proto::v1 as wire;

use crate::telemetry::events::AlertRecordSkipped;

/// The `content-type` of state records.
pub const STATE_CONTENT_TYPE: &str = "application/x-protobuf; proto=tillsyn.v1.StateRecord";

/// The header carrying an alert's id on the alert topic.
pub const ALERT_ID_HEADER: &str = "tillsyn-alert-id";

/// A consumer for reading partitions by offset and asking end offsets (no
/// group membership).
pub fn reader(config: &ServiceConfig) -> anyhow::Result<BaseConsumer> {
    let mut client = config.kafka.consumer_config();
    // Statistics are the group consumer's (lag, readiness); this client
    // would only log them.
    client.set("statistics.interval.ms", "0");
    client.set("group.id", format!("{}-recovery", config.kafka.group_id));
    // Brokers may wait up to fetch.wait.max.ms before answering a fetch
    // that has data (tansu waits about half of it): short reads want it low.
    client.set("fetch.wait.max.ms", "20");
    client.set("enable.partition.eof", "true");
    Ok(client.create()?)
}

/// A record read back: its key, value (`None`: a tombstone) and headers.
struct Record {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

/// The records of `topic`/`partition` in `[from, to)`, value and headers.
fn read_range(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
    deadline: Instant,
) -> anyhow::Result<BTreeMap<i64, Record>> {
    let mut out = BTreeMap::new();
    if from >= to {
        return Ok(out);
    }
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(from))?;
    consumer.assign(&list)?;
    loop {
        if Instant::now() >= deadline {
            anyhow::bail!("reading {topic}[{partition}] offsets {from}..{to}: timed out");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let offset = m.offset();
                if offset >= to {
                    break;
                }
                let headers = m
                    .headers()
                    .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec())).collect())
                    .unwrap_or_default();
                let record = Record {
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                };
                out.insert(offset, record);
                if offset + 1 >= to {
                    break;
                }
            }
            // The end of the partition: nothing more to come. (Before `to`:
            // the fetch saw an end the offsets lookup had passed; what was
            // not read is read by the next read from where this one got.)
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                let next = out.last_key_value().map_or(from, |(o, _)| o + 1);
                if next < to {
                    tracing::warn!(
                        topic,
                        partition,
                        next,
                        end = to,
                        "the end of a partition came before its end offset"
                    );
                }
                break;
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    consumer.unassign()?;
    Ok(out)
}

/// What partition `partition` of the state topic holds, oldest first:
/// each record's key and value (`None`: a tombstone). Blocking; fails
/// after `timeout`.
pub fn read_state(config: &ServiceConfig, partition: i32, timeout: Duration) -> anyhow::Result<Vec<StateRecord>> {
    let deadline = Instant::now() + timeout;
    let consumer = reader(config)?;
    let topic = &config.topics.state;
    let (low, high) = broker::watermarks(consumer.client(), topic, partition, timeout)?;
    Ok(read_range(&consumer, topic, partition, low, high, deadline)?.into_values().map(|r| (r.key, r.value)).collect())
}

/// Records read from a log: offset, key and value (`None`: a tombstone).
pub type LogRecords = Vec<(i64, Vec<u8>, Option<Vec<u8>>)>;

/// The records of `topic`/`partition` from offset `from` (or its start) to
/// its end, and the end offset. Blocking; fails after `timeout`.
pub fn read_log(
    config: &ServiceConfig,
    topic: &str,
    partition: i32,
    from: i64,
    timeout: Duration,
) -> anyhow::Result<(LogRecords, i64)> {
    let deadline = Instant::now() + timeout;
    let consumer = reader(config)?;
    let (low, high) = broker::watermarks(consumer.client(), topic, partition, timeout)?;
    let records = read_range(&consumer, topic, partition, from.max(low), high, deadline)?;
    Ok((records.into_iter().map(|(offset, r)| (offset, r.key, r.value)).collect(), high))
}

/// The low and high offsets of `topic`/`partition`.
pub fn log_range(config: &ServiceConfig, topic: &str, partition: i32, timeout: Duration) -> anyhow::Result<(i64, i64)> {
    let consumer = reader(config)?;
    Ok(broker::watermarks(consumer.client(), topic, partition, timeout)?)
}

/// The alerts in partition `partition` of the alert topic from offset
/// `from` (or the beginning) to its end: each alert's id and offset, and
/// the end offset. Blocking; fails after `timeout`.
pub fn read_alert_ids(
    config: &ServiceConfig,
    partition: i32,
    from: Option<i64>,
    timeout: Duration,
) -> anyhow::Result<(Vec<(String, i64)>, i64)> {
    let deadline = Instant::now() + timeout;
    let consumer = reader(config)?;
    let topic = &config.topics.alerts;
    let (low, high) = broker::watermarks(consumer.client(), topic, partition, timeout)?;
    let from = from.unwrap_or(low).max(low);
    let mut ids = Vec::new();
    for (offset, Record { value, headers, .. }) in read_range(&consumer, topic, partition, from, high, deadline)? {
        let id = match headers.iter().find(|(k, _)| k == ALERT_ID_HEADER) {
            Some((_, id)) => String::from_utf8_lossy(id).into_owned(),
            None => match decode_alert(value.as_deref().unwrap_or_default(), &headers) {
                Ok(alert) => alert.alert_id,
                // Not an alert tillsyn wrote (it writes the id header on
                // every one): nothing to suppress. Quarantined, not fatal,
                // or every member taking the partition would stop in turn.
                Err(_) => {
                    AlertRecordSkipped { partition, offset }.emit();
                    continue;
                }
            },
        };
        ids.push((id, offset));
    }
    Ok((ids, high))
}

/// The end offset of partition `partition` of the alert topic.
pub fn alert_log_end(config: &ServiceConfig, partition: i32, timeout: Duration) -> anyhow::Result<i64> {
    let consumer = reader(config)?;
    Ok(broker::watermarks(consumer.client(), &config.topics.alerts, partition, timeout)?.1)
}

fn decode_alert(value: &[u8], headers: &[(String, Vec<u8>)]) -> anyhow::Result<wire::Alert> {
    let json = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(CONTENT_TYPE_HEADER))
        .is_some_and(|(_, v)| v.starts_with(b"application/json"));
    Ok(if json { serde_json::from_slice(value)? } else { wire::Alert::decode(value)? })
}
