//! Properties of the event-time windows, through the public API only:
//! [`DayRing`] (per-day buckets), [`Watermark`] (lateness) and the
//! [`Engine`] that drives them.
//!
//! - Out-of-order arrival within the horizon (ring) or the allowed lateness
//!   (watermark, engine) gives the same window contents as in-order
//!   arrival, and the same findings for the rules whose statistic does not
//!   depend on the arrival order (one that does is kept as an ignored test:
//!   `night_visits_reordered_within_the_lateness_are_still_found`).
//! - A watermark never moves backwards; an event older than the lateness is
//!   reported late and changes nothing: not the watermark, not the window,
//!   not any later alert.
//! - Day buckets keyed by Swedish local day sum across the DST changes to
//!   what a per-event computation with the time-zone database gives, and
//!   local days are 23 and 25 hours long on the days the clocks change.
//! - The engine's alerts do not depend on how the time-report and invoice
//!   streams interleave.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Offset, TimeZone};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tillsyn_core::alerting::{Alert, AlertStatus};
use tillsyn_core::config::CoreConfig;
use tillsyn_core::engine::{Disposition, Engine, Input};
use tillsyn_core::model::{
    ClientKey, Day, DomainEvent, EventId, EventTime, GeoPoint, Invoice, InvoiceLine, Minutes, Month, MunicipalityCode,
    Ore, ProviderId, RegistrationMethod, ServiceType, StaffKey, Visit,
};
use tillsyn_core::rules::catalogue;
use tillsyn_core::window::{DayRing, Lateness, Watermark};

const DAY: i64 = 86_400;

fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Arrival order of `items` (sorted by time) when item i is held back by
/// `delays[i]`, ties in arrival kept in the original order. An item arrives
/// after only items whose time is below its own time plus its delay, so
/// with delays of at most B an item is at most B - 1 behind the newest item
/// seen before it, and every such disorder is possible.
fn arrival_order<T: Clone>(items: &[(i64, T)], delays: &[i64]) -> Vec<(i64, T)> {
    let mut keyed: Vec<(i64, usize)> =
        items.iter().zip(delays).enumerate().map(|(i, ((t, _), d))| (t + d, i)).collect();
    keyed.sort();
    keyed.into_iter().map(|(_, i)| items[i].clone()).collect()
}

// ================================================================ DayRing

proptest! {
    #![proptest_config(config(256))]

    /// A stream arriving out of order, each day at most `capacity - 1` days
    /// behind the newest day written (the oldest day the ring holds), gives
    /// the same ring (head and every bucket) as the stream in order, and
    /// every write is accepted.
    #[test]
    fn ring_out_of_order_within_the_horizon_equals_in_order(
        capacity in 7usize..60,
        mut items in proptest::collection::vec((0i64..300, 1u32..1_000), 1..400),
        seed in proptest::collection::vec(any::<u16>(), 400),
    ) {
        items.sort();
        let delays: Vec<i64> = seed.iter().map(|s| i64::from(*s) % (capacity as i64 + 1)).collect();
        let shuffled = arrival_order(&items, &delays);

        let mut in_order: DayRing<u64> = DayRing::new(capacity);
        for (d, v) in &items {
            *in_order.bucket_mut(Day(*d as i32)).expect("in order, every day is held") += u64::from(*v);
        }
        let mut out_of_order: DayRing<u64> = DayRing::new(capacity);
        for (d, v) in &shuffled {
            let bucket = out_of_order.bucket_mut(Day(*d as i32));
            prop_assert!(bucket.is_some(), "day {} refused although within the horizon of head {:?}", d, out_of_order.head());
            *bucket.unwrap() += u64::from(*v);
        }
        prop_assert_eq!(&in_order, &out_of_order);

        // And both hold exactly the per-day totals of the days in the horizon.
        let head = items.last().unwrap().0;
        let mut naive: BTreeMap<i64, u64> = BTreeMap::new();
        for (d, v) in &items {
            *naive.entry(*d).or_default() += u64::from(*v);
        }
        for d in head - capacity as i64 - 3..=head + 2 {
            let expected = if d > head - capacity as i64 { naive.get(&d).copied().unwrap_or(0) } else { 0 };
            prop_assert_eq!(out_of_order.get(Day(d as i32)), expected, "day {}", d);
        }
        for len in [1u32, 7, 30, 90] {
            let expected: u64 = naive.range((head - i64::from(len) + 1).max(head - capacity as i64 + 1)..=head).map(|(_, v)| v).sum();
            prop_assert_eq!(out_of_order.sum(Day(head as i32), len, |b| *b), expected, "window of {} days", len);
        }
    }

    /// A day older than the horizon is refused and leaves the ring as it was.
    #[test]
    fn ring_refuses_days_beyond_the_horizon_and_changes_nothing(
        capacity in 1usize..60,
        items in proptest::collection::vec((0i32..200, 1u32..1_000), 1..100),
        behind in 0i32..400,
    ) {
        let mut ring: DayRing<u64> = DayRing::new(capacity);
        for (d, v) in &items {
            if let Some(b) = ring.bucket_mut(Day(*d)) {
                *b += u64::from(*v);
            }
        }
        let head = ring.head().expect("written");
        let before = ring.clone();
        let old = Day(head.0 - capacity as i32 - behind);
        prop_assert!(ring.bucket_mut(old).is_none(), "day {:?} accepted with head {:?} and capacity {}", old, head, capacity);
        prop_assert_eq!(&ring, &before);
        prop_assert_eq!(ring.get(old), 0);
    }
}

