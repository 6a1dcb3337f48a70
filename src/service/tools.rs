//! Operator tools around the service: create the topics, produce a records
//! file to the input topics, and print alerts from the alert topic.

use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::info;

use super::config::ServiceConfig;
use super::run::produce::DeliveryWindow;
use tillsyn_core::codec::CodecError;
use tillsyn_core::decode::CONTENT_TYPE_HEADER;
use tillsyn_core::proto::v1 as wire;
use tillsyn_core::records::KafkaRecordLine;

/// What happened to one topic in [`create_topics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// Created now.
    Created,
    /// It was there already (left as it is).
    Existed,
}

/// Creates the service's topics through the admin API with the configured
/// partitions, replication and retention; existing topics are left alone.
pub async fn create_topics(config: &ServiceConfig) -> anyhow::Result<Vec<(String, TopicOutcome)>> {
    super::broker::probe_async(config).await?;
    let admin: AdminClient<DefaultClientContext> = config.kafka.producer_config().create()?;
    let specs = config.topics.specs();
    let retention: Vec<String> = specs.iter().map(|s| s.retention_ms.to_string()).collect();
    let lags: Vec<Option<String>> = specs.iter().map(|s| s.min_compaction_lag_ms.map(|l| l.to_string())).collect();
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&retention)
        .zip(&lags)
        .map(|((s, r), lag)| {
            let topic = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication_factor))
                .set("retention.ms", r);
            let topic = if s.compact { topic.set("cleanup.policy", "compact") } else { topic };
            match lag {
                Some(lag) => topic.set("min.compaction.lag.ms", lag),
                None => topic,
            }
        })
        .collect();
    let results =
        admin.create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))).await?;
    let mut out = Vec::new();
    for result in results {
        match result {
            Ok(name) => out.push((name, TopicOutcome::Created)),
            Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                out.push((name, TopicOutcome::Existed))
            }
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(out)
}

/// Checks that `topic` is compacted (`cleanup.policy` includes `compact`),
/// as the state topic must be: its checkpoints write only what changed, so
/// a topic that deletes by age would lose entities that did not change for
/// longer than its retention.
pub async fn check_compacted(config: &ServiceConfig, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config.kafka.producer_config().create()?;
    let resource = rdkafka::admin::ResourceSpecifier::Topic(topic);
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let results = admin.describe_configs([&resource], &options).await?;
    let policy = match results.into_iter().next() {
        Some(Ok(described)) => described.get("cleanup.policy").and_then(|e| e.value.clone()),
        Some(Err(code)) => anyhow::bail!("describing topic {topic}: {code}"),
        None => anyhow::bail!("describing topic {topic}: no answer"),
    };
    match policy {
        Some(p) if p.split(',').any(|p| p.trim() == "compact") => Ok(()),
        other => anyhow::bail!(
            "topic {topic} is not compacted (cleanup.policy = {}): the state topic must be \
             (kafka-configs --alter --entity-type topics --entity-name {topic} --add-config cleanup.policy=compact, \
             or create it with tillsyn topics create)",
            other.as_deref().unwrap_or("delete, the default")
        ),
    }
}

/// The partition count of `topic` (an error if it does not exist).
fn topic_partitions(producer: &FutureProducer, topic: &str) -> anyhow::Result<i32> {
    let metadata = crate::service::broker::metadata(
        rdkafka::producer::Producer::client(producer),
        Some(topic),
        Duration::from_secs(30),
    )?;
    match metadata.topics().first().map_or(0, |t| t.partitions().len()) {
        0 => anyhow::bail!("topic {topic} does not exist (create the topics: tillsyn topics create)"),
        n => Ok(n as i32),
    }
}

