//! The engine fed a short sequence of validated events (a few providers,
//! clients and staff, so that rules meet; times around the DST change of
//! March 2026, in and out of order, sometimes beyond the allowed lateness)
//! must not panic, and
//! - a late event is behind the watermark and leaves the watermark alone; an
//!   applied one is not behind it; the watermark and "now" never go back;
//! - the counters add up (every event is applied, late or a duplicate);
//! - alerts are well-formed: unique ids, each episode opens at revision 0,
//!   counts its revisions up by one, never escalates to a lower severity and
//!   ends with its resolution; at most `evidence_limit` evidence ids; finite
//!   scores and measures; a decision time not after the engine's "now";
//! - the same events in the same order give the same alerts.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tillsyn_core::alerting::{Alert, AlertStatus};
use tillsyn_core::config::CoreConfig;
use tillsyn_core::engine::{Disposition, Standalone};
use tillsyn_core::model::validate::Validator;
use tillsyn_core::model::{DomainEvent, Month, ProviderId};
use tillsyn_core::proto::v1 as wire;
use tillsyn_fuzz::{INVOICE_RULES, tolerated, validator};

static VALIDATOR: LazyLock<Validator> = LazyLock::new(validator);

/// 2026-03-20T06:00:00Z, nine days before summer time starts.
const START: i64 = 1_773_986_400;

#[derive(Debug, Arbitrary)]
enum Step {
    Visit {
        provider: u8,
        client: u8,
        staff: u8,
        service: u8,
        /// Minutes from the cursor: negative is out of order.
        advance_minutes: i16,
        duration_minutes: u16,
        method: u8,
        planned: Option<u8>,
        home: Option<(u8, u8)>,
        check_in_offset: Option<(i8, i8)>,
        household: Option<u8>,
    },
    Invoice {
        provider: u8,
        /// Billed month: the cursor's, or up to three before.
        months_back: u8,
        lines: Vec<(u8, u8, u16, u16)>,
        /// Issued this many hours after the cursor (negative: before).
        issue_offset_hours: i8,
        /// Reuse the previous invoice id (a redelivery).
        redelivery: bool,
    },
    /// Quiet time: the cursor moves this many hours.
    Jump(u16),
}

fn provider(i: u8) -> String {
    // Two private providers, one municipal unit (2120…), one assistance company.
    let nine = [556_036_079, 556_677_889, 212_000_254, 559_001_234][usize::from(i % 4)];
    ProviderId::from_nine_digits(nine).to_string()
}

fn ts(seconds: i64) -> Option<pbjson_types::Timestamp> {
    Some(pbjson_types::Timestamp { seconds, nanos: 0 })
}

/// Turns the steps into validated events (each must validate: the
/// generator only makes valid messages).
fn events(steps: &[Step]) -> Vec<DomainEvent> {
    let mut cursor = START;
    let mut out = Vec::new();
    let mut last_invoice: Option<String> = None;
    for (n, step) in steps.iter().take(200).enumerate() {
        let message = match step {
            Step::Jump(hours) => {
                cursor += i64::from(*hours % 2_400) * 3_600;
                continue;
            }
            Step::Visit {
                provider: p,
                client,
                staff,
                service,
                advance_minutes,
                duration_minutes,
                method,
                planned,
                home,
                check_in_offset,
                household,
            } => {
                cursor += i64::from(*advance_minutes) * 60;
                let check_in = cursor;
                let check_out = check_in + i64::from(*duration_minutes % (26 * 60)) * 60;
                let home = home.map(|(a, b)| wire::GeoPoint {
                    latitude: 63.80 + f64::from(a) * 0.001,
                    longitude: 20.20 + f64::from(b) * 0.002,
                });
                let check_in_location = match (home, check_in_offset) {
                    (Some(h), Some((dy, dx))) => Some(wire::GeoPoint {
                        latitude: h.latitude + f64::from(*dy) * 0.0005,
                        longitude: h.longitude + f64::from(*dx) * 0.001,
                    }),
                    _ => None,
                };
                wire::event::Kind::TimeReport(wire::TimeReport {
                    event_id: format!("tr-{n}"),
                    provider_id: provider(*p),
                    municipality_code: "2480".into(),
                    client_ref: format!("c-{}", client % 8),
                    staff_ref: format!("s-{}", staff % 6),
                    service_type: i32::from(service % 6) + 1,
                    check_in: ts(check_in),
                    check_out: ts(check_out),
                    registration_method: i32::from(method % 4) + 1,
                    planned_minutes: planned.map(|m| u32::from(m) * 5),
                    client_home: home,
                    check_in_location,
                    household_ref: household.map(|h| format!("h-{}", h % 3)),
                    reported_at: ts(check_out + 60),
                })
            }
            Step::Invoice { provider: p, months_back, lines, issue_offset_hours, redelivery } => {
                let month = Month(tillsyn_core::model::EventTime(cursor).month().0 - i32::from(months_back % 4));
                let (start, end) = (month.start().0, month.end().0);
                let lines: Vec<wire::InvoiceLine> = lines
                    .iter()
                    .take(12)
                    .map(|&(client, service, minutes, tariff)| {
                        let minutes = i64::from(minutes % 20_000);
                        let tariff = i64::from(tariff);
                        wire::InvoiceLine {
                            client_ref: format!("c-{}", client % 10),
                            service_type: i32::from(service % 6) + 1,
                            minutes,
                            tariff_ore_per_hour: tariff,
                            amount_ore: minutes * tariff / 60,
                        }
                    })
                    .collect();
                let invoice_id = match (&last_invoice, redelivery) {
                    (Some(id), true) => id.clone(),
                    _ => format!("inv-{n}"),
                };
                last_invoice = Some(invoice_id.clone());
                wire::event::Kind::Invoice(wire::Invoice {
                    invoice_id,
                    provider_id: provider(*p),
                    municipality_code: "2480".into(),
                    period_start: ts(start),
                    period_end: ts(end),
                    issued_at: ts((cursor + i64::from(*issue_offset_hours) * 3_600).max(start + 60)),
                    total_ore: lines.iter().map(|l| l.amount_ore).sum(),
                    lines,
                })
            }
        };
        let event = VALIDATOR
            .event(&wire::Event { kind: Some(message) })
            .unwrap_or_else(|e| panic!("the harness made an invalid message: {e}"));
        out.push(event);
    }
    out
}

