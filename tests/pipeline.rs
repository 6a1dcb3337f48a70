//! The offline pipeline end to end: simulate → replay → evaluate, through
//! files, as `tillsyn-sim simulate`, `tillsyn replay` and `tillsyn-sim
//! evaluate` run it.

use std::io::Write;
use std::path::{Path, PathBuf};

use tillsyn::replay::replay_file;
use tillsyn_core::codec::{MessageReader, MessageWriter};
use tillsyn_core::config::CoreConfig;
use tillsyn_core::proto::v1 as wire;
use tillsyn_sim::municipality::{SimConfig, simulate};

fn simulate_to(dir: &Path, name: &str, config: &SimConfig) -> (PathBuf, PathBuf) {
    let events = dir.join(name);
    let truth = dir.join(format!("{name}.truth.json"));
    let mut writer = MessageWriter::create(&events).expect("create events file");
    let ground_truth = simulate(config, &mut |e| writer.write(e).map_err(Into::into)).expect("simulate");
    writer.finish().expect("flush events");
    ground_truth.write(&truth).expect("write truth");
    (events, truth)
}

fn small() -> SimConfig {
    SimConfig { seed: 11, providers: 14, clients: 700, months: 3, fraudulent_providers: 4, ..SimConfig::default() }
}

#[test]
fn replaying_the_same_events_gives_byte_identical_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = simulate_to(dir.path(), "events.ndjson", &small());
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    let first = replay_file(&events, &a, None, CoreConfig::default(), false).unwrap();
    replay_file(&events, &b, None, CoreConfig::default(), false).unwrap();
    assert!(first.alerts() > 0, "the scenario has fraud, so there are alerts");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn protobuf_and_json_files_give_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (json, _) = simulate_to(dir.path(), "events.ndjson", &small());
    let (proto, _) = simulate_to(dir.path(), "events.pb", &small());
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    replay_file(&json, &a, None, CoreConfig::default(), false).unwrap();
    replay_file(&proto, &b, None, CoreConfig::default(), false).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn bad_records_are_dead_lettered_with_their_reason_and_the_rest_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, _) = simulate_to(dir.path(), "clean.ndjson", &small());
    let clean_alerts = dir.path().join("clean-alerts.ndjson");
    replay_file(&clean, &clean_alerts, None, CoreConfig::default(), false).unwrap();

    // Interleave bad records with the valid ones.
    let dirty = dir.path().join("dirty.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&dirty).unwrap());
    let text = std::fs::read_to_string(&clean).unwrap();
    let bad: [&str; 4] = [
        "this is not json",
        r#"{"timeReport":{"eventId":"x","providerId":"556036-0794"}}"#,
        r#"{"invoice":{"invoiceId":"i","providerId":"556036-0793","municipalityCode":"2480","periodStart":"2026-01-01T00:00:00Z","periodEnd":"2026-02-01T00:00:00Z","issuedAt":"2026-02-03T00:00:00Z","lines":[{"clientRef":"c","serviceType":"SERVICE_TYPE_SERVICE","minutes":"60","tariffOrePerHour":"42600","amountOre":"-5"}],"totalOre":"-5"}}"#,
        "{}",
    ];
    let mut injected = 0;
    for (i, line) in text.lines().enumerate() {
        if i % 1000 == 500 {
            writeln!(out, "{}", bad[injected % bad.len()]).unwrap();
            injected += 1;
        }
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
    drop(out);

    let (alerts, dead) = (dir.path().join("dirty-alerts.ndjson"), dir.path().join("dead.ndjson"));
    let summary = replay_file(&dirty, &alerts, Some(&dead), CoreConfig::default(), false).unwrap();
    let rejected: u64 = summary.rejected.values().sum();
    assert_eq!(rejected, injected as u64);
    for reason in ["json_decode", "malformed_organisation_number", "negative_value", "missing_field"] {
        assert!(summary.rejected.contains_key(reason), "{reason} in {:?}", summary.rejected);
    }
    let dead_lines = std::fs::read_to_string(&dead).unwrap();
    let late: u64 = summary.late.values().sum();
    assert_eq!(dead_lines.lines().count() as u64, rejected + late, "every rejected or late record is dead-lettered");
    assert_eq!(std::fs::read(&alerts).unwrap(), std::fs::read(&clean_alerts).unwrap(), "valid records all processed");
}

#[test]
fn alerts_follow_the_wire_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = simulate_to(dir.path(), "events.ndjson", &small());
    let alerts = dir.path().join("alerts.ndjson");
    replay_file(&events, &alerts, None, CoreConfig::default(), false).unwrap();
    let mut reader = MessageReader::open(&alerts).unwrap();
    let mut n = 0;
    while let Some(a) = reader.next_message::<wire::Alert>().unwrap() {
        n += 1;
        assert_eq!(a.alert_id.len(), 32);
        assert!(tillsyn_core::rules::catalogue::by_id(&a.rule_id).is_some());
        assert!(a.detected_at.is_some() && a.window_start.is_some() && a.window_end.is_some());
        assert!(!a.explanation.is_empty() && !a.evidence_event_ids.is_empty());
        // Swedish by default, and both languages in `explanations`.
        assert_eq!(a.explanations.keys().collect::<Vec<_>>(), ["en", "sv"]);
        assert_eq!(a.explanation, a.explanations["sv"]);
        assert!(!a.explanations["en"].is_empty() && a.explanations["en"] != a.explanations["sv"]);
        assert!(a.evidence_event_ids.len() <= CoreConfig::default().evidence_limit);
        assert!(a.observed.is_some() && a.expected.is_some());
    }
    assert!(n > 0);
}

