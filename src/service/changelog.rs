//! Incremental checkpoints on a compacted state topic, as pure logic: which
//! records a checkpoint writes, and which state a reader restores from what
//! the topic holds. No Kafka here (`state_store` reads and writes the
//! records, `run::checkpoint` drives both).
//!
//! # The records
//!
//! A partition's state is a set of entities (`tillsyn_core::engine::Entity`:
//! the engine's own fields, each provider, each client of a provider, the
//! staff stage's fields, each staff member). Partition `k` of the state
//! topic holds, under keys of partition `k` ([`StateKey`]):
//!
//! - per entity, two **slots**, each holding the entity's bytes as of some
//!   checkpoint, or the mark that it was removed;
//! - per owner **epoch**, one **manifest**: the newest checkpoint of that
//!   owner that is complete (the input offsets it covers, `alerts_from`).
//!
//! # Writing: only what changed, never over what is committed
//!
//! A checkpoint numbered `c` ([`Changelog::plan`]) writes, in this order:
//! tombstones for keys nothing committed needs any more; each entity whose
//! bytes changed since the last committed checkpoint (a 128-bit hash of its
//! bytes tells) into the slot that does **not** hold its committed value;
//! a removal mark for each entity that is gone, the same way; then the
//! manifest of `c`. One idempotent producer writes them in order, so once
//! the manifest is acknowledged, everything before it is on the topic
//! ([`Changelog::committed`]). A crash anywhere before leaves the committed
//! checkpoint `c - 1` intact: every record of `c` went into the other slot,
//! and a reader takes no slot value newer than the manifest. The slot
//! given up by a committed write keeps its older value until the entity
//! changes again (at most two records per entity on the compacted topic);
//! both slots of a removed entity are tombstoned at the next checkpoint.
//!
//! Bytes written per checkpoint follow the state that changed (a visit
//! changes its provider, its client and a staff member; a day closing
//! changes every provider once a day), not the state that exists.
//!
//! # Owners and zombies
//!
//! An owner writes under its own [`Epoch`]: the sequence number of its
//! takeover (one more than any epoch in the partition), the consumer
//! group's generation at the takeover, and a rebase count. Its first
//! checkpoint (at the takeover, before any record is processed) writes
//! every entity; once that is committed, every key of other epochs is
//! tombstoned. A reader restores from the manifest of the **greatest**
//! epoch, and only from that epoch's slots. So a member that lost the
//! partition without knowing yet (a zombie: stopped, then resumed) can
//! write what it likes under its old epoch: nobody reads it. Two members
//! that take the partition over at once (a rebalance during a restore)
//! differ in generation, and the newer generation wins.
//!
//! A checkpoint that fails (not acknowledged within its budget) leaves it
//! unknown which slots are committed (the manifest may still arrive): the
//! owner then starts over under the next rebase of its epoch, with every
//! entity, as at a takeover, so that nothing it writes can overwrite a
//! value a reader may use.

use std::collections::BTreeMap;

use prost::Message as _;
use std::collections::HashMap as FxHashMap;
use tillsyn_core::engine::Entity;
use tillsyn_core::proto::v1 as wire;

/// Version byte in front of every key this module writes.
const KEY_VERSION: u8 = 1;

/// An owner of a partition's checkpoints. Ordered: sequence, then
/// generation, then rebase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Epoch {
    /// One more than every epoch found in the partition at the takeover.
    pub sequence: u32,
    /// The consumer group's generation at the takeover (0 if unknown).
    pub generation: i32,
    /// Times the owner started its checkpoints over after a failed one.
    pub rebase: u32,
}

/// The key of a record on the state topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum StateKey {
    /// An owner's newest complete checkpoint.
    Manifest {
        /// The partition.
        partition: i32,
        /// The owner.
        epoch: Epoch,
    },
    /// One slot of one entity of an owner's state.
    Entity {
        /// The partition.
        partition: i32,
        /// The owner.
        epoch: Epoch,
        /// 0 or 1.
        slot: u8,
        /// Which entity.
        entity: Entity,
    },
}

