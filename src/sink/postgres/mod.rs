//! `tillsyn sink postgres`: the alert topic into a PostgreSQL case store,
//! exactly once.
//!
//! A consumer group of its own (`sink.postgres.group_id`) reads the alert
//! topic. Each batch of records is written in one database transaction
//! together with each partition's new stored position (`sink_positions`),
//! the classic pattern for a sink outside Kafka: the position and the rows
//! it covers commit together or not at all, so a crash, a restart or a
//! rebalance replays at most the records after the stored position, and
//! those are skipped or written once ([`plan`]). An alert is one row
//! (unique by alert id); an episode one row carrying its newest alert's
//! state ([`store`]).
//!
//! - **Assignment.** A partition is assigned paused; the loop reads its
//!   stored position, seeks there (the beginning when it has none) and
//!   resumes it. Kafka's committed offsets of the group are written after
//!   each commit, for lag monitoring only; the database is the truth.
//! - **Fencing.** A position moves only from the value read: a member that
//!   lost a partition in a rebalance and still writes a batch of it finds
//!   the position moved, rolls back, and reads the positions again.
//! - **Database down.** The partitions are paused (the consumer keeps
//!   polling, so the member stays in its group), `/readyz` answers 503, and
//!   the loop connects again with a doubling backoff up to
//!   `sink.postgres.retry_max`; then it reads the positions again (a commit
//!   whose answer was lost may have happened) and goes on.

pub mod plan;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::service::config::ServiceConfig;
use crate::service::tools::decode_alert;
use crate::telemetry::events::{
    ConsumerLag, SinkDatabase, SinkOutcome, SinkRecords, SinkTransaction, sink_alert_to_row,
};
use crate::telemetry::{Health, Loop};
use plan::{AlertRow, Plan, Read};
use store::Written;

/// The first wait after a database failure; it doubles up to
/// `sink.postgres.retry_max`.
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// librdkafka's longest wait of a fetch for `fetch.min.bytes`.
const FETCH_WAIT: &str = "fetch.wait.max.ms";

/// What the sink did, for its last log line and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SinkSummary {
    /// Records read from the alert topic.
    pub records: u64,
    /// New alert rows committed.
    pub stored: u64,
    /// Records read again and found stored.
    pub already_stored: u64,
    /// Records that are no alert.
    pub not_alerts: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Transactions rolled back because another member moved a position.
    pub fenced: u64,
    /// Database failures survived.
    pub database_failures: u64,
}

/// A change of the assignment, from the rebalance callback to the loop.
enum Assignment {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

struct SinkContext {
    topic: String,
    rebalances: mpsc::UnboundedSender<Assignment>,
}

impl ClientContext for SinkContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, reason, "librdkafka");
    }

    /// The consumer lag per partition (`tillsyn_consumer_lag_messages`, the
    /// alert topic's partitions): records after this member's position.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for lag in ConsumerLag::from_statistics(&statistics) {
            lag.emit();
        }
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let _ = self.rebalances.send(Assignment::Revoked(self.partitions(list)));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // Paused until the loop has read the stored positions and
            // sought there: nothing is fetched from Kafka's offsets.
            if let Err(e) = consumer.pause(list) {
                tracing::error!(error = %e, "cannot pause newly assigned partitions");
            }
            let _ = self.rebalances.send(Assignment::Assigned(self.partitions(list)));
        }
    }
}

impl SinkContext {
    fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect()
    }
}

/// The partitions this member owns and where each stands.
#[derive(Default)]
struct Partitions {
    /// Assigned, position not read yet (or to be read again).
    unaligned: BTreeSet<i32>,
    /// Position read and sought: records are taken.
    running: BTreeMap<i32, Option<i64>>,
    /// Whether the running partitions are paused (database down).
    paused: bool,
}

