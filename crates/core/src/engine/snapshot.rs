//! An engine's state as bytes, and back: what the service writes to its
//! state topic so that a partition's windows are back, exactly, after a
//! crash, a restart or a rebalance.
//!
//! The state is a set of [`Entity`]s (the engine's own fields, each
//! provider, each client of a provider; the staff stage's own fields and
//! each staff member), each serialized on its own (postcard, the serde
//! fields): the service's checkpoints write the entities that changed
//! (`service::changelog`). A whole snapshot ([`Engine::snapshot`], for
//! tests and tools) is the magic `TILLSYN-STATE\0`, the format version (u32,
//! little endian), a 16-byte fingerprint of the configuration that shapes
//! the state (see [`state_fingerprint`]), the body (postcard: every entity
//! with its bytes, in entity order), and the first 16 bytes of SHA-256 over
//! everything before it.
//!
//! Versioning: [`FORMAT_VERSION`] is bumped whenever the body's layout
//! changes (a field added, removed or retyped anywhere in the engine's own
//! state). The rules' own state (`rules::RuleStates`, one field per
//! registered rule) is part of the body, so its layout follows the rule
//! registry: the fingerprint covers the registered rules' ids and versions
//! in registry order, and a build with other rules (or another version of
//! one) refuses the snapshot instead of misreading it, without a format
//! bump. A version this build does not read, or a fingerprint that differs
//! (the windows' sizes, the lateness, the pseudonym key id or the
//! registered rules changed), makes [`Engine::restore`] fail with a
//! [`RestoreError`] that says so; the shell then rebuilds the state by
//! replaying the inputs. Rule parameters and which rules are enabled are
//! not in the fingerprint: the state every registered rule keeps is there
//! whether it is enabled or not, so a restored engine runs with the new
//! parameters from then on. Nor is the language of the alerts'
//! explanations (`core.language`), which is no state: findings and open
//! episodes keep their explanations in every language.

use sha2::{Digest, Sha256};

use rustc_hash::FxHashMap;

use super::{Engine, State};
use crate::config::CoreConfig;
use crate::model::{ClientKey, EventId, EventTime, Invoice, ProviderKey, StaffKey};
use crate::rules::{self, RuleInfo};
use crate::rules::{Provider, RuleStates};
use crate::state::ClientActivity;

/// The magic at the start of every snapshot.
pub const MAGIC: &[u8; 14] = b"TILLSYN-STATE\0";

/// The body layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 20;

const HEADER_LEN: usize = MAGIC.len() + 4 + 16;
const CHECKSUM_LEN: usize = 16;

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Not a snapshot (wrong magic or too short).
    #[error("not an engine snapshot")]
    NotASnapshot,
    /// Written by a build with another body layout.
    #[error("snapshot format version {found}, this build reads {FORMAT_VERSION}")]
    UnsupportedVersion {
        /// The version in the snapshot.
        found: u32,
    },
    /// The state-shaping configuration differs from the one it was written
    /// under (window sizes, lateness, pseudonym key id, registered rules).
    #[error(
        "the snapshot was written under another configuration of windows, lateness or pseudonym key id, or by a \
         build with other rules"
    )]
    ConfigurationChanged,
    /// The checksum does not match (truncated or damaged bytes).
    #[error("snapshot checksum mismatch")]
    Corrupt,
    /// The body does not decode.
    #[error("snapshot body does not decode: {0}")]
    Body(String),
}

/// 16 bytes identifying the configuration a state depends on: the format
/// version, both lateness bounds, the three window sizes, the evidence
/// limit, the pseudonym key id (a name, nothing derived from the secret),
/// and the registered
/// rules' ids and versions in registry order (the layout of the rules' own
/// state).
pub fn state_fingerprint(config: &CoreConfig) -> [u8; 16] {
    fingerprint(config, &rules::ALL)
}

fn fingerprint(config: &CoreConfig, registered: &[&RuleInfo]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"tillsyn/state-fingerprint/v2");
    h.update(FORMAT_VERSION.to_le_bytes());
    h.update(config.visit_lateness_secs().to_le_bytes());
    h.update(config.invoice_lateness_secs().to_le_bytes());
    h.update(config.horizon_days.to_le_bytes());
    h.update(config.staff_horizon_days.to_le_bytes());
    h.update(config.activity_days.to_le_bytes());
    h.update((config.evidence_limit as u64).to_le_bytes());
    // The secret's name, never anything derived from the secret itself:
    // whoever reads the state topic must not be able to test guesses.
    h.update((config.pseudonym_key_id.len() as u64).to_le_bytes());
    h.update(config.pseudonym_key_id.as_bytes());
    h.update((registered.len() as u64).to_le_bytes());
    for info in registered {
        h.update((info.id.len() as u64).to_le_bytes());
        h.update(info.id.as_bytes());
        h.update(info.version.to_le_bytes());
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&Sha256::digest(bytes)[..CHECKSUM_LEN]);
    out
}

