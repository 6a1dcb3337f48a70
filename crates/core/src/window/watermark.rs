//! Per-input watermark with explicit allowed lateness.

use crate::model::EventTime;

/// An input's progress in event time: the largest event time seen minus the
/// allowed lateness. Events before the watermark are late.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Watermark {
    allowed_lateness_secs: i64,
    max_seen: Option<EventTime>,
}

/// Whether an observed event was on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lateness {
    /// At or after the watermark; the watermark may have moved.
    OnTime,
    /// Before the watermark by this many seconds; the watermark is unchanged.
    Late {
        /// How far before the watermark the event was.
        behind_secs: i64,
        /// The watermark it was compared with.
        watermark: EventTime,
    },
}

impl Watermark {
    /// A watermark that has seen nothing.
    pub fn new(allowed_lateness_secs: i64) -> Self {
        Watermark { allowed_lateness_secs: allowed_lateness_secs.max(0), max_seen: None }
    }

    /// The watermark, or `None` before the first event.
    pub fn current(&self) -> Option<EventTime> {
        self.max_seen.map(|t| t.plus_secs(-self.allowed_lateness_secs))
    }

    /// The largest event time seen.
    pub fn max_seen(&self) -> Option<EventTime> {
        self.max_seen
    }

    /// Classifies an event time and, when on time, advances the watermark.
    pub fn observe(&mut self, t: EventTime) -> Lateness {
        if let Some(w) = self.current()
            && t < w
        {
            return Lateness::Late { behind_secs: w.0 - t.0, watermark: w };
        }
        self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
        Lateness::OnTime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_within_lateness_are_on_time_and_older_ones_late() {
        let mut w = Watermark::new(100);
        assert_eq!(w.observe(EventTime(1_000)), Lateness::OnTime);
        assert_eq!(w.current(), Some(EventTime(900)));
        assert_eq!(w.observe(EventTime(950)), Lateness::OnTime, "out of order but within lateness");
        assert_eq!(w.observe(EventTime(900)), Lateness::OnTime, "exactly at the watermark");
        assert_eq!(w.observe(EventTime(850)), Lateness::Late { behind_secs: 50, watermark: EventTime(900) });
        assert_eq!(w.current(), Some(EventTime(900)), "a late event does not move it");
        w.observe(EventTime(2_000));
        assert_eq!(w.current(), Some(EventTime(1_900)));
    }
}
