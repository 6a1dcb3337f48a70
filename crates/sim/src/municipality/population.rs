//! The actors: providers, clients with their care plans, and staff.
//!
//! Providers are drawn once at the start. Clients are drawn at the start and
//! whenever one arrives later; each gets a care plan derived from a need
//! (a granted number of hours per month per service type) and a home on the
//! map. Staff are hired by the day loop as the demand of a provider requires.

use std::collections::{BTreeSet, HashSet};

use super::config::SimConfig;
use super::geo::{self, CENTRE, Geo};
use super::rng::Rng;
use tillsyn_core::model::{Day, ProviderId, ServiceType};

/// What a provider does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The municipality's own unit: home care in the whole municipality and
    /// the only night patrol.
    Municipal,
    /// A private home-care company (LOV), daytime only (06–22).
    HomeCare,
    /// A personal-assistance company.
    Assistance,
}

/// A provider and the habits of its time-registration and invoicing.
#[derive(Debug, Clone)]
pub(super) struct Provider {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub large: bool,
    /// Serves the whole municipality rather than the town only.
    pub whole_area: bool,
    pub office: Geo,
    /// Clients at the start.
    pub initial_clients: u32,
    /// Honest share of manual or edited registrations (2–10 %).
    pub manual_share: f64,
    /// Of those, the share that are edited device registrations.
    pub edited_fraction: f64,
    /// Share of mobile-app registrations (no door event).
    pub mobile_share: f64,
    /// The time-registration system exports the client's home.
    pub sends_home: bool,
    /// It exports the check-in position.
    pub sends_positions: bool,
    /// Bills each visit rounded up to whole five minutes.
    pub rounds_up: bool,
    /// Probability that a day's reports arrive in one late batch.
    pub late_batch_rate: f64,
    /// Legitimate extra growth of clients per month.
    pub extra_growth: f64,
    /// Its new clients' needs against the usual plans (1; 1.3–1.5 at a
    /// provider with heavier clients, honestly, and granted so).
    pub plan_scale: f64,
    /// Days its lock and tag system is down (first day, days): every visit
    /// typed by hand.
    pub outage: Option<(Day, i32)>,
    /// Habitual invoicing day of the following month (3–8).
    pub issue_day: u32,
}

/// A recurring care visit in a client's daily schedule.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    /// Preferred start, minutes after local midnight.
    pub minute: i64,
    pub planned: u32,
    /// Needs two staff (double staffing).
    pub double: bool,
}

/// A weekly or fortnightly service visit (cleaning, shopping).
#[derive(Debug, Clone)]
pub(super) struct ServiceSlot {
    /// 0 = Monday.
    pub weekday: u32,
    pub minute: i64,
    pub planned: u32,
    /// Every other week, in weeks of this parity.
    pub fortnightly: Option<u32>,
}

/// A home-care client's schedule.
#[derive(Debug, Clone, Default)]
pub(super) struct HomePlan {
    pub slots: Vec<Slot>,
    pub service: Vec<ServiceSlot>,
    /// Probability of an escort on a weekday.
    pub escort_rate: f64,
    pub escort_minutes: u32,
    /// Night-patrol visits, minutes after the evening's local midnight
    /// (1320–1800, i.e. 22:00–06:00).
    pub night: Vec<Slot>,
}

/// A personal-assistance client's shifts and team of assistants.
#[derive(Debug, Clone)]
pub(super) struct AssistPlan {
    /// (start minute, length in minutes) of each shift of a working day.
    pub shifts: Vec<(i64, u32)>,
    /// Days of the week with shifts, 0 = Monday.
    pub weekdays: [bool; 7],
    /// Staff indices of the assistants, in rotation order.
    pub team: Vec<usize>,
    /// Shifts handed out so far (drives the rotation).
    pub counter: usize,
}

#[derive(Debug, Clone)]
pub(super) enum Plan {
    Home(HomePlan),
    Assist(AssistPlan),
}

