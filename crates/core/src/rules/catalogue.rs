//! The identity of every rule: ids, versions, patterns, quiet periods.
//! Rules evaluated daily over a 30-day window keep an episode open for the
//! window's length, so a provider hovering at the threshold does not open
//! and resolve episodes week after week.
//! These are part of the alert contract; change an id never, a version
//! when a rule's meaning changes.

use super::RuleInfo;

/// Pattern 1.
pub static INVOICED_ABOVE_PERFORMED: RuleInfo = RuleInfo {
    id: "invoiced-above-performed",
    version: 1,
    pattern: 1,
    name: "Invoiced hours above performed hours",
    quiet_days: 45,
};
/// Pattern 2.
pub static STAFF_DOUBLE_BOOKING: RuleInfo =
    RuleInfo { id: "staff-double-booking", version: 1, pattern: 2, name: "Staff double-booking", quiet_days: 14 };
/// Pattern 3.
pub static STAFF_IMPOSSIBLE_DAY: RuleInfo =
    RuleInfo { id: "staff-impossible-day", version: 1, pattern: 3, name: "Impossible day / no rest", quiet_days: 14 };
/// Pattern 4 (travel).
pub static IMPOSSIBLE_TRAVEL: RuleInfo = RuleInfo {
    id: "impossible-travel",
    version: 1,
    pattern: 4,
    name: "Impossible travel between visits",
    quiet_days: 14,
};
/// Pattern 4 (position).
pub static CHECK_IN_AWAY_FROM_HOME: RuleInfo = RuleInfo {
    id: "check-in-away-from-home",
    version: 1,
    pattern: 4,
    name: "Check-in far from the client's home",
    quiet_days: 14,
};
/// Pattern 5.
pub static MANUAL_REGISTRATION_SHARE: RuleInfo = RuleInfo {
    id: "manual-registration-share",
    version: 1,
    pattern: 5,
    name: "Manual or edited registrations above peers",
    quiet_days: 30,
};
/// Pattern 6.
pub static ROUNDED_VISITS: RuleInfo =
    RuleInfo { id: "rounded-visits", version: 1, pattern: 6, name: "Ghost or rounded visits", quiet_days: 30 };
/// Pattern 7.
pub static PHANTOM_CLIENTS: RuleInfo =
    RuleInfo { id: "phantom-clients", version: 1, pattern: 7, name: "Invoiced clients without visits", quiet_days: 45 };
/// Pattern 8.
pub static DUPLICATE_BILLING: RuleInfo =
    RuleInfo { id: "duplicate-billing", version: 1, pattern: 8, name: "Duplicate billing", quiet_days: 45 };
/// Pattern 9.
pub static VOLUME_EXPLOSION: RuleInfo =
    RuleInfo { id: "volume-explosion", version: 1, pattern: 9, name: "Volume explosion", quiet_days: 28 };
/// Pattern 10.
pub static HOURS_PER_CLIENT_ABOVE_PEERS: RuleInfo = RuleInfo {
    id: "hours-per-client-above-peers",
    version: 1,
    pattern: 10,
    name: "Hours per client far above peers",
    quiet_days: 30,
};
/// Pattern 12.
pub static NIGHT_VISITS_PRIVATE_PROVIDER: RuleInfo = RuleInfo {
    id: "night-visits-private-provider",
    version: 1,
    pattern: 12,
    name: "Night visits by a private provider",
    quiet_days: 14,
};

/// Every rule, in catalogue order.
pub static ALL: [&RuleInfo; 12] = [
    &INVOICED_ABOVE_PERFORMED,
    &STAFF_DOUBLE_BOOKING,
    &STAFF_IMPOSSIBLE_DAY,
    &IMPOSSIBLE_TRAVEL,
    &CHECK_IN_AWAY_FROM_HOME,
    &MANUAL_REGISTRATION_SHARE,
    &ROUNDED_VISITS,
    &PHANTOM_CLIENTS,
    &DUPLICATE_BILLING,
    &VOLUME_EXPLOSION,
    &HOURS_PER_CLIENT_ABOVE_PEERS,
    &NIGHT_VISITS_PRIVATE_PROVIDER,
];

/// The rule with this id.
pub fn by_id(id: &str) -> Option<&'static RuleInfo> {
    ALL.iter().copied().find(|r| r.id == id)
}

/// Serde of a `&'static RuleInfo` as its id, read back with [`by_id`] (a
/// restored state refers to rules by id).
pub mod by_rule_id {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::rules::RuleInfo;

    /// Writes the rule's id.
    pub fn serialize<S: Serializer>(rule: &&'static RuleInfo, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(rule.id)
    }

    /// Reads a rule id; an id not in the catalogue is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static RuleInfo, D::Error> {
        let id = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::by_id(&id).ok_or_else(|| D::Error::custom(format!("unknown rule id {id}")))
    }
}
