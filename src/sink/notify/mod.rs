//! `tillsyn notify`: OPENED and ESCALATED alerts at or above a severity,
//! posted to the fraud unit's chat channel through an incoming webhook
//! (Slack, Mattermost, Microsoft Teams, or plain JSON), one post per alert
//! or a digest every `notify.digest_every`.
//!
//! A consumer group of its own reads the alert topic in order. An alert is
//! posted, and only then is its offset committed (synchronously), so a
//! restart goes on after the last alert posted: each qualifying alert is
//! posted once across restarts. A crash between a post and its commit (a
//! few milliseconds) posts that alert again on restart; every post carries
//! the alert id in `Idempotency-Key` and `X-Tillsyn-Alert-Id` for receivers
//! that deduplicate. A post that fails (network, 5xx, 429) is tried again
//! with a doubling wait up to `notify.retry_max` (a 429's `Retry-After` is
//! honoured), for as long as it takes: nothing is dropped; meanwhile the
//! partitions are paused (the member stays in its group) and `/readyz`
//! answers 503. A post the receiver refuses for good (another 4xx) is
//! counted, logged and skipped. At most `notify.max_per_minute` posts a
//! minute; more wait.

pub mod message;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::service::config::{NotifyConfig, ServiceConfig};
use crate::service::tools::decode_alert;
use crate::telemetry::events::{ConsumerLag, NotifyOutcome};
use crate::telemetry::{Health, Loop};
use tillsyn_core::proto::v1 as wire;

/// The first wait after a failed post.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Records read ahead of the one being posted before the partitions are
/// paused.
const READ_AHEAD: usize = 1_000;
/// Alert ids remembered as posted (a duplicate on the topic is posted once).
const REMEMBERED: usize = 100_000;
/// How long a digest that is due waits for the notifier to read the alert
/// topic through the end it had at the digest's time (after a start, the
/// group's join and the first fetches), before it goes with what was read.
const DIGEST_CATCH_UP: Duration = Duration::from_secs(60);

/// What `tillsyn notify` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NotifySummary {
    /// Records read.
    pub records: u64,
    /// Posts accepted by the receiver (alerts, or digests).
    pub posts: u64,
    /// Alerts in those posts.
    pub alerts_posted: u64,
    /// Attempts that failed and were tried again.
    pub failed_attempts: u64,
}

enum Assignment {
    Revoked(Vec<i32>),
}

struct NotifyContext {
    rebalances: mpsc::UnboundedSender<Assignment>,
}

impl ClientContext for NotifyContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, reason, "librdkafka");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        for lag in ConsumerLag::from_statistics(&statistics) {
            lag.emit();
        }
    }
}

impl ConsumerContext for NotifyContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = list.elements().iter().map(|e| e.partition()).collect();
            let _ = self.rebalances.send(Assignment::Revoked(partitions));
        }
    }
}

/// A record read, waiting its turn.
struct Queued {
    partition: i32,
    offset: i64,
    alert: Option<wire::Alert>,
}

/// At most `per_minute` posts in any minute.
struct RateLimit {
    per_minute: usize,
    sent: VecDeque<Instant>,
}

impl RateLimit {
    /// When the next post may go.
    fn next_free(&mut self, now: Instant) -> Instant {
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            self.sent.pop_front();
        }
        if self.sent.len() < self.per_minute { now } else { self.sent[0] + Duration::from_secs(60) }
    }
}

/// Why a post did not go through.
enum PostError {
    /// Worth trying again, after at least this long.
    Transient(String, Option<Duration>),
    /// The receiver refuses it for good.
    Refused(String),
}

