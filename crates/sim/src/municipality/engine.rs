//! The world and the day loop.
//!
//! Each simulated day: flush events that have arrived, issue due invoices,
//! let clients leave, fall ill and arrive, start due fraud scenarios, plan
//! and perform every provider's visits (day shifts, assistance shifts, the
//! municipal night patrol, unauthorised night visits), inject the
//! staff-level fraud, then turn the day's records into time reports with
//! ids and arrival times.

use anyhow::Result;

use super::config::SimConfig;
use super::fraud::{self, Scenario};
use super::geo::{self, Geo, at_local};
use super::invoice::{self, Ledger};
use super::output::{self, Outbox};
use super::population::{self, Client, DAYS_PER_MONTH, Kind, Plan, Provider, Refs, Role, Staff};
use super::reference::RefState;
use super::rng::{Rng, tag};
use super::schedule::{self, Duty, Flags, Part, Rec, RegCtx, Request, flag};
use crate::labels::{GroundTruth, ProviderInfo};
use tillsyn_core::model::{Day, EventTime, Month, RegistrationMethod, ServiceType};
use tillsyn_core::proto::v1 as wire;

/// Planned visit minutes one staff member covers in the morning peak
/// (06:30–10:00) and the evening peak (17:30–21:30).
const PEAK_CAPACITY_MIN: (f64, f64) = (115.0, 110.0);
/// Planned visit minutes a full-shift staff member covers outside the peak
/// (10:00–14:00 mornings, 14:00–17:30 evenings).
const QUIET_CAPACITY_MIN: (f64, f64) = (170.0, 150.0);
/// Planned visit minutes (plus driving allowance) one night shift covers.
const NIGHT_CAPACITY_MIN: f64 = 240.0;
/// Probability that a staff member is off sick on a rostered day.
const SICK: f64 = 0.045;
/// Probability that a client cancels one visit.
const CLIENT_CANCELS: f64 = 0.03;
/// Daily probability that a client goes into hospital.
const HOSPITAL_PER_DAY: f64 = 0.0035;

/// Counters for realism checks.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stats {
    pub performed: u64,
    pub cancelled: u64,
    pub time_reports: u64,
    pub invoices: u64,
    /// Paid minutes of home-care day and evening shifts (breaks excluded).
    pub shift_minutes: u64,
}

/// Everything the simulation knows.
pub(super) struct World<'c> {
    pub cfg: &'c SimConfig,
    pub providers: Vec<Provider>,
    pub clients: Vec<Client>,
    pub staff: Vec<Staff>,
    pub prov_clients: Vec<Vec<usize>>,
    pub prov_staff: Vec<Vec<usize>>,
    pub scenarios: Vec<Scenario>,
    /// People with two employers: (first job, second job) staff indices.
    pub second_jobs: Vec<(usize, usize)>,
    /// Honest takeovers: on the day, every client of the first provider
    /// moves to the second, and the first takes no more clients
    /// ([`SimConfig::takeovers`]).
    pub takeovers: Vec<(Day, usize, usize)>,
    pub refs: Refs,
    pub first_day: Day,
    /// First day without visits.
    pub end_day: Day,
    /// Instant after which no visit starts.
    pub activity_end: i64,
    pub stats: Stats,
    /// Reference data and its state ([`SimConfig::reference`]); `None`
    /// when off.
    pub reference: Option<RefState>,
}

/// Runs the simulation; see [`super::simulate`].
pub(super) fn run(cfg: &SimConfig, sink: &mut dyn FnMut(&wire::Event) -> Result<()>) -> Result<(GroundTruth, Stats)> {
    let mut sim = Simulation::new(cfg)?;
    let mut out = Outbox::new(sink);
    sim.open_reference(&mut out)?;
    let mut day = sim.w.first_day;
    while day < sim.w.end_day {
        out.flush_before(day.start().0)?;
        sim.day(day, &mut out)?;
        day = day.plus(1);
    }
    sim.finish(&mut out)?;
    out.flush_all()?;
    let end = sim.end(out.last);
    Ok((sim.truth(end), sim.w.stats))
}

/// One municipality's simulation, stepped a day at a time, so that a
/// region can step several in lockstep into one [`Outbox`].
pub(super) struct Simulation<'c> {
    pub w: World<'c>,
    ledger: Ledger,
    next_invoice_month: Month,
    next_id: u64,
}

impl<'c> Simulation<'c> {
    /// A validated configuration's world at its first day.
    pub fn new(cfg: &'c SimConfig) -> Result<Self> {
        cfg.validate()?;
        let w = World::build(cfg);
        let ledger = Ledger::new(w.providers.len(), &cfg.event_id_prefix);
        let next_invoice_month = w.first_day.month();
        Ok(Simulation { w, ledger, next_invoice_month, next_id: 1 })
    }

