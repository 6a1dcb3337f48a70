//! # tillsyn-core
//!
//! The functional core of tillsyn: pure, deterministic and synchronous. No
//! I/O beyond the file codec's readers and writers, no clock, no Kafka
//! client, no async runtime (a test checks the dependency tree).
//!
//! # Layout
//!
//! - [`proto`]: the wire contract generated from `proto/` (prost + pbjson).
//! - [`model`]: domain types and validation of wire messages.
//! - [`window`]: event-time day buckets, watermarks and lateness.
//! - [`baseline`]: peer statistics (median/MAD) and own history (EWMA, CUSUM).
//! - [`text`]: explanations in Swedish and English, and their number and
//!   date formats.
//! - [`state`]: what an engine keeps per provider, client and staff member.
//! - [`finding`]: rule identities, findings, severities, measures and units.
//! - [`rules`]: one file per fraud pattern, each turning state into findings,
//!   and the registry that lists them once.
//! - [`config`]: typed configuration of the core with defaults and checks.
//! - [`alerting`]: findings → alerts with stable ids and an episode lifecycle.
//! - [`engine`]: the per-partition state machine that feeds events through
//!   the above.
//!
//! The modules import one way, in the order above (model → window,
//! baseline, text → state → finding → rules → config → alerting → engine); a
//! test (`tests/layers.rs`) fails on an import against that order.
//!
//! The edge, shared by every shell:
//! - [`decode`]: one Kafka record's bytes → a validated event or a
//!   dead-letter rejection with a reason.
//! - [`partition`]: Kafka's keyed partitioner (murmur2), so an offline
//!   replay splits events exactly as the topics do.
//! - [`codec`]: NDJSON and length-delimited protobuf files of events and alerts.
//! - [`records`]: NDJSON files of Kafka records for the input topics (what
//!   `tillsyn-sim simulate --records` writes and `tillsyn produce` sends).

pub mod alerting;
pub mod baseline;
pub mod client_care;
pub mod codec;
pub mod config;
pub mod decode;
pub mod driver;
pub mod engine;
pub mod finding;
pub mod model;
pub mod partition;
pub mod proto;
pub mod records;
pub mod rules;
pub mod state;
pub mod text;
pub mod window;
