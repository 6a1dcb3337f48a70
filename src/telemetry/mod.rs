//! Telemetry of the live service (`tillsyn run`): metrics for Prometheus,
//! structured log lines, and the health endpoints.
//!
//! Built the way vector builds its internal events:
//! - [`names`]: every metric name as a constant, with its kind and help
//!   text in [`names::ALL`]; [`describe_all`] registers them.
//! - [`events`]: one struct per telemetry event (a record consumed, a dead
//!   letter, a late event, an alert produced, state sizes, watermark and
//!   consumer lag, a rebalance, a delivery failure, a record's processing
//!   time), each with an `emit(&self)` that writes its `tracing` line and
//!   updates its metrics through the `metrics` macros. The service calls
//!   `emit()`, never a metrics macro directly, so names, labels and levels
//!   stay in this module.
//! - [`http`]: the Prometheus recorder ([`install_recorder`]), [`Health`]
//!   and the axum server ([`serve`]) with `GET /metrics`, `GET /healthz`
//!   (200 while live) and `GET /readyz` (200 when ready, 503 with the reason
//!   otherwise).
//!
//! No label value and no log field carries a provider, client or staff
//! identifier: labels come from bounded sets (topics, partition numbers,
//! rule ids, severities, statuses, reason codes, inputs).
//!
//! Useful queries: records per second by kind
//! `sum by (kind) (rate(tillsyn_consumed_records_total[5m]))`; state of the
//! instance `sum without (partition) (tillsyn_state_clients)`; slowest
//! engine `max(tillsyn_watermark_lag_seconds)`; p99 processing time
//! `histogram_quantile(0.99, sum by (le) (rate(tillsyn_record_processing_seconds_bucket[5m])))`.

pub mod events;
pub mod http;
pub mod names;
mod ratelimit;

pub use http::{Health, Loop, install_recorder, serve};
pub use names::MetricKind;

/// Describes every metric of [`names::ALL`] to the current recorder, so the
/// exposition carries a `# HELP` line for each. [`install_recorder`] calls
/// it; call it yourself only with a recorder of your own.
pub fn describe_all() {
    for &(name, kind, help) in names::ALL {
        match kind {
            MetricKind::Counter => metrics::describe_counter!(name, help),
            MetricKind::Gauge => metrics::describe_gauge!(name, help),
            MetricKind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests;
