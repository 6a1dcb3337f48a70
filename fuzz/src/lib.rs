//! Shared harness of the fuzz targets: how a fuzz input chooses the topic and
//! the `content-type` header, and the invariants checked on every decode.
//!
//! The invariants (each a panic, which libFuzzer reports as a crash):
//! - a rejection's reason is one of the stable codes (non-empty ASCII
//!   snake_case, and in [`KNOWN_REASONS`]), its detail at most
//!   `MAX_DETAIL_CHARS` characters, without control characters and with no
//!   quoted payload value escaping the redaction;
//! - an accepted record is of its topic's kind and a well-formed domain
//!   event (times in range, check-out not before check-in, invoice total =
//!   sum of the lines, ...);
//! - decoding is deterministic;
//! - an accepted record is explained by a wire message that the payload
//!   decodes to, and that wire message re-encoded as a protobuf envelope, a
//!   bare protobuf message and proto3 JSON (envelope and bare) decodes to
//!   the same domain event.

use prost::Message;
use tillsyn_core::decode::{Format, MAX_DETAIL_CHARS, Rejection, decode_record, reason};
use tillsyn_core::engine::Input;
use tillsyn_core::model::DomainEvent;
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::validate::{MAX_TIME, MAX_VISIT_SECS, MIN_TIME, Validator};
use tillsyn_core::proto::v1 as wire;

/// Every rejection reason the decoder and the validator document: the
/// decoder's [`reason::ALL`] and the codes of `ValidationError::reason`.
/// A reason outside this list is reported, so that a new code is a
/// conscious addition to the dead-letter contract.
pub static KNOWN_REASONS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let edge = [
        reason::EMPTY_PAYLOAD,
        reason::PAYLOAD_TOO_LARGE,
        reason::PROTOBUF_DECODE,
        reason::JSON_DECODE,
        reason::UNSUPPORTED_CONTENT_TYPE,
        reason::WRONG_EVENT_KIND,
    ];
    edge.into_iter().chain(tillsyn_core::model::validate::REASONS).collect()
});

/// Deviations these targets found and that were reported, not fixed. A
/// check that meets one of them, in the narrow form described, lets it pass
/// unless the environment variable `TILLSYN_FUZZ_STRICT` is `1`, so that a
/// long run keeps looking for new ones. Remove an entry once it is fixed.
///
/// 1. `decode_record` quotes an unsupported `content-type` header verbatim in
///    the rejection detail (`content type `…`: expected ...`), control
///    characters included; every other detail is free of them.
/// 2. An alert of an invoice rule can carry a `detected_at` before that of
///    an earlier alert of its episode: an invoice is decided at its issue
///    time or when its period is complete (data time), which need not follow
///    the order in which invoices are reconciled (one that arrives out of
///    order, or one that waited for its period while a later one was
///    reconciled at once), so an episode can escalate "before" it opened.
/// 3. A coordinate written to proto3 JSON and read back can come back one
///    or two units in the last place off: serde_json writes the shortest
///    decimal that round-trips, but reads decimals with its fast, not always
///    correctly rounded algorithm unless its `float_roundtrip` feature is on
///    (it is not in the main crate), e.g. `20.322550000003638` is read as
///    `20.32255000000364` (about 30 % of random doubles are off by one or
///    two units). So a record re-encoded from protobuf to JSON can give a
///    visit whose `client_home` differs in the last bits.
/// 4. An unknown enum name that contains a backtick escapes the redaction
///    of rejection details: serde quotes it as ``unknown variant `NAME` ``,
///    and the redaction ends the quoted span at the first backtick inside
///    the name, so the rest of the name (personal data, control characters)
///    stays in the detail, e.g. `"serviceType": "x`Anna Andersson"` gives
///    ``unknown variant `…`Anna Andersson`, expected one of ...``.
pub const KNOWN_ISSUES: [&str; 4] = [
    "unsupported content type quoted with control characters in the detail",
    "invoice alert decided before an earlier alert of its episode",
    "coordinates read from JSON are not always correctly rounded (serde_json without float_roundtrip)",
    "an unknown enum name with a backtick escapes the redaction of the detail",
];

