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
//!
//! # Clients
//!
//! The stage is also where a client's whole picture is: the provider
//! stage sends every visit a second time, re-keyed by the pseudonymous
//! client key ([`ToStaff::ClientVisit`], a compact [`CareVisit`]), with
//! its own sequence number and the same arrival clock, so the stage's
//! partition that owns the client sees the visits of every provider that
//! serves the client, in the same order in every partitioning. It keeps
//! the client's care by week and provider
//! ([`crate::client_care::ClientCare`]) and runs the client rules
//! ([`crate::rules::Rule::on_client_visit`]); their findings go back to
//! the provider they accuse like the staff rules'. A client finding's
//! trigger index starts at [`CLIENT_TRIGGER`], so it never ties with a
//! staff finding of the same visit decided at the same clock (the two
//! copies of a visit may be processed by different partitions).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::StagePartition;
use super::snapshot::{Entity, RestoreError};
use crate::alerting::Finding;
use crate::client_care::{CareVisit, ClientCare, GrantQuestion};
use crate::config::CoreConfig;
use crate::model::{ClientKey, EventId, EventTime, ProviderId, StaffKey, Visit};
use crate::partition::{client_partition, staff_partition};
use crate::rules::timeline::{RuleTimeline, RulesVersion, TimelineError};
use crate::rules::{ClientVisitContext, RuleStage, StaffVisitContext};
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

/// A visit re-keyed by client, from a provider-stage partition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientVisit {
    /// The provider-stage partition that applied it.
    pub source: u32,
    /// Its number there, counted with the staff copies (see
    /// [`StaffVisit::seq`]).
    pub seq: i64,
    /// Its arrival clock (the staff copy's).
    pub clock: EventTime,
    /// The visit.
    pub visit: CareVisit,
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
    /// A visit, to the partition of its client key.
    ClientVisit(ClientVisit),
}

impl ToStaff {
    /// The stage partition of `partitions` a visit goes to (its staff
    /// key's, or its client key's); none for progress, which goes to every
    /// partition.
    pub fn partition(&self, partitions: i32) -> Option<usize> {
        match self {
            ToStaff::Visit(v) => Some(staff_partition(v.visit.staff, partitions)),
            ToStaff::ClientVisit(v) => Some(client_partition(v.visit.client, partitions)),
            ToStaff::Progress(_) => None,
        }
    }
}

/// The first trigger index of a client rule's findings (see the module
/// documentation).
pub const CLIENT_TRIGGER: u32 = 1 << 16;

/// The first trigger index of a client rule's questions
/// ([`FromStaff::Question`]), after every finding of the same visit.
pub const QUESTION_TRIGGER: u32 = 1 << 17;

/// Version byte in front of a [`ToStaff`] batch.
const BATCH_VERSION: u8 = 2;

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

/// A client rule's question about a client's month, for the provider
/// stage of the provider it asks about (numbered with the findings).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StaffQuestion {
    /// The staff-stage partition that sent it.
    pub source: u32,
    /// Its sequence number there (as a finding's).
    pub seq: (i64, u32),
    /// The arrival clock of the visit that raised it.
    pub decided_at: EventTime,
    /// That visit, and the question's index among its questions (from
    /// [`QUESTION_TRIGGER`]).
    pub trigger: (EventId, u32),
    /// The question.
    pub question: GrantQuestion,
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
    /// A client rule's question, to the partition of the provider it asks
    /// about.
    Question(Box<StaffQuestion>),
}

impl FromStaff {
    /// The provider a finding or a question is partitioned by; none for a
    /// frontier, which goes to every partition.
    pub fn provider(&self) -> Option<ProviderId> {
        match self {
            FromStaff::Finding(f) => Some(f.finding.provider),
            FromStaff::Question(q) => Some(q.question.provider.provider),
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
    /// Client copies of visits processed by the client rules.
    pub client_visits: u64,
    /// Client copies of visits of new clients left out at the cap
    /// ([`crate::config::StateLimits::clients`]).
    pub clients_over_limit: u64,
    /// Client rules' questions sent ([`FromStaff::Question`]).
    pub questions: u64,
}

/// A visit waiting in the stage: its staff copy or its client copy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Waiting {
    /// For the staff rules.
    Staff(Visit),
    /// For the client rules.
    Client(CareVisit),
}

impl Waiting {
    fn event_id(&self) -> &EventId {
        match self {
            Waiting::Staff(v) => &v.event_id,
            Waiting::Client(v) => &v.event_id,
        }
    }
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
    questions: Vec<GrantQuestion>,
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
    pending: BTreeMap<PendingKey, Waiting>,
    /// Visits before this are processed.
    released: Option<EventTime>,
    /// The record (offset) whose findings were numbered last, and the next
    /// number: a record of several entries numbers its findings on.
    numbered: (i64, u32),
    /// Not in the stage's own serialized form: each staff member is a
    /// checkpoint entity of its own (`snapshot::Entity::Staff`).
    #[serde(skip)]
    staff: FxHashMap<StaffKey, StaffState>,
    /// Not in the stage's own serialized form: each client is a checkpoint
    /// entity of its own (`snapshot::Entity::ClientCare`).
    #[serde(skip)]
    clients: FxHashMap<ClientKey, ClientCare>,
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
                clients: FxHashMap::default(),
                stats: StaffStats::default(),
            },
            findings: Vec::new(),
            questions: Vec::new(),
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

