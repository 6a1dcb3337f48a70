//! One Kafka record in, a validated [`DomainEvent`] or a dead-letter
//! [`Rejection`] out. Pure: no Kafka types, no I/O; the Kafka loop passes the
//! record's value and `content-type` header.
//!
//! # What a record may hold
//!
//! On the time-report topic a `tillsyn.v1.TimeReport`, on the invoice topic a
//! `tillsyn.v1.Invoice`; on either, alternatively, the `tillsyn.v1.Event`
//! envelope (what the NDJSON files hold) with the matching kind. Anything of
//! the other kind is rejected as `wrong_event_kind`.
//!
//! # Format
//!
//! The `content-type` header chooses the format; a record without one (or
//! with an empty one) is in the topic's configured default format:
//!
//! | content type | format |
//! |---|---|
//! | `application/x-protobuf`, `application/protobuf`, `application/vnd.google.protobuf` | protobuf |
//! | `application/json` (`charset`, if given, must be `utf-8`) | proto3 JSON |
//!
//! Media types and parameter names are case-insensitive. An optional
//! parameter `proto` names the message, e.g.
//! `application/x-protobuf; proto=tillsyn.v1.Event` (the convention of
//! Prometheus and others): `tillsyn.v1.Event`, `tillsyn.v1.TimeReport` or
//! `tillsyn.v1.Invoice`; any other value, `encoding=delimited`, or another
//! media type is `unsupported_content_type`.
//!
//! # Bare message or envelope
//!
//! Without a `proto` parameter the shape is read from the payload:
//!
//! - **protobuf**: an envelope is exactly one length-delimited field numbered
//!   1 (`time_report`) or 2 (`invoice`) spanning the whole payload; anything
//!   else is read as the bare message. A valid bare message always has more
//!   than one field (event or invoice id, provider id, ...), so this never
//!   mistakes a valid bare message for an envelope; a message merged from
//!   two envelopes (two top-level fields) is not recognised as one.
//! - **JSON**: an envelope is an object whose first key is `timeReport`,
//!   `time_report` or `invoice` (the envelope's only keys, which no bare
//!   message has).
//!
//! A bare message that fails to decode as its topic's kind but decodes and
//! validates as the other kind is `wrong_event_kind` rather than a decode
//! error (protobuf is not self-describing, so this is a second attempt, on
//! the failure path only).
//!
//! # Limits and personal data
//!
//! Payloads over [`MAX_PAYLOAD_BYTES`] are `payload_too_large` (not
//! decoded). JSON nesting is bounded by `serde_json`'s recursion limit (128),
//! protobuf nesting by prost's (100): deeply nested input is a decode error,
//! never a stack overflow. A rejection's detail is the decoder's or
//! validator's message, with the payload values it quotes replaced by `…`
//! (a mistyped client reference gives ``invalid type: integer `…` ``) and
//! cut to [`MAX_DETAIL_CHARS`] characters, so it can be logged.
//!
//! # Dead-letter records
//!
//! A rejected record is written to the dead-letter topic with its original
//! key, value and headers, plus the headers of [`dead_letter_headers`].

use std::fmt;

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::engine::Input;
use crate::model::DomainEvent;
use crate::model::validate::{ValidationError, Validator};
use crate::proto::v1 as wire;

/// Largest accepted payload: 1 MiB, Kafka's default `message.max.bytes`.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Longest rejection detail, in characters.
pub const MAX_DETAIL_CHARS: usize = 200;
/// The record header naming the payload's format (matched case-insensitively
/// by [`content_type_header`]).
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// Dead-letter header: the rejection reason.
pub const DLQ_REASON_HEADER: &str = "tillsyn-dlq-reason";
/// Dead-letter header: the rejection detail.
pub const DLQ_DETAIL_HEADER: &str = "tillsyn-dlq-detail";
/// Dead-letter header: the topic the record was read from.
pub const DLQ_SOURCE_TOPIC_HEADER: &str = "tillsyn-dlq-source-topic";
/// Dead-letter header: its partition (decimal).
pub const DLQ_SOURCE_PARTITION_HEADER: &str = "tillsyn-dlq-source-partition";
/// Dead-letter header: its offset (decimal).
pub const DLQ_SOURCE_OFFSET_HEADER: &str = "tillsyn-dlq-source-offset";

pub mod reference;

pub use reference::decode_reference_record;