    /// Simulates `day` (the caller has flushed what arrived before it).
    pub fn day(&mut self, day: Day, out: &mut Outbox) -> Result<()> {
        let w = &mut self.w;
        // Invoices for a month are issued from day 3 of the next one.
        while self.next_invoice_month < day.month() && day >= self.next_invoice_month.next().first_day().plus(2) {
            invoice::issue(w, &mut self.ledger, self.next_invoice_month, out)?;
            self.next_invoice_month = self.next_invoice_month.next();
        }
        for st in &mut w.staff {
            st.history <<= 1;
        }
        let arrived = w.clients.len();
        w.churn(day);
        w.activate(day);
        w.reference_day(day, arrived, out);
        w.provider_changes(day);
        w.record_orders(day, out);
        w.take_second_jobs(day);
        let mut recs = Vec::new();
        for p in 0..w.providers.len() {
            w.provider_day(p, day, &mut recs);
        }
        w.night_patrol(day, &mut recs);
        w.fraud_nights(day, &mut recs);
        w.relatives(day, &mut recs);
        w.inject(day, &mut recs);
        w.finalize(day, recs, out, &mut self.ledger, &mut self.next_id)
    }

    /// Issues the invoices still due after the last day.
    pub fn finish(&mut self, out: &mut Outbox) -> Result<()> {
        while self.next_invoice_month < self.w.end_day.month() {
            invoice::issue(&mut self.w, &mut self.ledger, self.next_invoice_month, out)?;
            self.next_invoice_month = self.next_invoice_month.next();
        }
        self.w.stats.invoices = self.ledger.issued;
        Ok(())
    }

    /// The truth's end: local midnight after the last arrival (`last`) or
    /// the end of activity, whichever is later.
    pub fn end(&self, last: i64) -> i64 {
        EventTime(last.max(self.w.activity_end)).day().plus(1).start().0
    }

    /// The ground truth of this municipality, ending at `end`.
    pub fn truth(&self, end: i64) -> GroundTruth {
        let (w, cfg) = (&self.w, self.w.cfg);
        GroundTruth {
            seed: cfg.seed,
            start: output::ts(w.first_day.start().0),
            end: output::ts(end),
            providers: w
                .providers
                .iter()
                .map(|p| ProviderInfo {
                    provider_id: p.id.clone(),
                    municipality_code: cfg.municipality_code.clone(),
                    name: p.name.clone(),
                    municipal: p.kind == Kind::Municipal,
                    clients: p.initial_clients,
                })
                .collect(),
            labels: fraud::labels(w, end),
        }
    }
}

impl<'c> World<'c> {
    fn build(cfg: &'c SimConfig) -> Self {
        let first_month = Month::from_ym(cfg.start_year, cfg.start_month);
        let first_day = first_month.first_day();
        let end_month = Month(first_month.0 + cfg.months as i32);
        let end_day = end_month.first_day();
        let providers = population::providers(cfg, &mut Rng::new(cfg.seed, &[tag::PROVIDERS]));
        let n = providers.len();
        let mut w = World {
            cfg,
            providers,
            clients: Vec::new(),
            staff: Vec::new(),
            prov_clients: vec![Vec::new(); n],
            prov_staff: vec![Vec::new(); n],
            scenarios: Vec::new(),
            second_jobs: Vec::new(),
            takeovers: Vec::new(),
            refs: Refs::default(),
            first_day,
            end_day,
            activity_end: end_day.start().0,
            stats: Stats::default(),
            reference: cfg.reference.then(RefState::default),
        };
        w.scenarios = fraud::choose(cfg, &mut w.providers, first_month, end_day);
        // Legitimate growth at a few honest home-care companies.
        let mut rng = Rng::new(cfg.seed, &[tag::PROVIDERS, 1]);
        let fraudulent: Vec<usize> = w.scenarios.iter().map(|s| s.provider).collect();
        let mut honest: Vec<usize> =
            (1..n).filter(|&p| w.providers[p].kind == Kind::HomeCare && !fraudulent.contains(&p)).collect();
        rng.shuffle(&mut honest);
        for &p in honest.iter().take(cfg.growing_providers as usize) {
            w.providers[p].extra_growth = rng.range(fraud::HONEST_GROWTH.0, fraud::HONEST_GROWTH.1);
        }
        if w.reference.is_some() {
            w.choose_reference_frauds();
        }
        // Last, so that every other scenario keeps its index (and draws).
        fraud::add_relatives(cfg, &w.providers, &mut w.scenarios, end_day);
        super::changes::add_collapses(cfg, &w.providers, &mut w.scenarios, first_month, end_day);
        // Honest noise with a stream of its own (every draw above keeps
        // its own), at honest home-care providers that commit no fraud:
        // lock outages, heavier clients and takeovers.
        let mut rng = Rng::new(cfg.seed, &[tag::PROVIDERS, 2]);
        let fraudulent: Vec<usize> = w.scenarios.iter().map(|s| s.provider).collect();
        let mut steady: Vec<usize> = honest
            .iter()
            .copied()
            .skip(cfg.growing_providers as usize)
            .filter(|&p| w.providers[p].initial_clients >= 8 && !fraudulent.contains(&p))
            .collect();
        steady.sort_unstable();
        rng.shuffle(&mut steady);
        let mut steady = steady.into_iter();
        for p in steady.by_ref().take(cfg.heavy_client_providers as usize) {
            w.providers[p].plan_scale = rng.range(1.3, 1.5);
        }
        let days = (end_day.0 - first_day.0).max(1);
        for p in steady.by_ref().take(cfg.lock_outages as usize) {
            let from = first_day.plus((30 + rng.int(0, i64::from((days - 37).max(0)))) as i32);
            w.providers[p].outage = (from < end_day).then(|| (from, rng.int(1, 3) as i32));
        }
        // A provider leaves the customer-choice system and another takes
        // over all its clients at once, from month 2 until a month before
        // the end (so that the months after it are seen).
        for _ in 0..cfg.takeovers {
            let (Some(giver), Some(receiver)) = (steady.next(), steady.next()) else { break };
            let on = first_day.plus((30 + rng.int(0, i64::from((days - 60).max(0)))) as i32);
            if on < end_day {
                w.takeovers.push((on, giver, receiver));
            }
        }
        // Clients at the start.
        let mut rng = Rng::new(cfg.seed, &[tag::CLIENTS]);
        let couple_households = cfg.couple_share / (2.0 - cfg.couple_share);
        for p in 0..n {
            let target = w.providers[p].initial_clients as usize;
            let mut made = 0;
            while made < target {
                if w.providers[p].kind == Kind::Assistance {
                    w.new_assist_client(p, first_day, &mut rng);
                    made += 1;
                } else if target - made >= 2 && rng.chance(couple_households) {
                    w.new_couple(p, first_day, &mut rng);
                    made += 2;
                } else {
                    w.new_home_client(p, first_day, &mut rng, None);
                    made += 1;
                }
            }
        }
        w
    }

