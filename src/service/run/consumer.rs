//! The consumer: one thread polls librdkafka and hands the loop what it
//! fetched; the rebalance callback only signals.
//!
//! - **Records** go to the loop over a bounded channel ([`Fetched`]), so a
//!   loop that falls behind slows the fetching down instead of growing
//!   memory.
//! - **Assigned partitions** are assigned and paused at once in the
//!   callback, and the loop is told ([`Rebalance::Assigned`]). The loop
//!   restores their state outside librdkafka's poll and then asks this
//!   thread to start them ([`Command::Start`]): seek both inputs to the
//!   restored offsets, resume, and put [`Fetched::Started`] in the record
//!   channel. Everything of that partition before that marker was fetched
//!   before the seek and is dropped by the loop; everything after is from
//!   the restored offsets on (librdkafka drops messages fetched before a
//!   seek from its own queue).
//! - **Revoked partitions**: the callback tells the loop
//!   ([`Rebalance::Revoked`]) and waits, at most `kafka.revocation_budget`,
//!   until the loop has every output acknowledged and the partitions
//!   checkpointed; then it lets them go. A loop that does not answer in time
//!   costs the next owner a longer replay from the previous checkpoint,
//!   never an alert.
//!
//! The partitions' state belongs to the loop alone: no lock is shared
//! between this thread and the loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tillsyn_core::driver::Offsets;
use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::service::broker::SecurityStreak;
use crate::service::config::ServiceConfig;
use crate::telemetry::events::ConsumerLag;
use crate::telemetry::{Health, Loop};

/// Records fetched, in the order librdkafka handed them over.
#[derive(Debug)]
pub enum Fetched {
    /// A record of an input topic.
    Record(OwnedMessage),
    /// The partition was sought to its restored offsets and resumed: its
    /// records from here on are from those offsets. Carries the start's
    /// generation (see [`Command::Start`]).
    Started(i32, u64),
    /// The partition could not be started (the seek failed), with the
    /// start's generation.
    StartFailed(i32, u64, String),
}

/// What the rebalance callback tells the loop.
#[derive(Debug)]
pub enum Rebalance {
    /// These input partitions are assigned (and paused until started).
    Assigned(Vec<(String, i32)>),
    /// These input partitions are being revoked: checkpoint them, drop
    /// their state, then answer on `done`.
    Revoked {
        /// The partitions.
        partitions: Vec<(String, i32)>,
        /// Answered once the loop let them go.
        done: std_mpsc::Sender<()>,
    },
}

/// What the loop asks of the consumer thread.
#[derive(Debug)]
pub enum Command {
    /// Seek `partition` of every topic it runs to `offsets` and resume it.
    Start {
        /// The partition number.
        partition: i32,
        /// Where its inputs start.
        offsets: Offsets,
        /// Which restore this is: a partition revoked and assigned again
        /// before its first start was seen is started twice.
        generation: u64,
    },
}

/// Whether every fetched partition's lag is known and small:
/// [`LAG_UNKNOWN`], [`LAG_OK`] or [`LAG_BEHIND`].
pub type LagState = Arc<AtomicU8>;
/// No statistics yet.
pub const LAG_UNKNOWN: u8 = 0;
/// Every fetched partition within the readiness limit.
pub const LAG_OK: u8 = 1;
/// Some partition behind, or its lag unknown.
pub const LAG_BEHIND: u8 = 2;

/// Consumer context: statistics (consumer lag, readiness) and rebalances.
pub struct Context {
    rebalances: mpsc::UnboundedSender<Rebalance>,
    producer: FutureProducer,
    /// Partition `k` of each of these runs together (see
    /// `TopicsConfig::partition_topics`).
    topics: Vec<String>,
    budget: Duration,
    lag: LagState,
    ready_max_lag: i64,
    /// Authentication and TLS failures, for the loop to give up on.
    security: Arc<SecurityStreak>,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, reason, "librdkafka");
        self.security.record_at(std::time::Instant::now(), &error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let lags = ConsumerLag::from_statistics(&statistics);
        let fetching = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.desired)
            .count();
        for lag in &lags {
            lag.emit();
        }
        // Caught up: every partition being fetched has a known lag within
        // the limit.
        let caught_up = fetching > 0 && lags.len() == fetching && lags.iter().all(|l| l.lag <= self.ready_max_lag);
        self.lag.store(if caught_up { LAG_OK } else { LAG_BEHIND }, Ordering::Relaxed);
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect()
}