/// A client (brukare). `r` is the source system's reference: personal data,
/// only ever written into events.
#[derive(Debug, Clone)]
pub(super) struct Client {
    pub r: String,
    pub provider: usize,
    pub home: Geo,
    pub household: Option<String>,
    /// The other client of a couple, while both are clients.
    pub partner: Option<usize>,
    pub plan: Plan,
    /// Granted minutes per month per service type (the municipality's
    /// decision); the plan schedules about 90 % of it.
    pub granted: [u32; 6],
    pub from: Day,
    /// First day without service (departure).
    pub until: Option<Day>,
    /// In hospital before this day.
    pub absent_until: Day,
    /// The fraud scenario that brought the client in (pattern 9).
    pub origin: Option<usize>,
    /// The day the client last changed provider (`provider` is the new
    /// one from that day on).
    pub changed_on: Option<Day>,
}

impl Client {
    /// Receives services on `day`.
    pub fn present(&self, day: Day) -> bool {
        self.from <= day && self.until.is_none_or(|u| day < u) && day >= self.absent_until
    }

    /// Is a client on `day` (possibly in hospital).
    pub fn enrolled(&self, day: Day) -> bool {
        self.from <= day && self.until.is_none_or(|u| day < u)
    }

    pub fn home_plan(&self) -> Option<&HomePlan> {
        match &self.plan {
            Plan::Home(h) => Some(h),
            Plan::Assist(_) => None,
        }
    }
}

/// A staff member's kind of shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// From 06:30–07:30, 8.5 h.
    Morning,
    /// 13:00–13:30 to 21:30–22:00.
    Evening,
    /// Part time for the morning peak and lunch, 5.5 h from 07:00–07:30.
    MorningShort,
    /// Part time for the evening peak, 4.5 h up to 21:30–22:00.
    EveningShort,
    Night,
    Assistant,
    /// Hired by a fraudulent provider for unauthorised night visits.
    FraudNight,
    /// A client's relative, hired by a fraudulent provider to visit that
    /// client (pattern 13).
    Relative,
}

/// A staff member. `r` is personal data, only ever written into events.
#[derive(Debug, Clone)]
pub(super) struct Staff {
    pub r: String,
    pub provider: usize,
    pub role: Role,
    /// Days worked, one bit per day, bit 0 = today.
    pub history: u32,
    /// Shift start and end, minutes after local midnight (end may pass 1440).
    pub shift: (i64, i64),
    pub home: Geo,
    /// For the second job of a person with two employers: the staff
    /// member of their first job (same person, same reference). Called in
    /// only on days the first job is worked.
    pub second_job_of: Option<usize>,
}

impl Role {
    /// Works day or evening shifts in home care.
    pub fn home_care(self) -> bool {
        matches!(self, Role::Morning | Role::Evening | Role::MorningShort | Role::EveningShort)
    }
}

impl Staff {
    /// Can be called in today without working more than five days in any
    /// seven (so also never more than five in a row), and days off come at
    /// least two at a time (weekly rest; for night staff it also leaves a
    /// calendar day without visits).
    pub fn may_work(&self) -> bool {
        let single_day_off = self.history & 0b110 == 0b100;
        (self.history >> 1 & 0b11_1111).count_ones() <= 4 && !single_day_off
    }
}

/// Hands out unique opaque references.
#[derive(Debug, Default)]
pub(super) struct Refs(HashSet<String>);

impl Refs {
    pub fn fresh(&mut self, rng: &mut Rng, prefix: &str, digits: usize) -> String {
        loop {
            let r = format!("{prefix}{}", rng.hex(digits));
            if self.0.insert(r.clone()) {
                return r;
            }
        }
    }
}

/// Share of the granted time that a plan schedules.
pub(super) const PLAN_SHARE: f64 = 0.9;
/// Average days per month.
pub(super) const DAYS_PER_MONTH: f64 = 30.44;

