//! The live service (`tillsyn run`) and its tools: configuration of the
//! service and its Kafka clients, decoding of Kafka records into domain
//! events with dead-letter reasons, Kafka's keyed partitioning, the
//! consume → detect → produce loop with its recovery, the state topic, and
//! the commands that create topics, produce records files, read
//! alerts and show the records behind an alert's evidence.

pub mod broker;
pub mod changelog;
pub mod config;
pub mod evidence;
pub mod run;
pub mod state_store;
pub mod tools;
