//! # tillsyn-sim
//!
//! What tillsyn is measured with, kept out of the service binary:
//! - [`municipality`]: the seeded municipality simulator with labelled fraud
//!   (and [`municipality::hostile`], malformed and absurd records);
//! - [`labels`]: the ground-truth label format the simulator writes;
//! - [`records`]: a scenario as the Kafka records a producer sends, hostile
//!   records among them;
//! - [`evaluate`]: scores alerts against the labels;
//! - [`workload`]: a synthetic national-scale workload for benchmarks;
//! - [`crafted`]: small hand-written scenarios for one path each.
//!
//! The `tillsyn-sim` binary writes scenarios and scores alerts; the service's
//! `tillsyn produce` sends a scenario's records to Kafka.

pub mod crafted;
pub mod evaluate;
pub mod labels;
pub mod municipality;
pub mod records;
pub mod workload;

pub use municipality::{SimConfig, simulate};
