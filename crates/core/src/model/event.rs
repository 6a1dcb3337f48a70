//! Validated domain events: visits and invoices.

use super::ids::{ClientKey, EventId, HouseholdKey, MunicipalityCode, ProviderId, ProviderKey, StaffKey};
use super::time::EventTime;
use super::{Minutes, Ore};

/// The kind of care. Mirrors the wire enum without its UNSPECIFIED value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum ServiceType {
    /// Personlig omvårdnad.
    PersonalCare,
    /// Serviceinsatser (cleaning, shopping).
    Service,
    /// Ledsagning.
    Escort,
    /// Dubbelbemanning.
    DoubleStaffing,
    /// Personlig assistans.
    PersonalAssistance,
    /// The municipality's night patrol.
    NightPatrol,
}

impl ServiceType {
    /// All service types, in wire order.
    pub const ALL: [ServiceType; 6] = [
        ServiceType::PersonalCare,
        ServiceType::Service,
        ServiceType::Escort,
        ServiceType::DoubleStaffing,
        ServiceType::PersonalAssistance,
        ServiceType::NightPatrol,
    ];

    /// Dense index 0..6 for per-service arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short lowercase name for explanations and labels.
    pub fn name(self) -> &'static str {
        match self {
            ServiceType::PersonalCare => "personal care",
            ServiceType::Service => "service",
            ServiceType::Escort => "escort",
            ServiceType::DoubleStaffing => "double staffing",
            ServiceType::PersonalAssistance => "personal assistance",
            ServiceType::NightPatrol => "night patrol",
        }
    }

    /// Its Swedish name, for explanations: the insats as a municipality's
    /// decisions call it.
    pub fn name_sv(self) -> &'static str {
        match self {
            ServiceType::PersonalCare => "personlig omvårdnad",
            ServiceType::Service => "serviceinsatser",
            ServiceType::Escort => "ledsagning",
            ServiceType::DoubleStaffing => "dubbelbemanning",
            ServiceType::PersonalAssistance => "personlig assistans",
            ServiceType::NightPatrol => "nattpatrull",
        }
    }
}

/// How a visit was registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RegistrationMethod {
    /// NFC tag or digital lock at the door.
    Nfc,
    /// Mobile app without a door event.
    MobileApp,
    /// Entered by hand.
    Manual,
    /// Device registration edited afterwards.
    Edited,
}

impl RegistrationMethod {
    /// How much a registration proves presence: 2 for a door event (NFC or
    /// lock), 1 for the staff member's app or a device registration edited
    /// afterwards, 0 for one entered by hand.
    pub fn strength(self) -> u8 {
        match self {
            RegistrationMethod::Nfc => 2,
            RegistrationMethod::MobileApp | RegistrationMethod::Edited => 1,
            RegistrationMethod::Manual => 0,
        }
    }

    /// Manual and edited registrations: the classic manipulation channel.
    pub fn is_manual_or_edited(self) -> bool {
        matches!(self, RegistrationMethod::Manual | RegistrationMethod::Edited)
    }
}

/// A WGS 84 position, validated to be on Earth.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GeoPoint {
    /// Degrees north, -90..=90.
    pub lat: f64,
    /// Degrees east, -180..=180.
    pub lon: f64,
}

impl GeoPoint {
    /// An upper bound of the distance in metres, without trigonometry:
    /// the flat-earth distance with the east-west degrees counted at the
    /// equator's length. Lets callers skip [`GeoPoint::distance_m`] when
    /// even the bound is short.
    pub fn distance_upper_bound_m(self, other: GeoPoint) -> f64 {
        const M_PER_DEG: f64 = 111_195.0; // 2πR / 360, R = 6,371 km
        let dlat = (other.lat - self.lat).abs();
        let dlon = (other.lon - self.lon).abs().min(360.0 - (other.lon - self.lon).abs());
        // 1.01: the flat approximation's error over the short distances
        // this is used for stays well under one percent.
        1.01 * M_PER_DEG * (dlat * dlat + dlon * dlon).sqrt()
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(self, other: GeoPoint) -> f64 {
        const R: f64 = 6_371_000.0;
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * R * a.sqrt().asin()
    }
}

/// One visit: a staff member's check-in and check-out at a client's home.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Visit {
    /// The time report's id.
    pub event_id: EventId,
    /// Who bills for the visit.
    pub provider: ProviderId,
    /// Who pays.
    pub municipality: MunicipalityCode,
    /// Pseudonymous client.
    pub client: ClientKey,
    /// Pseudonymous staff member.
    pub staff: StaffKey,
    /// Kind of care.
    pub service: ServiceType,
    /// Start of the visit; the visit's event time.
    pub check_in: EventTime,
    /// End of the visit; never before `check_in`.
    pub check_out: EventTime,
    /// How the times were registered.
    pub method: RegistrationMethod,
    /// Planned duration, if the schedule is known.
    pub planned: Option<Minutes>,
    /// The client's home, if known.
    pub client_home: Option<GeoPoint>,
    /// Where the check-in was made, if known.
    pub check_in_location: Option<GeoPoint>,
    /// Shared home of several clients, if any.
    pub household: Option<HouseholdKey>,
    /// When the source system reported it.
    pub reported_at: EventTime,
}

