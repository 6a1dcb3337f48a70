//! One provider's day: visit requests are handed to the staff on duty in
//! time order, and each performed visit becomes a time report.
//!
//! The assignment is greedy: each request (by preferred start) goes to the
//! staff member who can be there soonest, counting the drive from where
//! they last were; nearer staff win ties, so routes stay local. A visit may
//! start up to 5 minutes early and up to its latest start late; otherwise it
//! is cancelled (not performed). The *reported* times (after manual
//! rounding or edits) are what occupy the staff member, so no two reports of
//! one honest staff member overlap and every drive between them fits.

use super::geo::{self, Geo};
use super::rng::Rng;
use tillsyn_core::model::{RegistrationMethod, ServiceType};

/// Fraud scenarios a record is evidence of (at most two).
pub(super) type Flags = [Option<usize>; 2];

/// Adds scenario `s` to `flags`.
pub(super) fn flag(flags: &mut Flags, s: usize) {
    if flags.contains(&Some(s)) {
        return;
    }
    if let Some(slot) = flags.iter_mut().find(|f| f.is_none()) {
        *slot = Some(s);
    }
}

/// One client's share of a visit.
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub client: usize,
    pub planned: u32,
}

/// A visit to be performed: one client, or a couple in one slot.
#[derive(Debug, Clone)]
pub(super) struct Request {
    /// Preferred start (UTC seconds).
    pub pref: i64,
    /// Latest acceptable start.
    pub latest: i64,
    pub service: ServiceType,
    pub home: Geo,
    pub parts: Vec<Part>,
    /// Two staff (double staffing).
    pub double: bool,
    /// A registered visit that never happened (pattern 6): manual, exactly
    /// the planned time, typed on a five-minute mark.
    pub ghost: bool,
    /// Leave `planned_minutes` out of the report (unscheduled visit).
    pub unplanned: bool,
    pub flags: Flags,
}

/// A staff member's working day as the scheduler sees it.
#[derive(Debug, Clone)]
pub(super) struct Duty {
    pub staff: usize,
    pub start: i64,
    pub end: i64,
    pub free_at: i64,
    pub loc: Geo,
    /// The 30-minute break is taken in the first idle half hour after
    /// `break_from`, or forced once the staff member is free after
    /// `break_at`.
    pub break_from: i64,
    pub break_at: i64,
    pub break_taken: bool,
}

impl Duty {
    pub fn new(staff: usize, start: i64, end: i64, loc: Geo) -> Self {
        let long = end - start >= 6 * 3600;
        Duty {
            staff,
            start,
            end,
            free_at: start,
            loc,
            break_from: start + 2 * 3600,
            break_at: if long { start + 5 * 3600 } else { i64::MAX },
            break_taken: !long,
        }
    }

    fn ready(&self) -> i64 {
        if !self.break_taken && self.free_at >= self.break_at { self.free_at + 1800 } else { self.free_at }
    }
}

/// A time report before it gets its id and arrival time.
#[derive(Debug, Clone)]
pub(super) struct Rec {
    pub provider: usize,
    pub client: usize,
    pub staff: usize,
    pub service: ServiceType,
    pub check_in: i64,
    pub check_out: i64,
    pub method: RegistrationMethod,
    pub planned: Option<u32>,
    pub loc: Option<Geo>,
    pub flags: Flags,
}

/// How a provider registers visits today.
#[derive(Debug, Clone)]
pub(super) struct RegCtx {
    pub manual: f64,
    pub edited_fraction: f64,
    pub mobile: f64,
    pub positions: bool,
    /// Pattern 5: (scenario, current total share of manual/edited).
    pub fraud5: Option<(usize, f64)>,
}

/// The registered times of one visit.
#[derive(Debug, Clone)]
pub(super) struct Registered {
    pub check_in: i64,
    pub check_out: i64,
    pub method: RegistrationMethod,
    pub loc: Option<Geo>,
    pub fraud5: Option<usize>,
}

