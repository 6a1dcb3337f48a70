//! Reference data (opt-in: [`SimConfig::reference`]): the municipality's
//! decisions on granted hours, its clients' absences and the provider
//! register, as versions of facts in the event stream, and the three
//! fraud patterns that need them.
//!
//! # What is emitted
//! - **Decisions** (`GrantedHours`): one per client and service type with
//!   granted time. Clients of the first day have decisions valid (and
//!   recorded) months or years before it, emitted at the head of the
//!   stream; a client who arrives later starts 2–5 days after the decision,
//!   recorded in office hours on the day of arrival. The granted minutes are
//!   the simulator's internal grant (the plan schedules 90 % of it), raised
//!   where a month can naturally hold more: five weekly or three fortnightly
//!   service visits, two escorts, the busiest month of an assistance
//!   schedule. Honest providers plan no visit that would take a client's
//!   month (its grant pro rata by days) over the grant, so performed time
//!   stays at about 80 % of granted and never much above it. Honest noise:
//!   about 1.2 % of honest home-care clients a month get their care raised
//!   1.2–1.5× on the first of a month, the decision's new version recorded
//!   on day 1–3 and valid from the 1st (backdated up to 3 days). Each
//!   decision names the client's provider (the municipality's order); a
//!   client who changes provider (honestly, in a takeover, or away from a
//!   pattern-14 or pattern-15 provider) gets a new decision from the day
//!   of the change naming the new one, the same grant, registered at
//!   06:00 that day, and the old decision ends that day.
//! - **Absences** (`ClientAbsence`): hospital stays (about 6–8 % of home-care
//!   clients in six months, 2–14 days, one in twenty 15–35 days, one in ten
//!   a short admission: same day or one night), registered at admission
//!   with `to` open and corrected at discharge (one in five registered 1–3
//!   days late); short-term care (about 1.2 % in six months, 7–21 days,
//!   registered days ahead with its end); a death or a move away for every
//!   departing home-care client, recorded within days. Honest providers
//!   plan no visit that overlaps an absence: on the admission day only the
//!   visits that end before the admission, on the discharge day those after
//!   it.
//! - **The provider register** (`ProviderPermit`): a valid entry for every
//!   provider from before the start; one honest private provider's entry
//!   ends in months 2–4 and is renewed by a new entry registered weeks
//!   before.
//!
//! Every version is pushed at its `recorded_at`, so the stream carries it
//! in arrival order, after the source heartbeat of its hour.
//!
//! # Fraud patterns (only with reference data and fraudulent providers)
//! Two honest private home-care providers per pattern (as many as there
//! are), starting on a random day of months 2–4:
//! - 11, *billing during absence*: the provider plans and registers its
//!   clients' visits through their hospital stays (its clients are admitted
//!   far more often, so it has stays to bill); the first instance also bills
//!   each month a client who died before the month. Observable at the later
//!   of the first such visit's check-in and the registration of the stay it
//!   falls in (or the invoice's issue).
//! - 15, *hours above granted hours*: 30–60 % of the provider's clients get
//!   their visits planned (more and longer) to 1.5–2.5× the grant, performed
//!   and invoiced. Observable at the check-in of the first visit that takes
//!   a client's month over 110 % of its grant plus 60 minutes. The second
//!   instance pads every client instead, to 97–104 % of the grant
//!   (1.08–1.15 times the usual 90 %), each month within the tolerance:
//!   observable two weeks after it starts (`granted-hours-utilisation`).
//!   A third instance, on one more provider: three of its clients move to
//!   honest providers (a week after the start, ten days apart), and it
//!   keeps planning, registering and invoicing their visits as before
//!   (`changes`): each provider within the grant on its own, the two over
//!   it together. Its visits to a client who left are not counted in what
//!   the honest providers plan by (they do not know of them). Observable
//!   at its first visit after the two together went over 110 % of the
//!   grant plus 60 minutes (`client-hours-above-granted`).
//! - 16, *provider without a valid permit*: the register records the
//!   provider's permit revoked from the start day (registered that day or
//!   up to two days later); the provider carries on. Observable at the
//!   later of its first visit from then and the registration.

use std::collections::BTreeSet;

use anyhow::Result;

use super::engine::{Simulation, World};
use super::fraud::{self, Scenario};
use super::geo::at_local;
use super::output::{self, Outbox};
use super::population::{self, Kind, Plan};
use super::rng::{Rng, tag};
use super::schedule::{Rec, Request, flag};
use tillsyn_core::model::{Day, EventTime, Month, ServiceType};
use tillsyn_core::proto::v1 as wire;

/// The patterns injected only with reference data, in round-robin order.
pub(super) const PATTERNS: [u32; 3] = [11, 15, 16];
/// Providers per reference pattern.
const PER_PATTERN: usize = 2;
/// Daily probability that a home-care client is admitted to hospital
/// (about 6 % of clients in six months, a few more with the stays of
/// pattern 11).
const HOSPITAL_PER_DAY: f64 = 0.06 / 181.0;
/// The same at a provider billing during absences (pattern 11), so that it
/// has stays to bill.
const FRAUD_HOSPITAL_PER_DAY: f64 = 0.012;
/// Daily probability that a stay in short-term care is arranged.
const SHORT_TERM_PER_DAY: f64 = 0.012 / 181.0;
/// Monthly probability that an honest client's care is raised.
const REVISION_PER_MONTH: f64 = 0.012;
/// Share of hospital stays registered 1–3 days after admission.
const LATE_REGISTRATION: f64 = 0.2;
/// Share of departures that are deaths (the others move away).
const DEATH_SHARE: f64 = 0.8;
/// Pattern 15: a client's month is over its grant when performed minutes
/// exceed the grant by this share plus [`OVER_GRANT_MIN`].
pub(super) const OVER_GRANT_SHARE: f64 = 0.10;
/// Pattern 15 padding every client to about the grant is observable this
/// long after it starts: two weeks of it, compared with the grants.
const PADDING_SEEN_AFTER: i64 = 14 * 86_400;
/// See [`OVER_GRANT_SHARE`].
pub(super) const OVER_GRANT_MIN: f64 = 60.0;

