//! Identifiers of the actors and events.
//!
//! Providers and municipalities are public legal entities and appear in alerts
//! in clear. Clients, staff and households are personal data: the core only
//! holds their keyed hashes ([`ClientKey`], [`StaffKey`], [`HouseholdKey`]).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A provider's Swedish organisation number (`NNNNNN-NNNN`), with a valid
/// Luhn check digit. Stored as its ten digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct ProviderId(u64);

/// Why a string is not an organisation number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrgNumberError {
    /// Not ten digits in the form `NNNNNN-NNNN` (or `NNNNNNNNNN`).
    #[error("not in the form NNNNNN-NNNN")]
    Format,
    /// The tenth digit is not the Luhn check digit of the first nine.
    #[error("check digit does not match")]
    CheckDigit,
}

impl ProviderId {
    /// Builds an organisation number from its first nine digits, appending the
    /// Luhn check digit. `nine_digits` must be below 10^9.
    pub fn from_nine_digits(nine_digits: u64) -> Self {
        assert!(nine_digits < 1_000_000_000, "nine digits expected");
        let check = luhn_check_digit(nine_digits);
        ProviderId(nine_digits * 10 + u64::from(check))
    }

    /// The ten digits as a number.
    pub fn digits(self) -> u64 {
        self.0
    }

    /// The first `count` digits (1–10) as a number, e.g. `2120` for
    /// `leading_digits(4)` of a municipality's own unit (kommuner have
    /// organisation numbers `2120…`).
    pub fn leading_digits(self, count: u32) -> u64 {
        self.0 / 10u64.pow(10 - count.clamp(1, 10))
    }
}

fn luhn_check_digit(nine_digits: u64) -> u8 {
    let mut sum = 0u32;
    let mut n = nine_digits;
    // Rightmost of the nine digits gets doubled (it is at an odd position
    // counted from the check digit).
    let mut double = true;
    for _ in 0..9 {
        let d = (n % 10) as u32;
        n /= 10;
        let v = if double {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
        sum += v;
        double = !double;
    }
    ((10 - (sum % 10)) % 10) as u8
}

impl FromStr for ProviderId {
    type Err = OrgNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let digits: [u8; 10] = match b.len() {
            11 if b[6] == b'-' => {
                let mut d = [0u8; 10];
                d[..6].copy_from_slice(&b[..6]);
                d[6..].copy_from_slice(&b[7..]);
                d
            }
            10 => b.try_into().map_err(|_| OrgNumberError::Format)?,
            _ => return Err(OrgNumberError::Format),
        };
        let mut value = 0u64;
        for c in digits {
            if !c.is_ascii_digit() {
                return Err(OrgNumberError::Format);
            }
            value = value * 10 + u64::from(c - b'0');
        }
        if luhn_check_digit(value / 10) != (value % 10) as u8 {
            return Err(OrgNumberError::CheckDigit);
        }
        Ok(ProviderId(value))
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}-{:04}", self.0 / 10_000, self.0 % 10_000)
    }
}

/// A Swedish municipality code (kommunkod), four digits, e.g. `2480` Umeå.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct MunicipalityCode(u16);

impl MunicipalityCode {
    /// Parses a four-digit code. County part 01–25 as in SCB's list.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 4 || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let v: u16 = s.parse().ok()?;
        let county = v / 100;
        if !(1..=25).contains(&county) {
            return None;
        }
        Some(MunicipalityCode(v))
    }

    /// The code as a number.
    pub fn value(self) -> u16 {
        self.0
    }
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// A provider's business with one paying municipality (its contract under
/// the customer-choice system, LOV): what tillsyn tracks, compares with
/// the municipality's other providers and alerts on. A company with
/// branches in two municipalities is two of these, each with its own
/// windows, peers and episodes; all of a company's records still go to one
/// partition (they are keyed by its organisation number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct ProviderKey {
    /// The company.
    pub provider: ProviderId,
    /// The paying municipality.
    pub municipality: MunicipalityCode,
}

impl fmt::Display for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.provider, self.municipality)
    }
}

/// Pseudonymous key of a client (keyed hash of the source system's reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct ClientKey(pub u64);

/// Pseudonymous key of a staff member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct StaffKey(pub u64);

/// Pseudonymous key of a household (clients sharing a home).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct HouseholdKey(pub u64);

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client:{:016x}", self.0)
    }
}

impl fmt::Display for StaffKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "staff:{:016x}", self.0)
    }
}

/// The id of a time report or an invoice, as assigned by its source system.
/// Not personal data; it is what evidence lists refer to.
///
/// Ids of up to [`EventId::INLINE`] bytes (a UUID is 36) are stored inline:
/// the engine keeps the ids of recent visits in rings, and an inline id is
/// copied and dropped without touching the heap (no reference count in a
/// cold cache line per visit). Longer ids are shared on the heap.
#[derive(Clone)]
pub struct EventId(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; EventId::INLINE] },
    Shared(Arc<str>),
}

