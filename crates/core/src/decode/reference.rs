//! One record of a reference-data topic in, a validated version of a fact
//! (or a source heartbeat) or a dead-letter [`Rejection`] out. Pure, as
//! [`super::decode_record`] is, and with the same formats:
//!
//! - the `content-type` header chooses protobuf or JSON; a record without
//!   one is protobuf;
//! - the record holds the bare message of its topic's kind
//!   (`tillsyn.v1.GrantedHours` on the granted-hours topic,
//!   `tillsyn.v1.ClientAbsence` on the absences topic,
//!   `tillsyn.v1.ProviderPermit` on the provider-register topic), or the
//!   `tillsyn.v1.Event` envelope holding it or a source heartbeat;
//! - a `proto` parameter names the message (`proto=tillsyn.v1.Event`, or
//!   the topic's message); anything of another kind (a time report, an
//!   invoice, another kind of reference data) is `wrong_event_kind`.

use prost::Message as _;

use super::{Rejection, reason};
use crate::decode::Format;
use crate::model::DomainEvent;
use crate::model::reference::ReferenceKind;
use crate::model::validate::Validator;
use crate::proto::v1 as wire;

/// What a record declares it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Envelope,
    Bare(ReferenceKind),
    /// A time report or an invoice.
    Event,
}

/// The protobuf message name of a kind's bare record.
pub fn message_name(kind: ReferenceKind) -> &'static str {
    match kind {
        ReferenceKind::GrantedHours => "tillsyn.v1.GrantedHours",
        ReferenceKind::Absences => "tillsyn.v1.ClientAbsence",
        ReferenceKind::ProviderRegister => "tillsyn.v1.ProviderPermit",
    }
}

/// Decodes and validates one record of `kind`'s topic: a
/// [`DomainEvent::Reference`] or a [`DomainEvent::Heartbeat`], or why it
/// is rejected. `content_type` is the record's `content-type` header (see
/// [`super::content_type_header`]).
pub fn decode_reference_record(
    kind: ReferenceKind,
    payload: Option<&[u8]>,
    content_type: Option<&str>,
    validator: &Validator,
) -> Result<DomainEvent, Rejection> {
    let payload = super::payload_within_limits(payload)?;
    let (format, declared) = match content_type.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => parse(c)?,
        None => (Format::Protobuf, None),
    };
    let wrong =
        |what: &str| Rejection::new(reason::WRONG_EVENT_KIND, format_args!("{what} on the {} topic", kind.name()));
    let envelope = match declared {
        Some(Declared::Event) => return Err(wrong("a time report or invoice")),
        Some(Declared::Bare(k)) if k != kind => return Err(wrong(k.name())),
        Some(Declared::Bare(_)) => false,
        Some(Declared::Envelope) => true,
        None => looks_like_envelope(format, payload),
    };
    let event = if envelope {
        let event: wire::Event = match format {
            Format::Protobuf => wire::Event::decode(payload).map_err(|e| Rejection::new(reason::PROTOBUF_DECODE, e))?,
            Format::Json => serde_json::from_slice(payload).map_err(|e| Rejection::new(reason::JSON_DECODE, e))?,
        };
        use wire::event::Kind;
        match (&event.kind, kind) {
            (Some(Kind::Heartbeat(_)), _)
            | (Some(Kind::GrantedHours(_)), ReferenceKind::GrantedHours)
            | (Some(Kind::ClientAbsence(_)), ReferenceKind::Absences)
            | (Some(Kind::ProviderPermit(_)), ReferenceKind::ProviderRegister)
            | (None, _) => event,
            (Some(Kind::TimeReport(_) | Kind::Invoice(_)), _) => return Err(wrong("a time report or invoice")),
            (Some(Kind::GrantedHours(_)), _) => return Err(wrong("granted_hours")),
            (Some(Kind::ClientAbsence(_)), _) => return Err(wrong("absences")),
            (Some(Kind::ProviderPermit(_)), _) => return Err(wrong("provider_register")),
        }
    } else {
        bare(kind, format, payload)?
    };
    validator.event(&event).map_err(Rejection::from)
}