    fn outlying_bias(&self, p: usize) -> f64 {
        // The municipal unit serves the villages most; so does a provider
        // whose staff will "drive" impossibly between them (pattern 4).
        let fraud_travel = self.scenarios.iter().any(|s| s.provider == p && s.pattern == 4);
        if fraud_travel {
            2.5
        } else if self.providers[p].kind == Kind::Municipal {
            1.5
        } else {
            1.0
        }
    }

    /// A new single home-care client of provider `p` from `day`.
    pub(super) fn new_home_client(&mut self, p: usize, day: Day, rng: &mut Rng, origin: Option<usize>) -> usize {
        let (mut plan, mut granted) = population::home_plan(rng, self.cfg);
        // A provider with heavier clients: each of its clients needs the
        // plan's care times its scale, and is granted it (the need is the
        // client's: it goes with them to another provider).
        let heavier = self.providers[p].plan_scale;
        if heavier != 1.0 {
            let longer = |planned: u32, cap: f64| ((f64::from(planned) * heavier / 5.0).round() * 5.0).min(cap) as u32;
            for s in &mut plan.slots {
                s.planned = longer(s.planned, 120.0);
            }
            for s in &mut plan.service {
                s.planned = longer(s.planned, 180.0);
            }
            granted = population::granted_of(&plan);
        }
        let home = geo::home(rng, !self.providers[p].whole_area, self.outlying_bias(p));
        let r = self.refs.fresh(rng, "c-", 10);
        self.push_client(Client {
            r,
            provider: p,
            home,
            household: None,
            partner: None,
            plan: Plan::Home(plan),
            granted,
            from: day,
            until: None,
            absent_until: day,
            origin,
            changed_on: None,
        })
    }

    /// A couple sharing a home: the same visit slots, their own durations.
    fn new_couple(&mut self, p: usize, day: Day, rng: &mut Rng) {
        let a = self.new_home_client(p, day, rng, None);
        let household = self.refs.fresh(rng, "h-", 8);
        let (mut plan_b, _) = population::home_plan(rng, self.cfg);
        let plan_a = self.clients[a].home_plan().cloned().unwrap_or_default();
        // Same slots as the partner (no double staffing for couples),
        // own planned minutes; one shared service visit (billed to `a`).
        plan_b.slots = plan_a
            .slots
            .iter()
            .map(|s| population::Slot {
                minute: s.minute,
                planned: (s.planned as i64 + 5 * rng.int(-2, 2)).clamp(10, 60) as u32,
                double: false,
            })
            .collect();
        plan_b.service.clear();
        let granted_b = population::granted_of(&plan_b);
        if let Plan::Home(pa) = &mut self.clients[a].plan {
            pa.slots.iter_mut().for_each(|s| s.double = false);
            self.clients[a].granted = population::granted_of(pa);
        }
        let r = self.refs.fresh(rng, "c-", 10);
        let b = self.push_client(Client {
            r,
            provider: p,
            home: self.clients[a].home,
            household: Some(household.clone()),
            partner: Some(a),
            plan: Plan::Home(plan_b),
            granted: granted_b,
            from: day,
            until: None,
            absent_until: day,
            origin: None,
            changed_on: None,
        });
        self.clients[a].household = Some(household);
        self.clients[a].partner = Some(b);
    }

    fn new_assist_client(&mut self, p: usize, day: Day, rng: &mut Rng) {
        let (mut plan, granted) = population::assist_plan(rng);
        let home = geo::home(rng, false, 1.0);
        for _ in 0..population::team_size(&plan) {
            let s = self.hire(p, Role::Assistant, rng);
            plan.team.push(s);
        }
        let r = self.refs.fresh(rng, "c-", 10);
        self.push_client(Client {
            r,
            provider: p,
            home,
            household: None,
            partner: None,
            plan: Plan::Assist(plan),
            granted,
            from: day,
            until: None,
            absent_until: day,
            origin: None,
            changed_on: None,
        });
    }

