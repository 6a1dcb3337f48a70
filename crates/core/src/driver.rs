//! The partition driver: one input partition's engine and bookkeeping, with
//! no I/O. `tillsyn run` (Kafka) and `tillsyn replay` (a file) both drive it,
//! so a record takes the same path through the core live and offline.
//!
//! It takes each record of the partition's two inputs (time reports and
//! invoices) as a [`Record`]: the input, its offset, the decoded event or
//! the [`Rejection`] of the edge decoder, and a handle the shell uses to
//! find the original record again (a Kafka message, a line number). It hands
//! back [`Output`]s in order: alerts to produce, records to dead-letter or
//! to route as late, and when to pause or resume fetching time reports. The
//! shell turns those into I/O.
//!
//! It also owns the staff stage's partition of the same number
//! ([`StaffStage`]): the visits-by-staff and staff-findings topics have the
//! inputs' partition count, so whoever runs provider partition `k` runs
//! staff partition `k` too, with one checkpoint for both (Kafka Streams
//! runs co-partitioned sub-topologies in one task the same way). Records of
//! those two topics come in through [`PartitionDriver::offer_staff_visits`]
//! and [`PartitionDriver::offer_staff_finding`]; what the partition sends
//! to the staff stage and what its staff partition sends back come out as
//! [`Output::ToStaff`] and [`Output::FromStaff`], for the shell to produce.
//!
//! It also judges the partition's share of the reference-data topics
//! (partition `k` of each; [`PartitionDriver::offer_reference`]): every
//! instance reads all of them into its global [`ReferenceTable`], and the
//! owner of partition `k` is the one that dead-letters what the table
//! refuses there, with a [`ReferenceSource`] per topic that moves as the
//! table's source of that partition does (same records, same order), so
//! both refuse the same versions and each is dead-lettered by one member.
//!
//! What it owns besides the [`Engine`]:
//! - **Offsets**: the next offset of each input. Every record before them
//!   is reflected in the engine's state, none after; a record below them (a
//!   fetch from before a restore's start) is ignored. A checkpoint writes
//!   them beside the engine's snapshot.
//! - **Suppression after a takeover**: the ids of alerts already on the
//!   alert topic past the restored snapshot. Replaying the records after the
//!   snapshot computes those alerts again, with the same ids (the engine is
//!   deterministic); each is suppressed once instead of produced twice.
//! - **Event-time alignment of the two inputs**: a consumer catching up on a
//!   backlog would read the large time-report partition months ahead of the
//!   small invoice one. A time report more than [`ALIGNMENT_SECS`] of event
//!   time past the newest invoice processed waits while the invoice
//!   partition has unread records (the shell says where its end is); held
//!   records are released, in offset order, as invoices catch up or the
//!   invoice partition is read to its end. Past [`HoldLimit`] held records
//!   the driver asks the shell to pause the time-report partition.

use std::collections::{HashMap, VecDeque};

use crate::alerting::Alert;
use crate::baseline::{GlobalPeerTable, PeerDay, ReferenceSource, ReferenceTable};
use crate::decode::Rejection;
use crate::engine::snapshot::Entity;
use crate::engine::{Disposition, Engine, Input, LateEvent};
use crate::engine::{FromStaff, RestoreError, StaffStage, ToStaff};
use crate::model::reference::ReferenceKind;
use crate::model::{DomainEvent, EventTime};

/// How far (event time) a partition's time reports may run ahead of the
/// newest invoice processed while its invoice partition still has unread
/// records. The core's alerts are the same for any interleaving of the two
/// inputs within this bound (checked offline: invoices delayed by 2, 5 and
/// 10 days against the time reports give the replay's alerts; by 20 days
/// they do not).
pub const ALIGNMENT_SECS: i64 = 5 * 86_400;

/// Held time reports before the driver asks to pause their partition:
/// whichever of the two is reached first (a record may be up to the
/// broker's record size, about 1 MiB, so a count alone bounds nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldLimit {
    /// Records held.
    pub records: usize,
    /// Bytes of the records held ([`Record::size`]).
    pub bytes: usize,
}

impl HoldLimit {
    /// At most `records` records, of any size.
    pub const fn records(records: usize) -> Self {
        HoldLimit { records, bytes: usize::MAX }
    }
}

impl Default for HoldLimit {
    fn default() -> Self {
        HoldLimit { records: 5_000, bytes: 64 * 1024 * 1024 }
    }
}

/// The next offset of each input: every record before them is in the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offsets {
    /// Next offset of the time-report partition.
    pub time_reports: i64,
    /// Next offset of the invoice partition.
    pub invoices: i64,
    /// Next offset of the visits-by-staff partition (the staff stage's input).
    pub staff_visits: i64,
    /// Next offset of the staff-findings partition.
    pub staff_findings: i64,
    /// Next offset of the partition of each reference-data topic, in the
    /// order of [`ReferenceKind::ALL`].
    pub reference: [i64; 3],
}

impl Offsets {
    /// The next offset of `input`.
    pub fn of(&self, input: Input) -> i64 {
        match input {
            Input::TimeReports => self.time_reports,
            Input::Invoices => self.invoices,
        }
    }

    /// The next offset of `input`, which then moves one on: how a shell
    /// that numbers records itself (a file) gives them offsets.
    pub fn take(&mut self, input: Input) -> i64 {
        let offset = self.of_mut(input);
        *offset += 1;
        *offset - 1
    }

    /// All of them, in the order of the partition's topics: time reports,
    /// invoices, visits by staff, staff findings, then the reference-data
    /// topics (granted hours, absences, provider register).
    pub fn in_topic_order(&self) -> [i64; 7] {
        let [g, a, r] = self.reference;
        [self.time_reports, self.invoices, self.staff_visits, self.staff_findings, g, a, r]
    }

    /// The next offset of the partition of `kind`'s topic.
    pub fn of_reference(&self, kind: ReferenceKind) -> i64 {
        self.reference[kind as usize]
    }

    fn of_mut(&mut self, input: Input) -> &mut i64 {
        match input {
            Input::TimeReports => &mut self.time_reports,
            Input::Invoices => &mut self.invoices,
        }
    }
}

/// One record of the partition, as the edge decoded it.
#[derive(Debug)]
pub struct Record<H> {
    /// Which input it came from.
    pub input: Input,
    /// Its offset in its input partition.
    pub offset: i64,
    /// The validated event, or why it was rejected.
    pub decoded: Result<DomainEvent, Rejection>,
    /// The shell's handle on the original record (for dead letters and late
    /// events, which carry the original key, value and headers).
    pub handle: H,
    /// The original record's size in bytes (key, value, headers), for
    /// [`HoldLimit::bytes`].
    pub size: usize,
}

