//! The state one engine keeps: per provider, per client of a provider, and
//! per staff member. Built on the shared window primitives; rules read it.
//! A rule that counts its own events per provider and day keeps them in its
//! slot of [`ProviderDay::rule_counts`] (and their ids in the same slot of
//! [`ProviderState::rule_recent`]): the slot is declared in the rule's
//! registration, so a new counting rule adds no field here.
//!
//! A rule that keeps anything else per provider (a map, a running
//! statistic) declares its own state type in its file; the rule registry
//! composes them into one struct with a field per rule, and
//! [`ProviderState`] holds it in [`ProviderState::rules`]. This module
//! sits below the rules, so it cannot name that struct: `ProviderState` is
//! generic over it (`R`), and the rules and the engine use
//! `ProviderState<RuleStates>`. A new rule with state is its file and its
//! registry line; nothing here changes. The snapshot layout follows the
//! registry: it changes with the registered rules (see the engine's
//! snapshot module, whose fingerprint covers the registered rules).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::model::{
    ClientKey, Day, EventId, EventTime, GeoPoint, HouseholdKey, Invoice, Month, MunicipalityCode, ProviderId,
    RegistrationMethod, ServiceType, StaffKey,
};
use crate::window::DayRing;

/// Number of service types (dense index of [`ServiceType`]).
pub const SERVICES: usize = 6;

/// Number of per-rule counter slots (see [`ProviderDay::rule_counts`]).
/// Each counting rule declares a distinct slot below this in its
/// registration (checked at compile time). Raising it changes the
/// snapshot layout: bump the snapshot format version with it.
pub const RULE_SLOTS: usize = 3;

/// Counters of one provider for one local day.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProviderDay {
    /// Visits that started this day.
    pub visits: u32,
    /// Of which registered by hand or edited afterwards (a day with nearly
    /// all of them so is a lock or tag system outage).
    pub manual_visits: u32,
    /// Minutes of those visits.
    pub minutes: u32,
    /// Minutes per service type.
    pub minutes_by_service: [u32; SERVICES],
    /// Visits counted by rules, one slot per counting rule (the slot is
    /// the rule's `SLOT` in its registration).
    pub rule_counts: [u32; RULE_SLOTS],
    /// Clients with a visit in the activity window ending this day, set by
    /// the engine when the day closes. Engine state, not a rule's: the
    /// engine itself reads it a week back for the municipality totals of
    /// [`MunicipalityDay`] (and rule `volume-explosion` reads the
    /// provider's own).
    pub active_clients: u32,
}

/// The months of performed minutes kept per client.
pub const CLIENT_MONTHS: usize = 4;

/// One client's month with one provider.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MonthActivity {
    /// Which month.
    pub month: Month,
    /// Performed minutes per service type.
    pub minutes: [u32; SERVICES],
    /// Visits per service type.
    pub visits: [u16; SERVICES],
    /// Performed minutes per service type with each visit rounded up to
    /// whole [`BILLING_ROUNDING_MINUTES`]: the most an honest invoice line
    /// bills for them.
    pub rounded: [u32; SERVICES],
}

impl MonthActivity {
    const EMPTY: MonthActivity =
        MonthActivity { month: Month(i32::MIN), minutes: [0; SERVICES], visits: [0; SERVICES], rounded: [0; SERVICES] };
}

/// The billing unit a visit may be rounded up to: an honest invoice line
/// bills at most its visits' minutes each rounded up to it.
pub const BILLING_ROUNDING_MINUTES: u32 = 5;

/// Days of visit history a client's activity holds per service type.
pub const ACTIVITY_BITS: i32 = 128;

/// What one client received from one provider.
///
/// Which days had a visit is kept per service type as a bit per day over
/// the last [`ACTIVITY_BITS`] days up to the newest visit, so whether the
/// client was active in a window is exact whatever arrived after the
/// window: a window read when later visits are already in gives the same
/// answer as one read before they came.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientActivity {
    /// The newest day with a visit of any service type (`i32::MIN` = never).
    pub newest: i32,
    /// Per service type, bit `k` set: a visit on day `newest - k`.
    pub days: [u128; SERVICES],
    /// Performed minutes and visits per service type for the last few
    /// months, indexed by `month % CLIENT_MONTHS` and tagged with the month.
    pub months: [MonthActivity; CLIENT_MONTHS],
    /// Performed minutes of all service types per day for the last
    /// [`MINUTES_DAYS`] days up to the newest visit: day `d` in slot
    /// `d mod MINUTES_DAYS` (empty until the first visit).
    pub daily: Vec<u16>,
}

