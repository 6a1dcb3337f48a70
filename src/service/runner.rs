//! The consume → detect → produce loop of `tillsyn run`.
//!
//! One consumer in the configured group reads the time-report and invoice
//! topics. Both are keyed by provider id and co-partitioned (the same
//! partition count and keyed partitioner; the `range` assignor gives a
//! member the same partition numbers of both), so partition `k` of both
//! topics feeds one [`Engine`]: one core state per assigned partition.
//! State is dropped when a partition is revoked (recovery is the next
//! step's).
//!
//! Per record: decode and validate (a rejection goes to the dead-letter
//! topic with the reason, the original key, value and headers), feed the
//! engine, produce its alerts (keyed by provider id) and route a late event
//! to the late-event topic (or the dead-letter topic). The record's offset
//! is stored only once every record produced because of it, and every
//! earlier record, is acknowledged by the broker; librdkafka's auto-commit
//! commits stored offsets. So an alert is never lost: at least once.
//!
//! A delivery that fails for good stops the service with an error before
//! any later offset is stored: the record is consumed again after restart.
//!
//! The loop is one `biased` select: shutdown first, then acknowledgements
//! (which free in-flight capacity), then new records; the number of records
//! awaiting acknowledgement is bounded, so memory is.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tracing::{info, warn};

use super::config::ServiceConfig;
use super::decode::{self, Format, Rejection};
use crate::alerting::Alert;
use crate::engine::{Disposition, Engine, LateEvent};
use crate::model::pseudonym::Pseudonymizer;
use crate::model::validate::Validator;
use crate::telemetry::Health;
use crate::telemetry::events::{
    AlertProduced, ConsumerLag, DeliveryFailed, LateEventRouted, ProcessingLatency, Rebalance as RebalanceEvent,
    RebalanceKind, RecordConsumed, RecordDeadLettered, StateGauges, WatermarkLag,
};

/// Most records whose produced records await acknowledgement.
const MAX_IN_FLIGHT: usize = 20_000;

/// What the consumer context saw during a poll, for the loop to act on.
#[derive(Default)]
struct Shared {
    assigned: Vec<(String, i32)>,
    revoked: Vec<(String, i32)>,
    lag_ok: Option<bool>,
}

/// Consumer context: records rebalances and statistics for the loop.
struct Context {
    shared: Arc<Mutex<Shared>>,
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
        if let Ok(mut s) = self.shared.lock() {
            s.lag_ok = Some(caught_up);
        }
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect()
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance
            && let Ok(mut s) = self.shared.lock()
        {
            s.revoked.extend(partitions_of(list));
        }
    }

    fn post_rebalance(&self, _consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance
            && let Ok(mut s) = self.shared.lock()
        {
            s.assigned.extend(partitions_of(list));
        }
    }
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
}

type Ack = std::pin::Pin<Box<dyn Future<Output = Result<(String, i32, i64), String>> + Send>>;