/// Stream tags under [`tag::REFERENCE`].
mod sub {
    pub const SETUP: u64 = 0;
    pub const OPEN: u64 = 1;
    pub const DAY: u64 = 2;
}

/// One decision: its id, service and the true schedule of its grant.
#[derive(Debug, Clone)]
struct Decision {
    /// The id of the decision in force: a revision closes it and opens a
    /// new decision (a changed need is a new decision, not a correction).
    id: String,
    /// When the decision in force became valid.
    valid_from: i64,
    service: usize,
    /// (first day, minutes per month), in order: the first is the
    /// decision, the others its revisions.
    steps: Vec<(Day, u32)>,
    /// The provider it names (the municipality's order): the client's.
    provider: usize,
    /// Changes of provider so far (each a new decision).
    orders: usize,
}

/// A client's planned and performed minutes in one month.
#[derive(Debug, Clone)]
struct MonthUse {
    month: Month,
    planned: [i64; 6],
    performed: [i64; 6],
    /// Minutes registered by a provider the client has left (pattern 15,
    /// third form): not in `performed`, which the honest providers plan by.
    moved_away: [i64; 6],
    /// Grant of the month per service (pro rata by days); `None` until
    /// computed (or after a revision).
    caps: Option<[Option<f64>; 6]>,
}

/// What the reference data knows of one client.
#[derive(Debug, Clone, Default)]
struct ClientRef {
    decisions: Vec<Decision>,
    /// Indices into [`RefState::stays`].
    stays: Vec<usize>,
    /// No new stay starts before this day.
    busy_until: Option<Day>,
    /// The departure was recorded.
    departed: bool,
    months: Vec<MonthUse>,
}

/// An absence as it happened.
#[derive(Debug, Clone)]
struct Stay {
    client: usize,
    /// First instant.
    from: i64,
    /// End (exclusive); `None` for a death or a move.
    to: Option<i64>,
    /// Registration of its first version.
    recorded: i64,
}

/// The reference data of one simulation.
#[derive(Debug, Default)]
pub(super) struct RefState {
    clients: Vec<ClientRef>,
    stays: Vec<Stay>,
    next_absence: u64,
    /// Pattern 16: (scenario, registration of the revocation).
    revocations: Vec<(usize, i64)>,
    /// Pattern 11: (scenario, client who died, day of death) billed after.
    dead: Vec<(usize, usize, Day)>,
    /// Clients of the first day whose decisions were emitted.
    opened: bool,
    /// Clients who changed provider today, whose decisions are not yet
    /// ordered from the new one.
    pub(super) moved: Vec<usize>,
}

impl RefState {
    fn client(&mut self, c: usize) -> &mut ClientRef {
        if self.clients.len() <= c {
            self.clients.resize_with(c + 1, ClientRef::default);
        }
        &mut self.clients[c]
    }
}

fn ceil30(minutes: f64) -> u32 {
    ((minutes / 30.0).ceil() * 30.0).max(0.0) as u32
}

/// The minutes per month of each decision of client `c`: the internal
/// grant, raised to what a month can naturally hold.
fn decision_minutes(w: &World, c: usize) -> [u32; 6] {
    let cl = &w.clients[c];
    let mut m = cl.granted;
    match &cl.plan {
        Plan::Home(h) => {
            let service: f64 =
                h.service.iter().map(|s| f64::from(s.planned) * if s.fortnightly.is_some() { 3.0 } else { 5.0 }).sum();
            let i = ServiceType::Service.index();
            m[i] = m[i].max(ceil30(service));
            if h.escort_rate > 0.0 {
                let i = ServiceType::Escort.index();
                m[i] = m[i].max(ceil30(2.0 * f64::from(h.escort_minutes)));
            }
        }
        Plan::Assist(a) => {
            let daily: f64 = a.shifts.iter().map(|x| f64::from(x.1)).sum();
            let days = a.weekdays.iter().filter(|d| **d).count();
            let busiest = (days * 4 + days.min(3)) as f64;
            let i = ServiceType::PersonalAssistance.index();
            m[i] = m[i].max(ceil30(daily * busiest * 1.03));
        }
    }
    if m.iter().all(|&x| x == 0) {
        // The partner of a client with service only: served in the
        // partner's visits, with a small decision of their own.
        m[ServiceType::Service.index()] = 60;
    }
    m
}

fn event(kind: wire::event::Kind) -> wire::Event {
    wire::Event { kind: Some(kind) }
}

