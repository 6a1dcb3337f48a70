//! Who is accused when two of a staff member's visits contradict each
//! other (double-booking, impossible travel). Shared by the staff rules.
//!
//! Within one provider, that provider. Across providers, the provider whose
//! registration proves less presence (manual < app or edited < door event);
//! on a tie, the provider that registers this staff member less often among
//! their recent visits (a name borrowed from another provider's employee);
//! on a further tie, both. An honest provider whose employee's name is used
//! elsewhere is not accused for the other provider's registrations.

use crate::model::{MunicipalityCode, ProviderId, Visit};
use crate::state::{RecentVisit, StaffState};

/// The providers to accuse for the conflict between `visit` and `other`,
/// with their municipalities: one or two entries.
pub fn accused(visit: &Visit, other: &RecentVisit, staff: &StaffState) -> Vec<(ProviderId, MunicipalityCode)> {
    let mine = (visit.provider, visit.municipality);
    let theirs = (other.provider, other.municipality);
    if visit.provider == other.provider {
        return vec![mine];
    }
    let (a, b) = (visit.method.strength(), other.method.strength());
    if a != b {
        return vec![if a < b { mine } else { theirs }];
    }
    let count = |p: ProviderId| staff.recent.iter().filter(|r| r.provider == p).count();
    // The visit itself is not in `recent` yet: count it for its provider.
    let (n_mine, n_theirs) = (count(visit.provider) + 1, count(other.provider));
    match n_mine.cmp(&n_theirs) {
        std::cmp::Ordering::Less => vec![mine],
        std::cmp::Ordering::Greater => vec![theirs],
        std::cmp::Ordering::Equal => vec![mine, theirs],
    }
}