/// Days of per-day minutes a client's activity holds: the five weeks the
/// own-history rules compare, and two weeks for visits of later days that
/// arrive before a day is decided.
pub const MINUTES_DAYS: i32 = 49;

impl Default for ClientActivity {
    fn default() -> Self {
        ClientActivity {
            newest: i32::MIN,
            days: [0; SERVICES],
            months: [MonthActivity::EMPTY; CLIENT_MONTHS],
            daily: Vec::new(),
        }
    }
}

impl ClientActivity {
    /// Records `minutes` of `service` on `day`.
    pub fn record(&mut self, day: Day, service: ServiceType, minutes: u32) {
        let s = service.index();
        if self.daily.is_empty() {
            self.daily = vec![0; MINUTES_DAYS as usize];
        }
        if self.newest == i32::MIN {
            self.newest = day.0;
        } else if day.0 > self.newest {
            let shift = day.0 - self.newest;
            for bits in &mut self.days {
                *bits = if shift >= ACTIVITY_BITS { 0 } else { *bits << shift };
            }
            // The slots of the days now entering the ring held days
            // MINUTES_DAYS earlier.
            for d in (self.newest + 1).max(day.0 - MINUTES_DAYS + 1)..=day.0 {
                self.daily[d.rem_euclid(MINUTES_DAYS) as usize] = 0;
            }
            self.newest = day.0;
        }
        if self.newest - day.0 < MINUTES_DAYS {
            let slot = &mut self.daily[day.0.rem_euclid(MINUTES_DAYS) as usize];
            *slot = slot.saturating_add(minutes.min(u32::from(u16::MAX)) as u16);
        }
        let k = self.newest - day.0;
        if k < ACTIVITY_BITS {
            self.days[s] |= 1u128 << k;
        }
        let month = day.month();
        let slot = &mut self.months[month.0.rem_euclid(CLIENT_MONTHS as i32) as usize];
        if slot.month < month {
            *slot = MonthActivity { month, ..MonthActivity::EMPTY };
        }
        if slot.month == month {
            slot.minutes[s] = slot.minutes[s].saturating_add(minutes);
            slot.visits[s] = slot.visits[s].saturating_add(1);
            let rounded = minutes.div_ceil(BILLING_ROUNDING_MINUTES).saturating_mul(BILLING_ROUNDING_MINUTES);
            slot.rounded[s] = slot.rounded[s].saturating_add(rounded);
        }
    }

    /// Performed minutes of all service types on `day`: zero for a day
    /// after the newest visit or [`MINUTES_DAYS`] or more before it (not
    /// kept).
    pub fn minutes_on(&self, day: Day) -> u32 {
        let k = self.newest - day.0;
        if self.daily.is_empty() || !(0..MINUTES_DAYS).contains(&k) {
            return 0;
        }
        u32::from(self.daily[day.0.rem_euclid(MINUTES_DAYS) as usize])
    }

    /// Days with care and their minutes in the `days` days through `end`
    /// (all kept only while `end - days` is within [`MINUTES_DAYS`] of the
    /// newest visit).
    pub fn care_days(&self, end: Day, days: u32) -> (u32, u64) {
        (0..days as i32)
            .map(|k| self.minutes_on(end.plus(-k)))
            .filter(|m| *m > 0)
            .fold((0, 0), |(n, sum), m| (n + 1, sum + u64::from(m)))
    }

    /// The kept activity of `month`, if any.
    pub fn month(&self, month: Month) -> Option<&MonthActivity> {
        let slot = &self.months[month.0.rem_euclid(CLIENT_MONTHS as i32) as usize];
        (slot.month == month).then_some(slot)
    }

    /// Performed (minutes, visits) of `service` in `month` (zero if not kept).
    pub fn performed(&self, month: Month, service: ServiceType) -> (u32, u32) {
        self.month(month).map_or((0, 0), |m| (m.minutes[service.index()], u32::from(m.visits[service.index()])))
    }