/// Runs the sink until `shutdown` completes. Stops with an error only on
/// what retrying cannot fix (a topic that does not exist, a schema newer
/// than this build); the database being down is waited out.
pub async fn run(
    config: ServiceConfig,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<SinkSummary> {
    let sink = &config.sink.postgres;
    let connection = sink.connection().map_err(|e| anyhow::anyhow!(e))?;
    let topic = config.topics.alerts.clone();
    crate::service::broker::probe_async(&config).await?;
    SinkRecords::register_counters();
    health.set_stuck_after(config.http.stuck_after);
    health.set_not_ready("connecting to the database");

    let (rebalances_tx, mut rebalances) = mpsc::unbounded_channel();
    let mut client_config = config.kafka.consumer_config();
    client_config.set("group.id", &sink.group_id);
    // Alerts are few and wanted at once: a fetch waits at most 100 ms for
    // more (librdkafka's 500 ms put the median alert-to-row time near a
    // second on the bench), unless the configuration says otherwise.
    let k = &config.kafka;
    if !k.common.contains_key(FETCH_WAIT) && !k.consumer.contains_key(FETCH_WAIT) {
        client_config.set(FETCH_WAIT, "100");
    }
    let consumer: StreamConsumer<SinkContext> = client_config
        .create_with_context(SinkContext { topic: topic.clone(), rebalances: rebalances_tx })
        .context("creating the sink's consumer")?;
    {
        let c = config.clone();
        let t = topic.clone();
        tokio::task::spawn_blocking(move || {
            let probe: BaseConsumer = c.kafka.consumer_config().create()?;
            crate::service::broker::metadata(probe.client(), Some(&t), Duration::from_secs(30))?
                .topics()
                .iter()
                .find(|m| m.name() == t && m.error().is_none() && !m.partitions().is_empty())
                .map(|_| ())
                .ok_or_else(|| anyhow::anyhow!("the alert topic {t} does not exist"))
        })
        .await??;
    }
    consumer.subscribe(&[&topic]).context("subscribing to the alert topic")?;
    info!(group = sink.group_id.as_str(), topic = topic.as_str(), "case store sink consuming");

    let mut db: Option<tokio_postgres::Client> = None;
    let mut retry_wait = RETRY_FIRST;
    let mut next_attempt = Instant::now();
    let mut partitions = Partitions::default();
    let mut pending: Vec<Read> = Vec::new();
    let mut first_pending: Option<Instant> = None;
    let mut summary = SinkSummary::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);

    loop {
        health.beat(Loop::Processing);
        let linger_over = first_pending.map(|t| t + sink.batch_linger);
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(change) = rebalances.recv() => match change {
                Assignment::Assigned(list) => {
                    info!(partitions = ?list, "alert partitions assigned");
                    partitions.unaligned.extend(list);
                }
                Assignment::Revoked(list) => {
                    info!(partitions = ?list, "alert partitions revoked");
                    for p in &list {
                        partitions.unaligned.remove(p);
                        partitions.running.remove(p);
                    }
                    pending.retain(|r| !list.contains(&r.partition));
                }
            },
            message = consumer.recv() => match message {
                Ok(m) => {
                    summary.records += 1;
                    if partitions.running.contains_key(&m.partition()) {
                        pending.push(read(&m));
                        first_pending.get_or_insert_with(Instant::now);
                    }
                }
                Err(e) => warn!(error = %e, "reading the alert topic"),
            },
            _ = sleep_until(linger_over), if linger_over.is_some() => {},
            _ = ticker.tick() => {},
        }

        // The database: connect when due, with backoff.
        if db.as_ref().is_none_or(tokio_postgres::Client::is_closed) && Instant::now() >= next_attempt {
            match open(&connection).await {
                Ok(client) => {
                    SinkDatabase { up: true, error: None }.emit();
                    db = Some(client);
                    retry_wait = RETRY_FIRST;
                    // A commit whose answer was lost may have happened:
                    // every position is read again.
                    partitions.unaligned.extend(partitions.running.keys());
                    partitions.running.clear();
                    pending.clear();
                    first_pending = None;
                }
                Err(OpenError::Schema(e)) => return Err(e),
                Err(OpenError::Unavailable(e)) => {
                    if db.take().is_some() || summary.database_failures == 0 {
                        SinkDatabase { up: false, error: Some(&format!("{e:#}")) }.emit();
                    }
                    summary.database_failures += 1;
                    next_attempt = Instant::now() + retry_wait;
                    retry_wait = (retry_wait * 2).min(sink.retry_max);
                }
            }
        }
        let Some(client) = db.as_mut().filter(|c| !c.is_closed()) else {
            health.set_not_ready("the case store database is unavailable");
            pause_all(&consumer, &mut partitions);
            continue;
        };
        resume_all(&consumer, &topic, &mut partitions);

        // Newly assigned partitions: read their positions, seek, resume.
        if !partitions.unaligned.is_empty() {
            let wanted: Vec<i32> = partitions.unaligned.iter().copied().collect();
            match store::positions(client, &sink.group_id, &topic, &wanted).await {
                Ok(positions) => {
                    for (p, position) in positions {
                        // A blocking call (up to 5 s): off the runtime's
                        // worker, so the HTTP endpoint keeps answering.
                        match tokio::task::block_in_place(|| seek(&consumer, &topic, p, position)) {
                            Ok(()) => {
                                partitions.unaligned.remove(&p);
                                partitions.running.insert(p, position);
                            }
                            Err(e) => warn!(partition = p, error = %e, "cannot seek to the stored position yet"),
                        }
                    }
                }
                Err(e) => {
                    failed(&mut db, &e.into(), &mut summary, &mut next_attempt, &mut retry_wait, sink.retry_max);
                    continue;
                }
            }
        }

        // A batch is due when full or when its linger is over.
        let due =
            pending.len() >= sink.batch_records || first_pending.is_some_and(|t| t.elapsed() >= sink.batch_linger);
        if due && !pending.is_empty() {
            pending.retain(|r| partitions.running.contains_key(&r.partition));
            let plan = Plan::new(&pending, &partitions.running);
            match store::write(client, &sink.group_id, &topic, &plan).await {
                Ok(Written::Committed { new_rows, already_stored }) => {
                    SinkTransaction::Committed.emit();
                    summary.transactions += 1;
                    summary.stored += new_rows;
                    summary.already_stored += plan.already_stored + already_stored;
                    summary.not_alerts += plan.not_alerts.len() as u64;
                    SinkRecords { outcome: SinkOutcome::Stored, records: new_rows }.emit();
                    SinkRecords { outcome: SinkOutcome::AlreadyStored, records: plan.already_stored + already_stored }
                        .emit();
                    SinkRecords { outcome: SinkOutcome::NotAnAlert, records: plan.not_alerts.len() as u64 }.emit();
                    for (partition, offset, why) in &plan.not_alerts {
                        warn!(
                            partition,
                            offset,
                            why = why.as_str(),
                            "a record of the alert topic is no alert; skipped"
                        );
                    }
                    let now = SystemTime::now();
                    for (_, _, row) in &plan.rows {
                        if let Some(produced) = row.produced_at {
                            sink_alert_to_row(now.duration_since(produced).unwrap_or_default().as_secs_f64());
                        }
                    }
                    let mut commit = TopicPartitionList::new();
                    for m in &plan.moves {
                        partitions.running.insert(m.partition, Some(m.to));
                        let _ = commit.add_partition_offset(&topic, m.partition, Offset::Offset(m.to));
                    }
                    // For lag monitoring only; the database is the truth.
                    if let Err(e) = consumer.commit(&commit, CommitMode::Async) {
                        tracing::debug!(error = %e, "committing the group's offsets (monitoring only)");
                    }
                    pending.clear();
                    first_pending = None;
                }
                Ok(Written::Fenced(list)) => {
                    SinkTransaction::Fenced.emit();
                    summary.fenced += 1;
                    warn!(partitions = ?list, "another member moved these positions; reading them again");
                    for p in list {
                        partitions.running.remove(&p);
                        partitions.unaligned.insert(p);
                    }
                    pending.clear();
                    first_pending = None;
                }
                Err(e) => {
                    failed(&mut db, &e, &mut summary, &mut next_attempt, &mut retry_wait, sink.retry_max);
                    // The batch is read again from the stored positions.
                    partitions.unaligned.extend(partitions.running.keys());
                    partitions.running.clear();
                    pending.clear();
                    first_pending = None;
                    continue;
                }
            }
        }

        if partitions.unaligned.is_empty() && !partitions.running.is_empty() {
            health.set_ready(true);
        } else if partitions.running.is_empty() && partitions.unaligned.is_empty() {
            health.set_not_ready("no partitions assigned");
        } else {
            health.set_not_ready("reading the stored positions");
        }
    }

    // Shutdown: what is pending is not written (it is read again from the
    // stored positions next time); nothing is half done.
    health.set_not_ready("shutting down");
    health.unwatch(Loop::Processing);
    consumer.unsubscribe();
    info!(
        records = summary.records,
        stored = summary.stored,
        already_stored = summary.already_stored,
        transactions = summary.transactions,
        "case store sink stopped"
    );
    Ok(summary)
}