    fn push_client(&mut self, c: Client) -> usize {
        let i = self.clients.len();
        self.prov_clients[c.provider].push(i);
        self.clients.push(c);
        i
    }

    /// On the second day (when every provider has staff), gives
    /// [`SimConfig::second_jobs`] staff members of honest home-care
    /// providers a second, part-time evening job at another honest
    /// provider simulated after theirs: the same person (reference and
    /// home), called in there only on days they work their first job,
    /// whose day or morning shift ends hours before the evening starts.
    pub(super) fn take_second_jobs(&mut self, day: Day) {
        if day != self.first_day.plus(1) || self.cfg.second_jobs == 0 {
            return;
        }
        let mut rng = Rng::new(self.cfg.seed, &[tag::SECOND_JOBS]);
        let fraudulent: Vec<usize> = self.scenarios.iter().map(|s| s.provider).collect();
        let honest: Vec<usize> = (1..self.providers.len())
            .filter(|&p| self.providers[p].kind == Kind::HomeCare && !fraudulent.contains(&p))
            .collect();
        let mut first_jobs: Vec<usize> = (0..self.staff.len())
            .filter(|&s| {
                let st = &self.staff[s];
                matches!(st.role, Role::Morning | Role::MorningShort)
                    && honest.contains(&st.provider)
                    && honest.iter().any(|&b| b > st.provider)
            })
            .collect();
        rng.shuffle(&mut first_jobs);
        for &s in first_jobs.iter().take(self.cfg.second_jobs as usize) {
            let later: Vec<usize> = honest.iter().copied().filter(|&b| b > self.staff[s].provider).collect();
            let Some(&b) = rng.pick(&later) else { continue };
            let t = self.hire(b, Role::EveningShort, &mut rng);
            let (r, home) = (self.staff[s].r.clone(), self.staff[s].home);
            let second = &mut self.staff[t];
            second.r = r;
            second.home = home;
            second.second_job_of = Some(s);
            self.second_jobs.push((s, t));
        }
    }

    /// Hires a staff member of provider `p`.
    pub(super) fn hire(&mut self, p: usize, role: Role, rng: &mut Rng) -> usize {
        let shift = match role {
            Role::Morning => {
                let start = [390, 420, 420, 450][rng.below(4)];
                (start, start + 510)
            }
            Role::Evening | Role::EveningShort => {
                let end = if self.providers[p].kind == Kind::Municipal { [1290, 1320][rng.below(2)] } else { 1320 };
                (end - if role == Role::Evening { 510 } else { 270 }, end)
            }
            Role::MorningShort => {
                let start = [420, 450][rng.below(2)];
                (start, start + 330)
            }
            Role::Night => (1305, 1845),
            Role::FraudNight => (1335, 1800),
            Role::Relative => (420, 1260),
            Role::Assistant => (0, 0),
        };
        let r = self.refs.fresh(rng, "s-", 8);
        let i = self.staff.len();
        let home = geo::home(rng, false, 1.0);
        self.staff.push(Staff { r, provider: p, role, history: 0, shift, home, second_job_of: None });
        self.prov_staff[p].push(i);
        i
    }

    /// Departures, hospital stays and arrivals of home-care clients.
    fn churn(&mut self, day: Day) {
        if day == self.first_day {
            return;
        }
        let mut rng = Rng::new(self.cfg.seed, &[tag::CHURN, day.0 as u64]);
        let leave = self.cfg.departures_per_month / DAYS_PER_MONTH;
        let mut active = vec![0usize; self.providers.len()];
        for c in 0..self.clients.len() {
            if self.clients[c].home_plan().is_none() || !self.clients[c].enrolled(day) {
                continue;
            }
            if rng.chance(leave) {
                self.clients[c].until = Some(day);
                if let Some(q) = self.clients[c].partner.take() {
                    self.clients[q].partner = None;
                }
                continue;
            }
            active[self.clients[c].provider] += 1;
            if day >= self.clients[c].absent_until && rng.chance(HOSPITAL_PER_DAY) {
                let until = day.plus(rng.int(2, 12) as i32);
                // With reference data, the stays are those it registers.
                if self.reference.is_none() {
                    self.clients[c].absent_until = until;
                }
            }
        }
        let day_start = day.start().0;
        for (p, &active) in active.iter().enumerate() {
            if self.providers[p].kind == Kind::Assistance {
                continue;
            }
            let rate =
                self.cfg.departures_per_month + self.cfg.municipal_growth_per_month + self.providers[p].extra_growth;
            let n = active as f64;
            for _ in 0..rng.poisson(n * rate.max(0.0) / DAYS_PER_MONTH) {
                self.new_home_client(p, day, &mut rng, None);
            }
            // Pattern 9: a volume explosion on top.
            let explosion =
                self.scenarios.iter().position(|s| s.provider == p && s.pattern == 9 && s.active(day_start));
            if let Some(s) = explosion {
                // A steady stream of recruits (a share of the clients a
                // month, see `fraud::strengths`), arriving in ones and twos.
                self.scenarios[s].backlog += n * self.scenarios[s].strength / DAYS_PER_MONTH;
                self.scenarios[s].recruits.1 += n * fraud::HONEST_GROWTH.1 / DAYS_PER_MONTH;
                while self.scenarios[s].backlog >= 1.0 {
                    self.scenarios[s].backlog -= rng.range(0.7, 1.3);
                    self.new_home_client(p, day, &mut rng, Some(s));
                    self.scenarios[s].recruits.0 += 1;
                }
                let sc = &mut self.scenarios[s];
                if sc.evident_from.is_none() && fraud::growth_evident(sc.recruits.0, sc.recruits.1) {
                    sc.evident_from = Some(day_start);
                }
            }
        }
    }