impl StateKey {
    /// The key's bytes: a version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![KEY_VERSION];
        postcard::to_io(self, &mut out).expect("a state key serializes");
        out
    }

    /// A key written by [`Self::encode`]; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<StateKey> {
        let (&version, rest) = bytes.split_first()?;
        if version != KEY_VERSION {
            return None;
        }
        match postcard::take_from_bytes::<StateKey>(rest) {
            Ok((key, [])) => Some(key),
            _ => None,
        }
    }
}

/// A record to write: key and value (`None`: a tombstone).
pub type StateRecord = (Vec<u8>, Option<Vec<u8>>);

fn hash(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// What the owner knows of one entity's committed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    hash: u128,
    slot: u8,
}

/// An owner's record of what it has committed, from which it plans the
/// next checkpoint.
#[derive(Debug, Clone)]
pub struct Changelog {
    partition: i32,
    epoch: Epoch,
    /// The last committed checkpoint (0: none yet in this epoch).
    checkpoint: u64,
    entries: FxHashMap<Entity, Entry>,
    /// Keys to tombstone at the next checkpoint.
    obsolete: Vec<Vec<u8>>,
    /// Keys of other epochs (and anything else found in the partition),
    /// tombstoned once this epoch's first checkpoint is committed.
    foreign: Vec<Vec<u8>>,
}

/// A checkpoint planned: its records, in order, and what committing it
/// means for the [`Changelog`].
#[derive(Debug, Clone)]
pub struct Planned {
    /// Its number in the epoch.
    pub checkpoint: u64,
    /// The records to write, in order, the manifest last.
    pub records: Vec<StateRecord>,
    /// Entities in the state.
    pub entities: u64,
    /// Entities (and removal marks) written.
    pub entities_written: u64,
    /// Tombstones written.
    pub tombstones: u64,
    /// Bytes of the records (keys and values).
    pub bytes: u64,
    /// Bytes of every entity of the state (written or not).
    pub state_bytes: u64,
    /// Per entity written: its new entry, or `None` for a removal.
    changes: Vec<(Entity, Option<Entry>)>,
}

impl Changelog {
    /// A new owner's changelog: nothing committed in `epoch` yet, so the
    /// first checkpoint writes every entity. `foreign` are the keys found
    /// in the partition (every other epoch's), tombstoned once that first
    /// checkpoint is committed.
    pub fn new(partition: i32, epoch: Epoch, foreign: Vec<Vec<u8>>) -> Self {
        Changelog { partition, epoch, checkpoint: 0, entries: FxHashMap::new(), obsolete: Vec::new(), foreign }
    }

    /// The owner's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The last committed checkpoint's number (0: none in this epoch).
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// Starts over under the next rebase of the epoch, after a checkpoint
    /// whose outcome is unknown: the next checkpoint writes every entity
    /// under keys nothing was written to, and every key of before is
    /// tombstoned once it is committed.
    pub fn rebase(&mut self, failed: &Planned) {
        let mut foreign = std::mem::take(&mut self.foreign);
        foreign.append(&mut self.obsolete);
        for (entity, entry) in std::mem::take(&mut self.entries) {
            foreign.push(self.entity_key(entry.slot, entity));
            foreign.push(self.entity_key(1 - entry.slot, entity));
        }
        // Whatever the failed checkpoint may have written (its manifest too).
        foreign.extend(failed.records.iter().map(|(key, _)| key.clone()));
        let old = self.epoch;
        foreign.sort_unstable();
        foreign.dedup();
        self.epoch = Epoch { rebase: old.rebase + 1, ..old };
        self.checkpoint = 0;
        self.foreign = foreign;
    }

