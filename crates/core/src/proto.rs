//! The wire contract, generated from `proto/` by prost (binary) and pbjson
//! (the standard proto3 JSON mapping). Nothing here is hand-written; the
//! domain never sees these types past [`crate::model::validate`].

/// Version 1 of the contract, package `tillsyn.v1`.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/tillsyn.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/tillsyn.v1.serde.rs"));
}
