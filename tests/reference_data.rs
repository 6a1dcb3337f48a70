//! Reference data through `tillsyn replay`: decisions, absences and the
//! provider register in an events file, the rules that compare the events
//! with them, the same alerts for any partition count, and the
//! reference records refused when reference data is off or late.
//!
//! March 2026 in Umeå, four providers, a visit every morning for each
//! client, a source heartbeat every hour, everything in arrival order:
//! - provider A keeps visiting a client through a hospital stay (6–11
//!   March inside it);
//! - provider B has its permit revoked from 15 March and keeps working;
//! - provider C performs an hour a day for a client granted 20 hours a
//!   month;
//! - provider D is honest: its client's hospital stay (10–15 March) has
//!   visits on the admission and discharge days only, and a decision
//!   revised upward before it needs it.

use std::collections::BTreeMap;
use std::path::Path;

use pbjson_types::Timestamp;
use tillsyn::replay::{ReplaySummary, replay_partitioned};
use tillsyn_core::codec::MessageWriter;
use tillsyn_core::config::CoreConfig;
use tillsyn_core::model::{Day, ProviderId};
use tillsyn_core::proto::v1 as wire;

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

/// Local midnight of a day of 2026 plus `hours`, in seconds.
fn at(month: u32, day: u32, hours: i64) -> i64 {
    Day::from_ymd(2026, month, day).start().0 + hours * 3600
}

fn provider(n: u64) -> String {
    ProviderId::from_nine_digits(556_200_000 + n).to_string()
}

/// An event and when it arrives.
struct Timed(i64, wire::Event);

fn visit(id: &str, provider: &str, client: &str, check_in: i64, minutes: i64) -> Timed {
    let check_out = check_in + minutes * 60;
    Timed(
        check_out,
        wire::Event {
            kind: Some(wire::event::Kind::TimeReport(wire::TimeReport {
                event_id: id.into(),
                provider_id: provider.into(),
                municipality_code: "2480".into(),
                client_ref: client.into(),
                staff_ref: format!("staff-{client}"),
                service_type: wire::ServiceType::PersonalCare as i32,
                check_in: ts(check_in),
                check_out: ts(check_out),
                registration_method: wire::RegistrationMethod::Nfc as i32,
                planned_minutes: None,
                client_home: None,
                check_in_location: None,
                household_ref: None,
                reported_at: ts(check_out),
            })),
        },
    )
}

fn decision(id: &str, client: &str, hours: i64, from: i64, recorded: i64) -> Timed {
    Timed(
        recorded,
        wire::Event {
            kind: Some(wire::event::Kind::GrantedHours(wire::GrantedHours {
                decision_id: id.into(),
                municipality_code: "2480".into(),
                client_ref: client.into(),
                service_type: wire::ServiceType::PersonalCare as i32,
                minutes_per_month: hours * 60,
                valid_from: ts(from),
                valid_to: None,
                recorded_at: ts(recorded),
                retracted: false,
                provider_id: String::new(),
            })),
        },
    )
}

fn stay(id: &str, client: &str, from: i64, to: Option<i64>, recorded: i64) -> Timed {
    Timed(
        recorded,
        wire::Event {
            kind: Some(wire::event::Kind::ClientAbsence(wire::ClientAbsence {
                absence_id: id.into(),
                municipality_code: "2480".into(),
                client_ref: client.into(),
                kind: wire::AbsenceKind::HospitalStay as i32,
                from: ts(from),
                to: to.and_then(ts),
                source: "region-slutenvard".into(),
                recorded_at: ts(recorded),
                retracted: false,
            })),
        },
    )
}

fn permit(id: &str, provider: &str, status: wire::PermitStatus, from: i64, recorded: i64) -> Timed {
    Timed(
        recorded,
        wire::Event {
            kind: Some(wire::event::Kind::ProviderPermit(wire::ProviderPermit {
                permit_id: id.into(),
                provider_id: provider.into(),
                municipality_code: "2480".into(),
                status: status as i32,
                valid_from: ts(from),
                valid_to: None,
                recorded_at: ts(recorded),
                retracted: false,
            })),
        },
    )
}

