//! # tillsyn
//!
//! A real-time detector of billing fraud in publicly funded home care
//! (hemtjänst) and personal assistance. It reads time reports (visits) and
//! invoices, keeps per-provider sliding-window statistics driven by event
//! time, and emits explained alerts when billing deviates from what is
//! physically possible or from what peers and the provider's own history
//! make expected.
//!
//! # Layout
//!
//! Functional core (pure, deterministic, synchronous; no I/O, no clock):
//! - [`proto`]: the wire contract generated from `proto/` (prost + pbjson).
//! - [`model`]: domain types and validation of wire messages.
//! - [`window`]: event-time day buckets, watermarks and lateness.
//! - [`baseline`]: peer statistics (median/MAD) and own history (EWMA, CUSUM).
//! - [`rules`]: one file per fraud pattern, each turning state into findings.
//! - [`alerting`]: findings → alerts with stable ids and an episode lifecycle.
//! - [`engine`]: the per-partition state machine that feeds events through
//!   the above. The only part of the core the shell talks to.
//! - [`config`]: typed configuration of the core with defaults and checks.
//!
//! Shell (drives the core):
//! - [`cli`]: the command line.
//! - [`codec`]: NDJSON and length-delimited protobuf files of events and alerts.
//! - [`sim`]: the seeded municipality simulator with labelled fraud.
//! - [`replay`]: runs the core over an events file.
//! - [`evaluate`]: scores alerts against the simulator's labels.
//! - [`labels`]: the ground-truth label format shared by `sim` and `evaluate`.
//! - [`workload`]: a synthetic national-scale workload for benchmarks.
//! - [`service`]: the live service on Kafka (`tillsyn run`): configuration,
//!   record decoding, the consume → detect → produce loop with checkpoints
//!   and takeovers (exactly-once alerts), the state topic, tools.
//! - [`telemetry`]: typed events that log and update metrics, the
//!   Prometheus exporter, `/metrics`, `/healthz`, `/readyz`.

pub mod alerting;
pub mod baseline;
pub mod cli;
pub mod codec;
pub mod config;
pub mod engine;
pub mod evaluate;
pub mod labels;
pub mod model;
pub mod proto;
pub mod replay;
pub mod rules;
pub mod service;
pub mod sim;
pub mod telemetry;
pub mod window;
pub mod workload;
