//! The edge of the core: wire messages in, validated domain events out.
//!
//! Every rejection is a [`ValidationError`] naming the field and the problem;
//! its [`ValidationError::reason`] is a short stable code used as the
//! dead-letter reason and metric label. Client, staff and household
//! references are pseudonymised here and never travel further in clear.

use std::fmt;

use super::event::{DomainEvent, GeoPoint, Invoice, InvoiceLine, RegistrationMethod, ServiceType, Visit};
use super::ids::{EventId, MunicipalityCode, OrgNumberError, ProviderId};
use super::pseudonym::Pseudonymizer;
use super::reference::{Absence, AbsenceKind, Fact, GrantedHours, Permit, PermitStatus, ReferenceRecord, Validity};
use super::time::EventTime;
use super::{Minutes, Ore};
use crate::proto::v1 as wire;

/// Earliest accepted event time: 2000-01-01T00:00:00Z.
pub const MIN_TIME: i64 = 946_684_800;
/// Latest accepted event time (exclusive): 2100-01-01T00:00:00Z.
pub const MAX_TIME: i64 = 4_102_444_800;
/// Longest accepted id or reference, in bytes.
pub const MAX_REF_LEN: usize = 128;
/// Most lines accepted on one invoice.
pub const MAX_INVOICE_LINES: usize = 100_000;
/// Longest accepted single visit: seven days (longer is a data error).
pub const MAX_VISIT_SECS: i64 = 7 * 86_400;

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Required and absent (or empty).
    Missing,
    /// An enum value the contract does not define, or UNSPECIFIED.
    UnknownEnumValue(i32),
    /// Check-out earlier than check-in.
    CheckOutBeforeCheckIn,
    /// Visit longer than [`MAX_VISIT_SECS`].
    DurationOutOfRange,
    /// Not an organisation number.
    MalformedOrganisationNumber(OrgNumberError),
    /// Not a four-digit municipality code.
    MalformedMunicipalityCode,
    /// Below zero.
    Negative,
    /// Outside 2000–2099, or nanoseconds outside 0..10^9.
    TimestampOutOfRange,
    /// Longer than [`MAX_REF_LEN`] bytes or containing control characters.
    MalformedReference,
    /// Latitude/longitude outside the globe or not finite.
    InvalidCoordinate,
    /// Period end not after its start.
    PeriodEndNotAfterStart,
    /// Invoice total differs from the sum of its lines.
    TotalMismatch,
    /// More than [`MAX_INVOICE_LINES`] lines.
    TooManyLines,
    /// A number too large for the domain type.
    Overflow,
}

/// A rejected wire message: which field, what problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// Dotted field path in the wire message, e.g. `lines[3].amount_ore`.
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => f.write_str("required field is missing"),
            Problem::UnknownEnumValue(v) => write!(f, "unknown or unspecified enum value {v}"),
            Problem::CheckOutBeforeCheckIn => f.write_str("check-out is before check-in"),
            Problem::DurationOutOfRange => f.write_str("visit is longer than seven days"),
            Problem::MalformedOrganisationNumber(e) => write!(f, "malformed organisation number ({e})"),
            Problem::MalformedMunicipalityCode => f.write_str("not a four-digit municipality code"),
            Problem::Negative => f.write_str("must not be negative"),
            Problem::TimestampOutOfRange => f.write_str("timestamp outside 2000-01-01..2100-01-01"),
            Problem::MalformedReference => f.write_str("reference too long or has control characters"),
            Problem::InvalidCoordinate => f.write_str("coordinate outside the globe"),
            Problem::PeriodEndNotAfterStart => f.write_str("period end is not after period start"),
            Problem::TotalMismatch => f.write_str("total differs from the sum of the lines"),
            Problem::TooManyLines => f.write_str("too many invoice lines"),
            Problem::Overflow => f.write_str("value too large"),
        }
    }
}

/// Every [`ValidationError::reason`] code.
pub const REASONS: [&str; 14] = [
    "missing_field",
    "unknown_enum_value",
    "check_out_before_check_in",
    "duration_out_of_range",
    "malformed_organisation_number",
    "malformed_municipality_code",
    "negative_value",
    "timestamp_out_of_range",
    "malformed_reference",
    "invalid_coordinate",
    "period_end_not_after_start",
    "total_mismatch",
    "too_many_lines",
    "value_overflow",
];

