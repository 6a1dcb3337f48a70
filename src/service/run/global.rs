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

use rdkafka::message::Message;
use tillsyn_core::baseline::PeerDay;
use tokio::sync::mpsc;

use super::topic_reader::{self, TopicReader};
use crate::service::config::ServiceConfig;
use crate::telemetry::events::PeerDayRejected;

/// The reader thread; stops when dropped.
pub struct GlobalTableReader {
    /// Every peer day read, in topic order.
    pub days: mpsc::UnboundedReceiver<PeerDay>,
    _reader: TopicReader,
}

impl GlobalTableReader {
    /// Starts reading the peer-days topic (every partition, from the beginning).
    pub fn start(config: &ServiceConfig) -> anyhow::Result<Self> {
        let topic = config.topics.peer_days_topic();
        let assigned = topic_reader::assign(config, "global", &[&topic])?;
        let (tx, days) = mpsc::unbounded_channel();
        let reader =
            TopicReader::spawn(assigned, "tillsyn-global-table", "the peer-days topic", move |message| match message
                .payload()
                .map(serde_json::from_slice::<PeerDay>)
            {
                Some(Ok(day)) => tx.send(day).is_ok(),
                _ => {
                    PeerDayRejected { offset: message.offset() }.emit();
                    true
                }
            })?;
        Ok(GlobalTableReader { days, _reader: reader })
    }
}
