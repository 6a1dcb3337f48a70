//! The consumers of the alert topic that tillsyn ships, for the people who
//! act on alerts: [`postgres`], the case store (`tillsyn sink postgres`),
//! and [`notify`], posts to the fraud unit's chat channel (`tillsyn notify`).
//!
//! The alert topic is the contract (`proto/tillsyn/v1/alert.proto`); these
//! read it as any case-management system would, through a consumer group of
//! their own, and add no detection of their own.

pub mod notify;
pub mod postgres;