/// The rejection reasons of decoding. Validation adds the reasons of
/// [`ValidationError::reason`].
pub mod reason {
    /// No value, or an empty one (e.g. a tombstone).
    pub const EMPTY_PAYLOAD: &str = "empty_payload";
    /// Over [`super::MAX_PAYLOAD_BYTES`].
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// Not the expected protobuf message.
    pub const PROTOBUF_DECODE: &str = "protobuf_decode";
    /// Not the expected proto3-JSON message.
    pub const JSON_DECODE: &str = "json_decode";
    /// A `content-type` this decoder does not read.
    pub const UNSUPPORTED_CONTENT_TYPE: &str = "unsupported_content_type";
    /// An invoice on the time-report topic or the reverse.
    pub const WRONG_EVENT_KIND: &str = "wrong_event_kind";
    /// A valid record whose event time is far ahead of its source's clock
    /// (the newest source heartbeat of its partition): a date typed wrong.
    pub const EVENT_TIME_AHEAD_OF_SOURCE: &str = "event_time_ahead_of_source";
    /// A time report checked in long after it was reported.
    pub const CHECK_IN_AFTER_REPORT: &str = "check_in_after_report";
    /// An invoice billing a period that ends long after its issue.
    pub const PERIOD_END_AFTER_ISSUE: &str = "period_end_after_issue";
    /// A record of a new provider in a partition that holds
    /// `core.limits.providers` already.
    pub const STATE_LIMIT_PROVIDERS: &str = "state_limit_providers";
    /// A visit of a new client of a provider that holds
    /// `core.limits.clients_per_provider` already.
    pub const STATE_LIMIT_CLIENTS: &str = "state_limit_clients";
    /// An invoice that would wait beside `core.limits.pending_invoices_per_provider` others.
    pub const STATE_LIMIT_PENDING_INVOICES: &str = "state_limit_pending_invoices";
    /// A reference record where reference data is off (`core.reference.enabled`).
    pub const REFERENCE_DATA_OFF: &str = "reference_data_off";
    /// A reference version registered behind its source's progress (see
    /// `core.reference.lateness`).
    pub const REFERENCE_LATE: &str = "reference_late";
    /// Every reason above (e.g. to pre-register metric labels).
    pub const ALL: [&str; 14] = [
        EMPTY_PAYLOAD,
        PAYLOAD_TOO_LARGE,
        PROTOBUF_DECODE,
        JSON_DECODE,
        UNSUPPORTED_CONTENT_TYPE,
        WRONG_EVENT_KIND,
        EVENT_TIME_AHEAD_OF_SOURCE,
        CHECK_IN_AFTER_REPORT,
        PERIOD_END_AFTER_ISSUE,
        STATE_LIMIT_PROVIDERS,
        STATE_LIMIT_CLIENTS,
        STATE_LIMIT_PENDING_INVOICES,
        REFERENCE_DATA_OFF,
        REFERENCE_LATE,
    ];
}

/// A payload format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Protobuf binary encoding.
    #[default]
    Protobuf,
    /// The standard proto3 JSON mapping.
    Json,
}

impl Format {
    /// The content type to put in the `content-type` header of records
    /// written in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Why a record was not accepted: a stable `reason` (dead-letter header and
/// metric label) and a human `detail` without personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// One of [`reason::ALL`] or a [`ValidationError::reason`].
    pub reason: &'static str,
    /// What exactly, at most [`MAX_DETAIL_CHARS`] characters.
    pub detail: String,
}

impl Rejection {
    /// A rejection with `detail` redacted (quoted values) and truncated.
    pub fn new(reason: &'static str, detail: impl fmt::Display) -> Self {
        let redacted = redact_quoted(&detail.to_string());
        // A header value or a payload may bring control characters; a
        // dead-letter header and a log line must not carry them.
        let printable: String = redacted.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
        Rejection { reason, detail: truncate(&printable, MAX_DETAIL_CHARS) }
    }
}

impl From<ValidationError> for Rejection {
    fn from(e: ValidationError) -> Self {
        Rejection::new(e.reason(), e)
    }
}

/// The message a record declares or is found to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Envelope,
    Bare(Input),
}

/// A decoded wire message, unwrapped from its envelope.
enum Decoded {
    TimeReport(wire::TimeReport),
    Invoice(wire::Invoice),
    Heartbeat(wire::SourceHeartbeat),
}

impl Decoded {
    /// The input whose topic the record belongs on; none for a heartbeat,
    /// which belongs on both.
    fn input(&self) -> Option<Input> {
        match self {
            Decoded::TimeReport(_) => Some(Input::TimeReports),
            Decoded::Invoice(_) => Some(Input::Invoices),
            Decoded::Heartbeat(_) => None,
        }
    }
}

/// Decodes and validates one record of `input`'s topic. `payload` is the
/// record's value, `content_type` its `content-type` header (see
/// [`content_type_header`]), `default_format` the topic's format for records
/// without one.
pub fn decode_record(
    input: Input,
    payload: Option<&[u8]>,
    content_type: Option<&str>,
    default_format: Format,
    validator: &Validator,
) -> Result<DomainEvent, Rejection> {
    let event = decode_message(input, payload, content_type, default_format, validator)?;
    validator.event(&event).map_err(Rejection::from)
}

/// The first half of [`decode_record`]: the record's message as it came,
/// in its envelope, not validated (its references in clear), or the
/// decoding's rejection. For tools that show a record (`tillsyn
/// evidence`); validating it with [`Validator::event`] gives what
/// [`decode_record`] gives.
pub fn decode_message(
    input: Input,
    payload: Option<&[u8]>,
    content_type: Option<&str>,
    default_format: Format,
    validator: &Validator,
) -> Result<wire::Event, Rejection> {
    let payload = payload_within_limits(payload)?;
    let (format, declared) = match content_type.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => parse_content_type(c)?,
        None => (default_format, None),
    };
    let decoded = match format {
        Format::Protobuf => decode_protobuf(input, payload, declared, validator)?,
        Format::Json => decode_json(input, payload, declared, validator)?,
    };
    if let Some(kind) = decoded.input()
        && kind != input
    {
        return Err(wrong_kind(input, kind));
    }
    let kind = match decoded {
        Decoded::TimeReport(t) => wire::event::Kind::TimeReport(t),
        Decoded::Invoice(i) => wire::event::Kind::Invoice(i),
        Decoded::Heartbeat(h) => wire::event::Kind::Heartbeat(h),
    };
    Ok(wire::Event { kind: Some(kind) })
}

/// The value of the last `content-type` header (name matched
/// case-insensitively) among a record's `headers`; a header without a value
/// counts as absent, one that is not UTF-8 is `unsupported_content_type`.
pub fn content_type_header<'a>(
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> Result<Option<&'a str>, Rejection> {
    let value = headers.into_iter().filter(|(k, _)| k.eq_ignore_ascii_case(CONTENT_TYPE_HEADER)).last();
    match value.and_then(|(_, v)| v) {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Rejection::new(reason::UNSUPPORTED_CONTENT_TYPE, "the content-type header is not UTF-8")),
    }
}

