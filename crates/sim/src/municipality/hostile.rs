//! Hostile input: malformed records of every kind the service must send to
//! the dead-letter topic, never crash on and never apply. Used by the
//! hostile-input test and `tillsyn-sim simulate --records FILE --hostile N`.
//!
//! Each record says which reason it must be rejected with where that is
//! certain (a year-9999 check-in is `timestamp_out_of_range`), or `None`
//! where any reason is right (random bytes may fail anywhere).

use prost::Message as _;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use tillsyn_core::engine::Input;
use tillsyn_core::proto::v1 as wire;

/// A malformed record for an input topic.
#[derive(Debug, Clone, PartialEq)]
pub struct HostileRecord {
    /// The topic it goes to.
    pub input: Input,
    /// Its key (a valid provider id, so it lands among real records).
    pub key: String,
    /// Its value.
    pub value: Vec<u8>,
    /// Its `content-type` header, if any.
    pub content_type: Option<&'static str>,
    /// The dead-letter reason it must get, when only one is right.
    pub reason: Option<&'static str>,
    /// What kind of hostility, for reports.
    pub kind: &'static str,
}

const PROTOBUF: Option<&str> = Some("application/x-protobuf");
const JSON: Option<&str> = Some("application/json");

/// The kinds of hostile records. [`hostile_records`] makes every 120th a
/// `huge_record` (a field of 200–300 KB: Kafka's default record limit of
/// about 1 MB keeps records over the decoder's 1 MiB limit out of a topic)
/// and cycles through the others.
pub const KINDS: [&str; 12] = [
    "huge_record",
    "random_bytes",
    "truncated_protobuf",
    "huge_field",
    "deep_json",
    "wrong_json_types",
    "year_9999",
    "negative_duration",
    "invalid_organisation_number",
    "empty",
    "unsupported_content_type",
    "invoice_on_time_report_topic",
];

/// `count` hostile records built from a valid time report and invoice
/// (from the simulator), cycling through [`KINDS`], seeded.
pub fn hostile_records(
    seed: u64,
    count: usize,
    report: &wire::TimeReport,
    invoice: &wire::Invoice,
) -> Vec<HostileRecord> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let key = report.provider_id.clone();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let kind = if i % 120 == 0 { KINDS[0] } else { KINDS[1 + i % (KINDS.len() - 1)] };
        let record = |input, value: Vec<u8>, content_type, reason| HostileRecord {
            input,
            key: key.clone(),
            value,
            content_type,
            reason,
            kind,
        };
        let mut r = report.clone();
        r.event_id = format!("hostile-{seed}-{i}");
        out.push(match kind {
            "random_bytes" => {
                let len = rng.random_range(1..512);
                let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                record(Input::TimeReports, bytes, PROTOBUF, None)
            }
            "truncated_protobuf" => {
                let bytes = envelope(wire::event::Kind::TimeReport(r)).encode_to_vec();
                let cut = rng.random_range(1..bytes.len());
                record(Input::TimeReports, bytes[..cut].to_vec(), PROTOBUF, None)
            }
            "huge_record" => {
                r.staff_ref = "x".repeat(rng.random_range(200_000..300_000));
                record(Input::TimeReports, r.encode_to_vec(), PROTOBUF, Some("malformed_reference"))
            }
            "huge_field" => {
                r.client_ref = "c".repeat(rng.random_range(129..60_000));
                record(Input::TimeReports, r.encode_to_vec(), PROTOBUF, Some("malformed_reference"))
            }
            "deep_json" => {
                let depth = rng.random_range(200..20_000);
                let value = format!("{{\"timeReport\": {}{}}}", "[".repeat(depth), "]".repeat(depth));
                record(Input::TimeReports, value.into_bytes(), JSON, Some("json_decode"))
            }
            "wrong_json_types" => {
                let mut json = serde_json::to_value(&r).expect("a time report serializes");
                json["checkIn"] = serde_json::json!(12345);
                json["plannedMinutes"] = serde_json::json!("many");
                record(Input::TimeReports, json.to_string().into_bytes(), JSON, Some("json_decode"))
            }
            "year_9999" => {
                let t = pbjson_types::Timestamp { seconds: 253_402_214_400 - 3_600, nanos: 0 };
                r.check_in = Some(t);
                r.check_out = Some(pbjson_types::Timestamp { seconds: t.seconds + 1_800, nanos: 0 });
                record(Input::TimeReports, r.encode_to_vec(), PROTOBUF, Some("timestamp_out_of_range"))
            }
            "negative_duration" => {
                let (a, b) = (r.check_in, r.check_out);
                r.check_in = b;
                r.check_out = a;
                record(Input::TimeReports, r.encode_to_vec(), PROTOBUF, Some("check_out_before_check_in"))
            }
            "invalid_organisation_number" => {
                r.provider_id = "556036-0794".into();
                record(Input::TimeReports, r.encode_to_vec(), PROTOBUF, Some("malformed_organisation_number"))
            }
            "empty" => record(Input::Invoices, Vec::new(), PROTOBUF, Some("empty_payload")),
            "unsupported_content_type" => {
                record(Input::TimeReports, r.encode_to_vec(), Some("text/csv"), Some("unsupported_content_type"))
            }
            _ => {
                let mut inv = invoice.clone();
                inv.invoice_id = format!("hostile-{seed}-{i}");
                inv.provider_id = key.clone();
                let bytes = envelope(wire::event::Kind::Invoice(inv)).encode_to_vec();
                record(Input::TimeReports, bytes, PROTOBUF, Some("wrong_event_kind"))
            }
        });
    }
    out
}

fn envelope(kind: wire::event::Kind) -> wire::Event {
    wire::Event { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::municipality::{SimConfig, simulate};
    use tillsyn_core::decode::{Format, decode_record};
    use tillsyn_core::model::pseudonym::Pseudonymizer;
    use tillsyn_core::model::validate::Validator;

    /// Every hostile record is rejected, with its reason where it has one,
    /// and every kind is produced.
    #[test]
    fn every_hostile_record_is_rejected_with_its_reason() {
        let mut report = None;
        let mut invoice = None;
        let sim = SimConfig { providers: 3, clients: 30, months: 2, fraudulent_providers: 0, ..SimConfig::default() };
        simulate(&sim, &mut |e| {
            match &e.kind {
                Some(wire::event::Kind::TimeReport(t)) if report.is_none() => report = Some(t.clone()),
                Some(wire::event::Kind::Invoice(i)) if invoice.is_none() => invoice = Some(i.clone()),
                _ => {}
            }
            Ok(())
        })
        .unwrap();
        let (report, invoice) = (report.unwrap(), invoice.unwrap());
        let validator = Validator::new(Pseudonymizer::from_secret("hostile"));
        assert!(validator.time_report(&report).is_ok() && validator.invoice(&invoice).is_ok());
        let records = hostile_records(7, 1_200, &report, &invoice);
        let kinds: std::collections::BTreeSet<_> = records.iter().map(|r| r.kind).collect();
        assert_eq!(kinds.len(), KINDS.len());
        for r in &records {
            let result = decode_record(r.input, Some(&r.value), r.content_type, Format::Protobuf, &validator);
            let rejection = result.expect_err(r.kind);
            if let Some(reason) = r.reason {
                assert_eq!(rejection.reason, reason, "{}", r.kind);
            }
        }
    }
}
