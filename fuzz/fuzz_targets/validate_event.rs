//! Validation of structurally valid wire messages: the fuzz input drives the
//! field values of a `tillsyn.v1.Event` (through `arbitrary`, biased towards
//! values that pass so that every check is reached), then
//! - `Validator::event` either accepts a well-formed domain event or names a
//!   documented reason, with a detail that quotes none of the personal
//!   references (client, staff, household);
//! - `decode_record` over the message's protobuf and JSON envelopes gives
//!   exactly what `Validator::event` gives (the decoders add nothing and
//!   lose nothing), and an accepted message decodes the same from every
//!   encoding (`tillsyn_fuzz::check_round_trips`).
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tillsyn_core::decode::{Format, Rejection};
use tillsyn_core::engine::Input;
use tillsyn_core::model::ProviderId;
use tillsyn_core::model::validate::Validator;
use tillsyn_core::proto::v1 as wire;
use tillsyn_fuzz::{
    KNOWN_REASONS, check_event, check_rejection, check_round_trips, decode, equal_but_coordinates, tolerated, validator,
};

static VALIDATOR: LazyLock<Validator> = LazyLock::new(validator);

/// 2026-03-01T00:00:00Z: times are mostly near the DST change of 2026.
const BASE: i64 = 1_772_323_200;

const NAMES: [&str; 4] = ["Anna Andersson", "Erik Öberg", "Maria Nilsson-Åkesson", "Mohammed Al-Sayed"];

#[derive(Debug, Arbitrary)]
enum Ref {
    Short(u16),
    /// A personnummer: personal data that must not leak into details.
    Personnummer(u32, u16),
    Name(u8),
    Raw(String),
    Empty,
    Long(u8),
    Control(u8),
}

impl Ref {
    /// A reference that is personal data by construction: a name or a
    /// personnummer (raw strings may equal field names or messages).
    fn personal(&self) -> Option<String> {
        matches!(self, Ref::Personnummer(..) | Ref::Name(_)).then(|| self.text())
    }

