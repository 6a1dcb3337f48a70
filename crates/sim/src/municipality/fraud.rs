//! Fraud scenarios: who commits which pattern, from when, how strongly, and
//! the injections that act on a day's records. Planning-time injections
//! (patterns 6, 9, 10, 5) live in the engine and scheduler where the visits
//! are made; invoice-time ones (1, 7, 8) in the invoice module.

use super::config::SimConfig;
use super::engine::World;
use super::geo::{self, at_local};
use super::output;
use super::population::{Kind, Plan, Provider, Role};
use super::rng::{Rng, tag};
use super::schedule::{self, Duty, Flags, Part, Rec, Request, flag};
use crate::labels::Label;
use tillsyn_core::model::{Day, EventTime, Month, RegistrationMethod, ServiceType};

/// The patterns the simulator injects, in round-robin order.
pub(super) const PATTERNS: [u32; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12];

/// The domain catalogue's name of a pattern.
pub(super) fn pattern_name(p: u32) -> &'static str {
    match p {
        1 => "invoiced hours above performed hours",
        2 => "staff double-booking",
        3 => "impossible day / no rest",
        4 => "impossible travel / tag not at home",
        5 => "manual or edited registrations",
        6 => "ghost or rounded visits",
        7 => "phantom clients",
        8 => "duplicate billing",
        9 => "volume explosion",
        10 => "hours per client far above peers",
        11 => "billing during absence",
        12 => "night visits by a private provider",
        13 => "relative employment",
        14 => "hours collapse after a change of provider",
        15 => "hours above granted hours",
        16 => "provider without a valid permit",
        _ => "unknown",
    }
}

/// The second pattern a provider with two scenarios commits.
fn companion(p: u32) -> u32 {
    match p {
        1 => 7,
        2 => 3,
        3 => 2,
        4 => 12,
        5 => 6,
        6 => 5,
        7 | 8 => 1,
        9 => 10,
        10 => 9,
        _ => 4,
    }
}

/// Patterns evidenced by time reports (as opposed to invoices).
fn time_based(p: u32) -> bool {
    !matches!(p, 1 | 7 | 8)
}

/// Pattern 13: a relative (staff), the client they visit, and their
/// home-care minutes per day (day, minutes) over the trailing 28 days.
pub(super) type Relative = (usize, usize, Vec<(i32, i64)>);

/// One injected scenario at one provider.
#[derive(Debug, Clone)]
pub(super) struct Scenario {
    pub provider: usize,
    pub pattern: u32,
    /// Which form of the pattern (0 or 1), alternating between instances.
    pub variant: u32,
    pub start: i64,
    /// First month affected (invoice patterns bill it).
    pub month: Month,
    /// Exclusive end, `None` = runs to the end.
    pub end: Option<i64>,
    /// How strongly the fraud is committed, 0 (subtle) to 1 (blatant):
    /// drawn from the configured range, it sets the strengths (see
    /// [`strengths`]) and is written on the label.
    pub intensity: f64,
    /// Main strength parameter (meaning per pattern, see the module docs).
    pub strength: f64,
    pub strength2: f64,
    /// Probability that the scenario acts on a given day.
    pub days_p: f64,
    /// Staff involved (chosen when the scenario starts).
    pub targets: Vec<usize>,
    /// The assistance client of pattern 3 at an assistance company.
    pub target_client: Option<usize>,
    /// Pattern 13: each relative (staff) with the client they visit, and
    /// their home-care minutes per day (to tell when they become
    /// observable).
    pub pairs: Vec<Relative>,
    /// Pattern 14: the clients moved away (old record, day of the move).
    pub moves: Vec<(usize, Day)>,
    /// Phantom invoice lines (pattern 7): reference, service, base minutes.
    pub phantoms: Vec<(String, ServiceType, f64)>,
    /// End of the last registration (pattern 3, assistance).
    pub prev_end: i64,
    /// Expected recruits not yet arrived (pattern 9).
    pub backlog: f64,
    /// Pattern 9: recruits arrived so far, and the new clients the fastest
    /// honest growth would have brought in the same days (see
    /// [`growth_evident`]).
    pub recruits: (u32, f64),
    /// Pattern 9: when the recruits became more than honest growth explains
    /// (observable from the next record of a recruit that arrives).
    pub evident_from: Option<i64>,
    pub activated: bool,
    /// When a record carrying it first reached the municipality.
    pub observable: Option<i64>,
    /// Pattern 13: each relative (staff) who met the rule's threshold,
    /// with the check-in of the visit that first met it (observable when
    /// that visit, or a later one of theirs, arrives).
    pub revealed: Vec<(usize, i64)>,
    /// Fraudulent time reports or invoices carrying the scenario.
    pub evidence: u64,
    pub note: String,
}