/// Whether a rejection detail shows known issue 4: a redacted unknown
/// variant followed by more of the value instead of `, expected` (or the
/// start of it, where the detail is cut).
pub fn redaction_leak(detail: &str) -> bool {
    const NEXT: &str = ", expected";
    detail.match_indices("unknown variant `…`").any(|(i, m)| {
        let rest = &detail[i + m.len()..];
        let cut = rest.strip_suffix('…').is_some_and(|r| NEXT.starts_with(r));
        !(rest.is_empty() || rest.starts_with(NEXT) || cut)
    })
}

/// The rules that decide on invoices (known issue 2).
pub const INVOICE_RULES: [&str; 3] = ["invoiced-above-performed", "phantom-clients", "duplicate-billing"];

/// Whether two results are equal except for coordinates at most `ulps`
/// units in the last place apart (known issue 3: 2 units).
pub fn equal_but_coordinates<E: PartialEq>(a: &Result<DomainEvent, E>, b: &Result<DomainEvent, E>, ulps: u64) -> bool {
    // Equal (0.0 and -0.0 too), or a few units apart with the same sign.
    let near = |x: f64, y: f64| {
        x == y || (x.to_bits().abs_diff(y.to_bits()) <= ulps && x.is_sign_negative() == y.is_sign_negative())
    };
    let point = |p: Option<tillsyn_core::model::GeoPoint>, q: Option<tillsyn_core::model::GeoPoint>| match (p, q) {
        (Some(p), Some(q)) if near(p.lat, q.lat) && near(p.lon, q.lon) => Some(q),
        _ => p,
    };
    match (a, b) {
        (Ok(DomainEvent::Visit(x)), Ok(DomainEvent::Visit(y))) => {
            let mut x = x.clone();
            x.client_home = point(x.client_home, y.client_home);
            x.check_in_location = point(x.check_in_location, y.check_in_location);
            x == *y
        }
        _ => a == b,
    }
}

/// Whether a known deviation (see [`KNOWN_ISSUES`]) may pass: `known` is
/// whether the deviation at hand has the narrow form of one of them.
pub fn tolerated(known: bool) -> bool {
    static STRICT: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var("TILLSYN_FUZZ_STRICT").is_ok_and(|v| v == "1"));
    known && !*STRICT
}

/// The validator all targets use (a fixed pseudonymisation key).
pub fn validator() -> Validator {
    Validator::new(Pseudonymizer::from_secret("fuzz"))
}

/// What the first byte of a decoder fuzz input chooses.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// The topic: bit 0 of the first byte.
    pub input: Input,
    /// The `content-type` header: bits 1–3 (see [`Record::parse`]).
    pub content_type: Option<String>,
    /// The record's value: the rest.
    pub payload: &'a [u8],
}

impl<'a> Record<'a> {
    /// Splits a fuzz input into topic, header and payload. `format` is the
    /// target's format (the topic's default format). Header variants (bits
    /// 1–3 of the first byte):
    /// 0 none, 1 the format's canonical type, 2 `proto=tillsyn.v1.Event`,
    /// 3 `proto=tillsyn.v1.TimeReport`, 4 `proto=tillsyn.v1.Invoice`,
    /// 5 an alias with odd case and parameters, 6 the other format's type,
    /// 7 free text: the payload's bytes up to the first newline.
    pub fn parse(data: &'a [u8], format: Format) -> Option<Self> {
        let (&first, mut payload) = data.split_first()?;
        let input = if first & 1 == 0 { Input::TimeReports } else { Input::Invoices };
        let base = format.content_type();
        let other = match format {
            Format::Protobuf => Format::Json.content_type(),
            Format::Json => Format::Protobuf.content_type(),
        };
        let alias = match format {
            Format::Protobuf => "Application/VND.Google.Protobuf ; x-unused=1",
            Format::Json => "APPLICATION/json; Charset=\"UTF-8\"",
        };
        let content_type = match (first >> 1) & 7 {
            0 => None,
            1 => Some(base.to_string()),
            2 => Some(format!("{base}; proto=tillsyn.v1.Event")),
            3 => Some(format!("{base}; proto=tillsyn.v1.TimeReport")),
            4 => Some(format!("{base};proto=.tillsyn.v1.Invoice")),
            5 => Some(alias.to_string()),
            6 => Some(other.to_string()),
            _ => {
                let end = payload.iter().position(|&b| b == b'\n').unwrap_or(payload.len());
                let header = String::from_utf8_lossy(&payload[..end]).into_owned();
                payload = payload.get(end + 1..).unwrap_or_default();
                Some(header)
            }
        };
        Some(Record { input, content_type, payload })
    }

