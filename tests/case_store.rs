//! `tillsyn sink postgres` against a real broker and a real PostgreSQL:
//! killed again and again while alerts flow, and with the database stopped
//! and started, the case store ends with every alert of the topic exactly
//! once and every episode in its last alert's state.
//!
//! Needs a broker on 127.0.0.1 (`TILLSYN_TEST_BROKERS`, default
//! 127.0.0.1:9092) and the local PostgreSQL of `deploy/local/postgres.sh`
//! (`TILLSYN_TEST_POSTGRES`, default its URL without the password, and
//! `TILLSYN_PG_PASSWORD`, default its password): `scripts/test.sh` starts
//! both. Behind the `kafka-integration-tests` feature, as the broker tests.
#![cfg(feature = "kafka-integration-tests")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
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
const SESSION_WAIT: Duration = Duration::from_millis(6_500);

/// One test at a time: one of them stops the database.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn postgres_url() -> String {
    std::env::var("TILLSYN_TEST_POSTGRES").unwrap_or_else(|_| "postgres://tillsyn@127.0.0.1:55432/tillsyn".into())
}

fn postgres_password() -> String {
    std::env::var("TILLSYN_PG_PASSWORD").unwrap_or_else(|_| "tillsyn-local".into())
}

/// A configuration with topics, a sink group and a database schema of this
/// test's own.
fn config(name: &str) -> ServiceConfig {
    let suffix = format!("{name}-{}", std::process::id());
    let mut c = ServiceConfig::default();
    c.kafka.brokers = std::env::var("TILLSYN_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    c.kafka.group_id = format!("test-{suffix}");
    c.kafka.statistics_interval = Duration::from_secs(1);
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
    let schema = format!("case_store_{}", suffix.replace('-', "_"));
    c.sink.postgres.url = format!("{}?options=-csearch_path%3D{schema}", postgres_url());
    c.sink.postgres.password = postgres_password();
    c.sink.postgres.group_id = format!("test-sink-{suffix}");
    c.sink.postgres.batch_records = 50;
    c.sink.postgres.batch_linger = Duration::from_millis(50);
    c.sink.postgres.retry_max = Duration::from_secs(1);
    c
}

/// A client of the database (its own schema on the search path), the
/// schema created if missing.
fn database(config: &ServiceConfig) -> postgres_client::Client {
    postgres_client::Client::connect(config)
}

/// A blocking wrapper around tokio-postgres for the test's own queries.
mod postgres_client {
    use tillsyn::service::config::ServiceConfig;

    pub struct Client {
        runtime: tokio::runtime::Runtime,
        client: tokio_postgres::Client,
    }

    impl Client {
        pub fn connect(config: &ServiceConfig) -> Client {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let connection = config.sink.postgres.connection().unwrap();
            let client = runtime.block_on(async {
                let (client, connection) =
                    connection.connect(tokio_postgres::NoTls).await.expect("the test database answers");
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            });
            let c = Client { runtime, client };
            let schema = c.query_one_string("SELECT current_setting('search_path')");
            c.execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
            c
        }

        pub fn execute(&self, sql: &str) {
            self.runtime.block_on(self.client.batch_execute(sql)).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }

        pub fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
            self.runtime.block_on(self.client.query(sql, &[])).unwrap_or_else(|e| panic!("{sql}: {e}"))
        }

        pub fn query_one_string(&self, sql: &str) -> String {
            self.rows(sql)[0].get(0)
        }
    }
}

