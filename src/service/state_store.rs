//! The state topic and the alert log, as the recovery of a partition reads
//! them: a partition's newest complete snapshot, and the alerts produced for
//! it since.
//!
//! A snapshot of partition `k` is written to partition `k` of the state
//! topic as [`chunk records`](snapshot_records) of at most [`CHUNK_BYTES`]
//! each, then one manifest (`proto/tillsyn/v1/state.proto`). One producer
//! writes them in order (idempotent, so retries neither reorder nor
//! duplicate), so a snapshot's chunks are the `chunk_count` records just
//! before its manifest. [`read_latest_snapshot`] scans back from the end of
//! the partition for the newest manifest whose chunks are all there and
//! belong to it: a snapshot cut short by a crash (chunks without a
//! manifest), or interleaved with another writer's (a member that lost its
//! partition but did not know yet), is skipped, and the one before it used.
//!
//! Nothing here decides anything: the runner does (`service::runner`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::config::ServiceConfig;
use tillsyn_core::decode::CONTENT_TYPE_HEADER;
use tillsyn_core::proto::v1 as wire;

use crate::telemetry::events::AlertRecordSkipped;

/// Largest piece of engine state in one record (below Kafka's default
/// 1 MB record limit, with room for the envelope).
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The `content-type` of state records.
pub const STATE_CONTENT_TYPE: &str = "application/x-protobuf; proto=tillsyn.v1.StateRecord";

/// The header carrying an alert's id on the alert topic.
pub const ALERT_ID_HEADER: &str = "tillsyn-alert-id";

/// How many records the backward scan reads at a time.
const SCAN_WINDOW: i64 = 16;

/// A complete snapshot read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSnapshot {
    /// What it covers.
    pub manifest: wire::StateManifest,
    /// Its offset in the state partition.
    pub offset: i64,
    /// The engine state (`Engine::restore` reads it).
    pub state: Vec<u8>,
}

/// The records of one snapshot, encoded, in the order to produce them:
/// the chunks of `state`, then `manifest` with its id, chunk count and size
/// filled in.
pub fn snapshot_records(mut manifest: wire::StateManifest, snapshot_id: u64, state: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = if state.is_empty() { vec![&[][..]] } else { state.chunks(CHUNK_BYTES).collect() };
    manifest.snapshot_id = snapshot_id;
    manifest.chunk_count = chunks.len() as u32;
    manifest.state_bytes = state.len() as u64;
    let mut out: Vec<Vec<u8>> = chunks
        .iter()
        .enumerate()
        .map(|(index, data)| {
            let chunk = wire::StateChunk { snapshot_id, index: index as u32, data: data.to_vec() };
            wire::StateRecord { kind: Some(wire::state_record::Kind::Chunk(chunk)) }.encode_to_vec()
        })
        .collect();
    out.push(wire::StateRecord { kind: Some(wire::state_record::Kind::Manifest(manifest)) }.encode_to_vec());
    out
}

/// The snapshot whose manifest is at `manifest_offset`, from the records
/// just before it (`records` maps offsets to values), if they are exactly
/// its chunks.
fn assemble(
    records: &BTreeMap<i64, Vec<u8>>,
    manifest_offset: i64,
    manifest: &wire::StateManifest,
) -> Option<StoredSnapshot> {
    let n = i64::from(manifest.chunk_count);
    let mut state = Vec::with_capacity(manifest.state_bytes as usize);
    for (i, offset) in (manifest_offset - n..manifest_offset).enumerate() {
        let record = wire::StateRecord::decode(records.get(&offset)?.as_slice()).ok()?;
        match record.kind {
            Some(wire::state_record::Kind::Chunk(c))
                if c.snapshot_id == manifest.snapshot_id && c.index as usize == i =>
            {
                state.extend_from_slice(&c.data)
            }
            _ => return None,
        }
    }
    (state.len() as u64 == manifest.state_bytes).then_some(StoredSnapshot {
        manifest: *manifest,
        offset: manifest_offset,
        state,
    })
}

/// A consumer for reading partitions by offset and asking end offsets (no
/// group membership).
pub fn reader(config: &ServiceConfig) -> anyhow::Result<BaseConsumer> {
    let mut client = config.kafka.consumer_config();
    client.set("group.id", format!("{}-recovery", config.kafka.group_id));
    // Brokers may wait up to fetch.wait.max.ms before answering a fetch
    // that has data (tansu waits about half of it): short reads want it low.
    client.set("fetch.wait.max.ms", "20");
    client.set("enable.partition.eof", "true");
    Ok(client.create()?)
}

/// A record read back: its value and headers.
type Record = (Vec<u8>, Vec<(String, Vec<u8>)>);

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
                out.insert(offset, (m.payload().unwrap_or_default().to_vec(), headers));
                if offset + 1 >= to {
                    break;
                }
            }
            // The end of the partition: nothing more to come.
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    consumer.unassign()?;
    Ok(out)
}