impl Scenario {
    /// A scenario of `pattern` (form `variant`) at `provider` from `start`
    /// (its month the first affected), with its strengths and `note`;
    /// nothing chosen, observed or carried yet (the targets, the
    /// relatives, the phantom lines are chosen when it starts).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        provider: usize,
        (pattern, variant): (u32, u32),
        start: i64,
        end: Option<i64>,
        (strength, strength2, days_p): (f64, f64, f64),
        note: String,
    ) -> Self {
        Scenario {
            provider,
            pattern,
            variant,
            start,
            month: EventTime(start).month(),
            end,
            intensity: 1.0,
            strength,
            strength2,
            days_p,
            targets: Vec::new(),
            target_client: None,
            pairs: Vec::new(),
            moves: Vec::new(),
            phantoms: Vec::new(),
            prev_end: i64::MIN,
            backlog: 0.0,
            recruits: (0, 0.0),
            evident_from: None,
            activated: false,
            observable: None,
            revealed: Vec::new(),
            evidence: 0,
            note,
        }
    }

    /// In force at instant `t`.
    pub fn active(&self, t: i64) -> bool {
        t >= self.start && self.end.is_none_or(|e| t < e)
    }

    /// A record or invoice carrying the fraud arrives at `t`.
    pub fn observe(&mut self, t: i64) {
        self.evidence += 1;
        self.seen(t);
    }

    /// The fraud can be seen from `t` on (the earliest such moment counts).
    pub fn seen(&mut self, t: i64) {
        self.observable = Some(self.observable.map_or(t, |o| o.min(t)));
    }
}

/// A stable uniform number for (scenario, client): who is affected.
pub(super) fn client_unit(seed: u64, s: usize, c: usize) -> f64 {
    Rng::new(seed, &[tag::FRAUD_CLIENT, s as u64, c as u64]).unit()
}

fn suitable(pattern: u32, p: &Provider) -> bool {
    match p.kind {
        Kind::Municipal => false,
        Kind::Assistance => matches!(pattern, 1 | 3 | 5 | 7 | 8),
        Kind::HomeCare => !matches!(pattern, 2 | 4 | 6 | 9 | 10 | 12) || p.initial_clients >= 8,
    }
}

fn preferred(pattern: u32, variant: u32, p: &Provider) -> bool {
    suitable(pattern, p)
        && match pattern {
            3 if variant == 0 => p.kind == Kind::Assistance,
            3 => p.kind == Kind::HomeCare && !p.large,
            1 | 5 | 8 => true,
            9 | 10 => p.kind == Kind::HomeCare && !p.large && (15..=120).contains(&p.initial_clients),
            _ => p.kind == Kind::HomeCare && !p.large,
        }
}

/// Chooses the fraudulent providers and draws their scenarios. Pattern 4
/// providers are made to export homes and positions (the evidence exists).
pub(super) fn choose(cfg: &SimConfig, providers: &mut [Provider], first_month: Month, end_day: Day) -> Vec<Scenario> {
    let mut rng = Rng::new(cfg.seed, &[tag::FRAUD_SETUP]);
    let mut order: Vec<usize> = (1..providers.len()).collect();
    rng.shuffle(&mut order);
    let mut taken = vec![false; providers.len()];
    let mut instances = [0u32; 13];
    let mut out = Vec::new();
    for k in 0..cfg.fraudulent_providers as usize {
        let mut pattern = PATTERNS[k % PATTERNS.len()];
        let variant = instances[pattern as usize] % 2;
        let free = |f: &dyn Fn(&Provider) -> bool| order.iter().copied().find(|&p| !taken[p] && f(&providers[p]));
        let p = match free(&|pr| preferred(pattern, variant, pr)).or_else(|| free(&|pr| suitable(pattern, pr))) {
            Some(p) => p,
            None => {
                let Some(p) = free(&|_| true) else { break };
                // Only providers unfit for the pattern are left (assistance
                // companies, tiny home-care ones): give the next one a
                // pattern it can commit instead.
                pattern = PATTERNS
                    .iter()
                    .copied()
                    .cycle()
                    .skip(k)
                    .take(PATTERNS.len())
                    .find(|&q| suitable(q, &providers[p]))
                    .unwrap_or(1);
                p
            }
        };
        taken[p] = true;
        let assistance = providers[p].kind == Kind::Assistance;
        let period = (first_month, end_day, cfg.months);
        out.push(draw(&mut rng, pattern, &mut instances, (p, assistance), period, cfg.intensity));
        if k % 5 == 4 {
            let second = companion(pattern);
            if suitable(second, &providers[p]) {
                out.push(draw(&mut rng, second, &mut instances, (p, assistance), period, cfg.intensity));
            }
        }
    }
    for sc in &out {
        if sc.pattern == 4 {
            let p = &mut providers[sc.provider];
            p.sends_home = true;
            p.sends_positions = true;
            p.whole_area = true;
        }
    }
    out
}

/// Pattern 13 (relative employment) as an extra scenario at one or two of
/// the fraudulent home-care providers (one per seven fraudulent
/// providers, at most two), from the start of their fraud. Appended after
/// every other scenario with draws of its own, so that the others do not
/// change.
pub(super) fn add_relatives(cfg: &SimConfig, providers: &[Provider], scenarios: &mut Vec<Scenario>, end_day: Day) {
    let wanted = (cfg.fraudulent_providers / 7).min(2) as usize;
    if wanted == 0 {
        return;
    }
    let mut rng = Rng::new(cfg.seed, &[tag::FRAUD_SETUP, 13]);
    let mut candidates: Vec<usize> = scenarios
        .iter()
        .filter(|s| PATTERNS.contains(&s.pattern))
        .map(|s| s.provider)
        .filter(|&p| providers[p].kind == Kind::HomeCare && providers[p].initial_clients >= 8)
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    rng.shuffle(&mut candidates);
    // Providers with one scenario first.
    candidates.sort_by_key(|&p| scenarios.iter().filter(|s| s.provider == p).count());
    for (k, p) in candidates.into_iter().take(wanted).enumerate() {
        let Some(start) = scenarios.iter().filter(|s| s.provider == p).map(|s| s.start).min() else { continue };
        if start >= end_day.start().0 {
            continue;
        }
        let relatives = if rng.chance(0.5) { 2.0 } else { 1.0 };
        let intensity = cfg.intensity.draw(&mut rng);
        // Days a week at their relative: four (subtle) to six (blatant).
        let strengths = (relatives, 0.0, lerp(4.0, 6.0, intensity) / 7.0);
        let mut scenario = Scenario::new(p, (13, k as u32 % 2), start, None, strengths, note(13, 0, false, strengths));
        scenario.intensity = intensity;
        scenarios.push(scenario);
    }
}