/// What the shell must do, in this order.
#[derive(Debug)]
pub enum Output<H> {
    /// A record was processed (applied, rejected or found late): count it.
    Processed {
        /// Its input.
        input: Input,
    },
    /// Produce this alert.
    Alert(Alert),
    /// This alert is already on the alert topic (a replay after a takeover
    /// computed it again): not produced.
    Suppressed(Alert),
    /// Send the record to the dead-letter topic with this reason.
    DeadLetter {
        /// The record.
        handle: H,
        /// Its input.
        input: Input,
        /// Its offset.
        offset: i64,
        /// Why.
        rejection: Rejection,
    },
    /// Route the record aside as late (beyond the allowed lateness).
    Late {
        /// The record.
        handle: H,
        /// Its offset.
        offset: i64,
        /// How late.
        late: LateEvent,
    },
    /// Publish this closed day's peer samples to every instance's global
    /// peer table (the shell delivers it before checkpointing the state
    /// that closed it).
    PeerDay(PeerDay),
    /// Send this record to the staff stage: a visit to the partition of its
    /// staff key, progress to every partition (the shell delivers it
    /// before checkpointing the state that sent it).
    ToStaff(ToStaff),
    /// Send this record of the staff stage to the provider stage: a finding
    /// to the partition of its provider, a frontier to every partition.
    FromStaff(FromStaff),
    /// Send this record of a reference-data topic to the dead-letter
    /// topic: it does not decode or validate, or it is registered behind
    /// its source's progress (`reference_late`).
    ReferenceDeadLetter {
        /// The record.
        handle: H,
        /// Its topic's kind.
        kind: ReferenceKind,
        /// Its offset.
        offset: i64,
        /// Why.
        rejection: Rejection,
    },
    /// A record of an internal topic that does not decode: skipped.
    InternalSkipped {
        /// Its offset.
        offset: i64,
    },
    /// Stop fetching this partition of the stream (too many held).
    Pause(Stream),
    /// Fetch this partition of the stream again (nothing held).
    Resume(Stream),
    /// Records wait because the rules' configuration is not known through
    /// `at`, the event time of the first of them (see
    /// [`PartitionDriver::set_rules_known_through`]): the shell has the
    /// rules topic sealed through it, and as far as `through` (the newest
    /// record held, at or after `at`) if it may: every held record will
    /// need it, and one seal then releases a backlog. A record's `at` may
    /// be too far ahead of the wall clock to be sealed for (it waits);
    /// `through` may be any held record's, an absurd date's too, and only
    /// says how far a seal would be of use.
    RulesNeeded {
        /// The first waiting record's event time.
        at: EventTime,
        /// The newest held record's event time (at least `at`).
        through: EventTime,
    },
}

/// Records a driver holds back, by what they wait for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldCounts {
    /// Time reports waiting for the invoice partition to catch up.
    pub for_invoices: usize,
    /// Invoices and staff-stage records waiting for the rules' configuration.
    pub for_rules: usize,
}

/// A stream of the partition that the driver may ask to pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The time-report partition.
    TimeReports,
    /// The invoice partition.
    Invoices,
    /// The visits-by-staff partition (the staff stage's input).
    StaffVisits,
}

/// A time report waiting for the invoices to catch up.
#[derive(Debug)]
struct Held<H> {
    record: Record<H>,
    /// Its event time; none if it did not decode (it waits in line all the same).
    event_time: Option<EventTime>,
}

/// One partition's engine and bookkeeping. See the module documentation.
pub struct PartitionDriver<H> {
    engine: Engine,
    /// The staff stage's partition of the same number (co-partitioned: its
    /// input and output topics have the inputs' partition count).
    staff: StaffStage,
    from_staff: Vec<FromStaff>,
    next: Offsets,
    suppress: HashMap<String, i64>,
    held: VecDeque<Held<H>>,
    /// Bytes of the held records.
    held_bytes: usize,
    hold_limit: HoldLimit,
    paused: bool,
    /// Invoices waiting for the rules' configuration, in offset order.
    held_invoices: VecDeque<Record<H>>,
    held_invoice_bytes: usize,
    invoices_paused: bool,
    /// Records of the visits-by-staff partition waiting for the rules'
    /// configuration: offset and batch, in offset order.
    held_staff: VecDeque<(i64, Option<Vec<ToStaff>>)>,
    staff_paused: bool,
    /// The latest `at` and `through` [`Output::RulesNeeded`] asked for.
    rules_needed: Option<(EventTime, EventTime)>,
    /// The newest event time of a record this driver has held (time
    /// reports, invoices, the staff stage's progress): when records wait
    /// for the rules' configuration, a seal through here is asked for at
    /// once ([`Output::RulesNeeded`]'s `through`), so that a backlog is
    /// sealed for in a few steps, not a day at a time.
    held_through: Option<EventTime>,
    /// Issue time of the newest invoice processed.
    invoices_through: Option<EventTime>,
    /// The partition of each reference-data topic as a source of the
    /// reference table, in the order of [`ReferenceKind::ALL`].
    reference: [ReferenceSource; 3],
    /// `core.reference.lateness`, in seconds.
    reference_lateness_secs: i64,
    /// Whether records were processed since [`Self::mark_checkpointed`].
    dirty: bool,
    alerts: Vec<Alert>,
}

