//! Keyed pseudonymisation of client, staff and household references.
//!
//! A reference from the source system (a personal identity number, or a
//! system's internal id) is replaced at the edge by SipHash-2-4 under a
//! secret key. Without the key the hash cannot be reversed by enumerating
//! personal identity numbers; with it, an investigator's tooling can map a
//! known person to their key. The same key must be configured on every
//! instance and kept across restarts, or keys will not match.

use siphasher::sip::SipHasher24;
use std::hash::Hasher;

use super::ids::{ClientKey, HouseholdKey, StaffKey};

/// Turns clear-text references into pseudonymous keys.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: [u8; 16],
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer { key: *** }")
    }
}

impl Pseudonymizer {
    /// A pseudonymizer with the given 128-bit key.
    pub fn new(key: [u8; 16]) -> Self {
        Pseudonymizer { key }
    }

    /// Derives the 128-bit key from a secret string (any length).
    pub fn from_secret(secret: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(secret.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Pseudonymizer { key }
    }

    fn hash(&self, domain: u8, reference: &str) -> u64 {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write_u8(domain);
        h.write(reference.as_bytes());
        h.finish()
    }

    /// The key of a client reference.
    pub fn client(&self, reference: &str) -> ClientKey {
        ClientKey(self.hash(b'c', reference))
    }

    /// The key of a staff reference.
    pub fn staff(&self, reference: &str) -> StaffKey {
        StaffKey(self.hash(b's', reference))
    }

    /// The key of a household reference.
    pub fn household(&self, reference: &str) -> HouseholdKey {
        HouseholdKey(self.hash(b'h', reference))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_reference_same_key_other_secret_other_key() {
        let a = Pseudonymizer::from_secret("a");
        let b = Pseudonymizer::from_secret("b");
        assert_eq!(a.client("19400101-1234"), a.client("19400101-1234"));
        assert_ne!(a.client("19400101-1234"), b.client("19400101-1234"));
        assert_ne!(a.client("x").0, a.staff("x").0, "domains are separated");
    }

    #[test]
    fn debug_hides_the_key() {
        assert!(!format!("{:?}", Pseudonymizer::new([7; 16])).contains('7'));
    }
}