    /// Performed minutes of `service` in `month` with each visit rounded up
    /// to [`BILLING_ROUNDING_MINUTES`] (zero if not kept).
    pub fn rounded(&self, month: Month, service: ServiceType) -> u32 {
        self.month(month).map_or(0, |m| m.rounded[service.index()])
    }

    /// Performed minutes of all services in `month`.
    pub fn performed_all(&self, month: Month) -> u32 {
        self.month(month).map_or(0, |m| m.minutes.iter().fold(0u32, |a, b| a.saturating_add(*b)))
    }

    /// The last day with any visit.
    pub fn last_any(&self) -> i32 {
        self.newest
    }

    /// Whether the client had a visit of any service type on `day` (false
    /// for a day more than [`ACTIVITY_BITS`] days before the newest visit,
    /// or after it).
    pub fn visited_on(&self, day: Day) -> bool {
        let k = self.newest - day.0;
        self.newest != i32::MIN && (0..ACTIVITY_BITS).contains(&k) && self.days.iter().any(|b| b & (1u128 << k) != 0)
    }

    /// Whether the client arrived on `day`: a visit of any service type
    /// that day and none in the `days` days before (a client new to the
    /// provider, or back after a pause longer than the activity window).
    pub fn arrived_on(&self, day: Day, days: u32) -> bool {
        self.visited_on(day) && !ServiceType::ALL.iter().any(|&s| self.active(s, day.plus(-1), days))
    }

    /// Whether the client had a visit of `service` in the `days` days
    /// ending at `end` (inclusive). Exact while `end` is within
    /// [`ACTIVITY_BITS`] days of the newest visit and the window within
    /// the days held (the configuration keeps the activity window well
    /// inside them).
    pub fn active(&self, service: ServiceType, end: Day, days: u32) -> bool {
        if self.newest == i32::MIN || days == 0 {
            return false;
        }
        let lo = (self.newest - end.0).max(0);
        let hi = (self.newest - end.0 + days as i32 - 1).min(ACTIVITY_BITS - 1);
        if lo > hi {
            return false;
        }
        let width = hi - lo + 1;
        let mask = if width >= ACTIVITY_BITS { u128::MAX } else { ((1u128 << width) - 1) << lo };
        self.days[service.index()] & mask != 0
    }
}

/// Recent evidence ids, one per local day: the last one to arrive of each
/// day, for the newest [`RecentIds::LIMIT`] days up to the last day
/// decided and every day after it.
///
/// A provider's records arrive in the same order in every partitioning,
/// and a day's are all in once the day is closed, so the ids of the days up
/// to a closed day do not depend on what arrived after it: evidence for a
/// day close is the same whenever the close runs, and whenever the day is
/// decided (however far the other partitions or the reference data are
/// behind).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecentIds(VecDeque<(Day, EventId)>);

impl RecentIds {
    /// Most ids returned as evidence.
    pub const LIMIT: usize = 10;

    /// Remembers `id` as the latest of `day`. Days are forgotten only as
    /// the days are decided ([`Self::forget_decided`]), never because newer
    /// ones came: a day decided late (its partitions or the reference data
    /// behind) gets the same evidence as one decided at once.
    pub fn push(&mut self, day: Day, id: &EventId) {
        let at = self.0.partition_point(|(d, _)| *d < day);
        match self.0.get_mut(at) {
            Some((d, kept)) if *d == day => *kept = id.clone(),
            _ => self.0.insert(at, (day, id.clone())),
        }
    }

    /// Forgets the days no decision after `decided` reads: all but the
    /// newest [`Self::LIMIT`] days up to it (however old: a provider that
    /// went quiet keeps its last evidence).
    pub fn forget_decided(&mut self, decided: Day) {
        let through = self.0.partition_point(|(d, _)| *d <= decided);
        self.0.drain(..through.saturating_sub(Self::LIMIT));
    }

    /// The ids of the newest [`Self::LIMIT`] days up to `day`, oldest first.
    pub fn through(&self, day: Day) -> Vec<EventId> {
        let end = self.0.partition_point(|(d, _)| *d <= day);
        self.0.range(end.saturating_sub(Self::LIMIT)..end).map(|(_, id)| id.clone()).collect()
    }
}

