//! The staff stage: every visit of a staff member, whichever provider
//! registered it, in one place, for the staff rules (double booking,
//! impossible day, impossible travel).
//!
//! The provider stage is keyed by provider, so a person registered by two
//! providers is seen by two partitions. The provider stage therefore sends
//! every visit it applies re-keyed by the pseudonymous staff key
//! ([`ToStaff::Visit`], a repartition in Kafka Streams' terms), and the
//! staff stage's partition that owns the key runs the staff rules. Their
//! findings go back keyed by the provider accused ([`FromStaff::Finding`]),
//! so episodes, escalation, resolution and alert ids stay with the provider.
//!
//! # One answer
//!
//! The visits of one staff member reach the stage from several provider
//! partitions in an order that depends on their relative speed, so the
//! stage does not take them in arrival order. Each visit carries an
//! *arrival clock* instead: how far its provider's records had come when
//! it arrived (the later of its own check-in, its provider's newest
//! check-in before it and the newest source heartbeat before it). A
//! provider's records, and the heartbeats among them, come in the same
//! order in every partitioning, so the clock does too. The stage holds the
//! visits and processes them in clock order (then event id) once every
//! provider partition has said that everything it will still send has a
//! later clock ([`ToStaff::Progress`]: the later of its watermark and its
//! newest heartbeat). That is the order the visits arrived in, told by
//! the providers' own clocks: a report sent a day late is taken as
//! arriving a day late, against the visits of every provider, and is
//! decided at its arrival clock. With a heartbeat every hour the stage
//! decides about an hour after the reports arrive.
//!
//! The provider side holds the findings it gets likewise and hands them to
//! its episodes in decision-time order once every staff partition has said
//! it sent everything decided before a time ([`FromStaff::Frontier`]);
//! see [`super::Engine::offer_staff`].
//!
//! **Exactly once.** A provider partition that restarts sends its visits
//! again from its checkpoint: each carries its source partition and the
//! offset of its time report (`seq`), and the stage applies a source's
//! visits once, in offset order. A staff partition that restarts sends its
//! findings again: each carries its source partition and a sequence
//! number, and the provider side takes each once.
//!
//! **Idleness.** A provider partition that sends no progress (no record
//! and no source heartbeat) holds the stage back, as the global peer table
//! is held: staff findings wait, never differ. Without heartbeats the
//! stage waits for the watermarks, the allowed lateness after the reports.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::StagePartition;
use super::snapshot::{Entity, RestoreError};
use crate::alerting::Finding;
use crate::config::CoreConfig;
use crate::model::{EventId, EventTime, ProviderId, StaffKey, Visit};
use crate::rules::timeline::{RuleTimeline, RulesVersion, TimelineError};
use crate::rules::{RuleStage, StaffVisitContext};
use crate::state::{RecentVisit, StaffState};

/// A visit re-keyed by staff member, from a provider-stage partition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StaffVisit {
    /// The provider-stage partition that applied it.
    pub source: u32,
    /// Its number there (the visits the partition has sent): a source's
    /// visits are applied once, in this order.
    pub seq: i64,
    /// Its arrival clock: the later of its check-in, its provider's newest
    /// check-in before it and the newest heartbeat before it.
    pub clock: EventTime,
    /// The visit.
    pub visit: Visit,
}

/// A provider-stage partition's progress: every visit it sends from now on
/// has an arrival clock at or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StaffProgress {
    /// The provider-stage partition.
    pub source: u32,
    /// The later of its time-report watermark and its newest heartbeat.
    pub watermark: EventTime,
}

/// A record for the staff stage (the visits-by-staff topic).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ToStaff {
    /// A visit, to the partition of its staff key.
    Visit(StaffVisit),
    /// A watermark, to every partition.
    Progress(StaffProgress),
}

impl ToStaff {
    /// The staff key a visit is partitioned by; none for progress, which
    /// goes to every partition.
    pub fn staff(&self) -> Option<StaffKey> {
        match self {
            ToStaff::Visit(v) => Some(v.visit.staff),
            ToStaff::Progress(_) => None,
        }
    }
}

/// Version byte in front of a [`ToStaff`] batch.
const BATCH_VERSION: u8 = 1;

/// Encodes the records one provider-stage partition sends one staff
/// partition, in order, as one record of the visits-by-staff topic: a
/// version byte, then the records (postcard). One record per batch, not
/// per visit: the broker's cost is per record.
pub fn encode_batch(records: &[ToStaff]) -> Vec<u8> {
    let out = vec![BATCH_VERSION];
    postcard::to_extend(records, out).expect("staff records serialize")
}