    fn entity_key(&self, slot: u8, entity: Entity) -> Vec<u8> {
        StateKey::Entity { partition: self.partition, epoch: self.epoch, slot, entity }.encode()
    }

    /// The records of the next checkpoint of a state whose entities
    /// `entities` gives (see the module documentation), with `manifest`
    /// last (its checkpoint, epoch and counts filled in here).
    pub fn plan(
        &self,
        entities: impl FnOnce(&mut dyn FnMut(Entity, Vec<u8>)),
        mut manifest: wire::StateManifest,
    ) -> Planned {
        let checkpoint = self.checkpoint + 1;
        let mut records: Vec<StateRecord> = Vec::new();
        let mut bytes = 0u64;
        let mut push = |records: &mut Vec<StateRecord>, key: Vec<u8>, value: Option<Vec<u8>>| {
            bytes += (key.len() + value.as_ref().map_or(0, Vec::len)) as u64;
            records.push((key, value));
        };
        // Tombstones first: none of them is a key this checkpoint writes
        // after (a slot given up, an entity removed, another epoch), and a
        // crash after them leaves the committed checkpoint whole.
        let mut tombstones = 0u64;
        let foreign: &[Vec<u8>] = if self.checkpoint > 0 { &self.foreign } else { &[] };
        for key in self.obsolete.iter().chain(foreign) {
            push(&mut records, key.clone(), None);
            tombstones += 1;
        }
        let mut changes = Vec::new();
        let mut seen = 0u64;
        let mut state_bytes = 0u64;
        let mut present: FxHashMap<Entity, ()> = FxHashMap::new();
        entities(&mut |entity, data| {
            seen += 1;
            state_bytes += data.len() as u64;
            present.insert(entity, ());
            let h = hash(&data);
            let slot = match self.entries.get(&entity) {
                Some(entry) if entry.hash == h => return,
                Some(entry) => 1 - entry.slot,
                None => 0,
            };
            let value = wire::StateRecord {
                kind: Some(wire::state_record::Kind::Entity(wire::StateEntity { checkpoint, removed: false, data })),
            };
            push(&mut records, self.entity_key(slot, entity), Some(value.encode_to_vec()));
            changes.push((entity, Some(Entry { hash: h, slot })));
        });
        let mut gone: Vec<(&Entity, &Entry)> = self.entries.iter().filter(|(e, _)| !present.contains_key(e)).collect();
        gone.sort_unstable_by_key(|(e, _)| **e);
        for (entity, entry) in gone {
            let value = wire::StateRecord {
                kind: Some(wire::state_record::Kind::Entity(wire::StateEntity {
                    checkpoint,
                    removed: true,
                    data: Vec::new(),
                })),
            };
            push(&mut records, self.entity_key(1 - entry.slot, *entity), Some(value.encode_to_vec()));
            changes.push((*entity, None));
        }
        let entities_written = changes.len() as u64;
        manifest.partition = self.partition;
        manifest.checkpoint = checkpoint;
        manifest.epoch_sequence = self.epoch.sequence;
        manifest.generation = self.epoch.generation;
        manifest.rebase = self.epoch.rebase;
        manifest.state_bytes = state_bytes;
        manifest.entities = seen;
        manifest.entities_written = entities_written;
        let value = wire::StateRecord { kind: Some(wire::state_record::Kind::Manifest(manifest)) };
        push(
            &mut records,
            StateKey::Manifest { partition: self.partition, epoch: self.epoch }.encode(),
            Some(value.encode_to_vec()),
        );
        Planned { checkpoint, records, entities: seen, entities_written, tombstones, bytes, state_bytes, changes }
    }

