//! Small scenarios written by hand, each showing one path through the
//! topology that a random scenario might not take.

use pbjson_types::Timestamp;
use tillsyn_core::model::ProviderId;
use tillsyn_core::partition::partition_for_key;
use tillsyn_core::proto::v1 as wire;

/// Pattern 2 across providers and partitions: one staff member registered
/// by two providers at two homes at once (NFC at the first, by hand at the
/// second, a quarter of an hour later), the providers chosen to hash to
/// different partitions for every count in `apart`; then a source
/// heartbeat two days on. Returns the events and the two providers' ids
/// (the honest one first, then the one whose weaker registration makes it
/// the accused).
pub fn cross_provider_double_booking(apart: &[i32]) -> (Vec<wire::Event>, String, String) {
    let ids: Vec<String> = (556_000_100..556_000_300).map(|n| ProviderId::from_nine_digits(n).to_string()).collect();
    let differ = |a: &String, b: &String| {
        apart.iter().all(|&n| partition_for_key(a.as_bytes(), n) != partition_for_key(b.as_bytes(), n))
    };
    let (honest, borrower) = ids
        .iter()
        .flat_map(|a| ids.iter().map(move |b| (a, b)))
        .find(|(a, b)| differ(a, b))
        .map(|(a, b)| (a.clone(), b.clone()))
        .expect("two providers in different partitions");
    let ts = |seconds: i64| Some(Timestamp { seconds, nanos: 0 });
    let start = 1_772_438_400; // 2026-03-02 08:00 UTC, 09:00 in Sweden
    let visit = |id: &str, provider: &str, client: &str, check_in: i64, method: wire::RegistrationMethod| wire::Event {
        kind: Some(wire::event::Kind::TimeReport(wire::TimeReport {
            event_id: id.into(),
            provider_id: provider.into(),
            municipality_code: "2480".into(),
            client_ref: client.into(),
            staff_ref: "staff-shared".into(),
            service_type: wire::ServiceType::PersonalCare as i32,
            check_in: ts(check_in),
            check_out: ts(check_in + 3600),
            registration_method: method as i32,
            planned_minutes: Some(60),
            client_home: None,
            check_in_location: None,
            household_ref: None,
            reported_at: ts(check_in + 3700),
        })),
    };
    let events = vec![
        visit("tr-cross-a", &honest, "client-cross-1", start, wire::RegistrationMethod::Nfc),
        visit("tr-cross-b", &borrower, "client-cross-2", start + 900, wire::RegistrationMethod::Manual),
        wire::Event { kind: Some(wire::event::Kind::Heartbeat(wire::SourceHeartbeat { at: ts(start + 2 * 86_400) })) },
    ];
    (events, honest, borrower)
}