impl World<'_> {
    fn decision_event(
        &self,
        c: usize,
        d: &Decision,
        (valid_from, valid_to): (i64, Option<i64>),
        minutes: u32,
        recorded: i64,
    ) -> wire::Event {
        event(wire::event::Kind::GrantedHours(wire::GrantedHours {
            decision_id: d.id.clone(),
            municipality_code: self.cfg.municipality_code.clone(),
            client_ref: self.clients[c].r.clone(),
            service_type: output::service(ServiceType::ALL[d.service]),
            minutes_per_month: i64::from(minutes),
            valid_from: Some(output::ts(valid_from)),
            valid_to: valid_to.map(output::ts),
            recorded_at: Some(output::ts(recorded)),
            retracted: false,
            provider_id: self.providers[d.provider].id.clone(),
        }))
    }

    fn absence_event(
        &self,
        id: &str,
        c: usize,
        kind: wire::AbsenceKind,
        (from, to): (i64, Option<i64>),
        recorded: i64,
    ) -> wire::Event {
        let source = match kind {
            wire::AbsenceKind::HospitalStay => "region-slutenvard",
            wire::AbsenceKind::ShortTermCare => "korttid",
            _ => "skatteverket",
        };
        event(wire::event::Kind::ClientAbsence(wire::ClientAbsence {
            absence_id: id.to_string(),
            municipality_code: self.cfg.municipality_code.clone(),
            client_ref: self.clients[c].r.clone(),
            kind: kind as i32,
            from: Some(output::ts(from)),
            to: to.map(output::ts),
            source: source.to_string(),
            recorded_at: Some(output::ts(recorded)),
            retracted: false,
        }))
    }

    fn permit_event(
        &self,
        p: usize,
        k: u32,
        status: wire::PermitStatus,
        valid: (i64, Option<i64>),
        recorded: i64,
    ) -> wire::Event {
        event(wire::event::Kind::ProviderPermit(wire::ProviderPermit {
            permit_id: format!("{}tillstand-{p:03}-{k}", self.cfg.event_id_prefix),
            provider_id: self.providers[p].id.clone(),
            municipality_code: self.cfg.municipality_code.clone(),
            status: status as i32,
            valid_from: Some(output::ts(valid.0)),
            valid_to: valid.1.map(output::ts),
            recorded_at: Some(output::ts(recorded)),
            retracted: false,
        }))
    }

    /// Records the decisions of client `c` valid from `valid_from` (local
    /// day `from`) and registered at `recorded`.
    fn open_decisions(&mut self, c: usize, from: Day, valid_from: i64, recorded: i64, out: &mut Outbox) {
        let minutes = decision_minutes(self, c);
        let prefix = self.cfg.event_id_prefix.clone();
        let mut decisions = Vec::new();
        for (s, &m) in minutes.iter().enumerate().filter(|(_, m)| **m > 0) {
            let d = Decision {
                id: format!("{prefix}beslut-{c:06}-{s}"),
                valid_from,
                service: s,
                steps: vec![(from, m)],
                provider: self.clients[c].provider,
                orders: 0,
            };
            out.push(recorded, self.decision_event(c, &d, (valid_from, None), m, recorded));
            decisions.push(d);
        }
        if let Some(r) = self.reference.as_mut() {
            r.client(c).decisions = decisions;
        }
    }

    /// Chooses the providers of the reference patterns (honest private
    /// home-care providers with clients) and draws their scenarios.
    pub(super) fn choose_reference_frauds(&mut self) {
        if self.cfg.fraudulent_providers == 0 {
            return;
        }
        let cfg = self.cfg;
        let mut rng = Rng::new(cfg.seed, &[tag::REFERENCE, sub::SETUP]);
        let taken: BTreeSet<usize> = self.scenarios.iter().map(|s| s.provider).collect();
        let mut free: Vec<usize> = (1..self.providers.len())
            .filter(|&p| {
                let pr = &self.providers[p];
                pr.kind == Kind::HomeCare && pr.initial_clients >= 8 && !taken.contains(&p)
            })
            .collect();
        rng.shuffle(&mut free);
        // Steady providers first: a growing one stays honest if it can.
        free.sort_by_key(|&p| self.providers[p].extra_growth > 0.0);
        let first_month = self.first_day.month();
        let last = i64::from(cfg.months) - 1;
        let mut instances = [0u32; 3];
        for (k, &p) in free.iter().take(PATTERNS.len() * PER_PATTERN).enumerate() {
            let pattern = PATTERNS[k % PATTERNS.len()];
            let variant = instances[k % PATTERNS.len()];
            instances[k % PATTERNS.len()] += 1;
            let month = Month(first_month.0 + rng.int(1.min(last), 3.min(last)) as i32);
            let mut day = month.first_day().plus(rng.int(0, 20) as i32);
            if day >= self.end_day {
                day = month.first_day();
            }
            let u = cfg.intensity.draw(&mut rng);
            let (strength, strength2, days_p) = match pattern {
                // Each day of a client's absence visited anyway: a fifth
                // (subtle) to every one (blatant).
                11 => (0.0, 0.0, fraud::lerp(0.2, 1.0, u)),
                // The second instance pads every client to about the grant.
                15 if variant % 2 == 1 => (1.0, fraud::lerp(1.06, 1.15, u), 0.0),
                15 => (fraud::lerp(0.15, 0.6, u), fraud::lerp(1.3, 2.5, u), 0.0),
                // A revoked permit is one fact: no intensity.
                _ => (0.0, 0.0, 0.0),
            };
            let u = if pattern == 16 { 1.0 } else { u };
            let note = match pattern {
                11 if variant == 0 => format!(
                    "visits registered and invoiced on {:.0} % of the days a client is in hospital \
                     (billing-during-absence); each month also an invoice line for a client who died before the \
                     month",
                    days_p * 100.0
                ),
                11 => format!(
                    "visits registered and invoiced on {:.0} % of the days a client is in hospital \
                     (billing-during-absence)",
                    days_p * 100.0
                ),
                15 if variant % 2 == 1 => format!(
                    "every client's visits planned, performed and invoiced at about {:.0} % of the granted hours, \
                     each month within the tolerance (granted-hours-utilisation)",
                    population::PLAN_SHARE * strength2 * 100.0
                ),
                15 => format!(
                    "{:.0} % of clients get visits planned, performed and invoiced at about {strength2:.1} times \
                     their granted hours (above-granted-hours)",
                    strength * 100.0
                ),
                _ => "the provider register records the permit revoked; the provider keeps visiting and \
                      invoicing (provider-without-permit)"
                    .to_string(),
            };
            let strengths = (strength, strength2, days_p);
            let mut scenario = Scenario::new(p, (pattern, variant), day.start().0, None, strengths, note);
            scenario.intensity = u;
            self.scenarios.push(scenario);
        }
        // Pattern 15's third form, on one more provider (drawn after the
        // others, which keep their draws): it keeps registering the clients
        // who moved away from it (`changes`), each within its grant on its
        // own, over it together with the new provider's care.
        if let Some(&p) = free.get(PATTERNS.len() * PER_PATTERN)
            && last >= 2
        {
            let month = Month(first_month.0 + rng.int(1, 2.min(last - 1)) as i32);
            let day = month.first_day().plus(rng.int(0, 14) as i32);
            let note = "three clients move to another provider, a week after the start and ten days apart; the \
                        provider goes on planning, registering and invoicing their visits as before, within each \
                        grant on its own, over it together with the new provider (client-hours-above-granted)"
                .to_string();
            // Three moved clients billed on: one form, no intensity (1).
            self.scenarios.push(Scenario::new(p, (15, 2), day.start().0, None, (0.0, 0.0, 0.0), note));
        }
    }

    /// Pattern 15: the scale of client `c`'s plan at provider `p`, if it is
    /// one of the clients the provider takes over their grant.
    pub(super) fn over_grant(&self, p: usize, c: usize, day_start: i64) -> Option<(usize, f64)> {
        self.reference.as_ref()?;
        let s = self.active(p, 15, day_start)?;
        let sc = &self.scenarios[s];
        // Performed time is about 87 % of what a plan schedules over its
        // grant's 90 %.
        (fraud::client_unit(self.cfg.seed, s, c) < sc.strength).then_some((s, sc.strength2 / 0.87))
    }

    /// Whether provider `p` visits its clients who are away (pattern 11).
    pub(super) fn bills_absent(&self, p: usize, day_start: i64) -> bool {
        self.reference.is_some() && self.active(p, 11, day_start).is_some()
    }

    /// Whether provider `p` visits its client `c`, away on `day`, anyway
    /// (pattern 11: a stable draw per client and day, at the scenario's
    /// share of days).
    pub(super) fn visits_absent_client(&self, p: usize, c: usize, day: Day) -> bool {
        if self.reference.is_none() {
            return false;
        }
        let Some(s) = self.active(p, 11, day.start().0) else { return false };
        Rng::new(self.cfg.seed, &[tag::FRAUD_DAY, s as u64, c as u64, day.0 as u64]).chance(self.scenarios[s].days_p)
    }

    /// The stay of client `c` overlapping `[lo, hi)`, if any.
    /// Whether client `c` has an absence that ends after `t` or none
    /// registered yet (reference data off: never).
    pub(super) fn absence_ahead(&self, c: usize, t: i64) -> bool {
        self.stay_overlapping(c, t, i64::MAX).is_some()
            || self
                .reference
                .as_ref()
                .and_then(|r| r.clients.get(c))
                .is_some_and(|x| x.busy_until.is_some_and(|b| b.start().0 > t))
    }

    fn stay_overlapping(&self, c: usize, lo: i64, hi: i64) -> Option<&Stay> {
        let r = self.reference.as_ref()?;
        r.clients.get(c)?.stays.iter().map(|&i| &r.stays[i]).find(|s| s.from < hi && s.to.is_none_or(|to| to > lo))
    }

    /// The grant of client `c` for service `s` in `month` (each step pro
    /// rata by its days); `None` without a decision.
    fn grant(&self, c: usize, s: usize, month: Month) -> Option<f64> {
        let r = self.reference.as_ref()?;
        let first = month.first_day();
        let days = month.next().first_day().0 - first.0;
        let mut total = None;
        for d in r.clients.get(c)?.decisions.iter().filter(|d| d.service == s) {
            let mut sum = 0.0;
            for k in 0..days {
                let day = first.plus(k);
                if let Some(&(_, m)) = d.steps.iter().rev().find(|(from, _)| *from <= day) {
                    sum += f64::from(m) / f64::from(days);
                }
            }
            *total.get_or_insert(0.0) += sum;
        }
        total
    }

    /// Client `c`'s use of `month`, its grants computed.
    fn month_use(&mut self, c: usize, month: Month) -> &mut MonthUse {
        let caps: [Option<f64>; 6] = std::array::from_fn(|s| self.grant(c, s, month));
        let Some(r) = self.reference.as_mut() else { unreachable!("reference data is on") };
        let cr = r.client(c);
        let i = match cr.months.iter().position(|m| m.month == month) {
            Some(i) => i,
            None => {
                cr.months.retain(|m| m.month.0 >= month.0 - 1);
                cr.months.push(MonthUse { month, planned: [0; 6], performed: [0; 6], moved_away: [0; 6], caps: None });
                cr.months.len() - 1
            }
        };
        let u = &mut cr.months[i];
        if u.caps.is_none() {
            u.caps = Some(caps);
        }
        u
    }

    /// With reference data: drops the parts of honest visit requests that
    /// overlap a client's absence or would take the client's month over
    /// the grant; at a provider billing during absences (pattern 11) keeps
    /// them and flags them instead. Without reference data: nothing.
    pub(super) fn reference_filter(&mut self, p: usize, day: Day, reqs: &mut Vec<Request>) {
        if self.reference.is_none() {
            return;
        }
        let fraud11 = self.active(p, 11, day.start().0);
        let inflating = |w: &World, r: &Request| {
            r.flags.iter().flatten().any(|&s| matches!(w.scenarios[s].pattern, 6 | 10 | 11 | 14 | 15))
        };
        let mut kept = Vec::with_capacity(reqs.len());
        for mut r in std::mem::take(reqs) {
            let longest = r.parts.iter().map(|x| i64::from(x.planned)).max().unwrap_or(0);
            let (lo, hi) = (r.pref - 600, r.latest + longest * 90 + 1800);
            let mut parts = Vec::with_capacity(r.parts.len());
            for part in std::mem::take(&mut r.parts) {
                if self.stay_overlapping(part.client, lo, hi).is_some() {
                    match fraud11 {
                        Some(s) => flag(&mut r.flags, s),
                        None => continue,
                    }
                }
                parts.push(part);
            }
            r.parts = parts;
            if !inflating(self, &r) {
                let month = EventTime(r.pref).month();
                let s = r.service.index();
                let factor = if r.double { 2 } else { 1 };
                let mut parts = Vec::with_capacity(r.parts.len());
                for part in std::mem::take(&mut r.parts) {
                    let need = i64::from(part.planned) * factor;
                    let u = self.month_use(part.client, month);
                    let cap = u.caps.and_then(|c| c[s]);
                    let used = u.planned[s].max(u.performed[s]);
                    if cap.is_some_and(|cap| (used + need) as f64 > cap) {
                        continue;
                    }
                    u.planned[s] += need;
                    parts.push(part);
                }
                r.parts = parts;
            }
            if !r.parts.is_empty() {
                kept.push(r);
            }
        }
        *reqs = kept;
    }

    /// With reference data: counts the day's time reports (those that are
    /// emitted: `reported` is when each arrives) against the grants, in
    /// check-in order, and marks the evidence of patterns 11, 15 and 16 at
    /// the arrival of the report that shows it (or of the reference record
    /// it is seen against, if that comes later).
    pub(super) fn reference_observe(&mut self, recs: &[Rec], reported: &[Option<i64>]) {
        if self.reference.is_none() {
            return;
        }
        let mut order: Vec<(usize, i64)> = reported.iter().enumerate().filter_map(|(i, r)| r.map(|r| (i, r))).collect();
        order.sort_by_key(|&(i, _)| (recs[i].check_in, i));
        let revocations = self.reference.as_ref().map(|r| r.revocations.clone()).unwrap_or_default();
        for (i, arrived) in order {
            let rec = &recs[i];
            let s_index = rec.service.index();
            let month = EventTime(rec.check_in).month();
            let left =
                rec.flags.iter().flatten().any(|&s| self.scenarios[s].pattern == 15 && self.scenarios[s].variant == 2);
            let u = self.month_use(rec.client, month);
            let minutes = (rec.check_out - rec.check_in) / 60;
            if left {
                u.moved_away[s_index] += minutes;
            } else {
                u.performed[s_index] += minutes;
            }
            let (performed, cap) = (u.performed[s_index], u.caps.and_then(|c| c[s_index]));
            let together = performed + u.moved_away[s_index];
            let over =
                |minutes: i64| cap.is_some_and(|g| minutes as f64 > g * (1.0 + OVER_GRANT_SHARE) + OVER_GRANT_MIN);
            for s in rec.flags.iter().flatten().copied() {
                let sc = &self.scenarios[s];
                match sc.pattern {
                    // Registering a client who moved away: seen at its
                    // first visit after the two providers' minutes together
                    // went over the grant.
                    15 if sc.variant == 2 && over(together) => self.scenarios[s].observe(arrived),
                    15 if sc.variant == 2 => {}
                    // Padding every client (strength 1): seen once two
                    // weeks of it can be compared with the grants.
                    15 if sc.strength >= 1.0 && rec.check_in >= sc.start + PADDING_SEEN_AFTER => {
                        self.scenarios[s].observe(arrived);
                    }
                    15 if sc.strength < 1.0 && over(performed) => {
                        self.scenarios[s].observe(arrived);
                    }
                    // A visit inside a stay, not on the day of admission or
                    // of discharge (those are honest at one end of the day).
                    11 => {
                        let day = EventTime(rec.check_in).day();
                        let inside = self
                            .stay_overlapping(rec.client, rec.check_in, rec.check_in + 1)
                            .filter(|st| {
                                day > EventTime(st.from).day() && st.to.is_none_or(|to| day < EventTime(to - 1).day())
                            })
                            .map(|st| st.recorded.max(arrived));
                        if let Some(at) = inside {
                            self.scenarios[s].observe(at);
                        }
                    }
                    _ => {}
                }
            }
            for &(s, recorded) in &revocations {
                if self.scenarios[s].provider == rec.provider && rec.check_in >= self.scenarios[s].start {
                    self.scenarios[s].observe(arrived.max(recorded));
                }
            }
        }
    }

    /// Pattern 11's invoice lines for `month`: clients of scenario `s` who
    /// died before it, billed their usual care.
    pub(super) fn absent_lines(&self, s: usize, month: Month) -> Vec<(String, ServiceType, i64)> {
        let Some(r) = self.reference.as_ref() else { return Vec::new() };
        r.dead
            .iter()
            .filter(|&&(sc, _, died)| sc == s && died < month.first_day())
            .map(|&(_, c, _)| {
                let g = decision_minutes(self, c);
                let (service, minutes) = if g[ServiceType::PersonalCare.index()] > 0 {
                    (ServiceType::PersonalCare, g[ServiceType::PersonalCare.index()])
                } else {
                    (ServiceType::Service, g[ServiceType::Service.index()].max(60))
                };
                let billed = (f64::from(minutes) * 0.85 / 5.0).round() as i64 * 5;
                (self.clients[c].r.clone(), service, billed.max(30))
            })
            .collect()
    }

    /// Records a departure (death or move) of client `c` on `day`.
    fn record_departure(&mut self, c: usize, day: Day, death: bool, rng: &mut Rng, out: &mut Outbox) {
        let from = at_local(day, 360 + rng.int(0, 600)) + rng.int(0, 59) * 60;
        let recorded = from + if death { rng.int(3600, 4 * 86_400) } else { rng.int(86_400, 7 * 86_400) };
        let kind = if death { wire::AbsenceKind::Death } else { wire::AbsenceKind::MovedAway };
        let Some(r) = self.reference.as_mut() else { return };
        r.next_absence += 1;
        let id = format!("{}franvaro-{:06}", self.cfg.event_id_prefix, r.next_absence);
        r.stays.push(Stay { client: c, from, to: None, recorded });
        let k = r.stays.len() - 1;
        let cr = r.client(c);
        cr.stays.push(k);
        cr.departed = true;
        let e = self.absence_event(&id, c, kind, (from, None), recorded);
        out.push(recorded, e);
    }
}

