//! Clients changing provider, and pattern 14 (hours collapse after a
//! change of provider).
//!
//! **Honest changes.** Every day a home-care client living alone changes
//! provider with probability [`SimConfig::provider_changes_per_month`] / 30
//! (about 1 % a month): the old provider's care ends the day before, another
//! home-care provider's (the municipal unit included) starts that day, with
//! the same plan, home and grant (the same person, whose reference data
//! goes on). Clients with an absence registered ahead, a relative on the
//! staff (pattern 13) or brought in by a fraud (pattern 9) stay. A client
//! leaving a provider that inflates its clients' care (pattern 10) shows the
//! collapse too, as it would.
//!
//! **Takeovers** ([`SimConfig::takeovers`], honest): on its day an honest
//! home-care provider leaves the customer-choice system and every client
//! it has moves to another honest one, with the same plan, home and grant;
//! the provider leaving takes no more clients, new or changing.
//!
//! **Pattern 14.** At one honest-looking home-care provider per seven
//! fraudulent ones (at most two), from a day in months 2–3: 50–80 % of its
//! clients get their care scheduled and performed at 1.7–2.3 times their
//! plan (its average client stays below the 1.8× of pattern 10's peers
//! rule). From five weeks after the start, three of those clients (two
//! weeks apart) change to an honest provider, which performs the plan.
//! Observable on the Monday after the third whole week at the new provider:
//! then the drop is in the data.
//!
//! **Pattern 15, third form** (see `reference`): a week after its start,
//! and every ten days after, one of the provider's clients moves to an
//! honest provider (three in all), and the provider keeps planning,
//! registering and invoicing the client's visits as before.

use super::config::SimConfig;
use super::engine::World;
use super::fraud::{self, Scenario, client_unit};
use super::population::{Kind, Provider};
use super::rng::{Rng, tag};
use tillsyn_core::model::{Day, EventTime, Month};

/// Days after the start of pattern 14 of its first move, and between moves.
const FIRST_MOVE_DAYS: i32 = 35;
const MOVE_EVERY_DAYS: i32 = 14;
/// Moves per pattern 14 scenario.
const MOVES: usize = 3;
/// Pattern 15, third form (a provider that keeps registering the clients
/// who moved away): days after its start of its first client's move, and
/// between moves; moves in all.
const GHOST_FIRST_DAYS: i32 = 7;
const GHOST_EVERY_DAYS: i32 = 10;
const GHOST_MOVES: usize = 3;

/// The first Monday on or after `day`.
fn monday_from(day: Day) -> Day {
    day.plus((7 - day.weekday() as i32) % 7)
}

/// When a move on `day` is observable: the Monday after the third whole
/// week at the new provider (whose care starts that day).
fn observable_after(day: Day) -> Day {
    monday_from(day).plus(21)
}

/// Pattern 14 as extra scenarios, appended after every other scenario with
/// draws of their own, so that the others keep their index and draws.
pub(super) fn add_collapses(
    cfg: &SimConfig,
    providers: &[Provider],
    scenarios: &mut Vec<Scenario>,
    first_month: Month,
    end_day: Day,
) {
    let wanted = (cfg.fraudulent_providers / 7).min(2) as usize;
    if wanted == 0 || cfg.months < 3 {
        return;
    }
    let mut rng = Rng::new(cfg.seed, &[tag::CHANGES, 1]);
    let mut candidates: Vec<usize> = (1..providers.len())
        .filter(|&p| {
            let pr = &providers[p];
            pr.kind == Kind::HomeCare && !pr.large && pr.initial_clients >= 15
        })
        .filter(|&p| !scenarios.iter().any(|s| s.provider == p))
        .collect();
    rng.shuffle(&mut candidates);
    for (k, p) in candidates.into_iter().take(wanted).enumerate() {
        let month = Month(first_month.0 + rng.int(1, 2) as i32);
        let start = month.first_day().plus(rng.int(0, 20) as i32);
        let last_move = start.plus(FIRST_MOVE_DAYS + MOVE_EVERY_DAYS * (MOVES as i32 - 1));
        if observable_after(last_move).plus(7) >= end_day {
            continue;
        }
        // The collapse is judged client by client (the new provider's
        // hours against the old one's): below x1.7 there is none to see,
        // so the factor keeps to x1.7–x2.3 whatever the intensity.
        let u = cfg.intensity.draw(&mut rng);
        let strengths = (fraud::lerp(1.7, 2.3, u), fraud::lerp(0.5, 0.8, u), 0.0);
        let note = format!(
            "care for about {:.0} % of the clients scheduled and performed at {:.1} times their plan; {MOVES} of \
             them change to an honest provider from week 6 on, two weeks apart, whose hours show the collapse",
            strengths.1 * 100.0,
            strengths.0
        );
        let mut scenario = Scenario::new(p, (14, k as u32 % 2), start.start().0, None, strengths, note);
        scenario.intensity = u;
        scenarios.push(scenario);
    }
}

