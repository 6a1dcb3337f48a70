//! Files of Kafka records for the input topics: what a producer sends, one
//! record per NDJSON line, in send order. `tillsyn-sim simulate --records`
//! writes them (a scenario's events, hostile records among them), `tillsyn
//! produce --records` sends them to the configured topics.
//!
//! A line is a [`KafkaRecordLine`]:
//!
//! ```json
//! {"input":"time_report","key":"P0001","content_type":"application/x-protobuf","value":"CgVldi0x..."}
//! ```
//!
//! - `input`: `time_report` or `invoice`, the input topic it goes to (the
//!   configuration names the topics);
//! - `key`: the record's key (a provider id);
//! - `content_type`: its `content-type` header, left out for a record
//!   without one;
//! - `value`: its value, base64 (standard alphabet, padded);
//! - `broadcast`: `true` for a record that goes to every partition of its
//!   topic (a source heartbeat), left out otherwise.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::codec::CodecError;
use crate::decode::Format;
use crate::engine::Input;
use crate::model::reference::ReferenceKind;
use crate::proto::v1 as wire;

/// One Kafka record for an input topic, a line of a records file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaRecordLine {
    /// The input topic it goes to.
    pub input: Input,
    /// Its key.
    pub key: String,
    /// Its `content-type` header, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Its value (base64 in the file).
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
    /// Whether it goes to every partition of its topic (a heartbeat).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broadcast: bool,
    /// Reference data goes to the topic of its kind, not to `input`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceKind>,
}

impl KafkaRecordLine {
    /// The records an event is sent as: a time report or an invoice to its
    /// topic, keyed by provider id (as Kafka's keyed partitioner and the
    /// service's partitions expect), the message in `format` with that
    /// format's `content-type`; a source heartbeat to every partition of
    /// both topics, in its envelope (content type with
    /// `proto=tillsyn.v1.Event`). None for an envelope without a kind.
    pub fn event(event: &wire::Event, format: Format) -> Result<Vec<Self>, serde_json::Error> {
        fn encode<M: prost::Message + Serialize>(message: &M, format: Format) -> Result<Vec<u8>, serde_json::Error> {
            match format {
                Format::Protobuf => Ok(message.encode_to_vec()),
                Format::Json => serde_json::to_vec(message),
            }
        }
        let (input, key, value) = match &event.kind {
            Some(wire::event::Kind::TimeReport(t)) => (Input::TimeReports, &t.provider_id, encode(t, format)?),
            Some(wire::event::Kind::Invoice(i)) => (Input::Invoices, &i.provider_id, encode(i, format)?),
            Some(wire::event::Kind::Heartbeat(_)) => {
                let value = encode(event, format)?;
                let content_type = format!("{}; proto=tillsyn.v1.Event", format.content_type());
                return Ok([Input::TimeReports, Input::Invoices]
                    .into_iter()
                    .map(|input| KafkaRecordLine {
                        input,
                        key: String::new(),
                        content_type: Some(content_type.clone()),
                        value: value.clone(),
                        broadcast: true,
                        reference: None,
                    })
                    .collect());
            }
            Some(wire::event::Kind::GrantedHours(g)) => {
                return Ok(vec![reference(ReferenceKind::GrantedHours, &g.decision_id, encode(g, format)?, format)]);
            }
            Some(wire::event::Kind::ClientAbsence(a)) => {
                return Ok(vec![reference(ReferenceKind::Absences, &a.absence_id, encode(a, format)?, format)]);
            }
            Some(wire::event::Kind::ProviderPermit(p)) => {
                return Ok(vec![reference(ReferenceKind::ProviderRegister, &p.permit_id, encode(p, format)?, format)]);
            }
            None => return Ok(Vec::new()),
        };
        Ok(vec![KafkaRecordLine {
            input,
            key: key.clone(),
            content_type: Some(format.content_type().to_string()),
            value,
            broadcast: false,
            reference: None,
        }])
    }
}