/// Live, time reports and invoices come from two topics and interleave
/// differently from run to run. The alerts must not depend on it.
#[test]
fn alerts_do_not_depend_on_how_time_reports_and_invoices_interleave() {
    use tillsyn_core::engine::Engine;
    use tillsyn_core::model::pseudonym::Pseudonymizer;
    use tillsyn_core::model::validate::Validator;

    let mut events = Vec::new();
    simulate(&small(), &mut |e| {
        events.push(e.clone());
        Ok(())
    })
    .unwrap();
    let config = CoreConfig::default();
    let validator = Validator::new(Pseudonymizer::from_secret(&config.pseudonym_secret));
    let domain: Vec<_> = events.iter().map(|e| validator.event(e).unwrap()).collect();
    // An item is an event on one input: `2 i` on the time-report topic,
    // `2 i + 1` on the invoice topic. A source heartbeat is on both (every
    // partition of both topics) and travels with each topic's records.
    use tillsyn_core::engine::Disposition;
    use tillsyn_core::engine::Input;
    use tillsyn_core::model::DomainEvent;
    let run = |order: &[usize]| {
        let mut engine = Engine::new(config.clone());
        let mut alerts = Vec::new();
        for &item in order {
            let input = if item % 2 == 0 { Input::TimeReports } else { Input::Invoices };
            let disposition = match &domain[item / 2] {
                DomainEvent::Heartbeat(at) => engine.heartbeat(input, *at, &mut alerts),
                event => engine.process(event, &mut alerts),
            };
            assert!(!matches!(disposition, Disposition::Held(_)), "nothing waits: the rules are known for ever");
        }
        alerts.iter().map(|a| a.to_wire()).collect::<Vec<_>>()
    };
    let (mut visits, mut invoices) = (Vec::new(), Vec::new());
    for (i, event) in domain.iter().enumerate() {
        match event {
            DomainEvent::Visit(_) => visits.push(2 * i),
            DomainEvent::Invoice(_) => invoices.push(2 * i + 1),
            DomainEvent::Heartbeat(_) => {
                visits.push(2 * i);
                invoices.push(2 * i + 1);
            }
            DomainEvent::Reference(_) => unreachable!("the scenario has no reference data"),
        }
    }
    assert!(domain.iter().filter(|e| matches!(e, DomainEvent::Invoice(_))).count() >= 10, "the scenario has invoices");
    // Each invoice `shift` time reports later (or earlier) than it arrived.
    let interleave = |shift: isize| {
        let mut order = Vec::with_capacity(domain.len());
        let mut next_invoice = 0;
        for (v, &i) in visits.iter().enumerate() {
            while next_invoice < invoices.len() {
                let original = visits.partition_point(|&x| x < invoices[next_invoice]) as isize;
                if original + shift > v as isize {
                    break;
                }
                order.push(invoices[next_invoice]);
                next_invoice += 1;
            }
            order.push(i);
        }
        order.extend(&invoices[next_invoice..]);
        order
    };
    let mut original: Vec<usize> = visits.iter().chain(&invoices).copied().collect();
    original.sort_unstable();
    let expected = run(&original);
    assert!(!expected.is_empty());
    for shift in [-2_000, -300, 300, 2_000] {
        assert_eq!(run(&interleave(shift)), expected, "invoices shifted by {shift} time reports");
    }

    // What the live service's alignment relies on: invoices read up to
    // `ALIGNMENT_SECS` of event time after the time reports around their
    // issue time, or any time before, give the same alerts.
    let bound = tillsyn_core::driver::ALIGNMENT_SECS;
    let delayed = |delay: i64| {
        let mut order = Vec::with_capacity(domain.len());
        let mut waiting: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
        let mut next_invoice = 0;
        for &v in &visits {
            let t = domain[v / 2].event_time().0;
            while next_invoice < invoices.len() && invoices[next_invoice] < v {
                waiting.push_back(invoices[next_invoice]);
                next_invoice += 1;
            }
            while waiting.front().is_some_and(|&i| domain[i / 2].event_time().0 + delay <= t) {
                order.push(waiting.pop_front().unwrap());
            }
            order.push(v);
        }
        order.extend(waiting);
        order.extend(&invoices[next_invoice..]);
        order
    };
    for delay in [bound / 5, bound / 2, bound] {
        assert_eq!(run(&delayed(delay)), expected, "invoices read {delay} s late");
    }
    let invoices_first: Vec<usize> = invoices.iter().chain(&visits).copied().collect();
    assert_eq!(run(&invoices_first), expected, "every invoice before every time report");
}