impl ValidationError {
    fn new(field: impl Into<String>, problem: Problem) -> Self {
        ValidationError { field: field.into(), problem }
    }

    /// A short stable code for dead-letter headers and metric labels.
    pub fn reason(&self) -> &'static str {
        match self.problem {
            Problem::Missing => "missing_field",
            Problem::UnknownEnumValue(_) => "unknown_enum_value",
            Problem::CheckOutBeforeCheckIn => "check_out_before_check_in",
            Problem::DurationOutOfRange => "duration_out_of_range",
            Problem::MalformedOrganisationNumber(_) => "malformed_organisation_number",
            Problem::MalformedMunicipalityCode => "malformed_municipality_code",
            Problem::Negative => "negative_value",
            Problem::TimestampOutOfRange => "timestamp_out_of_range",
            Problem::MalformedReference => "malformed_reference",
            Problem::InvalidCoordinate => "invalid_coordinate",
            Problem::PeriodEndNotAfterStart => "period_end_not_after_start",
            Problem::TotalMismatch => "total_mismatch",
            Problem::TooManyLines => "too_many_lines",
            Problem::Overflow => "value_overflow",
        }
    }
}

/// Validates wire messages into domain events, pseudonymising personal
/// references with its [`Pseudonymizer`].
#[derive(Debug, Clone)]
pub struct Validator {
    pseudonymizer: Pseudonymizer,
}

type Result<T> = std::result::Result<T, ValidationError>;

impl Validator {
    /// A validator that pseudonymises with `pseudonymizer`.
    pub fn new(pseudonymizer: Pseudonymizer) -> Self {
        Validator { pseudonymizer }
    }

    /// Validates an [`wire::Event`] envelope.
    pub fn event(&self, event: &wire::Event) -> Result<DomainEvent> {
        match &event.kind {
            Some(wire::event::Kind::TimeReport(t)) => self.time_report(t).map(DomainEvent::Visit),
            Some(wire::event::Kind::Invoice(i)) => self.invoice(i).map(DomainEvent::Invoice),
            Some(wire::event::Kind::Heartbeat(h)) => self.heartbeat(h).map(DomainEvent::Heartbeat),
            Some(wire::event::Kind::GrantedHours(g)) => self.granted_hours(g).map(DomainEvent::Reference),
            Some(wire::event::Kind::ClientAbsence(a)) => self.client_absence(a).map(DomainEvent::Reference),
            Some(wire::event::Kind::ProviderPermit(p)) => self.provider_permit(p).map(DomainEvent::Reference),
            None => Err(ValidationError::new("kind", Problem::Missing)),
        }
    }

    /// Validates a source heartbeat into its time.
    pub fn heartbeat(&self, h: &wire::SourceHeartbeat) -> Result<EventTime> {
        timestamp("at", h.at.as_ref())
    }

    /// Validates a time report into a [`Visit`].
    pub fn time_report(&self, t: &wire::TimeReport) -> Result<Visit> {
        let event_id = EventId::new(reference("event_id", &t.event_id)?);
        let provider = provider_id("provider_id", &t.provider_id)?;
        let municipality = municipality("municipality_code", &t.municipality_code)?;
        let client = self.pseudonymizer.client(reference("client_ref", &t.client_ref)?);
        let staff = self.pseudonymizer.staff(reference("staff_ref", &t.staff_ref)?);
        let service = service_type("service_type", t.service_type)?;
        let check_in = timestamp("check_in", t.check_in.as_ref())?;
        let check_out = timestamp("check_out", t.check_out.as_ref())?;
        if check_out < check_in {
            return Err(ValidationError::new("check_out", Problem::CheckOutBeforeCheckIn));
        }
        if check_out.0 - check_in.0 > MAX_VISIT_SECS {
            return Err(ValidationError::new("check_out", Problem::DurationOutOfRange));
        }
        let method = match wire::RegistrationMethod::try_from(t.registration_method) {
            Ok(wire::RegistrationMethod::Nfc) => RegistrationMethod::Nfc,
            Ok(wire::RegistrationMethod::MobileApp) => RegistrationMethod::MobileApp,
            Ok(wire::RegistrationMethod::Manual) => RegistrationMethod::Manual,
            Ok(wire::RegistrationMethod::Edited) => RegistrationMethod::Edited,
            _ => {
                return Err(ValidationError::new(
                    "registration_method",
                    Problem::UnknownEnumValue(t.registration_method),
                ));
            }
        };
        let household = match &t.household_ref {
            Some(h) if !h.is_empty() => Some(self.pseudonymizer.household(reference("household_ref", h)?)),
            _ => None,
        };
        Ok(Visit {
            event_id,
            provider,
            municipality,
            client,
            staff,
            service,
            check_in,
            check_out,
            method,
            planned: t.planned_minutes.map(Minutes),
            client_home: geo("client_home", t.client_home.as_ref())?,
            check_in_location: geo("check_in_location", t.check_in_location.as_ref())?,
            household,
            reported_at: timestamp("reported_at", t.reported_at.as_ref())?,
        })
    }