/// The records of a visits-by-staff record, if it is a batch of this
/// version that decodes in full.
pub fn decode_batch(bytes: &[u8]) -> Option<Vec<ToStaff>> {
    let (&version, body) = bytes.split_first()?;
    if version != BATCH_VERSION {
        return None;
    }
    postcard::from_bytes(body).ok()
}

/// A staff rule's finding, for the provider it accuses.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StaffFinding {
    /// The staff partition that made it.
    pub source: u32,
    /// Its sequence number there (the offset of the record that released
    /// it, and its place among that record's findings): taken once.
    pub seq: (i64, u32),
    /// Event time of the decision: the visit's arrival clock.
    pub decided_at: EventTime,
    /// The visit whose processing made it, and the finding's place among
    /// that visit's findings: with `decided_at`, the order findings are
    /// taken in, the same in every partitioning.
    pub trigger: (EventId, u32),
    /// The finding.
    pub finding: Finding,
}

/// A staff partition's frontier: it has sent every finding decided before
/// `through`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StaffFrontier {
    /// The staff partition.
    pub source: u32,
    /// Findings decided before this are all sent.
    pub through: EventTime,
}

/// A record for the provider stage from the staff stage (the
/// staff-findings topic).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FromStaff {
    /// A finding, to the partition of the provider it accuses (boxed: a
    /// finding is far larger than a frontier).
    Finding(Box<StaffFinding>),
    /// A frontier, to every partition.
    Frontier(StaffFrontier),
}

impl FromStaff {
    /// The provider a finding is partitioned by; none for a frontier,
    /// which goes to every partition.
    pub fn provider(&self) -> Option<ProviderId> {
        match self {
            FromStaff::Finding(f) => Some(f.finding.provider),
            FromStaff::Frontier(_) => None,
        }
    }
}

/// Counters of one staff partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StaffStats {
    /// Visits processed by the staff rules.
    pub visits: u64,
    /// Visits received again (a provider partition's replay) and ignored.
    pub duplicates: u64,
    /// Findings sent.
    pub findings: u64,
    /// Visits of new staff members left out at the cap
    /// ([`crate::config::StateLimits::staff`]).
    pub over_limit: u64,
}

/// Where a visit waits: arrival-clock order, the same in every
/// partitioning (a source and number only break ties between visits with
/// the same clock and id, which come from one provider and so one source).
type PendingKey = (EventTime, EventId, ProviderId, u32, i64);

/// A group of waiting visits in a checkpoint: arrival clock (seconds),
/// source partition, sequence number / 256.
pub type PendingGroup = (i64, u32, i64);

/// One partition of the staff stage. See the module documentation.
pub struct StaffStage {
    config: CoreConfig,
    rules: RuleTimeline,
    state: StageState,
    findings: Vec<Finding>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StageState {
    partition: StagePartition,
    /// Per provider-stage partition: its watermark.
    watermarks: Vec<Option<EventTime>>,
    /// Per provider-stage partition: the newest visit applied.
    applied: Vec<Option<i64>>,
    /// Not in the stage's own serialized form: checkpoint entities of
    /// their own, one per minute of arrival clock
    /// (`snapshot::Entity::StaffPending`), so that a checkpoint writes the
    /// minutes that changed, not the hour of visits waiting.
    #[serde(skip)]
    pending: BTreeMap<PendingKey, Visit>,
    /// Visits before this are processed.
    released: Option<EventTime>,
    /// The record (offset) whose findings were numbered last, and the next
    /// number: a record of several entries numbers its findings on.
    numbered: (i64, u32),
    /// Not in the stage's own serialized form: each staff member is a
    /// checkpoint entity of its own (`snapshot::Entity::Staff`).
    #[serde(skip)]
    staff: FxHashMap<StaffKey, StaffState>,
    stats: StaffStats,
}

impl StaffStage {
    /// `partition` of the staff stage, fed by a provider stage of `sources`
    /// partitions, running the staff rules of `config` (assumed validated).
    pub fn new(config: CoreConfig, partition: StagePartition, sources: u32) -> Self {
        let sources = sources.max(1) as usize;
        StaffStage {
            rules: RuleTimeline::new(&config.rules),
            state: StageState {
                partition,
                watermarks: vec![None; sources],
                applied: vec![None; sources],
                pending: BTreeMap::new(),
                released: None,
                numbered: (-1, 0),
                staff: FxHashMap::default(),
                stats: StaffStats::default(),
            },
            findings: Vec::new(),
            config,
        }
    }

    /// Adds a version of the rules' configuration (see
    /// [`Engine::add_rules_version`](super::Engine::add_rules_version)).
    pub fn add_rules_version(&mut self, version: &RulesVersion) -> Result<(), TimelineError> {
        self.rules.add(version)
    }

