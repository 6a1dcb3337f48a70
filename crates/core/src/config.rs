//! Typed configuration of the detection core, with defaults in one place
//! and range and cross-field checks in [`CoreConfig::problems`] (all of
//! them) and [`CoreConfig::validate`] (the first).
//!
//! Loaded from the `[core]` table of the service's TOML file (see the
//! README's configuration reference). Unknown keys are errors, so a typo is
//! caught rather than silently ignored. Durations are strings such as
//! `"30s"`, `"3d"` or `"1h 30m"` (see [`duration`]).

use std::time::Duration;

use crate::rules::RulesConfig;
use crate::text::Language;

/// Longest allowed lateness of an input (the longest horizon, 400 days).
pub const MAX_LATENESS: Duration = Duration::from_secs(400 * 86_400);

/// Windows, lateness and alerting of the core, plus every rule's parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreConfig {
    /// How far behind the newest time report a time report may arrive and
    /// still be applied (whole seconds). Older ones are reported as late.
    #[serde(with = "duration")]
    pub visit_lateness: Duration,
    /// The same for invoices, by issue time (whole seconds).
    #[serde(with = "duration")]
    pub invoice_lateness: Duration,
    /// How far ahead of the source's clock a record's event time may be
    /// (whole seconds): a time report checked in, or an invoice issued,
    /// later than this after the newest source heartbeat of its partition,
    /// a time report checked in this long after it was reported, or an
    /// invoice billing a period that ends this long after its issue, is
    /// implausible: dead-lettered, and it moves no watermark.
    #[serde(with = "duration")]
    pub max_ahead: Duration,
    /// Days of per-provider history kept (the widest window).
    pub horizon_days: u32,
    /// Days of per-staff history kept (working-time rules, relative employment).
    pub staff_horizon_days: u32,
    /// A client counts as active if visited within this many days.
    pub activity_days: u32,
    /// Most event ids carried by one alert.
    pub evidence_limit: usize,
    /// Secret for pseudonymising client, staff and household references.
    /// Must be the same on every instance and across restarts.
    pub pseudonym_secret: String,
    /// A name for the secret (not the secret): state written under one
    /// key id is never restored under another. Change it with the secret
    /// (the state is then rebuilt from the inputs). Checkpoints carry the
    /// id and nothing derived from the secret, so reading them gives no
    /// way to test guesses of the secret.
    pub pseudonym_key_id: String,
    /// The language of the alerts' `explanation`: `"sv"` (Swedish, the
    /// default: the readers are the municipalities' case officers) or
    /// `"en"`. Alerts carry both in `explanations` whatever it is. Not
    /// state: a change applies to the alerts after a restart, without a
    /// rebuild.
    pub language: Language,
    /// Caps on the state of one partition, against floods of new keys.
    pub limits: StateLimits,
    /// Reference data (granted hours, absences, the provider register).
    pub reference: ReferenceConfig,
    /// Rule parameters.
    pub rules: RulesConfig,
}

/// Whether reference data feeds the rules that need it, and how late a
/// version may come (see [`crate::baseline::reference`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceConfig {
    /// Reference data is read, and every day is decided once it is known
    /// through the day's decision time. Off: the rules that need it find
    /// nothing, nothing waits for it, and a reference record is
    /// dead-lettered (`reference_data_off`).
    pub enabled: bool,
    /// How far behind its source's newest registration a version may be
    /// registered and still be applied (whole seconds). Older ones are
    /// late: dead-lettered (`reference_late`).
    #[serde(with = "duration")]
    pub lateness: Duration,
    /// How long after a visit's check-in the rules that judge each visit
    /// against the reference data (`visit-during-absence`,
    /// `visit-above-granted-hours`, `visit-without-permit`) wait before
    /// they ask it (whole seconds, at most a day): the longest delay with
    /// which the sources register a change that was already true at the
    /// check-in: a discharge above all, which turns an open hospital stay
    /// into one that ended before the visit. A visit is judged at the later
    /// of its provider's clock when it arrived and its check-in plus this.
    #[serde(with = "duration")]
    pub visit_grace: Duration,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig {
            enabled: false,
            lateness: Duration::from_secs(3600),
            visit_grace: Duration::from_secs(6 * 3600),
        }
    }
}

impl ReferenceConfig {
    /// [`Self::lateness`] in whole seconds.
    pub fn lateness_secs(&self) -> i64 {
        i64::try_from(self.lateness.as_secs()).unwrap_or(i64::MAX)
    }