    /// Validates an invoice.
    pub fn invoice(&self, i: &wire::Invoice) -> Result<Invoice> {
        let invoice_id = EventId::new(reference("invoice_id", &i.invoice_id)?);
        let provider = provider_id("provider_id", &i.provider_id)?;
        let municipality = municipality("municipality_code", &i.municipality_code)?;
        let period_start = timestamp("period_start", i.period_start.as_ref())?;
        let period_end = timestamp("period_end", i.period_end.as_ref())?;
        if period_end <= period_start {
            return Err(ValidationError::new("period_end", Problem::PeriodEndNotAfterStart));
        }
        let issued_at = timestamp("issued_at", i.issued_at.as_ref())?;
        if i.lines.len() > MAX_INVOICE_LINES {
            return Err(ValidationError::new("lines", Problem::TooManyLines));
        }
        let mut lines = Vec::with_capacity(i.lines.len());
        let mut sum: u64 = 0;
        for (n, l) in i.lines.iter().enumerate() {
            let field = |name: &str| format!("lines[{n}].{name}");
            if l.client_ref.is_empty() || l.client_ref.len() > MAX_REF_LEN {
                let problem = if l.client_ref.is_empty() { Problem::Missing } else { Problem::MalformedReference };
                return Err(ValidationError::new(field("client_ref"), problem));
            }
            let service =
                service_type("", l.service_type).map_err(|e| ValidationError::new(field("service_type"), e.problem))?;
            let minutes = non_negative(l.minutes).map_err(|p| ValidationError::new(field("minutes"), p))?;
            let minutes =
                u32::try_from(minutes).map_err(|_| ValidationError::new(field("minutes"), Problem::Overflow))?;
            let tariff = non_negative(l.tariff_ore_per_hour)
                .map_err(|p| ValidationError::new(field("tariff_ore_per_hour"), p))?;
            let amount = non_negative(l.amount_ore).map_err(|p| ValidationError::new(field("amount_ore"), p))?;
            sum =
                sum.checked_add(amount).ok_or_else(|| ValidationError::new(field("amount_ore"), Problem::Overflow))?;
            lines.push(InvoiceLine {
                client: self.pseudonymizer.client(&l.client_ref),
                service,
                minutes: Minutes(minutes),
                tariff_per_hour: Ore(tariff),
                amount: Ore(amount),
            });
        }
        let total = non_negative(i.total_ore).map_err(|p| ValidationError::new("total_ore", p))?;
        if total != sum {
            return Err(ValidationError::new("total_ore", Problem::TotalMismatch));
        }
        Ok(Invoice {
            invoice_id,
            provider,
            municipality,
            period_start,
            period_end,
            issued_at,
            lines,
            total: Ore(total),
        })
    }
}

/// Longest accepted validity of a decision, an absence or a register
/// period with an end: 30 years (a longer one is a data error; "until
/// further notice" has no end).
pub const MAX_VALIDITY_SECS: i64 = 30 * 366 * 86_400;

/// Most minutes a decision grants per month: two people around the clock
/// (double staffing) for 31 days.
pub const MAX_GRANTED_MINUTES_PER_MONTH: u32 = 2 * 31 * 24 * 60;