fn run(events: &[DomainEvent]) -> Vec<Alert> {
    let config = CoreConfig::default();
    let evidence_limit = config.evidence_limit;
    let mut core = Standalone::new(config);
    let mut alerts = Vec::new();
    let (mut visits, mut invoices, mut rejected_visits) = (0u64, 0u64, 0u64);
    for event in events {
        let (watermark, now) = (core.engine.watermark(), core.engine.now());
        let before = alerts.len();
        let disposition = core.process(event, &mut alerts);
        let engine = &core.engine;
        match event {
            DomainEvent::Visit(v) => {
                visits += 1;
                match &disposition {
                    Disposition::Late(l) => {
                        let w = watermark.expect("late before any time report");
                        assert_eq!((l.event_time, l.watermark), (v.check_in, w));
                        assert!(v.check_in < w && l.behind_secs == w.0 - v.check_in.0, "{l:?}");
                        assert_eq!(engine.watermark(), watermark, "a late visit moved the watermark");
                    }
                    Disposition::Applied => {
                        assert!(watermark.is_none_or(|w| v.check_in >= w), "a visit behind the watermark applied")
                    }
                    Disposition::Duplicate => panic!("a visit reported as a duplicate"),
                    Disposition::Rejected(_) => {
                        rejected_visits += 1;
                        assert_eq!(engine.watermark(), watermark, "a rejected visit moved the watermark")
                    }
                    Disposition::Held(_) => panic!("a visit held: the rules' configuration is known for ever here"),
                }
            }
            DomainEvent::Invoice(_) => {
                invoices += 1;
                assert_eq!(engine.watermark(), watermark, "an invoice moved the time-report watermark");
            }
            DomainEvent::Heartbeat(_) | DomainEvent::Reference(_) => {
                unreachable!("the harness makes visits and invoices only")
            }
        }
        assert!(engine.watermark() >= watermark, "the watermark went back");
        assert!(engine.now() >= now, "now went back");
        if let Some(now) = engine.now() {
            for a in &alerts[before..] {
                assert!(a.detected_at <= now, "decided at {} after now {now}: {a:?}", a.detected_at);
            }
        }
    }
    let stats = core.engine.stats();
    assert_eq!(stats.visits + stats.late_visits + rejected_visits, visits);
    assert_eq!(stats.invoices + stats.late_invoices + stats.duplicate_invoices, invoices);
    assert_eq!(stats.alerts, alerts.len() as u64);

    let mut ids = HashSet::new();
    let mut episodes: HashMap<&str, &Alert> = HashMap::new();
    for a in &alerts {
        assert!(ids.insert(a.alert_id.as_str()), "alert id repeated: {a:?}");
        assert!(a.evidence.len() <= evidence_limit);
        assert!(a.score.is_finite() && a.observed.value.is_finite() && a.expected.value.is_finite(), "{a:?}");
        assert!(a.window.0 <= a.window.1, "window ends before it starts: {a:?}");
        match episodes.get(a.episode_id.as_str()) {
            None => assert!(a.status == AlertStatus::Opened && a.revision == 0, "episode starts with {a:?}"),
            Some(prev) => {
                assert_ne!(prev.status, AlertStatus::Resolved, "alert after the resolution: {a:?}");
                assert_eq!(a.revision, prev.revision + 1);
                assert_ne!(a.status, AlertStatus::Opened);
                assert!(a.severity >= prev.severity);
                // Known issue 2 (tillsyn_fuzz::KNOWN_ISSUES): invoice rules.
                let out_of_order_invoice = INVOICE_RULES.contains(&a.rule.id);
                assert!(
                    a.detected_at >= prev.detected_at || tolerated(out_of_order_invoice),
                    "episode went back in time: {prev:?} then {a:?}"
                );
            }
        }
        episodes.insert(&a.episode_id, a);
    }
    alerts
}

fuzz_target!(|steps: Vec<Step>| {
    let events = events(&steps);
    let first = run(&events);
    let second = run(&events);
    assert_eq!(first, second, "the same events gave different alerts");
});