fn draw(
    rng: &mut Rng,
    pattern: u32,
    instances: &mut [u32; 13],
    (provider, assistance): (usize, bool),
    (first_month, end_day, months): (Month, Day, u32),
    intensity: IntensityRange,
) -> Scenario {
    let variant = instances[pattern as usize] % 2;
    instances[pattern as usize] += 1;
    let last = months as i64 - 1;
    let month_index = rng.int(1.min(last), 3.min(last));
    let month = Month(first_month.0 + month_index as i32);
    let start_day = if time_based(pattern) {
        let d = month.first_day().plus(rng.int(0, 20) as i32);
        if d >= end_day { month.first_day() } else { d }
    } else {
        month.first_day()
    };
    let start = start_day.start().0;
    let end = if matches!(pattern, 2 | 3 | 4 | 5 | 6 | 12) && rng.chance(0.2) {
        let stop = start_day.plus(rng.int(35, 60) as i32);
        (stop < end_day.plus(-7)).then(|| stop.start().0)
    } else {
        None
    };
    let u = intensity.draw(rng);
    let strengths = strengths(pattern, u, rng);
    let mut scenario = Scenario::new(
        provider,
        (pattern, variant),
        start,
        end,
        strengths,
        note(pattern, variant, assistance, strengths),
    );
    scenario.intensity = u;
    // Pattern 9 opens with a first recruit on its first day.
    scenario.backlog = 1.0;
    scenario
}

/// The range fraud intensities are drawn from, uniformly: 0 is the subtlest
/// fraud the simulator injects, 1 the most blatant.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntensityRange {
    /// Lowest intensity, 0–1.
    pub lo: f64,
    /// Highest intensity, `lo`–1.
    pub hi: f64,
}

impl IntensityRange {
    /// Every intensity, subtle to blatant.
    pub const WIDE: IntensityRange = IntensityRange { lo: 0.0, hi: 1.0 };
    /// The blatant third (the evaluation scenario's default).
    pub const BLATANT: IntensityRange = IntensityRange { lo: 2.0 / 3.0, hi: 1.0 };

    /// Parses `LO..HI` (e.g. `0..1`, `0.5..1`) or one number.
    pub fn parse(text: &str) -> Option<IntensityRange> {
        let (lo, hi) = match text.split_once("..") {
            Some((lo, hi)) => (lo.trim().parse().ok()?, hi.trim().parse().ok()?),
            None => {
                let x: f64 = text.trim().parse().ok()?;
                (x, x)
            }
        };
        let range = IntensityRange { lo, hi };
        range.valid().then_some(range)
    }

    /// Both ends finite, 0 <= lo <= hi <= 1.
    pub fn valid(&self) -> bool {
        self.lo.is_finite() && self.hi.is_finite() && 0.0 <= self.lo && self.lo <= self.hi && self.hi <= 1.0
    }

    /// One intensity from the range (one draw of `rng` whatever the range).
    pub(super) fn draw(&self, rng: &mut Rng) -> f64 {
        let x = rng.unit();
        self.lo + (self.hi - self.lo) * x
    }
}

impl std::fmt::Display for IntensityRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.lo, self.hi)
    }
}

/// `lo` at intensity 0, `hi` at 1, linear between.
pub(super) fn lerp(lo: f64, hi: f64, u: f64) -> f64 {
    lo + (hi - lo) * u
}

/// `lo` at intensity 0, `hi` at 1, geometric between (for rates and
/// factors: each step of intensity multiplies them by the same amount).
pub(super) fn geometric(lo: f64, hi: f64, u: f64) -> f64 {
    lo * (hi / lo).powf(u)
}

/// The strengths `(strength, strength2, days_p)` of `pattern` at intensity
/// `u`, subtle (0) to blatant (1):
///
/// | # | strength | strength2 | days_p |
/// |---:|---|---|---|
/// | 1 | share of clients whose lines are inflated, 10–60 % | mean excess of those lines, 3–40 % | |
/// | 2 | | | days a week with a double booking: about three a month to daily |
/// | 3 | hours registered a day, from 11–13 to 16–18 (assistance: 12–15 to 17–20) | assistance: share of 24–26 h days, 0–25 % | every day |
/// | 4 | share of check-ins made from home, 5–45 % | | days a week with an impossible trip, 1–5 |
/// | 5 | manual/edited share above the provider's own, +5 to +40 points | days of the ramp, 10–28 (not intensity) | |
/// | 6 | ghost share: visits registered by hand for exactly the planned time, 40–95 % | | |
/// | 7 | phantom lines, 1–12 % of the real ones (at least one) | | |
/// | 8 | share of lines billed twice, 1–15 % | | |
/// | 9 | recruits a month, growth x1.3–x3 a quarter on top of turnover | | |
/// | 10 | plan scale, x1.3–x3 | | |
/// | 12 | clients visited a night, 1–5 | | nights a week, 1–7 |
fn strengths(pattern: u32, u: f64, rng: &mut Rng) -> (f64, f64, f64) {
    match pattern {
        1 => (lerp(0.10, 0.60, u), 1.0 + lerp(0.03, 0.40, u), 0.0),
        2 => (0.0, 0.0, geometric(0.1, 1.0, u)),
        3 => (lerp(11.0, 16.0, u), lerp(0.0, 0.25, u), 1.0),
        4 => (lerp(0.05, 0.45, u), 0.0, lerp(1.0, 5.0, u) / 7.0),
        5 => (lerp(0.05, 0.40, u), rng.range(10.0, 28.0), 0.0),
        6 => (lerp(0.40, 0.95, u), 0.0, 0.0),
        7 => (lerp(0.01, 0.12, u), 0.0, 0.0),
        8 => (lerp(0.01, 0.15, u), 0.0, 0.0),
        9 => (geometric(1.3, 3.0, u).powf(1.0 / 3.0) - 1.0, 0.0, 0.0),
        10 => (geometric(1.3, 3.0, u), 0.0, 0.0),
        _ => (lerp(1.0, 5.0, u).round(), 0.0, lerp(1.0, 7.0, u) / 7.0),
    }
}