/// The newest complete snapshot in partition `partition` of the state
/// topic, or `None` if it holds none. Blocking; fails after `timeout`.
pub fn read_latest_snapshot(
    config: &ServiceConfig,
    partition: i32,
    timeout: Duration,
) -> anyhow::Result<Option<StoredSnapshot>> {
    let deadline = Instant::now() + timeout;
    let consumer = reader(config)?;
    let topic = &config.topics.state;
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let mut end = high;
    while end > low {
        let start = (end - SCAN_WINDOW).max(low);
        let window = read_range(&consumer, topic, partition, start, end, deadline)?;
        for (&offset, (value, _)) in window.iter().rev() {
            let Ok(wire::StateRecord { kind: Some(wire::state_record::Kind::Manifest(manifest)) }) =
                wire::StateRecord::decode(value.as_slice())
            else {
                continue;
            };
            let first = offset - i64::from(manifest.chunk_count);
            if first < low {
                continue;
            }
            let chunks: BTreeMap<i64, Vec<u8>> = if first >= start {
                window.range(first..offset).map(|(o, (v, _))| (*o, v.clone())).collect()
            } else {
                read_range(&consumer, topic, partition, first, offset, deadline)?
                    .into_iter()
                    .map(|(o, (v, _))| (o, v))
                    .collect()
            };
            if let Some(snapshot) = assemble(&chunks, offset, &manifest) {
                return Ok(Some(snapshot));
            }
        }
        end = start;
    }
    Ok(None)
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
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let from = from.unwrap_or(low).max(low);
    let mut ids = Vec::new();
    for (offset, (value, headers)) in read_range(&consumer, topic, partition, from, high, deadline)? {
        let id = match headers.iter().find(|(k, _)| k == ALERT_ID_HEADER) {
            Some((_, id)) => String::from_utf8_lossy(id).into_owned(),
            None => match decode_alert(&value, &headers) {
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
    Ok(consumer.fetch_watermarks(&config.topics.alerts, partition, timeout)?.1)
}

fn decode_alert(value: &[u8], headers: &[(String, Vec<u8>)]) -> anyhow::Result<wire::Alert> {
    let json = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(CONTENT_TYPE_HEADER))
        .is_some_and(|(_, v)| v.starts_with(b"application/json"));
    Ok(if json { serde_json::from_slice(value)? } else { wire::Alert::decode(value)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> wire::StateManifest {
        wire::StateManifest { partition: 2, time_reports_offset: 10, invoices_offset: 3, ..Default::default() }
    }

    fn stored(records: &[Vec<u8>], base: i64) -> BTreeMap<i64, Vec<u8>> {
        records.iter().enumerate().map(|(i, r)| (base + i as i64, r.clone())).collect()
    }

    fn manifest_at(records: &BTreeMap<i64, Vec<u8>>, offset: i64) -> wire::StateManifest {
        match wire::StateRecord::decode(records[&offset].as_slice()).unwrap().kind {
            Some(wire::state_record::Kind::Manifest(m)) => m,
            other => panic!("not a manifest: {other:?}"),
        }
    }

    #[test]
    fn a_snapshot_is_chunked_and_assembled_back() {
        let state: Vec<u8> = (0..(2 * CHUNK_BYTES + 17)).map(|i| (i % 251) as u8).collect();
        let records = snapshot_records(manifest(), 7, &state);
        assert_eq!(records.len(), 4, "three chunks and the manifest");
        assert!(records.iter().all(|r| r.len() <= CHUNK_BYTES + 64));
        let log = stored(&records, 100);
        let m = manifest_at(&log, 103);
        assert_eq!((m.snapshot_id, m.chunk_count, m.state_bytes), (7, 3, state.len() as u64));
        let back = assemble(&log, 103, &m).unwrap();
        assert_eq!(back.state, state);
        assert_eq!(back.manifest.time_reports_offset, 10);
    }

    #[test]
    fn an_empty_state_is_one_empty_chunk() {
        let records = snapshot_records(manifest(), 1, &[]);
        let log = stored(&records, 0);
        assert!(assemble(&log, 1, &manifest_at(&log, 1)).unwrap().state.is_empty());
    }

    #[test]
    fn chunks_that_are_missing_foreign_or_out_of_order_are_refused() {
        let state = vec![1u8; CHUNK_BYTES + 1];
        let records = snapshot_records(manifest(), 9, &state);
        let log = stored(&records, 0);
        let m = manifest_at(&log, 2);
        // Missing.
        let mut gone = log.clone();
        gone.remove(&0);
        assert!(assemble(&gone, 2, &m).is_none());
        // Another snapshot's chunk in between.
        let mut foreign = log.clone();
        foreign.insert(1, snapshot_records(manifest(), 10, &state)[1].clone());
        assert!(assemble(&foreign, 2, &m).is_none());
        // Swapped.
        let mut swapped = log.clone();
        let (a, b) = (swapped[&0].clone(), swapped[&1].clone());
        swapped.insert(0, b);
        swapped.insert(1, a);
        assert!(assemble(&swapped, 2, &m).is_none());
        // Garbage.
        let mut garbage = log.clone();
        garbage.insert(0, b"\xff\xff".to_vec());
        assert!(assemble(&garbage, 2, &m).is_none());
        assert!(assemble(&log, 2, &m).is_some());
    }
}