/// The row of a record of the alert topic, or why it is none.
fn read(m: &BorrowedMessage<'_>) -> Read {
    let produced_at = m
        .timestamp()
        .to_millis()
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
    let alert = match decode_alert(m.payload().unwrap_or_default(), m.headers()) {
        Some(alert) => AlertRow::new(&alert, produced_at),
        None => Err("does not decode as an alert".into()),
    };
    Read { partition: m.partition(), offset: m.offset(), alert }
}

/// Why the database could not be opened.
enum OpenError {
    /// It did not answer or refused the connection: wait and try again.
    Unavailable(anyhow::Error),
    /// Its schema cannot be used by this build (a version this build does
    /// not know, or a changed migration): retrying does not help.
    Schema(anyhow::Error),
}

/// Connects and migrates the schema.
async fn open(connection: &tokio_postgres::Config) -> Result<tokio_postgres::Client, OpenError> {
    let mut client = store::connect(connection).await.context("connecting").map_err(OpenError::Unavailable)?;
    match store::migrate(&mut client).await {
        Ok(applied) => {
            if !applied.is_empty() {
                info!(versions = ?applied, "case store schema migrated");
            }
            Ok(client)
        }
        // The connection broke meanwhile: the database, not the schema.
        Err(e) if client.is_closed() => Err(OpenError::Unavailable(e)),
        Err(e) => Err(OpenError::Schema(e.context(format!(
            "the case store's schema does not fit this build (it knows versions up to {})",
            store::schema_version()
        )))),
    }
}