/// Runs the notifier until `shutdown` completes.
pub async fn run(
    config: ServiceConfig,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<NotifySummary> {
    let notify = config.notify.clone();
    anyhow::ensure!(!notify.webhook_url.is_empty(), "notify.webhook_url is not set (TILLSYN_NOTIFY__WEBHOOK_URL_FILE)");
    let anchor = notify.digest_anchor().map_err(|e| anyhow::anyhow!(e))?;
    let http = reqwest::Client::builder().timeout(notify.timeout).build().context("building the HTTP client")?;
    let topic = config.topics.alerts.clone();
    crate::service::broker::probe_async(&config).await?;
    NotifyOutcome::register_counters();
    health.set_stuck_after(config.http.stuck_after);

    let (rebalances_tx, mut rebalances) = mpsc::unbounded_channel();
    let mut client_config = config.kafka.consumer_config();
    client_config.set("group.id", &notify.group_id);
    let consumer: StreamConsumer<NotifyContext> = client_config
        .create_with_context(NotifyContext { rebalances: rebalances_tx })
        .context("creating the notifier's consumer")?;
    consumer.subscribe(&[&topic]).context("subscribing to the alert topic")?;
    let digest = !notify.digest_every.is_zero();
    info!(group = notify.group_id.as_str(), topic = topic.as_str(), digest, "notifier consuming");

    let mut queue: VecDeque<Queued> = VecDeque::new();
    // Digest mode: the qualifying alerts gathered, and the next offset of
    // every partition read into the digest.
    let mut gathered: Vec<(i32, wire::Alert)> = Vec::new();
    let mut read_through: BTreeMap<i32, i64> = BTreeMap::new();
    let mut next_digest = next_digest_after(SystemTime::now(), anchor, notify.digest_every);
    // The digest due: since when, and the end offsets it reads through.
    let mut due: Option<(Instant, Option<BTreeMap<i32, i64>>)> = None;
    let mut posted: HashSet<String> = HashSet::new();
    let mut rate = RateLimit { per_minute: notify.max_per_minute as usize, sent: VecDeque::new() };
    let mut retry_wait = RETRY_FIRST;
    let mut not_before = Instant::now();
    let mut paused = false;
    let mut summary = NotifySummary::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    health.set_ready(true);
    tokio::pin!(shutdown);

    loop {
        health.beat(Loop::Processing);
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(Assignment::Revoked(list)) = rebalances.recv() => {
                info!(partitions = ?list, "alert partitions revoked");
                queue.retain(|q| !list.contains(&q.partition));
                gathered.retain(|(p, _)| !list.contains(p));
                read_through.retain(|p, _| !list.contains(p));
                if let Some((_, ends)) = &mut due {
                    *ends = None;
                }
                paused = false;
            }
            message = consumer.recv() => match message {
                Ok(m) => {
                    summary.records += 1;
                    let alert = decode_alert(m.payload().unwrap_or_default(), m.headers());
                    queue.push_back(Queued { partition: m.partition(), offset: m.offset(), alert });
                }
                Err(e) => warn!(error = %e, "reading the alert topic"),
            },
            _ = ticker.tick() => {},
        }
        // Read ahead a bounded amount.
        if queue.len() >= READ_AHEAD && !paused {
            paused = set_paused(&consumer, true);
        } else if queue.len() < READ_AHEAD / 10 && paused {
            paused = !set_paused(&consumer, false);
        }

        if digest {
            while let Some(q) = queue.pop_front() {
                let is_alert = q.alert.is_some();
                if let Some(alert) = q.alert.filter(|a| message::qualifies(a, notify.min_severity)) {
                    if posted.insert(alert.alert_id.clone()) {
                        gathered.push((q.partition, alert));
                    }
                } else if !is_alert {
                    warn!(
                        partition = q.partition,
                        offset = q.offset,
                        "a record of the alert topic is no alert; skipped"
                    );
                }
                read_through.insert(q.partition, q.offset + 1);
            }
            if SystemTime::now() >= next_digest && Instant::now() >= not_before {
                // A digest covers what the topic held at its time.
                let (since, ends) = due.get_or_insert_with(|| (Instant::now(), None));
                if ends.is_none() {
                    *ends = end_offsets(&consumer, &topic);
                }
                let read = ends.as_ref().is_some_and(|ends| read_through_ends(ends, &read_through));
                if !read {
                    if since.elapsed() < DIGEST_CATCH_UP {
                        continue;
                    }
                    warn!(
                        waited_s = DIGEST_CATCH_UP.as_secs(),
                        "the notifier has not read the alert topic through its end; the digest goes with what was read"
                    );
                }
                due = None;
                if gathered.is_empty() {
                    commit(&consumer, &topic, &read_through);
                    next_digest = next_digest_after(SystemTime::now(), anchor, notify.digest_every);
                    continue;
                }
                let alerts: Vec<wire::Alert> = gathered.iter().map(|(_, a)| a.clone()).collect();
                let text = message::digest_text(&alerts, notify.language);
                let body = message::body(notify.format, &text, &alerts);
                let key = format!("digest-{}-{}", alerts[0].alert_id, alerts.len());
                match post(&http, &notify, &body, &key).await {
                    Ok(()) => {
                        NotifyOutcome::Sent.emit(alerts.len() as u64);
                        summary.posts += 1;
                        summary.alerts_posted += alerts.len() as u64;
                        commit(&consumer, &topic, &read_through);
                        gathered.clear();
                        next_digest = next_digest_after(SystemTime::now(), anchor, notify.digest_every);
                        retry_wait = RETRY_FIRST;
                        health.set_ready(true);
                    }
                    Err(e) => {
                        if let Some(refused) =
                            handle_failure(e, &mut summary, &mut not_before, &mut retry_wait, &notify, &health)
                        {
                            error!(
                                error = refused.as_str(),
                                alerts = alerts.len(),
                                "the receiver refused the digest; skipped"
                            );
                            commit(&consumer, &topic, &read_through);
                            gathered.clear();
                            next_digest = next_digest_after(SystemTime::now(), anchor, notify.digest_every);
                        }
                    }
                }
            }
            continue;
        }

        // One post per alert, in order.
        while let Some(front) = queue.front() {
            let qualifying = front.alert.as_ref().filter(|a| message::qualifies(a, notify.min_severity));
            let Some(alert) = qualifying.filter(|a| !posted.contains(&a.alert_id)) else {
                if front.alert.is_none() {
                    warn!(
                        partition = front.partition,
                        offset = front.offset,
                        "a record of the alert topic is no alert; skipped"
                    );
                }
                NotifyOutcome::Skipped.emit(1);
                let q = queue.pop_front().expect("a front");
                commit(&consumer, &topic, &BTreeMap::from([(q.partition, q.offset + 1)]));
                continue;
            };
            let now = Instant::now();
            let free = rate.next_free(now).max(not_before);
            if free > now {
                break;
            }
            let text = message::text(alert, notify.language);
            let body = message::body(notify.format, &text, std::slice::from_ref(alert));
            match post(&http, &notify, &body, &alert.alert_id).await {
                Ok(()) => {
                    rate.sent.push_back(Instant::now());
                    NotifyOutcome::Sent.emit(1);
                    summary.posts += 1;
                    summary.alerts_posted += 1;
                    if posted.len() >= REMEMBERED {
                        posted.clear();
                    }
                    posted.insert(alert.alert_id.clone());
                    let q = queue.pop_front().expect("a front");
                    commit(&consumer, &topic, &BTreeMap::from([(q.partition, q.offset + 1)]));
                    retry_wait = RETRY_FIRST;
                    health.set_ready(true);
                }
                Err(e) => {
                    if let Some(refused) =
                        handle_failure(e, &mut summary, &mut not_before, &mut retry_wait, &notify, &health)
                    {
                        error!(
                            error = refused.as_str(),
                            alert_id = alert.alert_id.as_str(),
                            "the receiver refused the post; skipped"
                        );
                        let q = queue.pop_front().expect("a front");
                        commit(&consumer, &topic, &BTreeMap::from([(q.partition, q.offset + 1)]));
                    }
                    break;
                }
            }
        }
    }

    health.set_not_ready("shutting down");
    health.unwatch(Loop::Processing);
    consumer.unsubscribe();
    info!(records = summary.records, posts = summary.posts, alerts = summary.alerts_posted, "notifier stopped");
    Ok(summary)
}