    /// The first byte that [`Record::parse`] reads back as `input` and header
    /// variant `variant`.
    pub fn selector(input: Input, variant: u8) -> u8 {
        (variant & 7) << 1 | u8::from(input == Input::Invoices)
    }
}

/// Decodes a record the way the service does.
pub fn decode(
    input: Input,
    payload: &[u8],
    content_type: Option<&str>,
    default_format: Format,
    validator: &Validator,
) -> Result<DomainEvent, Rejection> {
    decode_record(input, Some(payload), content_type, default_format, validator)
}

/// Decodes a fuzzed record and checks every invariant of the module docs.
pub fn check_record(record: &Record<'_>, default_format: Format, validator: &Validator) {
    let ct = record.content_type.as_deref();
    let result = decode(record.input, record.payload, ct, default_format, validator);
    let again = decode(record.input, record.payload, ct, default_format, validator);
    assert_eq!(result, again, "decoding is not deterministic");
    match result {
        Err(rejection) => check_rejection(&rejection),
        Ok(event) => {
            check_event(&event, record.input);
            check_round_trips(record.input, record.payload, &event, validator);
        }
    }
}

/// A rejection names a stable reason and a short, printable detail.
pub fn check_rejection(r: &Rejection) {
    assert!(
        !r.reason.is_empty()
            && r.reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            && !r.reason.starts_with('_')
            && !r.reason.ends_with('_'),
        "reason {:?} is not snake_case",
        r.reason
    );
    assert!(KNOWN_REASONS.contains(&r.reason), "reason {:?} is not a documented code", r.reason);
    assert!(!r.detail.is_empty(), "empty detail for {}", r.reason);
    assert!(r.detail.chars().count() <= MAX_DETAIL_CHARS, "detail longer than {MAX_DETAIL_CHARS}: {:?}", r.detail);
    // Known issue 4: part of an unknown enum name escapes the redaction.
    let leak = redaction_leak(&r.detail);
    assert!(!leak || tolerated(true), "a payload value escapes the redaction: {:?}", r.detail);
    if r.detail.chars().any(|c| c.is_control()) {
        // Known issue 1: the content-type header is quoted as it came.
        let echoed_header = r.reason == reason::UNSUPPORTED_CONTENT_TYPE && r.detail.starts_with("content type `");
        assert!(tolerated(echoed_header || leak), "control character in the detail {:?}", r.detail);
    }
}

/// An accepted event is of the topic's kind and well-formed.
pub fn check_event(event: &DomainEvent, input: Input) {
    let in_range = |t: tillsyn_core::model::EventTime| (MIN_TIME..MAX_TIME).contains(&t.0);
    match event {
        DomainEvent::Visit(v) => {
            assert_eq!(input, Input::TimeReports, "a visit accepted on the invoice topic");
            assert!(in_range(v.check_in) && in_range(v.check_out) && in_range(v.reported_at), "{v:?}");
            assert!(v.check_out >= v.check_in, "check-out before check-in accepted: {v:?}");
            assert!(v.check_out.0 - v.check_in.0 <= MAX_VISIT_SECS, "visit too long accepted: {v:?}");
            assert!(!v.event_id.as_str().is_empty());
            for p in [v.client_home, v.check_in_location].into_iter().flatten() {
                assert!(p.lat.is_finite() && p.lon.is_finite() && p.lat.abs() <= 90.0 && p.lon.abs() <= 180.0);
            }
        }
        DomainEvent::Invoice(i) => {
            assert_eq!(input, Input::Invoices, "an invoice accepted on the time-report topic");
            assert!(in_range(i.period_start) && in_range(i.period_end) && in_range(i.issued_at), "{i:?}");
            assert!(i.period_end > i.period_start);
            assert!(!i.invoice_id.as_str().is_empty());
            let sum = i.lines.iter().try_fold(0u64, |a, l| a.checked_add(l.amount.0));
            assert_eq!(sum, Some(i.total.0), "total differs from the lines");
        }
        // A source heartbeat belongs on either topic.
        DomainEvent::Heartbeat(at) => assert!(in_range(*at), "{at:?}"),
        // The event topics refuse reference data (it has topics of its own).
        DomainEvent::Reference(r) => panic!("reference data accepted on an event topic: {r:?}"),
    }
}