fn note(pattern: u32, variant: u32, assistance: bool, (strength, strength2, days_p): (f64, f64, f64)) -> String {
    let pct = |x: f64| (x * 100.0).round();
    let per_week = days_p * 7.0;
    match pattern {
        1 => format!(
            "invoice lines (personal care, service, assistance) for {:.0} % of clients bill about {:.0} % more than \
             the performed minutes (0.75-1.25 times that, by client)",
            pct(strength),
            pct(strength2 - 1.0)
        ),
        2 if variant == 0 => format!(
            "visits registered manually at another client of the same provider while 1-2 staff members are at a real \
             visit, on about {per_week:.1} days a week"
        ),
        2 => format!(
            "a staff member of another provider is registered here at visits overlapping their visits there, on \
             about {per_week:.1} days a week"
        ),
        3 if assistance => format!(
            "one assistant registered for all of a client's hours every day (no day off), {:.0}-{:.0} h at a \
             stretch, {:.0} % of days 24-26 h",
            strength + 1.0,
            strength + 4.0,
            pct(strength2)
        ),
        3 => format!(
            "one staff member working every day (no day off), with a second shift of visits registered in their \
             name up to {strength:.1}-{:.1} h a day",
            strength + 2.0
        ),
        4 => format!(
            "1-2 staff members: {:.0} % of their check-ins made by app from their own home, kilometres away, and on \
             about {per_week:.1} days a week a manual visit 15+ km from the previous or next one with minutes between",
            pct(strength)
        ),
        5 => format!(
            "manual/edited share rising over {strength2:.0} days to {:.0} points above the provider's own, each \
             adding 5-20 min to the visit",
            pct(strength)
        ),
        6 => format!(
            "ghost visits: {:.0} % of the visits registered by hand for exactly the planned time, on five-minute \
             marks (the real visit shorter or not made)",
            pct(strength)
        ),
        7 => format!(
            "invoice lines for phantom clients (departed or invented), about {:.0} % extra lines (at least one)",
            pct(strength)
        ),
        8 if variant == 0 => {
            format!("about {:.0} % of invoice lines billed twice on the same invoice", pct(strength))
        }
        8 => format!("about {:.0} % of invoice lines billed again on a second invoice for the period", pct(strength)),
        9 => format!(
            "new clients recruited at {:.0} % a month on top of normal turnover (x{:.1} a quarter)",
            pct(strength),
            (1.0 + strength).powi(3)
        ),
        10 => format!("care, service and escort scheduled and performed at {strength:.1} times the usual plan"),
        12 => format!(
            "unauthorised night visits 22:30-05:30 by the provider's own night staff, {strength:.0} clients a night \
             on about {per_week:.1} nights a week"
        ),
        13 => format!(
            "{strength:.0} relative(s) of clients hired as home-care staff, each registered for 2-3 visits of \
             60-120 min a day at their own relative only, about {per_week:.0} days a week"
        ),
        _ => String::new(),
    }
}

/// The fastest legitimate growth of an honest provider's clients, a month
/// on top of turnover (the simulator's growing honest providers draw theirs
/// from 2–5 %).
pub(super) const HONEST_GROWTH: (f64, f64) = (0.02, 0.05);

/// The chance below which recruits are more than honest growth explains.
const GROWTH_EVIDENT_CHANCE: f64 = 1e-3;

/// Pattern 9 is observable once `recruited` new clients are more than the
/// fastest honest growth would bring (`honest` expected in the same days)
/// with chance [`GROWTH_EVIDENT_CHANCE`] (Poisson): before, however the
/// data is read, the recruits are indistinguishable from a successful
/// honest company's growth, so no delay can be asked of a detector. (The
/// first recruit arrives within days of the start; at the subtle end,
/// ×1.3 a quarter, the growth takes months to become evident.)
pub(super) fn growth_evident(recruited: u32, honest: f64) -> bool {
    // P(N >= recruited) for N ~ Poisson(honest), by the complement.
    let mut term = (-honest).exp();
    let mut below = 0.0;
    for k in 0..recruited {
        below += term;
        term *= honest / f64::from(k + 1);
    }
    recruited > 0 && 1.0 - below <= GROWTH_EVIDENT_CHANCE
}

