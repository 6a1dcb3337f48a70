//! `tillsyn notify` against a real broker and a local HTTP receiver that
//! fails now and then: each qualifying alert arrives once, including across
//! a restart of the notifier, and nothing else arrives.
//!
//! Needs a broker on 127.0.0.1 (`TILLSYN_TEST_BROKERS`, default
//! 127.0.0.1:9092); behind the `kafka-integration-tests` feature, as the
//! broker tests. The receiver is an HTTP server in this process.
#![cfg(feature = "kafka-integration-tests")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use prost::Message as _;
use tillsyn::service::config::{NotifyFormat, NotifySeverity, ServiceConfig};
use tillsyn::service::tools;
use tillsyn_core::proto::v1 as wire;

#[path = "support/alert_topic.rs"]
mod alert_topic;
use alert_topic::{Process, alert_records, produce, wait_for};

/// What the receiver got: each post's alert-id header and body, and how
/// many requests it failed on purpose.
#[derive(Default)]
struct Received {
    posts: Vec<(String, serde_json::Value)>,
    requests: usize,
}

/// A webhook that answers 503 to its 2nd and 3rd requests and 429 (with
/// `Retry-After: 1`) to its 6th, 204 otherwise.
async fn receive(State(received): State<Arc<Mutex<Received>>>, headers: HeaderMap, body: String) -> impl IntoResponse {
    let mut r = received.lock().unwrap();
    r.requests += 1;
    match r.requests {
        2 | 3 => return (StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new()),
        6 => {
            let mut h = HeaderMap::new();
            h.insert("retry-after", "1".parse().unwrap());
            return (StatusCode::TOO_MANY_REQUESTS, h);
        }
        _ => {}
    }
    let id = headers.get("x-tillsyn-alert-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    r.posts.push((id, serde_json::from_str(&body).unwrap_or_default()));
    (StatusCode::NO_CONTENT, HeaderMap::new())
}

/// Serves the receiver on a thread of its own; returns its URL.
fn start_receiver(received: Arc<Mutex<Received>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/secret-token-123", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route("/hooks/{token}", axum::routing::post(receive)).with_state(received);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    url
}

fn start_notifier(config: &ServiceConfig, url: &str, log: std::path::PathBuf) -> Process {
    Process::start(&["notify"], config, &[("TILLSYN_NOTIFY__WEBHOOK_URL", url.to_string())], log)
}

/// The alert ids of `records` that must be posted: opened or escalated,
/// high or critical.
fn qualifying(records: &[(String, Vec<u8>)]) -> Vec<String> {
    records
        .iter()
        .filter_map(|(_, v)| wire::Alert::decode(v.as_slice()).ok())
        .filter(|a| {
            let status = wire::AlertStatus::try_from(a.status).unwrap();
            matches!(status, wire::AlertStatus::Opened | wire::AlertStatus::Escalated)
                && a.severity >= wire::Severity::High as i32
        })
        .map(|a| a.alert_id)
        .collect()
}

#[test]
fn each_qualifying_alert_is_posted_once_across_a_restart() {
    let mut config = alert_topic::config("notify");
    config.notify.format = NotifyFormat::Slack;
    config.notify.min_severity = NotifySeverity::High;
    config.notify.max_per_minute = 600;
    config.notify.retry_max = Duration::from_secs(2);
    tokio::runtime::Runtime::new().unwrap().block_on(tools::create_topics(&config)).unwrap();
    let received = Arc::new(Mutex::new(Received::default()));
    let url = start_receiver(received.clone());
    let dir = tempfile::tempdir().unwrap();

    let records = alert_records(6, 6);
    let (first, second) = records.split_at(records.len() / 2);
    let (want_first, want_all) = (qualifying(first), qualifying(&records));
    assert!(!want_first.is_empty() && want_all.len() > want_first.len(), "both halves have alerts to post");
    assert!(want_all.len() < records.len(), "and alerts that are not posted");

    produce(&config, first, 500.0);
    let mut notifier = start_notifier(&config, &url, dir.path().join("notify-1.log"));
    let got = |r: &Arc<Mutex<Received>>| r.lock().unwrap().posts.len();
    wait_for(
        "the first half posted",
        Duration::from_secs(90),
        || got(&received) >= want_first.len(),
        || notifier.log_text(),
    );
    assert!(notifier.stop().success(), "{}", notifier.log_text());
    let log = notifier.log_text();
    assert!(!log.contains("secret-token-123"), "the webhook's URL is a secret: {log}");

    produce(&config, second, 500.0);
    let mut notifier = start_notifier(&config, &url, dir.path().join("notify-2.log"));
    wait_for("everything posted", Duration::from_secs(90), || got(&received) >= want_all.len(), || notifier.log_text());
    // Nothing more comes (a duplicate would arrive within this time).
    std::thread::sleep(Duration::from_secs(3));
    let failed = notifier.metric("tillsyn_notify_failed_attempts_total", "").unwrap_or(0.0);
    assert!(notifier.stop().success(), "{}", notifier.log_text());

    let r = received.lock().unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, body) in &r.posts {
        *counts.entry(id.as_str()).or_default() += 1;
        let text = body["text"].as_str().unwrap_or_default();
        assert!(text.contains(id.as_str()) && text.contains("utförare P-"), "a Slack text naming the alert: {body}");
        assert!(!text.contains("inv-") && !text.contains("tr-"), "no evidence ids in a message: {text}");
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "posted more than once: {duplicates:?}");
    let posted: Vec<&str> = counts.keys().copied().collect();
    let mut want: Vec<&str> = want_all.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(posted, want, "exactly the qualifying alerts");
    assert!(r.requests > r.posts.len(), "the receiver failed some requests");
    // The second notifier saw at most the 429 (the 503s were the first's).
    assert!(failed <= 1.0, "{failed}");
}