fn heartbeat(at: i64) -> Timed {
    Timed(at, wire::Event { kind: Some(wire::event::Kind::Heartbeat(wire::SourceHeartbeat { at: ts(at) })) })
}

fn is_reference(e: &wire::Event) -> bool {
    matches!(
        e.kind,
        Some(
            wire::event::Kind::GrantedHours(_)
                | wire::event::Kind::ClientAbsence(_)
                | wire::event::Kind::ProviderPermit(_)
        )
    )
}

/// The scenario of the module documentation, in arrival order.
fn scenario() -> Vec<wire::Event> {
    let (a, b, c, d) = (provider(1), provider(2), provider(3), provider(4));
    let before = at(2, 20, 10);
    let mut events = Vec::new();
    for (n, p) in [&a, &b, &c, &d].into_iter().enumerate() {
        events.push(permit(&format!("lov-{n}"), p, wire::PermitStatus::Valid, at(1, 1, 0), before));
    }
    let clients = [("a1", &a), ("a2", &a), ("b1", &b), ("b2", &b), ("c1", &c), ("c2", &c), ("d1", &d), ("d2", &d)];
    for (client, _) in clients {
        events.push(decision(&format!("bb-{client}"), client, 20, at(1, 1, 0), before));
    }
    // D's client d2 needs more from 20 March: a new decision replaces the
    // old one from then, registered first (the old one gets its end).
    let mut closed = decision("bb-d2", "d2", 20, at(1, 1, 0), at(3, 18, 14));
    if let Some(wire::event::Kind::GrantedHours(g)) = &mut closed.1.kind {
        g.valid_to = ts(at(3, 20, 0));
    }
    events.push(closed);
    events.push(decision("bb-d2-2", "d2", 40, at(3, 20, 0), at(3, 18, 14)));
    events.push(stay("abs-a1", "a1", at(3, 5, 10), None, at(3, 5, 11)));
    events.push(stay("abs-a1", "a1", at(3, 5, 10), Some(at(3, 12, 14)), at(3, 12, 15)));
    events.push(stay("abs-d1", "d1", at(3, 10, 11), Some(at(3, 15, 13)), at(3, 10, 12)));
    events.push(permit("lov-rev", &b, wire::PermitStatus::Revoked, at(3, 15, 0), at(3, 15, 10)));
    let mut n = 0;
    for day in 1..=31 {
        for (client, p) in clients {
            let (hour, minutes) = match client {
                // Admitted at 11 on the 10th, discharged at 13 on the 15th.
                "d1" if (11..=14).contains(&day) => continue,
                "d1" if day == 15 => (16, 30),
                "c1" => (8, 60),
                "d2" if day >= 20 => (8, 70),
                _ => (8, 30),
            };
            n += 1;
            events.push(visit(&format!("tr-{n}"), p, client, at(3, day, hour), minutes));
        }
    }
    for hour in 0..(31 + 12) * 24 {
        events.push(heartbeat(at(3, 1, hour)));
    }
    // Arrival order; at the same instant, reference data first.
    let mut timed: Vec<(usize, Timed)> = events.into_iter().enumerate().collect();
    timed.sort_by_key(|(i, t)| (t.0, !is_reference(&t.1), *i));
    timed.into_iter().map(|(_, t)| t.1).collect()
}

fn write(events: &[wire::Event], path: &Path) {
    let mut writer = MessageWriter::create(path).unwrap();
    for e in events {
        writer.write(e).unwrap();
    }
    writer.finish().unwrap();
}

fn config(enabled: bool) -> CoreConfig {
    let mut config = CoreConfig::default();
    config.reference.enabled = enabled;
    config
}

