//! Engine snapshots: an engine restored from a snapshot continues exactly
//! as the engine that wrote it (byte-identical alerts to an engine never
//! interrupted), at any point of a scenario in which every rule fires; and
//! a snapshot that cannot be trusted is refused with the reason.

use tillsyn_core::alerting::Alert;
use tillsyn_core::config::CoreConfig;
use tillsyn_core::engine::{Engine, RestoreError, Standalone};
use tillsyn_core::model::DomainEvent;
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::validate::Validator;
use tillsyn_sim::municipality::{SimConfig, simulate};

fn events(sim: &SimConfig, config: &CoreConfig) -> Vec<DomainEvent> {
    let validator = Validator::new(Pseudonymizer::from_secret(&config.pseudonym_secret));
    let mut out = Vec::new();
    simulate(sim, &mut |e| {
        if let Ok(event) = validator.event(e) {
            out.push(event);
        }
        Ok(())
    })
    .unwrap();
    out
}

fn scenario() -> SimConfig {
    SimConfig { seed: 5, providers: 14, clients: 700, months: 3, fraudulent_providers: 6, ..SimConfig::default() }
}

/// Every alert as bytes, in the order emitted.
fn wire_alerts(alerts: &[Alert]) -> Vec<Vec<u8>> {
    alerts.iter().map(|a| prost::Message::encode_to_vec(&a.to_wire())).collect()
}

#[test]
fn a_restored_engine_continues_exactly_where_the_snapshot_was_taken() {
    restored_every(CoreConfig::default(), &scenario(), 50_000, 7_919, 6);
}

/// The same with the reference data: the visits waiting for it, the
/// findings of the reference rules and the invoices they hold go through
/// the snapshots too.
#[test]
fn a_restored_engine_with_reference_data_continues_exactly_where_the_snapshot_was_taken() {
    let mut config = CoreConfig::default();
    config.reference.enabled = true;
    let sim = SimConfig { reference: true, fraudulent_providers: 4, providers: 14, clients: 400, ..scenario() };
    restored_every(config, &sim, 20_000, 1_009, 5);
}

/// Runs `sim`'s events through an engine restored from its own snapshot
/// every `every` events and through one never interrupted: the same
/// alerts, byte for byte, and the same final state.
fn restored_every(config: CoreConfig, sim: &SimConfig, at_least: usize, every: usize, rules_at_least: usize) {
    let events = events(sim, &config);
    assert!(events.len() > at_least, "{}", events.len());

    let mut uninterrupted = Standalone::new(config.clone());
    let mut expected = Vec::new();
    let mut out = Vec::new();
    for e in &events {
        uninterrupted.process(e, &mut out);
        expected.append(&mut out);
    }
    assert!(expected.len() > 10, "the scenario has fraud");

    // Snapshot and restore every `every` events (a prime, so the cuts fall
    // at every kind of point: mid-day, at day closes, between invoices).
    let mut core = Standalone::new(config.clone());
    let mut alerts = Vec::new();
    let mut restores = 0;
    for (i, e) in events.iter().enumerate() {
        if i % every == 0 && i > 0 {
            let bytes = core.engine.snapshot();
            let restored = Engine::restore(config.clone(), &bytes).expect("restores");
            assert!(restored.snapshot() == bytes, "restoring then writing gives the same bytes");
            assert_eq!(restored.state_size(), core.engine.state_size());
            assert_eq!(restored.stats(), core.engine.stats());
            core.engine = restored;
            restores += 1;
        }
        core.process(e, &mut out);
        alerts.append(&mut out);
    }
    assert!(restores >= 6);
    assert_eq!(alerts.len(), expected.len());
    for (i, (a, b)) in wire_alerts(&alerts).iter().zip(wire_alerts(&expected)).enumerate() {
        assert!(*a == b, "alert {i} differs: {:?} vs {:?}", alerts[i], expected[i]);
    }
    assert!(core.engine.snapshot() == uninterrupted.engine.snapshot(), "and the same final state");
    let rules: std::collections::BTreeSet<_> = expected.iter().map(|a| a.rule.id).collect();
    assert!(rules.len() >= rules_at_least, "many rules' episodes went through snapshots: {rules:?}");
    // Every unit is readable back: units are a closed enum (`finding::Unit`)
    // written by name, so the episodes restored above carried them.
}

#[test]
fn an_untrustworthy_snapshot_is_refused_with_the_reason() {
    let config = CoreConfig::default();
    let sim = SimConfig { months: 1, ..scenario() };
    let mut core = Standalone::new(config.clone());
    let mut out = Vec::new();
    for e in &events(&sim, &config) {
        core.process(e, &mut out);
    }
    let bytes = core.engine.snapshot();
    assert!(Engine::restore(config.clone(), &bytes).is_ok());

    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    assert_eq!(Engine::restore(config.clone(), &flipped).err(), Some(RestoreError::Corrupt));
    assert_eq!(Engine::restore(config.clone(), &bytes[..bytes.len() - 1]).err(), Some(RestoreError::Corrupt));
    assert_eq!(Engine::restore(config.clone(), b"hello").err(), Some(RestoreError::NotASnapshot));

    let mut newer = bytes.clone();
    let next = tillsyn_core::engine::snapshot::FORMAT_VERSION + 1;
    newer[14..18].copy_from_slice(&next.to_le_bytes());
    assert_eq!(Engine::restore(config.clone(), &newer).err(), Some(RestoreError::UnsupportedVersion { found: next }));

    for changed in [
        CoreConfig { horizon_days: 60, ..config.clone() },
        CoreConfig { visit_lateness: std::time::Duration::from_secs(86_400), ..config.clone() },
        CoreConfig { pseudonym_key_id: "another key".into(), ..config.clone() },
    ] {
        assert_eq!(Engine::restore(changed, &bytes).err(), Some(RestoreError::ConfigurationChanged));
    }
    // Rule parameters are not state: a restored engine takes new ones.
    let mut tuned = config.clone();
    tuned.rules.disabled = vec!["rounded-visits".into()];
    assert!(Engine::restore(tuned, &bytes).is_ok());
}