/// Actual duration of a visit planned at `planned` minutes, in seconds:
/// planned times a factor around 0.97 (sd 13 %); shifts of 4 h and more
/// within -6/+3 %.
pub(super) fn actual_secs(rng: &mut Rng, planned: u32) -> i64 {
    let p = f64::from(planned) * 60.0;
    let factor = if planned >= 240 {
        // Shifts: a few minutes either way.
        (0.99 + 0.02 * rng.normal()).clamp(0.94, 1.03)
    } else {
        (0.97 + 0.13 * rng.normal()).clamp(0.55, 1.5)
    };
    ((p * factor) as i64).max(180)
}

/// Registers a visit by a staff member who is at the door at `arrival`.
pub(super) fn register(rng: &mut Rng, ctx: &RegCtx, arrival: i64, planned: u32, home: Geo, ghost: bool) -> Registered {
    if ghost {
        let check_in = geo::ceil_to(arrival, 300);
        return Registered {
            check_in,
            check_out: check_in + i64::from(planned) * 60,
            method: RegistrationMethod::Manual,
            loc: None,
            fraud5: None,
        };
    }
    let u = rng.unit();
    let (manual_kind, fraud5) = match ctx.fraud5 {
        Some((s, q)) if u < q.max(ctx.manual) => (true, (u >= ctx.manual).then_some(s)),
        _ => (u < ctx.manual, None),
    };
    let actual = actual_secs(rng, planned);
    let device_loc = |rng: &mut Rng, sd: f64, max: f64| ctx.positions.then(|| home.jitter(rng, sd, max));
    if !manual_kind {
        let method = if u < ctx.manual + ctx.mobile { RegistrationMethod::MobileApp } else { RegistrationMethod::Nfc };
        let check_in = arrival + rng.int(0, 60);
        let loc = match method {
            RegistrationMethod::MobileApp => device_loc(rng, 20.0, 70.0),
            _ => device_loc(rng, 8.0, 30.0),
        };
        return Registered { check_in, check_out: check_in + actual, method, loc, fraud5 };
    }
    if rng.chance(ctx.edited_fraction) {
        // A device registration whose check-out was edited afterwards.
        let check_in = arrival + rng.int(0, 60);
        let check_out = if fraud5.is_some() {
            geo::ceil_to(check_in + actual, 300) + 300 * rng.int(1, 4)
        } else {
            geo::round_to(check_in + actual, 300).max(check_in + 300)
        };
        let loc = device_loc(rng, 8.0, 30.0);
        Registered { check_in, check_out, method: RegistrationMethod::Edited, loc, fraud5 }
    } else {
        // Typed by hand: whole minutes, often the planned time.
        let check_in = geo::ceil_to(arrival, if rng.chance(0.6) { 60 } else { 300 });
        let duration = if fraud5.is_some() {
            geo::round_to(actual, 300).max(300) + 300 * rng.int(1, 3)
        } else if rng.chance(0.35) {
            i64::from(planned) * 60
        } else {
            geo::round_to(actual, 300).max(300)
        };
        Registered { check_in, check_out: check_in + duration, method: RegistrationMethod::Manual, loc: None, fraud5 }
    }
}

/// What happened to a day's requests.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Outcome {
    pub performed: u32,
    pub cancelled: u32,
}

const EARLY: i64 = 300;
const OVERTIME: i64 = 20 * 60;

