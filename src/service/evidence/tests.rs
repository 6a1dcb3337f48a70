//! `tillsyn evidence` over files: an alert of a replay, its evidence
//! matched against the events file and the records file of the same
//! scenario. No broker.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::show::{AlertSearch, Matcher, Personal, Position};
use super::*;
use tillsyn_core::codec::MessageWriter;
use tillsyn_core::decode::Format;
use tillsyn_core::records::{KafkaRecordLine, RecordWriter};
use tillsyn_sim::municipality::{SimConfig, simulate};

const SECRET: &str = "evidence-unit-test-secret";

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    config: ServiceConfig,
    events: Vec<wire::Event>,
    events_file: PathBuf,
    alerts_file: PathBuf,
    alerts: Vec<wire::Alert>,
}

/// A small simulated municipality, its events file and the alerts of its
/// replay.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut config = ServiceConfig::default();
    config.core.pseudonym_secret = SECRET.into();
    let sim =
        SimConfig { seed: 5, providers: 10, clients: 400, months: 2, fraudulent_providers: 4, ..SimConfig::default() };
    let mut events = Vec::new();
    simulate(&sim, &mut |e| {
        events.push(e.clone());
        Ok(())
    })
    .unwrap();
    let events_file = path.join("events.ndjson");
    write(&events, &events_file);
    let alerts_file = path.join("alerts.ndjson");
    crate::replay::replay_file(&events_file, &alerts_file, None, config.core.clone(), false).unwrap();
    let mut alerts = Vec::new();
    let mut reader = MessageReader::open(&alerts_file).unwrap();
    while let Some(a) = reader.next_message::<wire::Alert>().unwrap() {
        alerts.push(a);
    }
    Fixture { _dir: dir, dir: path, config, events, events_file, alerts_file, alerts }
}

fn write(events: &[wire::Event], path: &Path) {
    let mut writer = MessageWriter::create(path).unwrap();
    for e in events {
        writer.write(e).unwrap();
    }
    writer.finish().unwrap();
}

fn args(alert: &str) -> EvidenceArgs {
    EvidenceArgs {
        alert: alert.into(),
        config: None,
        alerts: None,
        events: None,
        records: None,
        json: false,
        reveal_personal_references: false,
        scan_all: false,
    }
}