/// One label per scenario that left evidence in the data.
pub(super) fn labels(w: &World, end: i64) -> Vec<Label> {
    w.scenarios
        .iter()
        .filter_map(|s| {
            let observable = s.observable?;
            let unit = match (time_based(s.pattern), s.evidence) {
                (true, 1) => "time report carries",
                (true, _) => "time reports carry",
                (false, 1) => "invoice carries",
                (false, _) => "invoices carry",
            };
            Some(Label {
                provider_id: w.providers[s.provider].id.clone(),
                municipality_code: w.cfg.municipality_code.clone(),
                pattern: s.pattern,
                pattern_name: pattern_name(s.pattern).to_string(),
                start: output::ts(s.start),
                end: output::ts(s.end.unwrap_or(end)),
                observable_at: output::ts(observable.max(s.start)),
                intensity: Some(s.intensity),
                note: format!("{}; {} {unit} it", s.note, s.evidence),
            })
        })
        .collect()
}

/// Phantom lines for pattern 7 in `month`: clients of the provider who left
/// before the month, topped up with invented references; the same ones
/// every month.
pub(super) fn phantoms(
    w: &mut World,
    s: usize,
    month: Month,
    real_lines: usize,
    rng: &mut Rng,
) -> Vec<(String, ServiceType, i64)> {
    let p = w.scenarios[s].provider;
    let first = month.first_day();
    let wanted = ((w.scenarios[s].strength * real_lines as f64).round() as usize).max(1);
    if w.scenarios[s].phantoms.len() < wanted {
        let mut former: Vec<usize> =
            w.prov_clients[p].iter().copied().filter(|&c| w.clients[c].until.is_some_and(|u| u <= first)).collect();
        former.retain(|&c| !w.scenarios[s].phantoms.iter().any(|(r, _, _)| *r == w.clients[c].r));
        rng.shuffle(&mut former);
        while w.scenarios[s].phantoms.len() < wanted {
            let r = match former.pop() {
                Some(c) if rng.chance(0.6) => w.clients[c].r.clone(),
                _ => w.refs.fresh(rng, "c-", 10),
            };
            let service = if rng.chance(0.7) { ServiceType::PersonalCare } else { ServiceType::Service };
            let base = rng.lognormal(900.0, 0.5).clamp(240.0, 3000.0);
            w.scenarios[s].phantoms.push((r, service, base));
        }
    }
    w.scenarios[s]
        .phantoms
        .iter()
        .map(|(r, service, base)| (r.clone(), *service, ((base * rng.range(0.9, 1.1) / 15.0).round() * 15.0) as i64))
        .collect()
}