const FIRST: [&str; 18] = [
    "Trygg",
    "Nära",
    "Omsorgs",
    "Björkens",
    "Älvens",
    "Norrlands",
    "Ljusa",
    "Solrosens",
    "Kära",
    "Varma",
    "Lugna",
    "Stjärn",
    "Lindens",
    "Tallbackens",
    "Hjärtats",
    "Vårdande",
    "Norrskens",
    "Kustens",
];
const SECOND_HOME: [&str; 6] = ["Hemtjänst", "Omsorg", "Vård & Omsorg", "Hemservice", "Omsorgspartner", "Hemvård"];
const SECOND_ASSIST: [&str; 3] = ["Assistans", "Assistanspartner", "Personlig Assistans"];

fn round5(x: f64) -> u32 {
    ((x / 5.0).round() * 5.0).max(0.0) as u32
}

/// Draws the providers: index 0 is the municipal unit, then large private
/// home-care companies, small ones, and personal-assistance companies.
pub(super) fn providers(cfg: &SimConfig, rng: &mut Rng) -> Vec<Provider> {
    let privates = cfg.providers - 1;
    let n_assist = if privates >= 6 && cfg.personal_assistance_share > 0.0 {
        (f64::from(privates) / 10.0).round().max(1.0) as u32
    } else {
        0
    };
    let n_home = privates - n_assist;
    let n_large = if n_home >= 6 { (f64::from(n_home) / 12.0).round().clamp(1.0, 5.0) as u32 } else { 0 };

    // Client counts at the start.
    let assist_clients = if n_assist > 0 {
        ((f64::from(cfg.clients) * cfg.personal_assistance_share).round() as u32).max(3 * n_assist)
    } else {
        0
    };
    let home_clients = cfg.clients - assist_clients;
    let municipal = ((f64::from(home_clients) * cfg.municipal_share).round() as u32).max(1);
    let weights: Vec<f64> =
        (0..n_home).map(|i| if i < n_large { rng.range(200.0, 400.0) } else { rng.range(10.0, 60.0) }).collect();
    let mut sizes = spread(home_clients - municipal, &weights);
    let assist_weights: Vec<f64> = (0..n_assist).map(|_| rng.range(5.0, 30.0)).collect();
    sizes.extend(spread(assist_clients, &assist_weights));

    let code: u64 = cfg.municipality_code.parse().unwrap_or(2480);
    let mut used = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(cfg.providers as usize);
    out.push(Provider {
        id: ProviderId::from_nine_digits(212_000_000 + code % 1000).to_string(),
        name: if code == 2480 {
            "Umeå kommun, hemtjänsten".to_string()
        } else {
            format!("Kommunens hemtjänst ({code:04})")
        },
        kind: Kind::Municipal,
        large: true,
        whole_area: true,
        office: CENTRE,
        initial_clients: municipal,
        manual_share: rng.range(0.03, 0.06),
        edited_fraction: rng.range(0.3, 0.6),
        mobile_share: rng.range(0.0, 0.03),
        sends_home: true,
        sends_positions: true,
        rounds_up: false,
        late_batch_rate: 0.0,
        extra_growth: 0.0,
        plan_scale: 1.0,
        outage: None,
        issue_day: rng.int(3, 6) as u32,
    });
    for (i, &size) in sizes.iter().enumerate() {
        let kind = if (i as u32) < n_home { Kind::HomeCare } else { Kind::Assistance };
        let large = (i as u32) < n_large;
        let nine = loop {
            let prefix = if rng.chance(0.6) { 556_000_000 } else { 559_000_000 };
            let n = prefix + rng.int(0, 999_999) as u64;
            if used.insert(n) {
                break n;
            }
        };
        let name = loop {
            let second = if kind == Kind::Assistance { SECOND_ASSIST[rng.below(3)] } else { SECOND_HOME[rng.below(6)] };
            let first = FIRST[rng.below(FIRST.len())];
            let candidate = if names.len() < 60 || rng.chance(0.5) {
                format!("{first} {second} AB")
            } else {
                format!("{first} {second} i Umeå {} AB", rng.int(2, 99))
            };
            if names.insert(candidate.clone()) {
                break candidate;
            }
        };
        let whole_area = large || kind == Kind::Assistance || rng.chance(0.4);
        out.push(Provider {
            id: ProviderId::from_nine_digits(nine).to_string(),
            name,
            kind,
            large,
            whole_area,
            office: geo::home(rng, true, 0.0),
            initial_clients: size,
            manual_share: rng.range(0.02, 0.10),
            edited_fraction: rng.range(0.25, 0.6),
            mobile_share: if rng.chance(0.5) { rng.range(0.0, 0.06) } else { 0.0 },
            sends_home: large || rng.chance(0.9),
            sends_positions: large || rng.chance(0.75),
            rounds_up: rng.chance(0.35),
            late_batch_rate: if rng.chance(0.3) { rng.range(0.02, 0.08) } else { 0.0 },
            extra_growth: 0.0,
            plan_scale: 1.0,
            outage: None,
            issue_day: rng.int(3, 8) as u32,
        });
    }
    out
}

