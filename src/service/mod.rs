//! The live service's building blocks (work in progress towards `tillsyn
//! run`): configuration of the service and its Kafka clients, decoding of
//! Kafka records into domain events with dead-letter reasons, and Kafka's
//! keyed partitioning.

pub mod config;
pub mod decode;
pub mod partition;
pub mod runner;
pub mod tools;
