//! The global peer table's reader: a thread that reads the peer-days topic
//! from its beginning, and keeps reading, as a Kafka Streams GlobalKTable
//! does, and hands every [`PeerDay`] to the loop.
//!
//! It belongs to no consumer group (every instance reads every record) and
//! commits nothing: the table is rebuilt from the compacted topic at every
//! start. A record that does not decode is counted
//! (`tillsyn_peer_table_rejected_records_total`), logged without its content and
//! skipped: the table is the provider stage's own output, and a foreign
//! record must not stop every instance in turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tillsyn_core::baseline::PeerDay;
use tokio::sync::mpsc;
use tracing::warn;

use crate::service::config::ServiceConfig;
use crate::telemetry::events::PeerDayRejected;

/// The reader thread; stops when dropped.
pub struct GlobalTableReader {
    /// Every peer day read, in topic order.
    pub days: mpsc::UnboundedReceiver<PeerDay>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GlobalTableReader {
    /// Starts reading the peer-days topic (every partition, from the beginning).
    pub fn start(config: &ServiceConfig) -> anyhow::Result<Self> {
        let mut client = config.kafka.consumer_config();
        // Statistics are the group consumer's (lag, readiness); this client
        // would only log them.
        client.set("statistics.interval.ms", "0");
        client.set("group.id", format!("{}-global", config.kafka.group_id));
        client.set("fetch.wait.max.ms", "100");
        let consumer: BaseConsumer = client.create()?;
        let topic = config.topics.peer_days_topic();
        let metadata = crate::service::broker::metadata(consumer.client(), Some(&topic), Duration::from_secs(30))?;
        let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
        if partitions == 0 {
            anyhow::bail!("topic {topic} does not exist (create the topics: tillsyn topics create)");
        }
        let mut list = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            list.add_partition_offset(&topic, p, Offset::Beginning)?;
        }
        consumer.assign(&list)?;
        let (tx, days) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new().name("tillsyn-global-table".into()).spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(message)) => match message.payload().map(serde_json::from_slice::<PeerDay>) {
                        Some(Ok(day)) => {
                            if tx.send(day).is_err() {
                                return;
                            }
                        }
                        _ => {
                            PeerDayRejected { offset: message.offset() }.emit();
                        }
                    },
                    Some(Err(e)) => warn!(error = %e, "reading the peer-days topic"),
                }
            }
        })?;
        Ok(GlobalTableReader { days, stop, thread: Some(thread) })
    }
}

impl Drop for GlobalTableReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