impl ConsumerContext for Context {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Assigned but paused: nothing of them is processed before
                // the loop restored their state and started them.
                if let Err(e) = consumer.assign(tpl) {
                    error!(error = %e, "assign failed");
                }
                if let Err(e) = consumer.pause(tpl) {
                    error!(error = %e, "cannot pause newly assigned partitions");
                }
                let _ = self.rebalances.send(Rebalance::Assigned(partitions_of(tpl)));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.let_go(partitions_of(tpl));
                let _ = consumer.unassign();
            }
            other => {
                error!(error = ?other, "rebalance error; dropping the assignment");
                let assigned = consumer.assignment().map(|a| partitions_of(&a)).unwrap_or_default();
                self.let_go(assigned);
                let _ = consumer.unassign();
            }
        }
    }
}

impl Context {
    /// Tells the loop and waits until it let the partitions go (or the
    /// budget is spent); then flushes what the producer still holds, so
    /// the next owner reads every alert produced.
    fn let_go(&self, partitions: Vec<(String, i32)>) {
        let (done, answered) = std_mpsc::channel();
        if self.rebalances.send(Rebalance::Revoked { partitions, done }).is_ok()
            && answered.recv_timeout(self.budget).is_err()
        {
            warn!(
                "revocation: the loop did not hand over within the budget; the next owner replays from the previous checkpoint"
            );
        }
        if let Err(e) = self.producer.flush(self.budget) {
            warn!(error = %e, "revocation: the producer did not flush within the budget");
        }
    }
}

/// The consumer, its polling thread, and the loop's ends of the channels.
pub struct ConsumerThread {
    /// The consumer (thread-safe): the loop pauses, resumes and commits.
    pub consumer: Arc<BaseConsumer<Context>>,
    /// Records fetched.
    pub fetched: mpsc::Receiver<Fetched>,
    /// Rebalances.
    pub rebalances: mpsc::UnboundedReceiver<Rebalance>,
    /// Commands to the thread.
    pub commands: std_mpsc::Sender<Command>,
    /// Readiness from the consumer's statistics.
    pub lag: LagState,
    /// Authentication and TLS failures the consumer reported.
    pub security: Arc<SecurityStreak>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Records fetched but not yet taken by the loop.
const FETCHED_CAPACITY: usize = 1_024;

/// How long one poll waits for a record before the thread looks at its
/// commands and the stop flag.
const POLL: Duration = Duration::from_millis(50);

impl ConsumerThread {
    /// Creates the group's consumer, subscribes to both inputs and the staff
    /// stage's two internal topics (co-partitioned) and starts polling.
    /// The thread beats [`Loop::Consumer`] on `health` at every poll.
    pub fn start(
        config: &ServiceConfig,
        producer: FutureProducer,
        ready_max_lag: i64,
        health: Health,
    ) -> anyhow::Result<Self> {
        let (rebalances_tx, rebalances) = mpsc::unbounded_channel();
        let lag: LagState = Arc::new(AtomicU8::new(LAG_UNKNOWN));
        let security = Arc::new(SecurityStreak::default());
        let context = Context {
            security: security.clone(),
            rebalances: rebalances_tx,
            producer,
            topics: config.topics.partition_topics(config.core.reference.enabled),
            budget: config.kafka.revocation_budget,
            lag: lag.clone(),
            ready_max_lag,
        };
        let consumer: Arc<BaseConsumer<Context>> =
            Arc::new(config.kafka.consumer_config().create_with_context(context)?);
        let topics = config.topics.partition_topics(config.core.reference.enabled);
        consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
        let (fetched_tx, fetched) = mpsc::channel(FETCHED_CAPACITY);
        let (commands, commands_rx) = std_mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (consumer, stop) = (consumer.clone(), stop.clone());
            std::thread::Builder::new().name("tillsyn-consumer".into()).spawn(move || {
                poll_loop(&consumer, &fetched_tx, &commands_rx, &stop, &health);
                health.unwatch(Loop::Consumer);
            })?
        };
        Ok(ConsumerThread { consumer, fetched, rebalances, commands, lag, security, stop, thread: Some(thread) })
    }

