//! Wire messages and the arrival-order buffer.
//!
//! Events are buffered in a `BTreeMap` keyed by (arrival time, sequence
//! number) and handed to the sink once the day loop has passed their
//! arrival time, so the sink sees them in the order a stream would carry
//! them (time reports by `reported_at`, invoices by `issued_at`; ties in
//! creation order) while memory holds only a couple of days.

use std::collections::BTreeMap;

use anyhow::Result;
use pbjson_types::Timestamp;

use super::engine::World;
use super::geo::Geo;
use super::schedule::Rec;
use tillsyn_core::model::{RegistrationMethod, ServiceType};
use tillsyn_core::proto::v1 as wire;

/// A protobuf timestamp of whole seconds.
pub(super) fn ts(secs: i64) -> Timestamp {
    Timestamp { seconds: secs, nanos: 0 }
}

pub(super) fn service(s: ServiceType) -> i32 {
    (match s {
        ServiceType::PersonalCare => wire::ServiceType::PersonalCare,
        ServiceType::Service => wire::ServiceType::Service,
        ServiceType::Escort => wire::ServiceType::Escort,
        ServiceType::DoubleStaffing => wire::ServiceType::DoubleStaffing,
        ServiceType::PersonalAssistance => wire::ServiceType::PersonalAssistance,
        ServiceType::NightPatrol => wire::ServiceType::NightPatrol,
    }) as i32
}

fn method(m: RegistrationMethod) -> i32 {
    (match m {
        RegistrationMethod::Nfc => wire::RegistrationMethod::Nfc,
        RegistrationMethod::MobileApp => wire::RegistrationMethod::MobileApp,
        RegistrationMethod::Manual => wire::RegistrationMethod::Manual,
        RegistrationMethod::Edited => wire::RegistrationMethod::Edited,
    }) as i32
}

fn point(g: Geo) -> wire::GeoPoint {
    // Six decimals (about 0.1 m) as a time-registration system would send.
    let round6 = |x: f64| (x * 1e6).round() / 1e6;
    wire::GeoPoint { latitude: round6(g.lat), longitude: round6(g.lon) }
}

/// The wire time report of `rec`.
pub(super) fn time_report(w: &World, rec: &Rec, event_id: String, reported_at: i64) -> wire::Event {
    let client = &w.clients[rec.client];
    let provider = &w.providers[rec.provider];
    wire::Event {
        kind: Some(wire::event::Kind::TimeReport(wire::TimeReport {
            event_id,
            provider_id: provider.id.clone(),
            municipality_code: w.cfg.municipality_code.clone(),
            client_ref: client.r.clone(),
            staff_ref: w.staff[rec.staff].r.clone(),
            service_type: service(rec.service),
            check_in: Some(ts(rec.check_in)),
            check_out: Some(ts(rec.check_out)),
            registration_method: method(rec.method),
            planned_minutes: rec.planned,
            client_home: provider.sends_home.then(|| point(client.home)),
            check_in_location: rec.loc.map(point),
            household_ref: client.household.clone(),
            reported_at: Some(ts(reported_at)),
        })),
    }
}

/// How far past the last arrival the heartbeat at the end of a scenario
/// is: beyond the default allowed lateness of time reports (3 days) and of
/// invoices (10 days), so that every partition decides everything.
pub const FINAL_HEARTBEAT_SECS: i64 = 14 * 86_400;

/// A source heartbeat at `at` (see `tillsyn.v1.SourceHeartbeat`).
pub(super) fn heartbeat(at: i64) -> wire::Event {
    wire::Event { kind: Some(wire::event::Kind::Heartbeat(wire::SourceHeartbeat { at: Some(ts(at)) })) }
}

/// Buffers events until the simulation has passed their arrival time.
/// It hands over a source heartbeat, as a source adapter with a clock
/// would, at the start of every hour of arrival time in which an event
/// arrives (before that event) and at the end of each day's events (at the
/// day's end): the time up to which the source has delivered everything.
/// So no record sent later is more than the allowed lateness behind a
/// heartbeat (reports arrive at most 36 h after their check-out), and none
/// is ahead of the next one. After the last event, a heartbeat
/// [`FINAL_HEARTBEAT_SECS`] later (the end of the export).
pub(super) struct Outbox<'s> {
    buf: BTreeMap<(i64, u64), wire::Event>,
    seq: u64,
    sink: &'s mut dyn FnMut(&wire::Event) -> Result<()>,
    /// Latest arrival time pushed.
    pub last: i64,
    /// The last heartbeat handed over.
    clock: Option<i64>,
}

impl<'s> Outbox<'s> {
    pub fn new(sink: &'s mut dyn FnMut(&wire::Event) -> Result<()>) -> Self {
        Outbox { buf: BTreeMap::new(), seq: 0, sink, last: i64::MIN, clock: None }
    }

    /// Queues `event` arriving at `at`.
    pub fn push(&mut self, at: i64, event: wire::Event) {
        self.buf.insert((at, self.seq), event);
        self.seq += 1;
        self.last = self.last.max(at);
    }

    /// A heartbeat at `at` unless one at or after it was handed over.
    fn heartbeat(&mut self, at: i64) -> Result<()> {
        if self.clock.is_none_or(|c| at > c) {
            self.clock = Some(at);
            (self.sink)(&heartbeat(at))?;
        }
        Ok(())
    }

    /// Hands over every event arriving before `t`, then a heartbeat at `t`.
    pub fn flush_before(&mut self, t: i64) -> Result<()> {
        while let Some(entry) = self.buf.first_entry() {
            if entry.key().0 >= t {
                break;
            }
            let hour_start = entry.key().0.div_euclid(3600) * 3600;
            let event = entry.remove();
            self.heartbeat(hour_start)?;
            (self.sink)(&event)?;
        }
        if t != i64::MAX && self.clock.is_some() {
            self.heartbeat(t)?;
        }
        Ok(())
    }

    /// Hands over everything, then the final heartbeat.
    pub fn flush_all(&mut self) -> Result<()> {
        self.flush_before(i64::MAX)?;
        if let Some(clock) = self.clock {
            self.heartbeat(clock.max(self.last) + FINAL_HEARTBEAT_SECS)?;
        }
        Ok(())
    }
}