    fn text(&self) -> String {
        match self {
            Ref::Short(n) => format!("r-{n}"),
            Ref::Personnummer(a, b) => format!("19{:06}{:04}", a % 1_000_000, b % 10_000),
            Ref::Name(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
            Ref::Raw(s) => s.clone(),
            Ref::Empty => String::new(),
            Ref::Long(n) => "x".repeat(100 + usize::from(*n)),
            Ref::Control(c) => format!("a{}b", char::from(c % 32)),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Provider {
    Valid(u32),
    NoDash(u32),
    WrongCheckDigit(u32),
    Raw(String),
}

impl Provider {
    fn text(&self) -> String {
        match self {
            Provider::Valid(n) => ProviderId::from_nine_digits(u64::from(*n) % 1_000_000_000).to_string(),
            Provider::NoDash(n) => {
                ProviderId::from_nine_digits(u64::from(*n) % 1_000_000_000).to_string().replace('-', "")
            }
            Provider::WrongCheckDigit(n) => {
                let s = ProviderId::from_nine_digits(u64::from(*n) % 1_000_000_000).to_string();
                let last = s.as_bytes()[10] - b'0';
                format!("{}{}", &s[..10], (last + 1) % 10)
            }
            Provider::Raw(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Municipality {
    Valid(u16),
    Raw(String),
}

impl Municipality {
    fn text(&self) -> String {
        match self {
            Municipality::Valid(n) => format!("{:04}", 100 + n % 2_500),
            Municipality::Raw(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Enum {
    Valid(u8),
    Raw(i32),
}

impl Enum {
    fn value(&self, defined: i32) -> i32 {
        match self {
            Enum::Valid(v) => i32::from(*v) % (defined + 1),
            Enum::Raw(v) => *v,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Time {
    /// Seconds after BASE, within about a year.
    Near(u32),
    Raw {
        seconds: i64,
        nanos: i32,
    },
    Missing,
}

impl Time {
    fn ts(&self) -> Option<pbjson_types::Timestamp> {
        match self {
            Time::Near(s) => Some(pbjson_types::Timestamp { seconds: BASE + i64::from(s % 31_536_000), nanos: 0 }),
            Time::Raw { seconds, nanos } => Some(pbjson_types::Timestamp { seconds: *seconds, nanos: *nanos }),
            Time::Missing => None,
        }
    }
}

/// A time relative to another one.
#[derive(Debug, Arbitrary)]
enum Later {
    By(i32),
    Absolute(Time),
}

impl Later {
    fn ts(&self, from: Option<pbjson_types::Timestamp>) -> Option<pbjson_types::Timestamp> {
        match (self, from) {
            (Later::By(d), Some(t)) => {
                Some(pbjson_types::Timestamp { seconds: t.seconds.saturating_add(i64::from(*d)), nanos: t.nanos })
            }
            (Later::By(_), None) => None,
            (Later::Absolute(t), _) => t.ts(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Geo {
    Sweden(u16, u16),
    Raw(f64, f64),
}

impl Geo {
    fn point(&self) -> wire::GeoPoint {
        match self {
            Geo::Sweden(a, b) => wire::GeoPoint {
                latitude: 55.0 + f64::from(*a) / 65_535.0 * 14.0,
                longitude: 11.0 + f64::from(*b) / 65_535.0 * 13.0,
            },
            Geo::Raw(latitude, longitude) => wire::GeoPoint { latitude: *latitude, longitude: *longitude },
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Amount {
    Small(u32),
    Raw(i64),
}

impl Amount {
    fn value(&self) -> i64 {
        match self {
            Amount::Small(v) => i64::from(*v),
            Amount::Raw(v) => *v,
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Report {
    event_id: Ref,
    provider: Provider,
    municipality: Municipality,
    client: Ref,
    staff: Ref,
    service: Enum,
    check_in: Time,
    check_out: Later,
    method: Enum,
    planned: Option<u32>,
    home: Option<Geo>,
    check_in_location: Option<Geo>,
    household: Option<Ref>,
    reported: Later,
}

#[derive(Debug, Arbitrary)]
struct Line {
    client: Ref,
    service: Enum,
    minutes: Amount,
    tariff: Amount,
    amount: Amount,
}

#[derive(Debug, Arbitrary)]
enum Total {
    SumOfLines,
    Raw(i64),
}

#[derive(Debug, Arbitrary)]
struct Invoice {
    invoice_id: Ref,
    provider: Provider,
    municipality: Municipality,
    period_start: Time,
    period_end: Later,
    issued_at: Later,
    lines: Vec<Line>,
    total: Total,
}

#[derive(Debug, Arbitrary)]
enum Event {
    TimeReport(Report),
    Invoice(Invoice),
    Empty,
}

impl Report {
    fn wire(&self) -> wire::TimeReport {
        let check_in = self.check_in.ts();
        wire::TimeReport {
            event_id: self.event_id.text(),
            provider_id: self.provider.text(),
            municipality_code: self.municipality.text(),
            client_ref: self.client.text(),
            staff_ref: self.staff.text(),
            service_type: self.service.value(6),
            check_in,
            check_out: self.check_out.ts(check_in),
            registration_method: self.method.value(4),
            planned_minutes: self.planned,
            client_home: self.home.as_ref().map(Geo::point),
            check_in_location: self.check_in_location.as_ref().map(Geo::point),
            household_ref: self.household.as_ref().map(Ref::text),
            reported_at: self.reported.ts(check_in),
        }
    }

    fn personal(&self) -> Vec<String> {
        [Some(&self.client), Some(&self.staff), self.household.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(Ref::personal)
            .collect()
    }
}

impl Invoice {
    fn wire(&self) -> wire::Invoice {
        let period_start = self.period_start.ts();
        let lines: Vec<wire::InvoiceLine> = self
            .lines
            .iter()
            .take(64)
            .map(|l| wire::InvoiceLine {
                client_ref: l.client.text(),
                service_type: l.service.value(6),
                minutes: l.minutes.value(),
                tariff_ore_per_hour: l.tariff.value(),
                amount_ore: l.amount.value(),
            })
            .collect();
        let total_ore = match self.total {
            Total::SumOfLines => lines.iter().fold(0i64, |a, l| a.wrapping_add(l.amount_ore)),
            Total::Raw(t) => t,
        };
        wire::Invoice {
            invoice_id: self.invoice_id.text(),
            provider_id: self.provider.text(),
            municipality_code: self.municipality.text(),
            period_start,
            period_end: self.period_end.ts(period_start),
            issued_at: self.issued_at.ts(period_start),
            lines,
            total_ore,
        }
    }

    fn personal(&self) -> Vec<String> {
        self.lines.iter().take(64).filter_map(|l| l.client.personal()).collect()
    }
}

fn check_no_personal_data(r: &Rejection, personal: &[String], what: &str) {
    for p in personal {
        assert!(!r.detail.contains(p.as_str()), "{what}: the detail {:?} quotes the reference {p:?}", r.detail);
    }
}

/// Every timestamp of a message.
fn timestamps(w: &wire::Event) -> Vec<Option<pbjson_types::Timestamp>> {
    match &w.kind {
        Some(wire::event::Kind::TimeReport(t)) => vec![t.check_in, t.check_out, t.reported_at],
        Some(wire::event::Kind::Invoice(i)) => vec![i.period_start, i.period_end, i.issued_at],
        Some(wire::event::Kind::Heartbeat(h)) => vec![h.at],
        Some(wire::event::Kind::GrantedHours(g)) => vec![g.valid_from, g.valid_to, g.recorded_at],
        Some(wire::event::Kind::ClientAbsence(a)) => vec![a.from, a.to, a.recorded_at],
        Some(wire::event::Kind::ProviderPermit(p)) => vec![p.valid_from, p.valid_to, p.recorded_at],
        None => Vec::new(),
    }
}

/// Whether every double of a message is finite.
fn finite_doubles(w: &wire::Event) -> bool {
    match &w.kind {
        Some(wire::event::Kind::TimeReport(t)) => [&t.client_home, &t.check_in_location]
            .into_iter()
            .flatten()
            .all(|p| p.latitude.is_finite() && p.longitude.is_finite()),
        _ => true,
    }
}

/// Whether a timestamp is absent or in the range of proto3 JSON
/// (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z).
fn json_representable(t: &Option<pbjson_types::Timestamp>) -> bool {
    t.is_none_or(|t| (-62_135_596_800..=253_402_300_799).contains(&t.seconds) && (0..1_000_000_000).contains(&t.nanos))
}

fuzz_target!(|event: Event| {
    use wire::event::Kind;
    let (w, input, personal) = match &event {
        Event::TimeReport(r) => {
            (wire::Event { kind: Some(Kind::TimeReport(r.wire())) }, Input::TimeReports, r.personal())
        }
        Event::Invoice(i) => (wire::Event { kind: Some(Kind::Invoice(i.wire())) }, Input::Invoices, i.personal()),
        Event::Empty => (wire::Event { kind: None }, Input::TimeReports, Vec::new()),
    };
    let validated = VALIDATOR.event(&w);
    match &validated {
        Ok(domain) => check_event(domain, input),
        Err(e) => {
            assert!(KNOWN_REASONS.contains(&e.reason()), "undocumented reason {}", e.reason());
            assert!(!e.field.is_empty());
            let r = Rejection::from(e.clone());
            check_rejection(&r);
            check_no_personal_data(&r, &personal, "validation");
        }
    }
    let expected: Result<_, Rejection> = validated.clone().map_err(Rejection::from);

    // The envelope in protobuf: exactly the validator's answer (an empty
    // envelope encodes to no bytes at all, an empty payload).
    let bytes = w.encode_to_vec();
    let decoded = decode(input, &bytes, None, Format::Protobuf, &VALIDATOR);
    if bytes.is_empty() {
        assert_eq!(decoded.map_err(|r| r.reason), Err("empty_payload"));
    } else {
        assert_eq!(decoded, expected, "protobuf envelope vs. the validator\n  wire: {w:?}");
    }

    // The envelope in proto3 JSON, when the message has one: proto3 JSON
    // timestamps are years 0001-9999 (pbjson-types writes later years as
    // `+16467-...`, which it cannot read back, and fails on times beyond
    // chrono's range); a non-finite double is "NaN" or "Infinity" in proto3
    // JSON, but pbjson writes it as serde_json does, `null`, which it cannot
    // read back. Not for the empty envelope (`{}` is read as a bare message
    // of the topic).
    if w.kind.is_some()
        && timestamps(&w).iter().all(json_representable)
        && finite_doubles(&w)
        && let Ok(json) = serde_json::to_vec(&w)
    {
        let decoded = decode(input, &json, Some("application/json"), Format::Protobuf, &VALIDATOR);
        if let Err(r) = &decoded {
            check_rejection(r);
            check_no_personal_data(r, &personal, "JSON envelope");
        }
        // Known issue 3 (tillsyn_fuzz::KNOWN_ISSUES): coordinates read from
        // JSON a unit or two in the last place off.
        assert!(
            decoded == expected || tolerated(equal_but_coordinates(&decoded, &expected, 2)),
            "JSON envelope vs. the validator\n  json: {}\n  decoded: {decoded:?}\n  validated: {expected:?}",
            String::from_utf8_lossy(&json)
        );
    }

    if let Ok(domain) = &validated {
        check_round_trips(input, &bytes, domain, &VALIDATOR);
    }
});
