//! What the two global tables' readers share (the peer days and the
//! reference data): a client outside any consumer group, assigned every
//! partition of its topics from the beginning, and a thread polling it
//! until it is dropped, as a Kafka Streams GlobalKTable's thread does.
//! It commits nothing: a table is rebuilt from its compacted topics at
//! every start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;

use crate::service::config::ServiceConfig;

/// A client assigned every partition of some topics from the beginning,
/// not yet read.
pub struct Assigned {
    consumer: BaseConsumer,
    /// The partition count of each topic, in the order given.
    pub partitions: Vec<i32>,
}

/// Assigns every partition of `topics` from the beginning to a new client
/// (group id: the service's, with `-{suffix}`: it joins no group, the id
/// only names it). Fails if a topic does not exist.
pub fn assign(config: &ServiceConfig, suffix: &str, topics: &[&str]) -> anyhow::Result<Assigned> {
    let mut client = config.kafka.consumer_config();
    // Statistics are the group consumer's (lag, readiness); this client
    // would only log them.
    client.set("statistics.interval.ms", "0");
    client.set("group.id", format!("{}-{suffix}", config.kafka.group_id));
    client.set("fetch.wait.max.ms", "100");
    let consumer: BaseConsumer = client.create()?;
    let mut list = TopicPartitionList::new();
    let mut partitions = Vec::new();
    for &topic in topics {
        let metadata = crate::service::broker::metadata(consumer.client(), Some(topic), Duration::from_secs(30))?;
        let n = metadata.topics().first().map_or(0, |t| t.partitions().len()) as i32;
        if n == 0 {
            anyhow::bail!("topic {topic} does not exist (create the topics: tillsyn topics create)");
        }
        for p in 0..n {
            list.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        partitions.push(n);
    }
    consumer.assign(&list)?;
    Ok(Assigned { consumer, partitions })
}

/// The polling thread; stops when dropped.
pub struct TopicReader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TopicReader {
    /// Polls `assigned` on a thread named `name`, handing every message to
    /// `on_message` until it returns false (its receiver is gone) or the
    /// reader is dropped. Errors are logged as reading `what`.
    pub fn spawn(
        assigned: Assigned,
        name: &str,
        what: &'static str,
        mut on_message: impl FnMut(&BorrowedMessage<'_>) -> bool + Send + 'static,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let consumer = assigned.consumer;
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(message)) if !on_message(&message) => return,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => warn!(error = %e, "reading {what}"),
                }
            }
        })?;
        Ok(TopicReader { stop, thread: Some(thread) })
    }
}

impl Drop for TopicReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