#[test]
fn a_digest_gathers_the_alerts_into_one_post() {
    let mut config = alert_topic::config("notify-digest");
    config.notify.format = NotifyFormat::Teams;
    config.notify.min_severity = NotifySeverity::Medium;
    config.notify.digest_every = Duration::from_secs(4);
    config.notify.digest_at = "00:00".into();
    tokio::runtime::Runtime::new().unwrap().block_on(tools::create_topics(&config)).unwrap();
    let received = Arc::new(Mutex::new(Received { requests: 100, ..Received::default() }));
    let url = start_receiver(received.clone());
    let dir = tempfile::tempdir().unwrap();
    let records = alert_records(4, 3);
    let want: Vec<String> = records
        .iter()
        .filter_map(|(_, v)| wire::Alert::decode(v.as_slice()).ok())
        .filter(|a| a.status != wire::AlertStatus::Resolved as i32 && a.severity >= wire::Severity::Medium as i32)
        .map(|a| a.alert_id)
        .collect();
    produce(&config, &records, 1_000.0);
    let mut notifier = start_notifier(&config, &url, dir.path().join("notify.log"));
    let got = |r: &Arc<Mutex<Received>>| r.lock().unwrap().posts.len();
    wait_for("a digest", Duration::from_secs(60), || got(&received) >= 1, || notifier.log_text());
    std::thread::sleep(Duration::from_secs(5));
    assert!(notifier.stop().success(), "{}", notifier.log_text());
    let r = received.lock().unwrap();
    assert_eq!(r.posts.len(), 1, "one digest (the next one had nothing new)");
    let card = &r.posts[0].1["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    let lines: Vec<&str> = card["body"].as_array().unwrap().iter().map(|b| b["text"].as_str().unwrap()).collect();
    assert_eq!(lines.len(), want.len() + 1, "a heading and a line per alert: {lines:?}");
    for id in &want {
        assert_eq!(lines.iter().filter(|l| l.contains(id.as_str())).count(), 1, "{id} once in {lines:?}");
    }
}