    /// Stops polling and waits for the thread; closes the channels, so a
    /// rebalance while the consumer closes does not wait for the loop.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.fetched.close();
        self.rebalances.close();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the consumer thread panicked");
        }
    }
}

impl Drop for ConsumerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The consumer thread: poll, forward, serve commands, until stopped or
/// the loop is gone.
fn poll_loop(
    consumer: &BaseConsumer<Context>,
    fetched: &mpsc::Sender<Fetched>,
    commands: &std_mpsc::Receiver<Command>,
    stop: &AtomicBool,
    health: &Health,
) {
    let forward = |item: Fetched| -> bool {
        let mut item = item;
        loop {
            match fetched.try_send(item) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    // Waiting for the processing loop, whose own beat
                    // tells whether it is stuck.
                    health.beat(Loop::Consumer);
                    item = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        health.beat(Loop::Consumer);
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Start { partition, offsets, generation } => {
                    let outcome = start_partition(consumer, partition, offsets);
                    let item = match outcome {
                        Ok(()) => Fetched::Started(partition, generation),
                        Err(e) => Fetched::StartFailed(partition, generation, e.to_string()),
                    };
                    if !forward(item) {
                        return;
                    }
                }
            }
        }
        let item = match consumer.poll(POLL) {
            Some(Ok(message)) => Fetched::Record(message.detach()),
            Some(Err(error)) => {
                warn!(%error, "consumer error");
                continue;
            }
            None => continue,
        };
        if !forward(item) {
            return;
        }
    }
}

/// Seeks `partition` of every topic it runs (the inputs and the staff
/// stage's two internal topics) to `offsets` and resumes them.
fn start_partition(consumer: &BaseConsumer<Context>, partition: i32, offsets: Offsets) -> anyhow::Result<()> {
    let context = consumer.context();
    let mut list = TopicPartitionList::new();
    for (topic, offset) in context.topics.iter().zip(offsets.in_topic_order()) {
        consumer.seek(topic, partition, Offset::Offset(offset), Duration::from_secs(10))?;
        list.add_partition(topic, partition);
    }
    consumer.resume(&list)?;
    Ok(())
}

/// The consumer group's generation as this member last joined it (the
/// classic protocol's generation id), or 0 when it is not known (not in a
/// group yet). Part of a partition owner's epoch on the state topic, so
/// that of two members that take a partition over at once, the later
/// generation's checkpoints win. rust-rdkafka does not expose it; librdkafka
/// does (`rd_kafka_consumer_group_metadata_generation_id`).
pub fn group_generation(consumer: &BaseConsumer<Context>) -> i32 {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live client of `consumer`, borrowed for this
    // call. `rd_kafka_consumer_group_metadata` returns a new object (or
    // null) that this function owns: it is read once and destroyed here,
    // exactly once.
    unsafe {
        let metadata = rdkafka_sys::rd_kafka_consumer_group_metadata(rk);
        if metadata.is_null() {
            return 0;
        }
        let generation = rdkafka_sys::rd_kafka_consumer_group_metadata_generation_id(metadata);
        rdkafka_sys::rd_kafka_consumer_group_metadata_destroy(metadata);
        generation.max(0)
    }
}