/// The headers added to a rejected record on the dead-letter topic:
/// [`DLQ_REASON_HEADER`], [`DLQ_DETAIL_HEADER`], [`DLQ_SOURCE_TOPIC_HEADER`],
/// [`DLQ_SOURCE_PARTITION_HEADER`] and [`DLQ_SOURCE_OFFSET_HEADER`], values
/// in UTF-8 (numbers in decimal). The caller keeps the original key, value
/// and headers, dropping any `tillsyn-dlq-*` headers the record already had.
pub fn dead_letter_headers(
    rejection: &Rejection,
    source_topic: &str,
    partition: i32,
    offset: i64,
) -> Vec<(String, Vec<u8>)> {
    vec![
        (DLQ_REASON_HEADER.to_string(), rejection.reason.as_bytes().to_vec()),
        (DLQ_DETAIL_HEADER.to_string(), rejection.detail.as_bytes().to_vec()),
        (DLQ_SOURCE_TOPIC_HEADER.to_string(), source_topic.as_bytes().to_vec()),
        (DLQ_SOURCE_PARTITION_HEADER.to_string(), partition.to_string().into_bytes()),
        (DLQ_SOURCE_OFFSET_HEADER.to_string(), offset.to_string().into_bytes()),
    ]
}

const PROTOBUF_TYPES: [&str; 3] = ["application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf"];

/// A record's value, if it has one within [`MAX_PAYLOAD_BYTES`].
fn payload_within_limits(payload: Option<&[u8]>) -> Result<&[u8], Rejection> {
    let payload = match payload {
        Some(p) if !p.is_empty() => p,
        _ => return Err(Rejection::new(reason::EMPTY_PAYLOAD, "the record has no value")),
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Rejection::new(
            reason::PAYLOAD_TOO_LARGE,
            format_args!("{} bytes, limit {MAX_PAYLOAD_BYTES}", payload.len()),
        ));
    }
    Ok(payload)
}

/// The format and, if declared by a `proto` parameter, the message shape.
fn parse_content_type(content_type: &str) -> Result<(Format, Option<Shape>), Rejection> {
    let (format, proto) = parse_media_type(content_type)?;
    let shape = match proto {
        None => None,
        Some("tillsyn.v1.Event") => Some(Shape::Envelope),
        Some("tillsyn.v1.TimeReport") => Some(Shape::Bare(Input::TimeReports)),
        Some("tillsyn.v1.Invoice") => Some(Shape::Bare(Input::Invoices)),
        Some(_) => return Err(unsupported(content_type, "proto must be tillsyn.v1.Event, TimeReport or Invoice")),
    };
    Ok((format, shape))
}

/// `unsupported_content_type`, saying why.
fn unsupported(content_type: &str, why: &str) -> Rejection {
    Rejection::new(reason::UNSUPPORTED_CONTENT_TYPE, format_args!("content type `{content_type}`: {why}"))
}

/// The format of a `content-type` and the message its `proto` parameter
/// names (without a leading `.`), if any; a media type other than protobuf
/// or JSON, JSON not in UTF-8 or delimited protobuf is refused.
fn parse_media_type(content_type: &str) -> Result<(Format, Option<&str>), Rejection> {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let format = if PROTOBUF_TYPES.contains(&media.as_str()) {
        Format::Protobuf
    } else if media == "application/json" {
        Format::Json
    } else {
        return Err(unsupported(content_type, "expected application/x-protobuf or application/json"));
    };
    let mut proto = None;
    for param in parts.map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().trim_matches('"');
        match name.as_str() {
            "charset" if format == Format::Json && !matches!(value.to_ascii_lowercase().as_str(), "utf-8" | "utf8") => {
                return Err(unsupported(content_type, "JSON must be UTF-8"));
            }
            "encoding" if format == Format::Protobuf => {
                return Err(unsupported(content_type, "one message per record is read, not a delimited stream"));
            }
            "proto" => proto = Some(value.trim_start_matches('.')),
            _ => {}
        }
    }
    Ok((format, proto))
}

fn wrong_kind(expected: Input, found: Input) -> Rejection {
    Rejection::new(reason::WRONG_EVENT_KIND, format_args!("{} record on the {} topic", found.name(), expected.name()))
}

fn other(input: Input) -> Input {
    match input {
        Input::TimeReports => Input::Invoices,
        Input::Invoices => Input::TimeReports,
    }
}

fn from_envelope(event: wire::Event, validator: &Validator) -> Result<Decoded, Rejection> {
    match event.kind {
        Some(wire::event::Kind::TimeReport(t)) => Ok(Decoded::TimeReport(t)),
        Some(wire::event::Kind::Invoice(i)) => Ok(Decoded::Invoice(i)),
        Some(wire::event::Kind::Heartbeat(h)) => Ok(Decoded::Heartbeat(h)),
        Some(
            wire::event::Kind::GrantedHours(_)
            | wire::event::Kind::ClientAbsence(_)
            | wire::event::Kind::ProviderPermit(_),
        ) => {
            Err(Rejection::new(reason::WRONG_EVENT_KIND, "reference data on an event topic: it has topics of its own"))
        }
        // The validator's rejection of an envelope without a kind.
        None => Err(validator.event(&wire::Event { kind: None }).expect_err("an empty envelope is invalid").into()),
    }
}