/// Everything kept about one provider. `R` is the rules' own state (one
/// field per registered rule, generated by the rule registry as
/// `rules::RuleStates`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProviderState<R> {
    /// Who pays (the state is kept per provider and municipality).
    pub municipality: MunicipalityCode,
    /// Daily counters over the horizon.
    pub days: DayRing<ProviderDay>,
    /// Clients served, with their activity. Not in the provider's own
    /// serialized form: each client is a checkpoint entity of its own
    /// (`engine::snapshot::Entity::Client`), so that a visit rewrites one
    /// client, not all of the provider's.
    #[serde(skip)]
    pub clients: FxHashMap<ClientKey, ClientActivity>,
    /// Invoices seen recently (id → issue time), so a redelivered invoice
    /// is not counted twice. Like `pending_invoices` and `rules`, not in
    /// the provider's own serialized form: they change with invoices and
    /// day closes, not with visits, and are a checkpoint entity of their
    /// own (`engine::snapshot::Entity::ProviderBilling`).
    #[serde(skip)]
    pub invoices_seen: FxHashMap<EventId, EventTime>,
    /// Invoices waiting until the time reports of their period are complete.
    #[serde(skip)]
    pub pending_invoices: Vec<Invoice>,
    /// Recent visits counted by rules, in the slots of
    /// [`ProviderDay::rule_counts`].
    pub rule_recent: [RecentIds; RULE_SLOTS],
    /// Recent visits of any kind, for evidence of statistical rules.
    pub recent_visits: RecentIds,
    /// Each rule's own state for this provider (its `RuleSpec::ProviderState`).
    #[serde(skip)]
    pub rules: R,
    /// Last event time seen for this provider.
    pub last_event: EventTime,
    /// The provider's own clock: the latest check-in of its time reports.
    /// Its records arrive in the same order whatever the partitioning, so
    /// this clock does too; visit findings are decided at it.
    pub visit_clock: EventTime,
    /// First local day with a visit: windows longer than the provider's
    /// history are not full, and are not compared.
    pub first_day: Day,
    /// Visits waiting for the reference data to be known through their
    /// check-in, in arrival order (with `core.reference` on only); the
    /// rules that compare a visit with the reference data take them in
    /// this order (`Engine::decide`).
    pub reference_visits: VecDeque<ReferenceVisit>,
    /// When the newest of them is judged: the next is judged no earlier.
    pub reference_clock: EventTime,
}

/// A visit as the rules that compare it with the reference data take it
/// ([`crate::rules::Rule::on_reference_visit`]): what they need of it, and
/// what its provider's records had come to when it arrived.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReferenceVisit {
    /// The visit's id.
    pub event_id: EventId,
    /// Its client.
    pub client: ClientKey,
    /// Its service type.
    pub service: ServiceType,
    /// Its check-in.
    pub check_in: EventTime,
    /// When it is judged: the later of its provider's clock when it
    /// arrived and its check-in plus `core.reference.visit_grace`, never
    /// before the provider's visit before it. The same in every
    /// partitioning; the reference data is asked as of it, and the
    /// findings are decided at it.
    pub decided: EventTime,
    /// Minutes of the client's `service` in the check-in's month with this
    /// provider when the visit arrived, the visit's own included (visits
    /// counted in arrival order).
    pub month_minutes: u32,
}

impl<R: Default> ProviderState<R> {
    /// An empty provider with a horizon of `horizon_days`.
    pub fn new(municipality: MunicipalityCode, horizon_days: usize) -> Self {
        ProviderState {
            municipality,
            days: DayRing::new(horizon_days),
            clients: FxHashMap::default(),
            invoices_seen: FxHashMap::default(),
            pending_invoices: Vec::new(),
            rule_recent: Default::default(),
            recent_visits: RecentIds::default(),
            rules: R::default(),
            last_event: EventTime(i64::MIN),
            visit_clock: EventTime(i64::MIN),
            first_day: Day(i32::MAX),
            reference_visits: VecDeque::new(),
            reference_clock: EventTime(i64::MIN),
        }
    }
}

impl<R> ProviderState<R> {
    /// Whether the provider has history over the whole `days`-day window
    /// ending at `day`.
    pub fn has_full_window(&self, day: Day, days: u32) -> bool {
        self.first_day.0 <= day.0 - days as i32 + 1
    }

