//! The case officer's view's reading side against a real PostgreSQL: the
//! case store filled by the sink's own transaction (`store::write`), then
//! read as `tillsyn cases` reads it (the list's order and filters, the
//! filters' choices, an episode and its history); a batch committed
//! while the view listens reaches it as a change; its session cannot
//! write; its connection cut, it connects again, tells the pages to
//! re-read and hears the next batch. The pages over these
//! rows, in a real browser, are tests/ops/case_view/run.sh.
//!
//! Needs the local PostgreSQL of `deploy/local/postgres.sh`
//! (`TILLSYN_TEST_POSTGRES`, default its URL without the password, and
//! `TILLSYN_PG_PASSWORD`, default its password), which `scripts/test.sh`
//! starts; behind the `kafka-integration-tests` feature with the other
//! tests of external services.
#![cfg(feature = "kafka-integration-tests")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tillsyn::cases::live::{self, Change, Connection};
use tillsyn::cases::store::{self, Filter};
use tillsyn::sink::postgres::plan::{AlertRow, Plan, Read};
use tillsyn::sink::postgres::store as sink_store;
use tillsyn::telemetry::Health;
use tillsyn_core::proto::v1 as wire;

fn connection(schema: &str) -> tokio_postgres::Config {
    let url =
        std::env::var("TILLSYN_TEST_POSTGRES").unwrap_or_else(|_| "postgres://tillsyn@127.0.0.1:55432/tillsyn".into());
    let mut config: tokio_postgres::Config =
        format!("{url}?options=-csearch_path%3D{schema}").parse().expect("a connection URL");
    config.password(std::env::var("TILLSYN_PG_PASSWORD").unwrap_or_else(|_| "tillsyn-local".into()));
    config
}

/// An alert of episode `episode` at `revision`, detected `day` days into 2026.
fn alert(
    episode: &str,
    revision: u32,
    status: wire::AlertStatus,
    severity: wire::Severity,
    rule: &str,
    municipality: &str,
    day: i64,
) -> wire::Alert {
    let at = |d: i64| Some(pbjson_types::Timestamp { seconds: 1_767_225_600 + d * 86_400, nanos: 0 });
    wire::Alert {
        alert_id: format!("{episode}-r{revision}"),
        episode_id: episode.into(),
        rule_id: rule.into(),
        rule_version: 1,
        pattern: 1,
        severity: severity as i32,
        score: 2.0,
        provider_id: "556087-4561".into(),
        municipality_code: municipality.into(),
        window_start: at(day - 30),
        window_end: at(day),
        observed: Some(wire::Measure { value: 412.5, unit: "hours".into() }),
        expected: Some(wire::Measure { value: 320.0, unit: "hours".into() }),
        explanation: format!("alert {revision} of {episode}"),
        explanations: [("sv", "larm"), ("en", "alert")]
            .into_iter()
            .map(|(language, word)| (language.to_string(), format!("{word} {revision} of {episode}")))
            .collect(),
        evidence_event_ids: vec![format!("inv-{episode}-{revision}")],
        status: status as i32,
        detected_at: at(day),
        revision,
        configuration_version: revision,
    }
}

