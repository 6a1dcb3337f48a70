//! The consumers of the alert topic that tillsyn ships, for the people who
//! act on alerts: [`postgres`], the case store (`tillsyn sink postgres`).
//!
//! The alert topic is the contract (`proto/tillsyn/v1/alert.proto`); these
//! read it as any case-management system would, through a consumer group of
//! their own, and add no detection of their own.

pub mod postgres;