    /// Performed (minutes, visits) of `client` and `service` over the
    /// months touched by `[start, end)`.
    pub fn performed(&self, client: ClientKey, service: ServiceType, start: EventTime, end: EventTime) -> (u32, u32) {
        let Some(activity) = self.clients.get(&client) else { return (0, 0) };
        months_of(start, end)
            .map(|m| activity.performed(m, service))
            .fold((0u32, 0u32), |a, b| (a.0.saturating_add(b.0), a.1.saturating_add(b.1)))
    }

    /// Performed minutes of `client` and `service` over the months touched
    /// by `[start, end)`, each visit rounded up to
    /// [`BILLING_ROUNDING_MINUTES`]: the most an honest line bills.
    pub fn billable(&self, client: ClientKey, service: ServiceType, start: EventTime, end: EventTime) -> u32 {
        let Some(activity) = self.clients.get(&client) else { return 0 };
        months_of(start, end).map(|m| activity.rounded(m, service)).fold(0u32, u32::saturating_add)
    }

    /// Performed minutes of `client`, all services, over the months touched
    /// by `[start, end)`.
    pub fn performed_minutes_all(&self, client: ClientKey, start: EventTime, end: EventTime) -> u32 {
        let Some(activity) = self.clients.get(&client) else { return 0 };
        months_of(start, end).map(|m| activity.performed_all(m)).fold(0u32, u32::saturating_add)
    }
}

/// The local months touched by `[start, end)`.
pub fn months_of(start: EventTime, end: EventTime) -> impl Iterator<Item = Month> {
    let first = start.month();
    let last = end.plus_secs(-1).month();
    (first.0..=last.0.max(first.0)).map(Month)
}

/// One of a staff member's recent visits.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecentVisit {
    /// The time report.
    pub event_id: EventId,
    /// Billed by.
    pub provider: ProviderId,
    /// Paid by.
    pub municipality: MunicipalityCode,
    /// How it was registered.
    pub method: RegistrationMethod,
    /// At whose home.
    pub client: ClientKey,
    /// Shared home, if any.
    pub household: Option<HouseholdKey>,
    /// Start.
    pub check_in: EventTime,
    /// End.
    pub check_out: EventTime,
    /// The client's home, if known.
    pub home: Option<GeoPoint>,
}

/// Where a staff member's visit took place: a shared home (household) when
/// the visit names one, the client otherwise, so that the visits to a
/// couple count together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Place {
    /// A shared home.
    Household(HouseholdKey),
    /// A client living alone (or with no household given).
    Client(ClientKey),
}

impl Place {
    /// The place of a visit to `client` in `household`.
    pub fn of(client: ClientKey, household: Option<HouseholdKey>) -> Self {
        household.map_or(Place::Client(client), Place::Household)
    }
}

/// Whether a service type counts as home care for a staff member's place
/// minutes: personal assistance (one assistant per client is normal) and
/// the night patrol (a round of many homes) do not.
pub fn is_home_care(service: ServiceType) -> bool {
    !matches!(service, ServiceType::PersonalAssistance | ServiceType::NightPatrol)
}

/// The Monday of `day`'s week (weeks run Monday to Sunday).
pub fn week_of(day: Day) -> Day {
    day.plus(-(day.weekday() as i32))
}

/// Weeks of home-care minutes a staff member keeps: the newest week with a
/// visit and the ones before it (`relative-employment` looks at most at
/// this many).
pub const CARE_WEEKS: usize = 5;

/// The ring slot of the week of Monday `week`.
fn care_slot(week: Day) -> usize {
    (week.0.div_euclid(7)).rem_euclid(CARE_WEEKS as i32) as usize
}

/// A staff member's home-care minutes at one place registered by one
/// provider, per week of the last [`CARE_WEEKS`] (a ring: the slot of a
/// week is [`care_slot`]; see [`StaffState::care_head`]). Minutes per week
/// saturate at 65,535 (1,092 hours, six times a week's length).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlaceMinutes {
    /// The place.
    pub place: Place,
    /// Registered by.
    pub provider: ProviderId,
    /// Minutes per week slot.
    pub weeks: [u16; CARE_WEEKS],
}