impl KafkaRecordLine {
    /// [`Self::event`], and with `reference` (the scenario has reference
    /// data) a heartbeat also to every partition of each reference-data
    /// topic: the same source clock, after the inputs' copies. Keyed
    /// [`REFERENCE_HEARTBEAT_KEY`] (a compacted topic takes no record
    /// without a key; compaction keeps each partition's newest heartbeat).
    pub fn event_for(event: &wire::Event, format: Format, reference: bool) -> Result<Vec<Self>, serde_json::Error> {
        let mut lines = Self::event(event, format)?;
        if reference && matches!(event.kind, Some(wire::event::Kind::Heartbeat(_))) {
            let first = lines.first().cloned();
            if let Some(first) = first {
                lines.extend(ReferenceKind::ALL.map(|kind| KafkaRecordLine {
                    key: REFERENCE_HEARTBEAT_KEY.to_string(),
                    reference: Some(kind),
                    ..first.clone()
                }));
            }
        }
        Ok(lines)
    }
}

/// The key of a source heartbeat on a reference-data topic.
pub const REFERENCE_HEARTBEAT_KEY: &str = "tillsyn-heartbeat";

/// A reference record: keyed by its fact's id (its topic is compacted by
/// it), the bare message with a `content-type` naming it.
fn reference(kind: ReferenceKind, id: &str, value: Vec<u8>, format: Format) -> KafkaRecordLine {
    let message = match kind {
        ReferenceKind::GrantedHours => "GrantedHours",
        ReferenceKind::Absences => "ClientAbsence",
        ReferenceKind::ProviderRegister => "ProviderPermit",
    };
    KafkaRecordLine {
        input: Input::TimeReports,
        key: id.to_string(),
        content_type: Some(format!("{}; proto=tillsyn.v1.{message}", format.content_type())),
        value,
        broadcast: false,
        reference: Some(kind),
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// Writes a records file, one line per [`KafkaRecordLine`].
pub struct RecordWriter<W: Write> {
    out: W,
    count: u64,
}

impl RecordWriter<BufWriter<File>> {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, CodecError> {
        Ok(RecordWriter::new(BufWriter::with_capacity(1 << 20, File::create(path)?)))
    }
}

impl<W: Write> RecordWriter<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        RecordWriter { out, count: 0 }
    }

    /// Appends one record.
    pub fn write(&mut self, record: &KafkaRecordLine) -> Result<(), CodecError> {
        serde_json::to_writer(&mut self.out, record).map_err(io::Error::from)?;
        self.out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// How many records were written.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CodecError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a records file: an iterator over its records in file order, an
/// error naming the line for one that is not a [`KafkaRecordLine`]. Blank
/// lines are skipped.
pub struct RecordReader<R: BufRead> {
    input: R,
    line: String,
    number: usize,
}

impl RecordReader<BufReader<File>> {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self, CodecError> {
        Ok(RecordReader::new(BufReader::with_capacity(1 << 20, File::open(path)?)))
    }
}

impl<R: BufRead> RecordReader<R> {
    /// Reads from `input`.
    pub fn new(input: R) -> Self {
        RecordReader { input, line: String::new(), number: 0 }
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<KafkaRecordLine, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            match self.input.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e.into())),
            }
            self.number += 1;
            let text = self.line.trim();
            if !text.is_empty() {
                let line = self.number;
                return Some(serde_json::from_str(text).map_err(|source| CodecError::Json { line, source }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn report() -> wire::Event {
        wire::Event {
            kind: Some(wire::event::Kind::TimeReport(wire::TimeReport {
                event_id: "ev-1".into(),
                provider_id: "P0001".into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_line_is_the_documented_json() {
        let record = KafkaRecordLine {
            input: Input::Invoices,
            key: "P7".into(),
            content_type: Some("application/json".into()),
            value: b"{}\xff".to_vec(),
            broadcast: false,
            reference: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(json, r#"{"input":"invoice","key":"P7","content_type":"application/json","value":"e33/"}"#);
        assert_eq!(serde_json::from_str::<KafkaRecordLine>(&json).unwrap(), record);

        let bare = KafkaRecordLine { input: Input::TimeReports, content_type: None, value: vec![], ..record };
        let json = serde_json::to_string(&bare).unwrap();
        assert_eq!(json, r#"{"input":"time_report","key":"P7","value":""}"#);
        assert_eq!(serde_json::from_str::<KafkaRecordLine>(&json).unwrap(), bare);
    }

    #[test]
    fn an_event_is_keyed_by_provider_in_either_format() {
        let event = report();
        let Some(wire::event::Kind::TimeReport(t)) = &event.kind else { unreachable!() };
        let pb = KafkaRecordLine::event(&event, Format::Protobuf).unwrap().remove(0);
        assert_eq!((pb.input, pb.key.as_str()), (Input::TimeReports, "P0001"));
        assert_eq!(pb.content_type.as_deref(), Some("application/x-protobuf"));
        assert_eq!(wire::TimeReport::decode(pb.value.as_slice()).unwrap(), *t);
        let json = KafkaRecordLine::event(&event, Format::Json).unwrap().remove(0);
        assert_eq!(json.content_type.as_deref(), Some("application/json"));
        assert_eq!(serde_json::from_slice::<wire::TimeReport>(&json.value).unwrap(), *t);
        assert_eq!(KafkaRecordLine::event(&wire::Event { kind: None }, Format::Json).unwrap(), vec![]);
    }

    #[test]
    fn a_heartbeat_goes_to_every_partition_of_both_topics_and_decodes_there() {
        use crate::decode::decode_record;
        use crate::model::DomainEvent;
        use crate::model::pseudonym::Pseudonymizer;
        use crate::model::validate::Validator;
        let at = pbjson_types::Timestamp { seconds: 1_772_000_000, nanos: 0 };
        let event = wire::Event { kind: Some(wire::event::Kind::Heartbeat(wire::SourceHeartbeat { at: Some(at) })) };
        let validator = Validator::new(Pseudonymizer::from_secret("s"));
        for format in [Format::Protobuf, Format::Json] {
            let records = KafkaRecordLine::event(&event, format).unwrap();
            assert_eq!(records.iter().map(|r| r.input).collect::<Vec<_>>(), [Input::TimeReports, Input::Invoices]);
            for r in &records {
                assert!(r.broadcast && r.key.is_empty());
                let json = serde_json::to_string(r).unwrap();
                assert!(json.ends_with(r#","broadcast":true}"#), "{json}");
                let heartbeat = Ok(DomainEvent::Heartbeat(crate::model::EventTime(1_772_000_000)));
                let decoded =
                    decode_record(r.input, Some(&r.value), r.content_type.as_deref(), Format::Protobuf, &validator);
                assert_eq!(decoded, heartbeat, "{format:?}");
                // Without its content type too: the envelope is recognised.
                let plain = decode_record(r.input, Some(&r.value), None, format, &validator);
                assert_eq!(plain, heartbeat, "{format:?} without a content type");
            }
        }
    }

    #[test]
    fn a_file_round_trips_and_a_bad_line_is_named() {
        let records: Vec<_> = [Format::Protobuf, Format::Json]
            .into_iter()
            .map(|f| KafkaRecordLine::event(&report(), f).unwrap().remove(0))
            .collect();
        let mut writer = RecordWriter::new(Vec::new());
        for r in &records {
            writer.write(r).unwrap();
        }
        assert_eq!(writer.count(), 2);
        let mut bytes = writer.finish().unwrap();
        bytes.extend_from_slice(b"\n");
        let read: Vec<_> = RecordReader::new(bytes.as_slice()).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, records);

        bytes.extend_from_slice(b"{\"input\":\"invoice\",\"key\":\"P\",\"value\":\"not base64!\"}\n");
        let errors: Vec<_> = RecordReader::new(bytes.as_slice()).filter_map(Result::err).collect();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().starts_with("line 4: invalid JSON"), "{}", errors[0]);
        let unknown = br#"{"input":"alert","key":"P","value":""}"#;
        assert!(RecordReader::new(&unknown[..]).next().unwrap().is_err());
    }
}
