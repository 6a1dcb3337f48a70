//! What the rules that compare the events with the reference data share:
//! invoices waiting for the reference data to be known through their
//! decision, and the list of facts an explanation names.

use crate::model::{EventId, EventTime};

/// Takes, in order, the waiting items decided at or before `now` (they
/// were pushed in the order decided).
pub fn take_decided<T>(waiting: &mut Vec<T>, decided_at: impl Fn(&T) -> EventTime, now: EventTime) -> Vec<T> {
    let ready = waiting.iter().take_while(|i| decided_at(i) <= now).count();
    waiting.drain(..ready).collect()
}

/// The ids of reference facts (decisions, absences, register entries) as
/// an explanation lists them: sorted, comma-separated.
pub fn ids_text(ids: &[EventId]) -> String {
    let mut ids: Vec<&str> = ids.iter().map(EventId::as_str).collect();
    ids.sort_unstable();
    ids.join(", ")
}
