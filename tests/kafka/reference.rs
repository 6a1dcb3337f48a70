//! Reference data live: decisions, absences and the provider register on
//! their compacted topics, read into every instance's reference table, and
//! what it refuses dead-lettered once by the group.

use super::*;

/// The small scenario with reference data.
/// Three months and 14 providers: enough honest providers for every
/// reference pattern, the third form of pattern 15 among them (a provider
/// that keeps billing clients who moved away, found by a client rule whose
/// questions cross the staff-findings topic).
fn with_reference() -> SimConfig {
    SimConfig { reference: true, fraudulent_providers: 4, providers: 14, clients: 400, months: 3, ..small() }
}

/// Sends `value` with `content_type` to partition `partition` of `topic`, keyed `key`.
async fn send(config: &ServiceConfig, topic: &str, partition: i32, key: &str, value: &[u8], content_type: &str) {
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some(content_type) });
    let record = FutureRecord::to(topic).partition(partition).key(key).payload(value).headers(headers);
    producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

/// Two instances with reference data give exactly the alerts of `tillsyn
/// replay --partitions 1` over the same events (the reference rules among
/// them), and each bad record of a reference topic is dead-lettered once
/// with its reason, although every instance reads every reference record:
/// one that does not decode, one of another kind, and a version registered
/// behind its partition's progress (sent after the export's last
/// heartbeat).
#[test]
fn live_reference_data_gives_the_replays_alerts_and_bad_reference_records_are_dead_lettered_once() {
    let _serial = serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = config("reference");
    config.core.reference.enabled = true;
    runtime.block_on(create_topics(&config));
    let events = simulated(&with_reference());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    write_events(&events, &file);
    let offline = offline_alert_ids(&file, &config);
    let (offline_summary, offline_rules) = {
        let alerts = dir.path().join("rules.ndjson");
        let s = replay_partitioned(&file, &alerts, None, config.core.clone(), false, 1).unwrap();
        (s.rejected.clone(), s.alerts_by_rule.clone())
    };
    assert!(offline_summary.is_empty(), "the replay refuses nothing: {offline_summary:?}");
    let reference_rules: Vec<_> = offline_rules
        .keys()
        .filter(|r| {
            r.starts_with("visit-")
                || ["billing-during-absence", "above-granted-hours", "provider-without-permit"].contains(r)
        })
        .collect();
    assert!(!reference_rules.is_empty(), "the scenario's alerts include reference rules: {offline_rules:?}");
    assert!(
        offline_rules.contains_key("client-hours-above-granted"),
        "the scenario's alerts include the client rule answered with the reference data: {offline_rules:?}"
    );

    // The events, reference data and heartbeats on their topics, then the
    // bad records.
    let records: Vec<_> =
        events.iter().flat_map(|e| KafkaRecordLine::event_for(e, Format::Protobuf, true).unwrap()).map(Ok).collect();
    assert!(records.iter().any(|r| r.as_ref().is_ok_and(|r: &KafkaRecordLine| r.reference.is_some() && r.broadcast)));
    runtime.block_on(tools::produce_records(&config, records, None)).unwrap();
    let t = &config.topics;
    runtime.block_on(send(&config, &t.absences, 1, "abs-broken", b"{not json", "application/json"));
    let report = events.iter().find(|e| matches!(e.kind, Some(wire::event::Kind::TimeReport(_)))).unwrap();
    runtime.block_on(send(
        &config,
        &t.granted_hours,
        2,
        "a-time-report",
        &serde_json::to_vec(report).unwrap(),
        "application/json; proto=tillsyn.v1.Event",
    ));
    let mut late = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(wire::event::Kind::GrantedHours(g)) => Some(g.clone()),
            _ => None,
        })
        .unwrap();
    late.decision_id = "decision-registered-late".into();
    runtime.block_on(send(
        &config,
        &t.granted_hours,
        3,
        &late.decision_id,
        &prost::Message::encode_to_vec(&late),
        "application/x-protobuf; proto=tillsyn.v1.GrantedHours",
    ));

    let mut live =
        vec![Service::start(&config, dir.path().join("a.log")), Service::start(&config, dir.path().join("b.log"))];
    wait_for_catch_up(&config, &live.iter().collect::<Vec<_>>());
    let alerts_read = || runtime.block_on(live_alert_ids(&config)).len();
    wait_for("the alerts of the last decisions", Duration::from_secs(60), || alerts_read() >= offline.len());
    std::thread::sleep(Duration::from_secs(3));
    let metrics: Vec<Metrics> = live.iter().map(Service::metrics).collect();
    stop_all(&mut live);

    assert_same_alerts(&runtime.block_on(live_alert_ids(&config)), &offline);
    eprintln!(
        "{} alerts live = replay, by rule {offline_rules:?}; reference records applied per instance: {:?}",
        offline.len(),
        metrics.iter().map(|m| m.sum("tillsyn_reference_records_total", &[("outcome", "applied")])).collect::<Vec<_>>()
    );
    for (i, m) in metrics.iter().enumerate() {
        assert_eq!(
            m.sum("tillsyn_reference_records_total", &[("outcome", "refused")]),
            3.0,
            "instance {i} read every reference record and refused the three"
        );
        assert!(m.sum("tillsyn_reference_records_total", &[("outcome", "applied")]) > 100.0);
        assert!(m.sum("tillsyn_reference_facts", &[]) > 100.0);
    }
    assert!(metrics.iter().all(|m| m.sum("tillsyn_assigned_partitions", &[]) > 0.0), "both instances had partitions");

    let dlq_config = config.clone();
    let dead = read_all(&dlq_config, &dlq_config.topics.dead_letter);
    let header = |h: &[(String, String)], name: &str| h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut got: Vec<(String, String)> = dead
        .iter()
        .map(|(_, h)| (header(h, "tillsyn-dlq-source-topic").unwrap(), header(h, "tillsyn-dlq-reason").unwrap()))
        .collect();
    got.sort();
    let mut want = vec![
        (t.absences.clone(), "json_decode".to_string()),
        (t.granted_hours.clone(), "wrong_event_kind".to_string()),
        (t.granted_hours.clone(), "reference_late".to_string()),
    ];
    want.sort();
    assert_eq!(got, want, "each bad reference record once, with its reason");
}
