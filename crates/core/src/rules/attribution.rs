//! Who is accused when two of a staff member's visits contradict each
//! other (double-booking, impossible travel). Shared by the staff rules.
//!
//! Within one provider (in one municipality), that provider. Across
//! providers:
//! 1. a provider that registers this staff member at most half as often as
//!    the other among their recent visits (a name borrowed from another
//!    provider's employee: the employer registers them all day, the
//!    borrower now and then), whatever the registration methods;
//! 2. otherwise the provider whose registration proves less presence
//!    (manual < app or edited < door event);
//! 3. otherwise both.
//!
//! An honest provider whose employee's name is used elsewhere is not
//! accused for the other provider's registrations, even when its own
//! visit happened to be registered by hand.

use crate::model::{MunicipalityCode, ProviderId, Visit};
use crate::state::{RecentVisit, StaffState};

/// The providers to accuse for the conflict between `visit` and `other`,
/// with their municipalities: one or two entries.
pub fn accused(visit: &Visit, other: &RecentVisit, staff: &StaffState) -> Vec<(ProviderId, MunicipalityCode)> {
    let mine = (visit.provider, visit.municipality);
    let theirs = (other.provider, other.municipality);
    if mine == theirs {
        return vec![mine];
    }
    let count = |(p, m): (ProviderId, MunicipalityCode)| {
        staff.recent.iter().filter(|r| r.provider == p && r.municipality == m).count()
    };
    // The visit itself is not in `recent` yet: count it for its provider.
    let (n_mine, n_theirs) = (count(mine) + 1, count(theirs));
    if 2 * n_mine <= n_theirs {
        return vec![mine];
    }
    if 2 * n_theirs <= n_mine {
        return vec![theirs];
    }
    let (a, b) = (visit.method.strength(), other.method.strength());
    match a.cmp(&b) {
        std::cmp::Ordering::Less => vec![mine],
        std::cmp::Ordering::Greater => vec![theirs],
        std::cmp::Ordering::Equal => vec![mine, theirs],
    }
}