impl Validator {
    /// Validates a decision on granted hours (biståndsbeslut).
    pub fn granted_hours(&self, g: &wire::GrantedHours) -> Result<ReferenceRecord> {
        let id = EventId::new(reference("decision_id", &g.decision_id)?);
        let municipality = municipality("municipality_code", &g.municipality_code)?;
        let client = self.pseudonymizer.client(reference("client_ref", &g.client_ref)?);
        let service = service_type("service_type", g.service_type)?;
        let minutes = non_negative(g.minutes_per_month).map_err(|p| ValidationError::new("minutes_per_month", p))?;
        let minutes_per_month = u32::try_from(minutes)
            .ok()
            .filter(|m| *m <= MAX_GRANTED_MINUTES_PER_MONTH)
            .ok_or_else(|| ValidationError::new("minutes_per_month", Problem::Overflow))?;
        let valid = validity(("valid_from", g.valid_from.as_ref()), ("valid_to", g.valid_to.as_ref()))?;
        let provider = if g.provider_id.is_empty() { None } else { Some(provider_id("provider_id", &g.provider_id)?) };
        Ok(ReferenceRecord {
            id,
            recorded_at: timestamp("recorded_at", g.recorded_at.as_ref())?,
            retracted: g.retracted,
            fact: Fact::GrantedHours(GrantedHours {
                municipality,
                client,
                service,
                minutes_per_month,
                valid,
                provider,
            }),
        })
    }

    /// Validates a client's absence.
    pub fn client_absence(&self, a: &wire::ClientAbsence) -> Result<ReferenceRecord> {
        let id = EventId::new(reference("absence_id", &a.absence_id)?);
        let municipality = municipality("municipality_code", &a.municipality_code)?;
        let client = self.pseudonymizer.client(reference("client_ref", &a.client_ref)?);
        let kind = match wire::AbsenceKind::try_from(a.kind) {
            Ok(wire::AbsenceKind::HospitalStay) => AbsenceKind::HospitalStay,
            Ok(wire::AbsenceKind::ShortTermCare) => AbsenceKind::ShortTermCare,
            Ok(wire::AbsenceKind::Death) => AbsenceKind::Death,
            Ok(wire::AbsenceKind::MovedAway) => AbsenceKind::MovedAway,
            _ => return Err(ValidationError::new("kind", Problem::UnknownEnumValue(a.kind))),
        };
        if !a.source.is_empty() {
            reference("source", &a.source)?;
        }
        let period = validity(("from", a.from.as_ref()), ("to", a.to.as_ref()))?;
        Ok(ReferenceRecord {
            id,
            recorded_at: timestamp("recorded_at", a.recorded_at.as_ref())?,
            retracted: a.retracted,
            fact: Fact::Absence(Absence { municipality, client, kind, period }),
        })
    }

    /// Validates a period of a provider's entry in the provider register.
    pub fn provider_permit(&self, p: &wire::ProviderPermit) -> Result<ReferenceRecord> {
        let id = EventId::new(reference("permit_id", &p.permit_id)?);
        let provider = provider_id("provider_id", &p.provider_id)?;
        let municipality = municipality("municipality_code", &p.municipality_code)?;
        let status = match wire::PermitStatus::try_from(p.status) {
            Ok(wire::PermitStatus::Valid) => PermitStatus::Valid,
            Ok(wire::PermitStatus::Suspended) => PermitStatus::Suspended,
            Ok(wire::PermitStatus::Revoked) => PermitStatus::Revoked,
            _ => return Err(ValidationError::new("status", Problem::UnknownEnumValue(p.status))),
        };
        let valid = validity(("valid_from", p.valid_from.as_ref()), ("valid_to", p.valid_to.as_ref()))?;
        Ok(ReferenceRecord {
            id,
            recorded_at: timestamp("recorded_at", p.recorded_at.as_ref())?,
            retracted: p.retracted,
            fact: Fact::Permit(Permit { provider, municipality, status, valid }),
        })
    }
}