fn failed(
    db: &mut Option<tokio_postgres::Client>,
    error: &anyhow::Error,
    summary: &mut SinkSummary,
    next_attempt: &mut Instant,
    retry_wait: &mut Duration,
    retry_max: Duration,
) {
    SinkTransaction::Failed.emit();
    SinkDatabase { up: false, error: Some(&format!("{error:#}")) }.emit();
    summary.database_failures += 1;
    *db = None;
    *next_attempt = Instant::now() + *retry_wait;
    *retry_wait = (*retry_wait * 2).min(retry_max);
}

/// Seeks a paused, newly assigned partition to its stored position (its
/// beginning when none) and resumes it.
fn seek(
    consumer: &StreamConsumer<SinkContext>,
    topic: &str,
    partition: i32,
    position: Option<i64>,
) -> anyhow::Result<()> {
    let offset = position.map_or(Offset::Beginning, Offset::Offset);
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, offset)?;
    let sought = consumer.seek_partitions(list, Duration::from_secs(5))?;
    if let Some(e) = sought.elements().first().and_then(|e| e.error().err()) {
        return Err(e.into());
    }
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    consumer.resume(&list)?;
    Ok(())
}

fn pause_all(consumer: &StreamConsumer<SinkContext>, partitions: &mut Partitions) {
    if partitions.paused {
        return;
    }
    if let Ok(assignment) = consumer.assignment()
        && consumer.pause(&assignment).is_ok()
    {
        partitions.paused = true;
    }
}

fn resume_all(consumer: &StreamConsumer<SinkContext>, topic: &str, partitions: &mut Partitions) {
    if !partitions.paused {
        return;
    }
    // Only the running ones: the others resume once sought.
    let mut list = TopicPartitionList::new();
    for p in partitions.running.keys() {
        list.add_partition(topic, *p);
    }
    if consumer.resume(&list).is_ok() {
        partitions.paused = false;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
