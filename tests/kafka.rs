//! The service against a real Kafka-protocol broker on 127.0.0.1 (tansu in
//! CI and `scripts/test.sh`, which start it; any Kafka works). The broker
//! address comes from `TILLSYN_TEST_BROKERS` (default `127.0.0.1:9092`).
//! Each test uses topics and a consumer group of its own.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use tillsyn::codec::MessageWriter;
use tillsyn::replay::replay_partitioned;
use tillsyn::service::config::ServiceConfig;
use tillsyn::service::decode::Format;
use tillsyn::service::{runner, tools};
use tillsyn::sim::{SimConfig, simulate};
use tillsyn::telemetry::Health;

fn config(name: &str) -> ServiceConfig {
    let suffix = format!("{}-{}", name, std::process::id());
    let mut c = ServiceConfig::default();
    c.kafka.brokers = std::env::var("TILLSYN_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    c.kafka.group_id = format!("test-{suffix}");
    c.kafka.statistics_interval_ms = 1_000;
    c.kafka.commit_interval_ms = 500;
    let t = &mut c.topics;
    t.time_reports = format!("test.{suffix}.time-reports");
    t.invoices = format!("test.{suffix}.invoices");
    t.alerts = format!("test.{suffix}.alerts");
    t.dead_letter = format!("test.{suffix}.dead-letter");
    t.late_events = format!("test.{suffix}.late-events");
    c
}

fn small() -> SimConfig {
    SimConfig { seed: 11, providers: 8, clients: 300, months: 1, fraudulent_providers: 2, ..SimConfig::default() }
}

/// Committed offsets of the group equal the end of every input partition.
fn caught_up(config: &ServiceConfig) -> bool {
    let Ok(consumer) = config.kafka.consumer_config().create::<BaseConsumer>() else { return false };
    let mut list = TopicPartitionList::new();
    let mut ends = Vec::new();
    for topic in [&config.topics.time_reports, &config.topics.invoices] {
        for p in 0..config.topics.partitions {
            let Ok((_, high)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) else { return false };
            list.add_partition(topic, p);
            ends.push(high);
        }
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(5)) else { return false };
    committed.elements().iter().zip(&ends).all(|(e, high)| match e.offset() {
        Offset::Offset(o) => o >= *high,
        _ => *high == 0,
    })
}

/// A record read back: its key and its headers.
type KeyAndHeaders = (Option<String>, Vec<(String, String)>);

fn read_all(config: &ServiceConfig, topic: &str) -> Vec<KeyAndHeaders> {
    let mut c = config.kafka.consumer_config();
    c.set("group.id", format!("{}-reader", config.kafka.group_id));
    let consumer: BaseConsumer = c.create().expect("reader");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut list = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            list.add_partition_offset(t.name(), p.id(), Offset::Beginning).expect("partition");
        }
    }
    consumer.assign(&list).expect("assign");
    let mut out = Vec::new();
    let mut idle = 0;
    while idle < 15 {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle = 0;
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((m.key().map(|k| String::from_utf8_lossy(k).into_owned()), headers));
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => idle += 1,
        }
    }
    out
}

/// The alerts of the live service over the simulated scenario are exactly
/// those of `tillsyn replay --partitions 3` over the same events (same ids,
/// nothing missing, nothing extra), while malformed records interleaved
/// with them land in the dead-letter topic with their reasons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_alerts_equal_offline_and_bad_records_are_dead_lettered() {
    let config = config("live");
    let created = tools::create_topics(&config).await.unwrap_or_else(|e| {
        panic!("cannot reach the broker at {} (start it: deploy/local/broker.sh start): {e}", config.kafka.brokers)
    });
    assert!(created.iter().all(|(_, o)| *o == tools::TopicOutcome::Created));

    let (truth, sent) = tools::simulate_to_topics(&config, &small(), Format::Protobuf, None).await.unwrap();
    assert!(sent > 10_000 && !truth.labels.is_empty());

    // Malformed records on the time-report topic, keyed like real ones.
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    let bad: [(&str, &[u8]); 3] = [
        ("application/x-protobuf", b"\xff\xff\xff garbage"),
        ("application/json", b"{not json"),
        ("application/json", br#"{"eventId":"x","providerId":"556036-0794"}"#),
    ];
    for (content_type, value) in bad {
        let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some(content_type) });
        let record = FutureRecord::to(&config.topics.time_reports).key("556036-0793").payload(value).headers(headers);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }

    let service_config = config.clone();
    let service = tokio::spawn(async move {
        let watch = service_config.clone();
        runner::run(service_config, Health::new(), async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let w = watch.clone();
                if tokio::task::spawn_blocking(move || caught_up(&w)).await.unwrap_or(false) {
                    break;
                }
            }
        })
        .await
    });
    let summary = tokio::time::timeout(Duration::from_secs(240), service)
        .await
        .expect("the service catches up within 4 minutes")
        .unwrap()
        .unwrap();
    assert_eq!(summary.records, sent + 3);
    assert_eq!(summary.dead_lettered, 3);

    // Offline: the same events, through the same partitioning.
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let mut writer = MessageWriter::create(&events).unwrap();
    simulate(&small(), &mut |e| writer.write(e).map_err(Into::into)).unwrap();
    writer.finish().unwrap();
    let offline_alerts = dir.path().join("alerts.ndjson");
    replay_partitioned(&events, &offline_alerts, None, config.core.clone(), false, config.topics.partitions).unwrap();
    let mut offline = Vec::new();
    let mut reader = tillsyn::codec::MessageReader::open(&offline_alerts).unwrap();
    while let Some(a) = reader.next_message::<tillsyn::proto::v1::Alert>().unwrap() {
        offline.push(a.alert_id);
    }

    let config2 = config.clone();
    let live: Vec<String> = tokio::task::spawn_blocking(move || {
        tools::read_alerts(&config2, None, Duration::from_secs(5)).unwrap().into_iter().map(|a| a.alert_id).collect()
    })
    .await
    .unwrap();
    assert!(!offline.is_empty(), "the scenario has fraud");
    assert_eq!(live.len(), offline.len(), "as many alert records live as offline (no duplicates, none missing)");
    assert_eq!(live.iter().collect::<BTreeSet<_>>(), offline.iter().collect::<BTreeSet<_>>());

    let dlq_config = config.clone();
    let dead = tokio::task::spawn_blocking(move || read_all(&dlq_config, &dlq_config.topics.dead_letter.clone()))
        .await
        .unwrap();
    let reasons: BTreeSet<String> = dead
        .iter()
        .filter_map(|(_, h)| h.iter().find(|(k, _)| k == "tillsyn-dlq-reason").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(dead.len(), 3);
    let expected: BTreeSet<String> =
        ["protobuf_decode", "json_decode", "malformed_organisation_number"].iter().map(|s| s.to_string()).collect();
    assert_eq!(reasons, expected);
    assert!(dead.iter().all(|(key, _)| key.as_deref() == Some("556036-0793")), "original key kept");
}
