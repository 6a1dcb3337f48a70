//! Reference data: what the municipality already knows about its clients
//! and providers (granted hours, absences, the provider register), as
//! versions of facts.
//!
//! A fact has an id (a decision, an absence, a register entry) and
//! versions: each [`ReferenceRecord`] is one, registered at its
//! `recorded_at` (its event time). A correction is a later version of the
//! same id; a retraction is a version that says the fact no longer holds.
//! The core compares what happened at time `t` with the facts as recorded
//! by `t` ([`crate::baseline::reference`]).

use super::event::ServiceType;
use super::ids::{ClientKey, EventId, MunicipalityCode, ProviderId};
use super::time::EventTime;

/// When a fact applies: from `from` (inclusive) to `to` (exclusive), or
/// until further notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validity {
    /// First instant.
    pub from: EventTime,
    /// End (exclusive); `None`: open.
    pub to: Option<EventTime>,
}

impl Validity {
    /// Whether `t` is inside.
    pub fn contains(&self, t: EventTime) -> bool {
        t >= self.from && self.to.is_none_or(|to| t < to)
    }

    /// Seconds of `[start, end)` inside.
    pub fn overlap_secs(&self, start: EventTime, end: EventTime) -> i64 {
        let lo = start.0.max(self.from.0);
        let hi = self.to.map_or(end.0, |to| end.0.min(to.0));
        (hi - lo).max(0)
    }
}

/// A needs-assessment decision (biståndsbeslut): time granted to a client
/// per calendar month for one service type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrantedHours {
    /// The deciding municipality.
    pub municipality: MunicipalityCode,
    /// The client (pseudonymised).
    pub client: ClientKey,
    /// The kind of care granted.
    pub service: ServiceType,
    /// Granted minutes per calendar month (a month covered in part gets
    /// its share by time).
    pub minutes_per_month: u32,
    /// When it applies.
    pub valid: Validity,
    /// The provider the client chose for this care (the municipality's
    /// order), if the case system says.
    #[serde(default)]
    pub provider: Option<ProviderId>,
}

/// Why a client was away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum AbsenceKind {
    /// Admitted to hospital (slutenvård).
    HospitalStay,
    /// In short-term residential care (korttidsboende).
    ShortTermCare,
    /// Died.
    Death,
    /// Moved out of the municipality or abroad.
    MovedAway,
}

impl AbsenceKind {
    /// Every kind.
    pub const ALL: [AbsenceKind; 4] =
        [AbsenceKind::HospitalStay, AbsenceKind::ShortTermCare, AbsenceKind::Death, AbsenceKind::MovedAway];

    /// A stable snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            AbsenceKind::HospitalStay => "hospital_stay",
            AbsenceKind::ShortTermCare => "short_term_care",
            AbsenceKind::Death => "death",
            AbsenceKind::MovedAway => "moved_away",
        }
    }
}

/// A period in which a client was not at home to be cared for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Absence {
    /// The client's municipality.
    pub municipality: MunicipalityCode,
    /// The client (pseudonymised).
    pub client: ClientKey,
    /// Why.
    pub kind: AbsenceKind,
    /// When: from admission (death, move) to discharge, or open.
    pub period: Validity,
}

/// What the provider register says for a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum PermitStatus {
    /// May perform and bill.
    Valid,
    /// Suspended for the period.
    Suspended,
    /// Revoked or terminated.
    Revoked,
}

impl PermitStatus {
    /// A stable snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            PermitStatus::Valid => "valid",
            PermitStatus::Suspended => "suspended",
            PermitStatus::Revoked => "revoked",
        }
    }
}

/// One period of a provider's entry in a municipality's provider register.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Permit {
    /// The provider.
    pub provider: ProviderId,
    /// The municipality whose register it is.
    pub municipality: MunicipalityCode,
    /// What the entry says.
    pub status: PermitStatus,
    /// For when.
    pub valid: Validity,
}

/// A fact of the reference data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Fact {
    /// A decision on granted hours.
    GrantedHours(GrantedHours),
    /// A client's absence.
    Absence(Absence),
    /// A provider register entry.
    Permit(Permit),
}

impl Fact {
    /// The kind of fact, as a stable name (the topic's, in metric labels).
    pub fn kind(&self) -> ReferenceKind {
        match self {
            Fact::GrantedHours(_) => ReferenceKind::GrantedHours,
            Fact::Absence(_) => ReferenceKind::Absences,
            Fact::Permit(_) => ReferenceKind::ProviderRegister,
        }
    }
}

/// The three kinds of reference data, each a topic of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum ReferenceKind {
    /// Decisions on granted hours, keyed by decision id.
    GrantedHours,
    /// Client absences, keyed by absence id.
    Absences,
    /// The provider register, keyed by entry id.
    ProviderRegister,
}

impl ReferenceKind {
    /// Every kind.
    pub const ALL: [ReferenceKind; 3] =
        [ReferenceKind::GrantedHours, ReferenceKind::Absences, ReferenceKind::ProviderRegister];

    /// A stable snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            ReferenceKind::GrantedHours => "granted_hours",
            ReferenceKind::Absences => "absences",
            ReferenceKind::ProviderRegister => "provider_register",
        }
    }
}

/// One version of a fact.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReferenceRecord {
    /// The fact's id in its source (decision, absence, register entry).
    pub id: EventId,
    /// When this version was registered: its event time.
    pub recorded_at: EventTime,
    /// The fact no longer holds from `recorded_at` on.
    pub retracted: bool,
    /// The fact as this version states it.
    pub fact: Fact,
}