/// Whether a bare message of the other kind decodes and validates: then the
/// record is on the wrong topic rather than broken.
fn is_other_kind(input: Input, decode_other: impl FnOnce() -> Option<Decoded>, validator: &Validator) -> bool {
    match decode_other() {
        Some(Decoded::TimeReport(t)) => input == Input::Invoices && validator.time_report(&t).is_ok(),
        Some(Decoded::Invoice(i)) => input == Input::TimeReports && validator.invoice(&i).is_ok(),
        Some(Decoded::Heartbeat(_)) | None => false,
    }
}

// ---------------------------------------------------------------- Protobuf

fn decode_protobuf(
    input: Input,
    bytes: &[u8],
    declared: Option<Shape>,
    validator: &Validator,
) -> Result<Decoded, Rejection> {
    let decode = |kind: Input| -> Result<Decoded, prost::DecodeError> {
        Ok(match kind {
            Input::TimeReports => Decoded::TimeReport(wire::TimeReport::decode(bytes)?),
            Input::Invoices => Decoded::Invoice(wire::Invoice::decode(bytes)?),
        })
    };
    let error = |e: prost::DecodeError| Rejection::new(reason::PROTOBUF_DECODE, e);
    match declared.unwrap_or_else(|| sniff_protobuf(input, bytes)) {
        Shape::Envelope => from_envelope(wire::Event::decode(bytes).map_err(error)?, validator),
        Shape::Bare(kind) if kind != input => Err(wrong_kind(input, kind)),
        Shape::Bare(kind) => decode(kind).map_err(|e| {
            if is_other_kind(input, || decode(other(input)).ok(), validator) {
                wrong_kind(input, other(input))
            } else {
                error(e)
            }
        }),
    }
}

/// An envelope is exactly one length-delimited field 1, 2 or 3 spanning the
/// whole payload; anything else is read as the bare message of `input`.
fn sniff_protobuf(input: Input, mut bytes: &[u8]) -> Shape {
    use prost::encoding::decode_varint;
    const LENGTH_DELIMITED: u64 = 2;
    let Ok(key) = decode_varint(&mut bytes) else { return Shape::Bare(input) };
    if key & 7 != LENGTH_DELIMITED || !matches!(key >> 3, 1..=3) {
        return Shape::Bare(input);
    }
    match decode_varint(&mut bytes) {
        Ok(len) if len == bytes.len() as u64 => Shape::Envelope,
        _ => Shape::Bare(input),
    }
}

// -------------------------------------------------------------------- JSON

fn decode_json(
    input: Input,
    bytes: &[u8],
    declared: Option<Shape>,
    validator: &Validator,
) -> Result<Decoded, Rejection> {
    let decode = |kind: Input| -> Result<Decoded, serde_json::Error> {
        Ok(match kind {
            Input::TimeReports => Decoded::TimeReport(serde_json::from_slice(bytes)?),
            Input::Invoices => Decoded::Invoice(serde_json::from_slice(bytes)?),
        })
    };
    let error = |e: serde_json::Error| Rejection::new(reason::JSON_DECODE, e);
    let shape = declared.unwrap_or_else(|| if json_is_envelope(bytes) { Shape::Envelope } else { Shape::Bare(input) });
    match shape {
        Shape::Envelope => from_envelope(serde_json::from_slice(bytes).map_err(error)?, validator),
        Shape::Bare(kind) if kind != input => Err(wrong_kind(input, kind)),
        Shape::Bare(kind) => match decode(kind) {
            // Unknown fields are ignored, so the other kind's message also
            // parses as this one, with this kind's fields missing.
            Ok(decoded)
                if !is_valid(&decoded, validator) && is_other_kind(input, || decode(other(input)).ok(), validator) =>
            {
                Err(wrong_kind(input, other(input)))
            }
            Ok(decoded) => Ok(decoded),
            Err(_) if is_other_kind(input, || decode(other(input)).ok(), validator) => {
                Err(wrong_kind(input, other(input)))
            }
            Err(e) => Err(error(e)),
        },
    }
}

fn is_valid(decoded: &Decoded, validator: &Validator) -> bool {
    match decoded {
        Decoded::TimeReport(t) => validator.time_report(t).is_ok(),
        Decoded::Invoice(i) => validator.invoice(i).is_ok(),
        Decoded::Heartbeat(h) => validator.heartbeat(h).is_ok(),
    }
}

