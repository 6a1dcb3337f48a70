//! # tillsyn
//!
//! The service of tillsyn, a real-time detector of billing fraud in publicly
//! funded home care (hemtjänst) and personal assistance: the imperative
//! shell around the pure core of [`tillsyn_core`].
//!
//! # Layout
//!
//! - [`cases`]: the case officer's view of the case store (`tillsyn
//!   cases`).
//! - [`cli`]: the command line (one function per subcommand).
//! - [`replay`]: the core over an events file (the reference run).
//! - [`service`]: the live service on Kafka (`tillsyn run`): configuration,
//!   the consume → detect → produce loop with checkpoints and takeovers
//!   (exactly-once alerts), the state topic, tools.
//! - [`sink`]: the reference consumers of the alert topic (`tillsyn sink
//!   postgres`, the case store).
//! - [`telemetry`]: typed events that log and update metrics, the
//!   Prometheus exporter, `/metrics`, `/healthz`, `/readyz`.

pub mod cases;
pub mod cli;
pub mod replay;
pub mod service;
pub mod sink;
pub mod telemetry;