/// Runs the service until `shutdown` completes: then stops consuming,
/// waits for in-flight deliveries, commits and returns.
pub async fn run(
    config: ServiceConfig,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let topics = &config.topics;
    let validator = Validator::new(Pseudonymizer::from_secret(&config.core.pseudonym_secret));
    let shared = Arc::new(Mutex::new(Shared::default()));
    let context = Context { shared: shared.clone(), ready_max_lag: 1_000 };
    let consumer: StreamConsumer<Context> = config.kafka.consumer_config().create_with_context(context)?;
    let producer: FutureProducer = config.kafka.producer_config().create()?;
    consumer.subscribe(&[topics.time_reports.as_str(), topics.invoices.as_str()])?;
    info!(
        brokers = config.kafka.brokers.as_str(),
        group = config.kafka.group_id.as_str(),
        time_reports = topics.time_reports.as_str(),
        invoices = topics.invoices.as_str(),
        "consuming"
    );

    let mut engines: BTreeMap<i32, Engine> = BTreeMap::new();
    let mut assigned: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut in_flight: FuturesOrdered<Ack> = FuturesOrdered::new();
    let mut summary = RunSummary::default();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut last_gauges = Instant::now();
    let mut failure: Option<anyhow::Error> = None;
    // Wakes the loop when no record arrives, so gauges and readiness keep
    // being updated while idle.
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(ack) = in_flight.next(), if !in_flight.is_empty() => match ack {
                Ok((topic, partition, offset)) => {
                    store_processed(&consumer, &topic, partition, offset);
                }
                Err(error) => {
                    failure = Some(anyhow::anyhow!("a delivery failed for good: {error}"));
                    break;
                }
            },
            _ = ticker.tick() => {}
            message = consumer.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let message = match message {
                    Ok(m) => m,
                    Err(error) => {
                        warn!(%error, "consumer error");
                        continue;
                    }
                };
                apply_rebalances(&shared, &mut assigned, &mut engines, &config);
                let started = Instant::now();
                let ack = process(&message, &config, &validator, &producer, &mut engines, &mut alerts, &mut summary);
                in_flight.push_back(ack);
                ProcessingLatency::from_duration(started.elapsed()).emit();
            }
        }
        apply_rebalances(&shared, &mut assigned, &mut engines, &config);
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            last_gauges = Instant::now();
            for (partition, engine) in &engines {
                StateGauges { partition: *partition, size: engine.state_size() }.emit();
                if let Some(w) = engine.watermark() {
                    WatermarkLag::new(*partition, w, SystemTime::now()).emit();
                }
            }
            let lag_ok = shared.lock().ok().and_then(|s| s.lag_ok).unwrap_or(false);
            if assigned.is_empty() {
                health.set_not_ready("no partitions assigned");
            } else if lag_ok {
                health.set_ready(true);
            } else {
                health.set_not_ready("catching up");
            }
        }
    }

    // Shutdown: no new records; wait for what is in flight, store, commit.
    health.set_not_ready("shutting down");
    info!(in_flight = in_flight.len(), "stopping: flushing in-flight deliveries");
    if failure.is_none() {
        while let Some(ack) = in_flight.next().await {
            match ack {
                Ok((topic, partition, offset)) => {
                    store_processed(&consumer, &topic, partition, offset);
                }
                Err(error) => {
                    failure = Some(anyhow::anyhow!("a delivery failed for good: {error}"));
                    break;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30))?;
    if failure.is_none() {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            // Nothing stored since the last auto-commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => warn!(%error, "final commit failed"),
        }
    }
    consumer.unsubscribe();
    info!(
        records = summary.records,
        dead_lettered = summary.dead_lettered,
        late = summary.late,
        alerts = summary.alerts,
        "stopped"
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Marks the record at `offset` as done: the next commit of that partition
/// is `offset + 1`, where a restarted consumer resumes. (librdkafka's
/// `rd_kafka_offset_store`, behind `store_offset`, stores its argument + 1:
/// passing the next offset would skip a record after a restart.)
fn store_processed(consumer: &StreamConsumer<Context>, topic: &str, partition: i32, offset: i64) {
    // A revoked partition's offset cannot be stored any more: fine, its
    // records will be processed again by the new owner.
    let _ = consumer.store_offset(topic, partition, offset);
}

/// Creates engines for newly assigned partitions and drops the state of
/// partitions no longer assigned on either input topic.
fn apply_rebalances(
    shared: &Arc<Mutex<Shared>>,
    assigned: &mut BTreeSet<(String, i32)>,
    engines: &mut BTreeMap<i32, Engine>,
    config: &ServiceConfig,
) {
    let (added, removed) = match shared.lock() {
        Ok(mut s) if !s.assigned.is_empty() || !s.revoked.is_empty() => {
            (std::mem::take(&mut s.assigned), std::mem::take(&mut s.revoked))
        }
        _ => return,
    };
    for tp in &removed {
        assigned.remove(tp);
    }
    for tp in &added {
        assigned.insert(tp.clone());
    }
    let partitions: BTreeSet<i32> = assigned.iter().map(|(_, p)| *p).collect();
    engines.retain(|p, _| partitions.contains(p));
    for p in &partitions {
        engines.entry(*p).or_insert_with(|| Engine::new(config.core.clone()));
    }
    for (kind, list) in [(RebalanceKind::Revoke, &removed), (RebalanceKind::Assign, &added)] {
        if !list.is_empty() {
            let refs: Vec<(&str, i32)> = list.iter().map(|(t, p)| (t.as_str(), *p)).collect();
            RebalanceEvent { kind, partitions: &refs, assigned: assigned.len() }.emit();
        }
    }
}

/// Handles one record; returns the acknowledgement future that resolves,
/// once everything it produced is acknowledged, to the record's offset.
#[allow(clippy::too_many_arguments)]
fn process(
    message: &BorrowedMessage<'_>,
    config: &ServiceConfig,
    validator: &Validator,
    producer: &FutureProducer,
    engines: &mut BTreeMap<i32, Engine>,
    alerts: &mut Vec<Alert>,
    summary: &mut RunSummary,
) -> Ack {
    let topic = message.topic().to_string();
    let (partition, offset) = (message.partition(), message.offset());
    summary.records += 1;
    let Some(input) = config.topics.input_of(&topic) else {
        return Box::pin(async move { Ok((topic, partition, offset)) });
    };
    RecordConsumed { topic: &topic, kind: input }.emit();
    let mut deliveries = Vec::new();

    let headers: Vec<(&str, Option<&[u8]>)> =
        message.headers().map(|h| h.iter().map(|h| (h.key, h.value)).collect()).unwrap_or_default();
    let decoded = decode::content_type_header(headers.iter().copied()).and_then(|content_type| {
        decode::decode_record(input, message.payload(), content_type, config.topics.input_format(input), validator)
    });
    match decoded {
        Err(rejection) => {
            summary.dead_lettered += 1;
            RecordDeadLettered { topic: &topic, partition, offset, reason: rejection.reason }.emit();
            deliveries.push(dead_letter(producer, config, message, &headers, &rejection));
        }
        Ok(event) => {
            let engine = engines.entry(partition).or_insert_with(|| Engine::new(config.core.clone()));
            alerts.clear();
            match engine.process(&event, alerts) {
                Disposition::Late(late) => {
                    summary.late += 1;
                    LateEventRouted::from(&late).emit();
                    deliveries.push(late_event(producer, config, message, &headers, &late));
                }
                Disposition::Applied | Disposition::Duplicate => {}
            }
            for alert in alerts.drain(..) {
                summary.alerts += 1;
                AlertProduced::from_alert(&alert).emit();
                deliveries.push(produce_alert(producer, config, &alert));
            }
        }
    }
    Box::pin(async move {
        for delivery in deliveries {
            delivery.await?;
        }
        Ok((topic, partition, offset))
    })
}

type Delivery = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Sends one record; the future resolves when the broker acknowledged it.
fn send(producer: &FutureProducer, topic: &str, key: Option<&[u8]>, value: &[u8], headers: OwnedHeaders) -> Delivery {
    let mut record = FutureRecord::to(topic).payload(value).headers(headers);
    if let Some(key) = key {
        record = record.key(key);
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
    message: &BorrowedMessage<'_>,
    headers: &[(&str, Option<&[u8]>)],
    rejection: &Rejection,
) -> Delivery {
    let mut out = copy_headers(headers, "tillsyn-dlq-");
    for (key, value) in decode::dead_letter_headers(rejection, message.topic(), message.partition(), message.offset()) {
        out = out.insert(Header { key: &key, value: Some(&value) });
    }
    let value = message.payload().unwrap_or_default();
    send(producer, &config.topics.dead_letter, message.key(), value, out)
}

fn late_event(
    producer: &FutureProducer,
    config: &ServiceConfig,
    message: &BorrowedMessage<'_>,
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
    send(producer, topic, message.key(), value, out)
}

fn produce_alert(producer: &FutureProducer, config: &ServiceConfig, alert: &Alert) -> Delivery {
    let wire = alert.to_wire();
    let format = config.topics.alerts_format;
    let value = match format {
        Format::Protobuf => prost::Message::encode_to_vec(&wire),
        Format::Json => serde_json::to_vec(&wire).unwrap_or_default(),
    };
    let key = wire.provider_id.clone();
    let headers = OwnedHeaders::new()
        .insert(Header { key: decode::CONTENT_TYPE_HEADER, value: Some(format.content_type()) })
        .insert(Header { key: "tillsyn-alert-id", value: Some(wire.alert_id.as_str()) });
    send(producer, &config.topics.alerts, Some(key.as_bytes()), &value, headers)
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
        self.queue.push_back(send(producer, topic, Some(key), value, headers));
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