/// Runs the command; its output, or its error with the output so far.
fn run(config: &ServiceConfig, args: &EvidenceArgs) -> Result<String, (anyhow::Error, String)> {
    let mut out = Vec::new();
    let result = command(config, args, &mut out);
    let text = String::from_utf8(out).unwrap();
    result.map(|_| text.clone()).map_err(|e| (e, text))
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The personal references of the events whose id is in `ids`.
fn references(events: &[wire::Event], ids: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for e in events {
        match &e.kind {
            Some(wire::event::Kind::TimeReport(t)) if ids.contains(t.event_id.as_str()) => {
                refs.insert(t.client_ref.clone());
                refs.insert(t.staff_ref.clone());
                refs.extend(t.household_ref.clone().filter(|h| !h.is_empty()));
            }
            Some(wire::event::Kind::Invoice(i)) if ids.contains(i.invoice_id.as_str()) => {
                refs.extend(i.lines.iter().map(|l| l.client_ref.clone()));
            }
            _ => {}
        }
    }
    refs
}

/// An alert whose evidence are time reports, and one whose evidence is an
/// invoice.
fn alerts_of_both_kinds(f: &Fixture) -> (wire::Alert, wire::Alert) {
    let kind_of = |id: &str| {
        f.events.iter().find_map(|e| match &e.kind {
            Some(wire::event::Kind::TimeReport(t)) if t.event_id == id => Some("time_report"),
            Some(wire::event::Kind::Invoice(i)) if i.invoice_id == id => Some("invoice"),
            _ => None,
        })
    };
    let of = |kind: &str| {
        f.alerts
            .iter()
            .find(|a| a.evidence_event_ids.len() >= 2 && kind_of(&a.evidence_event_ids[0]) == Some(kind))
            .or_else(|| f.alerts.iter().find(|a| a.evidence_event_ids.first().and_then(|id| kind_of(id)) == Some(kind)))
            .unwrap_or_else(|| panic!("the scenario has an alert with {kind} evidence"))
            .clone()
    };
    (of("time_report"), of("invoice"))
}

#[test]
fn an_alerts_evidence_is_found_in_the_events_file_with_pseudonymous_keys_only() {
    let f = fixture();
    let pseudonymizer = Pseudonymizer::from_secret(SECRET);
    for alert in <[wire::Alert; 2]>::from(alerts_of_both_kinds(&f)) {
        let ids: BTreeSet<&str> = alert.evidence_event_ids.iter().map(String::as_str).collect();
        let refs = references(&f.events, &ids);
        assert!(!refs.is_empty());
        let mut a = args(&alert.alert_id);
        a.alerts = Some(f.alerts_file.clone());
        a.events = Some(f.events_file.clone());
        a.json = true;
        let text = run(&f.config, &a).unwrap();
        let lines = json_lines(&text);
        assert_eq!(lines[0]["kind"], "alert");
        assert_eq!(lines[0]["alert"]["alertId"], alert.alert_id.as_str());
        assert_eq!(lines[0]["personal_references"], "pseudonymous");
        let found: BTreeSet<&str> =
            lines.iter().filter(|l| l["kind"] == "evidence").map(|l| l["event_id"].as_str().unwrap()).collect();
        assert_eq!(found, ids, "every evidence id found");
        assert!(lines.iter().all(|l| l["kind"] != "not_found"));
        let last = lines.last().unwrap();
        assert_eq!((last["kind"].as_str(), last["found"].as_u64()), (Some("scanned"), Some(ids.len() as u64)));
        // Positions are the records' numbers in the file.
        for l in lines.iter().filter(|l| l["kind"] == "evidence") {
            let n = l["position"]["record"].as_u64().unwrap() as usize;
            assert_eq!(show::event_id(&f.events[n - 1]), l["event_id"].as_str());
        }
        // No reference in clear, in JSON or in text; the keys are the service's.
        for r in &refs {
            assert!(!text.contains(r.as_str()), "{r} in the output:\n{text}");
        }
        for l in lines.iter().filter(|l| l["kind"] == "evidence") {
            let id = l["event_id"].as_str().unwrap();
            let event = f.events.iter().find(|e| show::event_id(e) == Some(id)).unwrap();
            match &event.kind {
                Some(wire::event::Kind::TimeReport(t)) => {
                    let v = &l["time_report"];
                    assert_eq!(v["client"], pseudonymizer.client(&t.client_ref).to_string());
                    assert_eq!(v["staff"], pseudonymizer.staff(&t.staff_ref).to_string());
                    assert!(v.get("revealed").is_none());
                }
                Some(wire::event::Kind::Invoice(i)) => {
                    let lines = l["invoice"]["lines"].as_array().unwrap();
                    assert_eq!(lines.len(), i.lines.len());
                    for (shown, raw) in lines.iter().zip(&i.lines) {
                        assert_eq!(shown["client"], pseudonymizer.client(&raw.client_ref).to_string());
                        assert!(shown.get("client_ref").is_none());
                    }
                }
                _ => unreachable!(),
            }
        }
        a.json = false;
        let text = run(&f.config, &a).unwrap();
        assert!(text.contains(&alert.alert_id) && text.contains("pseudonymous keys"), "{text}");
        for id in &ids {
            assert!(text.contains(&format!("{id}: ")), "{id} shown:\n{text}");
        }
        for r in &refs {
            assert!(!text.contains(r.as_str()), "{r} in the output:\n{text}");
        }
        assert!(!text.contains("in clear:"), "{text}");
    }
}

#[test]
fn references_are_shown_in_clear_only_with_the_flag() {
    let f = fixture();
    let (visits, invoice) = alerts_of_both_kinds(&f);
    for alert in [visits, invoice] {
        let ids: BTreeSet<&str> = alert.evidence_event_ids.iter().map(String::as_str).collect();
        let refs = references(&f.events, &ids);
        let mut a = args(&alert.alert_id);
        a.alerts = Some(f.alerts_file.clone());
        a.events = Some(f.events_file.clone());
        a.reveal_personal_references = true;
        let text = run(&f.config, &a).unwrap();
        assert!(text.contains("IN CLEAR"), "{text}");
        for r in &refs {
            assert!(text.contains(r.as_str()), "{r} revealed:\n{text}");
        }
        a.json = true;
        let lines = json_lines(&run(&f.config, &a).unwrap());
        assert_eq!(lines[0]["personal_references"], "revealed");
        let evidence: Vec<&serde_json::Value> = lines.iter().filter(|l| l["kind"] == "evidence").collect();
        assert!(evidence.iter().all(|l| {
            l["time_report"]["revealed"]["client_ref"].is_string()
                || l["invoice"]["lines"].as_array().is_some_and(|ls| ls.iter().all(|x| x["client_ref"].is_string()))
        }));
    }
}

#[test]
fn evidence_ids_not_found_are_reported_and_none_found_fails() {
    let f = fixture();
    let (alert, _) = alerts_of_both_kinds(&f);
    let ids: Vec<&str> = alert.evidence_event_ids.iter().map(String::as_str).collect();
    assert!(ids.len() >= 2, "{ids:?}");
    // Without the first evidence record: the rest found, the first reported.
    let without_first: Vec<wire::Event> =
        f.events.iter().filter(|e| show::event_id(e) != Some(ids[0])).cloned().collect();
    let partial = f.dir.join("partial.ndjson");
    write(&without_first, &partial);
    let mut a = args(&alert.alert_id);
    a.alerts = Some(f.alerts_file.clone());
    a.events = Some(partial.clone());
    let text = run(&f.config, &a).unwrap();
    assert!(
        text.contains(&format!("not found (no record the service applies) in what was read: {}", ids[0])),
        "{text}"
    );
    assert!(text.contains(&format!("{}: time report", ids[1])), "{text}");
    assert!(text.contains("partial.ndjson: ") && text.contains("the whole file"), "{text}");
    a.json = true;
    let lines = json_lines(&run(&f.config, &a).unwrap());
    let missing: Vec<&str> =
        lines.iter().filter(|l| l["kind"] == "not_found").map(|l| l["event_id"].as_str().unwrap()).collect();
    assert_eq!(missing, [ids[0]]);

    // None of them: every id reported, and an error.
    let none: Vec<wire::Event> =
        f.events.iter().filter(|e| !show::event_id(e).is_some_and(|id| ids.contains(&id))).cloned().collect();
    let empty = f.dir.join("none.ndjson");
    write(&none, &empty);
    a.events = Some(empty);
    let (error, text) = run(&f.config, &a).unwrap_err();
    assert!(error.to_string().contains("none of alert"), "{error}");
    let missing: BTreeSet<String> = json_lines(&text)
        .iter()
        .filter(|l| l["kind"] == "not_found")
        .map(|l| l["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(missing, ids.iter().map(|id| id.to_string()).collect());

    // An alert that is not there.
    let mut a = args("no-such-alert");
    a.alerts = Some(f.alerts_file.clone());
    a.events = Some(f.events_file.clone());
    let (error, _) = run(&f.config, &a).unwrap_err();
    assert!(error.to_string().contains("no alert \"no-such-alert\""), "{error}");
}

#[test]
fn a_records_file_is_decoded_as_the_service_decodes_its_topics() {
    let f = fixture();
    let (visits, invoice) = alerts_of_both_kinds(&f);
    // Protobuf records, as `tillsyn-sim simulate --records` writes them,
    // and one broken copy of an evidence invoice (its total does not add
    // up): the service rejects it, and it is shown as rejected.
    let records = f.dir.join("records.ndjson");
    let mut writer = RecordWriter::create(&records).unwrap();
    let broken_id = invoice.evidence_event_ids[0].clone();
    for e in &f.events {
        // The broken copy first: it does not count as found, the scan goes
        // on to the valid one.
        if let Some(wire::event::Kind::Invoice(i)) = &e.kind
            && i.invoice_id == broken_id
        {
            let mut broken = i.clone();
            broken.total_ore += 1;
            let event = wire::Event { kind: Some(wire::event::Kind::Invoice(broken)) };
            writer.write(&KafkaRecordLine::event(&event, Format::Json).unwrap()[0]).unwrap();
        }
        for line in KafkaRecordLine::event(e, Format::Protobuf).unwrap() {
            writer.write(&line).unwrap();
        }
    }
    writer.finish().unwrap();
    for alert in [&visits, &invoice] {
        let mut a = args(&alert.alert_id);
        a.alerts = Some(f.alerts_file.clone());
        a.records = Some(records.clone());
        a.json = true;
        let lines = json_lines(&run(&f.config, &a).unwrap());
        let ids: BTreeSet<&str> = alert.evidence_event_ids.iter().map(String::as_str).collect();
        let found: BTreeSet<&str> =
            lines.iter().filter(|l| l["kind"] == "evidence").map(|l| l["event_id"].as_str().unwrap()).collect();
        assert_eq!(found, ids);
        let rejected: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("rejected").is_some()).collect();
        if alert.alert_id == invoice.alert_id {
            assert_eq!(rejected.len(), 1, "{lines:?}");
            assert_eq!(rejected[0]["event_id"], broken_id.as_str());
            assert_eq!(rejected[0]["rejected"]["reason"], "total_mismatch");
            assert!(rejected[0]["position"]["record"].as_u64().unwrap() > 1);
        } else {
            assert!(rejected.is_empty());
        }
    }
}

#[test]
fn an_escalated_alert_remembers_its_episodes_first_window() {
    let alert = |id: &str, episode: &str, start: i64| wire::Alert {
        alert_id: id.into(),
        episode_id: episode.into(),
        window_start: Some(pbjson_types::Timestamp { seconds: start, nanos: 0 }),
        ..Default::default()
    };
    let at = |record| Position::File { file: "alerts.ndjson".into(), record };
    let mut search = AlertSearch::new("b2");
    assert!(!search.offer(alert("a1", "a", 100), at(1), None));
    assert!(!search.offer(alert("b1", "b", 200), at(2), None));
    assert!(!search.offer(alert("a2", "a", 50), at(3), None));
    assert!(search.offer(alert("b2", "b", 300), at(4), Some(7)));
    let found = search.finish().unwrap();
    assert_eq!(found.episode_start, Some(200));
    assert_eq!(found.position, at(4));
    assert_eq!(found.timestamp_ms, Some(7));
}

#[test]
fn the_matcher_keeps_only_evidence_and_lists_the_rest_in_the_alerts_order() {
    let alert = wire::Alert { evidence_event_ids: vec!["x".into(), "y".into(), "x".into()], ..Default::default() };
    let mut matcher = Matcher::new(&alert, Pseudonymizer::from_secret(SECRET), Personal::Pseudonymous);
    assert_eq!(matcher.wanted(), ["x", "y"]);
    let heartbeat = wire::Event {
        kind: Some(wire::event::Kind::Heartbeat(wire::SourceHeartbeat {
            at: Some(pbjson_types::Timestamp { seconds: 0, nanos: 0 }),
        })),
    };
    assert!(!matcher.offer(&heartbeat, || unreachable!("not evidence")));
    let other = wire::Event {
        kind: Some(wire::event::Kind::TimeReport(wire::TimeReport { event_id: "z".into(), ..Default::default() })),
    };
    assert!(!matcher.offer(&other, || unreachable!("not evidence")));
    let invalid_y = wire::Event {
        kind: Some(wire::event::Kind::TimeReport(wire::TimeReport { event_id: "y".into(), ..Default::default() })),
    };
    assert!(matcher.offer(&invalid_y, || Position::File { file: "f".into(), record: 3 }));
    assert_eq!(matcher.missing(), ["x", "y"], "a rejected copy is not the record the alert counted");
    let matched = matcher.finish();
    assert_eq!(matched.missing, ["x", "y"]);
    assert_eq!(matched.records.len(), 1);
    let shown = show::describe_record(&matched.records[0]);
    assert!(shown.starts_with("y: a record the service rejects, f record 3"), "{shown}");
}

#[test]
fn a_staff_members_visits_are_linked_with_the_distance_between_the_homes() {
    let visit = |id: &str, staff: &str, check_in: i64, home: (f64, f64)| wire::Event {
        kind: Some(wire::event::Kind::TimeReport(wire::TimeReport {
            event_id: id.into(),
            provider_id: "556036-0793".into(),
            municipality_code: "2480".into(),
            client_ref: format!("client-of-{id}"),
            staff_ref: staff.into(),
            service_type: wire::ServiceType::PersonalCare as i32,
            check_in: Some(pbjson_types::Timestamp { seconds: check_in, nanos: 0 }),
            check_out: Some(pbjson_types::Timestamp { seconds: check_in + 1800, nanos: 0 }),
            registration_method: wire::RegistrationMethod::Manual as i32,
            client_home: Some(wire::GeoPoint { latitude: home.0, longitude: home.1 }),
            reported_at: Some(pbjson_types::Timestamp { seconds: check_in + 3600, nanos: 0 }),
            ..Default::default()
        })),
    };
    let t = 1_770_000_000;
    // Listed later first, as an alert may list them; one visit of another
    // staff member between them.
    let events = [
        visit("b", "s-1", t + 1860, (63.85, 20.30)),
        visit("a", "s-1", t, (63.82, 20.26)),
        visit("c", "s-2", t + 900, (63.82, 20.26)),
    ];
    let alert = wire::Alert { evidence_event_ids: vec!["b".into(), "a".into(), "c".into()], ..Default::default() };
    let mut matcher = Matcher::new(&alert, Pseudonymizer::from_secret(SECRET), Personal::Pseudonymous);
    for (n, e) in events.iter().enumerate() {
        assert!(matcher.offer(e, || Position::File { file: "f".into(), record: n as u64 + 1 }));
    }
    let matched = matcher.finish();
    let after = |id: &str| match &matched.records.iter().find(|r| r.event_id == id).unwrap().content {
        show::Content::TimeReport(v) => v.after_visit.clone(),
        _ => unreachable!(),
    };
    let b = after("b").expect("b follows a");
    assert_eq!((b.event_id.as_str(), b.minutes_between), ("a", 1));
    assert!((3_500..4_000).contains(&b.home_distance_m), "{}", b.home_distance_m);
    assert!(after("a").is_none() && after("c").is_none());
    let text = show::describe_record(&matched.records[0]);
    assert!(
        text.contains("3.9 km from the home of the staff member's previous visit shown (a), 1 min after"),
        "{text}"
    );
    // The homes themselves are not shown without the flag.
    assert!(!text.contains("63.8") && !serde_json::to_string(&matched.records).unwrap().contains("63.8"));
}