impl EventId {
    /// Longest id stored inline, in bytes.
    pub const INLINE: usize = 38;

    /// Wraps an id string.
    pub fn new(id: &str) -> Self {
        if id.len() <= Self::INLINE {
            let mut buf = [0u8; Self::INLINE];
            buf[..id.len()].copy_from_slice(id.as_bytes());
            EventId(Repr::Inline { len: id.len() as u8, buf })
        } else {
            EventId(Repr::Shared(Arc::from(id)))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always valid: copied from a &str, cut at its own length.
            Repr::Inline { len, buf } => std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default(),
            Repr::Shared(s) => s,
        }
    }

    /// The id's UTF-8 bytes: what comparing and hashing use (the staff
    /// stage orders its pending visits by id; checking the UTF-8 of both
    /// sides on every comparison was a tenth of the national run's time).
    fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Shared(s) => s.as_bytes(),
        }
    }
}

impl PartialEq for EventId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for EventId {}

impl PartialOrd for EventId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EventId {
    /// The order of the text (UTF-8 bytes order as their characters do).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for EventId {
    /// As the text hashes (`str`'s hash: its bytes, then 0xff).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(EventId::new(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event id compares, equals and hashes as its text does, stored
    /// inline or shared, ASCII or not.
    #[test]
    fn event_ids_order_and_hash_as_their_text() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let long = "x".repeat(EventId::INLINE + 1);
        let texts = ["", "a", "ab", "b", "å", "ö-1", "z", "Z", "550e8400-e29b-41d4-a716-446655440000", long.as_str()];
        let fx = BuildHasherDefault::<rustc_hash::FxHasher>::default();
        for a in texts {
            for b in texts {
                let (x, y) = (EventId::new(a), EventId::new(b));
                assert_eq!(x.cmp(&y), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(x == y, a == b);
            }
            assert_eq!(fx.hash_one(EventId::new(a)), fx.hash_one(a), "{a:?}");
        }
    }

    #[test]
    fn known_organisation_numbers_parse() {
        // Umeå kommun and a well-known company (public registry entries).
        assert!("212000-2726".parse::<ProviderId>().is_ok());
        assert!("556036-0793".parse::<ProviderId>().is_ok());
    }

    #[test]
    fn wrong_check_digit_is_rejected() {
        assert_eq!("212000-2727".parse::<ProviderId>(), Err(OrgNumberError::CheckDigit));
    }

    #[test]
    fn malformed_organisation_numbers_are_rejected() {
        for s in ["", "21200-02726", "212000_2726", "21200027261", "abcdef-ghij", "212000-272"] {
            assert_eq!(s.parse::<ProviderId>(), Err(OrgNumberError::Format), "{s}");
        }
    }

    #[test]
    fn built_numbers_round_trip() {
        for nine in [556_036_079, 212_000_272, 123_456_789, 1] {
            let id = ProviderId::from_nine_digits(nine);
            assert_eq!(id.to_string().parse::<ProviderId>(), Ok(id));
        }
    }

    #[test]
    fn event_ids_inline_and_shared_behave_alike() {
        let short = EventId::new("tr-000000001");
        let uuid = EventId::new("3f2b8c1e-9a4d-4e0f-8b7a-2c5d6e7f8a9b");
        let long = EventId::new(&"x".repeat(100));
        assert_eq!(short.as_str(), "tr-000000001");
        assert_eq!(uuid.as_str().len(), 36);
        assert_eq!(long.as_str(), "x".repeat(100));
        assert_eq!(long.clone(), long);
        assert!(uuid < short, "ordered as text");
        assert_eq!(serde_json::to_string(&uuid).unwrap(), "\"3f2b8c1e-9a4d-4e0f-8b7a-2c5d6e7f8a9b\"");
        assert_eq!(serde_json::from_str::<EventId>("\"tr-000000001\"").unwrap(), short);
        assert_eq!(EventId::new(""), EventId::new(""));
    }

    #[test]
    fn municipal_prefix() {
        let umea: ProviderId = "212000-2726".parse().unwrap();
        assert_eq!(umea.leading_digits(4), 2120);
        assert_eq!(umea.leading_digits(10), 2_120_002_726);
        assert_eq!(ProviderId::from_nine_digits(556_036_079).leading_digits(4), 5560);
    }

    #[test]
    fn municipality_codes() {
        assert_eq!(MunicipalityCode::parse("2480").map(|m| m.to_string()), Some("2480".into()));
        assert_eq!(MunicipalityCode::parse("0181").map(|m| m.value()), Some(181));
        for bad in ["", "248", "24800", "9999", "0081", "2a80"] {
            assert!(MunicipalityCode::parse(bad).is_none(), "{bad}");
        }
    }
}