/// `replay --partitions N` splits by provider as Kafka's keyed partitioner
/// does, one engine per partition; deterministic like the single engine.
#[test]
fn a_partitioned_replay_is_deterministic_and_keeps_every_record() {
    use tillsyn::replay::replay_partitioned;
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = simulate_to(dir.path(), "events.ndjson", &small());
    let (a, b, one) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"), dir.path().join("one.ndjson"));
    let three = replay_partitioned(&events, &a, None, CoreConfig::default(), false, 3).unwrap();
    replay_partitioned(&events, &b, None, CoreConfig::default(), false, 3).unwrap();
    let single = replay_partitioned(&events, &one, None, CoreConfig::default(), false, 1).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(three.records, single.records);
    assert_eq!(
        three.engine.visits + three.late.values().sum::<u64>(),
        single.engine.visits + single.late.values().sum::<u64>()
    );
    assert_eq!(three.state.providers, single.state.providers, "each provider lives in exactly one partition");
}

/// One answer at any scale: the default scenario (40 providers, six
/// months, every pattern) replayed as 1, 2, 3, 7 and 12 partitions gives
/// byte-identical alert files, staff rules (whose staff members work for
/// providers in different partitions) and peer rules (whose peers are
/// spread over the partitions) included.
#[test]
fn the_alerts_are_the_same_for_any_partition_count() {
    use tillsyn::replay::replay_partitioned;
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = simulate_to(dir.path(), "events.pb", &SimConfig::default());
    let alerts = |n: i32| {
        let file = dir.path().join(format!("alerts-{n}.ndjson"));
        let summary = replay_partitioned(&events, &file, None, CoreConfig::default(), false, n).unwrap();
        (std::fs::read(&file).unwrap(), summary)
    };
    let (reference, summary) = alerts(1);
    for rule in
        ["staff-double-booking", "impossible-travel", "manual-registration-share", "hours-per-client-above-peers"]
    {
        assert!(
            summary.alerts_by_rule.get(rule).is_some_and(|n| *n > 0),
            "no {rule} alert: {:?}",
            summary.alerts_by_rule
        );
    }
    for n in [2, 3, 7, 12] {
        let (file, _) = alerts(n);
        assert!(file == reference, "{n} partitions give other alerts than one");
    }
}