/// Whether the payload is a JSON object whose first key is one of the
/// envelope's (`timeReport`, `time_report`, `invoice`). Reads only up to the
/// end of that key.
fn json_is_envelope(bytes: &[u8]) -> bool {
    let skip_ws =
        |b: &[u8]| -> usize { b.iter().position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r')).unwrap_or(b.len()) };
    let start = skip_ws(bytes);
    let Some(rest) = bytes[start..].strip_prefix(b"{") else { return false };
    let rest = &rest[skip_ws(rest)..];
    if !rest.starts_with(b"\"") {
        return false;
    }
    // The key is decoded by serde_json (escapes included); it stops after
    // the string, before the `:`.
    let mut keys = serde_json::Deserializer::from_slice(rest).into_iter::<String>();
    matches!(keys.next(), Some(Ok(k)) if matches!(k.as_str(), "timeReport" | "time_report" | "invoice" | "heartbeat"))
}

// ------------------------------------------------------------------ Detail

/// Replaces the payload values decoders quote in their messages by `…`:
/// every double-quoted span (strings, with Rust escapes) and the
/// backtick-quoted numbers, characters and unknown enum names serde reports
/// (``integer `42` ``, ``unknown variant `X` ``). Other backtick-quoted
/// names (fields, the expected variants) are kept. An unterminated span
/// runs to the end.
fn redact_quoted(message: &str) -> String {
    const VALUE_PREFIXES: [&str; 4] = ["integer ", "floating point ", "character ", "unknown variant "];
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        let close = match c {
            '"' => '"',
            '`' if VALUE_PREFIXES.iter().any(|p| out.ends_with(p)) => '`',
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push(c);
        out.push('…');
        out.push(close);
        if close == '`' {
            // The value may itself hold backticks (found by fuzzing: an
            // enum name "X`,Y`"): it ends where serde's text resumes, at
            // "`, expected"; without that, redact to the end.
            let rest = chars.as_str();
            match rest.find("`, expected") {
                Some(end) => chars = rest[end + 1..].chars(),
                None => chars = "".chars(),
            }
            continue;
        }
        while let Some(q) = chars.next() {
            if q == '\\' && close == '"' {
                chars.next();
            } else if q == close {
                break;
            }
        }
    }
    out
}

/// At most `max` characters; a cut string ends in `…`.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::{invoice, report};
    use crate::model::pseudonym::Pseudonymizer;

    const PROTOBUF: Option<&str> = Some("application/x-protobuf");
    const JSON: Option<&str> = Some("application/json");

    fn validator() -> Validator {
        Validator::new(Pseudonymizer::from_secret("test"))
    }

    fn envelope(kind: wire::event::Kind) -> Vec<u8> {
        wire::Event { kind: Some(kind) }.encode_to_vec()
    }

    /// The time report of [`report`] as an independent client writes proto3
    /// JSON: lowerCamelCase, enums by name, RFC 3339 with `Z`.
    const REPORT_JSON: &str = r#"{
        "eventId": "tr-1", "providerId": "556036-0793", "municipalityCode": "2480",
        "clientRef": "c-1", "staffRef": "s-1", "serviceType": "SERVICE_TYPE_PERSONAL_CARE",
        "checkIn": "2026-01-01T07:00:00Z", "checkOut": "2026-01-01T07:30:00Z",
        "registrationMethod": "REGISTRATION_METHOD_NFC", "plannedMinutes": 30,
        "clientHome": {"latitude": 63.83, "longitude": 20.26}, "reportedAt": "2026-01-01T07:31:40Z"
    }"#;

    /// The invoice of [`invoice`], int64 fields as strings (the canonical
    /// mapping) in the line and as a number in the total (also accepted).
    const INVOICE_JSON: &str = r#"{
        "invoiceId": "inv-1", "providerId": "556036-0793", "municipalityCode": "2480",
        "periodStart": "2025-12-31T23:00:00Z", "periodEnd": "2026-01-31T23:00:00Z",
        "issuedAt": "2026-02-05T14:00:00Z",
        "lines": [{"clientRef": "c-1", "serviceType": "SERVICE_TYPE_SERVICE",
                   "minutes": "120", "tariffOrePerHour": 42600, "amountOre": "85200"}],
        "totalOre": 85200
    }"#;

    fn decode(input: Input, payload: &[u8], content_type: Option<&str>) -> Result<DomainEvent, Rejection> {
        decode_record(input, Some(payload), content_type, Format::Protobuf, &validator())
    }

    fn reason_of(input: Input, payload: &[u8], content_type: Option<&str>) -> &'static str {
        match decode(input, payload, content_type) {
            Ok(e) => panic!("expected a rejection, got {e:?}"),
            Err(r) => {
                assert!(r.detail.chars().count() <= MAX_DETAIL_CHARS, "{r:?}");
                r.reason
            }
        }
    }

    fn expected_visit() -> DomainEvent {
        DomainEvent::Visit(validator().time_report(&report()).unwrap())
    }

    fn expected_invoice() -> DomainEvent {
        DomainEvent::Invoice(validator().invoice(&invoice()).unwrap())
    }

    #[test]
    fn bare_protobuf_messages_are_accepted_on_their_topics() {
        let tr = report().encode_to_vec();
        let inv = invoice().encode_to_vec();
        assert_eq!(decode(Input::TimeReports, &tr, PROTOBUF), Ok(expected_visit()));
        assert_eq!(decode(Input::Invoices, &inv, PROTOBUF), Ok(expected_invoice()));
        // Without a content type the default format applies.
        assert_eq!(decode(Input::TimeReports, &tr, None), Ok(expected_visit()));
        assert_eq!(decode(Input::TimeReports, &tr, Some("  ")), Ok(expected_visit()), "blank is absent");
    }

    #[test]
    fn protobuf_envelopes_are_accepted_on_their_topics() {
        let tr = envelope(wire::event::Kind::TimeReport(report()));
        let inv = envelope(wire::event::Kind::Invoice(invoice()));
        assert_eq!(sniff_protobuf(Input::TimeReports, &tr), Shape::Envelope);
        assert_eq!(sniff_protobuf(Input::TimeReports, &report().encode_to_vec()), Shape::Bare(Input::TimeReports));
        assert_eq!(decode(Input::TimeReports, &tr, PROTOBUF), Ok(expected_visit()));
        assert_eq!(decode(Input::Invoices, &inv, PROTOBUF), Ok(expected_invoice()));
    }

    #[test]
    fn the_proto_parameter_declares_the_message() {
        let tr = report().encode_to_vec();
        let env = envelope(wire::event::Kind::TimeReport(report()));
        let declared = |m: &str| format!("application/x-protobuf; proto={m}");
        let ok = |payload: &[u8], ct: &str| decode(Input::TimeReports, payload, Some(ct));
        assert_eq!(ok(&tr, &declared("tillsyn.v1.TimeReport")), Ok(expected_visit()));
        assert_eq!(ok(&env, &declared("\"tillsyn.v1.Event\"")), Ok(expected_visit()));
        // Declared as an envelope, a bare report is not one.
        assert_eq!(reason_of(Input::TimeReports, &tr, Some(&declared("tillsyn.v1.Event"))), "protobuf_decode");
        assert_eq!(reason_of(Input::TimeReports, &tr, Some(&declared("tillsyn.v1.Invoice"))), "wrong_event_kind");
        assert_eq!(reason_of(Input::TimeReports, &tr, Some(&declared("tillsyn.v1.Alert"))), "unsupported_content_type");
    }

    #[test]
    fn protobuf_content_types_and_parameters_are_recognised() {
        let tr = report().encode_to_vec();
        for ct in ["application/protobuf", "application/vnd.google.protobuf", "Application/X-Protobuf; foo=bar"] {
            assert_eq!(decode(Input::TimeReports, &tr, Some(ct)), Ok(expected_visit()), "{ct}");
        }
        let json = REPORT_JSON.as_bytes();
        let default_json = decode_record(Input::TimeReports, Some(json), None, Format::Json, &validator());
        assert_eq!(default_json, Ok(expected_visit()), "the default format applies without a content type");
        assert_eq!(reason_of(Input::TimeReports, json, PROTOBUF), "protobuf_decode", "the header wins");
    }

    #[test]
    fn proto3_json_from_an_independent_client_is_accepted_bare() {
        assert_eq!(decode(Input::TimeReports, REPORT_JSON.as_bytes(), JSON), Ok(expected_visit()));
        assert_eq!(decode(Input::Invoices, INVOICE_JSON.as_bytes(), JSON), Ok(expected_invoice()));
        for ct in
            ["application/json; charset=utf-8", "APPLICATION/JSON;CHARSET=\"UTF-8\"", "application/json;charset=utf8"]
        {
            assert_eq!(decode(Input::TimeReports, REPORT_JSON.as_bytes(), Some(ct)), Ok(expected_visit()), "{ct}");
        }
        // int64 as numbers everywhere, original (snake_case) field names.
        let numbers =
            INVOICE_JSON.replace("\"120\"", "120").replace("\"85200\"", "85200").replace("totalOre", "total_ore");
        assert_eq!(decode(Input::Invoices, numbers.as_bytes(), JSON), Ok(expected_invoice()));
    }

    #[test]
    fn proto3_json_envelopes_are_accepted() {
        let tr = format!(" \n{{\"timeReport\": {REPORT_JSON}}}");
        let tr_snake = format!("{{\"time_report\": {REPORT_JSON}}}");
        let inv = format!("{{\"invoice\": {INVOICE_JSON}}}");
        assert_eq!(decode(Input::TimeReports, tr.as_bytes(), JSON), Ok(expected_visit()));
        assert_eq!(decode(Input::TimeReports, tr_snake.as_bytes(), JSON), Ok(expected_visit()));
        assert_eq!(decode(Input::Invoices, inv.as_bytes(), JSON), Ok(expected_invoice()));
        // What this crate's own NDJSON writer produces is accepted too.
        let own = serde_json::to_vec(&wire::Event { kind: Some(wire::event::Kind::Invoice(invoice())) }).unwrap();
        assert_eq!(decode(Input::Invoices, &own, JSON), Ok(expected_invoice()));
        // An envelope without a kind is the validator's missing field.
        assert_eq!(reason_of(Input::Invoices, br#"{"invoice": null}"#, JSON), "missing_field");
    }

    #[test]
    fn garbage_and_truncated_protobuf_are_protobuf_decode() {
        assert_eq!(reason_of(Input::TimeReports, &[0xff; 32], PROTOBUF), "protobuf_decode");
        assert_eq!(reason_of(Input::Invoices, b"hello, world", PROTOBUF), "protobuf_decode");
        let tr = report().encode_to_vec();
        assert_eq!(reason_of(Input::TimeReports, &tr[..tr.len() - 3], PROTOBUF), "protobuf_decode");
        let env = envelope(wire::event::Kind::Invoice(invoice()));
        assert_eq!(reason_of(Input::Invoices, &env[..env.len() - 3], PROTOBUF), "protobuf_decode");
    }

    #[test]
    fn bad_json_is_json_decode() {
        for bad in [&b"not json"[..], b"{\"eventId\": ", b"[1, 2]", b"{\"eventId\": \"x\"} trailing", b"\"str\""] {
            assert_eq!(reason_of(Input::TimeReports, bad, JSON), "json_decode", "{}", String::from_utf8_lossy(bad));
        }
        let bad_time = REPORT_JSON.replace("2026-01-01T07:00:00Z", "yesterday");
        assert_eq!(reason_of(Input::TimeReports, bad_time.as_bytes(), JSON), "json_decode");
        let broken_envelope = format!("{{\"timeReport\": {}}}", REPORT_JSON.replace("SERVICE_TYPE_", "ST_"));
        assert_eq!(reason_of(Input::TimeReports, broken_envelope.as_bytes(), JSON), "json_decode");
    }

    #[test]
    fn the_other_kind_is_wrong_event_kind_in_every_shape() {
        let w = "wrong_event_kind";
        let tr = report().encode_to_vec();
        let inv = invoice().encode_to_vec();
        assert_eq!(reason_of(Input::TimeReports, &inv, PROTOBUF), w, "bare invoice, time-report topic");
        assert_eq!(reason_of(Input::Invoices, &tr, PROTOBUF), w, "bare report, invoice topic");
        let inv_env = envelope(wire::event::Kind::Invoice(invoice()));
        let tr_env = envelope(wire::event::Kind::TimeReport(report()));
        assert_eq!(reason_of(Input::TimeReports, &inv_env, PROTOBUF), w);
        assert_eq!(reason_of(Input::Invoices, &tr_env, PROTOBUF), w);
        assert_eq!(reason_of(Input::TimeReports, INVOICE_JSON.as_bytes(), JSON), w);
        assert_eq!(reason_of(Input::Invoices, REPORT_JSON.as_bytes(), JSON), w);
        let inv_json_env = format!("{{\"invoice\": {INVOICE_JSON}}}");
        assert_eq!(reason_of(Input::TimeReports, inv_json_env.as_bytes(), JSON), w);
        let e = decode(Input::TimeReports, &inv_env, PROTOBUF).unwrap_err();
        assert_eq!(e.detail, "invoice record on the time_report topic");
    }

    #[test]
    fn unsupported_content_types_are_named() {
        let tr = report().encode_to_vec();
        for ct in [
            "text/plain",
            "application/octet-stream",
            "application/avro",
            "application/json; charset=iso-8859-1",
            "application/x-protobuf; encoding=delimited",
            "application/x-protobuf; proto=tillsyn.v2.Event",
        ] {
            assert_eq!(reason_of(Input::TimeReports, &tr, Some(ct)), "unsupported_content_type", "{ct}");
        }
        let e = decode(Input::TimeReports, &tr, Some("text/plain")).unwrap_err();
        assert!(e.detail.contains("text/plain"), "{e:?}");
    }

    #[test]
    fn empty_and_oversized_payloads_are_rejected_before_decoding() {
        let v = validator();
        for payload in [None, Some(&b""[..])] {
            let e = decode_record(Input::TimeReports, payload, JSON, Format::Json, &v).unwrap_err();
            assert_eq!(e.reason, "empty_payload");
        }
        // A valid record padded to exactly the limit is accepted; one byte more is not.
        let mut padded = REPORT_JSON.as_bytes().to_vec();
        padded.resize(MAX_PAYLOAD_BYTES, b' ');
        assert_eq!(decode(Input::TimeReports, &padded, JSON), Ok(expected_visit()));
        padded.push(b' ');
        assert_eq!(reason_of(Input::TimeReports, &padded, JSON), "payload_too_large");
        let huge = vec![0u8; 64 << 20];
        assert_eq!(reason_of(Input::TimeReports, &huge, PROTOBUF), "payload_too_large");
    }

    #[test]
    fn deep_nesting_is_a_decode_error_not_a_stack_overflow() {
        let depth = 100_000;
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // What the bound rests on: serde_json's recursion limit is on.
        let e = serde_json::from_str::<serde_json::Value>(&arrays).unwrap_err();
        assert!(e.to_string().contains("recursion limit exceeded"), "{e}");
        for payload in [
            arrays.clone(),
            format!("{{\"timeReport\": {arrays}}}"),
            format!("{{\"timeReport\": {{\"clientHome\": {arrays}}}}}"),
            format!("{{\"invoice\": {}", "{\"invoice\": ".repeat(depth / 2)),
        ] {
            for input in [Input::TimeReports, Input::Invoices] {
                assert_eq!(reason_of(input, payload.as_bytes(), JSON), "json_decode", "{}", &payload[..40]);
            }
        }
        // A field the message does not have is skipped without recursion
        // (serde_json's `IgnoredAny`), then the message lacks its fields.
        for (input, payload) in [
            (Input::TimeReports, format!("{{\"lines\": {arrays}}}")),
            (Input::Invoices, format!("{{\"eventId\": {arrays}}}")),
        ] {
            assert_eq!(reason_of(input, payload.as_bytes(), JSON), "missing_field", "{}", &payload[..40]);
        }
        assert_eq!(reason_of(Input::TimeReports, format!("{{\"eventId\": {arrays}}}").as_bytes(), JSON), "json_decode");
        assert_eq!(reason_of(Input::Invoices, format!("{{\"lines\": {arrays}}}").as_bytes(), JSON), "json_decode");
        // Protobuf: 100,000 nested start-group tags of an unknown field 15.
        let groups = vec![(15 << 3) | 3; depth];
        assert_eq!(reason_of(Input::TimeReports, &groups, PROTOBUF), "protobuf_decode");
    }

    #[test]
    fn validation_failures_carry_the_validators_reason() {
        let mut bad_provider = report();
        bad_provider.provider_id = "556036-0794".into();
        let e = decode(Input::TimeReports, &bad_provider.encode_to_vec(), PROTOBUF).unwrap_err();
        assert_eq!(
            (e.reason, e.detail.as_str()),
            (
                "malformed_organisation_number",
                "provider_id: malformed organisation number (check digit does not match)"
            )
        );
        let mismatch = INVOICE_JSON.replace("\"totalOre\": 85200", "\"totalOre\": \"85201\"");
        assert_eq!(reason_of(Input::Invoices, mismatch.as_bytes(), JSON), "total_mismatch");
        let unspecified = REPORT_JSON.replace("SERVICE_TYPE_PERSONAL_CARE", "SERVICE_TYPE_UNSPECIFIED");
        assert_eq!(reason_of(Input::TimeReports, unspecified.as_bytes(), JSON), "unknown_enum_value");
        assert_eq!(reason_of(Input::TimeReports, b"{}", JSON), "missing_field");
    }

    #[test]
    fn unknown_json_fields_are_ignored_and_misspelt_fields_are_missing() {
        // A producer on a newer contract: an added field is skipped.
        let newer = REPORT_JSON.replacen('{', r#"{"addedLater": {"nested": [1, "x"]}, "alsoNew": 3, "#, 1);
        assert_eq!(
            decode(Input::TimeReports, newer.as_bytes(), JSON),
            decode(Input::TimeReports, REPORT_JSON.as_bytes(), JSON)
        );
        assert!(decode(Input::TimeReports, newer.as_bytes(), JSON).is_ok());
        // A misspelt required field is not silently accepted.
        let misspelt = REPORT_JSON.replace("staffRef", "staffReference");
        assert_eq!(reason_of(Input::TimeReports, misspelt.as_bytes(), JSON), "missing_field");
    }

    #[test]
    fn details_do_not_echo_payload_values() {
        let personnummer = "194501011234";
        let as_number = REPORT_JSON.replace("\"c-1\"", personnummer);
        let as_enum = REPORT_JSON.replace("SERVICE_TYPE_PERSONAL_CARE", "Anna Andersson");
        for payload in [as_number, as_enum] {
            let e = decode(Input::TimeReports, payload.as_bytes(), JSON).unwrap_err();
            assert_eq!(e.reason, "json_decode");
            assert!(!e.detail.contains(personnummer) && !e.detail.contains("Anna"), "{e:?}");
            assert!(e.detail.contains('…'), "{e:?}");
        }
        // Field names stay, and long messages are cut.
        let unknown_variant = REPORT_JSON.replace("SERVICE_TYPE_PERSONAL_CARE", "SERVICE_TYPE_GARDENING");
        let e = decode(Input::TimeReports, unknown_variant.as_bytes(), JSON).unwrap_err();
        assert!(e.detail.starts_with("unknown variant `…`, expected one of `SERVICE_TYPE_"), "{e:?}");
        assert_eq!(e.detail.chars().count(), MAX_DETAIL_CHARS, "{e:?}");
        assert!(e.detail.ends_with('…'));
    }

    #[test]
    fn values_with_backticks_and_control_characters_do_not_escape() {
        // Found by fuzzing (fuzz/artifacts/decode_protobuf): an unknown enum
        // name holding backticks and a form feed.
        let payload = REPORT_JSON.replace("SERVICE_TYPE_PERSONAL_CARE", "SERE_PER`,SO,ALfR\\fa");
        let e = decode(Input::TimeReports, payload.as_bytes(), JSON).unwrap_err();
        assert!(!e.detail.contains("ALfR") && !e.detail.contains("SO,"), "{e:?}");
        assert!(e.detail.starts_with("unknown variant `…`, expected one of"), "{e:?}");
        let e = Rejection::new("json_decode", "a\u{c}b\nc");
        assert_eq!(e.detail, "a\u{fffd}b\u{fffd}c");
        let e = decode(Input::TimeReports, REPORT_JSON.as_bytes(), Some("text/\u{7}plain")).unwrap_err();
        assert!(!e.detail.chars().any(char::is_control), "{e:?}");
    }

    #[test]
    fn redaction_handles_escapes_and_unterminated_spans() {
        assert_eq!(
            redact_quoted(r#"invalid value: string "a \"b\" c", expected x"#),
            r#"invalid value: string "…", expected x"#
        );
        assert_eq!(
            redact_quoted("invalid type: integer `42`, expected `eventId`"),
            "invalid type: integer `…`, expected `eventId`"
        );
        assert_eq!(redact_quoted("string \"abc"), "string \"…\"");
        assert_eq!(truncate("åäö", 3), "åäö");
        assert_eq!(truncate("åäöü", 3), "åä…");
    }

    #[test]
    fn the_content_type_header_is_found_case_insensitively() {
        let headers = [
            ("Content-Type", Some(&b"application/json"[..])),
            ("other", Some(&b"x"[..])),
            ("content-type", Some(&b"application/x-protobuf"[..])),
        ];
        assert_eq!(content_type_header(headers), Ok(Some("application/x-protobuf")), "the last one wins");
        assert_eq!(content_type_header([("CONTENT-TYPE", None)]), Ok(None));
        assert_eq!(content_type_header([]), Ok(None));
        let e = content_type_header([("content-type", Some(&[0xff, 0xfe][..]))]).unwrap_err();
        assert_eq!(e.reason, "unsupported_content_type");
    }

    #[test]
    fn dead_letter_headers_name_reason_detail_and_source() {
        let r = Rejection::new("json_decode", "expected value at line 1 column 1");
        let headers = dead_letter_headers(&r, "tillsyn.time-reports.v1", 2, 12_345_678_901);
        let text: Vec<(&str, &str)> =
            headers.iter().map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap())).collect();
        assert_eq!(
            text,
            [
                ("tillsyn-dlq-reason", "json_decode"),
                ("tillsyn-dlq-detail", "expected value at line 1 column 1"),
                ("tillsyn-dlq-source-topic", "tillsyn.time-reports.v1"),
                ("tillsyn-dlq-source-partition", "2"),
                ("tillsyn-dlq-source-offset", "12345678901"),
            ]
        );
    }

    #[test]
    fn format_names_and_content_types() {
        #[derive(Deserialize)]
        struct F {
            f: Format,
        }
        assert_eq!(toml::from_str::<F>("f = \"json\"").unwrap().f, Format::Json);
        assert_eq!(toml::from_str::<F>("f = \"protobuf\"").unwrap().f, Format::Protobuf);
        assert!(toml::from_str::<F>("f = \"avro\"").is_err());
        for f in [Format::Json, Format::Protobuf] {
            assert_eq!(parse_content_type(f.content_type()).unwrap().0, f);
        }
    }
}