    /// [`Self::visit_grace`] in whole seconds.
    pub fn visit_grace_secs(&self) -> i64 {
        i64::try_from(self.visit_grace.as_secs()).unwrap_or(i64::MAX)
    }

    /// The table the configuration asks for, fed by `sources` sources: in
    /// use, or not.
    pub fn table(&self, sources: u32) -> crate::baseline::ReferenceTable {
        if self.enabled {
            crate::baseline::ReferenceTable::new(sources, self.lateness_secs())
        } else {
            crate::baseline::ReferenceTable::unused()
        }
    }
}

/// Caps on the state one partition holds, against floods of new keys
/// (valid records with ever new provider ids, client or staff
/// references). A record that would grow the provider stage's state beyond
/// a cap is dead-lettered (`state_limit_providers`, `state_limit_clients`,
/// `state_limit_pending_invoices`) and changes nothing; a visit of a new
/// staff member beyond the staff stage's cap is left out of the staff
/// rules and counted. The defaults are far above a nation's real numbers
/// (6,000 providers and 230,000 clients in all), so only a flood reaches
/// them; a cap counted per partition (providers, staff) depends on how
/// keys fall into partitions, so once a flood reaches one, the answer
/// may depend on the partition count (the alternative is running out of
/// memory).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateLimits {
    /// Providers (per municipality) one partition holds.
    pub providers: usize,
    /// Clients one provider holds.
    pub clients_per_provider: usize,
    /// Clients one partition holds, over all its providers.
    pub clients: usize,
    /// Invoices one provider keeps waiting for their period's time reports.
    pub pending_invoices_per_provider: usize,
    /// Staff members one partition of the staff stage holds.
    pub staff: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            providers: 10_000,
            clients_per_provider: 20_000,
            clients: 500_000,
            pending_invoices_per_provider: 24,
            staff: 200_000,
        }
    }
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            visit_lateness: Duration::from_secs(3 * 86_400),
            invoice_lateness: Duration::from_secs(10 * 86_400),
            max_ahead: Duration::from_secs(2 * 86_400),
            horizon_days: 90,
            staff_horizon_days: 28,
            activity_days: 30,
            evidence_limit: 20,
            pseudonym_secret: "change-me".to_string(),
            pseudonym_key_id: "1".to_string(),
            language: Language::Sv,
            limits: StateLimits::default(),
            reference: ReferenceConfig::default(),
            rules: RulesConfig::default(),
        }
    }
}

/// A core configuration that cannot work. Every variant names the offending
/// key ([`CoreConfigError::key`]), relative to the `[core]` table; the
/// message starts with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreConfigError {
    /// A value outside its allowed range.
    #[error("{key} = {value} must be {expected}")]
    OutOfRange {
        /// The key, e.g. `horizon_days`.
        key: &'static str,
        /// The value, as written in TOML.
        value: String,
        /// What it must be, e.g. `within 7..=400`.
        expected: String,
    },
    /// The horizon does not cover the widest window a rule reads.
    #[error("horizon_days = {horizon_days} is shorter than the widest window a rule reads ({widest} days)")]
    HorizonTooShort {
        /// The configured horizon.
        horizon_days: u32,
        /// The widest window, in days.
        widest: u32,
    },
    /// A string that must not be empty is.
    #[error("{key} must not be empty")]
    Empty {
        /// The key.
        key: &'static str,
    },
    /// A rule's parameters are not usable.
    #[error("{message}")]
    Rules {
        /// The key under `rules` (e.g. `rules.disabled`).
        key: String,
        /// What is wrong, starting with the key.
        message: String,
    },
}

impl CoreConfigError {
    /// The offending key, relative to the `[core]` table (e.g.
    /// `horizon_days`, `rules.disabled`).
    pub fn key(&self) -> &str {
        match self {
            CoreConfigError::OutOfRange { key, .. } | CoreConfigError::Empty { key } => key,
            CoreConfigError::HorizonTooShort { .. } => "horizon_days",
            CoreConfigError::Rules { key, .. } => key,
        }
    }

    /// A problem reported by [`RulesConfig::validate`], which starts with
    /// its key (`rules.disabled: unknown rule id …`,
    /// `rules.impossible_travel.max_speed_kmh must be > 0`).
    fn rules(problem: String) -> Self {
        let key = match problem.split_once(' ') {
            Some((key, _)) if key.starts_with("rules") => key.trim_end_matches(':').to_string(),
            _ => "rules".to_string(),
        };
        let message = problem;
        CoreConfigError::Rules { key, message }
    }
}

