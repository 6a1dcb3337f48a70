//! Compiles the wire contract in `proto/` with prost, and generates the
//! standard proto3 JSON mapping with pbjson. Uses protox, so no system
//! `protoc` is needed: a fresh machine builds with cargo alone.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The contract lives at the workspace root (`proto/`), beside the crates.
    let files = [
        "../../proto/tillsyn/v1/events.proto",
        "../../proto/tillsyn/v1/reference.proto",
        "../../proto/tillsyn/v1/service_type.proto",
        "../../proto/tillsyn/v1/alert.proto",
        "../../proto/tillsyn/v1/state.proto",
        "../../proto/tillsyn/v1/rules.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["../../proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("tillsyn_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&descriptors))?;

    // Maps as BTreeMap: encoded in key order, so the same alert gives the
    // same bytes in every process (a HashMap's order is random).
    prost_build::Config::new()
        .btree_map(["."])
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptors)?;

    // Unknown JSON fields are ignored, as protobuf ignores unknown fields: a
    // producer on a newer contract (an added optional field) keeps working. A
    // misspelt required field still fails validation as missing.
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor_path)?)?
        .ignore_unknown_fields()
        .btree_map(["."])
        .build(&[".tillsyn"])?;
    Ok(())
}