/// Whether `week` is one of the `weeks` weeks ending with the week of
/// Monday `last`.
fn in_weeks(week: Day, last: Day, weeks: u32) -> bool {
    week <= last && week >= last.plus(-7 * (weeks as i32 - 1))
}

/// Everything kept about one staff member (across providers).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StaffState {
    /// The last visits, in arrival order, bounded.
    pub recent: VecDeque<RecentVisit>,
    /// Minutes worked per local day (by check-in day).
    pub days: DayRing<u32>,
    /// The Monday of the newest week with home care: the slots of the
    /// [`CARE_WEEKS`] weeks ending with it are the ring's.
    pub care_head: Option<Day>,
    /// Home-care minutes (see [`is_home_care`]) per week slot, every place
    /// counted, kept or not.
    pub care_weeks: [u32; CARE_WEEKS],
    /// Home-care minutes per place and provider, sorted by (place,
    /// provider); at most [`Self::PLACES`] of them (the rest count in
    /// `care_weeks` only). One allocation per staff member: a place costs
    /// 40 bytes.
    pub places: Vec<PlaceMinutes>,
    /// Last day with a visit.
    pub last_day: Day,
}

impl StaffState {
    /// Most recent visits kept per staff member.
    pub const RECENT: usize = 12;
    /// Most (place, provider) minutes kept per staff member.
    pub const PLACES: usize = 64;

    /// A staff member with no history and a horizon of `horizon_days`.
    pub fn new(horizon_days: usize) -> Self {
        StaffState {
            recent: VecDeque::with_capacity(Self::RECENT),
            days: DayRing::new(horizon_days),
            care_head: None,
            care_weeks: [0; CARE_WEEKS],
            places: Vec::new(),
            last_day: Day(i32::MIN),
        }
    }

    /// Records `minutes` of home care at `place` on `day`, registered by
    /// `provider`, in the week ring. A week after the newest moves the ring
    /// on, emptying the slots of the weeks that leave it (in every place:
    /// at most once a week) and dropping the places left without minutes;
    /// a day before the ring's oldest week is refused. Beyond
    /// [`Self::PLACES`] entries, the one with the fewest minutes (then the
    /// lowest place and provider) is forgotten.
    pub fn record_care(&mut self, place: Place, provider: ProviderId, day: Day, minutes: u32) {
        let week = week_of(day);
        match self.care_head {
            Some(head) if week > head => {
                // The weeks after the head, at most a ring's worth, leave
                // their slots to the new ones.
                let leaving = ((week.0 - head.0) / 7).min(CARE_WEEKS as i32);
                for k in 0..leaving {
                    let slot = care_slot(week.plus(-7 * k));
                    self.care_weeks[slot] = 0;
                    for p in &mut self.places {
                        p.weeks[slot] = 0;
                    }
                }
                self.places.retain(|p| p.weeks.iter().any(|&m| m > 0));
                self.care_head = Some(week);
            }
            Some(head) if week <= head.plus(-7 * CARE_WEEKS as i32) => return,
            Some(_) => {}
            None => self.care_head = Some(week),
        }
        let slot = care_slot(week);
        self.care_weeks[slot] = self.care_weeks[slot].saturating_add(minutes);
        let at = match self.places.binary_search_by(|p| (p.place, p.provider).cmp(&(place, provider))) {
            Ok(at) => at,
            Err(at) => {
                self.places.insert(at, PlaceMinutes { place, provider, weeks: [0; CARE_WEEKS] });
                at
            }
        };
        let m = &mut self.places[at].weeks[slot];
        *m = m.saturating_add(u16::try_from(minutes).unwrap_or(u16::MAX));
        if self.places.len() > Self::PLACES {
            let weight = |p: &PlaceMinutes| (p.weeks.iter().map(|&m| u64::from(m)).sum::<u64>(), p.place, p.provider);
            if let Some(least) = (0..self.places.len()).min_by_key(|&i| weight(&self.places[i])) {
                self.places.remove(least);
            }
        }
    }