/// Splits `total` in proportion to `weights`, at least 1 each.
fn spread(total: u32, weights: &[f64]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: f64 = weights.iter().sum();
    let mut sizes: Vec<u32> = weights.iter().map(|w| ((w / sum) * f64::from(total)).floor().max(1.0) as u32).collect();
    let mut assigned: u32 = sizes.iter().sum();
    let mut i = 0;
    let n = sizes.len();
    while assigned < total {
        sizes[i % n] += 1;
        assigned += 1;
        i += 1;
    }
    while assigned > total {
        let j = sizes.iter().enumerate().max_by_key(|(_, s)| **s).map_or(0, |(j, _)| j);
        sizes[j] -= 1;
        assigned -= 1;
    }
    sizes
}

/// Care-visit times by number of visits a day: (minute, weight of the
/// day's minutes).
const SLOT_TIMES: [&[(i64, f64)]; 6] = [
    &[(510, 1.0)],
    &[(480, 1.3), (1170, 1.0)],
    &[(465, 1.4), (720, 1.0), (1170, 1.0)],
    &[(450, 1.4), (705, 1.0), (990, 0.9), (1215, 1.0)],
    &[(435, 1.4), (630, 0.7), (750, 1.0), (1005, 0.9), (1230, 1.0)],
    &[(420, 1.4), (585, 0.7), (735, 1.0), (900, 0.7), (1050, 0.9), (1260, 0.9)],
];

/// Care slots for a daily time of `daily` minutes in `n` visits at the
/// usual times, each moved by a client-specific offset (morning visits
/// 07:00–09:45, evening ones up to 21:15, at least 75 minutes apart); no
/// visit longer than `cap` minutes (half that after 20:00).
pub(super) fn care_slots(n: usize, daily: f64, rng: &mut Rng, double: bool, cap: u32) -> Vec<Slot> {
    let n = n.clamp(1, 6);
    let table = SLOT_TIMES[n - 1];
    let total_w: f64 = table.iter().map(|(_, w)| w).sum();
    let last = table.len() - 1;
    let mut previous = i64::MIN;
    table
        .iter()
        .enumerate()
        .map(|(i, &(minute, w))| {
            let offset = if i == 0 { 5 * rng.int(-6, 15) } else { 5 * rng.int(-8, 8) };
            let minute = (minute + offset).max(previous.saturating_add(75)).clamp(420, 1275);
            previous = minute;
            let max = if minute >= 1200 { cap / 2 } else { cap };
            Slot {
                minute,
                planned: round5(daily * w / total_w).clamp(10, max),
                double: double && (i == 0 || i == last),
            }
        })
        .collect()
}