/// Produces the records of `records` (a records file's, see
/// [`tillsyn_core::records`]) in order, each to the configured topic of its
/// input (a reference record to its kind's topic) with its key, value and `content-type` header, at most `rate`
/// records per second if given, at most 10,000 unacknowledged at a time (a
/// broadcast record, a source heartbeat, to every partition of its topic);
/// waits until the broker has acknowledged every one. Returns how many Kafka
/// records were sent (a broadcast record once per partition). Stops at the
/// first record that cannot be read or sent.
pub async fn produce_records(
    config: &ServiceConfig,
    records: impl IntoIterator<Item = Result<KafkaRecordLine, CodecError>>,
    rate: Option<f64>,
) -> anyhow::Result<u64> {
    // A file that is not a records file fails before the brokers are asked.
    let mut records = records.into_iter();
    let first = records.next().transpose()?;
    super::broker::probe_async(config).await?;
    let producer: FutureProducer = config.kafka.producer_config().create()?;
    let mut window = DeliveryWindow::new(10_000);
    let mut partition_counts: std::collections::HashMap<String, i32> = std::collections::HashMap::new();
    let started = Instant::now();
    let mut sent = 0u64;
    for record in first.map(Ok).into_iter().chain(records) {
        let record = record?;
        let headers = match &record.content_type {
            Some(ct) => OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(ct.as_str()) }),
            None => OwnedHeaders::new(),
        };
        let topic = match record.reference {
            Some(kind) => config.topics.reference_topic(kind),
            None => config.topics.input_topic(record.input),
        };
        if record.broadcast {
            // A heartbeat: one copy to every partition of the topic.
            let partitions = match partition_counts.get(topic) {
                Some(n) => *n,
                None => {
                    let n = topic_partitions(&producer, topic)?;
                    partition_counts.insert(topic.to_string(), n);
                    n
                }
            };
            for partition in 0..partitions {
                let key = (!record.key.is_empty()).then_some(record.key.as_bytes());
                window.send_to(&producer, topic, Some(partition), key, &record.value, headers.clone()).await?;
                sent += 1;
            }
        } else {
            window.send(&producer, topic, record.key.as_bytes(), &record.value, headers).await?;
            sent += 1;
        }
        if sent.is_multiple_of(100_000) {
            info!(sent, "records produced");
        }
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    window.finish().await?;
    Ok(sent)
}

/// Reads the alert topic from the beginning (every partition, no consumer
/// group, `read_committed`) until it has read `max` alerts or nothing new
/// arrived for `idle`; returns them in the order read.
pub fn read_alerts(config: &ServiceConfig, max: Option<usize>, idle: Duration) -> anyhow::Result<Vec<wire::Alert>> {
    let mut alerts = Vec::new();
    for_each_alert(config, max, idle, |a| {
        alerts.push(a);
        Ok(())
    })?;
    Ok(alerts)
}