/// A validity from a required start and an optional end after it.
fn validity(
    (from_field, from): (&str, Option<&pbjson_types::Timestamp>),
    (to_field, to): (&str, Option<&pbjson_types::Timestamp>),
) -> Result<Validity> {
    let from = timestamp(from_field, from)?;
    let to = match to {
        Some(t) => Some(timestamp(to_field, Some(t))?),
        None => None,
    };
    if let Some(to) = to {
        if to <= from {
            return Err(ValidationError::new(to_field, Problem::PeriodEndNotAfterStart));
        }
        if to.0 - from.0 > MAX_VALIDITY_SECS {
            return Err(ValidationError::new(to_field, Problem::DurationOutOfRange));
        }
    }
    Ok(Validity { from, to })
}

fn reference<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(ValidationError::new(field, Problem::Missing));
    }
    if value.len() > MAX_REF_LEN || value.chars().any(char::is_control) {
        return Err(ValidationError::new(field, Problem::MalformedReference));
    }
    Ok(value)
}

fn provider_id(field: &str, value: &str) -> Result<ProviderId> {
    if value.is_empty() {
        return Err(ValidationError::new(field, Problem::Missing));
    }
    value.parse().map_err(|e| ValidationError::new(field, Problem::MalformedOrganisationNumber(e)))
}

fn municipality(field: &str, value: &str) -> Result<MunicipalityCode> {
    if value.is_empty() {
        return Err(ValidationError::new(field, Problem::Missing));
    }
    MunicipalityCode::parse(value).ok_or_else(|| ValidationError::new(field, Problem::MalformedMunicipalityCode))
}

fn service_type(field: &str, value: i32) -> Result<ServiceType> {
    match wire::ServiceType::try_from(value) {
        Ok(wire::ServiceType::PersonalCare) => Ok(ServiceType::PersonalCare),
        Ok(wire::ServiceType::Service) => Ok(ServiceType::Service),
        Ok(wire::ServiceType::Escort) => Ok(ServiceType::Escort),
        Ok(wire::ServiceType::DoubleStaffing) => Ok(ServiceType::DoubleStaffing),
        Ok(wire::ServiceType::PersonalAssistance) => Ok(ServiceType::PersonalAssistance),
        Ok(wire::ServiceType::NightPatrol) => Ok(ServiceType::NightPatrol),
        _ => Err(ValidationError::new(field, Problem::UnknownEnumValue(value))),
    }
}

fn timestamp(field: &str, value: Option<&pbjson_types::Timestamp>) -> Result<EventTime> {
    let ts = value.ok_or_else(|| ValidationError::new(field, Problem::Missing))?;
    if !(MIN_TIME..MAX_TIME).contains(&ts.seconds) || !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(ValidationError::new(field, Problem::TimestampOutOfRange));
    }
    Ok(EventTime(ts.seconds))
}

fn geo(field: &str, value: Option<&wire::GeoPoint>) -> Result<Option<GeoPoint>> {
    let Some(p) = value else { return Ok(None) };
    let ok = p.latitude.is_finite()
        && p.longitude.is_finite()
        && (-90.0..=90.0).contains(&p.latitude)
        && (-180.0..=180.0).contains(&p.longitude);
    if !ok {
        return Err(ValidationError::new(field, Problem::InvalidCoordinate));
    }
    Ok(Some(GeoPoint { lat: p.latitude, lon: p.longitude }))
}

fn non_negative(value: i64) -> std::result::Result<u64, Problem> {
    u64::try_from(value).map_err(|_| Problem::Negative)
}

#[cfg(test)]
mod tests {

    #[test]
    fn reasons_lists_every_problem_s_code() {
        let problems = [
            Problem::Missing,
            Problem::UnknownEnumValue(9),
            Problem::CheckOutBeforeCheckIn,
            Problem::DurationOutOfRange,
            Problem::MalformedOrganisationNumber(OrgNumberError::Format),
            Problem::MalformedMunicipalityCode,
            Problem::Negative,
            Problem::TimestampOutOfRange,
            Problem::MalformedReference,
            Problem::InvalidCoordinate,
            Problem::PeriodEndNotAfterStart,
            Problem::TotalMismatch,
            Problem::TooManyLines,
            Problem::Overflow,
        ];
        let codes: Vec<&str> = problems.into_iter().map(|p| ValidationError::new("f", p).reason()).collect();
        assert_eq!(codes, REASONS);
    }
    use super::*;
    use crate::model::fixtures::{invoice, report, ts};

