//! Rule parameters: defaults validate, bad values are rejected by
//! `CoreConfig::validate` with the field's name, TOML sections keep their
//! names, and the README's rule table is the one the registry generates.

use tillsyn_core::config::CoreConfig;
use tillsyn_core::rules::{self, RulesConfig};

#[test]
fn the_defaults_of_every_rule_validate() {
    assert_eq!(RulesConfig::default().validate(), Ok(()));
    assert_eq!(CoreConfig::default().validate(), Ok(()));
    assert_eq!(rules::docs().len(), rules::ALL.len());
    let (provider, staff) = (rules::RuleStage::Provider, rules::RuleStage::Staff);
    let built = RulesConfig::default().build_for(provider).len() + RulesConfig::default().build_for(staff).len();
    assert_eq!(built, rules::ALL.len());
    assert_eq!(
        RulesConfig::default().build_for(staff).len(),
        6,
        "double booking, impossible day, impossible travel, relative employment, hours collapse after a change, \
         client hours above granted"
    );
    let client_rules: Vec<_> =
        RulesConfig::default().build_for(staff).iter().filter(|r| r.sees_clients()).map(|r| r.info().id).collect();
    assert_eq!(client_rules, ["hours-collapse-after-provider-change", "client-hours-above-granted"]);
}

#[test]
fn a_zero_max_speed_is_rejected_with_the_fields_name() {
    let mut c = CoreConfig::default();
    c.rules.impossible_travel.max_speed_kmh = 0.0;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("rules.impossible_travel.max_speed_kmh must be > 0"), "{err}");
}

/// A change to the rule configuration.
type Change = Box<dyn Fn(&mut RulesConfig)>;

#[test]
fn out_of_range_parameters_are_rejected_with_their_names() {
    let cases: Vec<(&str, Change)> = vec![
        ("rules.manual_registration_share.min_share", Box::new(|r| r.manual_registration_share.min_share = 1.5)),
        ("rules.rounded_visits.critical_z", Box::new(|r| r.rounded_visits.critical_z = 5.0)),
        (
            "rules.invoiced_above_performed.critical_excess_hours",
            Box::new(|r| r.invoiced_above_performed.critical_excess_hours = 40.0),
        ),
        (
            "rules.staff_double_booking.min_overlap_minutes",
            Box::new(|r| r.staff_double_booking.min_overlap_minutes = 0),
        ),
        ("rules.staff_impossible_day.hard_day_hours", Box::new(|r| r.staff_impossible_day.hard_day_hours = 25.0)),
        (
            "rules.check_in_away_from_home.high_distance_m",
            Box::new(|r| r.check_in_away_from_home.high_distance_m = 100.0),
        ),
        ("rules.phantom_clients.high_clients", Box::new(|r| r.phantom_clients.high_clients = 1)),
        ("rules.duplicate_billing.min_duplicates", Box::new(|r| r.duplicate_billing.min_duplicates = 0)),
        ("rules.volume_explosion.threshold", Box::new(|r| r.volume_explosion.threshold = -1.0)),
        (
            "rules.hours_per_client_above_peers.mad_floor_hours",
            Box::new(|r| r.hours_per_client_above_peers.mad_floor_hours = f64::NAN),
        ),
        (
            "rules.night_visits_private_provider.min_visits",
            Box::new(|r| r.night_visits_private_provider.min_visits = 0),
        ),
        (
            "rules.night_visits_private_provider.free_choice_end",
            Box::new(|r| r.night_visits_private_provider.free_choice_end = "25:00".into()),
        ),
        ("rules.impossible_travel.high_speed_factor", Box::new(|r| r.impossible_travel.high_speed_factor = 0.5)),
    ];
    for (field, change) in cases {
        let mut c = CoreConfig::default();
        change(&mut c.rules);
        let err = c.validate().expect_err(field).to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}

#[test]
fn toml_sections_keep_their_names_and_new_cutoffs_have_defaults() {
    let c: CoreConfig = toml::from_str(
        "[rules.hours_per_client_above_peers]\nmin_ratio = 2.0\n\
         [rules.night_visits_private_provider]\nmin_visits = 4\n\
         [rules.invoiced_above_performed]\nline_tolerance_ratio = 0.02\nline_tolerance_minutes = 4\n",
    )
    .unwrap();
    assert_eq!(c.rules.hours_per_client_above_peers.min_ratio, 2.0);
    assert_eq!(c.rules.hours_per_client_above_peers.high_ratio, 2.8);
    assert_eq!(c.rules.night_visits_private_provider.min_visits, 4);
    assert_eq!(c.rules.invoiced_above_performed.critical_excess_hours, 200.0);
    assert!(toml::from_str::<CoreConfig>("[rules.impossible_travel]\nmax_sped_kmh = 3.0").is_err());
    assert!(toml::from_str::<CoreConfig>("[rules.no_such_rule]\nx = 1").is_err());
}

#[test]
fn the_readme_carries_the_generated_rule_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md at the workspace root");
    let expected = rules::catalogue_markdown();
    let (begin, end) = ("<!-- rules:begin -->\n", "<!-- rules:end -->");
    let actual = readme
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table)
        .unwrap_or("(no `<!-- rules:begin -->` … `<!-- rules:end -->` markers in README.md)");
    assert!(
        actual == expected,
        "README.md's rule table is out of date. Paste this between the markers:\n\n{begin}{expected}{end}\n"
    );
}
