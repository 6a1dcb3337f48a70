//! Shared by the tests of the alert topic's consumers (`tests/case_store.rs`,
//! `tests/notify.rs`): synthetic alerts on a real broker, and the consumer
//! run as a process of the built binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use tillsyn::service::config::ServiceConfig;
use tillsyn::service::tools;
use tillsyn_core::proto::v1 as wire;

/// How long the next instance waits after a kill: past the killed
/// member's session (6 s). tansu 0.6.0 checks sessions only when a member
/// calls, and a member joining while a dead one's session runs was seen to
/// get an empty assignment, again and again (the README's Guarantees
/// section); Kafka evicts the dead member and rebalances by itself.
pub const SESSION_WAIT: Duration = Duration::from_millis(6_500);

/// A configuration with topics and consumer groups of this test's own
/// (`name` and the process id), 3 partitions, on the test broker.
pub fn config(name: &str) -> ServiceConfig {
    let suffix = format!("{name}-{}", std::process::id());
    let mut c = ServiceConfig::default();
    c.kafka.brokers = std::env::var("TILLSYN_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    c.kafka.group_id = format!("test-{suffix}");
    c.kafka.statistics_interval = Duration::from_secs(1);
    // tansu under load in CI has once answered no request for over 30 s
    // (the default first-contact deadline).
    c.kafka.connect_timeout = Duration::from_secs(120);
    // A killed member's session ends 6 s after its last heartbeat (see
    // SESSION_WAIT).
    c.kafka.consumer.insert("session.timeout.ms".into(), "6000".into());
    let t = &mut c.topics;
    for topic in
        [&mut t.time_reports, &mut t.invoices, &mut t.alerts, &mut t.dead_letter, &mut t.late_events, &mut t.state]
    {
        *topic = topic.replace("tillsyn.", &format!("test.{suffix}."));
    }
    t.internal_prefix = format!("test.{suffix}.");
    t.partitions = 3;
    c.sink.postgres.group_id = format!("test-sink-{suffix}");
    c.notify.group_id = format!("test-notify-{suffix}");
    c
}

/// Synthetic alerts as the service writes them: `providers` providers, each
/// with episodes of one to three alerts (opened, escalated, resolved) in
/// revision order, keyed by provider id. About one record in 50 is no alert
/// (another writer's), which the sink must skip without stopping.
pub fn alert_records(providers: usize, episodes_per_provider: usize) -> Vec<(String, Vec<u8>)> {
    let mut records = Vec::new();
    let mut n = 0u64;
    for e in 0..episodes_per_provider {
        for p in 0..providers {
            let provider = format!("P-{p:03}");
            let episode = format!("ep-{p}-{e}");
            let alerts = 1 + (p + e) % 3;
            for revision in 0..alerts {
                n += 1;
                let status = match revision {
                    0 => wire::AlertStatus::Opened,
                    r if r + 1 == alerts && alerts == 3 => wire::AlertStatus::Resolved,
                    _ => wire::AlertStatus::Escalated,
                };
                let alert = wire::Alert {
                    alert_id: format!("{episode}-r{revision}"),
                    episode_id: episode.clone(),
                    rule_id: ["invoiced-above-performed", "phantom-clients", "staff-double-booking"][p % 3].into(),
                    rule_version: 1,
                    pattern: 1 + (p % 3) as u32,
                    severity: 2 + (revision as i32).min(2),
                    score: 1.5 + revision as f64,
                    provider_id: provider.clone(),
                    municipality_code: ["2480", "0181"][p % 2].into(),
                    window_start: Some(pbjson_types::Timestamp {
                        seconds: 1_767_225_600 + e as i64 * 86_400,
                        nanos: 0,
                    }),
                    window_end: Some(pbjson_types::Timestamp { seconds: 1_769_817_600 + e as i64 * 86_400, nanos: 0 }),
                    observed: Some(wire::Measure { value: 120.0 + n as f64, unit: "hours".into() }),
                    expected: Some(wire::Measure { value: 100.0, unit: "hours".into() }),
                    explanation: format!("alert {n} of a synthetic episode"),
                    explanations: [
                        ("en".to_string(), format!("alert {n} of a synthetic episode")),
                        ("sv".to_string(), format!("larm {n} i en syntetisk episod")),
                    ]
                    .into(),
                    evidence_event_ids: vec![format!("inv-{n}"), format!("tr-{n}")],
                    status: status as i32,
                    detected_at: Some(pbjson_types::Timestamp {
                        seconds: 1_769_817_600 + (e * 10 + revision) as i64 * 3_600,
                        nanos: 0,
                    }),
                    revision: revision as u32,
                    configuration_version: 0,
                };
                records.push((provider.clone(), alert.encode_to_vec()));
            }
            if (p + e) % 50 == 7 {
                records.push((provider, b"not an alert".to_vec()));
            }
        }
    }
    records
}

/// Produces `records` to the alert topic at about `rate` per second.
pub fn produce(config: &ServiceConfig, records: &[(String, Vec<u8>)], rate: f64) {
    let producer: ThreadedProducer<DefaultProducerContext> = config.kafka.producer_config().create().unwrap();
    let started = Instant::now();
    for (i, (key, value)) in records.iter().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut record = BaseRecord::to(&config.topics.alerts).key(key.as_str()).payload(value.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    // A broker stall (tansu under load has paused for over 30 s) delays
    // delivery; only records still undelivered after two minutes fail the run.
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Err(e) = producer.flush(Duration::from_secs(10)) {
        assert!(Instant::now() < deadline, "the alert topic did not take every record within two minutes: {e}");
    }
}

/// The alert topic as the sink must end up with it: every alert (id,
/// partition, offset) and every record's count per partition.
pub struct Topic {
    pub alerts: Vec<(wire::Alert, i32, i64)>,
    pub ends: BTreeMap<i32, i64>,
}

pub fn read_topic(config: &ServiceConfig) -> Topic {
    let consumer: BaseConsumer = config.kafka.consumer_config().create().unwrap();
    let mut list = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..config.topics.partitions {
        let (_, high) =
            tillsyn::service::broker::watermarks(consumer.client(), &config.topics.alerts, p, Duration::from_secs(10))
                .unwrap();
        ends.insert(p, high);
        list.add_partition_offset(&config.topics.alerts, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&list).unwrap();
    let total: i64 = ends.values().sum();
    let mut alerts = Vec::new();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < total {
        assert!(Instant::now() < deadline, "read {read} of {total} records of the alert topic");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            read += 1;
            if let Some(alert) = tools::decode_alert(m.payload().unwrap_or_default(), m.headers()) {
                alerts.push((alert, m.partition(), m.offset()));
            }
        }
    }
    Topic { alerts, ends }
}

/// A `tillsyn <args>` process (a consumer of the alert topic) with its
/// HTTP port; killed when dropped.
pub struct Process {
    pub child: Child,
    port: u16,
    log: PathBuf,
}

impl Process {
    /// Starts `tillsyn <args> --config <file>`, the file written from
    /// `config` but for its secrets, which go in `env` as in production.
    pub fn start(args: &[&str], config: &ServiceConfig, env: &[(&str, String)], log: PathBuf) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let file = log.with_extension("toml");
        let mut c = config.clone();
        c.http.listen = format!("127.0.0.1:{port}");
        c.log.format = tillsyn::service::config::LogFormat::Json;
        c.sink.postgres.password.clear();
        c.notify.webhook_url.clear();
        std::fs::write(&file, toml::to_string(&c).unwrap()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tillsyn"))
            .args(args)
            .arg("--config")
            .arg(&file)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Process { child, port, log }
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
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

    /// The value of an unlabelled or summed metric family.
    pub fn metric(&self, name: &str, labels: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .reduce(|a, b| a + b)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stop(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the process did not stop: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `done`, at most `limit`; the failure shows `log()`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool, log: impl Fn() -> String) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}\n{}", log());
        std::thread::sleep(Duration::from_millis(200));
    }
}