/// The bare message of `kind`, in its envelope.
fn bare(kind: ReferenceKind, format: Format, payload: &[u8]) -> Result<wire::Event, Rejection> {
    use wire::event::Kind;
    fn decode<M: prost::Message + Default + serde::de::DeserializeOwned>(
        format: Format,
        payload: &[u8],
    ) -> Result<M, Rejection> {
        match format {
            Format::Protobuf => M::decode(payload).map_err(|e| Rejection::new(reason::PROTOBUF_DECODE, e)),
            Format::Json => serde_json::from_slice(payload).map_err(|e| Rejection::new(reason::JSON_DECODE, e)),
        }
    }
    let kind = match kind {
        ReferenceKind::GrantedHours => Kind::GrantedHours(decode(format, payload)?),
        ReferenceKind::Absences => Kind::ClientAbsence(decode(format, payload)?),
        ReferenceKind::ProviderRegister => Kind::ProviderPermit(decode(format, payload)?),
    };
    Ok(wire::Event { kind: Some(kind) })
}

/// Without a `proto` parameter: protobuf is an envelope when it is exactly
/// one length-delimited field 1 to 6 spanning the whole payload (a valid
/// bare message has several fields); JSON when its first key is one of the
/// envelope's.
fn looks_like_envelope(format: Format, payload: &[u8]) -> bool {
    match format {
        Format::Protobuf => {
            use prost::encoding::decode_varint;
            let mut bytes = payload;
            let Ok(key) = decode_varint(&mut bytes) else { return false };
            if key & 7 != 2 || !matches!(key >> 3, 1..=6) {
                return false;
            }
            matches!(decode_varint(&mut bytes), Ok(len) if len == bytes.len() as u64)
        }
        Format::Json => {
            let text = String::from_utf8_lossy(payload);
            let rest = text.trim_start().strip_prefix('{').map(str::trim_start).unwrap_or_default();
            let mut keys = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            matches!(
                keys.next(),
                Some(Ok(k)) if matches!(
                    k.as_str(),
                    "timeReport" | "time_report" | "invoice" | "heartbeat" | "grantedHours" | "granted_hours"
                        | "clientAbsence" | "client_absence" | "providerPermit" | "provider_permit"
                )
            )
        }
    }
}

