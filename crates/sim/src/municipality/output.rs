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

/// How far past the newest check-in the heartbeat at the end of a scenario
/// is: beyond the default allowed lateness of time reports (3 days) and of
/// invoices (10 days), so that every partition decides everything.
pub const FINAL_HEARTBEAT_SECS: i64 = 14 * 86_400;

/// A source heartbeat at `at` (see `tillsyn.v1.SourceHeartbeat`).
pub(super) fn heartbeat(at: i64) -> wire::Event {
    wire::Event { kind: Some(wire::event::Kind::Heartbeat(wire::SourceHeartbeat { at: Some(ts(at)) })) }
}

/// Buffers events until the simulation has passed their arrival time.
/// After each day's events it hands over a source heartbeat at the newest
/// check-in handed over (as a source adapter would: no record sent later
/// is more than the allowed lateness behind it), and after the last one a
/// heartbeat [`FINAL_HEARTBEAT_SECS`] later (the end of the export).
pub(super) struct Outbox<'s> {
    buf: BTreeMap<(i64, u64), wire::Event>,
    seq: u64,
    sink: &'s mut dyn FnMut(&wire::Event) -> Result<()>,
    /// Latest arrival time pushed.
    pub last: i64,
    /// Newest check-in handed over.
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

    /// Hands over every event arriving before `t`, then a heartbeat.
    pub fn flush_before(&mut self, t: i64) -> Result<()> {
        while let Some(entry) = self.buf.first_entry() {
            if entry.key().0 >= t {
                break;
            }
            let event = entry.remove();
            if let Some(wire::event::Kind::TimeReport(r)) = &event.kind {
                let check_in = r.check_in.as_ref().map_or(i64::MIN, |c| c.seconds);
                self.clock = Some(self.clock.map_or(check_in, |c| c.max(check_in)));
            }
            (self.sink)(&event)?;
        }
        if let Some(clock) = self.clock {
            (self.sink)(&heartbeat(clock))?;
        }
        Ok(())
    }

    /// Hands over everything, then the final heartbeat.
    pub fn flush_all(&mut self) -> Result<()> {
        self.flush_before(i64::MAX)?;
        if let Some(clock) = self.clock {
            (self.sink)(&heartbeat(clock + FINAL_HEARTBEAT_SECS))?;
        }
        Ok(())
    }
}
