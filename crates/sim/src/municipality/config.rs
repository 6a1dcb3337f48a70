//! Simulator settings: one typed struct, defaults in one place, one fallible
//! [`SimConfig::validate`].

use anyhow::{Result, bail};

use tillsyn_core::model::MunicipalityCode;

use super::fraud::IntensityRange;

/// Simulator settings; `Default` gives the evaluation scenario (Umeå-sized
/// home care, January–June 2026, 40 providers of which 14 commit fraud).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of every random choice; the same configuration gives
    /// byte-identical events and ground truth.
    pub seed: u64,
    /// Four-digit code of the paying municipality (the map is Umeå's
    /// whatever the code).
    pub municipality_code: String,
    /// Year of the first simulated month.
    pub start_year: i32,
    /// First simulated month, 1–12.
    pub start_month: u32,
    /// Number of whole calendar months with visits (1–60). Invoices for the
    /// last month arrive in the first days of the following month.
    pub months: u32,
    /// Number of providers including the municipality's own unit (>= 2).
    pub providers: u32,
    /// Number of clients at the start (home care and personal assistance).
    pub clients: u32,
    /// Number of private providers with injected fraud; 0 gives a clean
    /// municipality.
    pub fraudulent_providers: u32,
    /// Share of home-care clients served by the municipal unit.
    pub municipal_share: f64,
    /// Share of clients with personal assistance instead of home care
    /// (served by dedicated assistance companies; none with fewer than 7
    /// providers).
    pub personal_assistance_share: f64,
    /// Share of home-care clients who also get visits from the municipal
    /// night patrol.
    pub night_patrol_share: f64,
    /// Share of home-care clients who live with a partner who is also a
    /// client (a couple shares a household and is served in one slot).
    pub couple_share: f64,
    /// Share of home-care clients needing two staff at their morning and
    /// evening visits (double staffing; given to heavy-care clients only).
    pub double_staffing_share: f64,
    /// Net monthly growth of the municipality's home-care clients.
    pub municipal_growth_per_month: f64,
    /// Monthly share of home-care clients who leave (death, nursing home,
    /// moving away); arrivals replace them plus the growth.
    pub departures_per_month: f64,
    /// Monthly share of home-care clients living alone who change provider
    /// (the client's choice under LOV): the old provider's care ends the
    /// day before, the new provider's starts that day, the same plan and grant.
    pub provider_changes_per_month: f64,
    /// Number of honest private providers with legitimate growth of 2–5 %
    /// a month (a successful company is not a fraud); fewer if there are not
    /// that many honest home-care providers.
    pub growing_providers: u32,
    /// Number of staff members who also have a second, part-time evening
    /// job at another honest provider (two employers, never two places at
    /// once: the evening job starts hours after the first one ends, and
    /// only on days the first one is worked, so days off stay days off).
    pub second_jobs: u32,
    /// Number of honest home-care providers whose lock and tag system is
    /// down once, for 1–3 days from month 2 on: every visit of those days
    /// typed by hand (honest noise for the manual-share rules). Fewer if
    /// there are not that many steady honest home-care providers.
    pub lock_outages: u32,
    /// Number of honest home-care providers whose clients need 1.3–1.5
    /// times the usual care, and are granted it: longer visits (honest
    /// noise for the hours-per-client rules). Fewer if there are not that
    /// many.
    pub heavy_client_providers: u32,
    /// Number of honest takeovers: an honest home-care provider leaves the
    /// customer-choice system on a day from month 2 on, and another honest
    /// one takes over every client it had that day, with their plans and
    /// grants (honest noise for the volume and hours rules: a provider
    /// whose clients grow by a whole provider's in a day). Fewer if there
    /// are not that many steady honest home-care providers.
    pub takeovers: u32,
    /// Prefix of every event id (`tr-…`, `inv-…`), so that the events of
    /// several simulated municipalities never share an id.
    pub event_id_prefix: String,
    /// Also emit reference data (decisions on granted hours, client
    /// absences, the provider register) in the stream, make honest
    /// providers respect it, and inject the patterns that need it (11, 15
    /// and 16, at two more providers each when `fraudulent_providers` is
    /// not 0). Off, the output is exactly that of a simulator without it.
    pub reference: bool,
    /// The range each fraud scenario draws its intensity from, uniformly:
    /// 0 the subtlest fraud (e.g. 3 % added to a tenth of the clients'
    /// invoice lines), 1 the most blatant (40 % added to 60 % of them); see
    /// `fraud::strengths` for every pattern. The label records it. The
    /// default is the blatant third (2/3..1), the frauds the evaluation
    /// scenario has always injected; `IntensityRange::WIDE` adds the
    /// moderate and subtle ones.
    pub intensity: IntensityRange,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            municipality_code: "2480".to_string(),
            start_year: 2026,
            start_month: 1,
            months: 6,
            providers: 40,
            clients: 2500,
            fraudulent_providers: 14,
            municipal_share: 0.25,
            personal_assistance_share: 0.03,
            night_patrol_share: 0.06,
            couple_share: 0.06,
            double_staffing_share: 0.02,
            municipal_growth_per_month: 0.003,
            departures_per_month: 0.018,
            provider_changes_per_month: 0.01,
            growing_providers: 3,
            second_jobs: 0,
            lock_outages: 2,
            heavy_client_providers: 1,
            takeovers: 1,
            event_id_prefix: String::new(),
            reference: false,
            intensity: IntensityRange::BLATANT,
        }
    }
}