fn parse(content_type: &str) -> Result<(Format, Option<Declared>), Rejection> {
    let (format, proto) = super::parse_media_type(content_type)?;
    let declared = match proto {
        None => None,
        Some("tillsyn.v1.Event") => Some(Declared::Envelope),
        Some("tillsyn.v1.TimeReport" | "tillsyn.v1.Invoice") => Some(Declared::Event),
        Some(name) => match ReferenceKind::ALL.into_iter().find(|k| message_name(*k) == name) {
            Some(k) => Some(Declared::Bare(k)),
            None => {
                return Err(super::unsupported(
                    content_type,
                    "proto must be tillsyn.v1.Event, GrantedHours, ClientAbsence or ProviderPermit",
                ));
            }
        },
    };
    Ok((format, declared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pseudonym::Pseudonymizer;

    fn validator() -> Validator {
        Validator::new(Pseudonymizer::from_secret("a test secret of some length"))
    }

    fn absence() -> wire::ClientAbsence {
        serde_json::from_str(
            r#"{"absenceId":"abs-1","municipalityCode":"2480","clientRef":"K-1","kind":"ABSENCE_KIND_HOSPITAL_STAY","from":"2026-03-01T08:00:00Z",
                "recordedAt":"2026-03-01T09:00:00Z","source":"region"}"#,
        )
        .unwrap()
    }

    fn heartbeat() -> wire::Event {
        serde_json::from_str(r#"{"heartbeat":{"at":"2026-03-02T00:00:00Z"}}"#).unwrap()
    }

    #[test]
    fn a_bare_message_an_envelope_and_a_heartbeat_decode_in_both_formats() {
        let v = validator();
        let a = absence();
        let envelope = wire::Event { kind: Some(wire::event::Kind::ClientAbsence(a.clone())) };
        let cases: [(Vec<u8>, Option<&str>); 6] = [
            (a.encode_to_vec(), None),
            (a.encode_to_vec(), Some("application/x-protobuf; proto=tillsyn.v1.ClientAbsence")),
            (envelope.encode_to_vec(), None),
            (serde_json::to_vec(&a).unwrap(), Some("application/json")),
            (serde_json::to_vec(&envelope).unwrap(), Some("application/json")),
            (serde_json::to_vec(&envelope).unwrap(), Some("application/json; proto=tillsyn.v1.Event")),
        ];
        for (payload, ct) in cases {
            match decode_reference_record(ReferenceKind::Absences, Some(&payload), ct, &v) {
                Ok(DomainEvent::Reference(r)) => assert_eq!(r.id.as_str(), "abs-1", "{ct:?}"),
                other => panic!("{ct:?}: {other:?}"),
            }
        }
        let hb = heartbeat();
        for (payload, ct) in [(hb.encode_to_vec(), None), (serde_json::to_vec(&hb).unwrap(), Some("application/json"))]
        {
            let got = decode_reference_record(ReferenceKind::GrantedHours, Some(&payload), ct, &v);
            assert!(matches!(got, Ok(DomainEvent::Heartbeat(_))), "{got:?}");
        }
    }

    #[test]
    fn another_kind_is_the_wrong_kind_and_garbage_a_decode_error() {
        let v = validator();
        let a = absence();
        let reason_of =
            |kind, payload: &[u8], ct| decode_reference_record(kind, Some(payload), ct, &v).unwrap_err().reason;
        let on_register = reason_of(
            ReferenceKind::ProviderRegister,
            &a.encode_to_vec(),
            Some("application/x-protobuf; proto=tillsyn.v1.ClientAbsence"),
        );
        assert_eq!(on_register, reason::WRONG_EVENT_KIND);
        let envelope = wire::Event { kind: Some(wire::event::Kind::ClientAbsence(a)) };
        assert_eq!(reason_of(ReferenceKind::GrantedHours, &envelope.encode_to_vec(), None), reason::WRONG_EVENT_KIND);
        let report: wire::Event =
            serde_json::from_str(r#"{"timeReport":{"eventId":"tr-1","providerId":"P-1"}}"#).unwrap();
        assert_eq!(
            reason_of(ReferenceKind::Absences, &serde_json::to_vec(&report).unwrap(), Some("application/json")),
            reason::WRONG_EVENT_KIND
        );
        assert_eq!(reason_of(ReferenceKind::Absences, b"{not json", Some("application/json")), reason::JSON_DECODE);
        assert_eq!(reason_of(ReferenceKind::Absences, &[0xff, 0xff, 0xff], None), reason::PROTOBUF_DECODE);
        assert_eq!(reason_of(ReferenceKind::Absences, b"x", Some("text/plain")), reason::UNSUPPORTED_CONTENT_TYPE);
        assert_eq!(
            decode_reference_record(ReferenceKind::Absences, None, None, &v).unwrap_err().reason,
            reason::EMPTY_PAYLOAD
        );
    }

    #[test]
    fn a_version_that_does_not_validate_is_rejected_with_the_validators_reason() {
        let v = validator();
        let mut a = absence();
        a.absence_id.clear();
        let got = decode_reference_record(ReferenceKind::Absences, Some(&a.encode_to_vec()), None, &v);
        let rejection = got.unwrap_err();
        assert_ne!(rejection.reason, reason::PROTOBUF_DECODE, "{rejection:?}");
        assert!(!rejection.detail.contains("K-1"), "no client reference in the detail: {rejection:?}");
    }
}