    /// Clients held.
    pub fn clients(&self) -> usize {
        self.state.clients.len()
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
                let key = (clock, visit.event_id.clone(), visit.provider, source, seq);
                self.wait(key, Waiting::Staff(visit));
            }
            ToStaff::ClientVisit(ClientVisit { source, seq, clock, visit }) => {
                let key = (clock, visit.event_id.clone(), visit.provider, source, seq);
                self.wait(key, Waiting::Client(visit));
            }
            ToStaff::Progress(StaffProgress { source, watermark }) => {
                let Some(w) = self.state.watermarks.get_mut(source as usize) else { return };
                *w = Some(w.map_or(watermark, |old| old.max(watermark)));
                self.release(offset, out);
            }
        }
    }

    /// Holds a visit (either copy) until the watermark passes its clock,
    /// unless its source sent it before (a provider partition's replay).
    fn wait(&mut self, key: PendingKey, waiting: Waiting) {
        let (source, seq) = (key.3, key.4);
        let Some(applied) = self.state.applied.get_mut(source as usize) else { return };
        if applied.is_some_and(|a| seq <= a) {
            self.state.stats.duplicates += 1;
            return;
        }
        *applied = Some(seq);
        self.state.pending.insert(key, waiting);
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
            let waiting = entry.remove();
            let first = match &waiting {
                Waiting::Staff(visit) => {
                    self.process(visit, decided_at);
                    0
                }
                Waiting::Client(visit) => {
                    self.process_client(visit, decided_at);
                    CLIENT_TRIGGER
                }
            };
            for (index, finding) in self.findings.drain(..).enumerate() {
                self.state.stats.findings += 1;
                out.push(FromStaff::Finding(Box::new(StaffFinding {
                    source: self.state.partition.index,
                    seq: (offset, n),
                    decided_at,
                    trigger: (waiting.event_id().clone(), first + index as u32),
                    finding,
                })));
                n += 1;
            }
            for (index, question) in self.questions.drain(..).enumerate() {
                self.state.stats.questions += 1;
                out.push(FromStaff::Question(Box::new(StaffQuestion {
                    source: self.state.partition.index,
                    seq: (offset, n),
                    decided_at,
                    trigger: (waiting.event_id().clone(), QUESTION_TRIGGER + index as u32),
                    question,
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
            let oldest_client = watermark.day().plus(-7 * crate::client_care::CLIENT_WEEKS as i32);
            self.state.clients.retain(|_, c| c.last_day > oldest_client);
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

    fn process_client(&mut self, visit: &CareVisit, decided_at: EventTime) {
        if !self.state.clients.contains_key(&visit.client) && self.state.clients.len() >= self.config.limits.clients {
            self.state.stats.clients_over_limit += 1;
            return;
        }
        self.state.stats.client_visits += 1;
        let (day, _) = visit.check_in.local_day_and_minute();
        let (client, previous_day) = match self.state.clients.entry(visit.client) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let client = e.into_mut();
                let previous = client.last_day;
                client.record(visit.provider_key(), day, visit.minutes, visit.event_id.clone());
                (client, Some(previous))
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                (e.insert(ClientCare::new(visit.provider_key(), day, visit.minutes, visit.event_id.clone())), None)
            }
        };
        client.record_month(visit.provider_key(), day.month(), visit.service, visit.minutes);
        let ctx = ClientVisitContext { visit, day, client, previous_day, now: decided_at };
        let (version, rules) = self.rules.at(decided_at, RuleStage::Staff);
        let before = self.findings.len();
        for rule in rules {
            rule.on_client_visit(&ctx, &mut self.findings);
            if self.config.reference.enabled {
                self.questions.extend(rule.grant_question(&ctx));
            }
        }
        for f in &mut self.findings[before..] {
            f.configuration = version;
        }
    }

    /// Every entity of the stage's state with its bytes (postcard), in
    /// entity order (see [`super::snapshot::Entity`]).
    pub fn entities(&self, out: &mut dyn FnMut(Entity, Vec<u8>)) {
        out(Entity::StaffStage, postcard::to_allocvec(&self.state).expect("the stage's state serializes"));
        // Waiting visits in groups that a new visit does not disturb: by
        // arrival clock, source partition and a run of 256 of its sequence
        // numbers (which only grow), so a checkpoint rewrites the newest
        // group of each source, not the hour of visits waiting.
        let mut groups: BTreeMap<PendingGroup, Vec<(&PendingKey, &Waiting)>> = BTreeMap::new();
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
        let mut clients: Vec<_> = self.state.clients.iter().collect();
        clients.sort_unstable_by_key(|(k, _)| **k);
        for (key, client) in clients {
            out(Entity::ClientCare(*key), postcard::to_allocvec(client).expect("a client serializes"));
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
        let mut clients = FxHashMap::default();
        let mut pending = BTreeMap::new();
        for (entity, bytes) in entities {
            match entity {
                Entity::StaffPending(_) => {
                    let visits: Vec<(PendingKey, Waiting)> =
                        postcard::from_bytes(bytes).map_err(|e| body(entity, e))?;
                    pending.extend(visits);
                }
                Entity::StaffStage => state = Some(postcard::from_bytes(bytes).map_err(|e| body(entity, e))?),
                Entity::Staff(key) => {
                    staff.insert(key, postcard::from_bytes::<StaffState>(bytes).map_err(|e| body(entity, e))?);
                }
                Entity::ClientCare(key) => {
                    clients.insert(key, postcard::from_bytes::<ClientCare>(bytes).map_err(|e| body(entity, e))?);
                }
                _ => {}
            }
        }
        let mut state = state.ok_or(RestoreError::Body("no staff-stage entity".into()))?;
        state.staff = staff;
        state.clients = clients;
        state.pending = pending;
        Ok(StaffStage {
            rules: RuleTimeline::new(&config.rules),
            state,
            findings: Vec::new(),
            questions: Vec::new(),
            config,
        })
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
                FromStaff::Question(q) => Some(q.seq),
                FromStaff::Frontier(_) => None,
            })
            .collect();
        assert_eq!(seqs, [(5, 0), (5, 1)]);
    }

    /// The client copies of visits: a change of provider with the hours
    /// collapsing gives a finding against the old provider, numbered from
    /// [`CLIENT_TRIGGER`]; a stage restored from its entities halfway
    /// (clients and waiting client copies included) gives the same records
    /// as one that ran through; and a copy sent again is ignored.
    #[test]
    fn client_copies_find_a_collapse_the_same_through_a_restore() {
        let mut s = Scenario::only("hours-collapse-after-provider-change");
        let start = crate::model::Day::from_ymd(2026, 3, 2);
        let mut records = Vec::new();
        for d in 0..70 {
            let day = start.plus(d);
            let (provider, minutes) = if d < 35 { (1, 120) } else { (2, 40) };
            let (y, m, dd) = day.ymd();
            let visit =
                s.visit().provider(provider).staff(provider).client(1).day(y, m, dd).at(9, 0).minutes(minutes).build();
            let seq = i64::from(d) + 1;
            records.push(ToStaff::ClientVisit(ClientVisit {
                source: 0,
                seq,
                clock: visit.check_in,
                visit: CareVisit::of(&visit),
            }));
            records.push(ToStaff::Progress(StaffProgress { source: 0, watermark: visit.check_out }));
        }
        let config = s.rules();
        let config = CoreConfig { rules: config, ..CoreConfig::default() };
        let run = |stage: &mut StaffStage, records: &[ToStaff], out: &mut Vec<FromStaff>| {
            for (offset, r) in records.iter().enumerate() {
                stage.offer(r.clone(), offset as i64, out);
            }
        };
        let mut through = StaffStage::new(config.clone(), StagePartition::ONLY, 1);
        let mut expected = Vec::new();
        run(&mut through, &records, &mut expected);
        let findings: Vec<&StaffFinding> = expected
            .iter()
            .filter_map(|m| match m {
                FromStaff::Finding(f) => Some(&**f),
                FromStaff::Question(_) | FromStaff::Frontier(_) => None,
            })
            .collect();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].finding.provider, crate::rules::testkit::provider(1));
        assert_eq!(findings[0].trigger.1, CLIENT_TRIGGER);
        assert_eq!(through.clients(), 1);
        assert_eq!(through.stats().client_visits, 70);

        let mut first = StaffStage::new(config.clone(), StagePartition::ONLY, 1);
        let mut got = Vec::new();
        // Halfway, with a client copy waiting (its progress not yet read).
        run(&mut first, &records[..81], &mut got);
        let mut entities = Vec::new();
        first.entities(&mut |e, bytes| entities.push((e, bytes)));
        assert!(entities.iter().any(|(e, _)| matches!(e, Entity::ClientCare(_))));
        let mut restored =
            StaffStage::from_entities(config, entities.iter().map(|(e, b)| (*e, b.as_slice()))).expect("restores");
        for (offset, r) in records.iter().enumerate().skip(81) {
            restored.offer(r.clone(), offset as i64, &mut got);
        }
        assert_eq!(got, expected);
        // A copy sent again (a provider partition replaying) is ignored.
        restored.offer(records[0].clone(), 999, &mut got);
        assert_eq!(restored.stats().duplicates, 1);
    }
}
