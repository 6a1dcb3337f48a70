//! Typed configuration of the detection core, with defaults in one place
//! and cross-field checks in one fallible [`CoreConfig::validate`].
//!
//! Loaded from the `[core]` table of a TOML file (see the README's
//! configuration reference). Unknown keys are errors, so a typo is caught
//! rather than silently ignored.

use crate::rules::RulesConfig;

/// Windows, lateness and alerting of the core, plus every rule's parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreConfig {
    /// How far behind the newest time report a time report may arrive and
    /// still be applied (seconds). Older ones are reported as late.
    pub visit_lateness_secs: i64,
    /// The same for invoices, by issue time (seconds).
    pub invoice_lateness_secs: i64,
    /// Days of per-provider history kept (the widest window).
    pub horizon_days: u32,
    /// Days of per-staff history kept (working-time rules).
    pub staff_horizon_days: u32,
    /// A client counts as active if visited within this many days.
    pub activity_days: u32,
    /// Most event ids carried by one alert.
    pub evidence_limit: usize,
    /// Secret for pseudonymising client, staff and household references.
    /// Must be the same on every instance and across restarts.
    pub pseudonym_secret: String,
    /// Rule parameters.
    pub rules: RulesConfig,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            visit_lateness_secs: 3 * 86_400,
            invoice_lateness_secs: 10 * 86_400,
            horizon_days: 90,
            staff_horizon_days: 28,
            activity_days: 30,
            evidence_limit: 20,
            pseudonym_secret: "change-me".to_string(),
            rules: RulesConfig::default(),
        }
    }
}

/// A configuration that cannot work, with the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl CoreConfig {
    /// Checks ranges and cross-field constraints.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.visit_lateness_secs < 0 || self.invoice_lateness_secs < 0 {
            return err("visit_lateness_secs and invoice_lateness_secs must be >= 0".into());
        }
        if !(7..=400).contains(&self.horizon_days) {
            return err(format!("horizon_days = {} must be within 7..=400", self.horizon_days));
        }
        let widest = self.rules.widest_window_days().max(self.activity_days + 7);
        if widest > self.horizon_days {
            return err(format!(
                "horizon_days = {} is shorter than the widest window a rule reads ({widest} days)",
                self.horizon_days
            ));
        }
        let staff_needed = self.rules.staff_impossible_day.max_consecutive_days + 1;
        if self.staff_horizon_days < staff_needed.max(7) {
            return err(format!("staff_horizon_days = {} must be >= {}", self.staff_horizon_days, staff_needed.max(7)));
        }
        if self.activity_days == 0 || self.evidence_limit == 0 {
            return err("activity_days and evidence_limit must be > 0".into());
        }
        if self.pseudonym_secret.is_empty() {
            return err("pseudonym_secret must not be empty".into());
        }
        self.rules.validate().map_err(ConfigError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(CoreConfig::default().validate(), Ok(()));
    }

    #[test]
    fn a_window_wider_than_the_horizon_is_rejected() {
        let mut c = CoreConfig::default();
        c.rules.manual_registration_share.window_days = 120;
        assert!(c.validate().unwrap_err().0.contains("horizon_days"));
    }

    #[test]
    fn unknown_keys_and_unknown_rule_ids_are_rejected() {
        assert!(toml::from_str::<CoreConfig>("horizon_dayz = 3").is_err());
        let c: CoreConfig = toml::from_str("[rules]\ndisabled = [\"no-such-rule\"]").unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn rule_parameters_are_read_from_toml() {
        let c: CoreConfig = toml::from_str("[rules.manual_registration_share]\nz_threshold = 5.0").unwrap();
        assert_eq!(c.rules.manual_registration_share.z_threshold, 5.0);
        assert_eq!(c.horizon_days, 90, "other keys keep their defaults");
    }
}