    /// Counters so far.
    pub fn stats(&self) -> StaffStats {
        self.state.stats
    }

    /// Staff members held, and visits waiting for the watermark.
    pub fn size(&self) -> (usize, usize) {
        (self.state.staff.len(), self.state.pending.len())
    }

    /// Visits whose arrival clock is before this are processed (the
    /// minimum of the provider partitions' progress), if every provider
    /// partition has sent one.
    pub fn released(&self) -> Option<EventTime> {
        self.state.released
    }

    /// Takes one entry of the record at `offset` of the stage's input (its
    /// offset on the visits-by-staff partition: it numbers the findings
    /// its entries release); pushes the findings and frontier it releases
    /// onto `out`.
    pub fn offer(&mut self, message: ToStaff, offset: i64, out: &mut Vec<FromStaff>) {
        match message {
            ToStaff::Visit(StaffVisit { source, seq, clock, visit }) => {
                let Some(applied) = self.state.applied.get_mut(source as usize) else { return };
                if applied.is_some_and(|a| seq <= a) {
                    self.state.stats.duplicates += 1;
                    return;
                }
                *applied = Some(seq);
                let key = (clock, visit.event_id.clone(), visit.provider, source, seq);
                self.state.pending.insert(key, visit);
            }
            ToStaff::Progress(StaffProgress { source, watermark }) => {
                let Some(w) = self.state.watermarks.get_mut(source as usize) else { return };
                *w = Some(w.map_or(watermark, |old| old.max(watermark)));
                self.release(offset, out);
            }
        }
    }

    /// Processes, in arrival-clock order, the visits every provider
    /// partition has passed.
    fn release(&mut self, offset: i64, out: &mut Vec<FromStaff>) {
        let Some(watermark) = self.state.watermarks.iter().copied().min().flatten() else { return };
        if self.state.released.is_some_and(|r| r >= watermark) {
            return;
        }
        let mut n = if self.state.numbered.0 == offset { self.state.numbered.1 } else { 0 };
        while let Some(entry) = self.state.pending.first_entry() {
            if entry.key().0 >= watermark {
                break;
            }
            let decided_at = entry.key().0;
            let visit = entry.remove();
            self.process(&visit, decided_at);
            for (index, finding) in self.findings.drain(..).enumerate() {
                self.state.stats.findings += 1;
                out.push(FromStaff::Finding(Box::new(StaffFinding {
                    source: self.state.partition.index,
                    seq: (offset, n),
                    decided_at,
                    trigger: (visit.event_id.clone(), index as u32),
                    finding,
                })));
                n += 1;
            }
        }
        self.state.numbered = (offset, n);
        let before = self.state.released.map(EventTime::day);
        self.state.released = Some(watermark);
        if before != Some(watermark.day()) {
            let oldest = watermark.day().plus(-(self.config.staff_horizon_days as i32));
            self.state.staff.retain(|_, s| s.last_day > oldest);
        }
        out.push(FromStaff::Frontier(StaffFrontier { source: self.state.partition.index, through: watermark }));
    }

    fn process(&mut self, visit: &Visit, decided_at: EventTime) {
        // A new staff member beyond the cap: left out of the staff rules
        // (the visit was applied where it came in), and counted.
        if !self.state.staff.contains_key(&visit.staff) && self.state.staff.len() >= self.config.limits.staff {
            self.state.stats.over_limit += 1;
            return;
        }
        self.state.stats.visits += 1;
        let (day, _) = visit.check_in.local_day_and_minute();
        let horizon = self.config.staff_horizon_days as usize;
        let staff = self.state.staff.entry(visit.staff).or_insert_with(|| StaffState::new(horizon));
        if let Some(m) = staff.days.bucket_mut(day) {
            *m = m.saturating_add(visit.duration().0);
        }
        if crate::state::is_home_care(visit.service) {
            let place = crate::state::Place::of(visit.client, visit.household);
            staff.record_care(place, visit.provider, day, visit.duration().0);
        }
        staff.last_day = staff.last_day.max(day);
        let ctx = StaffVisitContext { visit, day, staff, now: decided_at };
        let (version, rules) = self.rules.at(decided_at, RuleStage::Staff);
        let before = self.findings.len();
        for rule in rules {
            rule.on_staff_visit(&ctx, &mut self.findings);
        }
        for f in &mut self.findings[before..] {
            f.configuration = version;
        }
        staff.remember(RecentVisit {
            event_id: visit.event_id.clone(),
            provider: visit.provider,
            municipality: visit.municipality,
            method: visit.method,
            client: visit.client,
            household: visit.household,
            check_in: visit.check_in,
            check_out: visit.check_out,
            home: visit.client_home,
        });
    }