impl Visit {
    /// The provider and municipality it is billed under.
    pub fn provider_key(&self) -> ProviderKey {
        ProviderKey { provider: self.provider, municipality: self.municipality }
    }

    /// Duration in whole minutes (rounded down).
    pub fn duration(&self) -> Minutes {
        Minutes(((self.check_out.0 - self.check_in.0) / 60).clamp(0, i64::from(u32::MAX)) as u32)
    }
}

/// One invoice line: hours billed for one client and service type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InvoiceLine {
    /// Pseudonymous client.
    pub client: ClientKey,
    /// Kind of care billed.
    pub service: ServiceType,
    /// Billed time.
    pub minutes: Minutes,
    /// Tariff per hour.
    pub tariff_per_hour: Ore,
    /// Line amount.
    pub amount: Ore,
}

/// A provider's invoice for one period.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Invoice {
    /// The invoice id.
    pub invoice_id: EventId,
    /// Who bills.
    pub provider: ProviderId,
    /// Who pays.
    pub municipality: MunicipalityCode,
    /// Start of the billed period (inclusive).
    pub period_start: EventTime,
    /// End of the billed period (exclusive), after `period_start`.
    pub period_end: EventTime,
    /// When it was issued; the invoice's event time.
    pub issued_at: EventTime,
    /// The lines.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the amounts.
    pub total: Ore,
}

impl Invoice {
    /// The provider and municipality it bills.
    pub fn provider_key(&self) -> ProviderKey {
        ProviderKey { provider: self.provider, municipality: self.municipality }
    }
}

/// A validated input event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum DomainEvent {
    /// A time report.
    Visit(Visit),
    /// An invoice.
    Invoice(Invoice),
    /// A source's clock on a partition with nothing to report: moves the
    /// input's watermark to this time as a record would, nothing else.
    Heartbeat(EventTime),
    /// A version of a fact of the reference data: to the global reference
    /// table, not to a provider's partition.
    Reference(super::reference::ReferenceRecord),
}

impl DomainEvent {
    /// The provider the event belongs to (the partition key); none for a
    /// heartbeat, which goes to every partition, and for reference data,
    /// which goes to the global reference table.
    pub fn provider(&self) -> Option<ProviderId> {
        match self {
            DomainEvent::Visit(v) => Some(v.provider),
            DomainEvent::Invoice(i) => Some(i.provider),
            DomainEvent::Heartbeat(_) | DomainEvent::Reference(_) => None,
        }
    }

    /// The event's id; none for a heartbeat.
    pub fn event_id(&self) -> Option<&EventId> {
        match self {
            DomainEvent::Visit(v) => Some(&v.event_id),
            DomainEvent::Invoice(i) => Some(&i.invoice_id),
            DomainEvent::Reference(r) => Some(&r.id),
            DomainEvent::Heartbeat(_) => None,
        }
    }

    /// The event time that drives windows: check-in for visits, issue time
    /// for invoices, registration time for reference data.
    pub fn event_time(&self) -> EventTime {
        match self {
            DomainEvent::Visit(v) => v.check_in,
            DomainEvent::Invoice(i) => i.issued_at,
            DomainEvent::Heartbeat(at) => *at,
            DomainEvent::Reference(r) => r.recorded_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn haversine_of_a_known_distance() {
        // Umeå to Stockholm centre: about 510 km.
        let umea = GeoPoint { lat: 63.8258, lon: 20.2630 };
        let stockholm = GeoPoint { lat: 59.3293, lon: 18.0686 };
        assert!((umea.distance_m(stockholm) / 1000.0 - 510.0).abs() < 5.0);
    }

    proptest! {
        /// The cheap bound is never below the true distance for points up
        /// to ~50 km apart anywhere in Sweden.
        #[test]
        fn the_upper_bound_bounds(lat in 55.0f64..69.5, lon in 10.0f64..24.5, dlat in -0.45f64..0.45, dlon in -0.9f64..0.9) {
            let a = GeoPoint { lat, lon };
            let b = GeoPoint { lat: lat + dlat, lon: lon + dlon };
            prop_assert!(a.distance_upper_bound_m(b) >= a.distance_m(b));
        }
    }
}
