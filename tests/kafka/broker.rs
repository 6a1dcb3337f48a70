//! The service against a real Kafka-protocol broker on 127.0.0.1 (tansu in
//! CI and `scripts/test.sh`, which start it; any Kafka works). The broker
//! address comes from `TILLSYN_TEST_BROKERS` (default `127.0.0.1:9092`).
//! Each test uses topics and a consumer group of its own, and the tests run
//! one at a time (a small broker serving several at once gets slow enough
//! to time consumer groups out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use tillsyn::replay::replay_partitioned;
use tillsyn::service::config::ServiceConfig;
use tillsyn::service::run::RunSummary;
use tillsyn::service::{changelog, run, state_store, tools};
use tillsyn::telemetry::Health;
use tillsyn_core::codec::MessageWriter;
use tillsyn_core::decode::Format;
use tillsyn_core::engine::Entity;
use tillsyn_core::proto::v1 as wire;
use tillsyn_core::records::KafkaRecordLine;
use tillsyn_sim::municipality::{SimConfig, simulate};

/// Runs the broker tests one at a time. The guard is held for a whole
/// test, across its awaits: each test has a runtime of its own, so nothing
/// else waits on that runtime for the lock (hence the
/// `clippy::await_holding_lock` allowances).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long the tests wait out a shared broker that answers nothing:
/// tansu under load in CI has gone over 30 s without answering, between
/// two tests and in the middle of one. The tests are about the service,
/// not about how soon the broker answers.
const BROKER_PATIENCE: Duration = Duration::from_secs(120);