    /// A mutation of a valid message, the field it breaks and the reason.
    type Case<M> = (fn(&mut M), &'static str, &'static str);

    fn validator() -> Validator {
        Validator::new(Pseudonymizer::from_secret("test"))
    }

    fn reject(t: wire::TimeReport) -> (String, &'static str) {
        let e = validator().time_report(&t).unwrap_err();
        (e.field.clone(), e.reason())
    }

    #[test]
    fn a_valid_report_becomes_a_pseudonymised_visit() {
        let v = validator().time_report(&report()).unwrap();
        assert_eq!(v.duration(), Minutes(30));
        assert_eq!(v.client, Pseudonymizer::from_secret("test").client("c-1"));
        assert_eq!(v.provider.to_string(), "556036-0793");
    }

    #[test]
    fn report_rejections_name_field_and_reason() {
        let cases: Vec<Case<wire::TimeReport>> = vec![
            (|t| t.event_id.clear(), "event_id", "missing_field"),
            (|t| t.client_ref.clear(), "client_ref", "missing_field"),
            (|t| t.staff_ref = "x".repeat(200), "staff_ref", "malformed_reference"),
            (|t| t.provider_id = "556036-0794".into(), "provider_id", "malformed_organisation_number"),
            (|t| t.provider_id = "hello".into(), "provider_id", "malformed_organisation_number"),
            (|t| t.municipality_code = "99".into(), "municipality_code", "malformed_municipality_code"),
            (|t| t.service_type = 0, "service_type", "unknown_enum_value"),
            (|t| t.service_type = 77, "service_type", "unknown_enum_value"),
            (|t| t.registration_method = 9, "registration_method", "unknown_enum_value"),
            (|t| t.check_in = None, "check_in", "missing_field"),
            (|t| t.check_out = ts(1_767_250_000), "check_out", "check_out_before_check_in"),
            (|t| t.check_out = ts(1_767_250_800 + 8 * 86_400), "check_out", "duration_out_of_range"),
            (|t| t.check_in = ts(253_402_300_799), "check_in", "timestamp_out_of_range"),
            (
                |t| t.check_in_location = Some(wire::GeoPoint { latitude: f64::NAN, longitude: 0.0 }),
                "check_in_location",
                "invalid_coordinate",
            ),
        ];
        for (mutate, field, reason) in cases {
            let mut t = report();
            mutate(&mut t);
            assert_eq!(reject(t), (field.to_string(), reason));
        }
    }

    #[test]
    fn a_valid_invoice_is_accepted() {
        let i = validator().invoice(&invoice()).unwrap();
        assert_eq!(i.lines.len(), 1);
        assert_eq!(i.total, Ore(85_200));
    }

    #[test]
    fn invoice_rejections_name_field_and_reason() {
        let cases: Vec<Case<wire::Invoice>> = vec![
            (|i| i.lines[0].amount_ore = -1, "lines[0].amount_ore", "negative_value"),
            (|i| i.lines[0].minutes = -60, "lines[0].minutes", "negative_value"),
            (|i| i.lines[0].service_type = 0, "lines[0].service_type", "unknown_enum_value"),
            (|i| i.lines[0].client_ref.clear(), "lines[0].client_ref", "missing_field"),
            (|i| i.total_ore = 1, "total_ore", "total_mismatch"),
            (|i| i.period_end = i.period_start, "period_end", "period_end_not_after_start"),
            (|i| i.issued_at = None, "issued_at", "missing_field"),
        ];
        for (mutate, field, reason) in cases {
            let mut i = invoice();
            mutate(&mut i);
            let e = validator().invoice(&i).unwrap_err();
            assert_eq!((e.field.as_str(), e.reason()), (field, reason));
        }
    }