/// A failed post: when to try again, or, when the receiver refuses it for
/// good, why (the caller skips it).
fn handle_failure(
    e: PostError,
    summary: &mut NotifySummary,
    not_before: &mut Instant,
    retry_wait: &mut Duration,
    notify: &NotifyConfig,
    health: &Health,
) -> Option<String> {
    match e {
        PostError::Transient(why, after) => {
            summary.failed_attempts += 1;
            NotifyOutcome::FailedAttempt.emit(1);
            let wait = after.unwrap_or(*retry_wait).min(notify.retry_max.max(after.unwrap_or_default()));
            warn!(error = why.as_str(), retry_in = ?wait, "posting to the webhook failed; trying again");
            *not_before = Instant::now() + wait;
            *retry_wait = (*retry_wait * 2).min(notify.retry_max);
            health.set_not_ready("the webhook fails");
            None
        }
        PostError::Refused(why) => {
            NotifyOutcome::Refused.emit(1);
            Some(why)
        }
    }
}

/// Posts `body`; `key` goes in the idempotency headers.
async fn post(
    http: &reqwest::Client,
    notify: &NotifyConfig,
    body: &serde_json::Value,
    key: &str,
) -> Result<(), PostError> {
    let response = http
        .post(&notify.webhook_url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .header("X-Tillsyn-Alert-Id", key)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| PostError::Transient(without_url(e), None))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
        Err(PostError::Transient(format!("HTTP {status}"), retry_after))
    } else {
        Err(PostError::Refused(format!("HTTP {status}")))
    }
}

/// An HTTP client error without the URL (it carries the webhook's token).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

/// Commits the next offsets (synchronously: a restart then goes on after
/// what was posted).
fn commit(consumer: &StreamConsumer<NotifyContext>, topic: &str, next: &BTreeMap<i32, i64>) {
    if next.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (p, offset) in next {
        let _ = list.add_partition_offset(topic, *p, Offset::Offset(*offset));
    }
    if let Err(e) = tokio::task::block_in_place(|| consumer.commit(&list, CommitMode::Sync)) {
        warn!(error = %e, "committing the notifier's offsets");
    }
}