/// The wire messages a payload decodes to, in either format and either shape.
pub fn wire_candidates(payload: &[u8]) -> Vec<wire::Event> {
    use wire::event::Kind;
    let mut out = Vec::new();
    if let Ok(e) = wire::Event::decode(payload) {
        out.push(e);
    }
    if let Ok(t) = wire::TimeReport::decode(payload) {
        out.push(wire::Event { kind: Some(Kind::TimeReport(t)) });
    }
    if let Ok(i) = wire::Invoice::decode(payload) {
        out.push(wire::Event { kind: Some(Kind::Invoice(i)) });
    }
    if let Ok(e) = serde_json::from_slice::<wire::Event>(payload) {
        out.push(e);
    }
    if let Ok(t) = serde_json::from_slice::<wire::TimeReport>(payload) {
        out.push(wire::Event { kind: Some(Kind::TimeReport(t)) });
    }
    if let Ok(i) = serde_json::from_slice::<wire::Invoice>(payload) {
        out.push(wire::Event { kind: Some(Kind::Invoice(i)) });
    }
    out
}

/// The encodings of a wire message that must all decode to `expected`:
/// (what, payload, content type).
pub fn encodings(event: &wire::Event) -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    use wire::event::Kind;
    let mut out = vec![
        ("protobuf envelope", event.encode_to_vec(), None),
        ("protobuf envelope, declared", event.encode_to_vec(), Some("application/x-protobuf; proto=tillsyn.v1.Event")),
    ];
    match &event.kind {
        Some(Kind::TimeReport(t)) => {
            out.push((
                "bare protobuf, declared",
                t.encode_to_vec(),
                Some("application/x-protobuf; proto=tillsyn.v1.TimeReport"),
            ));
            out.push(("bare protobuf, sniffed", t.encode_to_vec(), Some("application/x-protobuf")));
            if let Ok(json) = serde_json::to_vec(t) {
                out.push(("bare JSON", json, Some("application/json")));
            }
        }
        Some(Kind::Invoice(i)) => {
            out.push((
                "bare protobuf, declared",
                i.encode_to_vec(),
                Some("application/x-protobuf; proto=tillsyn.v1.Invoice"),
            ));
            out.push(("bare protobuf, sniffed", i.encode_to_vec(), Some("application/x-protobuf")));
            if let Ok(json) = serde_json::to_vec(i) {
                out.push(("bare JSON", json, Some("application/json")));
            }
        }
        // Only in the envelope (reference data is refused on the event topics).
        Some(Kind::Heartbeat(_) | Kind::GrantedHours(_) | Kind::ClientAbsence(_) | Kind::ProviderPermit(_)) | None => {}
    }
    if let Ok(json) = serde_json::to_vec(event) {
        out.push(("JSON envelope", json, Some("application/json")));
    }
    out
}

/// An accepted record is explained by a wire message the payload decodes to
/// (in one of the two formats, one of the two shapes), and every encoding of
/// that message decodes to the same domain event.
pub fn check_round_trips(input: Input, payload: &[u8], event: &DomainEvent, validator: &Validator) {
    let explaining: Vec<wire::Event> =
        wire_candidates(payload).into_iter().filter(|w| validator.event(w).as_ref() == Ok(event)).collect();
    assert!(!explaining.is_empty(), "an accepted record that no wire message of its payload explains: {event:?}");
    for w in &explaining {
        for (what, bytes, ct) in encodings(w) {
            let again = decode(input, &bytes, ct, Format::Protobuf, validator);
            let expected = Ok(event.clone());
            if again != expected {
                // Known issue 3: JSON coordinates a unit or two in the last place off.
                let float_ulp = what.contains("JSON") && equal_but_coordinates(&again, &expected, 2);
                assert!(
                    tolerated(float_ulp),
                    "{what} of the decoded message decodes differently\n  wire: {w:?}\n  encoded: {}\n  \
                     decoded: {again:?}\n  expected: {expected:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }
}
