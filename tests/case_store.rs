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
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use tillsyn::service::config::ServiceConfig;
use tillsyn::service::tools;
use tillsyn_core::proto::v1 as wire;

#[path = "support/alert_topic.rs"]
mod alert_topic;
use alert_topic::{Process, SESSION_WAIT, Topic, alert_records, produce, read_topic, wait_for};

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

/// The shared configuration with a database schema of this test's own.
fn config(name: &str) -> ServiceConfig {
    let mut c = alert_topic::config(name);
    let schema = format!("case_store_{}", c.sink.postgres.group_id.replace('-', "_"));
    c.sink.postgres.url = format!("{}?options=-csearch_path%3D{schema}", postgres_url());
    c.sink.postgres.password = postgres_password();
    c.sink.postgres.batch_records = 50;
    c.sink.postgres.batch_linger = Duration::from_millis(50);
    c.sink.postgres.retry_max = Duration::from_secs(1);
    c
}

/// `tillsyn sink postgres`, its password through the environment.
fn start_sink(config: &ServiceConfig, log: PathBuf) -> Process {
    let env = [("TILLSYN_SINK__POSTGRES__PASSWORD", config.sink.postgres.password.clone())];
    Process::start(&["sink", "postgres"], config, &env, log)
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

/// Stored positions equal the topic's ends.
fn caught_up(db: &postgres_client::Client, config: &ServiceConfig, ends: &BTreeMap<i32, i64>) -> bool {
    let rows = db.rows(&format!(
        "SELECT kafka_partition, next_offset FROM sink_positions WHERE consumer_group = '{}'",
        config.sink.postgres.group_id
    ));
    let stored: BTreeMap<i32, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    ends.iter().all(|(p, end)| *end == 0 || stored.get(p) == Some(end))
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
    let texts = db.rows("SELECT alert_id, explanations->>'sv', explanations->>'en' FROM alerts");
    let by_id: BTreeMap<&str, &wire::Alert> = topic.alerts.iter().map(|(a, _, _)| (a.alert_id.as_str(), a)).collect();
    for row in &texts {
        let a = by_id[row.get::<_, &str>(0)];
        assert_eq!(row.get::<_, Option<&str>>(1), a.explanations.get("sv").map(String::as_str), "Swedish");
        assert_eq!(row.get::<_, Option<&str>>(2), a.explanations.get("en").map(String::as_str), "English");
    }

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
        let mut sink = start_sink(&config, dir.path().join(format!("sink-{round}.log")));
        std::thread::sleep(Duration::from_millis(lifetimes_ms[round % lifetimes_ms.len()]));
        sink.kill();
        kills += 1;
        round += 1;
        std::thread::sleep(SESSION_WAIT);
    }
    producing.join().unwrap();
    assert!(kills >= 3, "killed {kills} times");

    let topic = read_topic(&config);
    let mut sink = start_sink(&config, dir.path().join("sink-last.log"));
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
    let mut sink = start_sink(&config, dir.path().join("sink.log"));
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

/// A database whose schema is newer than the binary (a migration it does
/// not know) is refused at start, not written to.
#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let _serial = serial();
    let config = config("sink-newer-schema");
    tokio::runtime::Runtime::new().unwrap().block_on(tools::create_topics(&config)).unwrap();
    let db = database(&config);
    // What refinery records of an applied migration, for a version 999.
    db.execute(
        "CREATE TABLE refinery_schema_history (version int4 PRIMARY KEY, name varchar(255), applied_on \
         varchar(255), checksum varchar(255)); INSERT INTO refinery_schema_history VALUES \
         (999, 'from_the_future', '2026-11-30T00:00:00Z', '1')",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut sink = start_sink(&config, dir.path().join("sink.log"));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = sink.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the sink did not stop: {}", sink.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let log = sink.log_text();
    assert!(log.contains("does not fit this build") && log.contains("999"), "{log}");
    let tables = db.rows("SELECT count(*) FROM information_schema.tables WHERE table_name = 'alerts' AND table_schema = current_schema()");
    assert_eq!(tables[0].get::<_, i64>(0), 0, "nothing was migrated");
}