impl SimConfig {
    /// Checks every field and the constraints between them.
    pub fn validate(&self) -> Result<()> {
        if MunicipalityCode::parse(&self.municipality_code).is_none() {
            bail!("municipality_code: {:?} is not a four-digit municipality code", self.municipality_code);
        }
        if !(1..=12).contains(&self.start_month) {
            bail!("start_month: {} is not a month 1-12", self.start_month);
        }
        if !(2001..=2090).contains(&self.start_year) {
            bail!("start_year: {} is outside 2001-2090", self.start_year);
        }
        if !(1..=60).contains(&self.months) {
            bail!("months: {} is outside 1-60", self.months);
        }
        if !(2..=1_000).contains(&self.providers) {
            bail!("providers: {} is outside 2-1000 (one municipal unit and at least one private)", self.providers);
        }
        if self.clients < 8 * self.providers || self.clients > 1_000_000 {
            bail!("clients: {} must be between 8 per provider ({}) and 1000000", self.clients, 8 * self.providers);
        }
        if self.fraudulent_providers > self.providers - 1 {
            bail!(
                "fraudulent_providers: {} exceeds the {} private providers",
                self.fraudulent_providers,
                self.providers - 1
            );
        }
        if self.second_jobs > self.providers * 4 {
            bail!("second_jobs: {} exceeds 4 per provider ({})", self.second_jobs, self.providers * 4);
        }
        if self.event_id_prefix.len() > 16
            || !self.event_id_prefix.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        {
            bail!("event_id_prefix: {:?} is not up to 16 letters, digits or '-'", self.event_id_prefix);
        }
        if !self.intensity.valid() {
            bail!("intensity: {} is not a range within 0..1", self.intensity);
        }
        let shares = [
            ("municipal_share", self.municipal_share, 0.05, 0.9),
            ("personal_assistance_share", self.personal_assistance_share, 0.0, 0.3),
            ("night_patrol_share", self.night_patrol_share, 0.0, 0.3),
            ("couple_share", self.couple_share, 0.0, 0.5),
            ("double_staffing_share", self.double_staffing_share, 0.0, 0.05),
            ("municipal_growth_per_month", self.municipal_growth_per_month, -0.02, 0.05),
            ("departures_per_month", self.departures_per_month, 0.0, 0.1),
            ("provider_changes_per_month", self.provider_changes_per_month, 0.0, 0.1),
        ];
        for (name, value, lo, hi) in shares {
            if !value.is_finite() || value < lo || value > hi {
                bail!("{name}: {value} is outside {lo}-{hi}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(SimConfig::default().validate().is_ok());
        let bad = SimConfig { providers: 1, ..SimConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().starts_with("providers"));
        let bad = SimConfig { fraudulent_providers: 40, ..SimConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().starts_with("fraudulent_providers"));
        let bad = SimConfig { municipality_code: "99".into(), ..SimConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().starts_with("municipality_code"));
    }

    #[test]
    fn unknown_fields_are_rejected_and_missing_ones_default() {
        let c: SimConfig = serde_json::from_str(r#"{"seed": 9, "months": 2}"#).unwrap();
        assert_eq!((c.seed, c.months, c.providers), (9, 2, 40));
        assert!(serde_json::from_str::<SimConfig>(r#"{"sed": 9}"#).is_err());
    }
}
