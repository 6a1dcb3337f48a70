//! Several municipalities at once: the region scenario.
//!
//! [`simulate_region`] runs one [`Simulation`] per municipality in lockstep,
//! a day at a time, into one arrival-ordered stream (as a regional
//! collector of the municipalities' time-registration and invoicing systems
//! would deliver them), and merges their ground truths. On top of what each
//! municipality simulates on its own, the region has:
//! - **Providers in more than one municipality**: a company with a branch in
//!   a second municipality (same organisation number and name, its own
//!   clients, staff and invoices there). The branches are chosen so that
//!   some companies are fraudulent in one municipality and honest in the
//!   other: tillsyn must judge each branch on its own (a municipality pays
//!   and controls its own contracts).
//! - **Staff with two employers** ([`MunicipalityConfig::second_jobs`]): a
//!   day or morning shift at one provider and a part-time evening at
//!   another, the same person (staff reference) at both, never in two
//!   places at once, and only on days the first job is worked.
//! - **Cross-provider double booking** in every municipality with enough
//!   fraudulent providers (pattern 2's second instance: a staff member of
//!   an honest provider registered at the fraudulent provider's clients
//!   while at work there), labelled like every other scenario.
//!
//! Event ids carry the municipality code (`2480-tr-…`), so no two
//! municipalities' events share an id. Same [`RegionConfig`] →
//! byte-identical events and truth.

use anyhow::{Result, bail};

use super::config::SimConfig;
use super::engine::Simulation;
use super::fraud::IntensityRange;
use super::output::Outbox;
use super::population::Kind;
use super::rng::Rng;
use crate::labels::GroundTruth;
use tillsyn_core::model::ProviderId;
use tillsyn_core::proto::v1 as wire;

/// One municipality of a region.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MunicipalityConfig {
    /// Four-digit municipality code.
    pub code: String,
    /// Providers including the municipality's own unit.
    pub providers: u32,
    /// Clients at the start.
    pub clients: u32,
    /// Private providers with injected fraud.
    pub fraudulent_providers: u32,
    /// Staff members with a second job at another provider of the
    /// municipality ([`SimConfig::second_jobs`]).
    #[serde(default)]
    pub second_jobs: u32,
}

/// Settings of the region scenario; `Default` is three municipalities of
/// the Umeå region over January–June 2026.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionConfig {
    /// Seed of every random choice (each municipality gets its own stream).
    pub seed: u64,
    /// Year of the first simulated month.
    pub start_year: i32,
    /// First simulated month, 1–12.
    pub start_month: u32,
    /// Whole months simulated.
    pub months: u32,
    /// The municipalities (at least two, distinct codes).
    pub municipalities: Vec<MunicipalityConfig>,
    /// Companies with a branch in a second municipality: the first
    /// municipality's private home-care providers, each also running one
    /// of another municipality's home-care providers (alternately an honest
    /// and a fraudulent one in the first municipality).
    pub shared_providers: u32,
    /// Reference data in every municipality ([`SimConfig::reference`]).
    pub reference: bool,
    /// Fraud intensities in every municipality ([`SimConfig::intensity`]).
    pub intensity: IntensityRange,
}

impl Default for RegionConfig {
    fn default() -> Self {
        let municipality = |code: &str, providers, clients, fraudulent_providers, second_jobs| MunicipalityConfig {
            code: code.to_string(),
            providers,
            clients,
            fraudulent_providers,
            second_jobs,
        };
        RegionConfig {
            seed: 1,
            start_year: 2026,
            start_month: 1,
            months: 6,
            municipalities: vec![
                municipality("2480", 40, 2500, 14, 6),
                municipality("2460", 9, 500, 3, 2),
                municipality("2401", 8, 420, 2, 2),
            ],
            shared_providers: 4,
            reference: false,
            intensity: SimConfig::default().intensity,
        }
    }
}

impl RegionConfig {
    /// The simulator settings of each municipality.
    pub fn municipality_configs(&self) -> Vec<SimConfig> {
        self.municipalities
            .iter()
            .enumerate()
            .map(|(i, m)| SimConfig {
                seed: self.seed.wrapping_add((i as u64) << 40),
                municipality_code: m.code.clone(),
                start_year: self.start_year,
                start_month: self.start_month,
                months: self.months,
                providers: m.providers,
                clients: m.clients,
                fraudulent_providers: m.fraudulent_providers,
                second_jobs: m.second_jobs,
                event_id_prefix: format!("{}-", m.code),
                reference: self.reference,
                intensity: self.intensity,
                ..SimConfig::default()
            })
            .collect()
    }