/// Assigns `reqs` to `duties` and appends the time reports to `out`.
pub(super) fn assign(
    rng: &mut Rng,
    duties: &mut [Duty],
    mut reqs: Vec<Request>,
    ctx: &RegCtx,
    provider: usize,
    out: &mut Vec<Rec>,
) -> Outcome {
    reqs.sort_by_key(|r| r.pref);
    let mut outcome = Outcome::default();
    for r in reqs {
        let longest = r.parts.iter().map(|p| i64::from(p.planned)).max().unwrap_or(0) * 60;
        let needed = if r.double { 2 } else { 1 };
        // The best `needed` candidates by cost: (cost, index, start).
        let mut best: Vec<(i64, usize, i64)> = Vec::with_capacity(3);
        for (i, d) in duties.iter().enumerate() {
            let travel = geo::travel_secs(d.loc, r.home);
            let arrival = (d.ready() + travel).max(d.start);
            let start = arrival.max(r.pref - EARLY);
            if start > r.latest || start + longest > d.end + OVERTIME {
                continue;
            }
            let cost = (start - r.pref).max(0) + travel / 2;
            let pos = best.iter().position(|b| cost < b.0).unwrap_or(best.len());
            if pos < needed {
                best.insert(pos, (cost, i, start));
                best.truncate(needed);
            }
        }
        if best.len() < needed {
            outcome.cancelled += 1;
            continue;
        }
        outcome.performed += 1;
        let start = best.iter().map(|b| b.2).max().unwrap_or(r.pref);
        let mut reg_rng_arrivals: Vec<(usize, i64)> = Vec::with_capacity(2);
        for (k, b) in best.iter().enumerate() {
            reg_rng_arrivals.push((b.1, start + if k == 0 { 0 } else { rng.int(0, 120) }));
        }
        for (duty_index, arrival) in reg_rng_arrivals {
            let mut end = arrival;
            let mut part_arrival = arrival;
            for (k, part) in r.parts.iter().enumerate() {
                if k > 0 {
                    part_arrival += rng.int(0, 90);
                }
                let reg = register(rng, ctx, part_arrival, part.planned, r.home, r.ghost);
                end = end.max(reg.check_out);
                let mut flags = r.flags;
                if let Some(s) = reg.fraud5 {
                    flag(&mut flags, s);
                }
                out.push(Rec {
                    provider,
                    client: part.client,
                    staff: duties[duty_index].staff,
                    service: r.service,
                    check_in: reg.check_in,
                    check_out: reg.check_out,
                    method: reg.method,
                    planned: (!r.unplanned).then_some(part.planned),
                    loc: reg.loc,
                    flags,
                });
            }
            let d = &mut duties[duty_index];
            let idle = arrival - geo::travel_secs(d.loc, r.home) - d.free_at;
            if d.ready() > d.free_at || (d.free_at >= d.break_from && idle >= 1800) {
                d.break_taken = true;
            }
            d.free_at = end + rng.int(60, 240);
            d.loc = r.home;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::municipality::geo::CENTRE;

    fn ctx() -> RegCtx {
        RegCtx { manual: 0.3, edited_fraction: 0.5, mobile: 0.1, positions: true, fraud5: None }
    }

    #[test]
    fn one_staff_member_never_overlaps_and_always_has_time_to_drive() {
        let mut rng = Rng::new(5, &[]);
        let homes: Vec<Geo> =
            (0..40).map(|i| CENTRE.offset_m(f64::from(i) * 137.0, f64::from(i % 7) * 611.0)).collect();
        let reqs: Vec<Request> = (0..40)
            .map(|i| Request {
                pref: 7 * 3600 + i64::from(i) * 600,
                latest: 7 * 3600 + i64::from(i) * 600 + 3 * 3600,
                service: ServiceType::PersonalCare,
                home: homes[i as usize],
                parts: vec![Part { client: i as usize, planned: 25 }],
                double: i % 9 == 0,
                ghost: false,
                unplanned: false,
                flags: [None; 2],
            })
            .collect();
        let mut duties = vec![Duty::new(0, 7 * 3600, 16 * 3600, CENTRE), Duty::new(1, 7 * 3600, 16 * 3600, CENTRE)];
        let mut out = Vec::new();
        let outcome = assign(&mut rng, &mut duties, reqs, &ctx(), 0, &mut out);
        assert!(outcome.performed > 10 && outcome.cancelled > 0);
        for staff in 0..2 {
            let mut mine: Vec<&Rec> = out.iter().filter(|r| r.staff == staff).collect();
            mine.sort_by_key(|r| r.check_in);
            for w in mine.windows(2) {
                let drive = geo::travel_secs(homes[w[0].client], homes[w[1].client]);
                assert!(w[1].check_in >= w[0].check_out + drive, "{:?} {:?}", w[0], w[1]);
            }
        }
    }

    #[test]
    fn ghost_visits_last_exactly_the_planned_time() {
        let mut rng = Rng::new(1, &[]);
        let r = register(&mut rng, &ctx(), 1_000_123, 45, CENTRE, true);
        assert_eq!((r.check_out - r.check_in, r.check_in % 300), (2700, 0));
        assert_eq!(r.method, RegistrationMethod::Manual);
    }
}