/// The offsets the notifier has read `topic` through at its end now: for
/// every partition assigned, its high watermark, or `None` while the group
/// has assigned nothing or the broker does not answer. A partition the
/// group reads from at its end (nothing to read) counts as read.
fn end_offsets(consumer: &StreamConsumer<NotifyContext>, topic: &str) -> Option<BTreeMap<i32, i64>> {
    let assignment = consumer.assignment().ok()?;
    let partitions: Vec<i32> =
        assignment.elements().iter().filter(|e| e.topic() == topic).map(|e| e.partition()).collect();
    if partitions.is_empty() {
        return None;
    }
    tokio::task::block_in_place(|| {
        let wait = Duration::from_secs(2);
        let committed = consumer.committed_offsets(assignment.clone(), wait).ok()?;
        let mut ends = BTreeMap::new();
        for p in partitions {
            let (low, high) = consumer.fetch_watermarks(topic, p, wait).ok()?;
            // Where the group reads from: its committed offset, else the start.
            let from = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(n)) => n.max(low),
                _ => low,
            };
            // Nothing past the committed offset: the partition is read.
            ends.insert(p, if from >= high { -1 } else { high });
        }
        Some(ends)
    })
}

/// Whether every partition of `ends` is read through its end.
fn read_through_ends(ends: &BTreeMap<i32, i64>, read_through: &BTreeMap<i32, i64>) -> bool {
    ends.iter().all(|(p, end)| *end < 0 || read_through.get(p).is_some_and(|next| next >= end))
}

fn set_paused(consumer: &StreamConsumer<NotifyContext>, pause: bool) -> bool {
    let Ok(assignment) = consumer.assignment() else { return false };
    let result = if pause { consumer.pause(&assignment) } else { consumer.resume(&assignment) };
    result.is_ok()
}

/// The first digest time after `now`: `anchor` seconds after midnight UTC,
/// then every `every`.
fn next_digest_after(now: SystemTime, anchor: u64, every: Duration) -> SystemTime {
    if every.is_zero() {
        return now;
    }
    let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let first = now_s - now_s.rem_euclid(86_400) + anchor as i64;
    let every_s = every.as_secs().max(1) as i64;
    let next = first + every_s * ((now_s - first).div_euclid(every_s) + 1);
    UNIX_EPOCH + Duration::from_secs(next.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_digest_waits_until_every_partition_is_read_through_its_end() {
        let ends = BTreeMap::from([(0, 10), (1, -1), (2, 5)]);
        // Partition 1 had nothing to read; 0 and 2 must reach their ends.
        assert!(!read_through_ends(&ends, &BTreeMap::new()));
        assert!(!read_through_ends(&ends, &BTreeMap::from([(0, 10)])));
        assert!(!read_through_ends(&ends, &BTreeMap::from([(0, 9), (2, 5)])));
        assert!(read_through_ends(&ends, &BTreeMap::from([(0, 10), (2, 5)])));
        assert!(read_through_ends(&ends, &BTreeMap::from([(0, 12), (2, 6)])), "records that came after");
        assert!(read_through_ends(&BTreeMap::new(), &BTreeMap::new()), "ends are only asked of an assignment");
    }

    #[test]
    fn digests_are_anchored_at_the_time_of_day_and_repeat() {
        let day = 86_400;
        let six = 6 * 3600;
        // Daily at 06:00 UTC: from 05:00 the next is 06:00 the same day,
        // from 07:00 the next day's.
        assert_eq!(next_digest_after(at(10 * day + 5 * 3600), six, Duration::from_secs(day)), at(10 * day + six));
        assert_eq!(next_digest_after(at(10 * day + 7 * 3600), six, Duration::from_secs(day)), at(11 * day + six));
        assert_eq!(next_digest_after(at(10 * day + six), six, Duration::from_secs(day)), at(11 * day + six));
        // Hourly from 06:00: from 05:30 the next is 06:00; from 08:10, 09:00.
        let hour = Duration::from_secs(3600);
        assert_eq!(next_digest_after(at(10 * day + 5 * 3600 + 1800), six, hour), at(10 * day + six));
        assert_eq!(next_digest_after(at(10 * day + 8 * 3600 + 600), six, hour), at(10 * day + 9 * 3600));
    }

    #[test]
    fn the_rate_limit_lets_n_a_minute_through() {
        let start = Instant::now();
        let mut rate = RateLimit { per_minute: 2, sent: VecDeque::new() };
        assert_eq!(rate.next_free(start), start);
        rate.sent.push_back(start);
        rate.sent.push_back(start + Duration::from_secs(1));
        assert_eq!(rate.next_free(start + Duration::from_secs(2)), start + Duration::from_secs(60));
        let later = start + Duration::from_secs(61);
        assert_eq!(rate.next_free(later), later);
    }
}