    /// Checks the region and every municipality's settings.
    pub fn validate(&self) -> Result<()> {
        if self.municipalities.len() < 2 {
            bail!("municipalities: a region needs at least two (use the municipality simulator for one)");
        }
        let mut codes: Vec<&str> = self.municipalities.iter().map(|m| m.code.as_str()).collect();
        codes.sort_unstable();
        if codes.windows(2).any(|w| w[0] == w[1]) {
            bail!("municipalities: two have the same code");
        }
        for (m, config) in self.municipalities.iter().zip(self.municipality_configs()) {
            config.validate().map_err(|e| anyhow::anyhow!("municipality {}: {e}", m.code))?;
        }
        if self.shared_providers > 16 {
            bail!("shared_providers: {} is more than 16", self.shared_providers);
        }
        Ok(())
    }
}

/// Runs the region, handing every event to `sink` in arrival order, and
/// returns the merged ground truth (every municipality's providers and
/// labels; a company with two branches is listed once per municipality).
pub fn simulate_region(config: &RegionConfig, sink: &mut dyn FnMut(&wire::Event) -> Result<()>) -> Result<GroundTruth> {
    config.validate()?;
    let configs = config.municipality_configs();
    let mut sims = configs.iter().map(Simulation::new).collect::<Result<Vec<_>>>()?;
    share_providers(&mut sims, config);
    let mut out = Outbox::new(sink);
    for sim in &mut sims {
        sim.open_reference(&mut out)?;
    }
    let (first, end) = (sims[0].w.first_day, sims[0].w.end_day);
    let mut day = first;
    while day < end {
        out.flush_before(day.start().0)?;
        for sim in &mut sims {
            sim.day(day, &mut out)?;
        }
        day = day.plus(1);
    }
    for sim in &mut sims {
        sim.finish(&mut out)?;
    }
    out.flush_all()?;
    let end = sims.iter().map(|s| s.end(out.last)).max().unwrap_or_default();
    let mut truth = GroundTruth {
        seed: config.seed,
        start: super::output::ts(first.start().0),
        end: super::output::ts(end),
        providers: Vec::new(),
        labels: Vec::new(),
    };
    for sim in &sims {
        let part = sim.truth(end);
        truth.providers.extend(part.providers);
        truth.labels.extend(part.labels);
    }
    Ok(truth)
}

/// Gives `shared_providers` companies of the first municipality a branch in
/// another one (its id and name), and makes every other organisation number
/// unique across the region.
fn share_providers(sims: &mut [Simulation], config: &RegionConfig) {
    let mut rng = Rng::new(config.seed, &[0x5E61_0000]);
    let fraudulent = |sim: &Simulation, p: usize| sim.w.scenarios.iter().any(|s| s.provider == p);
    let home_care = |sim: &Simulation| -> Vec<usize> {
        (1..sim.w.providers.len()).filter(|&p| sim.w.providers[p].kind == Kind::HomeCare).collect()
    };
    let mut honest: Vec<usize> = home_care(&sims[0]).into_iter().filter(|&p| !fraudulent(&sims[0], p)).collect();
    let mut crooked: Vec<usize> = home_care(&sims[0]).into_iter().filter(|&p| fraudulent(&sims[0], p)).collect();
    rng.shuffle(&mut honest);
    rng.shuffle(&mut crooked);
    let mut free: Vec<Vec<usize>> = sims.iter().map(home_care).collect();
    for list in &mut free {
        rng.shuffle(list);
    }
    let statuses: Vec<Vec<bool>> =
        sims.iter().map(|sim| (0..sim.w.providers.len()).map(|p| fraudulent(sim, p)).collect()).collect();
    // Make unintended collisions impossible first: every private id unique.
    let mut used = std::collections::BTreeSet::new();
    for sim in sims.iter_mut() {
        for p in 1..sim.w.providers.len() {
            let mut nine = nine_digits(&sim.w.providers[p].id);
            while !used.insert(nine) {
                nine += 1;
            }
            sim.w.providers[p].id = ProviderId::from_nine_digits(nine).to_string();
        }
    }
    for k in 0..config.shared_providers as usize {
        let source =
            if k % 2 == 0 { honest.pop().or_else(|| crooked.pop()) } else { crooked.pop().or_else(|| honest.pop()) };
        let target_sim = 1 + k % (sims.len() - 1);
        // The other status there if there is one: fraud in one branch only.
        let want_fraud = k % 2 == 0;
        let list = &mut free[target_sim];
        let b = match list.iter().position(|&b| statuses[target_sim][b] == want_fraud) {
            Some(i) => Some(list.remove(i)),
            None => list.pop(),
        };
        let (Some(a), Some(b)) = (source, b) else { continue };
        let (id, name) = (sims[0].w.providers[a].id.clone(), sims[0].w.providers[a].name.clone());
        let branch = &mut sims[target_sim].w.providers[b];
        branch.id = id;
        branch.name = name;
    }
}

/// The first nine digits of an organisation number `NNNNNN-NNNN`.
fn nine_digits(id: &str) -> u64 {
    id.bytes().filter(u8::is_ascii_digit).take(9).fold(0, |n, d| n * 10 + u64::from(d - b'0'))
}