impl Simulation<'_> {
    /// With reference data: emits what is recorded before the first day
    /// (the provider register, its later entries, the decisions of the
    /// first day's clients). Call once, before the first day.
    pub fn open_reference(&mut self, out: &mut Outbox) -> Result<()> {
        let w = &mut self.w;
        if w.reference.as_ref().is_none_or(|r| r.opened) {
            return Ok(());
        }
        let mut rng = Rng::new(w.cfg.seed, &[tag::REFERENCE, sub::OPEN]);
        let start = w.first_day;
        // The register: a valid entry for every provider.
        let fraudulent: BTreeSet<usize> = w.scenarios.iter().map(|s| s.provider).collect();
        let honest: Vec<usize> = (1..w.providers.len())
            .filter(|&p| w.providers[p].kind != Kind::Municipal && !fraudulent.contains(&p))
            .collect();
        let renewed = rng.pick(&honest).copied();
        let last = i64::from(w.cfg.months) - 1;
        for p in 0..w.providers.len() {
            let valid_from = start.plus(-(rng.int(200, 3000) as i32)).start().0;
            let recorded = valid_from - rng.int(86_400, 20 * 86_400);
            if Some(p) == renewed && last >= 1 {
                let month = Month(start.month().0 + rng.int(1, 3.min(last)) as i32);
                let ends = month.first_day().start().0;
                let e = w.permit_event(p, 1, wire::PermitStatus::Valid, (valid_from, Some(ends)), recorded);
                out.push(recorded, e);
                let renewal = ends - rng.int(10, 40) * 86_400 + rng.int(8 * 3600, 16 * 3600);
                out.push(renewal, w.permit_event(p, 2, wire::PermitStatus::Valid, (ends, None), renewal));
            } else {
                out.push(recorded, w.permit_event(p, 1, wire::PermitStatus::Valid, (valid_from, None), recorded));
            }
        }
        // Pattern 16: the revocations.
        for s in 0..w.scenarios.len() {
            if w.scenarios[s].pattern != 16 {
                continue;
            }
            let from = w.scenarios[s].start;
            let recorded = from + rng.int(8 * 3600, 2 * 86_400);
            let p = w.scenarios[s].provider;
            out.push(recorded, w.permit_event(p, 3, wire::PermitStatus::Revoked, (from, None), recorded));
            if let Some(r) = w.reference.as_mut() {
                r.revocations.push((s, recorded));
            }
        }
        // The first day's clients: decisions made long before.
        for c in 0..w.clients.len() {
            let from = start.plus(-(rng.int(20, 1500) as i32));
            let valid_from = from.start().0;
            let recorded = valid_from - rng.int(0, 5 * 86_400) - rng.int(0, 8 * 3600);
            w.open_decisions(c, from, valid_from, recorded, out);
        }
        if let Some(r) = w.reference.as_mut() {
            r.opened = true;
        }
        Ok(())
    }
}