/// The same across a region: three municipalities (several peer groups in
/// the global table), companies with a branch in two of them (fraudulent
/// in one branch only), staff with two employers and cross-provider
/// double booking. 1, 2, 3, 7 and 12 partitions give byte-identical alert
/// files, and every alert names a branch that exists (provider and
/// municipality), in more than one municipality.
#[test]
fn the_alerts_are_the_same_for_any_partition_count_across_a_region() {
    use tillsyn::replay::replay_partitioned;
    use tillsyn_sim::evaluate::{EvaluationOptions, evaluate_files};
    use tillsyn_sim::municipality::{MunicipalityConfig, RegionConfig, simulate_region};
    let dir = tempfile::tempdir().unwrap();
    let municipality = |code: &str, providers, clients, fraudulent_providers, second_jobs| MunicipalityConfig {
        code: code.into(),
        providers,
        clients,
        fraudulent_providers,
        second_jobs,
    };
    let config = RegionConfig {
        seed: 5,
        months: 3,
        municipalities: vec![
            municipality("2480", 16, 900, 8, 3),
            municipality("2460", 7, 320, 2, 1),
            municipality("2401", 6, 280, 2, 1),
        ],
        shared_providers: 3,
        ..RegionConfig::default()
    };
    let events = dir.path().join("events.pb");
    let truth = dir.path().join("truth.json");
    let mut writer = MessageWriter::create(&events).unwrap();
    simulate_region(&config, &mut |e| writer.write(e).map_err(Into::into)).unwrap().write(&truth).unwrap();
    writer.finish().unwrap();

    let alerts = |n: i32| {
        let file = dir.path().join(format!("alerts-{n}.ndjson"));
        replay_partitioned(&events, &file, None, CoreConfig::default(), false, n).unwrap();
        (std::fs::read(&file).unwrap(), file)
    };
    let (reference, file) = alerts(1);
    let evaluation = evaluate_files(&file, &truth, &EvaluationOptions::default()).unwrap();
    assert_eq!(evaluation.unknown_alerts, 0, "an alert for a branch that does not exist");
    let mut reader = MessageReader::open(&file).unwrap();
    let mut municipalities = std::collections::BTreeSet::new();
    while let Some(a) = reader.next_message::<wire::Alert>().unwrap() {
        municipalities.insert(a.municipality_code);
    }
    assert!(municipalities.len() >= 2, "alerts in {municipalities:?} only");
    assert!(evaluation.true_alerts > 0 && evaluation.rules.iter().any(|r| r.rule_id == "staff-double-booking"));
    for n in [2, 3, 7, 12] {
        let (file, _) = alerts(n);
        assert!(file == reference, "{n} partitions give other alerts than one");
    }
}