/// One piece of a partition's state, as checkpoints write it: the
/// checkpoints of the service write only the entities whose bytes changed
/// since the last one (`service::changelog`), so the pieces follow what a
/// record changes: a visit changes its provider and its client, not the
/// provider's other clients, and not other providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Entity {
    /// The engine's own state: watermarks, clocks, open episodes, the
    /// staff stage's findings held, counters.
    Engine,
    /// One provider in one municipality: its days, recent visits and
    /// clocks (what a visit changes).
    Provider(ProviderKey),
    /// One provider's invoices seen and waiting, and the rules' own state
    /// for it (what invoices and day closes change).
    ProviderBilling(ProviderKey),
    /// One client of a provider: its monthly activity.
    Client(ProviderKey, ClientKey),
    /// The staff stage's own state: its watermarks and counters.
    StaffStage,
    /// A group of the visits waiting in the staff stage: arrival clock,
    /// source partition and a run of its sequence numbers.
    StaffPending(super::staff::PendingGroup),
    /// One staff member's recent visits (staff stage).
    Staff(StaffKey),
    /// One client's care by week and provider (staff stage).
    ClientCare(ClientKey),
}

/// The form of [`Entity::ProviderBilling`]: the rules' state, the invoices
/// seen (sorted) and the invoices waiting.
type Billing = (RuleStates, Vec<(EventId, EventTime)>, Vec<Invoice>);

fn body<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("the engine's state serializes")
}

fn part<'a, T: serde::Deserialize<'a>>(entity: Entity, bytes: &'a [u8]) -> Result<T, RestoreError> {
    postcard::from_bytes(bytes).map_err(|e| RestoreError::Body(format!("{entity:?}: {e}")))
}

impl Engine {
    /// Every entity of the engine's state with its bytes (postcard), in
    /// entity order: the same state gives the same entities and bytes.
    pub fn entities(&self, out: &mut dyn FnMut(Entity, Vec<u8>)) {
        out(Entity::Engine, body(&self.state));
        let mut providers: Vec<_> = self.state.providers.iter().collect();
        providers.sort_unstable_by_key(|(k, _)| **k);
        for (key, provider) in providers {
            out(Entity::Provider(*key), body(provider));
            let mut seen: Vec<_> = provider.invoices_seen.iter().collect();
            seen.sort_unstable();
            out(Entity::ProviderBilling(*key), body(&(&provider.rules, seen, &provider.pending_invoices)));
            let mut clients: Vec<_> = provider.clients.iter().collect();
            clients.sort_unstable_by_key(|(k, _)| **k);
            for (client, activity) in clients {
                out(Entity::Client(*key, *client), body(activity));
            }
        }
    }

    /// An engine with `config` and the state of `entities` (as
    /// [`Self::entities`] gave them, in any order; staff-stage entities are
    /// ignored). The caller checks the format version and
    /// [`state_fingerprint`] the entities were written under.
    pub fn from_entities<'a>(
        config: CoreConfig,
        entities: impl IntoIterator<Item = (Entity, &'a [u8])>,
    ) -> Result<Engine, RestoreError> {
        let mut state: Option<State> = None;
        let mut providers = FxHashMap::default();
        let mut clients = Vec::new();
        let mut billing = Vec::new();
        for (entity, bytes) in entities {
            match entity {
                Entity::Engine => state = Some(part(entity, bytes)?),
                Entity::Provider(key) => {
                    providers.insert(key, part::<Provider>(entity, bytes)?);
                }
                Entity::ProviderBilling(key) => billing.push((key, part::<Billing>(entity, bytes)?)),
                Entity::Client(key, client) => clients.push((key, client, part::<ClientActivity>(entity, bytes)?)),
                Entity::StaffStage | Entity::StaffPending(_) | Entity::Staff(_) | Entity::ClientCare(_) => {}
            }
        }
        let mut state = state.ok_or(RestoreError::Body("no engine entity".into()))?;
        for (key, (rules, seen, pending)) in billing {
            let provider = providers
                .get_mut(&key)
                .ok_or_else(|| RestoreError::Body(format!("the billing of provider {key:?}, which is not there")))?;
            provider.rules = rules;
            provider.invoices_seen = seen.into_iter().collect();
            provider.pending_invoices = pending;
        }
        for (key, client, activity) in clients {
            let provider = providers
                .get_mut(&key)
                .ok_or_else(|| RestoreError::Body(format!("a client of provider {key:?}, which is not there")))?;
            provider.clients.insert(client, activity);
        }
        state.clients_held = providers.values().map(|p| p.clients.len()).sum();
        state.reference_visits_waiting = providers.values().map(|p| p.reference_visits.len()).sum();
        state.providers = providers;
        // The language of the alerts is configuration, not state.
        state.episodes.set_language(config.language);
        let mut engine = Engine::new(config);
        engine.state = state;
        Ok(engine)
    }