// ============================================================== Watermark

proptest! {
    #![proptest_config(config(256))]

    /// Against a model: the watermark is the newest on-time event time minus
    /// the lateness, never moves backwards, and an event before it is late
    /// by exactly the gap and leaves it (and everything else) unchanged.
    #[test]
    fn watermark_never_moves_backwards_and_late_events_change_nothing(
        lateness in 0i64..5 * DAY,
        steps in proptest::collection::vec(-10 * DAY..DAY, 1..300),
    ) {
        let mut w = Watermark::new(lateness);
        let mut t = 1_770_000_000i64;
        let mut newest: Option<i64> = None;
        for step in steps {
            // A random walk: mostly forward, sometimes far back.
            t += step;
            let before = w.clone();
            let current = w.current();
            prop_assert_eq!(current, newest.map(|n| EventTime(n - lateness)));
            match w.observe(EventTime(t)) {
                Lateness::Late { behind_secs, watermark } => {
                    let expected = current.expect("late before any event");
                    prop_assert_eq!(watermark, expected);
                    prop_assert!(t < expected.0 && behind_secs == expected.0 - t);
                    prop_assert_eq!(&w, &before, "a late event changed the watermark");
                }
                Lateness::OnTime => {
                    prop_assert!(current.is_none_or(|c| t >= c.0), "{} on time behind the watermark {:?}", t, current);
                    newest = Some(newest.map_or(t, |n| n.max(t)));
                }
            }
            prop_assert!(w.current() >= current, "the watermark moved back");
            prop_assert_eq!(w.max_seen(), newest.map(EventTime));
        }
    }

    /// Events arriving at most the allowed lateness behind the newest one are
    /// all on time, and the watermark ends where in-order arrival puts it.
    /// Times and lateness are whole hours, so that events exactly at the
    /// watermark are common.
    #[test]
    fn events_within_the_lateness_are_all_on_time(
        lateness_hours in 0i64..100,
        mut hours in proptest::collection::vec(0i64..2_000, 1..300),
        seed in proptest::collection::vec(any::<u64>(), 300),
    ) {
        let lateness = lateness_hours * 3_600;
        hours.sort();
        let items: Vec<(i64, ())> = hours.iter().map(|h| (1_770_000_000 + h * 3_600, ())).collect();
        // Delays up to lateness + 1 hour: each event at most `lateness` behind.
        let delays: Vec<i64> = seed.iter().map(|s| (*s % (lateness_hours as u64 + 2)) as i64 * 3_600).collect();
        let mut w = Watermark::new(lateness);
        for (t, ()) in arrival_order(&items, &delays) {
            prop_assert_eq!(w.observe(EventTime(t)), Lateness::OnTime, "{} with watermark {:?}", t, w.current());
        }
        prop_assert_eq!(w.current(), Some(EventTime(items.last().unwrap().0 - lateness)));
    }
}

// ==================================================================== DST