    /// Records that every record of `planned` is acknowledged (its
    /// manifest too): it is the committed checkpoint now.
    pub fn committed(&mut self, planned: Planned) {
        debug_assert_eq!(planned.checkpoint, self.checkpoint + 1);
        let mut obsolete = Vec::new();
        for (entity, change) in planned.changes {
            let before = self.entries.get(&entity).copied();
            match change {
                // The slot given up keeps its older value: a reader never
                // takes it (the other is newer and committed), and the next
                // change of the entity overwrites it. Tombstoning it would
                // double the records of a checkpoint in which much changes
                // (a partition catching up) to save at most one record per
                // entity on the compacted topic.
                Some(entry) => {
                    self.entries.insert(entity, entry);
                }
                None => {
                    // Both slots: the value given up first, then the
                    // removal mark (the other way round, a crash in
                    // between would bring the value back).
                    let slot = before.map_or(0, |b| b.slot);
                    obsolete.push(self.entity_key(slot, entity));
                    obsolete.push(self.entity_key(1 - slot, entity));
                    self.entries.remove(&entity);
                }
            }
        }
        if self.checkpoint > 0 {
            self.foreign.clear();
        }
        self.obsolete = obsolete;
        self.checkpoint = planned.checkpoint;
    }
}

/// What a partition of the state topic holds, read back.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The committed checkpoint to restore from: the manifest of the
    /// greatest epoch, and that epoch (none: no checkpoint).
    pub manifest: Option<(Epoch, wire::StateManifest)>,
    /// Its entities and their bytes.
    pub entities: Vec<(Entity, Vec<u8>)>,
    /// The sequence number of the next epoch (one more than any found).
    pub next_sequence: u32,
    /// Every key in the partition: tombstoned by the next owner once its
    /// first checkpoint is committed.
    pub keys: Vec<Vec<u8>>,
    /// Records whose key is not one of ours, for this partition (another
    /// format, another writer): ignored.
    pub foreign_records: u64,
    /// Entity values of the committed epoch that do not decode: the
    /// checkpoint cannot be used.
    pub corrupt: u64,
}