/// Draws a home-care plan and the granted minutes behind it.
pub(super) fn home_plan(rng: &mut Rng, cfg: &SimConfig) -> (HomePlan, [u32; 6]) {
    let service_only = rng.chance(0.22);
    let need_h = if service_only { 0.0 } else { rng.lognormal(22.5, 0.85).clamp(3.0, 200.0) };
    let mut plan = HomePlan::default();
    if need_h > 0.0 {
        let daily = need_h * 60.0 * PLAN_SHARE / DAYS_PER_MONTH;
        let n = ((daily / 22.0).round() as usize).clamp(1, 6);
        // Double staffing is for a few heavy clients (transfers with a
        // lift); about a tenth of clients need 55 h or more.
        let heavy_share = 0.10;
        let double = need_h >= 55.0 && n >= 3 && rng.chance(cfg.double_staffing_share / heavy_share);
        plan.slots = care_slots(n, daily, rng, double, 60);
        if n == 1 {
            // A single visit is a morning, lunch or evening visit.
            plan.slots[0].minute = [480, 720, 1140][rng.below(3)] + 5 * rng.int(-6, 12);
        }
    }
    // At most six visits a day: six care visits include the cleaning, five
    // leave no room for an escort.
    if service_only || (plan.slots.len() < 6 && rng.chance(0.7)) {
        let mut days: Vec<u32> = (0..5).collect();
        rng.shuffle(&mut days);
        let fortnightly = if rng.chance(0.6) { Some(rng.int(0, 1) as u32) } else { None };
        plan.service.push(ServiceSlot {
            weekday: days[0],
            minute: 540 + 15 * rng.int(0, 20),
            planned: [60, 75, 90][rng.below(3)],
            fortnightly,
        });
        if rng.chance(if service_only { 0.7 } else { 0.5 }) {
            plan.service.push(ServiceSlot {
                weekday: days[1],
                minute: 570 + 15 * rng.int(0, 18),
                planned: [30, 40, 45][rng.below(3)],
                fortnightly: None,
            });
        }
    }
    if plan.slots.len() <= 4 && rng.chance(0.25) {
        plan.escort_rate = rng.range(0.5, 2.5) / 21.7;
        plan.escort_minutes = 15 * rng.int(4, 10) as u32;
    }
    let heavy = plan.slots.len() >= 3;
    if rng.chance(cfg.night_patrol_share * if heavy { 2.5 } else { 0.45 }) {
        let planned = |rng: &mut Rng| [10, 10, 15, 15, 20][rng.below(5)];
        let minutes: &[i64] = match rng.below(10) {
            0..=5 => &[[1380, 1560, 1710][rng.below(3)]],
            6..=8 => &[1380, 1710],
            _ => &[1365, 1560, 1725],
        };
        plan.night = minutes
            .iter()
            .map(|&m| Slot { minute: m + 5 * rng.int(-4, 4), planned: planned(rng), double: false })
            .collect();
    }
    let granted = granted_of(&plan);
    (plan, granted)
}

/// The decision behind a plan: planned minutes per month / [`PLAN_SHARE`],
/// rounded to half hours.
pub(super) fn granted_of(plan: &HomePlan) -> [u32; 6] {
    let mut per_month = [0.0f64; 6];
    for s in &plan.slots {
        if s.double {
            per_month[ServiceType::DoubleStaffing.index()] += 2.0 * f64::from(s.planned) * DAYS_PER_MONTH;
        } else {
            per_month[ServiceType::PersonalCare.index()] += f64::from(s.planned) * DAYS_PER_MONTH;
        }
    }
    for s in &plan.service {
        let weeks = if s.fortnightly.is_some() { 2.17 } else { 4.35 };
        per_month[ServiceType::Service.index()] += f64::from(s.planned) * weeks;
    }
    per_month[ServiceType::Escort.index()] += plan.escort_rate * 21.7 * f64::from(plan.escort_minutes);
    for s in &plan.night {
        per_month[ServiceType::NightPatrol.index()] += f64::from(s.planned) * DAYS_PER_MONTH;
    }
    per_month.map(|m| ((m / PLAN_SHARE / 30.0).round() * 30.0) as u32)
}

