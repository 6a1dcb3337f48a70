//! Baselines that soft rules compare a provider with.
//!
//! - [`peer`]: robust peer statistics (median, MAD, modified z-score) within
//!   a peer group (municipality × metric × service type), held in a
//!   [`peer::PeerTable`] that is fed per-provider samples. The engine feeds
//!   it from the providers it sees.
//! - [`global`]: every partition's samples per local day, final once every
//!   partition closed the day ([`global::GlobalPeerTable`]).
//! - [`history`]: the provider's own history (EWMA, one-sided CUSUM).
//! - [`reference`]: the reference data (granted hours, absences, the
//!   provider register), asked as of an event time ([`reference::ReferenceTable`]).

pub mod global;
pub mod history;
pub mod peer;
pub mod reference;

pub use global::{FinalDay, GlobalPeerTable, PeerDay, PeerDayError};
pub use history::{Cusum, Ewma};
pub use peer::{PeerGroup, PeerMetric, PeerStats, PeerTable, modified_z};
pub use reference::{PermitState, ReferenceError, ReferenceSource, ReferenceTable};