impl CoreConfig {
    /// Checks ranges and cross-field constraints; the first problem.
    pub fn validate(&self) -> Result<(), CoreConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every problem of the configuration (empty if it is usable): each
    /// lateness whole seconds and at most [`MAX_LATENESS`]; `horizon_days`
    /// within 7..=400 and covering every rule's window and the activity
    /// period plus a week; `staff_horizon_days` covering the working-time
    /// rules and the weeks of `relative-employment` (at least 7 days); `activity_days` and `evidence_limit` > 0; a
    /// pseudonym secret; the rules' own checks.
    pub fn problems(&self) -> Vec<CoreConfigError> {
        let mut problems = Vec::new();
        let out_of_range = |key, value: String, expected: String| CoreConfigError::OutOfRange { key, value, expected };
        for (key, lateness) in [
            ("visit_lateness", self.visit_lateness),
            ("invoice_lateness", self.invoice_lateness),
            ("reference.lateness", self.reference.lateness),
        ] {
            if lateness.subsec_nanos() != 0 || lateness > MAX_LATENESS {
                problems.push(out_of_range(
                    key,
                    format!("{:?}", duration::format(lateness)),
                    format!("whole seconds and at most {:?}", duration::format(MAX_LATENESS)),
                ));
            }
        }
        if self.max_ahead.subsec_nanos() != 0
            || self.max_ahead < Duration::from_secs(3600)
            || self.max_ahead > MAX_LATENESS
        {
            problems.push(out_of_range(
                "max_ahead",
                format!("{:?}", duration::format(self.max_ahead)),
                format!("whole seconds, at least \"1h\" and at most {:?}", duration::format(MAX_LATENESS)),
            ));
        }
        if self.reference.visit_grace.subsec_nanos() != 0 || self.reference.visit_grace > Duration::from_secs(86_400) {
            problems.push(out_of_range(
                "reference.visit_grace",
                format!("{:?}", duration::format(self.reference.visit_grace)),
                "whole seconds and at most \"1d\"".to_string(),
            ));
        }
        if !(7..=400).contains(&self.horizon_days) {
            problems.push(out_of_range("horizon_days", self.horizon_days.to_string(), "within 7..=400".into()));
        } else {
            let widest = self.rules.widest_window_days().max(self.activity_days.saturating_add(7));
            if widest > self.horizon_days {
                problems.push(CoreConfigError::HorizonTooShort { horizon_days: self.horizon_days, widest });
            }
        }
        let staff_needed = (self.rules.staff_impossible_day.max_consecutive_days + 1)
            .max(self.rules.relative_employment.window_weeks.saturating_mul(7))
            .max(7);
        if self.staff_horizon_days < staff_needed {
            problems.push(out_of_range(
                "staff_horizon_days",
                self.staff_horizon_days.to_string(),
                format!(">= {staff_needed}"),
            ));
        }
        if self.activity_days == 0 {
            problems.push(out_of_range("activity_days", "0".into(), "> 0".into()));
        }
        if self.evidence_limit == 0 {
            problems.push(out_of_range("evidence_limit", "0".into(), "> 0".into()));
        }
        if self.pseudonym_secret.is_empty() {
            problems.push(CoreConfigError::Empty { key: "pseudonym_secret" });
        }
        let id = &self.pseudonym_key_id;
        if id.is_empty() || id.chars().count() > 64 || id.chars().any(char::is_control) {
            problems.push(out_of_range(
                "pseudonym_key_id",
                format!("{id:?}"),
                "1-64 characters, no control characters".into(),
            ));
        }
        let limits = [
            ("limits.providers", self.limits.providers),
            ("limits.clients_per_provider", self.limits.clients_per_provider),
            ("limits.clients", self.limits.clients),
            ("limits.pending_invoices_per_provider", self.limits.pending_invoices_per_provider),
            ("limits.staff", self.limits.staff),
        ];
        for (key, value) in limits {
            if !(1..=10_000_000).contains(&value) {
                problems.push(out_of_range(key, value.to_string(), "within 1..=10000000".into()));
            }
        }
        if let Err(problem) = self.rules.validate() {
            problems.push(CoreConfigError::rules(problem));
        }
        problems
    }

    /// [`Self::visit_lateness`] in whole seconds, as the engine counts
    /// event time (saturating; a validated configuration is far below).
    pub fn visit_lateness_secs(&self) -> i64 {
        i64::try_from(self.visit_lateness.as_secs()).unwrap_or(i64::MAX)
    }

    /// Days of reference data kept behind the time it is known through:
    /// the horizon (the oldest day a partition decides) plus the longest
    /// look back of a rule (120 days at most).
    pub fn reference_keep_days(&self) -> u32 {
        self.horizon_days + 120
    }