/// Draws a personal-assistance plan (without its team) and its granted
/// minutes: 110–430 h a month on 8–12 h shifts (two shifts a day above 12 h).
pub(super) fn assist_plan(rng: &mut Rng) -> (AssistPlan, [u32; 6]) {
    let granted_h = rng.lognormal(165.0, 0.35).clamp(110.0, 430.0);
    let daily_h = granted_h * 0.95 / DAYS_PER_MONTH;
    let mut weekdays = [false; 7];
    let shifts = if daily_h <= 12.0 {
        let len_h = (rng.range(8.0, 12.0) * 2.0).round() / 2.0;
        let days = ((7.0 * daily_h / len_h).round() as usize).clamp(1, 7);
        let mut order: Vec<usize> = (0..7).collect();
        rng.shuffle(&mut order);
        for &d in &order[..days] {
            weekdays[d] = true;
        }
        vec![(420 + 30 * rng.int(0, 4), (len_h * 60.0) as u32)]
    } else {
        weekdays = [true; 7];
        let half = ((daily_h / 2.0) * 2.0).round() / 2.0;
        let start = 420 + 30 * rng.int(0, 2);
        vec![(start, (half * 60.0) as u32), (start + (half * 60.0) as i64, (half * 60.0) as u32)]
    };
    let mut granted = [0u32; 6];
    granted[ServiceType::PersonalAssistance.index()] = ((granted_h * 2.0).round() * 30.0) as u32;
    (AssistPlan { shifts, weekdays, team: Vec::new(), counter: 0 }, granted)
}

/// Number of assistants a plan needs so that nobody works more than about
/// 38 h a week, every assistant gets days off, and two shifts of one day
/// never go to the same person.
pub(super) fn team_size(plan: &AssistPlan) -> usize {
    let shifts_per_week = plan.weekdays.iter().filter(|d| **d).count() * plan.shifts.len();
    let hours_per_week: f64 = plan.shifts.iter().map(|(_, l)| f64::from(*l) / 60.0).sum::<f64>()
        * plan.weekdays.iter().filter(|d| **d).count() as f64;
    let mut k = ((hours_per_week / 38.0).ceil() as usize).max(2).max(shifts_per_week.div_ceil(5));
    if plan.shifts.len() == 2 && k.is_multiple_of(2) {
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn care_slots_respect_visit_limits() {
        for n in 1..=6 {
            let slots = care_slots(n, 400.0, &mut Rng::new(n as u64, &[]), true, 60);
            assert_eq!(slots.len(), n);
            assert!(slots.iter().all(|s| (10..=60).contains(&s.planned) && (420..=1275).contains(&s.minute)));
        }
    }

    #[test]
    fn spread_keeps_the_total() {
        assert_eq!(spread(100, &[1.0, 2.0, 7.0]).iter().sum::<u32>(), 100);
        assert_eq!(spread(5, &[1.0; 4]).iter().sum::<u32>(), 5);
    }

    #[test]
    fn assistance_teams_leave_days_off() {
        let mut rng = Rng::new(3, &[]);
        for _ in 0..200 {
            let (plan, _) = assist_plan(&mut rng);
            let k = team_size(&plan);
            let per_week: f64 = plan.shifts.iter().map(|(_, l)| f64::from(*l)).sum::<f64>()
                * plan.weekdays.iter().filter(|d| **d).count() as f64
                / 60.0;
            assert!(per_week / k as f64 <= 40.0, "{per_week} h over {k}");
            assert!(plan.shifts.iter().all(|(_, l)| (360..=720).contains(l)));
        }
    }
}