impl<H> PartitionDriver<H> {
    /// A driver over `engine`, whose state reflects every record before
    /// `next`; `suppress` maps the ids of alerts already on the alert topic
    /// past the engine's snapshot to their offsets there. Starts dirty, so
    /// that the shell checkpoints a restored partition once (the committed
    /// offsets then catch up with the snapshot).
    pub fn new(engine: Engine, next: Offsets, suppress: HashMap<String, i64>, hold_limit: HoldLimit) -> Self {
        let partition = engine.partition();
        let reference_lateness_secs = engine.config().reference.lateness_secs();
        let staff = StaffStage::new(engine.config().clone(), partition, partition.count);
        PartitionDriver {
            engine,
            staff,
            from_staff: Vec::new(),
            next,
            suppress,
            held: VecDeque::new(),
            held_bytes: 0,
            hold_limit,
            paused: false,
            held_invoices: VecDeque::new(),
            held_invoice_bytes: 0,
            invoices_paused: false,
            held_staff: VecDeque::new(),
            staff_paused: false,
            rules_needed: None,
            held_through: None,
            invoices_through: None,
            reference: [ReferenceSource::default(); 3],
            reference_lateness_secs,
            dirty: true,
            alerts: Vec::new(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The staff stage's partition.
    pub fn staff(&self) -> &StaffStage {
        &self.staff
    }

    /// Adds a version of the rules' configuration to the partition's
    /// provider and staff stages (see [`crate::rules::timeline`]). Before
    /// any decision at or after its effective time.
    pub fn add_rules_version(
        &mut self,
        version: &crate::rules::timeline::RulesVersion,
    ) -> Result<(), crate::rules::timeline::TimelineError> {
        self.engine.rules_timeline_check(version)?;
        self.engine.add_rules_version(version)?;
        self.staff.add_rules_version(version)
    }

    /// This driver with a restored staff stage (see [`Self::restore_parts`]).
    pub fn with_staff(mut self, staff: StaffStage) -> Self {
        self.staff = staff;
        self
    }

    /// Every entity of the partition's state (the engine's and the staff
    /// stage's) with its bytes: what a checkpoint writes, or the part of it
    /// that changed (see [`crate::engine::snapshot::Entity`]).
    pub fn entities(&self, out: &mut dyn FnMut(Entity, Vec<u8>)) {
        self.engine.entities(out);
        self.staff.entities(out);
    }

    /// The engine and staff stage of a checkpoint's entities, under
    /// `config`. The caller checks the format and fingerprint they were
    /// written under.
    pub fn restore_entities(
        config: &crate::config::CoreConfig,
        entities: &[(Entity, &[u8])],
    ) -> Result<(Engine, StaffStage), RestoreError> {
        let engine = Engine::from_entities(config.clone(), entities.iter().copied())?;
        let staff = StaffStage::from_entities(config.clone(), entities.iter().copied())?;
        Ok((engine, staff))
    }

    /// Takes one record of the visits-by-staff partition at `offset`: a
    /// batch of one provider partition's records for this staff partition,
    /// in order (none: it did not decode, and is skipped). The staff
    /// stage's findings and frontier they release come out as
    /// [`Output::FromStaff`].
    ///
    /// A record whose progress would release visits decided after the time
    /// the rules' configuration is known through waits, with those after
    /// it, until it is known (see [`Self::set_rules_known_through`]).
    pub fn offer_staff_visits(&mut self, offset: i64, batch: Option<Vec<ToStaff>>, out: &mut Vec<Output<H>>) {
        if offset < self.next.staff_visits || self.held_staff.iter().any(|(o, _)| *o == offset) {
            return;
        }
        if !self.held_staff.is_empty() || self.staff_must_wait(batch.as_deref(), out) {
            let progress = batch.iter().flatten().filter_map(|m| match m {
                ToStaff::Progress(p) => Some(p.watermark),
                _ => None,
            });
            self.note_held(progress.max());
            self.held_staff.push_back((offset, batch));
            if self.held_staff.len() >= self.hold_limit.records && !self.staff_paused {
                self.staff_paused = true;
                out.push(Output::Pause(Stream::StaffVisits));
            }
            return;
        }
        self.apply_staff_visits(offset, batch, out);
    }

    /// Whether `batch` must wait for the rules' configuration: one of its
    /// progress entries passes the time it is known through. Says so.
    fn staff_must_wait(&mut self, batch: Option<&[ToStaff]>, out: &mut Vec<Output<H>>) -> bool {
        let known = self.engine.rules_known_through();
        let beyond = batch
            .into_iter()
            .flatten()
            .filter_map(|m| match m {
                ToStaff::Progress(p) if p.watermark > known => Some(p.watermark),
                _ => None,
            })
            .max();
        beyond.is_some_and(|at| {
            self.need_rules(at, out);
            true
        })
    }

    /// Asks the shell, once per time, for the rules' configuration through
    /// `at`, and as far as the newest record held if that is later (every
    /// held record will need it: one seal for all of them).
    fn need_rules(&mut self, at: EventTime, out: &mut Vec<Output<H>>) {
        let through = self.held_through.map_or(at, |t| t.max(at));
        // Again whenever either moved on: a seal asked for by another
        // partition may have covered `at` and not `through`, and then the
        // next waiting record is past it with `through` unchanged.
        if self.rules_needed.is_none_or(|(a, t)| at > a || through > t) {
            self.rules_needed = Some((at, through));
            out.push(Output::RulesNeeded { at, through });
        }
    }

    fn apply_staff_visits(&mut self, offset: i64, batch: Option<Vec<ToStaff>>, out: &mut Vec<Output<H>>) {
        match batch {
            Some(batch) => {
                for message in batch {
                    self.staff.offer(message, offset, &mut self.from_staff);
                }
                out.extend(self.from_staff.drain(..).map(Output::FromStaff));
            }
            None => out.push(Output::InternalSkipped { offset }),
        }
        self.next.staff_visits = offset + 1;
        self.dirty = true;
    }

    /// Takes one record of the staff-findings partition at `offset` (none:
    /// it did not decode, and is skipped; see [`Engine::offer_staff`]).
    pub fn offer_staff_finding(&mut self, offset: i64, message: Option<FromStaff>, out: &mut Vec<Output<H>>) {
        if offset < self.next.staff_findings {
            return;
        }
        match message {
            Some(message) => self.offer_staff(message, out),
            None => out.push(Output::InternalSkipped { offset }),
        }
        self.next.staff_findings = offset + 1;
        self.dirty = true;
    }

    /// Takes one record of partition `k` of `kind`'s reference-data topic,
    /// decoded by [`crate::decode::decode_reference_record`]: a version or
    /// a heartbeat moves the partition's source as the reference table's
    /// does; a rejected record, or a version registered behind the
    /// source's progress, comes out as [`Output::ReferenceDeadLetter`].
    /// The table itself is fed by the shell's global reader; this only
    /// decides, once per group, what it refuses.
    pub fn offer_reference(
        &mut self,
        kind: ReferenceKind,
        offset: i64,
        decoded: Result<DomainEvent, Rejection>,
        handle: H,
        out: &mut Vec<Output<H>>,
    ) {
        let i = kind as usize;
        if offset < self.next.reference[i] {
            return;
        }
        self.next.reference[i] = offset + 1;
        self.dirty = true;
        let refused = match decoded {
            Ok(DomainEvent::Heartbeat(at)) => {
                self.reference[i].heartbeat(at);
                None
            }
            Ok(DomainEvent::Reference(record)) => self.reference[i]
                .admit(record.recorded_at, self.reference_lateness_secs)
                .err()
                .map(|e| Rejection::new(crate::decode::reason::REFERENCE_LATE, e)),
            Ok(_) => Some(Rejection::new(
                crate::decode::reason::WRONG_EVENT_KIND,
                "a time report or invoice on a reference-data topic",
            )),
            Err(rejection) => Some(rejection),
        };
        if let Some(rejection) = refused {
            out.push(Output::ReferenceDeadLetter { handle, kind, offset, rejection });
        }
    }

    /// How far the partition of each reference-data topic has come, in the
    /// order of [`ReferenceKind::ALL`] (for the checkpoint).
    pub fn reference_progress(&self) -> [Option<EventTime>; 3] {
        self.reference.map(|s| s.progress())
    }

    /// The reference sources' progress a checkpoint recorded, with the
    /// offsets it covers (see [`Self::reference_progress`]).
    pub fn with_reference_progress(mut self, progress: [Option<EventTime>; 3]) -> Self {
        self.reference = progress.map(ReferenceSource::at);
        self
    }

    /// The next offsets: what a checkpoint of the engine's state covers.
    pub fn next(&self) -> Offsets {
        self.next
    }

    /// Where on the alert topic the alerts not yet reflected in a snapshot
    /// taken now begin, given the alert partition's end: alerts read back
    /// but not computed again yet stay to be suppressed after a later
    /// restore too.
    pub fn alerts_from(&self, alert_log_end: i64) -> i64 {
        self.suppress.values().copied().min().map_or(alert_log_end, |o| o.min(alert_log_end))
    }

    /// Alerts still to be suppressed.
    pub fn suppressing(&self) -> usize {
        self.suppress.len()
    }

    /// Records held back: time reports waiting for invoices, and records
    /// of every input waiting for the rules' configuration.
    pub fn held(&self) -> usize {
        self.held.len() + self.held_invoices.len() + self.held_staff.len()
    }

    /// Records held back by what they wait for: time reports waiting for
    /// the invoices, and records waiting for the rules' configuration.
    pub fn held_by_reason(&self) -> HeldCounts {
        HeldCounts { for_invoices: self.held.len(), for_rules: self.held_invoices.len() + self.held_staff.len() }
    }

    /// Whether the driver asked to pause the time-report partition.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Whether records were processed since the last checkpoint.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The state and offsets were checkpointed.
    pub fn mark_checkpointed(&mut self) {
        self.dirty = false;
    }

    /// Takes one record. `invoice_end` answers, when asked, the end offset
    /// of the invoice partition (none if unknown: then unread invoices are
    /// assumed). Pushes what the shell must do to `out`.
    pub fn offer(
        &mut self,
        record: Record<H>,
        invoice_end: &mut impl FnMut() -> Option<i64>,
        out: &mut Vec<Output<H>>,
    ) {
        if record.offset < self.next.of(record.input) {
            return;
        }
        match record.input {
            Input::TimeReports => {
                let event_time = record.decoded.as_ref().ok().map(DomainEvent::event_time);
                if !self.held.is_empty() || event_time.is_some_and(|t| self.must_hold(t, invoice_end)) {
                    self.hold(record, event_time, out);
                } else if let Some(back) = self.apply(record, out) {
                    self.hold(back, event_time, out);
                }
            }
            Input::Invoices => {
                if self.held_invoices.iter().any(|r| r.offset == record.offset) {
                    return;
                }
                if !self.held_invoices.is_empty() {
                    self.hold_invoice(record, out);
                } else if let Some(back) = self.apply(record, out) {
                    self.hold_invoice(back, out);
                }
                self.release(invoice_end, out);
            }
        }
    }

    /// The rules' configuration is known through `through` (every version
    /// effective at or before it is added): lets the engine and the staff
    /// stage decide up to it, and processes the records that waited for it.
    pub fn set_rules_known_through(
        &mut self,
        through: EventTime,
        invoice_end: &mut impl FnMut() -> Option<i64>,
        out: &mut Vec<Output<H>>,
    ) {
        self.engine.set_rules_known_through(through);
        self.release(invoice_end, out);
        while let Some((offset, batch)) = self.held_staff.pop_front() {
            if self.staff_must_wait(batch.as_deref(), out) {
                self.held_staff.push_front((offset, batch));
                break;
            }
            self.apply_staff_visits(offset, batch, out);
        }
        if self.held_staff.is_empty() && self.staff_paused {
            self.staff_paused = false;
            out.push(Output::Resume(Stream::StaffVisits));
        }
    }

    /// Notes the event time of a record put on hold (see `held_through`).
    fn note_held(&mut self, at: Option<EventTime>) {
        if let Some(at) = at {
            self.held_through = Some(self.held_through.map_or(at, |t| t.max(at)));
        }
    }

    fn hold_invoice(&mut self, record: Record<H>, out: &mut Vec<Output<H>>) {
        self.note_held(record.decoded.as_ref().ok().map(DomainEvent::event_time));
        self.held_invoice_bytes += record.size;
        self.held_invoices.push_back(record);
        let full =
            self.held_invoices.len() >= self.hold_limit.records || self.held_invoice_bytes >= self.hold_limit.bytes;
        if full && !self.invoices_paused {
            self.invoices_paused = true;
            out.push(Output::Pause(Stream::Invoices));
        }
    }

    /// Processes the held time reports, oldest first, while they may go
    /// (the shell calls it now and then: the invoice partition may have
    /// reached its end without a new record).
    pub fn release(&mut self, invoice_end: &mut impl FnMut() -> Option<i64>, out: &mut Vec<Output<H>>) {
        // Invoices that waited for the rules' configuration first: they
        // may let time reports go.
        while let Some(record) = self.held_invoices.pop_front() {
            self.held_invoice_bytes -= record.size;
            if let Some(back) = self.apply(record, out) {
                self.held_invoice_bytes += back.size;
                self.held_invoices.push_front(back);
                break;
            }
        }
        if self.held_invoices.is_empty() && self.invoices_paused {
            self.invoices_paused = false;
            out.push(Output::Resume(Stream::Invoices));
        }
        while let Some(front) = self.held.front() {
            if let Some(t) = front.event_time
                && self.must_hold(t, invoice_end)
            {
                break;
            }
            let Some(held) = self.held.pop_front() else { break };
            self.held_bytes -= held.record.size;
            if let Some(back) = self.apply(held.record, out) {
                self.held_bytes += back.size;
                self.held.push_front(Held { record: back, event_time: held.event_time });
                break;
            }
        }
        if self.held.is_empty() && self.paused {
            self.paused = false;
            out.push(Output::Resume(Stream::TimeReports));
        }
    }

    /// Whether a time report at `event_time` must wait for invoices: it is
    /// more than [`ALIGNMENT_SECS`] past the newest invoice processed, and
    /// the invoice partition has records not read yet.
    fn must_hold(&self, event_time: EventTime, invoice_end: &mut impl FnMut() -> Option<i64>) -> bool {
        if self.invoices_through.is_some_and(|t| event_time.0 <= t.0.saturating_add(ALIGNMENT_SECS)) {
            return false;
        }
        invoice_end().is_none_or(|end| self.next.invoices < end)
    }

    fn hold(&mut self, record: Record<H>, event_time: Option<EventTime>, out: &mut Vec<Output<H>>) {
        self.note_held(event_time);
        self.held_bytes += record.size;
        self.held.push_back(Held { record, event_time });
        let full = self.held.len() >= self.hold_limit.records || self.held_bytes >= self.hold_limit.bytes;
        if full && !self.paused {
            self.paused = true;
            out.push(Output::Pause(Stream::TimeReports));
        }
    }

    /// Decides the days that became final in `table` and are known in
    /// `reference` (see [`Engine::decide`]); the shell calls it when the
    /// global table finalised days or the reference data moved on, for
    /// every partition it runs.
    pub fn decide(&mut self, table: &GlobalPeerTable, reference: &ReferenceTable, out: &mut Vec<Output<H>>) {
        self.alerts.clear();
        let before = (self.engine.decided_through(), self.engine.stats().reference_visits_checked);
        self.engine.decide(table, reference, &mut self.alerts);
        let published = self.engine.take_peer_days();
        if (self.engine.decided_through(), self.engine.stats().reference_visits_checked) != before
            || !published.is_empty()
        {
            self.dirty = true;
        }
        self.emit_alerts(out);
        // Days that waited for the reference data (see `Engine::decide`).
        out.extend(published.into_iter().map(Output::PeerDay));
    }

    /// Takes one record from the staff stage (see [`Engine::offer_staff`]).
    fn offer_staff(&mut self, message: FromStaff, out: &mut Vec<Output<H>>) {
        self.alerts.clear();
        self.engine.offer_staff(message, &mut self.alerts);
        self.dirty = true;
        self.emit_alerts(out);
    }

    fn emit_alerts(&mut self, out: &mut Vec<Output<H>>) {
        for alert in self.alerts.drain(..) {
            if self.suppress.remove(&alert.alert_id).is_some() {
                out.push(Output::Suppressed(alert));
            } else {
                out.push(Output::Alert(alert));
            }
        }
    }

    /// Applies one record to the engine and says what follows from it.
    /// Applies `record`, or gives it back, unapplied and with nothing
    /// changed, when the engine holds it for the rules' configuration.
    fn apply(&mut self, record: Record<H>, out: &mut Vec<Output<H>>) -> Option<Record<H>> {
        self.alerts.clear();
        let disposition = match &record.decoded {
            Err(_) => None,
            // A heartbeat is for the input whose partition it came on.
            Ok(DomainEvent::Heartbeat(at)) => Some(self.engine.heartbeat(record.input, *at, &mut self.alerts)),
            Ok(event) => Some(self.engine.process(event, &mut self.alerts)),
        };
        if let Some(Disposition::Held(at)) = disposition {
            self.need_rules(at, out);
            return Some(record);
        }
        let Record { input, offset, decoded, handle, .. } = record;
        out.push(Output::Processed { input });
        match decoded {
            Err(rejection) => out.push(Output::DeadLetter { handle, input, offset, rejection }),
            Ok(event) => {
                let invoice_time =
                    (input == Input::Invoices && !matches!(event, DomainEvent::Visit(_))).then(|| event.event_time());
                let disposition = disposition.unwrap_or(Disposition::Applied);
                // How far the invoice partition has come: an implausible
                // record does not move it.
                if let Some(at) = invoice_time
                    && !matches!(disposition, Disposition::Rejected(_))
                {
                    self.invoices_through = Some(self.invoices_through.map_or(at, |t| t.max(at)));
                }
                match disposition {
                    Disposition::Late(late) => out.push(Output::Late { handle, offset, late }),
                    Disposition::Rejected(rejection) => {
                        out.push(Output::DeadLetter { handle, input, offset, rejection })
                    }
                    Disposition::Applied | Disposition::Duplicate | Disposition::Held(_) => {}
                }
                self.emit_alerts(out);
                out.extend(self.engine.take_peer_days().into_iter().map(Output::PeerDay));
                out.extend(self.engine.take_staff_records().into_iter().map(Output::ToStaff));
            }
        }
        *self.next.of_mut(input) = offset + 1;
        self.dirty = true;
        None
    }
}

#[cfg(test)]
mod tests {
    //! The driver without a broker: alignment, suppression after a takeover,
    //! offsets, lateness and rejections. Handles are plain numbers.

    use super::*;
    use crate::config::CoreConfig;
    use crate::decode::reason;
    use crate::model::{
        ClientKey, Day, EventId, Invoice, InvoiceLine, Minutes, Month, MunicipalityCode, Ore, ProviderId,
        RegistrationMethod, ServiceType, StaffKey, Visit,
    };

    const DAY: i64 = 86_400;

    fn municipality() -> MunicipalityCode {
        MunicipalityCode::parse("2480").expect("valid code")
    }

    fn provider() -> ProviderId {
        ProviderId::from_nine_digits(556_100_001)
    }

    /// A 30-minute visit of `staff` at client `client`, `days` after
    /// 2026-03-02 09:00 plus `minutes`.
    fn visit(id: &str, days: i64, minutes: i64, staff: u64, client: u64) -> DomainEvent {
        let check_in = Day::from_ymd(2026, 3, 2).start().plus_secs(9 * 3600 + days * DAY + minutes * 60);
        DomainEvent::Visit(Visit {
            event_id: EventId::new(id),
            provider: provider(),
            municipality: municipality(),
            client: ClientKey(client),
            staff: StaffKey(staff),
            service: ServiceType::PersonalCare,
            check_in,
            check_out: check_in.plus_secs(1800),
            method: RegistrationMethod::Nfc,
            planned: None,
            client_home: None,
            check_in_location: None,
            household: None,
            reported_at: check_in.plus_secs(1800),
        })
    }

    /// An invoice for February 2026 issued `days` after 2026-03-02 09:00.
    fn invoice(id: &str, days: i64) -> DomainEvent {
        let m = Month::from_ym(2026, 2);
        DomainEvent::Invoice(Invoice {
            invoice_id: EventId::new(id),
            provider: provider(),
            municipality: municipality(),
            period_start: m.start(),
            period_end: m.end(),
            issued_at: Day::from_ymd(2026, 3, 2).start().plus_secs(9 * 3600 + days * DAY),
            lines: vec![InvoiceLine {
                client: ClientKey(1),
                service: ServiceType::PersonalCare,
                minutes: Minutes(30),
                tariff_per_hour: Ore(42_600),
                amount: Ore(21_300),
            }],
            total: Ore(21_300),
        })
    }

    fn record(input: Input, offset: i64, decoded: Result<DomainEvent, Rejection>) -> Record<i64> {
        Record { input, offset, decoded, handle: offset, size: 100 }
    }

    fn driver() -> PartitionDriver<i64> {
        PartitionDriver::new(
            Engine::new(CoreConfig::default()),
            Offsets::default(),
            HashMap::new(),
            HoldLimit::records(3),
        )
    }

    /// What came out for the records, as short strings: `tr` and `inv`
    /// processed, `dl@3` dead letter, `late@3`, `pause`, `resume` (alerts
    /// and peer days left out: see the suppression test).
    fn kinds(out: &[Output<i64>]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Processed { input: Input::TimeReports } => Some("tr".into()),
                Output::Processed { input: Input::Invoices } => Some("inv".into()),
                Output::DeadLetter { offset, .. } => Some(format!("dl@{offset}")),
                Output::ReferenceDeadLetter { offset, .. } => Some(format!("ref-dl@{offset}")),
                Output::Late { offset, .. } => Some(format!("late@{offset}")),
                Output::Pause(Stream::TimeReports) => Some("pause".into()),
                Output::Resume(Stream::TimeReports) => Some("resume".into()),
                Output::Pause(Stream::Invoices) => Some("pause-inv".into()),
                Output::Resume(Stream::Invoices) => Some("resume-inv".into()),
                Output::Pause(Stream::StaffVisits) => Some("pause-staff".into()),
                Output::Resume(Stream::StaffVisits) => Some("resume-staff".into()),
                Output::RulesNeeded { at, .. } => Some(format!("rules@{}", at.0)),
                Output::Alert(_)
                | Output::Suppressed(_)
                | Output::PeerDay(_)
                | Output::ToStaff(_)
                | Output::FromStaff(_)
                | Output::InternalSkipped { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_time_report_far_ahead_of_the_invoices_waits_until_they_catch_up() {
        let mut d = driver();
        let mut out = Vec::new();
        let mut end = || Some(10);
        d.offer(record(Input::Invoices, 0, Ok(invoice("inv-0", 0))), &mut end, &mut out);
        d.offer(record(Input::TimeReports, 0, Ok(visit("tr-0", 2, 0, 1, 1))), &mut end, &mut out);
        assert_eq!(kinds(&out), ["inv", "tr"], "within the bound: processed at once");
        out.clear();
        d.offer(record(Input::TimeReports, 1, Ok(visit("tr-1", 9, 0, 1, 1))), &mut end, &mut out);
        d.offer(record(Input::TimeReports, 2, Ok(visit("tr-2", 9, 60, 1, 1))), &mut end, &mut out);
        assert!(out.is_empty(), "9 days past the newest invoice: held, and the next waits behind it");
        assert_eq!((d.held(), d.next().time_reports), (2, 1));
        d.offer(record(Input::Invoices, 1, Ok(invoice("inv-1", 5))), &mut end, &mut out);
        assert_eq!(kinds(&out), ["inv", "tr", "tr"], "released in offset order once invoices caught up");
        assert_eq!(d.next(), Offsets { time_reports: 3, invoices: 2, ..Offsets::default() });
    }

    #[test]
    fn held_time_reports_go_once_the_invoice_partition_is_read_to_its_end() {
        let mut d = driver();
        let mut out = Vec::new();
        let mut unread = || Some(5);
        d.offer(record(Input::Invoices, 0, Ok(invoice("inv-0", 0))), &mut unread, &mut out);
        d.offer(record(Input::TimeReports, 0, Ok(visit("tr-0", 30, 0, 1, 1))), &mut unread, &mut out);
        d.release(&mut unread, &mut out);
        assert_eq!(kinds(&out), ["inv"], "invoices 1..5 unread: the time report waits");
        let mut unknown = || None;
        d.release(&mut unknown, &mut out);
        assert_eq!(kinds(&out), ["inv"], "an unknown end counts as unread invoices");
        let mut at_end = || Some(1);
        d.release(&mut at_end, &mut out);
        assert_eq!(kinds(&out), ["inv", "tr"]);
    }

    #[test]
    fn records_after_the_rules_known_time_wait_in_order_and_go_once_it_moves() {
        let mut d = driver();
        let mut out = Vec::new();
        let mut at_end = || Some(0);
        let through = |days: i64| Day::from_ymd(2026, 3, 2).start().plus_secs(9 * 3600 + days * DAY + 600);
        d.set_rules_known_through(through(0), &mut at_end, &mut out);
        assert!(out.is_empty());
        // Time-report offsets 0 (day 0) and 1 (day 1), invoices 0 (day 1) and 1 (day 0).
        d.offer(record(Input::TimeReports, 0, Ok(visit("tr-0", 0, 0, 1, 1))), &mut at_end, &mut out);
        d.offer(record(Input::TimeReports, 1, Ok(visit("tr-1", 1, 0, 1, 1))), &mut at_end, &mut out);
        d.offer(record(Input::TimeReports, 2, Ok(visit("tr-2", 0, 1, 1, 1))), &mut at_end, &mut out);
        let mut at_end = || Some(2);
        d.offer(record(Input::Invoices, 0, Ok(invoice("inv-0", 1))), &mut at_end, &mut out);
        d.offer(record(Input::Invoices, 1, Ok(invoice("inv-1", 0))), &mut at_end, &mut out);
        let day1 = through(1).plus_secs(-600).0;
        assert_eq!(
            kinds(&out),
            ["tr".to_string(), format!("rules@{day1}")],
            "the first time report goes; the rest of each input waits behind its first record past the known \
             time; the shell is asked once"
        );
        assert_eq!((d.held(), d.next().time_reports, d.next().invoices), (4, 1, 0));
        let before = d.engine().snapshot();
        out.clear();
        // An implausible record is judged at once, never held: nothing waits
        // for a seal at 2099.
        d.set_rules_known_through(through(0), &mut at_end, &mut out);
        assert_eq!(d.engine().snapshot(), before, "holding changed nothing");
        out.clear();
        d.set_rules_known_through(through(1), &mut at_end, &mut out);
        assert_eq!(kinds(&out), ["inv", "inv", "tr", "tr"], "released in offset order per input");
        assert_eq!((d.held(), d.next().time_reports, d.next().invoices), (0, 3, 2));
    }

    /// A driver whose rules' configuration is known through 2 March, with
    /// a month of visits from then held (four a day), and its outputs.
    fn held_month() -> (PartitionDriver<i64>, Vec<Output<i64>>, EventTime) {
        let mut d = PartitionDriver::new(
            Engine::new(CoreConfig::default()),
            Offsets::default(),
            HashMap::new(),
            HoldLimit::records(1_000),
        );
        let mut out = Vec::new();
        let mut at_end = || Some(0);
        let start = Day::from_ymd(2026, 3, 2).start();
        d.set_rules_known_through(start, &mut at_end, &mut out);
        for i in 0..120 {
            d.offer(
                record(Input::TimeReports, i, Ok(visit(&format!("tr-{i}"), i / 4, (i % 4) * 90, 1, 1))),
                &mut at_end,
                &mut out,
            );
        }
        (d, out, start)
    }

    /// What the driver asked the shell for in `out`: each
    /// [`Output::RulesNeeded`]'s first waiting and newest held time.
    fn asked(out: &[Output<i64>]) -> Vec<(EventTime, EventTime)> {
        out.iter()
            .filter_map(|o| if let Output::RulesNeeded { at, through } = o { Some((*at, *through)) } else { None })
            .collect()
    }

    /// A backlog of a month read while the rules' configuration is known
    /// through its first day: once records are held, the shell is asked for
    /// the newest of them, not for the next day, so the backlog goes after
    /// two seals, not thirty (a catch-up then runs at the broker's pace; it
    /// took a round trip through the rules topic per day of backlog).
    #[test]
    fn a_held_backlog_is_asked_for_through_its_newest_record_at_once() {
        let (mut d, mut out, start) = held_month();
        let mut at_end = || Some(0);
        let through = |out: &[Output<i64>]| asked(out).into_iter().map(|(_, t)| t).collect::<Vec<_>>();
        let first = through(&out);
        assert_eq!(first.len(), 1, "asked once while the records came: {first:?}");
        assert!(first[0] < start.plus_secs(2 * DAY), "the first record past the known time: {first:?}");
        out.clear();
        // The first seal, through what was asked (plus a day, as the shell seals).
        d.set_rules_known_through(first[0].plus_secs(DAY), &mut at_end, &mut out);
        let second = through(&out);
        let newest = visit("tr-119", 119 / 4, 3 * 90, 1, 1).event_time();
        assert_eq!(second, [newest], "asked through the newest held record at once");
        d.set_rules_known_through(second[0], &mut at_end, &mut out);
        assert_eq!(d.held(), 0, "two seals release a month");
        assert_eq!(d.next().time_reports, 120);
    }

    /// A seal that covers the first waiting record but not the newest held
    /// one (another partition asked for it): once the records it covers are
    /// processed, the driver asks again for the next waiting one, although
    /// the newest held record is what it asked for already. (It asked only
    /// when the newest moved on, and waited for ever: five broker tests
    /// stalled on it, 2026-12-02.)
    #[test]
    fn a_seal_short_of_the_held_records_is_followed_by_a_new_ask() {
        let (mut d, mut out, start) = held_month();
        let mut at_end = || Some(0);
        out.clear();
        // Records of the first days were asked for; now the newest held.
        d.set_rules_known_through(start.plus_secs(DAY), &mut at_end, &mut out);
        let newest = visit("tr-119", 119 / 4, 3 * 90, 1, 1).event_time();
        assert_eq!(asked(&out).last().map(|a| a.1), Some(newest));
        out.clear();
        // Another partition's seal: ten days, short of the newest held.
        let ten = start.plus_secs(10 * DAY);
        d.set_rules_known_through(ten, &mut at_end, &mut out);
        let again = asked(&out);
        assert_eq!(again.len(), 1, "asked again: {again:?}");
        assert!(again[0].0 > ten && again[0].1 == newest, "{again:?}");
        d.set_rules_known_through(newest, &mut at_end, &mut out);
        assert_eq!(d.held(), 0);
    }

    #[test]
    fn the_held_records_give_the_alerts_of_an_engine_that_never_waited() {
        // A day of visits and heartbeats, once with the rules' configuration
        // known all along, once known a day at a time: the same state.
        let events: Vec<(Input, DomainEvent)> = (0..40)
            .map(|i| (Input::TimeReports, visit(&format!("tr-{i}"), i / 4, (i % 4) * 90, i as u64 % 3, 1)))
            .chain([(Input::TimeReports, DomainEvent::Heartbeat(Day::from_ymd(2026, 3, 20).start()))])
            .collect();
        let mut free = driver();
        let mut gated = driver();
        let mut out = Vec::new();
        let mut at_end = || Some(0);
        gated.set_rules_known_through(Day::from_ymd(2026, 3, 2).start(), &mut at_end, &mut out);
        for (offset, (input, event)) in events.iter().enumerate() {
            free.offer(record(*input, offset as i64, Ok(event.clone())), &mut at_end, &mut out);
            gated.offer(record(*input, offset as i64, Ok(event.clone())), &mut at_end, &mut out);
        }
        assert!(gated.held() > 0);
        for day in 3..=21 {
            gated.set_rules_known_through(Day::from_ymd(2026, 3, day).start(), &mut at_end, &mut out);
        }
        assert_eq!(gated.held(), 0);
        assert_eq!(gated.next(), free.next());
        assert_eq!(gated.engine().snapshot(), free.engine().snapshot());
    }

    #[test]
    fn no_invoice_yet_and_an_empty_invoice_partition_hold_nothing() {
        let mut d = driver();
        let mut out = Vec::new();
        let mut empty = || Some(0);
        d.offer(record(Input::TimeReports, 0, Ok(visit("tr-0", 0, 0, 1, 1))), &mut empty, &mut out);
        assert_eq!(kinds(&out), ["tr"]);
    }

    #[test]
    fn the_time_report_partition_pauses_at_the_hold_limit_and_resumes_when_released() {
        let mut d = driver();
        let mut out = Vec::new();
        let mut unread = || Some(5);
        d.offer(record(Input::Invoices, 0, Ok(invoice("inv-0", 0))), &mut unread, &mut out);
        for i in 0..4 {
            d.offer(record(Input::TimeReports, i, Ok(visit(&format!("tr-{i}"), 20, i, 1, 1))), &mut unread, &mut out);
        }
        assert_eq!(kinds(&out), ["inv", "pause"], "paused once, at the third held record");
        assert!(d.paused());
        out.clear();
        let mut at_end = || Some(1);
        d.release(&mut at_end, &mut out);
        assert_eq!(kinds(&out), ["tr", "tr", "tr", "tr", "resume"]);
        assert!(!d.paused());
    }

    /// Two held records of 100 bytes reach a 150-byte limit long before
    /// the record limit: few large records pause the partition too.
    #[test]
    fn the_hold_limit_counts_bytes_as_well_as_records() {
        let mut d = PartitionDriver::new(
            Engine::new(CoreConfig::default()),
            Offsets::default(),
            HashMap::new(),
            HoldLimit { records: 1_000, bytes: 150 },
        );
        let mut out = Vec::new();
        let mut unread = || Some(5);
        d.offer(record(Input::Invoices, 0, Ok(invoice("inv-0", 0))), &mut unread, &mut out);
        d.offer(record(Input::TimeReports, 0, Ok(visit("tr-0", 20, 0, 1, 1))), &mut unread, &mut out);
        assert_eq!(kinds(&out), ["inv"], "100 bytes held: under the limit");
        d.offer(record(Input::TimeReports, 1, Ok(visit("tr-1", 20, 1, 1, 1))), &mut unread, &mut out);
        assert_eq!(kinds(&out), ["inv", "pause"], "200 bytes held: paused");
        out.clear();
        d.release(&mut || Some(1), &mut out);
        assert_eq!(kinds(&out), ["tr", "tr", "resume"]);
    }

    #[test]
    fn an_undecodable_time_report_waits_in_line_behind_held_ones() {
        let mut d = driver();
        let mut out = Vec::new();
        let mut unread = || Some(5);
        d.offer(record(Input::Invoices, 0, Ok(invoice("inv-0", 0))), &mut unread, &mut out);
        d.offer(record(Input::TimeReports, 0, Ok(visit("tr-0", 20, 0, 1, 1))), &mut unread, &mut out);
        let bad = Err(Rejection::new(reason::JSON_DECODE, "expected value"));
        d.offer(record(Input::TimeReports, 1, bad), &mut unread, &mut out);
        assert_eq!(kinds(&out), ["inv"]);
        let mut at_end = || Some(1);
        d.release(&mut at_end, &mut out);
        assert_eq!(kinds(&out), ["inv", "tr", "tr", "dl@1"], "dead-lettered after the held record before it");
        assert_eq!(d.next().time_reports, 2, "a rejected record is processed: its offset is passed");
    }

    #[test]
    fn records_below_the_restored_offsets_are_ignored() {
        let offsets = Offsets { time_reports: 5, invoices: 3, ..Offsets::default() };
        let mut d =
            PartitionDriver::new(Engine::new(CoreConfig::default()), offsets, HashMap::new(), HoldLimit::records(3));
        let mut out = Vec::new();
        let mut end = || Some(3);
        d.offer(record(Input::TimeReports, 4, Ok(visit("tr-4", 0, 0, 1, 1))), &mut end, &mut out);
        d.offer(record(Input::Invoices, 2, Ok(invoice("inv-2", 0))), &mut end, &mut out);
        assert!(out.is_empty());
        d.offer(record(Input::TimeReports, 5, Ok(visit("tr-5", 0, 0, 1, 1))), &mut end, &mut out);
        assert_eq!(kinds(&out), ["tr"]);
        assert_eq!(d.next(), Offsets { time_reports: 6, invoices: 3, ..Offsets::default() });
    }

    /// Ten night visits (02:00 and 03:00 on five days) by a private
    /// provider: rule `night-visits-private-provider` opens an episode at
    /// the third and escalates it at the tenth.
    fn night_visits() -> Vec<Record<i64>> {
        (0..10)
            .map(|i| {
                let (day, hour) = (i / 2, 2 + i % 2);
                let v = visit(&format!("n{i}"), day, (hour - 9) * 60, 7, i as u64 + 1);
                record(Input::TimeReports, i, Ok(v))
            })
            .collect()
    }

    fn alerts_of(out: &[Output<i64>]) -> Vec<(bool, String)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Alert(a) => Some((true, a.alert_id.clone())),
                Output::Suppressed(a) => Some((false, a.alert_id.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn after_a_takeover_each_alert_already_on_the_topic_is_suppressed_once() {
        let mut end = || Some(0);
        let mut first = driver();
        let mut out = Vec::new();
        for r in night_visits() {
            first.offer(r, &mut end, &mut out);
        }
        let produced = alerts_of(&out);
        assert!(produced.len() >= 2, "the scenario makes alerts: {produced:?}");
        // The previous owner produced the first alert after its last
        // snapshot (offset 41 of the alert partition), then died.
        let suppress = HashMap::from([(produced[0].1.clone(), 41)]);
        let mut next = PartitionDriver::new(
            Engine::new(CoreConfig::default()),
            Offsets::default(),
            suppress,
            HoldLimit::records(3),
        );
        assert_eq!(next.alerts_from(50), 41, "a snapshot now still covers the alert not yet computed again");
        let mut again = Vec::new();
        for r in night_visits() {
            next.offer(r, &mut end, &mut again);
        }
        let mut expected = produced.clone();
        expected[0].0 = false;
        assert_eq!(alerts_of(&again), expected, "the same alerts, the one already produced suppressed");
        assert_eq!((next.suppressing(), next.alerts_from(50)), (0, 50));
    }

    #[test]
    fn a_late_time_report_is_routed_aside_and_its_offset_passed() {
        let mut d = driver();
        let mut out = Vec::new();
        let mut end = || Some(0);
        d.offer(record(Input::TimeReports, 0, Ok(visit("tr-0", 20, 0, 1, 1))), &mut end, &mut out);
        d.offer(record(Input::TimeReports, 1, Ok(visit("tr-1", 0, 0, 1, 1))), &mut end, &mut out);
        assert_eq!(kinds(&out), ["tr", "tr", "late@1"]);
        let Some(Output::Late { late, .. }) = out.last() else { panic!("late expected") };
        assert_eq!(late.input, Input::TimeReports);
        assert_eq!(late.behind_secs, 17 * DAY, "behind the watermark: 20 days less the 3 days allowed");
        assert_eq!(d.next().time_reports, 2);
        assert!(d.is_dirty());
        d.mark_checkpointed();
        assert!(!d.is_dirty());
    }

    #[test]
    fn the_owner_of_a_reference_partition_refuses_what_the_table_refuses() {
        use crate::config::ReferenceConfig;
        use crate::model::reference::{Absence, AbsenceKind, Fact, ReferenceRecord, Validity};
        let config = CoreConfig {
            reference: ReferenceConfig {
                enabled: true,
                lateness: std::time::Duration::from_secs(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut d = PartitionDriver::new(
            Engine::new(config.clone()),
            Offsets::default(),
            HashMap::new(),
            HoldLimit::records(3),
        );
        let mut table = config.reference.table(1);
        let t0 = Day::from_ymd(2026, 3, 2).start();
        let version = |id: &str, hours: i64| {
            DomainEvent::Reference(ReferenceRecord {
                id: EventId::new(id),
                recorded_at: t0.plus_secs(hours * 3600),
                retracted: false,
                fact: Fact::Absence(Absence {
                    municipality: municipality(),
                    client: ClientKey(1),
                    kind: AbsenceKind::HospitalStay,
                    period: Validity { from: t0, to: None },
                }),
            })
        };
        // In offset order: on time, within the hour, late, a rejection, a
        // heartbeat that makes the next one late, and one after it.
        let records: Vec<Result<DomainEvent, Rejection>> = vec![
            Ok(version("a", 10)),
            Ok(version("b", 9)),
            Ok(version("c", 8)),
            Err(Rejection::new(reason::JSON_DECODE, "broken")),
            Ok(DomainEvent::Heartbeat(t0.plus_secs(20 * 3600))),
            Ok(version("d", 19)),
            Ok(version("e", 21)),
        ];
        let mut out = Vec::new();
        let mut table_refused = Vec::new();
        for (offset, decoded) in records.into_iter().enumerate() {
            let offset = offset as i64;
            match &decoded {
                Ok(DomainEvent::Reference(r)) => {
                    if table.apply(0, r).is_err() {
                        table_refused.push(offset);
                    }
                }
                Ok(DomainEvent::Heartbeat(at)) => {
                    table.heartbeat(0, *at).unwrap();
                }
                _ => table_refused.push(offset),
            }
            d.offer_reference(ReferenceKind::Absences, offset, decoded, offset, &mut out);
        }
        let refused: Vec<(i64, &str)> = out
            .iter()
            .filter_map(|o| match o {
                Output::ReferenceDeadLetter { offset, kind: ReferenceKind::Absences, rejection, .. } => {
                    Some((*offset, rejection.reason))
                }
                _ => None,
            })
            .collect();
        assert_eq!(refused, vec![(2, reason::REFERENCE_LATE), (3, reason::JSON_DECODE), (5, reason::REFERENCE_LATE)]);
        assert_eq!(refused.iter().map(|(o, _)| *o).collect::<Vec<_>>(), table_refused, "the same records");
        assert_eq!(d.next().of_reference(ReferenceKind::Absences), 7);
        assert_eq!(d.reference_progress()[1], table.progress(0));
        // A record below the next offset (a fetch from before a restore) is ignored.
        out.clear();
        d.offer_reference(ReferenceKind::Absences, 2, Ok(version("c", 8)), 2, &mut out);
        assert!(out.is_empty());
        // Restored from a checkpoint, the source goes on where it was.
        let restored =
            PartitionDriver::<i64>::new(Engine::new(config), d.next(), HashMap::new(), HoldLimit::records(3))
                .with_reference_progress(d.reference_progress());
        assert_eq!(restored.reference_progress(), d.reference_progress());
    }
}