impl World<'_> {
    /// Starts scenarios whose time has come: picks the staff or client they
    /// involve (deferred while the provider has none yet).
    pub(super) fn activate(&mut self, day: Day) {
        let day_start = day.start().0;
        for s in 0..self.scenarios.len() {
            let sc = &self.scenarios[s];
            if sc.activated || day_start < sc.start {
                continue;
            }
            let p = sc.provider;
            let mut rng = Rng::new(self.cfg.seed, &[tag::ACTIVATE, s as u64]);
            // Staff who are at work these days (worked yesterday, or at
            // least in the last two weeks).
            let working = |st: usize, mask: u32| self.staff[st].role.home_care() && self.staff[st].history & mask != 0;
            let mut regular: Vec<usize> = self.prov_staff[p].iter().copied().filter(|&st| working(st, 0b10)).collect();
            if regular.is_empty() {
                regular = self.prov_staff[p].iter().copied().filter(|&st| working(st, 0x7ffe)).collect();
            }
            let ok = match sc.pattern {
                2 if sc.variant == 1 => {
                    let fraudulent: Vec<usize> = self.scenarios.iter().map(|x| x.provider).collect();
                    let others: Vec<usize> = (0..self.staff.len())
                        .filter(|&st| {
                            let sp = self.staff[st].provider;
                            working(st, 0b10) && sp != p && !fraudulent.contains(&sp)
                        })
                        .collect();
                    rng.pick(&others).map(|&st| self.scenarios[s].targets = vec![st]).is_some()
                }
                2 | 4 => {
                    let mut pool = regular.clone();
                    rng.shuffle(&mut pool);
                    pool.truncate(if rng.chance(0.5) { 2 } else { 1 });
                    self.scenarios[s].targets = pool;
                    !self.scenarios[s].targets.is_empty()
                }
                3 if self.providers[p].kind == Kind::Assistance => {
                    let best = self.prov_clients[p]
                        .iter()
                        .copied()
                        .filter(|&c| self.clients[c].enrolled(day))
                        .filter_map(|c| match &self.clients[c].plan {
                            Plan::Assist(a) => a.team.first().map(|&t| (self.clients[c].granted, c, t)),
                            Plan::Home(_) => None,
                        })
                        .max_by_key(|(g, c, _)| (g[ServiceType::PersonalAssistance.index()], *c));
                    best.map(|(_, c, t)| {
                        self.scenarios[s].target_client = Some(c);
                        self.scenarios[s].targets = vec![t];
                    })
                    .is_some()
                }
                3 => {
                    let morning: Vec<usize> =
                        regular.iter().copied().filter(|&st| self.staff[st].role == Role::Morning).collect();
                    rng.pick(&morning).map(|&st| self.scenarios[s].targets = vec![st]).is_some()
                }
                13 => {
                    // Clients of distinct homes with a home-care plan.
                    let mut homes: Vec<usize> = self
                        .present_clients(p, day)
                        .into_iter()
                        .filter(|&c| self.clients[c].home_plan().is_some())
                        .collect();
                    rng.shuffle(&mut homes);
                    let mut chosen: Vec<usize> = Vec::new();
                    for c in homes {
                        let household = self.clients[c].household.clone();
                        let same =
                            |d: &usize| *d == c || (household.is_some() && self.clients[*d].household == household);
                        if chosen.len() < sc.strength as usize && !chosen.iter().any(same) {
                            chosen.push(c);
                        }
                    }
                    let pairs: Vec<Relative> =
                        chosen.into_iter().map(|c| (self.hire(p, Role::Relative, &mut rng), c, Vec::new())).collect();
                    self.scenarios[s].targets = pairs.iter().map(|x| x.0).collect();
                    self.scenarios[s].pairs = pairs;
                    !self.scenarios[s].pairs.is_empty()
                }
                12 => {
                    let n = if rng.chance(0.5) { 2 } else { 1 };
                    let hired: Vec<usize> = (0..n).map(|_| self.hire(p, Role::FraudNight, &mut rng)).collect();
                    self.scenarios[s].targets = hired;
                    true
                }
                _ => true,
            };
            self.scenarios[s].activated = ok;
        }
    }

    /// Pattern 12: the fraudulent provider's own night visits.
    pub(super) fn fraud_nights(&mut self, day: Day, recs: &mut Vec<Rec>) {
        let day_start = day.start().0;
        for s in 0..self.scenarios.len() {
            let sc = &self.scenarios[s];
            if sc.pattern != 12 || !sc.activated || !sc.active(day_start) {
                continue;
            }
            let p = sc.provider;
            let mut rng = Rng::new(self.cfg.seed, &[tag::FRAUD_DAY, s as u64, day.0 as u64]);
            if !rng.chance(sc.days_p) {
                continue;
            }
            let present = self.present_clients(p, day);
            let mut heavy: Vec<usize> = present
                .iter()
                .copied()
                .filter(|&c| self.clients[c].home_plan().is_some_and(|h| h.slots.len() >= 3))
                .collect();
            if heavy.len() < 2 {
                heavy = present;
            }
            rng.shuffle(&mut heavy);
            heavy.truncate(sc.strength as usize);
            let mut reqs = Vec::new();
            let mut flags: Flags = [None; 2];
            flag(&mut flags, s);
            for &c in &heavy {
                let pref = at_local(day, rng.int(1360, 1730));
                if pref >= self.activity_end {
                    continue;
                }
                reqs.push(Request {
                    pref,
                    latest: pref + 30 * 60,
                    service: ServiceType::PersonalCare,
                    home: self.clients[c].home,
                    parts: vec![Part { client: c, planned: [15, 20, 25, 30, 35][rng.below(5)] }],
                    double: false,
                    ghost: false,
                    unplanned: false,
                    flags,
                });
            }
            let office = self.providers[p].office;
            let mut duties = Vec::new();
            for st in self.scenarios[s].targets.clone() {
                // Night staff keep their days off (two at a time).
                if self.staff[st].may_work() {
                    self.staff[st].history |= 1;
                    duties.push(Duty::new(st, at_local(day, 1335), at_local(day, 1800), office));
                }
            }
            let pr = &self.providers[p];
            let ctx = schedule::RegCtx {
                manual: pr.manual_share,
                edited_fraction: pr.edited_fraction,
                mobile: pr.mobile_share,
                positions: pr.sends_positions,
                fraud5: None,
            };
            schedule::assign(&mut rng, &mut duties, reqs, &ctx, p, recs);
        }
    }

    /// Pattern 13: each relative's visits at their client today (none on a
    /// day off, while the client is away, or once the client has left),
    /// and when the staff member's share and hours first reach the
    /// threshold of `relative-employment` (all their home care is at the
    /// one client, so the hours decide: 40 h over the trailing 28 days).
    pub(super) fn relatives(&mut self, day: Day, recs: &mut Vec<Rec>) {
        const WINDOW_DAYS: i32 = 28;
        const MIN_MINUTES: i64 = 40 * 60;
        let day_start = day.start().0;
        for s in 0..self.scenarios.len() {
            let sc = &self.scenarios[s];
            if sc.pattern != 13 || !sc.activated || !sc.active(day_start) {
                continue;
            }
            let p = sc.provider;
            let mut rng = Rng::new(self.cfg.seed, &[tag::FRAUD_DAY, s as u64, day.0 as u64]);
            let positions = self.providers[p].sends_positions;
            for k in 0..self.scenarios[s].pairs.len() {
                let (st, c) = (self.scenarios[s].pairs[k].0, self.scenarios[s].pairs[k].1);
                if !rng.chance(self.scenarios[s].days_p) || !self.clients[c].present(day) {
                    continue;
                }
                self.staff[st].history |= 1;
                let home = self.clients[c].home;
                // Two or three of morning, midday and evening.
                let mut slots = vec![(450, 540), (690, 780), (1020, 1110)];
                if rng.chance(0.5) {
                    slots.remove(rng.below(3));
                }
                for (lo, hi) in slots {
                    let check_in = at_local(day, rng.int(lo, hi) / 5 * 5);
                    let duration = rng.int(12, 24) * 5 * 60;
                    let method =
                        if rng.chance(0.5) { RegistrationMethod::Manual } else { RegistrationMethod::MobileApp };
                    let loc =
                        (method != RegistrationMethod::Manual && positions).then(|| home.jitter(&mut rng, 15.0, 50.0));
                    let mut flags: Flags = [None; 2];
                    flag(&mut flags, s);
                    recs.push(Rec {
                        provider: p,
                        client: c,
                        staff: st,
                        service: if rng.chance(0.7) { ServiceType::PersonalCare } else { ServiceType::Service },
                        check_in,
                        check_out: check_in + duration,
                        method,
                        planned: None,
                        loc,
                        flags,
                    });
                    if check_in >= self.activity_end || check_in < self.first_day.start().0 {
                        continue;
                    }
                    let trail = &mut self.scenarios[s].pairs[k].2;
                    trail.retain(|(d, _)| *d > day.0 - WINDOW_DAYS);
                    trail.push((day.0, duration / 60));
                    let minutes: i64 = trail.iter().map(|(_, m)| m).sum();
                    let revealed = &mut self.scenarios[s].revealed;
                    if minutes >= MIN_MINUTES && !revealed.iter().any(|(staff, _)| *staff == st) {
                        revealed.push((st, check_in));
                    }
                }
            }
        }
    }

    /// Staff-level injections on the day's records (patterns 3, 4, 2).
    pub(super) fn inject(&mut self, day: Day, recs: &mut Vec<Rec>) {
        let day_start = day.start().0;
        for pattern in [3, 4, 2] {
            for s in 0..self.scenarios.len() {
                let sc = &self.scenarios[s];
                if sc.pattern != pattern || !sc.activated || !sc.active(day_start) {
                    continue;
                }
                let mut rng = Rng::new(self.cfg.seed, &[tag::FRAUD_DAY, s as u64, day.0 as u64]);
                match pattern {
                    3 if self.providers[sc.provider].kind == Kind::HomeCare => self.pad_day(s, day, recs, &mut rng),
                    4 => self.teleport(s, day, recs, &mut rng),
                    2 => self.double_book(s, day, recs, &mut rng),
                    _ => {}
                }
            }
        }
    }

    /// The scenario's staff who work today; if none does, the staff member
    /// of the same provider with the most visits today stands in (the
    /// coordinator uses whoever is at work).
    fn at_work(&self, s: usize, recs: &[Rec]) -> Vec<usize> {
        let targets = &self.scenarios[s].targets;
        let working: Vec<usize> = targets.iter().copied().filter(|&t| recs.iter().any(|r| r.staff == t)).collect();
        if !working.is_empty() || targets.is_empty() {
            return working;
        }
        let p = self.staff[targets[0]].provider;
        let mut count: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
        for r in recs.iter().filter(|r| r.provider == p && self.staff[r.staff].provider == p) {
            if self.staff[r.staff].role.home_care() {
                *count.entry(r.staff).or_default() += 1;
            }
        }
        count.iter().max_by_key(|(st, n)| (**n, std::cmp::Reverse(**st))).map(|(st, _)| *st).into_iter().collect()
    }

    /// Indices of `staff`'s records today, by check-in.
    fn records_of(recs: &[Rec], staff: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..recs.len()).filter(|&i| recs[i].staff == staff).collect();
        idx.sort_by_key(|&i| (recs[i].check_in, recs[i].client));
        idx
    }

    /// Pattern 3 (home care): the staff member works their shift every day,
    /// and the rest of 06:00–22:15 is filled with registered visits of 1–3 h
    /// at nearby clients (a second shift in their name) until 14–17 h are
    /// registered.
    fn pad_day(&mut self, s: usize, day: Day, recs: &mut Vec<Rec>, rng: &mut Rng) {
        let Some(&t) = self.scenarios[s].targets.first() else { return };
        let p = self.scenarios[s].provider;
        let present = self.present_clients(p, day);
        if present.is_empty() {
            return;
        }
        let target = rng.range(self.scenarios[s].strength, self.scenarios[s].strength + 2.0) * 3600.0;
        let mine = Self::records_of(recs, t);
        let mut sum: i64 = mine.iter().map(|&i| recs[i].check_out - recs[i].check_in).sum();
        let mut cursor = at_local(day, 360);
        let mut loc = self.office_of(t);
        let window_end = at_local(day, 1335);
        let busy: Vec<(i64, i64, geo::Geo)> =
            mine.iter().map(|&i| (recs[i].check_in, recs[i].check_out, self.clients[recs[i].client].home)).collect();
        let mut k = 0;
        let positions = self.providers[p].sends_positions;
        loop {
            let next = busy.get(k).copied();
            let gap_end = next.map_or(window_end + 1800, |b| b.0);
            while (sum as f64) < target {
                // One of the clients nearest to where the staff member is.
                let mut near: Vec<(i64, usize)> =
                    present.iter().map(|&c| (self.clients[c].home.dist_m(loc) as i64, c)).collect();
                near.sort_unstable();
                near.truncate(4);
                let Some(&(_, y)) = rng.pick(&near) else { break };
                let home = self.clients[y].home;
                let t1 = geo::travel_secs(loc, home);
                let t2 = next.map_or(0, |b| geo::travel_secs(home, b.2));
                let check_in = geo::ceil_to(cursor + t1 + 60, 60);
                if check_in > window_end {
                    break;
                }
                let room = gap_end - t2 - 120 - check_in;
                if room < 30 * 60 {
                    break;
                }
                let duration = room.min(target as i64 - sum).min(rng.int(60, 180) * 60) / 60 * 60;
                if duration < 20 * 60 {
                    break;
                }
                let method = match rng.below(20) {
                    0..=11 => RegistrationMethod::Manual,
                    12..=16 => RegistrationMethod::Edited,
                    _ => RegistrationMethod::MobileApp,
                };
                let loc_reported =
                    (method != RegistrationMethod::Manual && positions).then(|| home.jitter(rng, 15.0, 50.0));
                let mut flags: Flags = [None; 2];
                flag(&mut flags, s);
                recs.push(Rec {
                    provider: p,
                    client: y,
                    staff: t,
                    service: if rng.chance(0.5) { ServiceType::Service } else { ServiceType::PersonalCare },
                    check_in,
                    check_out: check_in + duration,
                    method,
                    planned: None,
                    loc: loc_reported,
                    flags,
                });
                sum += duration;
                cursor = check_in + duration + rng.int(60, 180);
                loc = home;
            }
            let Some(b) = next else { break };
            cursor = cursor.max(b.1 + 60);
            loc = b.2;
            k += 1;
        }
    }

    /// Pattern 4: check-ins from the staff member's own home, and manual
    /// visits 15+ km from the previous or next one minutes apart.
    fn teleport(&mut self, s: usize, day: Day, recs: &mut Vec<Rec>, rng: &mut Rng) {
        let p = self.scenarios[s].provider;
        let present = self.present_clients(p, day);
        for t in self.at_work(s, recs) {
            let mine: Vec<usize> = Self::records_of(recs, t)
                .into_iter()
                .filter(|&i| recs[i].flags == [None; 2] && recs[i].provider == p)
                .collect();
            // Tag not at home: the check-in is made by app from elsewhere.
            let away_from = self.staff[t].home;
            for &i in &mine {
                if rng.chance(self.scenarios[s].strength) {
                    let away = away_from.jitter(rng, 15.0, 50.0);
                    if away.dist_m(self.clients[recs[i].client].home) >= 1500.0 {
                        recs[i].method = RegistrationMethod::MobileApp;
                        recs[i].loc = Some(away);
                        flag(&mut recs[i].flags, s);
                    }
                }
            }
            // Impossible travel.
            if mine.is_empty() || !rng.chance(self.scenarios[s].days_p) {
                continue;
            }
            // Right after the day's last visit or right before its first,
            // whichever has a client of the provider 15+ km away.
            let last = mine.iter().copied().max_by_key(|&i| (recs[i].check_out, i));
            let first = mine.first().copied();
            let order = if rng.chance(0.5) { [(true, last), (false, first)] } else { [(false, first), (true, last)] };
            let choice = order.iter().find_map(|&(after, anchor)| {
                let a = anchor?;
                let from = self.clients[recs[a].client].home;
                let far: Vec<usize> =
                    present.iter().copied().filter(|&c| self.clients[c].home.dist_m(from) >= 15_000.0).collect();
                rng.pick(&far).map(|&y| (after, a, y))
            });
            let Some((after, a, y)) = choice else { continue };
            let duration = rng.int(25, 45) * 60;
            let gap = rng.int(2, 8) * 60;
            let check_in = if after {
                geo::ceil_to(recs[a].check_out + gap, 60)
            } else {
                geo::ceil_to(recs[a].check_in - gap - duration - 59, 60)
            };
            if check_in < at_local(day, 360) || check_in > at_local(day, 1310) {
                continue;
            }
            let mut flags: Flags = [None; 2];
            flag(&mut flags, s);
            recs.push(Rec {
                provider: p,
                client: y,
                staff: t,
                service: ServiceType::PersonalCare,
                check_in,
                check_out: check_in + duration,
                method: RegistrationMethod::Manual,
                planned: Some([30, 45][rng.below(2)]),
                loc: None,
                flags,
            });
        }
    }

    /// Pattern 2: a visit registered at another client while the staff
    /// member is at a real visit (same provider, or another provider's
    /// staff member registered here).
    fn double_book(&mut self, s: usize, day: Day, recs: &mut Vec<Rec>, rng: &mut Rng) {
        let p = self.scenarios[s].provider;
        let present = self.present_clients(p, day);
        if present.len() < 2 {
            return;
        }
        for t in self.at_work(s, recs) {
            if !rng.chance(self.scenarios[s].days_p) {
                continue;
            }
            let mut mine: Vec<usize> = Self::records_of(recs, t)
                .into_iter()
                .filter(|&i| recs[i].flags == [None; 2] && recs[i].check_out - recs[i].check_in >= 12 * 60)
                .collect();
            let times = if rng.chance(0.4) { 2 } else { 1 };
            for _ in 0..times {
                if mine.is_empty() {
                    break;
                }
                let v = mine.remove(rng.below(mine.len()));
                let x = recs[v].client;
                let candidate = (0..10).find_map(|_| {
                    let &y = rng.pick(&present)?;
                    let same_home = y == x
                        || (self.clients[y].household.is_some()
                            && self.clients[y].household == self.clients[x].household)
                        || self.clients[y].home.dist_m(self.clients[x].home) < 300.0;
                    (!same_home).then_some(y)
                });
                let Some(y) = candidate else { continue };
                let visit = recs[v].check_out - recs[v].check_in;
                let offset = rng.int(-300, (visit - 180).min(600));
                let check_in = geo::ceil_to(recs[v].check_in + offset, 60);
                let duration = rng.int(20, 45) * 60;
                let method = if rng.chance(0.6) { RegistrationMethod::Manual } else { RegistrationMethod::Edited };
                let mut flags: Flags = [None; 2];
                flag(&mut flags, s);
                recs.push(Rec {
                    provider: p,
                    client: y,
                    staff: t,
                    service: if rng.chance(0.75) { ServiceType::PersonalCare } else { ServiceType::Service },
                    check_in,
                    check_out: check_in + duration,
                    method,
                    planned: Some((duration / 300 * 5) as u32),
                    loc: None,
                    flags,
                });
            }
        }
    }
}