/// Writes `alerts` in one transaction of the sink, as records of
/// partition 0 from `offset` on.
async fn write(client: &mut tokio_postgres::Client, alerts: &[wire::Alert], offset: i64) {
    let batch: Vec<Read> = alerts
        .iter()
        .enumerate()
        .map(|(i, a)| Read {
            partition: 0,
            offset: offset + i as i64,
            alert: AlertRow::new(a, Some(SystemTime::now())),
        })
        .collect();
    let position = if offset == 0 { None } else { Some(offset) };
    let plan = Plan::new(&batch, &BTreeMap::from([(0, position)]));
    let written = sink_store::write(client, "case-view-test", "alerts", &plan).await.expect("the batch is written");
    assert!(matches!(written, sink_store::Written::Committed { .. }), "{written:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_reads_what_the_sink_wrote_and_hears_new_batches() {
    use wire::AlertStatus::{Escalated, Opened, Resolved};
    use wire::Severity::{Critical, High, Low, Medium};
    let schema = format!("case_view_test_{}", std::process::id());
    let config = connection(&schema);
    let mut client = sink_store::connect(&config).await.expect("the test database answers");
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")).await.unwrap();
    sink_store::migrate(&mut client).await.unwrap();

    let alerts = [
        alert("a", 0, Opened, High, "invoiced-above-performed", "2480", 33),
        alert("a", 1, Escalated, Critical, "invoiced-above-performed", "2480", 61),
        alert("b", 0, Opened, Critical, "staff-double-booking", "0180", 40),
        alert("c", 0, Opened, High, "phantom-clients", "2480", 19),
        alert("d", 0, Opened, Medium, "rounded-visits", "0180", 14),
        alert("e", 0, Opened, Low, "phantom-clients", "1480", 9),
        alert("f", 0, Opened, Critical, "duplicate-billing", "2480", 4),
        alert("f", 1, Resolved, Low, "duplicate-billing", "2480", 24),
    ];
    write(&mut client, &alerts, 0).await;

    // The view's own connection: listening, read-only.
    let view = Arc::new(Connection::default());
    let (changes, mut heard) = tokio::sync::broadcast::channel(16);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let health = Health::new();
    let keeper = tokio::spawn(live::keep_connected(config.clone(), view.clone(), changes, health.clone(), stopped));
    let started = std::time::Instant::now();
    let reader = loop {
        if let Some(c) = view.client() {
            break c;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the view did not connect: {:?}", health.readiness());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(health.is_ready());

    let ids = |open: &store::OpenEpisodes| open.episodes.iter().map(|e| e.episode_id.clone()).collect::<Vec<_>>();
    let all = store::open_episodes(&reader, &Filter::default(), 100).await.unwrap();
    assert_eq!(ids(&all), ["a", "b", "c", "d", "e"], "critical first, then by first detection; f is resolved");
    assert_eq!(all.total, 5);
    assert_eq!(all.episodes[0].status, "escalated");
    assert_eq!(all.episodes[0].first_detected_at, UNIX_EPOCH + Duration::from_secs(1_767_225_600 + 33 * 86_400));
    let first_two = store::open_episodes(&reader, &Filter::default(), 2).await.unwrap();
    assert_eq!((ids(&first_two), first_two.total), (vec!["a".to_string(), "b".into()], 5), "limited, total told");
    let umea = store::open_episodes(&reader, &Filter::new(Some("2480"), None), 100).await.unwrap();
    assert_eq!(ids(&umea), ["a", "c"]);
    let phantom = store::open_episodes(&reader, &Filter::new(None, Some("phantom-clients")), 100).await.unwrap();
    assert_eq!(ids(&phantom), ["c", "e"]);
    let both = store::open_episodes(&reader, &Filter::new(Some("0180"), Some("phantom-clients")), 100).await.unwrap();
    assert!(both.episodes.is_empty() && both.total == 0);

    let choices = store::choices(&reader).await.unwrap();
    assert_eq!(choices.municipalities, ["0180", "1480", "2480"]);
    assert_eq!(
        choices.rules,
        ["invoiced-above-performed", "phantom-clients", "rounded-visits", "staff-double-booking"]
    );

    let a = store::episode(&reader, "a").await.unwrap().expect("episode a");
    assert_eq!((a.summary.alert_count, a.explanation.as_str()), (2, "alert 1 of a"));
    assert_eq!(a.evidence_event_ids, ["inv-a-1"]);
    assert_eq!(a.explanations, serde_json::json!({"sv": "larm 1 of a", "en": "alert 1 of a"}), "both languages");
    assert_eq!(a.summary.observed, Some(store::Measure { value: 412.5, unit: "hours".into() }));
    let history = store::history(&reader, "a").await.unwrap();
    let revisions: Vec<(i32, &str, &str, i32)> =
        history.iter().map(|h| (h.revision, h.status.as_str(), h.severity.as_str(), h.configuration_version)).collect();
    assert_eq!(revisions, [(0, "opened", "high", 0), (1, "escalated", "critical", 1)]);
    assert!(store::episode(&reader, "nope").await.unwrap().is_none());

    // The view's session cannot write.
    let refused = reader.execute("DELETE FROM alerts", &[]).await.unwrap_err();
    assert_eq!(refused.code(), Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION), "{refused:?}");

    // A batch committed by the sink is heard: its number of new alerts.
    write(&mut client, &[alert("g", 0, Opened, Critical, "volume-explosion", "2480", 2)], alerts.len() as i64).await;
    // (The channel is the database's: a sink of another schema in the same
    // database, another test's, is heard too.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let change = tokio::time::timeout_at(deadline, heard.recv()).await.expect("the change in time").unwrap();
        if change == Change::Stored(1) {
            break;
        }
    }
    let all = store::open_episodes(&reader, &Filter::default(), 100).await.unwrap();
    assert_eq!(ids(&all), ["g", "a", "b", "c", "d", "e"]);

    // The view's connection is cut: it reports not ready, connects again,
    // tells the pages to re-read, and hears the next batch.
    let backend: i32 = reader.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    client.execute("SELECT pg_terminate_backend($1)", &[&backend]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let change = tokio::time::timeout_at(deadline, heard.recv()).await.expect("a resync in time").unwrap();
        if change == Change::Resync {
            break;
        }
    }
    assert!(reader.is_closed(), "the old connection is gone");
    let reader = view.client().expect("connected again");
    assert!(health.is_ready());
    let again: i32 = reader.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_ne!(again, backend);
    write(&mut client, &[alert("h", 0, Opened, Low, "volume-explosion", "2480", 3)], alerts.len() as i64 + 1).await;
    loop {
        let change = tokio::time::timeout_at(deadline, heard.recv()).await.expect("the change in time").unwrap();
        if change == Change::Stored(1) {
            break;
        }
    }

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), keeper).await.expect("the keeper stops").unwrap();
    assert!(view.client().is_none(), "disconnected at shutdown");
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}