    /// The ring's weeks among the `weeks` weeks ending with the week of
    /// Monday `last`, as slots.
    fn slots(&self, last: Day, weeks: u32) -> impl Iterator<Item = usize> + '_ {
        let head = self.care_head;
        (0..CARE_WEEKS as i32).filter_map(move |k| {
            let week = head?.plus(-7 * k);
            in_weeks(week, last, weeks).then(|| care_slot(week))
        })
    }

    /// Home-care minutes in the `weeks` weeks ending with the week of
    /// Monday `last`, every place counted.
    pub fn care_minutes(&self, last: Day, weeks: u32) -> u64 {
        self.slots(last, weeks).map(|s| u64::from(self.care_weeks[s])).sum()
    }

    /// Home-care minutes at `place` in the `weeks` weeks ending with the
    /// week of Monday `last`, per provider (in provider order).
    pub fn place_minutes(&self, place: Place, last: Day, weeks: u32) -> Vec<(ProviderId, u64)> {
        let from = self.places.partition_point(|p| p.place < place);
        let slots: Vec<usize> = self.slots(last, weeks).collect();
        self.places[from..]
            .iter()
            .take_while(|p| p.place == place)
            .map(|p| (p.provider, slots.iter().map(|&s| u64::from(p.weeks[s])).sum()))
            .filter(|&(_, m)| m > 0)
            .collect()
    }

    /// The places other than `place` with home-care minutes in the
    /// `weeks` weeks ending with the week of Monday `last`.
    pub fn other_places(&self, place: Place, last: Day, weeks: u32) -> u64 {
        let slots: Vec<usize> = self.slots(last, weeks).collect();
        let mut count = 0;
        let mut previous = None;
        for p in &self.places {
            if p.place != place && previous != Some(p.place) && slots.iter().any(|&s| p.weeks[s] > 0) {
                count += 1;
                previous = Some(p.place);
            }
        }
        count
    }

    /// Remembers a visit, forgetting the oldest beyond [`Self::RECENT`].
    pub fn remember(&mut self, visit: RecentVisit) {
        if self.recent.len() == Self::RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(visit);
    }
}

/// A municipality's totals at a day close (rule `volume-explosion`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MunicipalityDay {
    /// Active clients over all providers of the engine.
    pub active_clients: u64,
    /// The same, the day before.
    pub active_clients_yesterday: u64,
}

/// Who a staff key is, for tests and tools (never logged).
pub type StaffMap = FxHashMap<StaffKey, StaffState>;

