//! Operator tools around the service: create the topics, feed the
//! simulator into the input topics, and print alerts from the alert topic.

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
use tillsyn_core::decode::{CONTENT_TYPE_HEADER, Format};
use tillsyn_core::proto::v1 as wire;
use tillsyn_sim::labels::GroundTruth;
use tillsyn_sim::municipality::{SimConfig, simulate};

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
    let admin: AdminClient<DefaultClientContext> = config.kafka.producer_config().create()?;
    let specs = config.topics.specs();
    let retention: Vec<String> = specs.iter().map(|s| s.retention_ms.to_string()).collect();
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&retention)
        .map(|(s, r)| {
            NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication_factor)).set("retention.ms", r)
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

/// Runs the simulator into the input topics: time reports and invoices,
/// keyed by provider id, in `format`, as fast as possible or at most `rate`
/// events per second. Returns the ground truth and the number of events.
pub async fn simulate_to_topics(
    config: &ServiceConfig,
    sim: &SimConfig,
    format: Format,
    rate: Option<f64>,
) -> anyhow::Result<(GroundTruth, u64)> {
    let mut events = Vec::new();
    let truth = simulate(sim, &mut |e| {
        events.push(e.clone());
        Ok(())
    })?;
    let sent = produce_events(config, &events, format, rate).await?;
    Ok((truth, sent))
}

/// Produces `events` with `hostile` records spread evenly among them (see
/// [`tillsyn_sim::municipality::hostile`]), keyed and headed as each says, at most `rate`
/// records per second. Returns how many of each were sent.
pub async fn produce_with_hostile(
    config: &ServiceConfig,
    events: &[wire::Event],
    hostile: &[tillsyn_sim::municipality::hostile::HostileRecord],
    format: Format,
    rate: Option<f64>,
) -> anyhow::Result<(u64, u64)> {
    let producer: FutureProducer = config.kafka.producer_config().create()?;
    let mut window = DeliveryWindow::new(10_000);
    let started = Instant::now();
    let (mut valid, mut bad) = (0u64, 0u64);
    let every = (events.len() / hostile.len().max(1)).max(1);
    let mut hostile = hostile.iter();
    for (i, event) in events.iter().enumerate() {
        if i % every == 0
            && let Some(h) = hostile.next()
        {
            let headers = match h.content_type {
                Some(ct) => OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(ct) }),
                None => OwnedHeaders::new(),
            };
            window.send(&producer, config.topics.input_topic(h.input), h.key.as_bytes(), &h.value, headers).await?;
            bad += 1;
        }
        let (topic, provider, value) = match &event.kind {
            Some(wire::event::Kind::TimeReport(t)) => (&config.topics.time_reports, &t.provider_id, encode(t, format)),
            Some(wire::event::Kind::Invoice(i)) => (&config.topics.invoices, &i.provider_id, encode(i, format)),
            None => continue,
        };
        let headers =
            OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(format.content_type()) });
        window.send(&producer, topic, provider.as_bytes(), &value, headers).await?;
        valid += 1;
        if valid.is_multiple_of(100_000) {
            info!(sent = valid, "events produced");
        }
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = Duration::from_secs_f64((valid + bad) as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    for h in hostile {
        let headers = match h.content_type {
            Some(ct) => OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(ct) }),
            None => OwnedHeaders::new(),
        };
        window.send(&producer, config.topics.input_topic(h.input), h.key.as_bytes(), &h.value, headers).await?;
        bad += 1;
    }
    window.finish().await?;
    Ok((valid, bad))
}

/// The first valid time report and invoice of `events`: the templates of
/// [`tillsyn_sim::municipality::hostile::hostile_records`].
pub fn templates(events: &[wire::Event]) -> Option<(wire::TimeReport, wire::Invoice)> {
    let report = events.iter().find_map(|e| match &e.kind {
        Some(wire::event::Kind::TimeReport(t)) => Some(t.clone()),
        _ => None,
    })?;
    let invoice = events.iter().find_map(|e| match &e.kind {
        Some(wire::event::Kind::Invoice(i)) => Some(i.clone()),
        _ => None,
    })?;
    Some((report, invoice))
}

/// Produces `events` to the input topics of `config` (time reports and
/// invoices to theirs, keyed by provider id, with a `content-type` header),
/// at most `rate` per second if given, and waits until the broker has
/// acknowledged every one. Returns how many were sent (an envelope without
/// a kind is skipped).
pub async fn produce_events(
    config: &ServiceConfig,
    events: &[wire::Event],
    format: Format,
    rate: Option<f64>,
) -> anyhow::Result<u64> {
    Ok(produce_with_hostile(config, events, &[], format, rate).await?.0)
}

fn encode<M: prost::Message + serde::Serialize>(message: &M, format: Format) -> Vec<u8> {
    match format {
        Format::Protobuf => message.encode_to_vec(),
        Format::Json => serde_json::to_vec(message).unwrap_or_default(),
    }
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
    let mut client = config.kafka.consumer_config();
    client.set("group.id", format!("{}-tail-{}", config.kafka.group_id, std::process::id()));
    client.set("isolation.level", "read_committed");
    client.set("enable.auto.commit", "false");
    let consumer: BaseConsumer = client.create()?;
    let metadata = consumer.fetch_metadata(Some(&config.topics.alerts), Duration::from_secs(10))?;
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
                let payload = m.payload().unwrap_or_default();
                let json = m
                    .headers()
                    .and_then(|h| {
                        use rdkafka::message::Headers;
                        h.iter().find(|h| h.key.eq_ignore_ascii_case(CONTENT_TYPE_HEADER)).and_then(|h| h.value)
                    })
                    .is_some_and(|v| v.starts_with(b"application/json"));
                let alert =
                    if json { serde_json::from_slice::<wire::Alert>(payload)? } else { wire::Alert::decode(payload)? };
                read += 1;
                each(alert)?;
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(read)
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
