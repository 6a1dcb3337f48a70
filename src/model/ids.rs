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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct EventId(Arc<str>);

impl EventId {
    /// Wraps an id string.
    pub fn new(id: &str) -> Self {
        EventId(Arc::from(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