    /// [`Self::max_ahead`] in whole seconds.
    pub fn max_ahead_secs(&self) -> i64 {
        i64::try_from(self.max_ahead.as_secs()).unwrap_or(i64::MAX)
    }

    /// [`Self::invoice_lateness`] in whole seconds.
    pub fn invoice_lateness_secs(&self) -> i64 {
        i64::try_from(self.invoice_lateness.as_secs()).unwrap_or(i64::MAX)
    }
}

/// Serde of a [`Duration`] as a human-readable string, for
/// `#[serde(with = "tillsyn_core::config::duration")]`.
///
/// Reading is `humantime`'s parser: a sequence of number-unit pairs,
/// `"30s"`, `"1h 30m"`, `"3d"`, `"500ms"` (units `ns`, `us`, `ms`, `s`, `m`,
/// `h`, `d`, `w`, and their long forms; a number may have a fraction,
/// `"1.5s"`). Writing ([`duration::format`]) uses the largest of `d`, `h`,
/// `m`, `s`, `ms`, `us`, `ns` that divides the duration exactly, so the
/// configuration prints as it is usually written (`"100d"`, not
/// `humantime`'s `"3months 8days 16h 19m 12s"`) and reads back to the same
/// value.
///
/// (`humantime-serde` is not used: its reader drops `humantime`'s reason,
/// e.g. "time unit needed, for example 5000sec or 5000ms", and its writer
/// is `humantime`'s calendar-like format.)
pub mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de};

    /// What a duration looks like, for error messages.
    const EXPECTED: &str = "a duration such as \"30s\", \"5m\" or \"3d\"";

    /// Writes `d` as [`format()`] does.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// Reads a duration string (see the module documentation).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                parse(text).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }

    /// Parses a duration string (see the module documentation); the error
    /// says why.
    pub fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?} is not {EXPECTED} ({e})"))
    }

    /// `d` in its largest exact unit: `"3d"`, `"30s"`, `"1500ms"`, `"0s"`.
    pub fn format(d: Duration) -> String {
        const UNITS: [(&str, u128); 7] = [
            ("d", 86_400_000_000_000),
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ];
        let nanos = d.as_nanos();
        if nanos == 0 {
            return "0s".to_string();
        }
        let (unit, size) = UNITS.iter().find(|(_, size)| nanos.is_multiple_of(*size)).expect("ns divides everything");
        format!("{}{unit}", nanos / size)
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
        let e = c.validate().unwrap_err();
        assert_eq!(e.key(), "horizon_days");
        assert!(e.to_string().starts_with("horizon_days = 90 is shorter"), "{e}");
    }

    #[test]
    fn unknown_keys_and_unknown_rule_ids_are_rejected() {
        assert!(toml::from_str::<CoreConfig>("horizon_dayz = 3").is_err());
        let c: CoreConfig = toml::from_str("[rules]\ndisabled = [\"no-such-rule\"]").unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.key(), "rules.disabled");
        assert!(e.to_string().starts_with("rules.disabled: unknown rule id"), "{e}");
        let mut c = CoreConfig::default();
        c.rules.night_visits_private_provider.free_choice_start = "25:00".into();
        assert_eq!(c.validate().unwrap_err().key(), "rules.night_visits_private_provider.free_choice_start");
    }

    #[test]
    fn the_staff_horizon_covers_the_relative_employment_window() {
        let mut c = CoreConfig::default();
        c.rules.relative_employment.window_weeks = c.staff_horizon_days / 7 + 1;
        let problems = c.problems();
        let keys: Vec<&str> = problems.iter().map(CoreConfigError::key).collect();
        assert_eq!(keys, ["staff_horizon_days"]);
        c.staff_horizon_days = 7 * c.rules.relative_employment.window_weeks - 1;
        assert_eq!(c.problems().len(), 1, "a day short");
        c.staff_horizon_days += 1;
        assert!(c.problems().is_empty());
    }

    #[test]
    fn every_problem_names_its_key() {
        let c = CoreConfig {
            visit_lateness: Duration::from_millis(1_500),
            invoice_lateness: Duration::from_secs(401 * 86_400),
            max_ahead: Duration::from_secs(60),
            horizon_days: 3,
            staff_horizon_days: 2,
            activity_days: 0,
            evidence_limit: 0,
            pseudonym_secret: String::new(),
            pseudonym_key_id: String::new(),
            language: Language::En,
            limits: StateLimits { providers: 0, ..StateLimits::default() },
            reference: ReferenceConfig {
                enabled: true,
                lateness: Duration::from_millis(10),
                visit_grace: Duration::from_secs(2 * 86_400),
            },
            rules: RulesConfig::default(),
        };
        let problems = c.problems();
        let keys: Vec<&str> = problems.iter().map(CoreConfigError::key).collect();
        assert_eq!(
            keys,
            [
                "visit_lateness",
                "invoice_lateness",
                "reference.lateness",
                "max_ahead",
                "reference.visit_grace",
                "horizon_days",
                "staff_horizon_days",
                "activity_days",
                "evidence_limit",
                "pseudonym_secret",
                "pseudonym_key_id",
                "limits.providers"
            ]
        );
        for p in &problems {
            assert!(p.to_string().starts_with(p.key()), "{p}");
        }
        assert_eq!(problems[0].to_string(), "visit_lateness = \"1500ms\" must be whole seconds and at most \"400d\"");
        assert_eq!(c.validate(), Err(problems[0].clone()), "validate gives the first problem");
    }

    #[test]
    fn lateness_is_a_duration_string() {
        let c: CoreConfig = toml::from_str("visit_lateness = \"1d 12h\"\ninvoice_lateness = \"2w\"").unwrap();
        assert_eq!(c.visit_lateness, Duration::from_secs(36 * 3600));
        assert_eq!(c.visit_lateness_secs(), 36 * 3600);
        assert_eq!(c.invoice_lateness_secs(), 14 * 86_400);
        assert_eq!(c.validate(), Ok(()));
        let e = toml::from_str::<CoreConfig>("visit_lateness = 259200").unwrap_err().to_string();
        assert!(e.contains("visit_lateness"), "{e}");
        let e = toml::from_str::<CoreConfig>("visit_lateness = \"soon\"").unwrap_err().to_string();
        assert!(e.contains("visit_lateness") && e.contains("duration"), "{e}");
        assert!(toml::from_str::<CoreConfig>("visit_lateness_secs = 259200").is_err(), "the old key is unknown");
    }

    #[test]
    fn the_defaults_keep_their_values_and_print_in_days() {
        let c = CoreConfig::default();
        assert_eq!((c.visit_lateness_secs(), c.invoice_lateness_secs()), (3 * 86_400, 10 * 86_400));
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("visit_lateness = \"3d\"\ninvoice_lateness = \"10d\""), "{text}");
        assert_eq!(toml::from_str::<CoreConfig>(&text).unwrap(), c);
    }

    #[test]
    fn durations_print_in_their_largest_exact_unit_and_read_back() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(7_200), "2h"),
            (Duration::from_secs(100 * 86_400), "100d"),
            (Duration::from_secs(365 * 86_400), "365d"),
            (Duration::from_millis(1_500), "1500ms"),
            (Duration::from_micros(7), "7us"),
            (Duration::from_nanos(1_000_000_001), "1000000001ns"),
        ] {
            assert_eq!(duration::format(d), text);
            assert_eq!(duration::parse(text), Ok(d), "{text}");
        }
        assert_eq!(duration::parse(" 1h 30m "), Ok(Duration::from_secs(5_400)));
        assert_eq!(duration::parse("1.5s"), Ok(Duration::from_millis(1_500)));
        for bad in ["", "5", "-5s", "soon", "forever"] {
            let e = duration::parse(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_language_is_swedish_unless_set_to_english_and_nothing_else() {
        assert_eq!(CoreConfig::default().language, Language::Sv);
        assert_eq!(toml::from_str::<CoreConfig>("language = \"en\"").unwrap().language, Language::En);
        assert_eq!(toml::from_str::<CoreConfig>("language = \"sv\"").unwrap().language, Language::Sv);
        for bad in ["\"de\"", "\"SV\"", "\"swedish\"", "1"] {
            let e = toml::from_str::<CoreConfig>(&format!("language = {bad}")).unwrap_err().to_string();
            assert!(e.contains("language"), "{bad}: {e}");
        }
        let e = toml::from_str::<CoreConfig>("language = \"de\"").unwrap_err().to_string();
        assert!(e.contains("`sv`") && e.contains("`en`"), "the error names the values: {e}");
    }

    #[test]
    fn rule_parameters_are_read_from_toml() {
        let c: CoreConfig = toml::from_str("[rules.manual_registration_share]\nz_threshold = 5.0").unwrap();
        assert_eq!(c.rules.manual_registration_share.z_threshold, 5.0);
        assert_eq!(c.horizon_days, 90, "other keys keep their defaults");
    }
}