    /// The active scenario of `pattern` at provider `p` on the day starting
    /// at `day_start`.
    pub(super) fn active(&self, p: usize, pattern: u32, day_start: i64) -> Option<usize> {
        self.scenarios
            .iter()
            .position(|s| s.provider == p && s.pattern == pattern && s.activated && s.active(day_start))
    }

    /// Today's registration habits of provider `p`.
    fn reg_ctx(&self, p: usize, day: Day) -> RegCtx {
        let pr = &self.providers[p];
        let day_start = day.start().0;
        let fraud5 = self.active(p, 5, day_start).map(|s| {
            let sc = &self.scenarios[s];
            let ramp = ((day_start - sc.start) as f64 / 86_400.0 + 1.0) / sc.strength2;
            (s, (pr.manual_share + sc.strength * ramp.min(1.0)).min(1.0))
        });
        // A lock and tag system outage: every visit typed by hand.
        let outage = pr.outage.is_some_and(|(from, n)| day >= from && day.0 < from.0 + n);
        RegCtx {
            manual: if outage { 1.0 } else { pr.manual_share },
            edited_fraction: if outage { 0.0 } else { pr.edited_fraction },
            mobile: pr.mobile_share,
            positions: pr.sends_positions,
            fraud5,
        }
    }

    /// Present clients of provider `p` on `day`.
    pub(super) fn present_clients(&self, p: usize, day: Day) -> Vec<usize> {
        self.prov_clients[p].iter().copied().filter(|&c| self.clients[c].present(day)).collect()
    }

    fn provider_day(&mut self, p: usize, day: Day, recs: &mut Vec<Rec>) {
        let mut rng = Rng::new(self.cfg.seed, &[tag::DAY, p as u64, day.0 as u64]);
        if self.providers[p].kind == Kind::Assistance {
            self.assistance_day(p, day, &mut rng, recs);
            return;
        }
        let mut reqs = self.plan_requests(p, day, &mut rng);
        self.reference_filter(p, day, &mut reqs);
        // Staff for the whole shift and for its peak (mornings 07–10,
        // evenings 17:30–21:30, when most clients want their visits).
        let split = at_local(day, 840);
        let morning_peak = at_local(day, 390)..at_local(day, 600);
        let evening_peak = at_local(day, 1050)..at_local(day, 1290);
        let mut demand = [0.0f64; 4];
        for r in &reqs {
            let minutes: f64 =
                r.parts.iter().map(|x| f64::from(x.planned)).fold(0.0, f64::max) * if r.double { 2.0 } else { 1.0 };
            demand[usize::from(r.pref >= split)] += minutes;
            if morning_peak.contains(&r.pref) {
                demand[2] += minutes;
            } else if evening_peak.contains(&r.pref) {
                demand[3] += minutes;
            }
        }
        // Full shifts cover the quieter hours, part-timers the rest of the
        // peaks.
        let (peak, quiet) = (PEAK_CAPACITY_MIN, QUIET_CAPACITY_MIN);
        let morning = ((demand[0] - demand[2]) / quiet.0).max(f64::from(u8::from(demand[0] > 0.0)));
        let evening = ((demand[1] - demand[3]) / quiet.1).max(f64::from(u8::from(demand[1] > 0.0)));
        let needs = [
            (Role::Morning, morning),
            (Role::Evening, evening),
            (Role::MorningShort, (demand[2] - morning.ceil() * peak.0) / peak.0),
            (Role::EveningShort, (demand[3] - evening.ceil() * peak.1) / peak.1),
        ];
        let mut duties = self.duties(p, day, needs, &mut rng);
        self.stats.shift_minutes += duties.iter().map(|d| (d.end - d.start) / 60 - 30).sum::<i64>() as u64;
        let ctx = self.reg_ctx(p, day);
        let outcome = schedule::assign(&mut rng, &mut duties, reqs, &ctx, p, recs);
        self.stats.performed += u64::from(outcome.performed);
        self.stats.cancelled += u64::from(outcome.cancelled);
    }