impl World<'_> {
    /// With reference data, after the day's arrivals and departures:
    /// decisions of new clients (whose care starts 2–5 days later),
    /// departures, revisions, hospital stays and short-term care, and the
    /// pattern 11 death; `arrived` is the first client index created today.
    pub(super) fn reference_day(&mut self, day: Day, arrived: usize, out: &mut Outbox) {
        if self.reference.is_none() {
            return;
        }
        let mut rng = Rng::new(self.cfg.seed, &[tag::REFERENCE, sub::DAY, day.0 as u64]);
        let day_start = day.start().0;
        // New clients: the decision first, the care a few days later.
        for c in arrived..self.clients.len() {
            let from = day.plus(rng.int(2, 5) as i32);
            self.clients[c].from = from;
            self.clients[c].absent_until = from;
            let recorded = at_local(day, rng.int(480, 960)) + rng.int(0, 59);
            self.open_decisions(c, from, from.start().0, recorded, out);
        }
        // Departures: a death or a move, recorded within days.
        for c in 0..arrived {
            let cl = &self.clients[c];
            let recorded = self.reference.as_ref().and_then(|r| r.clients.get(c)).is_some_and(|x| x.departed);
            if cl.until == Some(day) && cl.home_plan().is_some() && !recorded {
                let death = rng.chance(DEATH_SHARE);
                self.record_departure(c, day, death, &mut rng, out);
            }
        }
        // Pattern 11 (first instance): a client dies on the first day and is
        // billed every month after.
        for s in 0..self.scenarios.len() {
            let sc = &self.scenarios[s];
            let done = self.reference.as_ref().is_some_and(|r| r.dead.iter().any(|d| d.0 == s));
            if sc.pattern != 11 || sc.variant != 0 || !sc.activated || !sc.active(day_start) || done {
                continue;
            }
            let p = sc.provider;
            let candidates: Vec<usize> = self.prov_clients[p]
                .iter()
                .copied()
                .filter(|&c| {
                    let cl = &self.clients[c];
                    cl.present(day) && cl.from < day && cl.partner.is_none() && cl.home_plan().is_some()
                })
                .filter(|&c| self.stay_overlapping(c, day_start, i64::MAX).is_none())
                .collect();
            if let Some(&c) = rng.pick(&candidates) {
                self.clients[c].until = Some(day);
                self.record_departure(c, day, true, &mut rng, out);
                if let Some(r) = self.reference.as_mut() {
                    r.dead.push((s, c, day));
                }
            }
        }
        // Stays already under way: no visits on their whole days.
        let inner: Vec<(usize, Day)> = self
            .reference
            .as_ref()
            .map(|r| {
                r.stays
                    .iter()
                    .filter_map(|st| {
                        let to = st.to?;
                        let (admitted, discharged) = (EventTime(st.from).day(), EventTime(to).day());
                        (admitted.plus(1) == day && discharged > day).then_some((st.client, discharged))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (c, discharged) in inner {
            let cl = &mut self.clients[c];
            cl.absent_until = cl.absent_until.max(discharged);
        }
        self.revisions(day, &mut rng, out);
        self.admissions(day, &mut rng, out);
    }

    /// On the first of a month (not the first): honest noise, care raised
    /// for a few clients, the decisions' new versions valid from the 1st.
    fn revisions(&mut self, day: Day, rng: &mut Rng, out: &mut Outbox) {
        if day.month().first_day() != day || day == self.first_day {
            return;
        }
        let fraudulent: BTreeSet<usize> = self.scenarios.iter().map(|s| s.provider).collect();
        for c in 0..self.clients.len() {
            let cl = &self.clients[c];
            let eligible = !fraudulent.contains(&cl.provider)
                && cl.present(day)
                && cl.from < day
                && cl.partner.is_none()
                && cl.home_plan().is_some_and(|h| !h.slots.is_empty());
            if !eligible || !rng.chance(REVISION_PER_MONTH) {
                continue;
            }
            let f = rng.range(1.2, 1.5);
            let recorded = at_local(day.plus(rng.int(0, 2) as i32), rng.int(480, 960)) + rng.int(0, 59);
            let Plan::Home(plan) = &mut self.clients[c].plan else { continue };
            for slot in &mut plan.slots {
                let max = if slot.minute >= 1200 { 30 } else { 60 };
                slot.planned =
                    ((f64::from(slot.planned) * f / 5.0).round() as u32 * 5).clamp(10, max).max(slot.planned);
            }
            let granted = population::granted_of(plan);
            self.clients[c].granted = granted;
            let minutes = decision_minutes(self, c);
            let prefix = self.cfg.event_id_prefix.clone();
            let Some(mut cr) = self.reference.as_mut().map(|r| std::mem::take(r.client(c))) else { return };
            for (s, &m) in minutes.iter().enumerate() {
                match cr.decisions.iter_mut().find(|d| d.service == s) {
                    Some(d) if d.steps.last().is_some_and(|x| x.1 < m) => {
                        // The decision in force ends where the new one starts.
                        let (old, from) = (d.steps.last().map_or(0, |x| x.1), day.start().0);
                        out.push(recorded, self.decision_event(c, d, (d.valid_from, Some(from)), old, recorded));
                        d.steps.push((day, m));
                        d.id = format!("{prefix}beslut-{c:06}-{s}-{}", d.steps.len() - 1);
                        d.valid_from = from;
                        out.push(recorded, self.decision_event(c, d, (from, None), m, recorded));
                    }
                    None if m > 0 => {
                        let from = day.start().0;
                        let d = Decision {
                            id: format!("{prefix}beslut-{c:06}-{s}"),
                            valid_from: from,
                            service: s,
                            steps: vec![(day, m)],
                            provider: self.clients[c].provider,
                            orders: 0,
                        };
                        out.push(recorded, self.decision_event(c, &d, (from, None), m, recorded));
                        cr.decisions.push(d);
                    }
                    _ => {}
                }
            }
            cr.months.iter_mut().for_each(|u| u.caps = None);
            if let Some(r) = self.reference.as_mut() {
                *r.client(c) = cr;
            }
        }
    }

    /// The orders of the clients who changed provider on `day`: each
    /// decision in force ends that day and a new one, the same grant,
    /// names the new provider from it, registered at 06:00 (a decision
    /// that starts that day is corrected to name it instead).
    pub(super) fn record_orders(&mut self, day: Day, out: &mut Outbox) {
        let Some(moved) = self.reference.as_mut().map(|r| std::mem::take(&mut r.moved)) else { return };
        let (from, recorded) = (day.start().0, at_local(day, 360));
        let prefix = self.cfg.event_id_prefix.clone();
        for c in moved {
            let Some(mut cr) = self.reference.as_mut().map(|r| std::mem::take(r.client(c))) else { return };
            let to = self.clients[c].provider;
            for d in cr.decisions.iter_mut().filter(|d| d.provider != to) {
                let minutes = d.steps.last().map_or(0, |x| x.1);
                if d.valid_from < from {
                    out.push(recorded, self.decision_event(c, d, (d.valid_from, Some(from)), minutes, recorded));
                    d.orders += 1;
                    d.id = format!("{prefix}beslut-{c:06}-{}-o{}", d.service, d.orders);
                    d.valid_from = from;
                }
                d.provider = to;
                out.push(recorded, self.decision_event(c, d, (d.valid_from, None), minutes, recorded));
            }
            if let Some(r) = self.reference.as_mut() {
                *r.client(c) = cr;
            }
        }
    }

    /// Today's hospital admissions and arranged short-term care.
    fn admissions(&mut self, day: Day, rng: &mut Rng, out: &mut Outbox) {
        let day_start = day.start().0;
        for c in 0..self.clients.len() {
            let cl = &self.clients[c];
            if cl.home_plan().is_none() || !cl.present(day) || cl.from >= day {
                continue;
            }
            let busy = self.reference.as_ref().and_then(|r| r.clients.get(c)).and_then(|x| x.busy_until);
            if busy.is_some_and(|b| day < b) {
                continue;
            }
            let p_hospital =
                if self.bills_absent(cl.provider, day_start) { FRAUD_HOSPITAL_PER_DAY } else { HOSPITAL_PER_DAY };
            let u = rng.unit();
            if u < p_hospital {
                self.hospital_stay(c, day, rng, out);
            } else if u < p_hospital + SHORT_TERM_PER_DAY {
                self.short_term_care(c, day, rng, out);
            }
        }
    }

    fn new_absence_id(&mut self) -> String {
        let Some(r) = self.reference.as_mut() else { return String::new() };
        r.next_absence += 1;
        format!("{}franvaro-{:06}", self.cfg.event_id_prefix, r.next_absence)
    }

    fn push_stay(&mut self, st: Stay, busy_until: Day) {
        let Some(r) = self.reference.as_mut() else { return };
        let c = st.client;
        r.stays.push(st);
        let k = r.stays.len() - 1;
        let cr = r.client(c);
        cr.stays.push(k);
        cr.busy_until = Some(busy_until);
    }

    /// A hospital stay from today: registered at admission (or 1–3 days
    /// late) with its end open, corrected at discharge.
    fn hospital_stay(&mut self, c: usize, day: Day, rng: &mut Rng, out: &mut Outbox) {
        let admitted = at_local(day, rng.int(600, 1080)) + rng.int(0, 59) * 60;
        let u = rng.unit();
        let discharged = if u < 0.1 {
            // A short admission: home the same evening or the next day.
            if rng.chance(0.5) {
                admitted + rng.int(3 * 3600, 8 * 3600)
            } else {
                at_local(day.plus(1), rng.int(600, 900))
            }
        } else {
            let days = if u < 0.95 { rng.int(2, 14) } else { rng.int(15, 35) };
            at_local(day.plus(days as i32), rng.int(600, 900)) + rng.int(0, 59) * 60
        };
        let recorded = if rng.chance(LATE_REGISTRATION) {
            admitted + rng.int(86_400, 3 * 86_400)
        } else {
            admitted + rng.int(300, 7200)
        };
        let correction = discharged + rng.int(600, 4 * 3600);
        let id = self.new_absence_id();
        let kind = wire::AbsenceKind::HospitalStay;
        let known_end = (discharged < self.activity_end).then_some(discharged);
        if known_end.is_some() && correction <= recorded {
            // Registered after the discharge: one version with both ends.
            out.push(recorded, self.absence_event(&id, c, kind, (admitted, known_end), recorded));
        } else {
            out.push(recorded, self.absence_event(&id, c, kind, (admitted, None), recorded));
            if known_end.is_some() {
                out.push(correction, self.absence_event(&id, c, kind, (admitted, known_end), correction));
            }
        }
        let busy = EventTime(discharged).day().plus(rng.int(7, 30) as i32);
        self.push_stay(Stay { client: c, from: admitted, to: Some(discharged), recorded }, busy);
    }

    /// A stay in short-term care arranged today, starting in 3–7 days for
    /// 7–21 days, registered with both ends.
    fn short_term_care(&mut self, c: usize, day: Day, rng: &mut Rng, out: &mut Outbox) {
        let recorded = at_local(day, rng.int(480, 960)) + rng.int(0, 59);
        let start = day.plus(rng.int(3, 7) as i32);
        let from = at_local(start, rng.int(600, 840));
        let to = at_local(start.plus(rng.int(7, 21) as i32), rng.int(600, 840));
        let id = self.new_absence_id();
        let end = (to < self.activity_end).then_some(to);
        out.push(recorded, self.absence_event(&id, c, wire::AbsenceKind::ShortTermCare, (from, end), recorded));
        let busy = EventTime(to).day().plus(rng.int(7, 30) as i32);
        self.push_stay(Stay { client: c, from, to: Some(to), recorded }, busy);
    }
}