fn brokers() -> String {
    std::env::var("TILLSYN_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn config(name: &str) -> ServiceConfig {
    let suffix = format!("{}-{}", name, std::process::id());
    let mut c = ServiceConfig::default();
    c.core.pseudonym_secret = format!("broker-test-secret-{suffix}");
    c.kafka.brokers = brokers();
    c.kafka.group_id = format!("test-{suffix}");
    c.kafka.statistics_interval = Duration::from_secs(1);
    c.kafka.commit_interval = Duration::from_secs(2);
    c.kafka.connect_timeout = BROKER_PATIENCE;
    // librdkafka's default session timeout, 45 s: a member whose session
    // expires while tansu 0.6.0 does not answer (seen for 6 to 15 s in CI
    // runs) is given no partitions when it rejoins (the README's tansu
    // allowances), and a test with a single member that is never killed
    // would then never catch up. The tests that kill or stop members take
    // less ([`replaceable`]).
    c.kafka.consumer.insert("session.timeout.ms".into(), "45000".into());
    let t = &mut c.topics;
    t.time_reports = format!("test.{suffix}.time-reports");
    t.invoices = format!("test.{suffix}.invoices");
    t.alerts = format!("test.{suffix}.alerts");
    t.dead_letter = format!("test.{suffix}.dead-letter");
    t.late_events = format!("test.{suffix}.late-events");
    t.state = format!("test.{suffix}.state");
    t.internal_prefix = format!("test.{suffix}.");
    t.granted_hours = format!("test.{suffix}.granted-hours");
    t.absences = format!("test.{suffix}.client-absences");
    t.provider_register = format!("test.{suffix}.provider-register");
    // Six partitions: several providers per partition, and each live run
    // is compared with the one-partition replay (one answer at any scale).
    t.partitions = 6;
    c
}

async fn create_topics(config: &ServiceConfig) {
    let created = tools::create_topics(config).await.unwrap_or_else(|e| {
        panic!("cannot reach the broker at {} (start it: deploy/local/broker.sh start): {e}", config.kafka.brokers)
    });
    assert!(created.iter().all(|(_, o)| *o == tools::TopicOutcome::Created), "{created:?}");
}

fn small() -> SimConfig {
    SimConfig { seed: 11, providers: 8, clients: 300, months: 1, fraudulent_providers: 2, ..SimConfig::default() }
}

fn simulated(sim: &SimConfig) -> Vec<wire::Event> {
    let mut events = Vec::new();
    simulate(sim, &mut |e| {
        events.push(e.clone());
        Ok(())
    })
    .unwrap();
    events
}

/// Produces `events` as `tillsyn produce` does a records file of them
/// (protobuf, keyed by provider id), at most `rate` per second; how many
/// were sent.
async fn produce_events(config: &ServiceConfig, events: &[wire::Event], rate: Option<f64>) -> anyhow::Result<u64> {
    let records = events.iter().flat_map(|e| KafkaRecordLine::event(e, Format::Protobuf).unwrap()).map(Ok);
    tools::produce_records(config, records, rate).await
}

/// How many Kafka records `events` are on input topics of `partitions`
/// partitions: a source heartbeat is one record per partition of each topic.
fn records_of(events: &[wire::Event], partitions: i32) -> u64 {
    events
        .iter()
        .map(|e| match e.kind {
            Some(wire::event::Kind::Heartbeat(_)) => 2 * partitions as u64,
            _ => 1,
        })
        .sum()
}

fn write_events(events: &[wire::Event], path: &Path) {
    let mut writer = MessageWriter::create(path).unwrap();
    for e in events {
        writer.write(e).unwrap();
    }
    writer.finish().unwrap();
}

/// Committed offsets of the group and the end offsets, per partition of
/// every topic the service consumes (the inputs and the staff stage's two
/// internal topics: caught up means the staff stage's answers are in too),
/// or why the broker did not answer.
fn committed_and_ends(config: &ServiceConfig) -> Result<Vec<(i64, i64)>, String> {
    let consumer = config.kafka.consumer_config().create::<BaseConsumer>().map_err(|e| e.to_string())?;
    let mut list = TopicPartitionList::new();
    let mut ends = Vec::new();
    for topic in &config.topics.partition_topics(config.core.reference.enabled) {
        for p in 0..config.topics.partitions {
            let (_, high) = tillsyn::service::broker::watermarks(consumer.client(), topic, p, Duration::from_secs(5))
                .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
            list.add_partition(topic, p);
            ends.push(high);
        }
    }
    let committed =
        consumer.committed_offsets(list, Duration::from_secs(5)).map_err(|e| format!("committed offsets: {e}"))?;
    Ok(committed
        .elements()
        .iter()
        .zip(ends)
        .map(|(e, high)| match e.offset() {
            Offset::Offset(o) => (o, high),
            _ => (0, high),
        })
        .collect())
}

/// [`committed_and_ends`] once nothing moves them any more (every instance
/// has stopped): asked again, for up to [`BROKER_PATIENCE`], while the
/// broker does not answer, so that a dropped connection is not taken for a
/// wrong offset.
fn settled_offsets(config: &ServiceConfig) -> Vec<(i64, i64)> {
    let deadline = Instant::now() + BROKER_PATIENCE;
    loop {
        match committed_and_ends(config) {
            Ok(offsets) => return offsets,
            Err(e) if Instant::now() < deadline => {
                eprintln!("offsets not read ({e}); asking again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("the committed and end offsets cannot be read: {e}"),
        }
    }
}

/// Committed offsets of the group equal the end of every input partition.
fn caught_up(config: &ServiceConfig) -> bool {
    committed_and_ends(config).is_ok_and(|v| v.iter().all(|(committed, end)| committed >= end))
}

/// Longest a catch-up may take in all (a slow shared CI broker).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(900);

/// Waits until the group has caught up with every input partition
/// ([`caught_up`]) while its committed offsets keep moving: fails when they
/// have not moved for [`BROKER_PATIENCE`] (a stuck service or broker) or
/// after [`CATCH_UP_LIMIT`], with the offsets, the group and each of
/// `services`' log and gauges. A slow broker is waited for; a stuck
/// service is not.
fn wait_for_catch_up(config: &ServiceConfig, services: &[&Service]) {
    let started = Instant::now();
    let (mut progress, mut moved) = (-1i64, Instant::now());
    loop {
        if let Ok(v) = committed_and_ends(config) {
            if v.iter().all(|(committed, end)| committed >= end) {
                return;
            }
            let committed: i64 = v.iter().map(|(c, _)| c).sum();
            if committed > progress {
                (progress, moved) = (committed, Instant::now());
            }
        }
        if moved.elapsed() > BROKER_PATIENCE || started.elapsed() > CATCH_UP_LIMIT {
            let offsets = match committed_and_ends(config) {
                Ok(v) => v.iter().map(|(c, e)| format!("{c}/{e}")).collect::<Vec<_>>().join(" "),
                Err(e) => format!("not read: {e}"),
            };
            let logs: Vec<String> =
                services.iter().enumerate().map(|(i, s)| format!("== service {i}\n{}", s.diagnosis())).collect();
            panic!(
                "the group did not catch up: committed offsets unmoved for {:?}, {:?} in all\n== committed/end \
                 offsets (time reports, invoices, visits by staff, staff findings; 0..n each)\n{offsets}\n== \
                 consumer group: {}\n{}",
                moved.elapsed(),
                started.elapsed(),
                describe_group(config),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What a service run in this process leaves for a failure message: its
/// log (a file of this test process's, INFO and up) and its metrics (the
/// process's Prometheus recorder), installed once for all the tests here.
struct InProcess {
    log: PathBuf,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

fn in_process() -> &'static InProcess {
    static ONCE: std::sync::OnceLock<InProcess> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let log = std::env::temp_dir().join(format!("tillsyn-kafka-tests-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("the in-process log file");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .try_init();
        let metrics = tillsyn::telemetry::install_recorder().expect("the in-process Prometheus recorder");
        InProcess { log, metrics }
    })
}

/// Why a service run in this process has not caught up, most telling
/// first (a CI log shows the start of a failure): the service's log since
/// it started without its per-record lines (its `status` line every 30 s
/// says what the loop holds and waits for), its readiness, the consumer
/// group as the broker describes it, each input partition's committed and
/// end offsets, and this test's series of the gauges that say what a
/// partition waits for.
fn in_process_diagnosis(config: &ServiceConfig, since: u64, health: &Health) -> String {
    let p = in_process();
    let log = std::fs::read(&p.log).unwrap_or_default();
    let tail = log_tail(&String::from_utf8_lossy(&log[(since as usize).min(log.len())..]));
    let readiness = health.readiness().err().unwrap_or("ready");
    let offsets = match committed_and_ends(config) {
        Ok(v) => v.iter().map(|(c, e)| format!("{c}/{e}")).collect::<Vec<_>>().join(" "),
        Err(e) => format!("not read: {e}"),
    };
    let group = describe_group(config);
    // The recorder is the process's: only this test's topics, and the
    // series without a topic.
    let prefix = config.topics.internal_prefix.as_str();
    let metrics = diagnosed_series(&p.metrics.render(), |l| !l.contains("topic=") || l.contains(prefix));
    format!(
        "== the service's log since it started, without alert, dead-letter and statistics lines (last 40)\n{tail}\n\
         == readiness: {readiness}\n== consumer group: {group}\n\
         == committed/end offsets of the input partitions (time reports, invoices, visits by staff, staff findings; 0..n each)\n\
         {offsets}\n== metrics (this test's topics)\n{metrics}"
    )
}

/// The consumer group of `config` as the broker describes it: state and
/// members.
fn describe_group(config: &ServiceConfig) -> String {
    let client = match config.kafka.consumer_config().create::<BaseConsumer>() {
        Ok(c) => c,
        Err(e) => return format!("no client: {e}"),
    };
    match client.fetch_group_list(Some(&config.kafka.group_id), Duration::from_secs(5)) {
        Ok(list) => list
            .groups()
            .iter()
            .map(|g| {
                let members: Vec<String> = g
                    .members()
                    .iter()
                    .map(|m| format!("{} ({}, {})", m.id(), m.client_id(), m.client_host()))
                    .collect();
                format!("{} state {} protocol {} members [{}]", g.name(), g.state(), g.protocol(), members.join("; "))
            })
            .collect::<Vec<_>>()
            .join(" | "),
        // tansu 0.6.0 on sqlite fails every DescribeGroups (tansu-storage
        // lite.rs `describe_groups` parses the stored detail as a JSON
        // string) and drops the connection; its log's error line holds the
        // group's detail (members, leader, state).
        Err(e) => format!("not described: {e} (tansu 0.6.0 cannot; see the group detail in its log's error line)"),
    }
}

/// The last 40 lines of a service's log without its per-record lines
/// (alerts, dead letters) and librdkafka's statistics, each cut at 400
/// characters.
fn log_tail(log: &str) -> String {
    let noise = ["alert produced", "record dead-lettered", "Client stats"];
    let lines: Vec<String> =
        log.lines().filter(|l| !noise.iter().any(|n| l.contains(n))).map(|l| l.chars().take(400).collect()).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The lines of [`DIAGNOSED`] series in a Prometheus exposition that
/// `keep` keeps.
fn diagnosed_series(rendered: &str, keep: impl Fn(&str) -> bool) -> String {
    rendered
        .lines()
        .filter(|l| !l.starts_with('#') && DIAGNOSED.iter().any(|w| l.starts_with(w)) && keep(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The series a catch-up failure prints.
const DIAGNOSED: [&str; 10] = [
    "tillsyn_held_records",
    "tillsyn_rules_sealed_through_seconds",
    "tillsyn_rules_changes_total",
    "tillsyn_consumer_lag_messages",
    "tillsyn_assigned_partitions",
    "tillsyn_service_ready",
    "tillsyn_loop_seconds_since_progress",
    "tillsyn_consumer_rebalances_total",
    "tillsyn_consumed_records_total",
    "tillsyn_producer_delivery_failures_total",
];

/// Runs the service in this process until its group has committed the end
/// of every input partition; if it has not within 4 minutes, fails with
/// [`in_process_diagnosis`].
async fn run_until_caught_up(config: &ServiceConfig) -> RunSummary {
    let since = std::fs::metadata(&in_process().log).map_or(0, |m| m.len());
    let service_config = config.clone();
    let health = Health::new();
    let service_health = health.clone();
    let service = tokio::spawn(async move {
        let watch = service_config.clone();
        run::run(service_config, service_health, async move {
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
    match tokio::time::timeout(Duration::from_secs(240), service).await {
        Ok(summary) => summary.unwrap().unwrap(),
        Err(_) => {
            let config = config.clone();
            let why = tokio::task::spawn_blocking(move || in_process_diagnosis(&config, since, &health)).await.unwrap();
            panic!("the service did not catch up within 4 minutes\n{why}");
        }
    }
}

/// The alert ids of `tillsyn replay --partitions 1` over `events`: the
/// reference every live run is compared with, whatever its partition count
/// and number of instances.
fn offline_alert_ids(events: &Path, config: &ServiceConfig) -> Vec<String> {
    let alerts = events.with_extension("alerts.ndjson");
    replay_partitioned(events, &alerts, None, config.core.clone(), false, 1).unwrap();
    let mut ids = Vec::new();
    let mut reader = tillsyn_core::codec::MessageReader::open(&alerts).unwrap();
    while let Some(a) = reader.next_message::<wire::Alert>().unwrap() {
        remember(&a);
        ids.push(a.alert_id);
    }
    ids
}

/// What each alert id read by this test process stands for, so that a
/// failed comparison says which alerts differ and how, not only their ids.
static SEEN_ALERTS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn remember(a: &wire::Alert) {
    let day = |seconds: Option<i64>| seconds.map_or(0, |s| s.div_euclid(86_400));
    let text = format!(
        "{} v{} {:?} provider {} window {}..{} detected {} revision {} evidence {}",
        a.rule_id,
        a.rule_version,
        wire::AlertStatus::try_from(a.status).unwrap_or_default(),
        a.provider_id,
        day(a.window_start.as_ref().map(|t| t.seconds)),
        day(a.window_end.as_ref().map(|t| t.seconds)),
        day(a.detected_at.as_ref().map(|t| t.seconds)),
        a.revision,
        a.evidence_event_ids.len()
    );
    SEEN_ALERTS.lock().unwrap_or_else(|e| e.into_inner()).insert(a.alert_id.clone(), text);
}

/// The alerts in `ids` but not in `other`, each with what it stands for.
fn described_difference(ids: &[String], other: &[String]) -> Vec<String> {
    let seen = SEEN_ALERTS.lock().unwrap_or_else(|e| e.into_inner());
    let other: BTreeSet<_> = other.iter().collect();
    ids.iter()
        .filter(|id| !other.contains(id))
        .map(|id| format!("{id}: {}", seen.get(id).map_or("(not read by this process)", String::as_str)))
        .collect()
}

/// The alert ids on the alert topic, one per record.
async fn live_alert_ids(config: &ServiceConfig) -> Vec<String> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let alerts = tools::read_alerts(&config, None, Duration::from_secs(5)).unwrap();
        alerts.iter().for_each(remember);
        alerts.into_iter().map(|a| a.alert_id).collect()
    })
    .await
    .unwrap()
}

fn assert_same_alerts(live: &[String], offline: &[String]) {
    assert!(!offline.is_empty(), "the scenario has fraud");
    fn count(ids: &[String]) -> BTreeMap<&String, usize> {
        ids.iter().fold(BTreeMap::new(), |mut m, id| {
            *m.entry(id).or_default() += 1;
            m
        })
    }
    let doubled: Vec<_> = count(live).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        doubled.is_empty() && count(live) == count(offline),
        "as many alert records live ({}) as offline ({}), the same ones, none twice; twice or more live: \
         {doubled:?}\nlive only: {:#?}\noffline only: {:#?}",
        live.len(),
        offline.len(),
        described_difference(live, offline),
        described_difference(offline, live)
    );
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

/// Malformed records on the time-report topic, keyed like real ones, with
/// the dead-letter reason each must get.
const MALFORMED: [(&str, &[u8], &str); 3] = [
    ("application/x-protobuf", b"\xff\xff\xff garbage", "protobuf_decode"),
    ("application/json", b"{not json", "json_decode"),
    ("application/json", br#"{"eventId":"x","providerId":"556036-0794"}"#, "malformed_organisation_number"),
];

async fn produce_malformed(config: &ServiceConfig) {
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    for (content_type, value, _) in MALFORMED {
        let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some(content_type) });
        let record = FutureRecord::to(&config.topics.time_reports).key("556036-0793").payload(value).headers(headers);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }
}

/// The alerts of the live service over the simulated scenario are exactly
/// those of `tillsyn replay --partitions 1` over the same events (same ids,
/// nothing missing, nothing extra), while malformed records interleaved
/// with them land in the dead-letter topic with their reasons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)]
async fn live_alerts_equal_offline_and_bad_records_are_dead_lettered() {
    let _serial = serial();
    let config = config("live");
    create_topics(&config).await;
    let events = simulated(&small());
    let half = events.len() / 2;
    let mut sent = produce_events(&config, &events[..half], None).await.unwrap();
    produce_malformed(&config).await;
    sent += produce_events(&config, &events[half..], None).await.unwrap();
    assert!(sent > 10_000);
    // A record on the alert topic that is no alert (someone else's): the
    // takeover reads it back, skips it and goes on.
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    let garbage = FutureRecord::<(), [u8]>::to(&config.topics.alerts).partition(0).payload(&[0xff, 0x00, 0x13][..]);
    producer.send(garbage, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();

    let summary = run_until_caught_up(&config).await;
    assert_eq!(summary.records, sent + 3);
    assert_eq!(summary.dead_lettered, 3);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    assert_same_alerts(&live_alert_ids(&config).await, &offline_alert_ids(&file, &config));

    let dlq_config = config.clone();
    let dead = tokio::task::spawn_blocking(move || read_all(&dlq_config, &dlq_config.topics.dead_letter.clone()))
        .await
        .unwrap();
    let reasons: BTreeSet<String> = dead
        .iter()
        .filter_map(|(_, h)| h.iter().find(|(k, _)| k == "tillsyn-dlq-reason").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(dead.len(), 3);
    assert_eq!(reasons, MALFORMED.iter().map(|(_, _, r)| r.to_string()).collect());
    assert!(dead.iter().all(|(key, _)| key.as_deref() == Some("556036-0793")), "original key kept");
}

fn python() -> PathBuf {
    let path = std::env::var_os("TILLSYN_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tillsyn/tools/pyenv/bin/python")
    });
    assert!(
        path.exists(),
        "no python with confluent-kafka at {} (install it: deploy/local/install-test-client.sh)",
        path.display()
    );
    path
}

/// Events produced as proto3 JSON by an independent client (Python
/// confluent-kafka, none of tillsyn's code; envelopes and bare messages,
/// some with fields the contract does not have) are all processed, and
/// give the same alerts as the offline replay of the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)]
async fn json_from_an_independent_client_is_processed() {
    let _serial = serial();
    let config = config("json");
    create_topics(&config).await;
    let sim = SimConfig { seed: 12, ..small() };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    write_events(&simulated(&sim), &file);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/produce_json.py");
    let output = Command::new(python())
        .arg(script)
        .args([&config.kafka.brokers, file.to_str().unwrap(), &config.topics.time_reports, &config.topics.invoices])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let sent: u64 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    assert!(sent > 10_000);

    let summary = run_until_caught_up(&config).await;
    assert_eq!(summary.records, sent);
    assert_eq!(summary.dead_lettered, 0, "every JSON record decodes and validates");
    assert_same_alerts(&live_alert_ids(&config).await, &offline_alert_ids(&file, &config));
}

/// A `tillsyn run` process with its HTTP port; killed when dropped.
struct Service {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Service {
    fn start(config: &ServiceConfig, log: PathBuf) -> Service {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let t = &config.topics;
        // The whole configuration as a file (the core's rule parameters);
        // the environment overrides below say the same for the rest.
        let file = log.with_extension("toml");
        std::fs::write(&file, toml::to_string(config).unwrap()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tillsyn"))
            .arg("run")
            .arg("--config")
            .arg(&file)
            .env("TILLSYN_KAFKA__BROKERS", &config.kafka.brokers)
            .env("TILLSYN_KAFKA__GROUP_ID", &config.kafka.group_id)
            .env("TILLSYN_KAFKA__STATISTICS_INTERVAL", "1s")
            .env("TILLSYN_KAFKA__COMMIT_INTERVAL", tillsyn_core::config::duration::format(config.kafka.commit_interval))
            .env("TILLSYN_KAFKA__CONSUMER__SESSION_TIMEOUT_MS", &config.kafka.consumer["session.timeout.ms"])
            .env("TILLSYN_TOPICS__TIME_REPORTS", &t.time_reports)
            .env("TILLSYN_TOPICS__INVOICES", &t.invoices)
            .env("TILLSYN_TOPICS__ALERTS", &t.alerts)
            .env("TILLSYN_TOPICS__DEAD_LETTER", &t.dead_letter)
            .env("TILLSYN_TOPICS__LATE_EVENTS", &t.late_events)
            .env("TILLSYN_TOPICS__STATE", &t.state)
            .env("TILLSYN_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("TILLSYN_LOG__FORMAT", "json")
            .env("TILLSYN_CORE__PSEUDONYM_SECRET", &config.core.pseudonym_secret)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Service { child, port, log }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((status, body))
    }

    fn metrics(&self) -> Metrics {
        match self.get("/metrics") {
            Some((_, body)) => Metrics::parse(&body),
            None => panic!("/metrics does not answer; the service's log:\n{}", self.log_text()),
        }
    }

    fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < limit, "the service did not exit within {limit:?}: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What a failure message needs when the service is stuck: the end of
    /// its log without its per-record lines, then the gauges that say what
    /// it waits for (a CI log keeps the start of a long message).
    fn diagnosis(&self) -> String {
        let metrics = match self.get("/metrics") {
            Some((_, body)) => diagnosed_series(&body, |_| true),
            None => "/metrics does not answer".into(),
        };
        let tail = log_tail(&self.log_text());
        format!("== the log without alert, dead-letter and statistics lines (last 40)\n{tail}\n== metrics\n{metrics}")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The samples of a Prometheus text exposition.
struct Metrics(Vec<(String, BTreeMap<String, String>, f64)>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest
                        .trim_end_matches('}')
                        .split("\",")
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').unwrap();
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            samples.push((name, labels, value.parse().unwrap()));
        }
        Metrics(samples)
    }

    /// Samples of `name` whose labels include `labels`.
    fn select(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(&BTreeMap<String, String>, f64)> {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, l, v)| (l, *v))
            .collect()
    }

    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.select(name, labels).iter().map(|(_, v)| v).sum()
    }
}

/// Topic partitions the group assigns: the 6 partitions of the two inputs
/// and of the staff stage's two internal topics.
const ASSIGNED_TOPIC_PARTITIONS: f64 = 24.0;

/// Waits until `done` holds, checking every 200 ms.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that holds every
/// chunk the broker sends back for `delay`: a broker that answers, but
/// slowly (tansu busy with its sqlite writes on a loaded CI machine).
/// Returns its port; it serves until the test binary exits.
fn slow_answering_proxy(upstream: &str, delay: Duration) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = upstream.split(',').next().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(broker) = TcpStream::connect(&upstream) else { continue };
            let (mut from_client, mut to_broker) = (client.try_clone().unwrap(), broker.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_broker);
                let _ = to_broker.shutdown(Shutdown::Write);
            });
            let (mut from_broker, mut to_client) = (broker, client);
            std::thread::spawn(move || {
                let mut chunk = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = from_broker.read(&mut chunk) {
                    std::thread::sleep(delay);
                    if to_client.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_client.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// A broker that answers every request 2 s late is still reached by the
/// first contact every command makes, within `kafka.connect_timeout`:
/// each metadata attempt is short (so that an authentication failure is
/// seen at once), but a slow answer is not lost with it.
#[test]
fn a_broker_slow_to_answer_is_reached_by_the_first_contact() {
    let _serial = serial();
    let port = slow_answering_proxy(&brokers(), Duration::from_secs(2));
    let mut config = config("slow-answer");
    config.kafka.brokers = format!("127.0.0.1:{port}");
    config.kafka.connect_timeout = Duration::from_secs(30);
    let started = Instant::now();
    tillsyn::service::broker::probe(&config).unwrap_or_else(|e| panic!("after {:?}: {e}", started.elapsed()));
    // The connection's first exchange (API versions) and the metadata
    // request each wait for the proxy: the answer really was slow.
    assert!(started.elapsed() >= Duration::from_secs(4), "reached after only {:?}", started.elapsed());
}

/// Back-pressure is not a failure: with a producer queue of 16 messages
/// (a slow broker seen from the producer), records wait for room instead
/// of stopping the service, keep their order, and the alert topic holds
/// exactly the alerts of `replay --partitions 1`.
#[test]
fn a_full_producer_queue_is_waited_for_not_a_failure() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = config("queue");
    // 16 messages: a checkpoint writes one record per changed entity, and
    // with 2 (as before checkpoints were incremental) catching up took
    // longer than the test allows (no record lost, just slow).
    config.kafka.producer.insert("queue.buffering.max.messages".into(), "16".into());
    config.kafka.commit_interval = Duration::from_secs(10);
    runtime.block_on(create_topics(&config));
    let events = simulated(&small());
    let sent = runtime.block_on(produce_events(&config, &events, None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&config, dir.path().join("run.log"));
    let waiting = Instant::now();
    while !caught_up(&config) {
        assert!(
            waiting.elapsed() < Duration::from_secs(240),
            "not caught up within 240 s: {:?}\n{}",
            committed_and_ends(&config),
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = service.metrics();
    assert!(m.sum("tillsyn_producer_queue_full_waits_total", &[]) > 0.0, "the queue was never full");
    assert_eq!(m.sum("tillsyn_consumed_records_total", &[]) as u64, sent, "{}", service.log_text());
    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    assert_same_alerts(&runtime.block_on(live_alert_ids(&config)), &offline_alert_ids(&file, &config));
}

/// SIGTERM while the service is consuming: it finishes what is in flight,
/// commits and exits 0, and the group's committed offsets are exactly the
/// records it processed. A restart continues from there: it consumes every
/// other record exactly once (nothing read twice, nothing skipped), and its
/// metrics endpoint then reports plausible values for everything listed in
/// the README: records by topic and kind, dead letters by reason, alerts,
/// state sizes, latency, watermark lag, consumer lag, rebalances, readiness.
#[test]
fn sigterm_mid_run_exits_cleanly_and_a_restart_resumes_from_committed_offsets() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = config("restart");
    config.core.pseudonym_secret = "restart-test-secret".into();
    runtime.block_on(create_topics(&config));
    let events = simulated(&small());
    let half = events.len() / 2;
    let first = runtime.block_on(produce_events(&config, &events[..half], None)).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // First run: stopped by SIGTERM as soon as it has consumed something.
    let mut service = Service::start(&config, dir.path().join("first.log"));
    wait_for("records consumed", Duration::from_secs(120), || {
        service
            .get("/metrics")
            .is_some_and(|(_, body)| Metrics::parse(&body).sum("tillsyn_consumed_records_total", &[]) > 0.0)
    });
    service.sigterm();
    let status = service.wait(Duration::from_secs(60));
    assert!(status.success(), "exit status {status:?}: {}", service.log_text());
    let log = service.log_text();
    let stopped: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "stopped")
        .unwrap_or_else(|| panic!("a final 'stopped' line: {log}"));
    let processed = stopped["fields"]["records"].as_u64().unwrap();
    let committed: i64 = settled_offsets(&config).iter().map(|(c, _)| c).sum();
    assert_eq!(committed as u64, processed, "what was processed is exactly what was committed");
    assert!(processed > 0, "stopped mid-run after consuming");

    // More input arrives while it is down, some of it malformed.
    runtime.block_on(produce_malformed(&config));
    let second = runtime.block_on(produce_events(&config, &events[half..], None)).unwrap();
    let total = first + 3 + second;
    assert!(processed < total);

    let mut service = Service::start(&config, dir.path().join("second.log"));
    wait_for_catch_up(&config, &[&service]);
    wait_for("the restart to be ready", Duration::from_secs(60), || {
        service.get("/readyz").is_some_and(|(status, _)| status == 200)
    });
    // Let one more statistics interval and gauge update pass.
    std::thread::sleep(Duration::from_secs(3));
    let m = service.metrics();
    let consumed = m.sum("tillsyn_consumed_records_total", &[]);
    assert_eq!(consumed as u64, total - processed, "the restart read each remaining record once");
    let t = &config.topics;
    assert!(m.sum("tillsyn_consumed_records_total", &[("topic", &t.time_reports), ("kind", "time_report")]) > 0.0);
    assert!(m.sum("tillsyn_consumed_records_total", &[("topic", &t.invoices), ("kind", "invoice")]) > 0.0);
    for (_, _, reason) in MALFORMED {
        assert_eq!(m.sum("tillsyn_dead_lettered_records_total", &[("reason", reason)]), 1.0, "{reason}");
    }
    assert!(m.sum("tillsyn_produced_alerts_total", &[]) > 0.0, "alerts by rule and severity");
    assert!(
        m.select("tillsyn_produced_alerts_total", &[])
            .iter()
            .all(|(l, _)| l.contains_key("rule") && l.contains_key("severity"))
    );
    assert_eq!(m.sum("tillsyn_record_processing_seconds_count", &[]), consumed, "one latency sample per record");
    assert!(m.sum("tillsyn_state_providers", &[]) >= 1.0);
    assert!(m.sum("tillsyn_state_clients", &[]) >= 10.0);
    assert!(m.sum("tillsyn_state_staff", &[]) >= 1.0);
    assert_eq!(m.select("tillsyn_watermark_lag_seconds", &[]).len(), 6, "one watermark per partition");
    assert!(m.select("tillsyn_watermark_lag_seconds", &[]).iter().all(|(_, v)| *v > 0.0), "the events are in the past");
    let lags = m.select("tillsyn_consumer_lag_messages", &[]);
    assert_eq!(lags.len() as f64, ASSIGNED_TOPIC_PARTITIONS, "a lag for each partition of the 4 topics: {lags:?}");
    assert!(lags.iter().all(|(_, v)| *v == 0.0), "caught up: {lags:?}");
    assert!(m.sum("tillsyn_consumer_rebalances_total", &[("kind", "assign")]) >= 1.0);
    assert_eq!(m.sum("tillsyn_assigned_partitions", &[]), ASSIGNED_TOPIC_PARTITIONS);
    assert_eq!(m.sum("tillsyn_service_ready", &[]), 1.0);
    assert_eq!(service.get("/healthz").map(|(s, _)| s), Some(200));
    for which in ["processing", "consumer"] {
        let since = m.select("tillsyn_loop_seconds_since_progress", &[("loop", which)]);
        assert!(since.len() == 1 && since[0].1 < 5.0, "the {which} loop beats while idle: {since:?}");
    }
    // No label value is a client or staff reference, raw or pseudonymised.
    let mut people = BTreeSet::new();
    for e in &events {
        if let Some(wire::event::Kind::TimeReport(t)) = &e.kind {
            people.insert(t.client_ref.clone());
            people.insert(t.staff_ref.clone());
        }
    }
    for (name, labels, _) in &m.0 {
        for value in labels.values() {
            assert!(!people.contains(value), "{name} has a personal reference as a label");
            assert!(!value.starts_with("c-") && !value.starts_with("s-"), "{name}: {value}");
        }
    }

    service.sigterm();
    let status = service.wait(Duration::from_secs(60));
    assert!(status.success(), "exit status {status:?}: {}", service.log_text());
    let offsets = settled_offsets(&config);
    assert!(
        offsets.iter().all(|(committed, end)| committed >= end),
        "committed and end offsets after the stop: {offsets:?}"
    );

    // The restart took the state over: the alerts are exactly the replay's.
    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let live = runtime.block_on(live_alert_ids(&config));
    assert_same_alerts(&live, &offline_alert_ids(&file, &config));
}

/// Rule parameters far more sensitive than the defaults.
const SENSITIVE_RULES: &str = r#"
[core.rules.check_in_away_from_home]
max_distance_m = 30.0
high_distance_m = 60.0
[core.rules.impossible_travel]
max_speed_kmh = 15.0
min_distance_km = 0.5
[core.rules.staff_impossible_day]
max_day_hours = 5.0
max_week_hours = 25.0
[core.rules.hours_per_client_above_peers]
z_threshold = 0.3
min_ratio = 1.02
min_peers = 3
min_clients = 2
[core.rules.manual_registration_share]
z_threshold = 0.3
min_share = 0.01
min_visits = 20
min_peers = 3
[core.rules.rounded_visits]
z_threshold = 0.3
min_share = 0.001
min_visits = 20
min_peers = 3
"#;

/// Lines of a JSON log whose message is `message`.
fn log_lines(log: &str, message: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == message)
        .collect()
}

/// SIGKILL the service again and again while the input arrives, restarting
/// it each time: the alert topic then holds exactly the alerts of the
/// offline replay, each once (records counted, not distinct ids). The
/// restarts restore snapshots and do not produce again what a killed
/// instance had produced after its last snapshot.
#[test]
fn killed_and_restarted_repeatedly_the_alerts_are_exactly_once() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = replaceable(config("crash"), Duration::from_secs(6));
    config.core.pseudonym_secret = "crash-test-secret".into();
    config.kafka.commit_interval = Duration::from_secs(4);
    // Sensitive rules, so that alerts are many (76 over this scenario, most
    // in its first week) and every killed instance has produced some since
    // its last checkpoint. Exactly-once is what is tested here, not
    // detection quality.
    let sensitive: ServiceConfig = toml::from_str(SENSITIVE_RULES).unwrap();
    config.core.rules = sensitive.core.rules;
    runtime.block_on(create_topics(&config));
    let events = simulated(&SimConfig { providers: 20, clients: 600, fraudulent_providers: 6, ..small() });
    let dir = tempfile::tempdir().unwrap();

    // The input arrives over about 36 s while instances are killed.
    let producing = {
        let (config, events) = (config.clone(), events.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(produce_events(&config, &events, Some(1_000.0))).unwrap()
        })
    };
    let mut kills = 0;
    let mut suppressed = 0.0;
    let mut logs = Vec::new();
    let started = Instant::now();
    // Instances live 1.5 to 6 s after they first consumed a record: the
    // short-lived ones die before their first interval checkpoint (4 s), so
    // their successor replays everything they did and must not produce
    // their alerts again; the longer-lived ones checkpoint first, so their
    // successor restores a snapshot.
    let lifetimes_ms = [1_500, 5_500, 2_000, 6_000, 1_000, 5_000];
    for round in 0.. {
        let log = dir.path().join(format!("run-{round}.log"));
        let mut service = Service::start(&config, log.clone());
        let consumed =
            |s: &Service| s.get("/metrics").map(|(_, b)| Metrics::parse(&b).sum("tillsyn_consumed_records_total", &[]));
        let waiting = Instant::now();
        while !(producing.is_finished() || consumed(&service).is_some_and(|n| n > 0.0)) {
            assert!(
                waiting.elapsed() < Duration::from_secs(120),
                "round {round}: the service consumed nothing within 120 s: {}",
                service.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        if producing.is_finished() {
            // All input is there: let the last instance finish. It may
            // have nothing left to do (its predecessor committed all), so
            // first wait until it is up and has taken the partitions over
            // (ready), or its metrics and its SIGTERM handling are not there yet.
            let waiting = Instant::now();
            while service.get("/readyz").map(|(status, _)| status) != Some(200) {
                assert!(
                    waiting.elapsed() < Duration::from_secs(120),
                    "the last instance was not ready within 120 s: {}",
                    service.log_text()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            let waiting = Instant::now();
            while !caught_up(&config) {
                assert!(
                    waiting.elapsed() < Duration::from_secs(240),
                    "the last instance did not catch up within 240 s: {:?}\n{}",
                    committed_and_ends(&config),
                    service.diagnosis()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            suppressed += service.metrics().sum("tillsyn_replayed_alerts_suppressed_total", &[]);
            service.sigterm();
            let status = service.wait(Duration::from_secs(60));
            assert!(status.success(), "{status:?}: {}", service.log_text());
            logs.push(service.log_text());
            break;
        }
        std::thread::sleep(Duration::from_millis(lifetimes_ms[round % lifetimes_ms.len()]));
        suppressed += service.metrics().sum("tillsyn_replayed_alerts_suppressed_total", &[]);
        let _ = service.child.kill();
        let _ = service.child.wait();
        kills += 1;
        // The next instance starts once the group's coordinator can know
        // the killed one is gone (its session timeout, 6 s). tansu 0.6.0
        // checks sessions only when a member calls: a member joining while
        // a dead one's session runs was seen to get an empty assignment and
        // no rebalance after the dead member's session expired (the
        // Guarantees section of the README). Kafka evicts the dead member
        // and rebalances by itself.
        std::thread::sleep(Duration::from_millis(6_500));
        logs.push(service.log_text());
        assert!(started.elapsed() < Duration::from_secs(400), "the test takes too long");
    }
    let sent = producing.join().unwrap();
    assert_eq!(sent, records_of(&events, config.topics.partitions));
    assert!(kills >= 3, "killed {kills} times");

    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let live = runtime.block_on(live_alert_ids(&config));
    assert_same_alerts(&live, &offline_alert_ids(&file, &config));

    let all = logs.join("\n");
    let restored = log_lines(&all, "partition state restored");
    assert!(
        restored.iter().any(|l| l["fields"]["from"] == "snapshot"),
        "some restart restored a snapshot: {restored:?}"
    );
    eprintln!(
        "{kills} kills; {} partition restores, {} from a snapshot; {suppressed} alerts recomputed by a replay and not \
         produced again; {} alert records",
        restored.len(),
        restored.iter().filter(|l| l["fields"]["from"] == "snapshot").count(),
        live.len()
    );
    assert!(suppressed > 0.0, "a replay recomputed alerts already produced (else this test shows nothing)");
}

/// Produces `events` at `rate` per second in a background thread.
fn produce_in_background(config: &ServiceConfig, events: &[wire::Event], rate: f64) -> std::thread::JoinHandle<u64> {
    let (config, events) = (config.clone(), events.to_vec());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(produce_events(&config, &events, Some(rate))).unwrap()
    })
}

/// `config` for a test that kills or stops members: a member that dies
/// without leaving is replaced after `session`, its session timeout.
fn replaceable(mut config: ServiceConfig, session: Duration) -> ServiceConfig {
    config.kafka.consumer.insert("session.timeout.ms".into(), session.as_millis().to_string());
    config
}

fn sensitive(mut config: ServiceConfig) -> ServiceConfig {
    let sensitive: ServiceConfig = toml::from_str(SENSITIVE_RULES).unwrap();
    config.core.rules = sensitive.core.rules;
    config
}

fn many_alerts() -> SimConfig {
    SimConfig { providers: 20, clients: 600, fraudulent_providers: 6, ..small() }
}

/// Stops every instance gracefully and checks each exits 0.
fn stop_all(instances: &mut [Service]) {
    for s in instances.iter() {
        s.sigterm();
    }
    for s in instances.iter_mut() {
        let status = s.wait(Duration::from_secs(90));
        assert!(status.success(), "{status:?}: {}", s.log_text());
    }
}

/// Two instances share the partitions, a third joins, one is killed, one
/// more joins, while the input arrives: partitions move between members
/// (revoked with a checkpoint, taken over from it) and the alert topic
/// still holds exactly the replay's alerts, each once.
#[test]
fn rebalancing_between_instances_keeps_the_alerts_exactly_once() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // 6 s: with 15 s tansu 0.6.0 had not moved the killed member's
    // partitions to the survivors 90 s after the kill (seen once here).
    let mut config = replaceable(sensitive(config("rebalance")), Duration::from_secs(6));
    config.core.pseudonym_secret = "rebalance-test-secret".into();
    runtime.block_on(create_topics(&config));
    let events = simulated(&many_alerts());
    let dir = tempfile::tempdir().unwrap();
    let producing = produce_in_background(&config, &events, 1_000.0);
    let consumed = |s: &Service| {
        s.get("/metrics").map(|(_, b)| Metrics::parse(&b).sum("tillsyn_consumed_records_total", &[])).unwrap_or(0.0)
    };
    let assigned = |s: &Service| {
        s.get("/metrics").map(|(_, b)| Metrics::parse(&b).sum("tillsyn_assigned_partitions", &[])).unwrap_or(0.0)
    };
    let start = |name: &str| Service::start(&config, dir.path().join(format!("{name}.log")));

    let mut live = vec![start("a"), start("b")];
    wait_for("two members sharing the partitions", Duration::from_secs(60), || {
        live.iter().all(|s| assigned(s) > 0.0) && live.iter().map(assigned).sum::<f64>() == ASSIGNED_TOPIC_PARTITIONS
    });
    wait_for("both consuming", Duration::from_secs(60), || live.iter().all(|s| consumed(s) > 0.0));
    live.push(start("c"));
    wait_for("three members sharing the partitions", Duration::from_secs(90), || {
        live.iter().all(|s| assigned(s) > 0.0) && live.iter().map(assigned).sum::<f64>() == ASSIGNED_TOPIC_PARTITIONS
    });
    std::thread::sleep(Duration::from_secs(3));
    // Kill the first instance: no revocation, no last checkpoint.
    let mut a = live.remove(0);
    let _ = a.child.kill();
    let _ = a.child.wait();
    let mut logs = vec![a.log_text()];
    wait_for("the survivors to take its partitions over", Duration::from_secs(90), || {
        live.iter().map(assigned).sum::<f64>() == ASSIGNED_TOPIC_PARTITIONS
    });
    live.push(start("d"));
    wait_for("three members again", Duration::from_secs(90), || {
        live.iter().all(|s| assigned(s) > 0.0) && live.iter().map(assigned).sum::<f64>() == ASSIGNED_TOPIC_PARTITIONS
    });
    let sent = producing.join().unwrap();
    assert_eq!(sent, records_of(&events, config.topics.partitions));
    wait_for_catch_up(&config, &live.iter().collect::<Vec<_>>());
    let suppressed: f64 = live
        .iter()
        .filter_map(|s| s.get("/metrics"))
        .map(|(_, b)| Metrics::parse(&b).sum("tillsyn_replayed_alerts_suppressed_total", &[]))
        .sum();
    stop_all(&mut live);
    logs.extend(live.iter().map(Service::log_text));

    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let alerts = runtime.block_on(live_alert_ids(&config));
    assert_same_alerts(&alerts, &offline_alert_ids(&file, &config));
    let all = logs.join("\n");
    let revoke_checkpoints =
        log_lines(&all, "state snapshot written").iter().filter(|l| l["fields"]["trigger"] == "revoke").count();
    let restores = log_lines(&all, "partition state restored");
    eprintln!(
        "{} takeovers ({} from a snapshot), {revoke_checkpoints} checkpoints on revocation, {suppressed} alerts not produced again, {} alert records",
        restores.len(),
        restores.iter().filter(|l| l["fields"]["from"] == "snapshot").count(),
        alerts.len()
    );
    assert!(revoke_checkpoints > 0, "revoked partitions were checkpointed");
    assert!(restores.iter().any(|l| l["fields"]["from"] == "snapshot"), "partitions were taken over from snapshots");
}

/// A broker of a test's own (durable, on a free port, state in `state`),
/// started by `deploy/local/broker.sh` and stopped however the test ends.
struct OwnBroker {
    port: u16,
    state: PathBuf,
}

impl OwnBroker {
    fn start(state: &Path) -> OwnBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let broker = OwnBroker { port, state: state.to_path_buf() };
        broker.run("start");
        broker
    }

    /// `broker.sh <command> --durable` for this broker.
    fn run(&self, command: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/broker.sh");
        let output = Command::new(script)
            .args([command, "--durable"])
            .env("TILLSYN_BROKER_PORT", self.port.to_string())
            .env("TILLSYN_STATE_DIR", &self.state)
            .output()
            .unwrap();
        assert!(output.status.success(), "broker.sh {command}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.run("stop");
    }
}

/// The broker (durable storage) is killed and restarted while the input
/// arrives and the service runs: the service reconnects by itself, and
/// the alert topic holds exactly the replay's alerts, each once.
#[test]
fn a_broker_restart_mid_run_loses_and_doubles_nothing() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let own = OwnBroker::start(&dir.path().join("broker"));
    let (port, broker) = (own.port, |command: &str| own.run(command));
    let mut config = sensitive(config("broker-restart"));
    config.kafka.brokers = format!("127.0.0.1:{port}");
    config.core.pseudonym_secret = "broker-restart-secret".into();
    runtime.block_on(create_topics(&config));
    let events = simulated(&many_alerts());
    let producing = produce_in_background(&config, &events, 1_500.0);
    let mut service = Service::start(&config, dir.path().join("service.log"));
    wait_for("consuming", Duration::from_secs(60), || {
        service
            .get("/metrics")
            .is_some_and(|(_, b)| Metrics::parse(&b).sum("tillsyn_consumed_records_total", &[]) > 3_000.0)
    });
    broker("stop");
    std::thread::sleep(Duration::from_secs(3));
    broker("start");
    let sent = producing.join().unwrap();
    assert_eq!(sent, records_of(&events, config.topics.partitions));
    let waiting = Instant::now();
    while !caught_up(&config) {
        assert!(
            waiting.elapsed() < Duration::from_secs(240),
            "not caught up after the broker restart: {:?}\n{}",
            committed_and_ends(&config),
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    service.sigterm();
    let status = service.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", service.log_text());

    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let alerts = runtime.block_on(live_alert_ids(&config));
    assert_same_alerts(&alerts, &offline_alert_ids(&file, &config));
}

/// Malformed records of every kind (random bytes, truncated protobuf, huge
/// fields and records, deep JSON, wrong types, year 9999, negative
/// durations, invalid organisation numbers, empty values, unknown content
/// types, records on the wrong topic) interleaved with a municipality's
/// valid records: every malformed one is in the dead-letter topic with its
/// reason, every valid one is processed (the alerts equal the replay's),
/// and the service keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)]
async fn hostile_input_is_dead_lettered_and_valid_input_processed() {
    let _serial = serial();
    let config = config("hostile");
    create_topics(&config).await;
    let events = simulated(&small());
    let (report, invoice) = tillsyn_sim::records::templates(&events).unwrap();
    let hostile = tillsyn_sim::municipality::hostile::hostile_records(3, 6_000, &report, &invoice);
    // The records of `tillsyn-sim simulate --records --hostile`, sent as
    // `tillsyn produce` sends them.
    let mut records = Vec::new();
    let counts = tillsyn_sim::records::with_hostile(&events, &hostile, Format::Protobuf, false, |r| {
        records.push(r);
        Ok(())
    })
    .unwrap();
    // A heartbeat is one line per topic there, one record per partition on the topics.
    let (valid, bad) = (records_of(&events, config.topics.partitions), counts.hostile);
    assert_eq!(bad as usize, hostile.len());
    assert_eq!(tools::produce_records(&config, records.into_iter().map(Ok), None).await.unwrap(), valid + bad);

    let summary = run_until_caught_up(&config).await;
    assert_eq!(summary.records, valid + bad);
    assert_eq!(summary.dead_lettered, bad, "every malformed record, and nothing else, is dead-lettered");

    let dlq_config = config.clone();
    let dead = tokio::task::spawn_blocking(move || read_all(&dlq_config, &dlq_config.topics.dead_letter.clone()))
        .await
        .unwrap();
    assert_eq!(dead.len(), hostile.len());
    let reason_of = |h: &[(String, String)]| h.iter().find(|(k, _)| k == "tillsyn-dlq-reason").map(|(_, v)| v.clone());
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for (_, headers) in &dead {
        *got.entry(reason_of(headers).expect("every dead letter has a reason")).or_default() += 1;
    }
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for h in hostile.iter().filter_map(|h| h.reason) {
        *expected.entry(h.to_string()).or_default() += 1;
    }
    for (reason, n) in &expected {
        assert!(got.get(reason).copied().unwrap_or(0) >= *n, "{reason}: {got:?} vs {expected:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    assert_same_alerts(&live_alert_ids(&config).await, &offline_alert_ids(&file, &config));
    eprintln!("{} valid records, {} malformed, dead letters by reason: {got:?}", valid, bad);
}

/// Pattern 2 across providers, live: one staff member registered by two
/// providers that hash to different partitions of the 6, at two homes at
/// once. Neither partition alone sees anything wrong; the staff stage
/// (over the visits-by-staff topic) finds it and the provider with the
/// weaker registration gets exactly the alert of the one-partition replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)]
async fn a_staff_member_at_two_providers_in_different_partitions_is_alerted() {
    let _serial = serial();
    let config = config("cross");
    create_topics(&config).await;
    let (events, _, borrower) = tillsyn_sim::crafted::cross_provider_double_booking(&[config.topics.partitions]);
    let sent = produce_events(&config, &events, None).await.unwrap();
    assert_eq!(sent, records_of(&events, config.topics.partitions));
    let summary = run_until_caught_up(&config).await;
    assert_eq!(summary.records, sent);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let offline = offline_alert_ids(&file, &config);
    assert_eq!(offline.len(), 1, "one alert for the double booking");
    assert_same_alerts(&live_alert_ids(&config).await, &offline);
    let config = config.clone();
    let live = tokio::task::spawn_blocking(move || tools::read_alerts(&config, None, Duration::from_secs(5)).unwrap())
        .await
        .unwrap();
    assert_eq!((live[0].rule_id.as_str(), live[0].provider_id.as_str()), ("staff-double-booking", borrower.as_str()));
}

/// Every record of partition `partition` of the state topic, oldest first.
fn state_log(config: &ServiceConfig, partition: i32) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    state_store::read_state(config, partition, BROKER_PATIENCE).unwrap()
}

/// Writes one record (key, value) to partition `partition` of `topic`.
async fn write_raw(config: &ServiceConfig, topic: &str, partition: i32, key: &[u8], value: &[u8]) {
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    let record = FutureRecord::to(topic).partition(partition).key(key).payload(value);
    producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

/// Runs `tillsyn run` until the group has caught up, then SIGTERM; its
/// metrics just before.
fn run_service_until_caught_up(config: &ServiceConfig, log: PathBuf) -> Metrics {
    // The only member, never killed: 45 s, whatever the test's own members
    // had (the zombie test's fresh instance had 6 s, and a 6.3 s stall of
    // tansu while it restored its partitions expired it in CI; it never got
    // a partition again).
    let mut single = config.clone();
    single.kafka.consumer.insert("session.timeout.ms".into(), "45000".into());
    let mut service = Service::start(&single, log);
    let started = Instant::now();
    while service.get("/readyz").map(|(status, _)| status) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the service was not ready within 120 s: {:?}\n{}",
            service.get("/readyz"),
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for_catch_up(config, &[&service]);
    let metrics = service.metrics();
    service.sigterm();
    let status = service.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", service.log_text());
    metrics
}

/// The state topic's faults are detected, reported and survived, never a
/// crash loop and never a lost or doubled alert:
/// - a record that is not tillsyn's on the state topic is ignored and
///   counted; a damaged entity of a partition's committed checkpoint makes
///   that partition rebuild its state from the inputs (loudly, counted),
///   and the alert topic still holds exactly the alerts of the replay;
/// - a checkpoint that resumes beyond the end of an input log (the topic
///   was recreated) is not used: the partition rebuilds from the new log;
/// - a state topic that is not compacted is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)]
async fn state_topic_faults_are_detected_and_survived() {
    let _serial = serial();
    let config = config("statefaults");
    create_topics(&config).await;
    let events = simulated(&small());
    produce_events(&config, &events, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let offline = offline_alert_ids(&file, &config);
    {
        let config = config.clone();
        let log = dir.path().join("first.log");
        tokio::task::spawn_blocking(move || run_service_until_caught_up(&config, log)).await.unwrap();
    }
    assert_same_alerts(&live_alert_ids(&config).await, &offline);

    // A stranger's record on partition 0; the engine entity of the
    // partition with the most alerts damaged in its committed epoch (both
    // slots).
    write_raw(&config, &config.topics.state, 0, b"not-tillsyn", b"{\"hello\": 1}").await;
    let damage = (0..config.topics.partitions)
        .max_by_key(|p| state_store::read_alert_ids(&config, *p, None, BROKER_PATIENCE).unwrap().0.len())
        .unwrap();
    let log = state_log(&config, damage);
    let (epoch, _) = changelog::recover(damage, log.clone()).manifest.expect("the partition has a checkpoint");
    let damaged: Vec<Vec<u8>> = log
        .iter()
        .filter(|(key, value)| {
            value.is_some()
                && matches!(
                    changelog::StateKey::decode(key),
                    Some(changelog::StateKey::Entity { partition, epoch: e, entity: Entity::Engine, .. })
                        if e == epoch && partition == damage
                )
        })
        .map(|(key, _)| key.clone())
        .collect();
    assert!(!damaged.is_empty(), "the committed epoch has an engine entity");
    for key in &damaged {
        write_raw(&config, &config.topics.state, damage, key, b"\xff\xff\xff\xff").await;
    }
    let metrics = {
        let config = config.clone();
        let log = dir.path().join("second.log");
        tokio::task::spawn_blocking(move || run_service_until_caught_up(&config, log)).await.unwrap()
    };
    assert_eq!(metrics.sum("tillsyn_state_checkpoints_discarded_total", &[("reason", "corrupt")]), 1.0);
    assert!(metrics.sum("tillsyn_state_records_skipped_total", &[]) >= 1.0);
    assert_eq!(metrics.sum("tillsyn_state_checkpoints_discarded_total", &[]), 1.0, "only the damaged partition's");
    assert!(metrics.sum("tillsyn_replayed_alerts_suppressed_total", &[]) > 0.0, "it replayed its alerts");
    assert_same_alerts(&live_alert_ids(&config).await, &offline);

    // The inputs "recreated": new, shorter input topics under the same
    // state and alert topics. Every checkpoint resumes beyond their end.
    let mut recreated = config.clone();
    recreated.topics.time_reports = format!("{}-recreated", config.topics.time_reports);
    recreated.topics.invoices = format!("{}-recreated", config.topics.invoices);
    tools::create_topics(&recreated).await.unwrap();
    produce_events(&recreated, &events[..events.len() / 3], None).await.unwrap();
    let metrics = {
        let config = recreated.clone();
        let log = dir.path().join("third.log");
        tokio::task::spawn_blocking(move || run_service_until_caught_up(&config, log)).await.unwrap()
    };
    assert_eq!(
        metrics.sum("tillsyn_state_checkpoints_discarded_total", &[("reason", "offsets_beyond_log")]),
        config.topics.partitions as f64,
        "every partition's checkpoint is beyond the new logs"
    );
    let live = live_alert_ids(&config).await;
    assert_eq!(live.len(), offline.len(), "nothing produced again: the rebuilt partitions found their alerts");

    // A state topic that is not compacted: refused.
    let mut plain = config.clone();
    plain.topics.state = format!("{}-plain", config.topics.state);
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        config.kafka.producer_config().create().unwrap();
    let topic = rdkafka::admin::NewTopic::new(
        &plain.topics.state,
        config.topics.partitions,
        rdkafka::admin::TopicReplication::Fixed(1),
    );
    admin.create_topics([&topic], &rdkafka::admin::AdminOptions::new()).await.unwrap();
    let mut service = Service::start(&plain, dir.path().join("plain.log"));
    let status = tokio::task::block_in_place(|| service.wait(Duration::from_secs(60)));
    assert!(!status.success());
    assert!(service.log_text().contains("is not compacted"), "{}", service.log_text());
}

/// The manifests of partition `partition` of the state topic, in log
/// order: each one's owner epoch.
fn manifest_epochs(config: &ServiceConfig, partition: i32) -> Vec<changelog::Epoch> {
    state_log(config, partition)
        .iter()
        .filter(|(_, value)| value.is_some())
        .filter_map(|(key, _)| match changelog::StateKey::decode(key) {
            Some(changelog::StateKey::Manifest { epoch, .. }) => Some(epoch),
            _ => None,
        })
        .collect()
}

/// A member stopped (SIGSTOP) longer than its session timeout loses its
/// partitions to the other member, which takes them over under a newer
/// epoch. Resumed (SIGCONT), the stopped member still writes checkpoints
/// for them under its old epoch before it learns it lost them (a zombie).
/// Those are never read: every partition restores from its newest owner,
/// and a fresh instance started afterwards misses no alert and produces
/// none of them again.
#[test]
fn a_stopped_and_resumed_members_checkpoints_are_ignored() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Whether the resumed member writes before it learns it lost its
    // partitions depends on timing: a broker that does not answer at that
    // moment (seen once in CI: 10 s without an answer right at the resume)
    // makes its checkpoints time out instead, and then there is nothing to
    // ignore. The scenario runs again, on topics of its own, until the
    // zombie wrote (at most three times).
    let mut attempts = Vec::new();
    let (config, events, dir, zombie_writes) = loop {
        let attempt = attempts.len();
        let (config, events, dir, zombie_writes, log) = zombie_scenario(&runtime, attempt);
        if zombie_writes > 0 {
            break (config, events, dir, zombie_writes);
        }
        attempts.push(log);
        assert!(
            attempts.len() < 3,
            "the resumed member never wrote under its old epoch in 3 attempts; its last log: {}",
            attempts.last().unwrap()
        );
    };
    // A fresh instance restores each partition from its newest owner and
    // neither misses nor repeats an alert. In a group of its own: tansu
    // 0.6.0 still holds the resumed member's expired session and gives a
    // member that joins the same group meanwhile no partitions (seen here:
    // "no partitions assigned" for 120 s; see the README's Guarantees); the
    // state topic, not the group, is where a partition's state comes from.
    let mut fresh_config = config.clone();
    fresh_config.kafka.group_id = format!("{}-fresh", config.kafka.group_id);
    let fresh = run_service_until_caught_up(&fresh_config, dir.path().join("fresh.log"));
    assert_eq!(fresh.sum("tillsyn_produced_alerts_total", &[]), 0.0, "nothing left to produce");
    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let alerts = runtime.block_on(live_alert_ids(&config));
    let offline = offline_alert_ids(&file, &config);
    assert_eq!(alerts.iter().collect::<BTreeSet<_>>(), offline.iter().collect::<BTreeSet<_>>());
    eprintln!(
        "{zombie_writes} checkpoints written by the resumed member under its old epoch; {} alert records for {} alerts",
        alerts.len(),
        offline.len()
    );
}

/// One run of the zombie scenario of
/// [`a_stopped_and_resumed_members_checkpoints_are_ignored`] on topics of
/// its own: the configuration, the events, the directory of the logs, how
/// many checkpoints the resumed member wrote under its old epoch, and its
/// log.
fn zombie_scenario(
    runtime: &tokio::runtime::Runtime,
    attempt: usize,
) -> (ServiceConfig, Vec<wire::Event>, tempfile::TempDir, usize, String) {
    let mut config = replaceable(sensitive(config(&format!("zombie{attempt}"))), Duration::from_secs(6));
    config.core.pseudonym_secret = "zombie-test-secret".into();
    runtime.block_on(create_topics(&config));
    let events = simulated(&many_alerts());
    let dir = tempfile::tempdir().unwrap();
    let producing = produce_in_background(&config, &events, 1_000.0);
    let metric =
        |s: &Service, name: &str| s.get("/metrics").map(|(_, b)| Metrics::parse(&b).sum(name, &[])).unwrap_or(0.0);
    let start = |name: &str| Service::start(&config, dir.path().join(format!("{name}.log")));
    let signal = |s: &Service, signal: &str| {
        let status = Command::new("kill").args([signal, &s.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    };

    let a = start("a");
    wait_for("a consuming", Duration::from_secs(60), || metric(&a, "tillsyn_consumed_records_total") > 0.0);
    let b = start("b");
    wait_for("a and b sharing the partitions", Duration::from_secs(90), || {
        let (x, y) = (metric(&a, "tillsyn_assigned_partitions"), metric(&b, "tillsyn_assigned_partitions"));
        x > 0.0 && y > 0.0 && x + y == ASSIGNED_TOPIC_PARTITIONS
    });
    std::thread::sleep(Duration::from_secs(3));
    signal(&a, "-STOP");
    wait_for("b to take every partition over", Duration::from_secs(120), || {
        metric(&b, "tillsyn_assigned_partitions") == ASSIGNED_TOPIC_PARTITIONS
            && metric(&b, "tillsyn_state_snapshots_total") > 0.0
    });
    std::thread::sleep(Duration::from_secs(3));
    signal(&a, "-CONT");
    let sent = producing.join().unwrap();
    assert_eq!(sent, records_of(&events, config.topics.partitions));
    wait_for_catch_up(&config, &[&a, &b]);
    let mut live = vec![a, b];
    stop_all(&mut live);

    // The zombie wrote: some partition has a manifest of an older epoch
    // after a manifest of a newer one.
    let zombie_writes: usize = (0..config.topics.partitions)
        .map(|p| {
            let epochs = manifest_epochs(&config, p);
            epochs.iter().enumerate().filter(|(i, e)| epochs[..*i].iter().any(|before| before > e)).count()
        })
        .sum();
    let log = live[0].log_text();
    (config, events, dir, zombie_writes, log)
}

/// A broker that stops answering for longer than the checkpoint budget
/// (its process stopped with SIGSTOP for 4 s, ten times, 0.2 s apart;
/// the budget is 3 s) is a fault, not a failure: the checkpoints that time
/// out are counted and tried again later, in full, the service never
/// exits, and the alert topic holds exactly the replay's alerts, each
/// once. (The session timeout is 60 s here: a stall past it makes the member rejoin,
/// and tansu 0.6.0 gives a member that rejoins while its own expired
/// session is still registered no partitions, as the README says; Kafka
/// gives them back.)
#[test]
fn a_broker_that_stalls_past_the_checkpoint_budget_is_waited_for() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("broker");
    let own = OwnBroker::start(&state);
    let port = own.port;
    let broker_pid = std::fs::read_to_string(state.join("tansu.pid")).unwrap().trim().to_string();
    let signal = |signal: &str| {
        assert!(Command::new("kill").args([signal, &broker_pid]).status().unwrap().success());
    };
    let mut config = sensitive(config("broker-stall"));
    config.kafka.brokers = format!("127.0.0.1:{port}");
    config.kafka.revocation_budget = Duration::from_secs(3);
    config.kafka.consumer.insert("session.timeout.ms".into(), "60000".into());
    config.core.pseudonym_secret = "broker-stall-secret".into();
    runtime.block_on(create_topics(&config));
    let events = simulated(&many_alerts());
    let producing = produce_in_background(&config, &events, 1_500.0);
    let mut service = Service::start(&config, dir.path().join("service.log"));
    wait_for("consuming", Duration::from_secs(60), || {
        service
            .get("/metrics")
            .is_some_and(|(_, b)| Metrics::parse(&b).sum("tillsyn_consumed_records_total", &[]) > 3_000.0)
    });
    // Stalls of 4 s with 0.2 s of service between them: the checkpoints
    // of the six partitions, one after another, take longer than that, so
    // one that starts in a gap is held up past its budget by the next stall.
    for _ in 0..10 {
        signal("-STOP");
        std::thread::sleep(Duration::from_secs(4));
        signal("-CONT");
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = producing.join().unwrap();
    assert_eq!(sent, records_of(&events, config.topics.partitions));
    let waiting = Instant::now();
    while !caught_up(&config) {
        assert!(service.child.try_wait().unwrap().is_none(), "the service exited: {}", service.log_text());
        assert!(
            waiting.elapsed() < Duration::from_secs(240),
            "not caught up after the stall: {:?}\n{}",
            committed_and_ends(&config),
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let failures = service.metrics().sum("tillsyn_state_checkpoint_failures_total", &[]);
    service.sigterm();
    let status = service.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", service.log_text());
    assert!(failures > 0.0, "a checkpoint timed out during the stall: {}", service.log_text());

    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let alerts = runtime.block_on(live_alert_ids(&config));
    assert_same_alerts(&alerts, &offline_alert_ids(&file, &config));
    eprintln!("{failures} checkpoints timed out during the stall; {} alerts, each once", alerts.len());
}

/// The event time of a wire event (seconds).
fn wire_time(e: &wire::Event) -> i64 {
    match &e.kind {
        Some(wire::event::Kind::TimeReport(t)) => t.check_in.as_ref().map_or(0, |t| t.seconds),
        Some(wire::event::Kind::Invoice(i)) => i.issued_at.as_ref().map_or(0, |t| t.seconds),
        Some(wire::event::Kind::Heartbeat(h)) => h.at.as_ref().map_or(0, |t| t.seconds),
        Some(wire::event::Kind::GrantedHours(g)) => g.recorded_at.as_ref().map_or(0, |t| t.seconds),
        Some(wire::event::Kind::ClientAbsence(a)) => a.recorded_at.as_ref().map_or(0, |t| t.seconds),
        Some(wire::event::Kind::ProviderPermit(p)) => p.recorded_at.as_ref().map_or(0, |t| t.seconds),
        None => 0,
    }
}

/// `tillsyn <args>` with `config` as its configuration file.
fn tillsyn(config: &ServiceConfig, dir: &Path, args: &[&str]) -> std::process::Output {
    let file = dir.join("cli.toml");
    std::fs::write(&file, toml::to_string(config).unwrap()).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    let file = file.display().to_string();
    all.extend(["--config", &file]);
    Command::new(env!("CARGO_BIN_EXE_tillsyn")).args(&all).output().unwrap()
}

fn rfc3339(secs: i64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs as u64)).to_string()
}

/// Rule tuning while the service runs, reproducibly: a version of the
/// rules' configuration published with `tillsyn rules set` mid-stream
/// decides from its effective time on, the alerts decided under it carry
/// its number, and a replay with the exported history (`rules export`,
/// `replay --rules`) gives exactly the live alerts. A change that is
/// invalid, or in force at a time the service may already have decided,
/// is refused with its reason and changes nothing.
#[test]
fn a_rules_change_mid_stream_decides_from_its_time_and_replays_the_same() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = config("rules");
    config.topics.rules_seal_ahead = Duration::from_secs(3600);
    runtime.block_on(create_topics(&config));
    let events = simulated(&small());
    // The first part: the events sent before the first one at two thirds
    // of the month of visits.
    let visits = || events.iter().filter(|e| matches!(e.kind, Some(wire::event::Kind::TimeReport(_)))).map(wire_time);
    let (lo, hi) = (visits().min().unwrap(), visits().max().unwrap());
    let cut = events.iter().position(|e| wire_time(e) >= lo + (hi - lo) * 2 / 3).unwrap();
    runtime.block_on(produce_events(&config, &events[..cut], None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(&config, dir.path().join("run.log"));
    wait_for_catch_up(&config, &[&service]);
    wait_for("the service to be ready", Duration::from_secs(60), || {
        service.get("/readyz").is_some_and(|(status, _)| status == 200)
    });

    // The service sealed the rules topic as far as it decided.
    let (lines, history, _) = tools::read_rules(&config).unwrap();
    let sealed = history.sealed_through().expect("the service sealed the rules topic").0;
    assert!(lines.iter().all(|l| l.kind == "seal"), "{lines:?}");
    let first_max = events[..cut].iter().map(wire_time).max().unwrap();
    assert!(sealed >= first_max, "sealed through {sealed}, the first part reaches {first_max}");

    // Refused: an invalid value, and a time already sealed.
    let from = rfc3339(sealed + 86_400);
    let invalid = tillsyn(
        &config,
        dir.path(),
        &["rules", "set", "--from", &from, "--set", "check_in_away_from_home.max_distance_m=-5"],
    );
    assert!(!invalid.status.success());
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("max_distance_m"), "{invalid:?}");
    let early = rfc3339(sealed - 3_600);
    let late = tillsyn(
        &config,
        dir.path(),
        &["rules", "set", "--from", &early, "--set", "check_in_away_from_home.max_distance_m=30"],
    );
    assert!(!late.status.success());
    assert!(String::from_utf8_lossy(&late.stderr).contains("not after"), "{late:?}");

    // Refused by the service too: a change written to the topic without
    // `rules set`'s check (another tool), with a value out of range. It is
    // counted, and takes no version number.
    let mut bad = config.core.rules.clone();
    bad.check_in_away_from_home.max_distance_m = -5.0;
    let entry = tillsyn_core::rules::history::RulesEntry::Change {
        version: 1,
        effective_from: tillsyn_core::model::EventTime(sealed + 86_400),
        rules_json: serde_json::to_string(&bad).unwrap(),
    };
    let producer: rdkafka::producer::FutureProducer = config.kafka.producer_config().create().unwrap();
    runtime
        .block_on(tillsyn::service::run::produce::rules_record(&producer, &config, "raw", &entry.encode("a raw write")))
        .unwrap();
    wait_for("the service to refuse the raw change", Duration::from_secs(30), || {
        service.metrics().sum("tillsyn_rules_changes_total", &[("outcome", "rejected")]) == 1.0
    });

    // Accepted: far stricter limits for check-ins away from home.
    let set = tillsyn(
        &config,
        dir.path(),
        &[
            "rules",
            "set",
            "--from",
            &from,
            "--set",
            "check_in_away_from_home.max_distance_m=30",
            "--set",
            "check_in_away_from_home.high_distance_m=60",
            "--note",
            "broker test: stricter check-in limits",
        ],
    );
    assert!(set.status.success(), "{set:?}");
    assert!(String::from_utf8_lossy(&set.stdout).contains("version 1 accepted"), "{set:?}");

    runtime.block_on(produce_events(&config, &events[cut..], None)).unwrap();
    wait_for_catch_up(&config, &[&service]);
    std::thread::sleep(Duration::from_secs(2));
    let m = service.metrics();
    assert_eq!(m.sum("tillsyn_rules_version", &[]), 1.0);
    assert_eq!(m.sum("tillsyn_rules_changes_total", &[("outcome", "accepted")]), 1.0);
    assert_eq!(m.sum("tillsyn_rules_changes_total", &[("outcome", "rejected")]), 1.0, "the raw write only");
    service.sigterm();
    assert!(service.wait(Duration::from_secs(60)).success(), "{}", service.log_text());
    let log = service.log_text();

    // The live alerts: some decided under version 1, none before its time.
    let live: Vec<wire::Alert> = tools::read_alerts(&config, None, Duration::from_secs(5)).unwrap();
    let from_secs = sealed + 86_400;
    let under_1: Vec<&wire::Alert> = live.iter().filter(|a| a.configuration_version == 1).collect();
    assert!(
        !under_1.is_empty(),
        "the stricter limits found something; {} live alerts; the service's rules lines:\n{}",
        live.len(),
        log.lines().filter(|l| l.contains("rules")).collect::<Vec<_>>().join("\n")
    );
    assert!(under_1.iter().all(|a| a.detected_at.as_ref().is_some_and(|t| t.seconds >= from_secs)));

    // The replay with the exported history gives exactly the live alerts;
    // without it, others.
    let history = dir.path().join("rules.ndjson");
    let export = tillsyn(&config, dir.path(), &["rules", "export", "--out", &history.display().to_string()]);
    assert!(export.status.success(), "{export:?}");
    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let versions = tillsyn::replay::rules_history(&history, &config.core.rules).unwrap();
    assert_eq!(versions.len(), 1, "the raw change is refused in replay too");
    let replayed = dir.path().join("replayed.ndjson");
    tillsyn::replay::replay_with_rules(&file, &replayed, None, config.core.clone(), false, 1, &versions).unwrap();
    let mut reader = tillsyn_core::codec::MessageReader::open(&replayed).unwrap();
    let mut offline = Vec::new();
    while let Some(a) = reader.next_message::<wire::Alert>().unwrap() {
        offline.push(a.alert_id);
    }
    assert_same_alerts(&live.iter().map(|a| a.alert_id.clone()).collect::<Vec<_>>(), &offline);
    let mut without = offline_alert_ids(&file, &config);
    without.sort();
    offline.sort();
    assert_ne!(without, offline, "the change made a difference");
}

/// `tillsyn evidence --alert ID` against the topics: for live alerts of a
/// simulated scenario, every evidence id is found on the input topics and
/// printed with its topic, partition and offset; without the flag no
/// client, staff or household reference appears anywhere in the output or
/// the log, only the service's keys; with `--reveal-personal-references`
/// they do, and the log has an audit line naming the alert and the choice
/// (and no reference). The records are written with the timestamps a
/// source adapter gives them (when each was reported or issued), so the
/// scan starts at the alert's episode, not at the partition's start.
#[test]
fn evidence_finds_every_record_behind_a_live_alert() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = config("evidence");
    // Records written in January 2026: kept, whatever their age.
    config.topics.input_retention = tillsyn::service::config::Retention::Forever;
    runtime.block_on(create_topics(&config));
    let events = simulated(&small());
    runtime.block_on(produce_written_when_reported(&config, &events));
    runtime.block_on(run_until_caught_up(&config));
    let alerts = tools::read_alerts(&config, None, Duration::from_secs(5)).unwrap();

    let id_of = |e: &wire::Event| match &e.kind {
        Some(wire::event::Kind::TimeReport(t)) => Some((t.event_id.clone(), "time_report")),
        Some(wire::event::Kind::Invoice(i)) => Some((i.invoice_id.clone(), "invoice")),
        _ => None,
    };
    let kinds: BTreeMap<String, &str> = events.iter().filter_map(id_of).collect();
    // An alert with time reports as evidence, of the episode that started
    // last, and one with an invoice.
    let mut episode_start: BTreeMap<&str, i64> = BTreeMap::new();
    for a in &alerts {
        let start = a.window_start.as_ref().map_or(0, |t| t.seconds);
        let first = episode_start.entry(a.episode_id.as_str()).or_insert(start);
        *first = (*first).min(start);
    }
    let visits = alerts
        .iter()
        .filter(|a| a.evidence_event_ids.len() >= 2)
        .filter(|a| a.evidence_event_ids.iter().all(|id| kinds.get(id) == Some(&"time_report")))
        .max_by_key(|a| episode_start[a.episode_id.as_str()])
        .expect("an alert with time reports as evidence");
    let invoice = alerts.iter().find(|a| a.evidence_event_ids.iter().any(|id| kinds.get(id) == Some(&"invoice")));
    let dir = tempfile::tempdir().unwrap();
    for alert in std::iter::once(visits).chain(invoice) {
        let ids: BTreeSet<&str> = alert.evidence_event_ids.iter().map(String::as_str).collect();
        let mut refs = BTreeSet::new();
        for e in &events {
            match &e.kind {
                Some(wire::event::Kind::TimeReport(t)) if ids.contains(t.event_id.as_str()) => {
                    refs.extend([t.client_ref.clone(), t.staff_ref.clone()]);
                    refs.extend(t.household_ref.clone().filter(|h| !h.is_empty()));
                }
                Some(wire::event::Kind::Invoice(i)) if ids.contains(i.invoice_id.as_str()) => {
                    refs.extend(i.lines.iter().map(|l| l.client_ref.clone()));
                }
                _ => {}
            }
        }
        assert!(!refs.is_empty());

        let output = tillsyn(&config, dir.path(), &["evidence", "--alert", &alert.alert_id, "--json"]);
        let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{stdout}\n{stderr}");
        let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["alert"]["alertId"], alert.alert_id.as_str());
        let home = tillsyn_core::partition::partition_for_key(alert.provider_id.as_bytes(), config.topics.partitions);
        let mut found = BTreeSet::new();
        for l in lines.iter().filter(|l| l["kind"] == "evidence") {
            let id = l["event_id"].as_str().unwrap();
            found.insert(id.to_string());
            let topic = l["position"]["topic"].as_str().unwrap();
            let expected = match kinds[id] {
                "invoice" => &config.topics.invoices,
                _ => &config.topics.time_reports,
            };
            assert_eq!(topic, expected, "{l}");
            assert!(l["position"]["offset"].as_i64().is_some() && l["position"]["written"].is_string(), "{l}");
            // The alert's provider's records are in its partition; a staff
            // rule may name another provider's visit.
            let provider = l["time_report"]["provider_id"].as_str().or(l["invoice"]["provider_id"].as_str());
            if provider == Some(alert.provider_id.as_str()) {
                assert_eq!(l["position"]["partition"], home, "{l}");
            }
        }
        assert_eq!(found, ids.iter().map(|s| s.to_string()).collect(), "every evidence id found:\n{stdout}");
        let scanned = lines.last().unwrap();
        assert_eq!(scanned["kind"], "scanned");
        assert_eq!(scanned["not_found"], 0);
        assert_eq!(scanned["ranges"][0]["partition"], home, "the provider's partition first: {scanned}");
        if alert.alert_id == visits.alert_id {
            let ranges = scanned["ranges"].as_array().unwrap();
            let visits_range = ranges.iter().find(|r| r["source"] == config.topics.time_reports.as_str()).unwrap();
            let from = visits_range["from_offset"].as_i64().unwrap();
            assert!(from > 0, "the scan starts at the records written for the alert's episode: {scanned}");
        }
        for r in &refs {
            assert!(!stdout.contains(r.as_str()) && !stderr.contains(r.as_str()), "{r} shown without the flag");
        }
        assert!(stderr.contains(&alert.alert_id) && stderr.contains("pseudonymous"), "the audit line: {stderr}");

        // The text a person reads, once in the test's log.
        let text = tillsyn(&config, dir.path(), &["evidence", "--alert", &alert.alert_id]);
        let text_out = String::from_utf8_lossy(&text.stdout);
        assert!(text.status.success() && text_out.contains("read:"), "{text:?}");
        for r in &refs {
            assert!(!text_out.contains(r.as_str()), "{r} shown without the flag");
        }
        eprintln!("$ tillsyn evidence --alert {}\n{text_out}", alert.alert_id);

        let revealed =
            tillsyn(&config, dir.path(), &["evidence", "--alert", &alert.alert_id, "--reveal-personal-references"]);
        let (stdout, stderr) = (String::from_utf8_lossy(&revealed.stdout), String::from_utf8_lossy(&revealed.stderr));
        assert!(revealed.status.success(), "{stderr}");
        for r in &refs {
            assert!(stdout.contains(r.as_str()), "{r} revealed on request");
            assert!(!stderr.contains(r.as_str()), "{r} not in the log");
        }
        let audit: Vec<&str> = stderr.lines().filter(|l| l.contains("tillsyn::audit")).collect();
        assert_eq!(audit.len(), 1, "{stderr}");
        assert!(audit[0].contains(&alert.alert_id) && audit[0].contains("revealed"), "{stderr}");
    }

    // An alert that is not on the topic: an error naming it.
    let missing = tillsyn(&config, dir.path(), &["evidence", "--alert", "no-such-alert"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no alert \"no-such-alert\""), "{missing:?}");
}

/// Produces `events` as a source adapter writes them: each record with the
/// timestamp of when it was reported (a time report's `reported_at`), issued
/// (an invoice) or sent (a heartbeat, to every partition), keyed by
/// provider id, protobuf with its `content-type`.
async fn produce_written_when_reported(config: &ServiceConfig, events: &[wire::Event]) {
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    let mut deliveries = Vec::new();
    for e in events {
        let written = match &e.kind {
            Some(wire::event::Kind::TimeReport(t)) => t.reported_at.as_ref(),
            Some(wire::event::Kind::Invoice(i)) => i.issued_at.as_ref(),
            Some(wire::event::Kind::Heartbeat(h)) => h.at.as_ref(),
            Some(wire::event::Kind::GrantedHours(g)) => g.recorded_at.as_ref(),
            Some(wire::event::Kind::ClientAbsence(a)) => a.recorded_at.as_ref(),
            Some(wire::event::Kind::ProviderPermit(p)) => p.recorded_at.as_ref(),
            None => None,
        }
        .map_or(0, |t| t.seconds * 1000);
        for line in KafkaRecordLine::event(e, Format::Protobuf).unwrap() {
            let topic = config.topics.input_topic(line.input);
            let headers =
                OwnedHeaders::new().insert(Header { key: "content-type", value: line.content_type.as_deref() });
            let targets: Vec<Option<i32>> =
                if line.broadcast { (0..config.topics.partitions).map(Some).collect() } else { vec![None] };
            for partition in targets {
                let record = FutureRecord::to(topic).payload(&line.value).headers(headers.clone()).timestamp(written);
                let record = match partition {
                    Some(p) => record.partition(p),
                    None => record.key(&line.key),
                };
                deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
            }
        }
    }
    for delivery in deliveries {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

#[path = "reference.rs"]
mod reference;
