//! Event-time windows: day buckets, watermarks and lateness.
//!
//! Owns no domain rules. [`DayRing`] keeps one bucket per Swedish local day
//! for a bounded horizon; a window of N days ending at day D is the N
//! buckets D-N+1..=D, summed by the caller. Memory is fixed per ring.
//! [`Watermark`] tracks one input's progress: the largest event time seen
//! minus the allowed lateness. An event older than the watermark is late and
//! is reported as such by the engine, never applied silently or dropped.

mod ring;
mod watermark;

pub use ring::DayRing;
pub use watermark::{Lateness, Watermark};