/// [`read_alerts`], handing each alert to `each` as soon as it is read
/// (for a person watching them arrive). Returns how many were read.
pub fn for_each_alert(
    config: &ServiceConfig,
    max: Option<usize>,
    idle: Duration,
    mut each: impl FnMut(wire::Alert) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    super::broker::probe(config)?;
    let mut client = config.kafka.consumer_config();
    // Statistics are the group consumer's (lag, readiness); this client
    // would only log them.
    client.set("statistics.interval.ms", "0");
    client.set("group.id", format!("{}-tail-{}", config.kafka.group_id, std::process::id()));
    client.set("isolation.level", "read_committed");
    client.set("enable.auto.commit", "false");
    let consumer: BaseConsumer = client.create()?;
    let metadata =
        crate::service::broker::metadata(consumer.client(), Some(&config.topics.alerts), Duration::from_secs(10))?;
    let mut list = TopicPartitionList::new();
    for topic in metadata.topics() {
        for p in topic.partitions() {
            list.add_partition_offset(topic.name(), p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&list)?;
    let mut read = 0;
    let mut last = Instant::now();
    while last.elapsed() < idle && max.is_none_or(|m| read < m) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let alert = decode_alert(m.payload().unwrap_or_default(), m.headers());
                // A record that is no alert (not written by tillsyn) is
                // skipped with a word, not the end of the listing.
                let Some(alert) = alert else {
                    eprintln!("skipped: partition {} offset {} is no alert", m.partition(), m.offset());
                    continue;
                };
                read += 1;
                each(alert)?;
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(read)
}

/// The alert in a record of the alert topic: JSON when its content-type
/// header says so, protobuf otherwise; `None` when it is no alert.
pub fn decode_alert(payload: &[u8], headers: Option<&rdkafka::message::BorrowedHeaders>) -> Option<wire::Alert> {
    use rdkafka::message::Headers;
    let json = headers
        .and_then(|h| h.iter().find(|h| h.key.eq_ignore_ascii_case(CONTENT_TYPE_HEADER)).and_then(|h| h.value))
        .is_some_and(|v| v.starts_with(b"application/json"));
    if json { serde_json::from_slice::<wire::Alert>(payload).ok() } else { wire::Alert::decode(payload).ok() }
}

/// One line per alert, for a person watching.
pub fn describe(alert: &wire::Alert) -> String {
    let status = wire::AlertStatus::try_from(alert.status).map(|s| s.as_str_name()).unwrap_or("?");
    let severity = wire::Severity::try_from(alert.severity).map(|s| s.as_str_name()).unwrap_or("?");
    let detected =
        alert.detected_at.as_ref().map(|t| tillsyn_core::model::EventTime(t.seconds).to_string()).unwrap_or_default();
    format!(
        "[{detected}] {} {} {} provider {}: {}",
        status.trim_start_matches("ALERT_STATUS_"),
        severity.trim_start_matches("SEVERITY_"),
        alert.rule_id,
        alert.provider_id,
        alert.explanation
    )
}

/// One entry of the rules topic as `tillsyn rules show` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RulesLogLine {
    /// Its offset on the rules topic.
    pub offset: i64,
    /// `change` or `seal`, or `skipped` (not a rules record).
    pub kind: &'static str,
    /// A change's version.
    pub version: Option<u32>,
    /// A change's effective time or a seal's time (RFC 3339).
    pub at: Option<String>,
    /// `accepted`, `rejected` or `sealed`.
    pub outcome: &'static str,
    /// Why a change was rejected, or why a record was skipped.
    pub reason: Option<String>,
    /// A change's note.
    pub note: Option<String>,
}

/// The rules topic read in full and judged as every instance judges it:
/// each entry with its outcome, the resulting history, and the raw
/// records (for an export).
pub fn read_rules(
    config: &ServiceConfig,
) -> anyhow::Result<(Vec<RulesLogLine>, tillsyn_core::rules::history::RulesHistory, Vec<Vec<u8>>)> {
    use tillsyn_core::rules::history::{Outcome, RulesEntry, RulesHistory};
    super::broker::probe(config)?;
    let (records, _) =
        super::state_store::read_log(config, &config.topics.rules_topic(), 0, 0, Duration::from_secs(60))?;
    let mut history = RulesHistory::new(&config.core.rules);
    let mut lines = Vec::new();
    let mut raw = Vec::new();
    for (offset, _, value) in records {
        let Some(value) = value else { continue };
        let line = match RulesEntry::decode(&value) {
            Err(reason) => RulesLogLine {
                offset,
                kind: "skipped",
                version: None,
                at: None,
                outcome: "skipped",
                reason: Some(reason),
                note: None,
            },
            Ok((entry, note)) => {
                raw.push(value.clone());
                let (kind, version, at) = match &entry {
                    RulesEntry::Change { version, effective_from, .. } => ("change", Some(*version), *effective_from),
                    RulesEntry::Seal { through } => ("seal", None, *through),
                };
                let (outcome, reason) = match history.apply(&entry) {
                    Outcome::Accepted(_) => ("accepted", None),
                    Outcome::Rejected { reason, .. } => ("rejected", Some(reason)),
                    Outcome::Sealed(_) => ("sealed", None),
                };
                RulesLogLine {
                    offset,
                    kind,
                    version,
                    at: Some(at.to_string()),
                    outcome,
                    reason,
                    note: (!note.is_empty()).then_some(note),
                }
            }
        };
        lines.push(line);
    }
    Ok((lines, history, raw))
}

/// Publishes version `version` of the rules' configuration, in force from
/// `effective_from`, if the rules topic would accept it now; then reads
/// the topic back and returns the change's outcome as the service judges
/// it (a seal written meanwhile can still make it late).
pub fn publish_rules(
    config: &ServiceConfig,
    version: u32,
    effective_from: tillsyn_core::model::EventTime,
    rules: &tillsyn_core::rules::RulesConfig,
    note: &str,
) -> anyhow::Result<RulesLogLine> {
    use tillsyn_core::rules::history::RulesEntry;
    let (_, history, _) = read_rules(config)?;
    let rules_json = serde_json::to_string(rules)?;
    history.check(version, effective_from, &rules_json).map_err(|reason| anyhow::anyhow!("refused: {reason}"))?;
    let entry = RulesEntry::Change { version, effective_from, rules_json };
    let producer: FutureProducer = config.kafka.producer_config().create()?;
    let delivery = super::run::produce::rules_record(&producer, config, &entry.key(""), &entry.encode(note));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(delivery)
        .map_err(|e| anyhow::anyhow!("writing the change to the rules topic: {e}"))?;
    let (lines, _, _) = read_rules(config)?;
    lines
        .into_iter()
        .rev()
        .find(|l| l.kind == "change" && l.version == Some(version))
        .ok_or_else(|| anyhow::anyhow!("the change was written but is not on the rules topic"))
}