/// One record dated 2099 (a typing error in a source system) changes
/// nothing: a time report checked in 2099-06-01 (reported then too, so
/// only the source's clock shows it wrong) and an invoice for May 2099,
/// inserted 40 % of the way into a simulated municipality's events, plus
/// an invoice whose billed period ends in 2099, are dead-lettered with
/// their reasons, and the alerts are byte-identical to those of the same
/// events without them, for 1 and 3 partitions.
#[test]
fn one_absurd_date_changes_no_alert() {
    use tillsyn::replay::replay_partitioned;
    use tillsyn_core::decode::reason;
    let dir = tempfile::tempdir().unwrap();
    let (clean, _) = simulate_to(dir.path(), "clean.pb", &small());
    let mut events = Vec::new();
    let mut reader = MessageReader::open(&clean).unwrap();
    while let Some(e) = reader.next_message::<wire::Event>().unwrap() {
        events.push(e);
    }
    let ts = |seconds: i64| Some(pbjson_types::Timestamp { seconds, nanos: 0 });
    let at = events.len() * 2 / 5;
    let report = events[at..].iter().find_map(|e| match &e.kind {
        Some(wire::event::Kind::TimeReport(t)) => Some(t.clone()),
        _ => None,
    });
    let invoice = events.iter().find_map(|e| match &e.kind {
        Some(wire::event::Kind::Invoice(i)) => Some(i.clone()),
        _ => None,
    });
    let (mut report, mut invoice) = (report.unwrap(), invoice.unwrap());
    let june_2099 = 4_084_329_600; // 2099-06-01T00:00:00Z
    report.event_id = "tr-2099".into();
    report.check_in = ts(june_2099 + 9 * 3600);
    report.check_out = ts(june_2099 + 10 * 3600);
    report.reported_at = ts(june_2099 + 10 * 3600 + 300);
    let mut far_period = invoice.clone();
    invoice.invoice_id = "inv-2099".into();
    invoice.period_start = ts(june_2099 - 31 * 86_400);
    invoice.period_end = ts(june_2099);
    invoice.issued_at = ts(june_2099 + 2 * 86_400);
    far_period.invoice_id = "inv-period-2099".into();
    far_period.period_end = ts(june_2099);
    let absurd = [
        wire::event::Kind::TimeReport(report),
        wire::event::Kind::Invoice(invoice),
        wire::event::Kind::Invoice(far_period),
    ];
    let dirty = dir.path().join("dirty.pb");
    let mut writer = MessageWriter::create(&dirty).unwrap();
    for (i, e) in events.iter().enumerate() {
        if i == at {
            for kind in &absurd {
                writer.write(&wire::Event { kind: Some(kind.clone()) }).unwrap();
            }
        }
        writer.write(e).unwrap();
    }
    writer.finish().unwrap();

    for n in [1, 3] {
        let replay = |events: &Path, name: &str| {
            let alerts = dir.path().join(format!("{name}-{n}.ndjson"));
            let dead = dir.path().join(format!("{name}-{n}.dead.ndjson"));
            let summary = replay_partitioned(events, &alerts, Some(&dead), CoreConfig::default(), false, n).unwrap();
            (std::fs::read(&alerts).unwrap(), std::fs::read_to_string(&dead).unwrap(), summary)
        };
        let (reference, _, clean_summary) = replay(&clean, "clean");
        let (alerts, dead, summary) = replay(&dirty, "dirty");
        assert!(clean_summary.alerts() > 0);
        assert!(alerts == reference, "{n} partitions: the absurd records changed the alerts");
        assert_eq!(summary.rejected.get(reason::EVENT_TIME_AHEAD_OF_SOURCE), Some(&2), "{:?}", summary.rejected);
        assert_eq!(summary.rejected.get(reason::PERIOD_END_AFTER_ISSUE), Some(&1), "{:?}", summary.rejected);
        assert_eq!(summary.late, clean_summary.late, "no record became late");
        assert_eq!(dead.lines().count(), 3, "{dead}");
    }
}

/// Pattern 2 across providers and partitions: one staff member registered
/// by two providers at two homes at once, the providers hashing to
/// different partitions. Each partition sees one harmless visit; the staff
/// stage sees both, and the provider whose registration proves less
/// presence (manual against NFC) gets the alert, the same for any
/// partition count.
#[test]
fn a_staff_member_at_two_providers_at_once_is_found_across_partitions() {
    use tillsyn::replay::replay_partitioned;
    let (events, _, borrower) = tillsyn_sim::crafted::cross_provider_double_booking(&[2, 3]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let mut writer = MessageWriter::create(&file).unwrap();
    for e in &events {
        writer.write(e).unwrap();
    }
    writer.finish().unwrap();

    let alerts = |n: i32| {
        let out = dir.path().join(format!("alerts-{n}.ndjson"));
        replay_partitioned(&file, &out, None, CoreConfig::default(), false, n).unwrap();
        let mut reader = MessageReader::open(&out).unwrap();
        let mut alerts = Vec::new();
        while let Some(a) = reader.next_message::<wire::Alert>().unwrap() {
            alerts.push(a);
        }
        alerts
    };
    let one = alerts(1);
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!((one[0].rule_id.as_str(), one[0].provider_id.as_str()), ("staff-double-booking", borrower.as_str()));
    let english = &one[0].explanations["en"];
    assert!(english.contains("another provider"), "{english}");
    assert!(one[0].explanation.contains("en annan utförare"), "Swedish by default: {}", one[0].explanation);
    for n in [2, 3] {
        assert_eq!(alerts(n), one, "{n} partitions");
    }
}
