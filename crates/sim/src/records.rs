//! A scenario as the Kafka records a producer sends to the input topics
//! ([`KafkaRecordLine`]s, the lines of `tillsyn-sim simulate --records`):
//! every event as its record, with hostile records spread evenly among them.

use tillsyn_core::decode::Format;
use tillsyn_core::proto::v1 as wire;
use tillsyn_core::records::KafkaRecordLine;

use crate::municipality::hostile::HostileRecord;

impl From<&HostileRecord> for KafkaRecordLine {
    fn from(h: &HostileRecord) -> Self {
        KafkaRecordLine {
            input: h.input,
            key: h.key.clone(),
            content_type: h.content_type.map(str::to_string),
            value: h.value.clone(),
            broadcast: false,
            reference: None,
        }
    }
}

/// How many records [`with_hostile`] handed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    /// Records of events (time reports, invoices, and the two of each heartbeat).
    pub events: u64,
    /// Hostile records.
    pub hostile: u64,
}

/// Hands `each` the records of `events` (in `format`, see
/// [`KafkaRecordLine::event_for`], heartbeats to the reference-data topics
/// too with `reference`; an envelope without a kind is skipped) in
/// order, with the `hostile` records spread evenly among them: one before
/// every `events.len() / hostile.len()`-th event, the rest at the end.
pub fn with_hostile(
    events: &[wire::Event],
    hostile: &[HostileRecord],
    format: Format,
    reference: bool,
    mut each: impl FnMut(KafkaRecordLine) -> anyhow::Result<()>,
) -> anyhow::Result<RecordCounts> {
    let mut counts = RecordCounts::default();
    let every = (events.len() / hostile.len().max(1)).max(1);
    let mut hostile = hostile.iter();
    for (i, event) in events.iter().enumerate() {
        if i % every == 0
            && let Some(h) = hostile.next()
        {
            each(h.into())?;
            counts.hostile += 1;
        }
        for record in KafkaRecordLine::event_for(event, format, reference)? {
            each(record)?;
            counts.events += 1;
        }
    }
    for h in hostile {
        each(h.into())?;
        counts.hostile += 1;
    }
    Ok(counts)
}

/// The first valid time report and invoice of `events`: the templates of
/// [`hostile_records`](crate::municipality::hostile::hostile_records).
pub fn templates(events: &[wire::Event]) -> Option<(wire::TimeReport, wire::Invoice)> {
    let report = events.iter().find_map(|e| match &e.kind {
        Some(wire::event::Kind::TimeReport(t)) => Some(t.clone()),
        _ => None,
    })?;
    let invoice = events.iter().find_map(|e| match &e.kind {
        Some(wire::event::Kind::Invoice(i)) => Some(i.clone()),
        _ => None,
    })?;
    Some((report, invoice))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::municipality::hostile::hostile_records;
    use crate::municipality::{SimConfig, simulate};

    fn events() -> Vec<wire::Event> {
        let config = SimConfig {
            seed: 2,
            providers: 6,
            clients: 200,
            months: 1,
            fraudulent_providers: 2,
            ..SimConfig::default()
        };
        let mut events = Vec::new();
        simulate(&config, &mut |e| {
            events.push(e.clone());
            Ok(())
        })
        .unwrap();
        events
    }

    fn records(events: &[wire::Event], hostile: &[HostileRecord]) -> (Vec<KafkaRecordLine>, RecordCounts) {
        let mut out = Vec::new();
        let counts = with_hostile(events, hostile, Format::Protobuf, false, |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
        (out, counts)
    }

    #[test]
    fn hostile_records_are_spread_evenly_among_the_events_in_order() {
        let events = events();
        let (report, invoice) = templates(&events).unwrap();
        let hostile = hostile_records(3, 40, &report, &invoice);
        let (out, counts) = records(&events, &hostile);
        // A heartbeat is two records: one for each topic.
        let heartbeats = events.iter().filter(|e| matches!(e.kind, Some(wire::event::Kind::Heartbeat(_)))).count();
        assert!(heartbeats > 0);
        let event_records = events.len() + heartbeats;
        assert_eq!(counts, RecordCounts { events: event_records as u64, hostile: 40 });
        assert_eq!(out.len(), event_records + 40);

        // The events' records, in order, are those of the events alone.
        let (clean, _) = records(&events, &[]);
        let hostile_lines: Vec<KafkaRecordLine> = hostile.iter().map(Into::into).collect();
        let is_hostile = |r: &KafkaRecordLine| hostile_lines.contains(r);
        assert_eq!(out.iter().filter(|r| !is_hostile(r)).cloned().collect::<Vec<_>>(), clean);
        assert_eq!(out.iter().filter(|r| is_hostile(r)).cloned().collect::<Vec<_>>(), hostile_lines);
        // One before every `every`-th event, starting with the first.
        let every = events.len() / 40;
        let lines = |e: &wire::Event| if matches!(e.kind, Some(wire::event::Kind::Heartbeat(_))) { 2 } else { 1 };
        let before_second: usize = events[..every].iter().map(lines).sum();
        assert!(is_hostile(&out[0]));
        assert!(is_hostile(&out[before_second + 1]));
        assert!(!is_hostile(&out[1]));
    }

    #[test]
    fn more_hostile_records_than_events_go_first_and_at_the_end() {
        let all = events();
        let (report, invoice) = templates(&all).unwrap();
        // Three records, none a heartbeat (a heartbeat is a record per topic).
        let heartbeat = |e: &&wire::Event| matches!(e.kind, Some(wire::event::Kind::Heartbeat(_)));
        let events: Vec<wire::Event> = all.iter().filter(|e| !heartbeat(e)).take(3).cloned().collect();
        let hostile = hostile_records(1, 5, &report, &invoice);
        let (out, counts) = records(&events, &hostile);
        assert_eq!(counts, RecordCounts { events: 3, hostile: 5 });
        let kinds: Vec<bool> = out.iter().map(|r| hostile.iter().any(|h| KafkaRecordLine::from(h) == *r)).collect();
        assert_eq!(kinds, [true, false, true, false, true, false, true, true]);
    }
}