/// Serializes a hash map with its entries in key order, so that the same
/// state always gives the same bytes (a hash map's iteration order depends
/// on its history, e.g. on whether it was restored from a snapshot).
pub fn sorted_map<K, V, S>(map: &FxHashMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
where
    K: Ord + serde::Serialize,
    V: serde::Serialize,
    S: serde::Serializer,
{
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_ids_of_a_day_do_not_depend_on_when_it_is_decided() {
        let id = |d: i32| EventId::new(&format!("tr-{d}"));
        // Visits on days 0..40; day 30 decided at once, or after day 40's
        // visits are in (its partitions or the reference data behind).
        let mut at_once = RecentIds::default();
        let mut late = RecentIds::default();
        for d in 0..=30 {
            at_once.push(Day(d), &id(d));
            late.push(Day(d), &id(d));
        }
        at_once.forget_decided(Day(29));
        let expected = at_once.through(Day(30));
        for d in 31..=40 {
            late.push(Day(d), &id(d));
        }
        late.forget_decided(Day(29));
        assert_eq!(late.through(Day(30)), expected);
        assert_eq!(expected.len(), RecentIds::LIMIT);
        assert_eq!(expected.last(), Some(&id(30)));
        // A provider that went quiet keeps its last evidence however long
        // the silence.
        let mut quiet = RecentIds::default();
        for d in 0..5 {
            quiet.push(Day(d), &id(d));
        }
        quiet.forget_decided(Day(100));
        assert_eq!(quiet.through(Day(101)).len(), 5);
    }

    /// Sums of input values saturate instead of wrapping: a client flooded
    /// with week-long visits in one month of every service reads as
    /// `u32::MAX` minutes, never as a small number.
    #[test]
    fn performed_minutes_saturate() {
        let mut client = ClientActivity::default();
        let day = Day::from_ymd(2026, 3, 2);
        for _ in 0..2 {
            for service in ServiceType::ALL {
                client.record(day, service, u32::MAX - 10);
            }
        }
        assert_eq!(client.performed(day.month(), ServiceType::PersonalCare).0, u32::MAX);
        assert_eq!(client.performed_all(day.month()), u32::MAX);
    }

    /// A staff member's places stay bounded: days leave with the horizon,
    /// places without minutes are dropped, and beyond the cap the place
    /// with the fewest minutes goes (its minutes stay in the total).
    #[test]
    fn staff_places_are_bounded() {
        let provider = ProviderId::from_nine_digits(556_100_001);
        let mut staff = StaffState::new(28);
        let day = Day::from_ymd(2026, 3, 2);
        staff.record_care(Place::Client(ClientKey(0)), provider, day, 600);
        for c in 1..=StaffState::PLACES as u64 + 5 {
            staff.record_care(Place::Client(ClientKey(c)), provider, day.plus(1), 30);
        }
        assert_eq!(staff.places.len(), StaffState::PLACES);
        assert_eq!(staff.place_minutes(Place::Client(ClientKey(0)), day, 1), [(provider, 600)], "the heaviest is kept");
        assert!(staff.places.windows(2).all(|w| w[0].place < w[1].place), "sorted");
        assert_eq!(staff.care_minutes(week_of(day), 1), 600 + 30 * 69, "every place counts in the total");
        staff.record_care(Place::Household(HouseholdKey(1)), provider, day.plus(40), 60);
        assert_eq!(staff.places.len(), 1, "the weeks that left the ring are gone, and the places with them");
        assert_eq!(staff.care_minutes(week_of(day.plus(40)), CARE_WEEKS as u32), 60);
    }

    /// Minutes count by week, Monday to Sunday, per place and provider: a
    /// window of weeks takes the visit's week and the ones before it,
    /// whole; a week leaves the ring when a week [`CARE_WEEKS`] later
    /// comes, and a day before the ring's oldest week is refused.
    #[test]
    fn staff_care_minutes_are_kept_by_week() {
        let provider = ProviderId::from_nine_digits(556_100_001);
        let other = ProviderId::from_nine_digits(556_100_002);
        let mut staff = StaffState::new(28);
        let monday = Day::from_ymd(2026, 3, 2);
        assert_eq!(
            (week_of(monday), week_of(monday.plus(6)), week_of(monday.plus(7))),
            (monday, monday, monday.plus(7))
        );
        assert_eq!(week_of(monday.plus(-1)), monday.plus(-7), "a Sunday is in the week before");
        let (home, next_door) = (Place::Client(ClientKey(1)), Place::Client(ClientKey(2)));
        staff.record_care(home, provider, monday, 60);
        staff.record_care(home, provider, monday.plus(6), 30);
        staff.record_care(home, other, monday.plus(7), 45);
        staff.record_care(next_door, other, monday.plus(8), 15);
        assert_eq!(staff.places.len(), 3, "one entry per place and provider");
        assert_eq!(staff.place_minutes(home, monday, 1), [(provider, 90)]);
        assert_eq!(staff.place_minutes(home, monday.plus(7), 1), [(other, 45)]);
        assert_eq!(staff.place_minutes(home, monday.plus(7), 2), [(provider, 90), (other, 45)]);
        assert_eq!(staff.care_minutes(monday.plus(7), 2), 150);
        assert_eq!(staff.other_places(home, monday.plus(7), 2), 1);
        // Four weeks on, the first is still in the ring of five.
        staff.record_care(home, provider, monday.plus(28), 10);
        assert_eq!(staff.care_minutes(monday.plus(28), 5), 160);
        assert_eq!(staff.care_minutes(monday.plus(21), 4), 150, "a window ends with its week");
        // Five weeks on, it has left.
        staff.record_care(home, provider, monday.plus(35), 10);
        assert_eq!(staff.care_minutes(monday.plus(35), 5), 80, "the first week is forgotten");
        let at_home: u64 = staff.place_minutes(home, monday.plus(35), 5).iter().map(|(_, m)| m).sum();
        assert_eq!(at_home, 65);
        staff.record_care(home, provider, monday.plus(1), 500);
        assert_eq!(staff.care_minutes(monday.plus(35), 5), 80, "a day before the ring is refused");
        assert_eq!(staff.care_minutes(monday, 1), 0);
    }
}