    /// Every entity of the stage's state with its bytes (postcard), in
    /// entity order (see [`super::snapshot::Entity`]).
    pub fn entities(&self, out: &mut dyn FnMut(Entity, Vec<u8>)) {
        out(Entity::StaffStage, postcard::to_allocvec(&self.state).expect("the stage's state serializes"));
        // Waiting visits in groups that a new visit does not disturb: by
        // arrival clock, source partition and a run of 256 of its sequence
        // numbers (which only grow), so a checkpoint rewrites the newest
        // group of each source, not the hour of visits waiting.
        let mut groups: BTreeMap<PendingGroup, Vec<(&PendingKey, &Visit)>> = BTreeMap::new();
        for (key, visit) in &self.state.pending {
            groups.entry((key.0.0, key.3, key.4.div_euclid(256))).or_default().push((key, visit));
        }
        for (group, visits) in groups {
            out(Entity::StaffPending(group), postcard::to_allocvec(&visits).expect("waiting visits serialize"));
        }
        let mut staff: Vec<_> = self.state.staff.iter().collect();
        staff.sort_unstable_by_key(|(k, _)| **k);
        for (key, member) in staff {
            out(Entity::Staff(*key), postcard::to_allocvec(member).expect("a staff member serializes"));
        }
    }

    /// A stage with `config` and the state of `entities` (as
    /// [`Self::entities`] gave them, in any order; the provider stage's
    /// entities are ignored).
    pub fn from_entities<'a>(
        config: CoreConfig,
        entities: impl IntoIterator<Item = (Entity, &'a [u8])>,
    ) -> Result<Self, RestoreError> {
        let body = |entity: Entity, e: postcard::Error| RestoreError::Body(format!("{entity:?}: {e}"));
        let mut state: Option<StageState> = None;
        let mut staff = FxHashMap::default();
        let mut pending = BTreeMap::new();
        for (entity, bytes) in entities {
            match entity {
                Entity::StaffPending(_) => {
                    let visits: Vec<(PendingKey, Visit)> = postcard::from_bytes(bytes).map_err(|e| body(entity, e))?;
                    pending.extend(visits);
                }
                Entity::StaffStage => state = Some(postcard::from_bytes(bytes).map_err(|e| body(entity, e))?),
                Entity::Staff(key) => {
                    staff.insert(key, postcard::from_bytes::<StaffState>(bytes).map_err(|e| body(entity, e))?);
                }
                _ => {}
            }
        }
        let mut state = state.ok_or(RestoreError::Body("no staff-stage entity".into()))?;
        state.staff = staff;
        state.pending = pending;
        Ok(StaffStage { rules: RuleTimeline::new(&config.rules), state, findings: Vec::new(), config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testkit::Scenario;

    /// One record of the visits-by-staff topic carries a batch: findings
    /// released by two progress entries of one record are numbered on, so
    /// the provider side (which takes each number once) takes both; and
    /// the batch survives its encoding.
    #[test]
    fn findings_of_one_batch_are_numbered_on_and_the_batch_round_trips() {
        let mut s = Scenario::only("staff-double-booking");
        let mut visit = |staff, client, hour, minute| {
            s.visit().staff(staff).client(client).day(2026, 3, 2).at(hour, minute).minutes(60).build()
        };
        let (a, b, c, d) = (visit(7, 1, 9, 0), visit(7, 2, 9, 30), visit(8, 3, 12, 0), visit(8, 4, 12, 30));
        let to_staff =
            |seq: i64, visit: Visit| ToStaff::Visit(StaffVisit { source: 0, seq, clock: visit.check_in, visit });
        let progress = |visit: &Visit| ToStaff::Progress(StaffProgress { source: 0, watermark: visit.check_out });
        let batch = vec![
            to_staff(1, a),
            to_staff(2, b.clone()),
            progress(&b),
            to_staff(3, c),
            to_staff(4, d.clone()),
            progress(&d),
        ];
        let bytes = encode_batch(&batch);
        assert_eq!(decode_batch(&bytes).as_ref(), Some(&batch));
        assert_eq!(decode_batch(&bytes[..bytes.len() - 1]), None, "a truncated batch");
        assert_eq!(decode_batch(b"{\"json\": true}"), None, "another format");

        let mut stage = StaffStage::new(CoreConfig::default(), StagePartition::ONLY, 1);
        let mut out = Vec::new();
        for entry in batch {
            stage.offer(entry, 5, &mut out);
        }
        let seqs: Vec<(i64, u32)> = out
            .iter()
            .filter_map(|m| match m {
                FromStaff::Finding(f) => Some(f.seq),
                FromStaff::Frontier(_) => None,
            })
            .collect();
        assert_eq!(seqs, [(5, 0), (5, 1)]);
    }
}
