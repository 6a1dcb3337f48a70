//! A Kafka record on either topic, in protobuf by default: byte 0 chooses the
//! topic and the `content-type` header (see `tillsyn_fuzz::Record::parse`),
//! the rest is the record's value. Checks the invariants of
//! `tillsyn_fuzz::check_record`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tillsyn_core::decode::Format;
use tillsyn_core::model::validate::Validator;
use tillsyn_fuzz::{Record, check_record, validator};

static VALIDATOR: LazyLock<Validator> = LazyLock::new(validator);

fuzz_target!(|data: &[u8]| {
    if let Some(record) = Record::parse(data, Format::Protobuf) {
        check_record(&record, Format::Protobuf, &VALIDATOR);
    }
});