impl World<'_> {
    /// Pattern 14: the scenario inflating client `c`'s care at provider
    /// `p`, and its factor.
    pub(super) fn collapse_factor(&self, p: usize, c: usize, day_start: i64) -> Option<(usize, f64)> {
        let s = self.active(p, 14, day_start)?;
        let sc = &self.scenarios[s];
        (client_unit(self.cfg.seed, s, c) < sc.strength2).then_some((s, sc.strength))
    }

    /// Whether client `c` may change provider on `day`: a home-care client
    /// living alone, at the provider for a week at least, with no absence
    /// ahead, not part of a fraud.
    fn movable(&self, c: usize, day: Day) -> bool {
        let cl = &self.clients[c];
        cl.home_plan().is_some()
            && cl.partner.is_none()
            && cl.household.is_none()
            && cl.origin.is_none()
            && cl.present(day)
            && cl.until.is_none()
            && cl.from.max(cl.changed_on.unwrap_or(cl.from)) <= day.plus(-7)
            && !self.absence_ahead(c, day.start().0)
            && !self.scenarios.iter().any(|s| {
                s.pairs.iter().any(|x| x.1 == c)
                    || s.target_client == Some(c)
                    || s.pattern == 15 && s.moves.iter().any(|m| m.0 == c)
            })
    }

    /// Pattern 15, third form: the scenario of provider `p` that keeps
    /// registering client `c`, who moved to another provider.
    pub(super) fn registers_moved_client(&self, p: usize, c: usize, day_start: i64) -> Option<usize> {
        let s = self.active(p, 15, day_start)?;
        let sc = &self.scenarios[s];
        (sc.variant == 2 && self.clients[c].provider != p).then_some(s)
    }

    /// Client `c` changes to provider `to` on `day` (before the day's
    /// visits are planned): the old provider's care ends the day before.
    /// The client stays the same record (reference, home, plan, grant, the
    /// reference data's decisions and stays), so nothing else in the world
    /// moves.
    fn change_provider(&mut self, c: usize, to: usize, day: Day) {
        let from = self.clients[c].provider;
        self.prov_clients[from].retain(|&x| x != c);
        self.prov_clients[to].push(c);
        self.clients[c].provider = to;
        self.clients[c].changed_on = Some(day);
        if let Some(r) = self.reference.as_mut() {
            r.moved.push(c);
        }
    }

    /// The day's changes of provider: takeovers, honest ones, and
    /// pattern 14's moves.
    pub(super) fn provider_changes(&mut self, day: Day) {
        // Takeovers: every client of the provider leaving (at home or in
        // hospital that day) moves to the one taking over.
        for (on, giver, receiver) in self.takeovers.clone() {
            if on == day {
                let moving: Vec<usize> = self.prov_clients[giver]
                    .iter()
                    .copied()
                    .filter(|&c| self.clients[c].provider == giver && self.clients[c].until.is_none())
                    .collect();
                for c in moving {
                    self.change_provider(c, receiver, day);
                }
            }
        }
        let left: Vec<usize> = self.takeovers.iter().filter(|t| t.0 <= day).map(|t| t.1).collect();
        let mut rng = Rng::new(self.cfg.seed, &[tag::CHANGES, 2, day.0 as u64]);
        let fraudulent: Vec<usize> = self.scenarios.iter().map(|s| s.provider).collect();
        let home_care: Vec<usize> = (0..self.providers.len())
            .filter(|&p| self.providers[p].kind != Kind::Assistance && !left.contains(&p))
            .collect();
        let honest: Vec<usize> = home_care.iter().copied().filter(|p| !fraudulent.contains(p)).collect();
        let rate = self.cfg.provider_changes_per_month / 30.0;
        if rate > 0.0 {
            for c in 0..self.clients.len() {
                if !rng.chance(rate) || !self.movable(c, day) {
                    continue;
                }
                let from = self.clients[c].provider;
                let others: Vec<usize> = home_care.iter().copied().filter(|&p| p != from).collect();
                if let Some(&to) = rng.pick(&others) {
                    self.change_provider(c, to, day);
                }
            }
        }
        let day_start = day.start().0;
        for s in 0..self.scenarios.len() {
            let sc = &self.scenarios[s];
            if sc.pattern != 14 || !sc.active(day_start) || sc.moves.len() >= MOVES {
                continue;
            }
            let due = EventTime(sc.start).day().plus(FIRST_MOVE_DAYS + MOVE_EVERY_DAYS * sc.moves.len() as i32);
            if day < due || observable_after(day) >= self.end_day {
                continue;
            }
            let p = sc.provider;
            let inflated: Vec<usize> = self.prov_clients[p]
                .iter()
                .copied()
                .filter(|&c| self.clients[c].from <= due.plus(-FIRST_MOVE_DAYS))
                .filter(|&c| self.collapse_factor(p, c, day_start).is_some() && self.movable(c, day))
                .collect();
            let others: Vec<usize> = honest.iter().copied().filter(|&q| q != p).collect();
            let (Some(&c), Some(&to)) = (rng.pick(&inflated), rng.pick(&others)) else { continue };
            self.change_provider(c, to, day);
            let sc = &mut self.scenarios[s];
            sc.moves.push((c, day));
            let at = observable_after(day).start().0;
            sc.observable = Some(sc.observable.map_or(at, |o| o.min(at)));
        }
        // Pattern 15, third form: a client moves to an honest provider,
        // and the old provider goes on planning, registering and invoicing
        // the client's visits as before (observable when the two together
        // go over the grant: `reference_observe`).
        for s in 0..self.scenarios.len() {
            let sc = &self.scenarios[s];
            if sc.pattern != 15 || sc.variant != 2 || !sc.activated || !sc.active(day_start) {
                continue;
            }
            let due = EventTime(sc.start).day().plus(GHOST_FIRST_DAYS + GHOST_EVERY_DAYS * sc.moves.len() as i32);
            if sc.moves.len() >= GHOST_MOVES || day < due {
                continue;
            }
            let p = sc.provider;
            let own: Vec<usize> = self.prov_clients[p]
                .iter()
                .copied()
                .filter(|&c| self.clients[c].provider == p && self.movable(c, day))
                .collect();
            let others: Vec<usize> = honest.iter().copied().filter(|&q| q != p).collect();
            let (Some(&c), Some(&to)) = (rng.pick(&own), rng.pick(&others)) else { continue };
            self.change_provider(c, to, day);
            self.prov_clients[p].push(c);
            self.scenarios[s].moves.push((c, day));
        }
    }
}