    /// The engine's state as bytes (see the module documentation): every
    /// entity, in order. The same state gives the same bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut entities: Vec<(Entity, Vec<u8>)> = Vec::new();
        self.entities(&mut |entity, bytes| entities.push((entity, bytes)));
        let mut out = Vec::with_capacity(HEADER_LEN + 4096);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&state_fingerprint(&self.config));
        let mut out = postcard::to_extend(&entities, out).expect("the engine's state serializes");
        let sum = checksum(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// An engine with `config` and the state of `snapshot`: it continues
    /// exactly where the engine that wrote the snapshot was.
    pub fn restore(config: CoreConfig, snapshot: &[u8]) -> Result<Engine, RestoreError> {
        if snapshot.len() < HEADER_LEN + CHECKSUM_LEN || !snapshot.starts_with(MAGIC) {
            return Err(RestoreError::NotASnapshot);
        }
        let version = u32::from_le_bytes(snapshot[MAGIC.len()..MAGIC.len() + 4].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(RestoreError::UnsupportedVersion { found: version });
        }
        let (content, sum) = snapshot.split_at(snapshot.len() - CHECKSUM_LEN);
        if checksum(content) != sum {
            return Err(RestoreError::Corrupt);
        }
        if content[MAGIC.len() + 4..HEADER_LEN] != state_fingerprint(&config) {
            return Err(RestoreError::ConfigurationChanged);
        }
        let entities: Vec<(Entity, Vec<u8>)> =
            postcard::from_bytes(&content[HEADER_LEN..]).map_err(|e| RestoreError::Body(e.to_string()))?;
        Engine::from_entities(config, entities.iter().map(|(e, b)| (*e, b.as_slice())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint is no oracle for the secret: nothing in it depends on
    /// the secret; the key id (a name) decides what restores.
    #[test]
    fn the_fingerprint_names_the_key_and_depends_on_no_secret() {
        let config = CoreConfig { pseudonym_secret: "first-long-municipality-secret".into(), ..CoreConfig::default() };
        let other_secret = CoreConfig { pseudonym_secret: "second-long-municipality-secret".into(), ..config.clone() };
        let other_key = CoreConfig { pseudonym_key_id: "2026-12".into(), ..config.clone() };
        assert_eq!(state_fingerprint(&config), state_fingerprint(&other_secret));
        assert_ne!(state_fingerprint(&config), state_fingerprint(&other_key));
        let bytes = Engine::new(config.clone()).snapshot();
        assert_eq!(bytes, Engine::new(other_secret).snapshot(), "no byte of a checkpoint depends on the secret");
        assert!(Engine::restore(other_key, &bytes).is_err(), "another key id: refused");
        assert!(Engine::restore(config, &bytes).is_ok());
    }

    #[test]
    fn another_language_restores_and_applies_to_the_alerts_from_then_on() {
        use crate::text::Language;
        let swedish = CoreConfig { language: Language::Sv, ..CoreConfig::default() };
        let english = CoreConfig { language: Language::En, ..CoreConfig::default() };
        assert_eq!(state_fingerprint(&swedish), state_fingerprint(&english));
        let bytes = Engine::new(swedish).snapshot();
        let restored = Engine::restore(english.clone(), &bytes).expect("the language is no state");
        assert_eq!(restored.state.episodes, Engine::new(english).state.episodes);
        assert_eq!(restored.snapshot(), bytes);
    }

    #[test]
    fn the_fingerprint_covers_the_registered_rules_ids_and_versions() {
        let config = CoreConfig::default();
        let registered: Vec<&RuleInfo> = rules::ALL.to_vec();
        assert_eq!(fingerprint(&config, &registered), state_fingerprint(&config));
        let fewer = &registered[..registered.len() - 1];
        assert_ne!(fingerprint(&config, fewer), state_fingerprint(&config));
        let newer = RuleInfo { version: registered[0].version + 1, ..*registered[0] };
        let mut bumped = registered.clone();
        bumped[0] = &newer;
        assert_ne!(fingerprint(&config, &bumped), state_fingerprint(&config));
        let mut reordered = registered.clone();
        reordered.swap(0, 1);
        assert_ne!(fingerprint(&config, &reordered), state_fingerprint(&config));
    }
}