/// The state of `partition` from the records of its state-topic
/// partition, oldest first (key, value; `None` a tombstone): the newest
/// value of each key counts, as compaction keeps it.
pub fn recover(partition: i32, log: impl IntoIterator<Item = StateRecord>) -> Recovered {
    let mut latest: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (key, value) in log {
        match value {
            Some(v) => latest.insert(key, v),
            None => latest.remove(&key),
        };
    }
    let mut out = Recovered { keys: latest.keys().cloned().collect(), ..Recovered::default() };
    let mut ours: Vec<(StateKey, &Vec<u8>)> = Vec::new();
    let mut max_sequence = 0u32;
    for (key, value) in &latest {
        match StateKey::decode(key) {
            Some(k @ (StateKey::Manifest { partition: p, epoch } | StateKey::Entity { partition: p, epoch, .. }))
                if p == partition =>
            {
                max_sequence = max_sequence.max(epoch.sequence);
                ours.push((k, value));
            }
            _ => out.foreign_records += 1,
        }
    }
    out.next_sequence = max_sequence.saturating_add(1);
    let manifest = ours
        .iter()
        .filter_map(|(k, v)| match (k, wire::StateRecord::decode(v.as_slice())) {
            (
                StateKey::Manifest { epoch, .. },
                Ok(wire::StateRecord { kind: Some(wire::state_record::Kind::Manifest(m)) }),
            ) => Some((*epoch, m)),
            _ => None,
        })
        .max_by_key(|(epoch, _)| *epoch);
    let Some((epoch, manifest)) = manifest else { return out };
    // Per entity, the newest value of the committed epoch not newer than
    // its manifest.
    let mut chosen: BTreeMap<Entity, (u64, Option<Vec<u8>>)> = BTreeMap::new();
    for (key, value) in &ours {
        let StateKey::Entity { epoch: e, entity, .. } = key else { continue };
        if *e != epoch {
            continue;
        }
        let Ok(wire::StateRecord { kind: Some(wire::state_record::Kind::Entity(record)) }) =
            wire::StateRecord::decode(value.as_slice())
        else {
            out.corrupt += 1;
            continue;
        };
        if record.checkpoint > manifest.checkpoint {
            continue;
        }
        let newer = chosen.get(entity).is_none_or(|(c, _)| record.checkpoint > *c);
        if newer {
            chosen.insert(*entity, (record.checkpoint, (!record.removed).then_some(record.data)));
        }
    }
    out.entities = chosen.into_iter().filter_map(|(entity, (_, data))| Some((entity, data?))).collect();
    out.manifest = Some((epoch, manifest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillsyn_core::model::StaffKey;

    /// Entities of some kind (the kind does not matter here).
    fn provider(n: u64) -> Entity {
        Entity::Staff(StaffKey(1_000_000 + n))
    }

    fn client(n: u64, c: u64) -> Entity {
        Entity::Staff(StaffKey(n * 1_000 + c))
    }

    /// A state: entities and their bytes.
    type State = BTreeMap<Entity, Vec<u8>>;

    fn manifest(next: i64) -> wire::StateManifest {
        wire::StateManifest { time_reports_offset: next, ..Default::default() }
    }

    fn plan(log: &Changelog, state: &State, next: i64) -> Planned {
        log.plan(
            |out| {
                for (e, b) in state {
                    out(*e, b.clone())
                }
            },
            manifest(next),
        )
    }

    fn restored(records: &[StateRecord]) -> (Option<i64>, State) {
        let r = recover(3, records.iter().cloned());
        assert_eq!(r.corrupt, 0);
        (r.manifest.map(|(_, m)| m.time_reports_offset), r.entities.into_iter().collect())
    }

    /// A run of checkpoints over changing states, with a crash after every
    /// record of every checkpoint: the topic then always restores the last
    /// committed state exactly, and after the whole run the last one.
    #[test]
    fn a_crash_anywhere_in_a_checkpoint_restores_the_last_committed_one() {
        let states: Vec<State> = vec![
            State::from([(Entity::Engine, b"e1".to_vec()), (provider(1), b"p1".to_vec())]),
            // Changed, added.
            State::from([
                (Entity::Engine, b"e2".to_vec()),
                (provider(1), b"p1".to_vec()),
                (client(1, 7), b"c7".to_vec()),
            ]),
            // Removed, changed back, unchanged.
            State::from([(Entity::Engine, b"e3".to_vec()), (client(1, 7), b"c7".to_vec())]),
            // Re-created.
            State::from([
                (Entity::Engine, b"e4".to_vec()),
                (provider(1), b"p1-again".to_vec()),
                (client(1, 7), b"c7b".to_vec()),
                (Entity::Staff(StaffKey(9)), b"s9".to_vec()),
            ]),
            State::from([(Entity::Engine, b"e5".to_vec()), (Entity::Staff(StaffKey(9)), b"s9b".to_vec())]),
        ];
        let mut log = Changelog::new(3, Epoch { sequence: 1, generation: 4, rebase: 0 }, Vec::new());
        let mut topic: Vec<StateRecord> = Vec::new();
        let mut committed: (Option<i64>, State) = (None, State::new());
        for (i, state) in states.iter().enumerate() {
            let planned = plan(&log, state, i as i64 + 1);
            for cut in 0..planned.records.len() {
                let mut crashed = topic.clone();
                crashed.extend(planned.records[..cut].iter().cloned());
                assert_eq!(restored(&crashed), committed, "checkpoint {i} cut after {cut} records");
            }
            topic.extend(planned.records.iter().cloned());
            log.committed(planned);
            committed = (Some(i as i64 + 1), state.clone());
            assert_eq!(restored(&topic), committed, "checkpoint {i} committed");
        }
        // One more checkpoint of the same state writes no entity and
        // tombstones the removed entities' slots: compacted (newest per
        // key, tombstones dropped), the topic holds at most two slots per
        // live entity and the manifest, and restores the same.
        let last = states.last().unwrap();
        let idle = plan(&log, last, 9);
        assert_eq!(idle.entities_written, 0);
        topic.extend(idle.records.iter().cloned());
        log.committed(idle);
        let compacted: BTreeMap<Vec<u8>, Option<Vec<u8>>> = topic.iter().cloned().collect();
        let compacted: Vec<StateRecord> = compacted.into_iter().filter(|(_, v)| v.is_some()).collect();
        assert!(compacted.len() <= 2 * last.len() + 1, "{} records", compacted.len());
        let removed = StateKey::Entity { partition: 3, epoch: log.epoch(), slot: 0, entity: provider(1) }.encode();
        assert!(!compacted.iter().any(|(k, _)| *k == removed), "a removed entity is gone from the topic");
        assert_eq!(restored(&compacted), (Some(9), last.clone()));
    }

    /// Bytes follow what changed: an unchanged entity is not written again.
    #[test]
    fn only_changed_entities_are_written() {
        let mut state: State = (0..100).map(|i| (client(1, i), vec![i as u8; 50])).collect();
        state.insert(Entity::Engine, b"e".to_vec());
        let mut log = Changelog::new(0, Epoch::default(), Vec::new());
        let first = plan(&log, &state, 1);
        assert_eq!(first.entities_written, 101);
        log.committed(first);
        state.insert(client(1, 5), b"changed".to_vec());
        let second = plan(&log, &state, 2);
        assert_eq!((second.entities, second.entities_written, second.tombstones), (101, 1, 0));
        log.committed(second);
        let third = plan(&log, &state, 3);
        assert_eq!((third.entities_written, third.tombstones), (0, 0), "nothing changed, nothing written");
    }

    /// A zombie (an owner that lost the partition and writes on under its
    /// old epoch) is never read once a newer owner has written its first
    /// checkpoint; the newer owner's first checkpoint tombstones every key
    /// of the older epochs after it is committed, not before.
    #[test]
    fn a_zombie_writing_under_an_older_epoch_is_ignored() {
        let old_state = State::from([(Entity::Engine, b"old".to_vec()), (provider(1), b"p-old".to_vec())]);
        let mut zombie = Changelog::new(3, Epoch { sequence: 1, generation: 1, rebase: 0 }, Vec::new());
        let mut topic: Vec<StateRecord> = Vec::new();
        let first = plan(&zombie, &old_state, 10);
        topic.extend(first.records.iter().cloned());
        zombie.committed(first);
        // The new owner takes over.
        let found = recover(3, topic.iter().cloned());
        assert_eq!(found.next_sequence, 2);
        let epoch = Epoch { sequence: found.next_sequence, generation: 2, rebase: 0 };
        let mut owner = Changelog::new(3, epoch, found.keys.clone());
        let state: State = found.entities.into_iter().collect();
        let base = plan(&owner, &state, 10);
        assert_eq!(base.tombstones, 0, "nothing of the old epoch is tombstoned before the base is committed");
        topic.extend(base.records.iter().cloned());
        owner.committed(base);
        // The zombie writes a newer checkpoint of its own.
        let zombie_state = State::from([(Entity::Engine, b"zombie".to_vec()), (provider(1), b"z".to_vec())]);
        topic.extend(plan(&zombie, &zombie_state, 99).records);
        assert_eq!(restored(&topic), (Some(10), old_state.clone()), "the owner's base, not the zombie's");
        // The owner's next checkpoint tombstones the old epoch's keys.
        let mut next = state.clone();
        next.insert(provider(1), b"p-new".to_vec());
        let planned = plan(&owner, &next, 11);
        assert_eq!(planned.tombstones as usize, found.keys.len());
        topic.extend(planned.records.iter().cloned());
        owner.committed(planned);
        assert_eq!(restored(&topic), (Some(11), next));
        // Two owners at once: the newer generation wins, whatever the order.
        let rival = Changelog::new(3, Epoch { sequence: 2, generation: 1, rebase: 0 }, Vec::new());
        topic.extend(plan(&rival, &old_state, 50).records);
        assert_eq!(restored(&topic).0, Some(11));
    }

    /// After a checkpoint whose outcome is unknown, the owner starts over
    /// under a new rebase: whether the lost checkpoint's manifest arrived
    /// or not, what is read is always a committed state.
    #[test]
    fn a_rebase_after_an_unknown_outcome_never_overwrites_what_a_reader_uses() {
        let a = State::from([(Entity::Engine, b"a".to_vec()), (provider(1), b"1".to_vec())]);
        let b = State::from([(Entity::Engine, b"b".to_vec()), (provider(1), b"2".to_vec())]);
        let c = State::from([(Entity::Engine, b"c".to_vec()), (provider(2), b"3".to_vec())]);
        let mut log = Changelog::new(3, Epoch::default(), Vec::new());
        let mut topic: Vec<StateRecord> = Vec::new();
        let first = plan(&log, &a, 1);
        topic.extend(first.records.iter().cloned());
        log.committed(first);
        // Checkpoint of b: "failed", but all of it arrived.
        let failed = plan(&log, &b, 2);
        topic.extend(failed.records.iter().cloned());
        assert_eq!(restored(&topic), (Some(2), b.clone()));
        log.rebase(&failed);
        let again = plan(&log, &c, 3);
        assert_eq!(again.entities_written, 2, "every entity again");
        assert_eq!(again.tombstones, 0);
        for cut in 0..again.records.len() {
            let mut crashed = topic.clone();
            crashed.extend(again.records[..cut].iter().cloned());
            assert_eq!(restored(&crashed), (Some(2), b.clone()), "cut after {cut}");
        }
        topic.extend(again.records.iter().cloned());
        log.committed(again);
        assert_eq!(restored(&topic), (Some(3), c.clone()));
        let cleanup = plan(&log, &c, 4);
        assert!(cleanup.tombstones >= 5, "the old rebase's keys go: {}", cleanup.tombstones);
        topic.extend(cleanup.records.iter().cloned());
        log.committed(cleanup);
        assert_eq!(restored(&topic), (Some(4), c));
    }

    /// Records that are not ours are counted and ignored; a damaged entity
    /// of the committed epoch is reported.
    #[test]
    fn foreign_and_corrupt_records_are_told_apart() {
        let state = State::from([(Entity::Engine, b"e".to_vec())]);
        let log = Changelog::new(3, Epoch::default(), Vec::new());
        let mut topic = plan(&log, &state, 1).records;
        topic.insert(0, (b"3".to_vec(), Some(b"a format-8 chunk".to_vec())));
        topic.push((StateKey::Manifest { partition: 4, epoch: Epoch::default() }.encode(), Some(vec![])));
        let r = recover(3, topic.iter().cloned());
        assert_eq!((r.foreign_records, r.corrupt, r.entities.len()), (2, 0, 1));
        assert_eq!(r.keys.len(), 4, "every key is the next owner's to tombstone");
        let key = StateKey::Entity { partition: 3, epoch: Epoch::default(), slot: 0, entity: Entity::Engine };
        topic.push((key.encode(), Some(b"\xff\xff\xff".to_vec())));
        assert_eq!(recover(3, topic).corrupt, 1);
    }

    #[test]
    fn keys_round_trip_and_reject_other_bytes() {
        let key = StateKey::Entity {
            partition: 7,
            epoch: Epoch { sequence: 3, generation: -1, rebase: 2 },
            slot: 1,
            entity: client(5, 6),
        };
        assert_eq!(StateKey::decode(&key.encode()), Some(key));
        assert_eq!(StateKey::decode(b"7"), None);
        assert_eq!(StateKey::decode(&[]), None);
        let mut trailing = key.encode();
        trailing.push(0);
        assert_eq!(StateKey::decode(&trailing), None);
    }
}