    #[test]
    fn valid_reference_records_become_pseudonymised_facts() {
        use crate::model::fixtures::{client_absence, granted_hours, provider_permit};
        use crate::model::reference::{AbsenceKind, Fact, PermitStatus};
        let key = Pseudonymizer::from_secret("test").client("c-1");
        let g = validator().granted_hours(&granted_hours()).unwrap();
        assert!(
            matches!(&g.fact, Fact::GrantedHours(d) if d.client == key && d.minutes_per_month == 1200 && d.valid.to.is_none() && d.provider.is_none())
        );
        assert_eq!((g.id.as_str(), g.recorded_at.0), ("bb-1", 1_767_100_000));
        let ordered = wire::GrantedHours { provider_id: "556036-0793".into(), ..granted_hours() };
        let g = validator().granted_hours(&ordered).unwrap();
        assert!(
            matches!(&g.fact, Fact::GrantedHours(d) if d.provider == Some("556036-0793".parse().unwrap())),
            "the provider the client chose: {g:?}"
        );
        let a = validator().client_absence(&client_absence()).unwrap();
        assert!(matches!(&a.fact, Fact::Absence(x) if x.client == key && x.kind == AbsenceKind::HospitalStay));
        let p = validator().provider_permit(&provider_permit()).unwrap();
        assert!(matches!(&p.fact, Fact::Permit(x) if x.status == PermitStatus::Valid));
        let envelope = wire::Event { kind: Some(wire::event::Kind::ClientAbsence(client_absence())) };
        assert_eq!(validator().event(&envelope).unwrap(), DomainEvent::Reference(a));
    }

    #[test]
    fn reference_rejections_name_field_and_reason() {
        use crate::model::fixtures::{client_absence, granted_hours, provider_permit};
        let decisions: Vec<Case<wire::GrantedHours>> = vec![
            (|g| g.decision_id.clear(), "decision_id", "missing_field"),
            (|g| g.client_ref = "\u{7}".into(), "client_ref", "malformed_reference"),
            (|g| g.service_type = 0, "service_type", "unknown_enum_value"),
            (|g| g.minutes_per_month = -1, "minutes_per_month", "negative_value"),
            (|g| g.minutes_per_month = 200_000, "minutes_per_month", "value_overflow"),
            (|g| g.valid_to = g.valid_from, "valid_to", "period_end_not_after_start"),
            (|g| g.valid_to = ts(4_000_000_000), "valid_to", "duration_out_of_range"),
            (|g| g.recorded_at = ts(4_102_444_800), "recorded_at", "timestamp_out_of_range"),
            (|g| g.valid_from = None, "valid_from", "missing_field"),
            (|g| g.provider_id = "5560360794".into(), "provider_id", "malformed_organisation_number"),
        ];
        for (mutate, field, reason) in decisions {
            let mut g = granted_hours();
            mutate(&mut g);
            let e = validator().granted_hours(&g).unwrap_err();
            assert_eq!((e.field.as_str(), e.reason()), (field, reason));
        }
        let absences: Vec<Case<wire::ClientAbsence>> = vec![
            (|a| a.kind = 0, "kind", "unknown_enum_value"),
            (|a| a.to = ts(1_767_000_000), "to", "period_end_not_after_start"),
            (|a| a.recorded_at = None, "recorded_at", "missing_field"),
            (|a| a.municipality_code = "24800".into(), "municipality_code", "malformed_municipality_code"),
        ];
        for (mutate, field, reason) in absences {
            let mut a = client_absence();
            mutate(&mut a);
            let e = validator().client_absence(&a).unwrap_err();
            assert_eq!((e.field.as_str(), e.reason()), (field, reason));
        }
        let permits: Vec<Case<wire::ProviderPermit>> = vec![
            (|p| p.status = 7, "status", "unknown_enum_value"),
            (|p| p.provider_id = "556036-0794".into(), "provider_id", "malformed_organisation_number"),
            (|p| p.permit_id.clear(), "permit_id", "missing_field"),
        ];
        for (mutate, field, reason) in permits {
            let mut p = provider_permit();
            mutate(&mut p);
            let e = validator().provider_permit(&p).unwrap_err();
            assert_eq!((e.field.as_str(), e.reason()), (field, reason));
        }
    }

    #[test]
    fn an_empty_envelope_is_rejected() {
        let e = validator().event(&wire::Event { kind: None }).unwrap_err();
        assert_eq!(e.reason(), "missing_field");
    }
}
