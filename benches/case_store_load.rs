//! The case store under load: N synthetic alerts on the alert topic (3
//! partitions), then `tillsyn sink postgres` started and timed until it has
//! stored them all (throughput, alerts/s into PostgreSQL); then alerts
//! produced at a steady rate while the sink runs, and the time from each
//! record on the topic to the commit of its row, p50 and p99, read from the
//! sink's own histogram (`tillsyn_sink_alert_to_row_seconds`).
//!
//! Needs the broker and the local PostgreSQL (`deploy/local/broker.sh
//! start`, `deploy/local/postgres.sh start`):
//! `cargo bench --bench case_store_load --features kafka-integration-tests`
//! (`TILLSYN_BENCH_ALERTS`, default 20,000).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tillsyn::service::config::ServiceConfig;
use tillsyn::service::tools;

#[path = "../tests/support/alert_topic.rs"]
mod alert_topic;
use alert_topic::{Process, alert_records, produce, read_topic};

fn stored(config: &ServiceConfig) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) =
            config.sink.postgres.connection().unwrap().connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT coalesce(sum(next_offset), 0)::int8 FROM sink_positions WHERE consumer_group = $1",
                &[&config.sink.postgres.group_id],
            )
            .await;
        row.map(|r| r.get::<_, i64>(0)).unwrap_or(0)
    })
}

/// The upper bound of the bucket where the cumulative count reaches `q`.
fn quantile(buckets: &BTreeMap<u64, f64>, count: f64, q: f64) -> f64 {
    buckets.iter().find(|(_, c)| **c >= q * count).map_or(f64::INFINITY, |(le, _)| *le as f64 / 1e6)
}

fn main() {
    let n: usize = std::env::var("TILLSYN_BENCH_ALERTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let mut config = alert_topic::config("bench-sink");
    let url =
        std::env::var("TILLSYN_TEST_POSTGRES").unwrap_or_else(|_| "postgres://tillsyn@127.0.0.1:55432/tillsyn".into());
    let schema = format!("bench_{}", std::process::id());
    config.sink.postgres.url = format!("{url}?options=-csearch_path%3D{schema}");
    config.sink.postgres.password = std::env::var("TILLSYN_PG_PASSWORD").unwrap_or_else(|_| "tillsyn-local".into());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(tools::create_topics(&config)).unwrap();
    runtime.block_on(async {
        let (client, connection) =
            config.sink.postgres.connection().unwrap().connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    });

    // About n records: 2 alerts an episode on average, one junk in 50.
    let providers = 50;
    let records = alert_records(providers, n.div_ceil(2 * providers));
    produce(&config, &records, 1e9);
    let on_topic: i64 = read_topic(&config).ends.values().sum();
    let dir = tempfile::tempdir().unwrap();
    let env = [("TILLSYN_SINK__POSTGRES__PASSWORD", config.sink.postgres.password.clone())];
    let started = Instant::now();
    let mut sink = Process::start(&["sink", "postgres"], &config, &env, dir.path().join("sink.log"));
    while stored(&config) < on_topic {
        assert!(started.elapsed() < Duration::from_secs(600), "not stored in 10 min: {}", sink.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "catch-up: {on_topic} alert records into PostgreSQL in {seconds:.1} s (process start, schema migration and \
         group join included): {:.0} records/s",
        on_topic as f64 / seconds
    );

    // Latency at a steady rate (the histogram counts from the sink's start:
    // the catch-up's records are subtracted).
    let scrape = |sink: &Process| -> (BTreeMap<u64, f64>, f64) {
        let (_, body) = sink.get("/metrics").expect("the sink's metrics");
        let mut buckets = BTreeMap::new();
        let mut count = 0.0;
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("tillsyn_sink_alert_to_row_seconds_bucket{le=\"") {
                let (le, value) = rest.split_once("\"} ").unwrap();
                let le = if le == "+Inf" { u64::MAX } else { (le.parse::<f64>().unwrap() * 1e6) as u64 };
                buckets.insert(le, value.parse::<f64>().unwrap());
            } else if let Some(v) = line.strip_prefix("tillsyn_sink_alert_to_row_seconds_count ") {
                count = v.parse().unwrap();
            }
        }
        (buckets, count)
    };
    let (before, before_count) = scrape(&sink);
    let steady = alert_records(providers, 10);
    let rate = 200.0;
    produce(&config, &steady, rate);
    let total: i64 = read_topic(&config).ends.values().sum();
    while stored(&config) < total {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (after, after_count) = scrape(&sink);
    let buckets: BTreeMap<u64, f64> =
        after.iter().map(|(le, c)| (*le, c - before.get(le).copied().unwrap_or(0.0))).collect();
    let count = after_count - before_count;
    println!(
        "steady: {count} alerts at {rate} records/s: topic to committed row p50 <= {} s, p99 <= {} s (histogram \
         bucket bounds)",
        quantile(&buckets, count, 0.5),
        quantile(&buckets, count, 0.99)
    );
    assert!(sink.stop().success(), "{}", sink.log_text());
}