fn replay(events: &Path, config: CoreConfig, partitions: i32) -> (ReplaySummary, Vec<u8>, Vec<wire::Alert>) {
    let alerts = events.with_extension(format!("alerts-{partitions}.ndjson"));
    let summary = replay_partitioned(events, &alerts, None, config, false, partitions).unwrap();
    let bytes = std::fs::read(&alerts).unwrap();
    let mut reader = tillsyn_core::codec::MessageReader::open(&alerts).unwrap();
    let mut list = Vec::new();
    while let Some(a) = reader.next_message::<wire::Alert>().unwrap() {
        list.push(a);
    }
    (summary, bytes, list)
}

/// (rule, provider) of every OPENED alert.
fn opened(alerts: &[wire::Alert]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for a in alerts.iter().filter(|a| a.status == wire::AlertStatus::Opened as i32) {
        *out.entry((a.rule_id.clone(), a.provider_id.clone())).or_default() += 1;
    }
    out
}

#[test]
fn each_reference_rule_finds_its_provider_and_any_partition_count_gives_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    write(&scenario(), &file);
    let (summary, one, alerts) = replay(&file, config(true), 1);
    assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
    let reference_rules = [
        "billing-during-absence",
        "visit-during-absence",
        "provider-without-permit",
        "visit-without-permit",
        "above-granted-hours",
        "visit-above-granted-hours",
    ];
    let found: BTreeMap<(String, String), usize> =
        opened(&alerts).into_iter().filter(|((rule, _), _)| reference_rules.contains(&rule.as_str())).collect();
    let expected: BTreeMap<(String, String), usize> = [
        // Every fact was registered before the visits it concerns were
        // judged: the visit rules find them all, the day rules nothing
        // twice.
        ("visit-during-absence", provider(1)),
        ("visit-without-permit", provider(2)),
        ("visit-above-granted-hours", provider(3)),
    ]
    .into_iter()
    .map(|(rule, p)| ((rule.to_string(), p), 1))
    .collect();
    assert_eq!(found, expected, "one episode each, nothing for the honest provider");
    for partitions in [2, 3, 5] {
        let (_, bytes, _) = replay(&file, config(true), partitions);
        assert!(bytes == one, "{partitions} partitions give other alerts than one");
    }
}

#[test]
fn reference_records_are_dead_lettered_when_reference_data_is_off_and_the_rules_find_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let events = scenario();
    let n = events.iter().filter(|e| is_reference(e)).count() as u64;
    write(&events, &file);
    let (summary, _, alerts) = replay(&file, config(false), 1);
    assert_eq!(summary.rejected.get("reference_data_off"), Some(&n), "{:?}", summary.rejected);
    assert!(opened(&alerts).keys().all(|(rule, _)| !rule.contains("granted") && !rule.contains("absence")));
}

#[test]
fn a_reference_version_registered_behind_its_source_is_late_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let mut events = scenario();
    // A stay of provider D's client d2 registered "on the 2nd", arriving
    // on the 20th: late by far more than the hour allowed.
    let late = stay("abs-late", "d2", at(3, 1, 0), None, at(3, 2, 0)).1;
    let place = events.len() / 2 + 100;
    events.insert(place, late);
    write(&events, &file);
    let (summary, _, alerts) = replay(&file, config(true), 1);
    assert_eq!(summary.rejected.get("reference_late"), Some(&1), "{:?}", summary.rejected);
    let (_, _, before) = {
        let plain = dir.path().join("plain.ndjson");
        write(&scenario(), &plain);
        replay(&plain, config(true), 1)
    };
    assert_eq!(opened(&alerts), opened(&before), "the late version changed nothing");
}

#[test]
fn without_the_revised_decision_the_honest_provider_would_be_over_its_grant() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let events: Vec<wire::Event> = scenario()
        .into_iter()
        .filter(|e| {
            !matches!(&e.kind, Some(wire::event::Kind::GrantedHours(g))
                if g.decision_id == "bb-d2-2" || g.valid_to.is_some())
        })
        .collect();
    write(&events, &file);
    let (_, _, alerts) = replay(&file, config(true), 1);
    assert!(
        opened(&alerts).contains_key(&("visit-above-granted-hours".to_string(), provider(4))),
        "the revision is what keeps provider D within its grant"
    );
}