/// Synthetic alerts as the service writes them: `providers` providers, each
/// with episodes of one to three alerts (opened, escalated, resolved) in
/// revision order, keyed by provider id. About one record in 50 is no alert
/// (another writer's), which the sink must skip without stopping.
fn alert_records(providers: usize, episodes_per_provider: usize) -> Vec<(String, Vec<u8>)> {
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
fn produce(config: &ServiceConfig, records: &[(String, Vec<u8>)], rate: f64) {
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
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The alert topic as the sink must end up with it: every alert (id,
/// partition, offset) and every record's count per partition.
struct Topic {
    alerts: Vec<(wire::Alert, i32, i64)>,
    ends: BTreeMap<i32, i64>,
}

fn read_topic(config: &ServiceConfig) -> Topic {
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

/// A `tillsyn sink postgres` process with its HTTP port; killed when dropped.
struct Sink {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Sink {
    fn start(config: &ServiceConfig, log: PathBuf) -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let file = log.with_extension("toml");
        let mut c = config.clone();
        c.http.listen = format!("127.0.0.1:{port}");
        c.log.format = tillsyn::service::config::LogFormat::Json;
        // The password through the environment, as in production.
        let password = std::mem::take(&mut c.sink.postgres.password);
        std::fs::write(&file, toml::to_string(&c).unwrap()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tillsyn"))
            .args(["sink", "postgres", "--config"])
            .arg(&file)
            .env("TILLSYN_SINK__POSTGRES__PASSWORD", password)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Sink { child, port, log }
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

    /// The value of an unlabelled or summed metric family.
    fn metric(&self, name: &str, labels: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .reduce(|a, b| a + b)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the sink did not stop: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Stored positions equal the topic's ends.
fn caught_up(db: &postgres_client::Client, config: &ServiceConfig, ends: &BTreeMap<i32, i64>) -> bool {
    let rows = db.rows(&format!(
        "SELECT kafka_partition, next_offset FROM sink_positions WHERE consumer_group = '{}'",
        config.sink.postgres.group_id
    ));
    let stored: BTreeMap<i32, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    ends.iter().all(|(p, end)| *end == 0 || stored.get(p) == Some(end))
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool, log: impl Fn() -> String) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}\n{}", log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The case store holds every alert of the topic exactly once, at its
/// partition and offset, and every episode is its last alert's.
fn assert_case_store_matches(db: &postgres_client::Client, topic: &Topic) {
    let rows = db.rows("SELECT alert_id, kafka_partition, kafka_offset, status, revision FROM alerts");
    let stored: BTreeMap<String, (i32, i64)> =
        rows.iter().map(|r| (r.get::<_, String>(0), (r.get::<_, i32>(1), r.get::<_, i64>(2)))).collect();
    assert_eq!(rows.len(), stored.len());
    let on_topic: BTreeMap<String, (i32, i64)> =
        topic.alerts.iter().map(|(a, p, o)| (a.alert_id.clone(), (*p, *o))).collect();
    assert_eq!(on_topic.len(), topic.alerts.len(), "the topic has each alert once");
    let missing: Vec<&String> = on_topic.keys().filter(|id| !stored.contains_key(*id)).collect();
    let extra: Vec<&String> = stored.keys().filter(|id| !on_topic.contains_key(*id)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    assert_eq!(stored, on_topic, "each alert row names its record on the topic");

    // Episodes: the last alert's status and severity, the count, the times.
    let mut last: BTreeMap<&str, &wire::Alert> = BTreeMap::new();
    let mut counts: BTreeMap<&str, i32> = BTreeMap::new();
    for (a, _, _) in &topic.alerts {
        *counts.entry(&a.episode_id).or_default() += 1;
        let entry = last.entry(&a.episode_id).or_insert(a);
        if a.revision > entry.revision {
            *entry = a;
        }
    }
    let episodes =
        db.rows("SELECT episode_id, status, severity_rank, last_revision, last_alert_id, alert_count FROM episodes");
    assert_eq!(episodes.len(), last.len(), "one row per episode");
    for row in &episodes {
        let id: String = row.get(0);
        let a = last.get(id.as_str()).unwrap_or_else(|| panic!("episode {id} is not on the topic"));
        let status = wire::AlertStatus::try_from(a.status)
            .unwrap()
            .as_str_name()
            .trim_start_matches("ALERT_STATUS_")
            .to_lowercase();
        assert_eq!(row.get::<_, String>(1), status, "episode {id}'s status");
        assert_eq!(i32::from(row.get::<_, i16>(2)), a.severity, "episode {id}'s severity rank (1 low .. 4 critical)");
        assert_eq!(row.get::<_, i32>(3), a.revision as i32, "episode {id}'s revision");
        assert_eq!(row.get::<_, String>(4), a.alert_id, "episode {id}'s last alert");
        assert_eq!(row.get::<_, i32>(5), counts[id.as_str()], "episode {id}'s alert count");
    }
}

/// SIGKILL the sink again and again while alerts arrive, restarting it
/// each time: the case store ends with exactly the alerts of the topic.
#[test]
fn killed_and_restarted_repeatedly_the_case_store_has_every_alert_once() {
    let _serial = serial();
    let config = config("sink-kill");
    tokio::runtime::Runtime::new().unwrap().block_on(tools::create_topics(&config)).unwrap();
    let db = database(&config);
    let records = alert_records(30, 40);
    let dir = tempfile::tempdir().unwrap();

    // About 2,500 records over about 25 s.
    let producing = {
        let (config, records) = (config.clone(), records.clone());
        std::thread::spawn(move || produce(&config, &records, 100.0))
    };
    let lifetimes_ms = [1_500, 3_500, 2_000, 4_000, 1_000];
    let mut kills = 0;
    let mut round = 0;
    while !producing.is_finished() {
        let mut sink = Sink::start(&config, dir.path().join(format!("sink-{round}.log")));
        std::thread::sleep(Duration::from_millis(lifetimes_ms[round % lifetimes_ms.len()]));
        sink.kill();
        kills += 1;
        round += 1;
        std::thread::sleep(SESSION_WAIT);
    }
    producing.join().unwrap();
    assert!(kills >= 3, "killed {kills} times");

    let topic = read_topic(&config);
    let mut sink = Sink::start(&config, dir.path().join("sink-last.log"));
    wait_for(
        "the sink to store every record",
        Duration::from_secs(120),
        || caught_up(&db, &config, &topic.ends),
        || sink.log_text(),
    );
    wait_for(
        "the sink to be ready",
        Duration::from_secs(30),
        || sink.get("/readyz").is_some_and(|(s, _)| s == 200),
        || sink.log_text(),
    );
    let not_alerts = sink.metric("tillsyn_sink_records_total", "outcome=\"not_an_alert\"").unwrap();
    assert!(sink.stop().success(), "{}", sink.log_text());
    assert_case_store_matches(&db, &topic);
    let junk = records.len() - topic.alerts.len();
    assert!(junk > 0, "the scenario has records that are no alert");
    // The last instance skipped at most the junk records after the last
    // stored position of its predecessors, and counted each.
    assert!(not_alerts <= junk as f64, "{not_alerts} of {junk}");
}

/// The database stops while alerts arrive: the sink reports not ready,
/// loses nothing, and stores everything once the database is back.
#[test]
fn the_database_down_and_back_loses_nothing() {
    let _serial = serial();
    let config = config("sink-db-down");
    tokio::runtime::Runtime::new().unwrap().block_on(tools::create_topics(&config)).unwrap();
    let db = database(&config);
    drop(db);
    let records = alert_records(20, 20);
    let (first, second) = records.split_at(records.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let mut sink = Sink::start(&config, dir.path().join("sink.log"));
    produce(&config, first, 1_000.0);
    let ends = read_topic(&config).ends;
    let db = database(&config);
    wait_for("the first half stored", Duration::from_secs(60), || caught_up(&db, &config, &ends), || sink.log_text());
    drop(db);

    let script = repo().join("deploy/local/postgres.sh");
    let status = Command::new(&script).arg("stop").status().unwrap();
    assert!(status.success());
    let restart = || {
        let status = Command::new(&script).arg("start").status().unwrap();
        assert!(status.success());
    };
    // Whatever happens next, the database is started again for the others.
    struct Restart<F: Fn()>(F);
    impl<F: Fn()> Drop for Restart<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let guard = Restart(restart);
    produce(&config, second, 1_000.0);
    wait_for(
        "the sink to report not ready",
        Duration::from_secs(30),
        || sink.get("/readyz").is_some_and(|(s, _)| s == 503),
        || sink.log_text(),
    );
    assert_eq!(sink.metric("tillsyn_sink_database_up", "").unwrap(), 0.0);
    std::thread::sleep(Duration::from_secs(3));
    assert!(sink.child.try_wait().unwrap().is_none(), "the sink waits, it does not exit: {}", sink.log_text());
    drop(guard);

    let topic = read_topic(&config);
    let db = database(&config);
    wait_for(
        "everything stored after the database is back",
        Duration::from_secs(90),
        || caught_up(&db, &config, &topic.ends),
        || sink.log_text(),
    );
    wait_for(
        "ready again",
        Duration::from_secs(30),
        || sink.get("/readyz").is_some_and(|(s, _)| s == 200),
        || sink.log_text(),
    );
    assert_eq!(sink.metric("tillsyn_sink_database_up", "").unwrap(), 1.0);
    assert!(sink.stop().success(), "{}", sink.log_text());
    assert_case_store_matches(&db, &topic);
}
