//! Domain types: what the detection core reasons about.
//!
//! Everything in the core is a validated domain value: a [`ProviderId`] is a
//! well-formed organisation number, a [`Minutes`] is never negative, client and
//! staff references are already pseudonymised keys. The only way in from the
//! wire is [`validate::Validator`], which rejects bad records with a
//! [`validate::ValidationError`] naming the field.
//!
//! - [`ids`]: provider, municipality, client, staff, household and event ids.
//! - [`time`]: event time and Swedish local calendar arithmetic.
//! - [`event`]: visits, invoices and invoice lines.
//! - [`reference`]: granted hours, absences, the provider register.
//! - [`validate`]: wire message → domain event, with typed errors.
//! - [`pseudonym`]: keyed hashing of client and staff references.

pub mod event;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod ids;
pub mod pseudonym;
pub mod reference;
pub mod time;
pub mod validate;

pub use event::{DomainEvent, GeoPoint, Invoice, InvoiceLine, RegistrationMethod, ServiceType, Visit};
pub use ids::{ClientKey, EventId, HouseholdKey, MunicipalityCode, ProviderId, ProviderKey, StaffKey};
pub use time::{Day, EventTime, Month};

/// A non-negative amount of money in öre (1/100 krona).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Ore(pub u64);

/// A non-negative duration in whole minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Minutes(pub u32);

impl Minutes {
    /// The duration in hours, for display.
    pub fn hours(self) -> f64 {
        f64::from(self.0) / 60.0
    }
}