    /// Calls in `needed` staff of `role` at `p` for `day`: those who are
    /// not sick and may work (at most five days in seven, days off two at a
    /// time), those who worked yesterday first so that people work in
    /// blocks (typically five on, two off), then those with the fewest days
    /// in the last fortnight; hires when the pool is short.
    fn call_in(&mut self, p: usize, role: Role, day: Day, needed: f64, rng: &mut Rng) -> Vec<usize> {
        let needed = (needed - 0.15).ceil().max(0.0) as usize;
        let mut eligible: Vec<(bool, u32, u64, usize)> = Vec::new();
        for &s in &self.prov_staff[p] {
            let st = &self.staff[s];
            if st.role != role {
                continue;
            }
            let sick = rng.chance(SICK);
            // A second job only on days the first one is worked (that
            // provider's day is simulated first).
            let first_job_off = st.second_job_of.is_some_and(|main| self.staff[main].history & 1 == 0);
            if !sick && st.may_work() && !first_job_off {
                let rotation =
                    (s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (day.0 as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                eligible.push((st.history & 0b10 == 0, (st.history >> 1 & 0x3fff).count_ones(), rotation, s));
            }
        }
        eligible.sort_unstable();
        let mut chosen: Vec<usize> = eligible.iter().take(needed).map(|e| e.3).collect();
        while chosen.len() < needed {
            chosen.push(self.hire(p, role, rng));
        }
        for &s in &chosen {
            self.staff[s].history |= 1;
        }
        chosen
    }

    /// The day's working staff of `p` for the day and evening shifts.
    fn duties(&mut self, p: usize, day: Day, needs: [(Role, f64); 4], rng: &mut Rng) -> Vec<Duty> {
        let day_start = day.start().0;
        let office = self.providers[p].office;
        let mut duties = Vec::new();
        // Pattern 3: the staff member in whose name a second shift is
        // registered works every day.
        let favourite = self.active(p, 3, day_start).and_then(|s| self.scenarios[s].targets.first().copied());
        if let Some(s) = favourite.filter(|_| self.providers[p].kind == Kind::HomeCare) {
            self.staff[s].history |= 1;
            let shift = self.staff[s].shift;
            duties.push(Duty::new(s, at_local(day, shift.0), at_local(day, shift.1), office));
        }
        for (role, needed) in needs {
            for s in self.call_in(p, role, day, needed, rng) {
                if Some(s) == favourite {
                    continue;
                }
                let shift = self.staff[s].shift;
                duties.push(Duty::new(s, at_local(day, shift.0), at_local(day, shift.1), office));
            }
        }
        duties
    }

    /// The visits provider `p` should perform on `day`, before assignment.
    fn plan_requests(&self, p: usize, day: Day, rng: &mut Rng) -> Vec<Request> {
        let day_start = day.start().0;
        let private = self.providers[p].kind != Kind::Municipal;
        let latest_cap = at_local(day, if private { 1315 } else { 1320 });
        let weekday = day.weekday();
        let week_parity = (day.0.div_euclid(7) % 2) as u32;
        let scale = self.active(p, 10, day_start).map(|s| (s, self.scenarios[s].strength));
        // Pattern 6: a share of the visits registered as ghosts (by hand,
        // exactly the planned time, see `schedule::register`).
        let ghosts = self.active(p, 6, day_start).map(|s| (s, self.scenarios[s].strength));
        let seed = self.cfg.seed;
        let mut reqs = Vec::new();
        for &c in &self.prov_clients[p] {
            let cl = &self.clients[c];
            if !(cl.present(day) || cl.enrolled(day) && self.visits_absent_client(p, c, day)) {
                continue;
            }
            let partner = cl.partner.filter(|&q| self.clients[q].present(day));
            if partner.is_some_and(|q| q < c) {
                continue; // the partner leads the couple's visits
            }
            let Some(plan) = cl.home_plan() else { continue };
            let mut flags: Flags = [None; 2];
            if let Some(s) = cl.origin {
                flag(&mut flags, s);
            }
            if let Some(s) = self.registers_moved_client(p, c, day_start) {
                flag(&mut flags, s);
            }
            let factor = if let Some((s, f)) =
                scale.or_else(|| self.over_grant(p, c, day_start)).or_else(|| self.collapse_factor(p, c, day_start))
            {
                flag(&mut flags, s);
                f
            } else {
                1.0
            };
            let slots = if factor > 1.0 {
                let daily: f64 = plan.slots.iter().map(|s| f64::from(s.planned)).sum::<f64>() * factor;
                let n = ((plan.slots.len() as f64 * factor.sqrt()).round() as usize).min(6);
                let double = plan.slots.iter().any(|s| s.double);
                let mut times = Rng::new(self.cfg.seed, &[tag::FRAUD_CLIENT, p as u64, c as u64]);
                if plan.slots.is_empty() {
                    Vec::new()
                } else {
                    population::care_slots(n, daily, &mut times, double, 90)
                }
            } else {
                plan.slots.clone()
            };
            let partner_planned = |i: usize, own: u32| {
                partner.map(|q| {
                    let planned =
                        self.clients[q].home_plan().and_then(|h| h.slots.get(i).map(|s| s.planned)).unwrap_or(own);
                    Part { client: q, planned: (f64::from(planned) * factor).round().min(90.0) as u32 }
                })
            };
            let mut push = |rng: &mut Rng, minute: i64, slack: i64, service, parts: Vec<Part>, double: bool| {
                let pref = at_local(day, minute + rng.int(-10, 10));
                // A stable draw per visit, apart from the day's stream.
                let ghost = ghosts.filter(|&(s, share)| {
                    Rng::new(seed, &[tag::FRAUD_DAY, s as u64, c as u64, pref as u64]).chance(share)
                });
                let mut flags = flags;
                if let Some((s, _)) = ghost {
                    flag(&mut flags, s);
                }
                reqs.push(Request {
                    pref,
                    latest: (pref + slack * 60).min(latest_cap),
                    service,
                    home: cl.home,
                    parts,
                    double,
                    ghost: ghost.is_some(),
                    unplanned: false,
                    flags,
                });
            };
            for (i, slot) in slots.iter().enumerate() {
                if rng.chance(CLIENT_CANCELS) {
                    continue;
                }
                let mut parts = vec![Part { client: c, planned: slot.planned }];
                parts.extend(partner_planned(i, slot.planned));
                let double = slot.double && parts.len() == 1;
                let service = if double { ServiceType::DoubleStaffing } else { ServiceType::PersonalCare };
                push(rng, slot.minute, 60, service, parts, double);
            }
            for s in &plan.service {
                if s.weekday != weekday || s.fortnightly.is_some_and(|w| w != week_parity) || rng.chance(CLIENT_CANCELS)
                {
                    continue;
                }
                let planned = ((f64::from(s.planned) * factor / 5.0).round() * 5.0).min(180.0) as u32;
                push(rng, s.minute, 150, ServiceType::Service, vec![Part { client: c, planned }], false);
            }
            if weekday < 5 && plan.escort_rate > 0.0 && rng.chance(plan.escort_rate * factor) {
                let minute = 570 + 15 * rng.int(0, 18);
                let parts = vec![Part { client: c, planned: plan.escort_minutes }];
                push(rng, minute, 90, ServiceType::Escort, parts, false);
            }
        }
        reqs
    }

    /// Personal-assistance shifts of provider `p` on `day`.
    fn assistance_day(&mut self, p: usize, day: Day, rng: &mut Rng, recs: &mut Vec<Rec>) {
        let ctx = self.reg_ctx(p, day);
        let day_start = day.start().0;
        let fraud3 = self.active(p, 3, day_start);
        let weekday = day.weekday() as usize;
        for k in 0..self.prov_clients[p].len() {
            let c = self.prov_clients[p][k];
            if !self.clients[c].present(day) {
                continue;
            }
            let home = self.clients[c].home;
            if let Some(s) = fraud3.filter(|&s| self.scenarios[s].target_client == Some(c)) {
                self.assistance_overtime(s, c, day, rng, recs);
                continue;
            }
            let Plan::Assist(plan) = &mut self.clients[c].plan else { continue };
            if !plan.weekdays[weekday] || plan.team.is_empty() {
                continue;
            }
            for i in 0..plan.shifts.len() {
                let (minute, len) = plan.shifts[i];
                let staff = plan.team[plan.counter % plan.team.len()];
                plan.counter += 1;
                let arrival = at_local(day, minute) + rng.int(-300, 300);
                let reg = schedule::register(rng, &ctx, arrival, len, home, false);
                let mut flags = [None; 2];
                if let Some(s) = reg.fraud5 {
                    flag(&mut flags, s);
                }
                recs.push(Rec {
                    provider: p,
                    client: c,
                    staff,
                    service: ServiceType::PersonalAssistance,
                    check_in: reg.check_in,
                    check_out: reg.check_out,
                    method: reg.method,
                    planned: Some(len),
                    loc: reg.loc,
                    flags,
                });
            }
        }
    }

    /// Pattern 3 at an assistance company: one assistant registered for all
    /// of a client's hours every day, `strength` + 1–4 h, a share
    /// (`strength2`) of days 24–26 h.
    fn assistance_overtime(&mut self, s: usize, c: usize, day: Day, rng: &mut Rng, recs: &mut Vec<Rec>) {
        let Plan::Assist(plan) = &self.clients[c].plan else { return };
        let Some(&staff) = self.scenarios[s].targets.first() else { return };
        let first = plan.shifts.first().map_or(420, |x| x.0);
        let p = self.clients[c].provider;
        let sc = &self.scenarios[s];
        let (strength, long_days) = (sc.strength, sc.strength2);
        let hours =
            if rng.chance(long_days) { rng.range(24.0, 26.0) } else { rng.range(strength + 1.0, strength + 4.0) };
        let start = (at_local(day, first) + rng.int(-300, 300)).max(self.scenarios[s].prev_end + 60);
        if start >= at_local(day.plus(1), 0) {
            return; // still on yesterday's 26-hour registration
        }
        let check_out = start + (hours * 3600.0) as i64 / 60 * 60;
        self.scenarios[s].prev_end = check_out;
        let method = if rng.chance(0.5) { RegistrationMethod::Manual } else { RegistrationMethod::MobileApp };
        let loc = (method == RegistrationMethod::MobileApp && self.providers[p].sends_positions)
            .then(|| self.clients[c].home.jitter(rng, 20.0, 70.0));
        let mut flags = [None; 2];
        flag(&mut flags, s);
        recs.push(Rec {
            provider: p,
            client: c,
            staff,
            service: ServiceType::PersonalAssistance,
            check_in: geo::ceil_to(start, 60),
            check_out: geo::ceil_to(start, 60) + (check_out - start),
            method,
            planned: None,
            loc,
            flags,
        });
    }

    /// The municipal night patrol: visits 22–06 to night clients of every
    /// provider, by the municipal unit's night staff.
    fn night_patrol(&mut self, day: Day, recs: &mut Vec<Rec>) {
        let p = 0;
        let mut rng = Rng::new(self.cfg.seed, &[tag::NIGHT, day.0 as u64]);
        let earliest = at_local(day, 1320);
        let latest_cap = at_local(day, 1800);
        let mut reqs = Vec::new();
        let mut demand = 0.0;
        for (c, cl) in self.clients.iter().enumerate() {
            let Some(plan) = cl.home_plan() else { continue };
            if plan.night.is_empty() || !cl.present(day) {
                continue;
            }
            for slot in &plan.night {
                if rng.chance(CLIENT_CANCELS) {
                    continue;
                }
                let pref = at_local(day, slot.minute + rng.int(-10, 10)).max(earliest + 300);
                if pref >= self.activity_end {
                    continue;
                }
                demand += f64::from(slot.planned) + 14.0;
                reqs.push(Request {
                    pref,
                    latest: (pref + 45 * 60).min(latest_cap),
                    service: ServiceType::NightPatrol,
                    home: cl.home,
                    parts: vec![Part { client: c, planned: slot.planned }],
                    double: false,
                    ghost: false,
                    unplanned: false,
                    flags: [None; 2],
                });
            }
        }
        if self.reference.is_some() {
            self.reference_filter(p, day, &mut reqs);
            demand = reqs.iter().map(|r| r.parts.iter().map(|x| f64::from(x.planned) + 14.0).sum::<f64>()).sum();
        }
        if reqs.is_empty() {
            return;
        }
        let mut duties = Vec::new();
        for s in self.call_in(p, Role::Night, day, (demand / NIGHT_CAPACITY_MIN).max(1.0), &mut rng) {
            let shift = self.staff[s].shift;
            duties.push(Duty::new(s, at_local(day, shift.0), at_local(day, shift.1), geo::CENTRE));
        }
        let ctx = self.reg_ctx(p, day);
        let outcome = schedule::assign(&mut rng, &mut duties, reqs, &ctx, p, recs);
        self.stats.performed += u64::from(outcome.performed);
        self.stats.cancelled += u64::from(outcome.cancelled);
    }

    /// Time reports of the day → events with ids and arrival times. A
    /// scenario becomes observable when the first report carrying it
    /// arrives (`reported_at`): nothing can see a fraud before its record
    /// reaches the municipality.
    fn finalize(
        &mut self,
        day: Day,
        recs: Vec<Rec>,
        out: &mut Outbox,
        ledger: &mut Ledger,
        next_id: &mut u64,
    ) -> Result<()> {
        let mut rng = Rng::new(self.cfg.seed, &[tag::REPORT, day.0 as u64]);
        // Late batches: all of a provider's reports of the day at once.
        let mut batch: Vec<Option<i64>> = vec![None; self.providers.len()];
        for (p, b) in batch.iter_mut().enumerate() {
            if rng.chance(self.providers[p].late_batch_rate) {
                let last = recs.iter().filter(|r| r.provider == p).map(|r| r.check_out).max();
                *b = last.map(|t| t + rng.int(12 * 3600, 36 * 3600));
            }
        }
        // When each report arrives; None for those outside the period
        // (not emitted).
        let reported: Vec<Option<i64>> = recs
            .iter()
            .map(|rec| {
                if rec.check_in >= self.activity_end || rec.check_in < self.first_day.start().0 {
                    return None;
                }
                let delay = match rec.method {
                    RegistrationMethod::Nfc => rng.int(5, 600),
                    RegistrationMethod::MobileApp => rng.int(10, 1800),
                    RegistrationMethod::Manual => rng.int(900, 10 * 3600),
                    RegistrationMethod::Edited => rng.int(3600, 30 * 3600),
                };
                Some(batch[rec.provider].map_or(rec.check_out + delay, |b| (rec.check_out + delay).max(b)))
            })
            .collect();
        self.reference_observe(&recs, &reported);
        for (rec, reported) in recs.into_iter().zip(reported) {
            let Some(reported) = reported else { continue };
            for s in rec.flags.iter().flatten() {
                // Patterns 11 and 15 are seen against the reference data
                // (see `reference_observe`).
                // Pattern 13 is seen once its staff's share and hours
                // reach the threshold (see `relatives`): from the visit
                // that reached it on.
                // Pattern 14 is seen once a client it inflated has had
                // three weeks at a new provider (see `provider_changes`).
                // Pattern 9 is seen once its recruits are more than honest
                // growth explains (see `fraud::growth_evident`): from the
                // next visit of a recruit on.
                let sc = &mut self.scenarios[*s];
                match sc.pattern {
                    11 | 15 => {}
                    9 => {
                        sc.evidence += 1;
                        if sc.evident_from.is_some_and(|t| rec.check_in >= t) {
                            sc.seen(reported);
                        }
                    }
                    13 => {
                        sc.evidence += 1;
                        if sc.revealed.iter().any(|&(staff, from)| staff == rec.staff && rec.check_in >= from) {
                            sc.seen(reported);
                        }
                    }
                    14 => sc.evidence += 1,
                    _ => sc.observe(reported),
                }
            }
            let event_id = format!("{}tr-{:09}", self.cfg.event_id_prefix, *next_id);
            *next_id += 1;
            ledger.add(&rec);
            let event = output::time_report(self, &rec, event_id, reported);
            out.push(reported, event);
            self.stats.time_reports += 1;
        }
        Ok(())
    }

    /// Where staff member `s` starts the day.
    pub(super) fn office_of(&self, s: usize) -> Geo {
        self.providers[self.staff[s].provider].office
    }
}