/// 01:00 UTC on the last Sunday of `month` in `year`: when Swedish clocks
/// change (from the time-zone database, not from the crate).
fn dst_change(year: i32, month: u32) -> i64 {
    let last = NaiveDate::from_ymd_opt(year, month, 31).unwrap();
    let sunday = last - chrono::Duration::days(i64::from(last.weekday().num_days_from_sunday()));
    let instant = sunday.and_hms_opt(1, 0, 0).unwrap().and_utc().timestamp();
    let tz = chrono_tz::Europe::Stockholm;
    let offset = |t: i64| tz.timestamp_opt(t, 0).unwrap().offset().fix().local_minus_utc();
    assert_ne!(offset(instant - 1), offset(instant), "no change at {instant}");
    instant
}

/// The Swedish local day of an instant, as days since 1970-01-01, by the
/// time-zone database.
fn naive_local_day(t: i64) -> i32 {
    let local = chrono_tz::Europe::Stockholm.timestamp_opt(t, 0).unwrap().date_naive();
    (local - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

proptest! {
    #![proptest_config(config(256))]

    /// Minutes of events within three days of a DST change (either
    /// direction, 2024-2031), bucketed by `EventTime::day`, equal a
    /// per-event sum keyed by the local date from `chrono-tz`, day by day
    /// and over windows.
    #[test]
    fn day_buckets_across_dst_sum_like_a_per_event_computation(
        year in 2024i32..2032,
        autumn in any::<bool>(),
        events in proptest::collection::vec((-3 * DAY..3 * DAY, 1u32..600), 1..200),
    ) {
        let change = dst_change(year, if autumn { 10 } else { 3 });
        let mut ring: DayRing<u64> = DayRing::new(14);
        let mut naive: BTreeMap<i32, u64> = BTreeMap::new();
        for (offset, minutes) in &events {
            let t = EventTime(change + offset);
            *ring.bucket_mut(t.day()).expect("within 14 days") += u64::from(*minutes);
            *naive.entry(naive_local_day(t.0)).or_default() += u64::from(*minutes);
            prop_assert_eq!(t.local_day_and_minute().0, t.day());
        }
        let (first, last) = (naive_local_day(change - 3 * DAY) - 1, naive_local_day(change + 3 * DAY) + 1);
        for d in first..=last {
            prop_assert_eq!(ring.get(Day(d)), naive.get(&d).copied().unwrap_or(0), "local day {}", Day(d));
        }
        for end in first..=last {
            for len in [1u32, 2, 3, 7] {
                let expected: u64 = naive.range(end - len as i32 + 1..=end).map(|(_, v)| v).sum();
                prop_assert_eq!(ring.sum(Day(end), len, |b| *b), expected, "{} days ending {}", len, Day(end));
            }
        }
    }
}

/// Local midnights around each change: the day of the spring change is 23
/// hours long, the autumn one 25, every other day 24, and each day starts
/// at the instant `chrono-tz` gives for its local midnight.
#[test]
fn local_days_are_23_and_25_hours_long_on_dst_changes() {
    let tz = chrono_tz::Europe::Stockholm;
    for year in 2000..2100 {
        for month in [3, 10] {
            let change = dst_change(year, month);
            let changed = Day(naive_local_day(change));
            for d in changed.0 - 2..=changed.0 + 2 {
                let (day, next) = (Day(d), Day(d + 1));
                let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(i64::from(d));
                let midnight = tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap()).single().unwrap();
                assert_eq!(day.start().0, midnight.timestamp(), "start of {day}");
                let hours = (next.start().0 - day.start().0) / 3_600;
                let expected = match (d == changed.0, month) {
                    (false, _) => 24,
                    (true, 3) => 23,
                    (true, _) => 25,
                };
                assert_eq!(hours, expected, "length of {day}");
                assert_eq!(EventTime(day.start().0 - 1).day(), Day(d - 1));
            }
        }
    }
}

// ================================================================= Engine

/// Providers: two private ones and the municipality's own unit (2120…).
fn provider(i: u8) -> ProviderId {
    ProviderId::from_nine_digits([556_036_079, 556_677_889, 212_000_254][usize::from(i % 3)])
}

/// A fourth provider, for events that only move the clock.
fn provider_outside_the_scenario() -> ProviderId {
    ProviderId::from_nine_digits(559_001_234)
}

fn umea() -> MunicipalityCode {
    MunicipalityCode::parse("2480").unwrap()
}

/// Client homes: a few in Umeå, two 30–60 km away, so that the travel rules
/// have something to find.
fn home(client: u8) -> GeoPoint {
    const HOMES: [(f64, f64); 6] = [
        (63.8258, 20.2630),
        (63.8300, 20.3000),
        (63.8100, 20.2400),
        (63.8400, 20.2000),
        (64.1000, 20.5000),
        (63.5500, 19.7000),
    ];
    let (lat, lon) = HOMES[usize::from(client) % HOMES.len()];
    GeoPoint { lat, lon }
}

/// What a generated visit is made of.
#[derive(Debug, Clone)]
struct VisitSpec {
    provider: u8,
    client: u8,
    staff: u8,
    /// Minutes after the start of the scenario.
    start_minutes: i64,
    minutes: u32,
    method: u8,
    service: u8,
    /// Check-in this many hundred metres from home.
    away: u8,
}

/// 2026-03-16T00:00:00Z: scenarios of up to four weeks span the change to
/// summer time (29 March).
const T0: i64 = 1_773_619_200;

fn build_visit(n: usize, s: &VisitSpec) -> Visit {
    let check_in = EventTime(T0 + s.start_minutes * 60);
    let home = home(s.client);
    Visit {
        event_id: EventId::new(&format!("tr-{n}")),
        provider: provider(s.provider),
        municipality: umea(),
        client: ClientKey(u64::from(s.client)),
        staff: StaffKey(u64::from(s.staff)),
        service: ServiceType::ALL[usize::from(s.service) % 5],
        check_in,
        check_out: check_in.plus_secs(i64::from(s.minutes) * 60),
        method: [
            RegistrationMethod::Nfc,
            RegistrationMethod::MobileApp,
            RegistrationMethod::Manual,
            RegistrationMethod::Edited,
        ][usize::from(s.method) % 4],
        planned: Some(Minutes(s.minutes / 15 * 15)),
        client_home: Some(home),
        check_in_location: Some(GeoPoint { lat: home.lat + f64::from(s.away) * 0.0009, lon: home.lon }),
        household: None,
        reported_at: check_in.plus_secs(i64::from(s.minutes) * 60 + 60),
    }
}

/// Visits of 3 providers, 6 clients and 4 staff members over `days` days:
/// long days, night visits, overlapping visits and long trips, so that most
/// visit rules fire. Sorted by check-in.
fn visit_specs(days: i64, max_visits: usize) -> impl Strategy<Value = Vec<VisitSpec>> {
    proptest::collection::vec(
        (
            0u8..3,
            0u8..6,
            0u8..4,
            0..days * 1_440,
            5u32..600,
            any::<u8>(),
            any::<u8>(),
            prop_oneof![4 => Just(0u8), 1 => 0u8..100],
        ),
        1..max_visits,
    )
    .prop_map(|raw| {
        let mut specs: Vec<VisitSpec> = raw
            .into_iter()
            .map(|(provider, client, staff, start_minutes, minutes, method, service, away)| VisitSpec {
                provider,
                client,
                staff,
                start_minutes,
                minutes,
                method,
                service,
                away,
            })
            .collect();
        specs.sort_by_key(|s| s.start_minutes);
        specs
    })
}

/// Invoices of the scenario's months for each provider: lines for the
/// clients (some never visited), some minutes far above what was performed,
/// one client billed twice on some invoices.
fn invoices(seed: &[u32]) -> Vec<Invoice> {
    let mut out = Vec::new();
    let mut n = 0;
    for month in [Month::from_ym(2026, 3), Month::from_ym(2026, 4)] {
        for p in 0..3u8 {
            let s = seed[usize::from(p) + if month.0 % 2 == 0 { 0 } else { 3 }];
            let mut lines: Vec<InvoiceLine> = (0..8u8)
                .filter(|c| s >> c & 1 == 1)
                .map(|c| {
                    let minutes = 60 + (s >> (c + 8) & 0xff) * 40;
                    InvoiceLine {
                        client: ClientKey(u64::from(c)),
                        service: ServiceType::PersonalCare,
                        minutes: Minutes(minutes),
                        tariff_per_hour: Ore(42_600),
                        amount: Ore(u64::from(minutes) * 710),
                    }
                })
                .collect();
            if s >> 30 & 1 == 1
                && let Some(first) = lines.first().cloned()
            {
                lines.push(first);
            }
            n += 1;
            out.push(Invoice {
                invoice_id: EventId::new(&format!("inv-{n}")),
                provider: provider(p),
                municipality: umea(),
                period_start: month.start(),
                period_end: month.end(),
                // Issued on the 1st-5th of the next month.
                issued_at: month.end().plus_secs(i64::from(s % 5) * DAY + 8 * 3_600),
                total: Ore(lines.iter().map(|l| l.amount.0).sum()),
                lines,
            });
        }
    }
    out.sort_by_key(|i| i.issued_at);
    out
}

/// Runs events through a fresh engine: the alerts and each event's disposition.
fn run(config: &CoreConfig, events: &[DomainEvent]) -> (Vec<Alert>, Vec<Disposition>, Engine) {
    let mut engine = Engine::new(config.clone());
    let mut alerts = Vec::new();
    let dispositions = events.iter().map(|e| engine.process(e, &mut alerts)).collect();
    (alerts, dispositions, engine)
}

/// The episodes a run opened: (rule, provider).
fn opened(alerts: &[Alert]) -> BTreeSet<(&'static str, ProviderId)> {
    alerts.iter().filter(|a| a.status == AlertStatus::Opened).map(|a| (a.rule.id, a.provider)).collect()
}

/// A configuration with only the rules in `on` enabled.
fn only(on: &[&str]) -> CoreConfig {
    let mut config = CoreConfig::default();
    config.rules.disabled = catalogue::ALL.iter().filter(|r| !on.contains(&r.id)).map(|r| r.id.to_string()).collect();
    config
}

/// Property-test runner with a count of cases that had alerts, so that a
/// property about alerts is not vacuously true.
fn run_cases<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) -> (u32, u32) {
    let mut runner = TestRunner::new(config(cases));
    let (total, with_alerts) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let result = runner.run(&strategy, |value| {
        total.set(total.get() + 1);
        if test(value)? {
            with_alerts.set(with_alerts.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    (total.get(), with_alerts.get())
}

/// Events older than the allowed lateness (time reports and invoices),
/// slipped into a stream anywhere, are each reported late by exactly how
/// far they are behind, and change nothing: the same alerts, the same
/// counters of applied events, the same state as without them.
#[test]
fn late_events_are_reported_late_and_change_nothing() {
    let config = CoreConfig::default();
    let strategy = (
        visit_specs(21, 160),
        proptest::collection::vec(any::<u32>(), 6),
        proptest::collection::vec((any::<prop::sample::Index>(), 1i64..20 * DAY, any::<bool>()), 1..12),
    );
    let (total, with_alerts) = run_cases(128, strategy, |(specs, seed, late)| {
        let mut stream: Vec<DomainEvent> =
            specs.iter().enumerate().map(|(n, s)| DomainEvent::Visit(build_visit(n, s))).collect();
        // Invoices where their issue time falls among the visits.
        for invoice in invoices(&seed) {
            let at = stream.iter().position(|e| e.event_time() > invoice.issued_at).unwrap_or(stream.len());
            stream.insert(at, DomainEvent::Invoice(invoice));
        }
        let (alerts, _, engine) = run(&config, &stream);

        // Insert late events: behind the newest time of their input seen so
        // far by more than the lateness.
        let mut with_late = stream.clone();
        let mut expected_late = Vec::new();
        let mut inserted: Vec<(usize, DomainEvent)> = Vec::new();
        for (n, (index, behind, invoice)) in late.iter().enumerate() {
            let at = index.index(stream.len() + 1);
            let newest = |input: Input| {
                stream[..at]
                    .iter()
                    .filter(|e| {
                        matches!(
                            (e, input),
                            (DomainEvent::Visit(_), Input::TimeReports) | (DomainEvent::Invoice(_), Input::Invoices)
                        )
                    })
                    .map(|e| e.event_time().0)
                    .max()
            };
            let event = if *invoice {
                let Some(newest) = newest(Input::Invoices) else { continue };
                let issued = EventTime(newest - config.invoice_lateness_secs() - behind);
                let month = issued.month();
                DomainEvent::Invoice(Invoice {
                    invoice_id: EventId::new(&format!("late-inv-{n}")),
                    provider: provider(n as u8),
                    municipality: umea(),
                    period_start: Month(month.0 - 1).start(),
                    period_end: month.start(),
                    issued_at: issued,
                    lines: vec![InvoiceLine {
                        client: ClientKey(9),
                        service: ServiceType::Service,
                        minutes: Minutes(6_000),
                        tariff_per_hour: Ore(42_600),
                        amount: Ore(4_260_000),
                    }],
                    total: Ore(4_260_000),
                })
            } else {
                let Some(newest) = newest(Input::TimeReports) else { continue };
                let spec = VisitSpec {
                    provider: n as u8,
                    client: (n % 6) as u8,
                    staff: (n % 4) as u8,
                    start_minutes: (newest - config.visit_lateness_secs() - behind - T0) / 60,
                    minutes: 900,
                    method: 2,
                    service: 0,
                    away: 90,
                };
                let mut v = build_visit(1_000 + n, &spec);
                v.check_in = EventTime(newest - config.visit_lateness_secs() - behind);
                v.check_out = v.check_in.plus_secs(900 * 60);
                DomainEvent::Visit(v)
            };
            inserted.push((at, event));
        }
        // Insert from the back so that the indices stay valid.
        inserted.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        for (at, event) in inserted {
            let behind = match &event {
                DomainEvent::Visit(v) => {
                    let newest = stream[..at]
                        .iter()
                        .filter_map(|e| match e {
                            DomainEvent::Visit(v) => Some(v.check_in.0),
                            _ => None,
                        })
                        .max()
                        .unwrap();
                    newest - config.visit_lateness_secs() - v.check_in.0
                }
                DomainEvent::Invoice(i) => {
                    let newest = stream[..at]
                        .iter()
                        .filter_map(|e| match e {
                            DomainEvent::Invoice(i) => Some(i.issued_at.0),
                            _ => None,
                        })
                        .max()
                        .unwrap();
                    newest - config.invoice_lateness_secs() - i.issued_at.0
                }
                DomainEvent::Heartbeat(_) | DomainEvent::Reference(_) => {
                    unreachable!("only visits and invoices are made late")
                }
            };
            expected_late.push((event.event_id().cloned().expect("an event"), behind));
            with_late.insert(at, event);
        }

        let (late_alerts, dispositions, late_engine) = run(&config, &with_late);
        let mut reported: Vec<(EventId, i64)> = with_late
            .iter()
            .zip(&dispositions)
            .filter_map(|(e, d)| match d {
                Disposition::Late(l) => Some((e.event_id().cloned().expect("an event"), l.behind_secs)),
                _ => None,
            })
            .collect();
        reported.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        expected_late.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        prop_assert_eq!(reported, expected_late, "late events and how far behind");
        prop_assert_eq!(&late_alerts, &alerts, "a late event changed the alerts");
        let (a, b) = (engine.stats(), late_engine.stats());
        prop_assert_eq!(
            (a.visits, a.invoices, a.findings, a.days_closed),
            (b.visits, b.invoices, b.findings, b.days_closed)
        );
        prop_assert_eq!(engine.state_size(), late_engine.state_size());
        prop_assert_eq!(engine.watermark(), late_engine.watermark());
        Ok(!alerts.is_empty())
    });
    assert!(with_alerts * 2 >= total, "only {with_alerts} of {total} cases had alerts: the property is too weak");
}

/// Any interleaving of the time-report stream with the invoice stream (each
/// in its own order) gives byte-identical alerts: decisions are taken from
/// the data, not from the arrival interleaving (the engine's contract).
#[test]
fn interleaving_of_time_reports_and_invoices_does_not_change_alerts() {
    let config = CoreConfig::default();
    let strategy = (
        visit_specs(28, 200),
        proptest::collection::vec(any::<u32>(), 6),
        proptest::collection::vec(any::<prop::sample::Index>(), 6),
    );
    let (total, with_alerts) = run_cases(128, strategy, |(specs, seed, positions)| {
        let visits: Vec<DomainEvent> =
            specs.iter().enumerate().map(|(n, s)| DomainEvent::Visit(build_visit(n, s))).collect();
        let invoices: Vec<DomainEvent> = invoices(&seed).into_iter().map(DomainEvent::Invoice).collect();
        // Reference: all visits, then all invoices.
        let reference: Vec<DomainEvent> = visits.iter().chain(&invoices).cloned().collect();
        // Another: invoice k after a random number of visits (non-decreasing in k).
        let mut cuts: Vec<usize> = positions.iter().map(|i| i.index(visits.len() + 1)).collect();
        cuts.sort();
        let mut mixed = Vec::new();
        let mut v = visits.iter();
        let mut taken = 0;
        for (invoice, cut) in invoices.iter().zip(&cuts) {
            while taken < *cut {
                mixed.push(v.next().unwrap().clone());
                taken += 1;
            }
            mixed.push(invoice.clone());
        }
        mixed.extend(v.cloned());
        // Both end with a time report of another provider two days after
        // everything else, so that every invoice complete by then has been
        // reconciled in both: the property is about which alerts, not about
        // when they come out (see
        // `invoices_waiting_for_the_first_time_report_are_reconciled_once_complete`).
        let last = visits.iter().chain(&invoices).map(|e| e.event_time()).max().unwrap();
        let mut clock = build_visit(99_999, &specs[0]);
        (clock.provider, clock.client, clock.staff) = (provider_outside_the_scenario(), ClientKey(99), StaffKey(99));
        clock.check_in = last.plus_secs(2 * DAY);
        clock.check_out = clock.check_in.plus_secs(600);
        clock.reported_at = clock.check_out;
        let (reference, mixed) = (
            [reference, vec![DomainEvent::Visit(clock.clone())]].concat(),
            [mixed, vec![DomainEvent::Visit(clock)]].concat(),
        );
        // The same alerts; their sequence follows arrival (an invoice's
        // alerts come out when it is reconciled), so compare them by id.
        let by_id = |mut alerts: Vec<Alert>| {
            alerts.sort_by(|x, y| x.alert_id.cmp(&y.alert_id));
            alerts
        };
        let a = by_id(run(&config, &reference).0);
        let b = by_id(run(&config, &mixed).0);
        prop_assert_eq!(&a, &b);
        Ok(a.iter()
            .any(|x| x.rule.id.contains("bill") || x.rule.id.contains("invoice") || x.rule.id.contains("phantom")))
    });
    assert!(with_alerts * 2 >= total, "only {with_alerts} of {total} cases had invoice alerts");
}

/// Visits arriving out of order, each at most the allowed visit lateness
/// behind the newest one, are all applied and open the same episodes
/// (rule, provider) as in order, for the rules whose statistic does not
/// depend on the arrival order within the lateness: overlaps of a staff
/// member's visits, and check-ins away from home. Each staff member works
/// for one provider here: across providers, who is accused depends on the
/// staff member's recent visits in arrival order (`rules::attribution`), by
/// design. (Rules over day windows of counts, such as
/// `night-visits-private-provider`, do depend on the order: see
/// `night_visits_reordered_within_the_lateness_are_still_found`.)
#[test]
fn out_of_order_visits_within_the_lateness_open_the_same_episodes() {
    let config = only(&["staff-double-booking", "check-in-away-from-home"]);
    let lateness = config.visit_lateness_secs();
    let strategy = (visit_specs(14, 120), proptest::collection::vec(any::<u64>(), 120));
    let (total, with_alerts) = run_cases(512, strategy, |(specs, seed)| {
        let items: Vec<(i64, VisitSpec)> = specs
            .iter()
            .map(|s| (T0 + s.start_minutes * 60, VisitSpec { provider: s.staff % 3, ..s.clone() }))
            .collect();
        // Delays up to lateness + 1: each visit at most `lateness` behind.
        let delays: Vec<i64> = seed.iter().map(|s| (*s % (lateness as u64 + 2)) as i64).collect();
        let in_order: Vec<DomainEvent> =
            items.iter().enumerate().map(|(n, (_, s))| DomainEvent::Visit(build_visit(n, s))).collect();
        // The same visits (same ids) in arrival order.
        let numbered: Vec<(i64, usize)> = items.iter().enumerate().map(|(n, (t, _))| (*t, n)).collect();
        let shuffled: Vec<DomainEvent> =
            arrival_order(&numbered, &delays).into_iter().map(|(_, n)| in_order[n].clone()).collect();
        let (a, _, _) = run(&config, &in_order);
        let (b, dispositions, _) = run(&config, &shuffled);
        prop_assert!(
            dispositions.iter().all(|d| *d == Disposition::Applied),
            "a visit within the lateness was not applied"
        );
        prop_assert_eq!(opened(&a), opened(&b));
        Ok(!a.is_empty())
    });
    assert!(with_alerts * 2 >= total, "only {with_alerts} of {total} cases had alerts");
}

/// Known deviation (reported, not fixed): three night visits by a private
/// provider within seven days (the rule's default threshold) are found when
/// they arrive in order, but not when the last one arrives first, although
/// all three are within the allowed lateness (72 h) of each other: the rule
/// counts the window ending at each arriving visit's day, so no arrival
/// sees all three. Run with `cargo test --test window_properties -- --ignored`.
#[test]
#[ignore = "known deviation: night-visit windows depend on the arrival order within the lateness"]
fn night_visits_reordered_within_the_lateness_are_still_found() {
    let config = only(&["night-visits-private-provider"]);
    // 23:30 local on 16, 17 and 18 March 2026 (22:30 UTC), provider 0 (private).
    let night = |n: usize, day: i64| {
        let spec = VisitSpec {
            provider: 0,
            client: n as u8,
            staff: n as u8,
            start_minutes: day * 1_440 + 22 * 60 + 30,
            minutes: 30,
            method: 0,
            service: 0,
            away: 0,
        };
        DomainEvent::Visit(build_visit(n, &spec))
    };
    let in_order = [night(0, 0), night(1, 1), night(2, 2)];
    let last_first = [night(2, 2), night(0, 0), night(1, 1)];
    let (a, dispositions_a, _) = run(&config, &in_order);
    let (b, dispositions_b, _) = run(&config, &last_first);
    assert!(dispositions_a.iter().chain(&dispositions_b).all(|d| *d == Disposition::Applied));
    assert_eq!(opened(&a).len(), 1, "in order, the pattern is found");
    assert_eq!(opened(&a), opened(&b), "the same visits, the last one first");
}

/// Known deviation (reported, not fixed): invoices that arrive before the
/// first time report wait, after it, until the time-report watermark
/// crosses another local midnight, even when their period is already
/// complete: the first time report only starts the day-closing clock, and
/// waiting invoices are reconciled only when a day closes. In the reverse
/// order (time report first) the invoice is reconciled on arrival. At the
/// end of a replayed file, such an invoice is never reconciled.
#[test]
#[ignore = "known deviation: complete invoices wait for the next day close after the first time report"]
fn invoices_waiting_for_the_first_time_report_are_reconciled_once_complete() {
    let config = only(&["phantom-clients"]);
    let march = Month::from_ym(2026, 3);
    let invoice = DomainEvent::Invoice(Invoice {
        invoice_id: EventId::new("inv-1"),
        provider: provider(0),
        municipality: umea(),
        period_start: march.start(),
        period_end: march.end(),
        issued_at: march.end().plus_secs(DAY),
        lines: vec![InvoiceLine {
            client: ClientKey(7),
            service: ServiceType::PersonalCare,
            minutes: Minutes(600),
            tariff_per_hour: Ore(42_600),
            amount: Ore(426_000),
        }],
        total: Ore(426_000),
    });
    // A time report that puts the watermark past the end of March.
    let spec =
        VisitSpec { provider: 1, client: 0, staff: 0, start_minutes: 0, minutes: 30, method: 0, service: 0, away: 0 };
    let mut visit = build_visit(0, &spec);
    visit.check_in = march.end().plus_secs(config.visit_lateness_secs() + 3_600);
    visit.check_out = visit.check_in.plus_secs(1_800);
    visit.reported_at = visit.check_out;
    let visit = DomainEvent::Visit(visit);

    let (report_first, _, engine_a) = run(&config, &[visit.clone(), invoice.clone()]);
    let (invoice_first, _, engine_b) = run(&config, &[invoice, visit]);
    assert!(engine_a.watermark().unwrap() >= march.end());
    assert_eq!(opened(&report_first).len(), 1, "time report first: reconciled on arrival");
    assert_eq!(engine_b.state_size().pending_invoices, 0, "invoice first: still waiting");
    assert_eq!(opened(&invoice_first), opened(&report_first));
}
