//! The engine: one partition of the provider stage, and the part of the
//! core the shell talks to (with the staff stage, [`staff`], and the
//! global peer table, [`crate::baseline::global`]).
//!
//! It takes validated [`DomainEvent`]s in arrival order and hands back
//! [`Alert`]s. For each event it
//! 1. checks lateness against its input's [`Watermark`] (late events are
//!    returned as [`Disposition::Late`], never applied or dropped silently);
//! 2. closes every local day the time-report watermark has passed: its
//!    providers' peer samples go out as a [`PeerDay`]
//!    ([`Engine::take_peer_days`]) and invoices whose period is complete are
//!    reconciled (with reference data on, the day goes out once the
//!    reference data is known through its decision time, with the samples
//!    that need it: see [`Engine::decide`]);
//! 3. applies the event to the shared windows, runs the per-event rules and
//!    sends a visit on to the staff stage ([`Engine::take_staff_records`]);
//! 4. feeds findings to the episode lifecycle, which emits alerts.
//!
//! When the global table makes days final ([`Engine::decide`]), the day
//! rules run on every partition's statistics, quiet episodes resolve and
//! old state is evicted; the staff stage's findings come back through
//! [`Engine::offer_staff`].
//!
//! Everything is a function of the events: no clock, no randomness,
//! ordered iteration wherever order could leak into output, and nothing
//! that depends on which other providers share the partition or on how
//! fast other partitions go. The decision times that alerts carry (and
//! their ids hash) are taken from the data: a visit's findings at its
//! provider's own clock (the newest check-in of that provider), a day's
//! when the watermark passes its end (its end plus the allowed visit
//! lateness), an invoice's at the later of its issue time and its period
//! end plus the allowed visit lateness (the earliest moment its period is
//! complete), a staff finding at its visit's arrival clock. So the alerts
//! are the same for any interleaving of the two inputs, any partition count
//! and any number of instances.

pub mod snapshot;
pub mod staff;

use rustc_hash::FxHashMap;

use crate::alerting::{Alert, Episodes, Finding, Severity};
use crate::baseline::{FinalDay, GlobalPeerTable, PeerDay, PeerTable, ReferenceError, ReferenceTable};
pub use crate::client_care::CareVisit;
use crate::client_care::GrantQuestion;
use crate::config::CoreConfig;
use crate::decode::Rejection;
use crate::model::{
    ClientKey, Day, DomainEvent, EventTime, Invoice, MunicipalityCode, ProviderKey, ServiceType, Visit,
};
use crate::rules::RuleStage;
use crate::rules::timeline::{RuleTimeline, RulesVersion, TimelineError};
use crate::rules::{DayContext, GrantQuestionContext, InvoiceContext, Provider, ReferenceVisitContext, VisitContext};
use crate::state::{CLIENT_MONTHS, MunicipalityDay, ReferenceVisit, SERVICES};
use crate::window::{Lateness, Watermark};
pub use snapshot::{Entity, RestoreError};
pub use staff::{
    ClientVisit, FromStaff, StaffFrontier, StaffProgress, StaffStage, StaffVisit, ToStaff, decode_batch, encode_batch,
};
use std::collections::{BTreeMap, VecDeque};

/// How often (event time) a provider partition tells the staff stage its
/// watermark: staff findings are released in steps of this.
pub const STAFF_PROGRESS_STEP_SECS: i64 = 3600;

/// The order staff findings are taken in: decision time, triggering
/// visit, its place among that visit's findings; then source and sequence
/// (ties between copies only).
type StaffInboxKey = (EventTime, crate::model::EventId, u32, u32, (i64, u32));

/// Which input stream an event came from. Serialized as its
/// [`name`](Input::name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Input {
    /// Time reports (visits).
    #[serde(rename = "time_report")]
    TimeReports,
    /// Invoices.
    #[serde(rename = "invoice")]
    Invoices,
}

impl Input {
    /// Lowercase name for labels.
    pub fn name(self) -> &'static str {
        match self {
            Input::TimeReports => "time_report",
            Input::Invoices => "invoice",
        }
    }
}

/// An event that arrived after its input's watermark had passed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateEvent {
    /// Its input.
    pub input: Input,
    /// Its event time.
    pub event_time: EventTime,
    /// The watermark it missed.
    pub watermark: EventTime,
    /// How far behind the watermark it was.
    pub behind_secs: i64,
}

impl std::fmt::Display for LateEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at {} is {} s behind the watermark {}",
            self.input.name(),
            self.event_time,
            self.behind_secs,
            self.watermark
        )
    }
}

/// What the engine did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Applied to the state; alerts (if any) were pushed.
    Applied,
    /// Not applied: beyond the allowed lateness. The caller routes it.
    Late(LateEvent),
    /// Not applied: an invoice id already seen (a redelivery).
    Duplicate,
    /// Not applied: its event time is implausible (far ahead of the
    /// source's clock or of the record's own times; see
    /// [`CoreConfig::max_ahead`]), or it would grow the state beyond a cap
    /// ([`crate::config::StateLimits`]). The caller dead-letters it.
    Rejected(Rejection),
    /// Not applied, and nothing changed: its event time is after the time
    /// through which the rules' configuration is known
    /// ([`Engine::set_rules_known_through`]), so decisions it would cause
    /// could miss a version not read yet. The caller offers it again, in
    /// order, once the configuration is known through its event time.
    Held(EventTime),
}

/// Counters of one engine, for metrics and summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    /// Visits applied.
    pub visits: u64,
    /// Invoices applied.
    pub invoices: u64,
    /// Late time reports.
    pub late_visits: u64,
    /// Late invoices.
    pub late_invoices: u64,
    /// Redelivered invoices ignored.
    pub duplicate_invoices: u64,
    /// Records with an implausible event time, not applied.
    pub implausible: u64,
    /// Records that would have grown the state beyond a cap, not applied.
    pub over_limit: u64,
    /// Findings made by rules.
    pub findings: u64,
    /// Alerts emitted.
    pub alerts: u64,
    /// Days closed by this partition (samples published).
    pub days_closed: u64,
    /// Days closed with final peer statistics (peer and day rules run).
    pub days_decided: u64,
    /// Days decided without their final statistics, which the global table
    /// no longer held (this partition lagged the others by more than
    /// [`GlobalPeerTable::KEPT_DAYS`] days): peer rules stayed silent.
    pub peer_days_missing: u64,
    /// Visits the rules compared with the reference data
    /// ([`crate::rules::Rule::on_reference_visit`]).
    pub reference_visits_checked: u64,
}

/// Sizes of the state, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateSize {
    /// Providers held.
    pub providers: usize,
    /// (provider, client) pairs held.
    pub clients: usize,
    /// Staff members held.
    pub staff: usize,
    /// Open alert episodes.
    pub open_episodes: usize,
    /// Invoices waiting for their period to complete.
    pub pending_invoices: usize,
}

/// Marks `findings` as decided under version `version` of the rules'
/// configuration.
fn stamp(findings: &mut [Finding], version: u32) {
    for f in findings {
        f.configuration = version;
    }
}

fn late(input: Input, event_time: EventTime, watermark: EventTime, behind_secs: i64) -> Disposition {
    Disposition::Late(LateEvent { input, event_time, watermark, behind_secs })
}

/// `add(&mut self, other)`: the field-wise sum, for totals over partitions.
macro_rules! field_sums {
    ($t:ty { $($field:ident),* }) => {
        impl $t {
            /// Adds another engine's figures (for totals over partitions).
            pub fn add(&mut self, other: &$t) {
                $(self.$field += other.$field;)*
            }
        }
    };
}

field_sums!(EngineStats {
    visits,
    invoices,
    late_visits,
    late_invoices,
    duplicate_invoices,
    implausible,
    over_limit,
    findings,
    alerts,
    days_closed,
    days_decided,
    peer_days_missing,
    reference_visits_checked
});
field_sums!(StateSize { providers, clients, staff, open_episodes, pending_invoices });

/// What every provider's [`DayContext`] of one day close shares.
struct DayClose<'a> {
    day: Day,
    activity_days: u32,
    now: EventTime,
    /// The providers, sorted, and their active clients (per service, any).
    ids: &'a [ProviderKey],
    active: &'a [([u32; SERVICES], u32)],
    municipalities: &'a BTreeMap<MunicipalityCode, MunicipalityDay>,
    /// At the decision, not at the close.
    reference: Option<&'a ReferenceTable>,
}

impl DayClose<'_> {
    /// Calls `f` with each provider's context, in provider order.
    fn for_each(
        &self,
        providers: &mut FxHashMap<ProviderKey, Provider>,
        peers: &PeerTable,
        mut f: impl FnMut(&mut DayContext<'_>),
    ) {
        for (id, (by_service, any)) in self.ids.iter().zip(self.active) {
            let Some(provider) = providers.get_mut(id) else { continue };
            let municipality = self.municipalities.get(&provider.municipality).copied().unwrap_or_default();
            f(&mut DayContext {
                day: self.day,
                provider_id: id.provider,
                provider,
                active_by_service: *by_service,
                active_clients: *any,
                activity_days: self.activity_days,
                peers,
                municipality,
                now: self.now,
                reference: self.reference,
            });
        }
    }
}

/// One partition's detection state.
pub struct Engine {
    config: CoreConfig,
    rules: RuleTimeline,
    /// Events after this wait ([`Disposition::Held`]): the rules'
    /// configuration is not known beyond it. Not part of the state: the
    /// shell sets it from the rules topic; the end of time where the whole
    /// history is known (replay, tests).
    rules_known_through: EventTime,
    state: State,
    findings: Vec<Finding>,
}

/// What an engine's snapshot holds: everything but the configuration and
/// the rules built from it. Hash maps are written in key order, so the same
/// state gives the same bytes.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    /// Which partition of the provider stage this is.
    partition: StagePartition,
    visits_watermark: Watermark,
    invoices_watermark: Watermark,
    /// Not in the engine's own serialized form: each provider (and each of
    /// its clients) is a checkpoint entity of its own (`snapshot::Entity`).
    #[serde(skip)]
    providers: FxHashMap<ProviderKey, Provider>,
    /// Clients held over all providers (counted, not written: a restore
    /// counts them again).
    #[serde(skip)]
    clients_held: usize,
    /// Visits waiting in the providers' `reference_visits` (counted, not
    /// written: a restore counts them again).
    #[serde(skip)]
    reference_visits_waiting: usize,
    episodes: Episodes,
    /// Visits sent to the staff stage (the last one's sequence number).
    staff_seq: i64,
    /// The watermark last sent to the staff stage.
    progress_sent: Option<EventTime>,
    /// The newest source heartbeat on the time-report partition.
    heartbeat_clock: Option<EventTime>,
    /// The newest source heartbeat on the invoice partition.
    invoice_heartbeat_clock: Option<EventTime>,
    /// Records for the staff stage not yet taken by the shell (taken after
    /// every event: never in a snapshot).
    #[serde(skip)]
    staff_outbox: Vec<ToStaff>,
    /// Staff findings held until every staff partition has passed them, in
    /// the order they are taken: decision time, triggering visit, place.
    staff_inbox: BTreeMap<StaffInboxKey, Finding>,
    /// Per staff partition: the newest finding taken (its sequence number).
    staff_applied: Vec<Option<(i64, u32)>>,
    /// Per staff partition: its frontier.
    staff_frontiers: Vec<Option<EventTime>>,
    /// Staff findings decided before this are handed to the episodes.
    staff_through: Option<EventTime>,
    /// Client rules' questions held until every staff partition has passed
    /// them (as `staff_inbox`).
    staff_questions: BTreeMap<StaffInboxKey, GrantQuestion>,
    /// Questions every staff partition has passed, waiting for the
    /// reference data to be known through their judging time (the first
    /// element of the key), in the order they are answered.
    grant_checks: BTreeMap<(EventTime, StaffInboxKey), GrantQuestion>,
    /// The last local day closed (its samples published).
    closed_through: Option<Day>,
    /// The first local day this partition closed.
    first_closed: Option<Day>,
    /// The last local day decided on final peer statistics.
    decided_through: Option<Day>,
    /// Peer days closed and not yet taken by the shell (never in a
    /// snapshot: the shell takes them after every event).
    #[serde(skip)]
    outbox: Vec<PeerDay>,
    /// With reference data on: days closed whose samples wait for the
    /// reference data to be known through the day's decision time (the
    /// samples of [`crate::rules::Rule::record_reference_samples`] are
    /// added then), oldest first.
    unpublished: VecDeque<PeerDay>,
    /// The watermark at which the next day can close (start of the day
    /// after the next one to close): a cheap check on every event.
    next_close_at: EventTime,
    /// Largest event time seen over all inputs: the engine's "now".
    now: EventTime,
    stats: EngineStats,
}

/// Which partition of the provider stage an engine serves, of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagePartition {
    /// Its number, from 0.
    pub index: u32,
    /// Partitions of the stage.
    pub count: u32,
}

impl StagePartition {
    /// The only partition of a one-partition stage.
    pub const ONLY: StagePartition = StagePartition { index: 0, count: 1 };
}

impl Engine {
    /// The engine of the only partition (tests, tools): see [`Engine::for_partition`].
    pub fn new(config: CoreConfig) -> Self {
        Engine::for_partition(config, StagePartition::ONLY)
    }

    /// An engine with the rules and windows of `config` (assumed
    /// validated) for `partition` of the provider stage.
    pub fn for_partition(config: CoreConfig, partition: StagePartition) -> Self {
        Engine {
            rules: RuleTimeline::new(&config.rules),
            rules_known_through: EventTime(i64::MAX),
            state: State {
                partition,
                visits_watermark: Watermark::new(config.visit_lateness_secs()),
                invoices_watermark: Watermark::new(config.invoice_lateness_secs()),
                providers: FxHashMap::default(),
                clients_held: 0,
                reference_visits_waiting: 0,
                episodes: Episodes::new(config.evidence_limit, config.visit_lateness_secs(), config.language),
                staff_seq: 0,
                progress_sent: None,
                heartbeat_clock: None,
                invoice_heartbeat_clock: None,
                staff_outbox: Vec::new(),
                staff_inbox: BTreeMap::new(),
                staff_applied: vec![None; partition.count.max(1) as usize],
                staff_frontiers: vec![None; partition.count.max(1) as usize],
                staff_through: None,
                staff_questions: BTreeMap::new(),
                grant_checks: BTreeMap::new(),
                closed_through: None,
                first_closed: None,
                decided_through: None,
                outbox: Vec::new(),
                unpublished: VecDeque::new(),
                next_close_at: EventTime(i64::MIN),
                now: EventTime(i64::MIN),
                stats: EngineStats::default(),
            },
            findings: Vec::new(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        self.state.stats
    }

    /// Which partition of the provider stage this engine serves.
    pub fn partition(&self) -> StagePartition {
        self.state.partition
    }

    /// The last local day closed by this partition, if any.
    pub fn closed_through(&self) -> Option<Day> {
        self.state.closed_through
    }

    /// The last local day decided on final peer statistics, if any.
    pub fn decided_through(&self) -> Option<Day> {
        self.state.decided_through
    }

    /// Takes the peer days closed since the last call, oldest first: the
    /// shell publishes them to every instance's [`GlobalPeerTable`].
    pub fn take_peer_days(&mut self) -> Vec<PeerDay> {
        std::mem::take(&mut self.state.outbox)
    }

    /// The time-report watermark, if any time report was seen.
    pub fn watermark(&self) -> Option<EventTime> {
        self.state.visits_watermark.current()
    }

    /// The largest event time seen.
    pub fn now(&self) -> Option<EventTime> {
        (self.state.now.0 != i64::MIN).then_some(self.state.now)
    }

    /// Sizes of the state.
    pub fn state_size(&self) -> StateSize {
        StateSize {
            providers: self.state.providers.len(),
            clients: {
                let clients = self.state.providers.values().map(|p| p.clients.len()).sum();
                debug_assert_eq!(clients, self.state.clients_held, "the count of clients held drifted");
                clients
            },
            staff: 0,
            open_episodes: self.state.episodes.open_count(),
            pending_invoices: self.state.providers.values().map(|p| p.pending_invoices.len()).sum(),
        }
    }

    /// Open alert episodes by rule id and current severity (the pairs that
    /// have one).
    pub fn open_episodes_by_rule(&self) -> BTreeMap<(&'static str, Severity), usize> {
        self.state.episodes.open_by_rule()
    }

    /// Adds a version of the rules' configuration: decisions at or after
    /// its effective time are made under it (see [`crate::rules::timeline`]).
    /// The caller must add it before the engine makes any such decision.
    pub fn add_rules_version(&mut self, version: &RulesVersion) -> Result<(), TimelineError> {
        self.rules.add(version)
    }

    /// Checks that `version` could be added (see [`RuleTimeline::check`]).
    pub fn rules_timeline_check(&self, version: &RulesVersion) -> Result<(), TimelineError> {
        self.rules.check(version)
    }

    /// Lets the engine decide up to `through`: every version of the rules'
    /// configuration effective at or before it has been added. Events
    /// after it are [`Disposition::Held`]. A new engine decides without
    /// bound (the whole history known, as in replay); the shell that reads
    /// the history as it is written sets the bound first and only raises
    /// it afterwards.
    pub fn set_rules_known_through(&mut self, through: EventTime) {
        self.rules_known_through = through;
    }

    /// Through when the rules' configuration is known (the end of time
    /// unless the shell set it).
    pub fn rules_known_through(&self) -> EventTime {
        self.rules_known_through
    }

    /// The versions of the rules' configuration the engine knows.
    pub fn rule_timeline(&self) -> &RuleTimeline {
        &self.rules
    }

    /// Processes one event; pushes the alerts it causes onto `alerts`.
    pub fn process(&mut self, event: &DomainEvent, alerts: &mut Vec<Alert>) -> Disposition {
        let before = alerts.len();
        let disposition = match event {
            DomainEvent::Visit(v) => self.process_visit(v, alerts),
            DomainEvent::Invoice(i) => self.process_invoice(i, alerts),
            DomainEvent::Heartbeat(at) if *at > self.rules_known_through => Disposition::Held(*at),
            DomainEvent::Heartbeat(at) => {
                // A heartbeat of every source: both inputs.
                self.heartbeat(Input::Invoices, *at, alerts);
                self.heartbeat(Input::TimeReports, *at, alerts)
            }
            // The caller routes reference data to the reference table.
            DomainEvent::Reference(_) => Disposition::Rejected(Rejection::new(
                crate::decode::reason::WRONG_EVENT_KIND,
                "reference data goes to the reference table, not to a provider's partition",
            )),
        };
        self.state.stats.alerts += (alerts.len() - before) as u64;
        disposition
    }

    /// A source heartbeat on `input`: its watermark moves as a record at
    /// `at` would move it (a heartbeat behind the watermark changes
    /// nothing and is not late: it says nothing new), and the days it
    /// completes close.
    /// Held, changing nothing, if `at` is after the time the rules'
    /// configuration is known through.
    pub fn heartbeat(&mut self, input: Input, at: EventTime, alerts: &mut Vec<Alert>) -> Disposition {
        if at > self.rules_known_through {
            return Disposition::Held(at);
        }
        let before = alerts.len();
        let watermark = match input {
            Input::TimeReports => &mut self.state.visits_watermark,
            Input::Invoices => &mut self.state.invoices_watermark,
        };
        if watermark.current().is_none_or(|w| at >= w) {
            watermark.observe(at);
            self.state.now = self.state.now.max(at);
        }
        if input == Input::Invoices {
            self.state.invoice_heartbeat_clock = Some(self.state.invoice_heartbeat_clock.map_or(at, |h| h.max(at)));
        }
        if input == Input::TimeReports {
            self.state.heartbeat_clock = Some(self.state.heartbeat_clock.map_or(at, |h| h.max(at)));
            self.close_days(alerts);
            self.send_progress();
        }
        self.state.stats.alerts += (alerts.len() - before) as u64;
        Disposition::Applied
    }

    /// Why a record of `input` with event time `at` is implausible, if it
    /// is: more than [`CoreConfig::max_ahead`] after the newest source
    /// heartbeat of its partition. Heartbeats come in the same order
    /// relative to a provider's records in every partitioning, so the
    /// decision is the same in every partitioning, live and in replay.
    fn ahead_of_source(&self, input: Input, at: EventTime) -> Option<Rejection> {
        let ahead = self.config.max_ahead_secs();
        let clock = match input {
            Input::TimeReports => self.state.heartbeat_clock,
            Input::Invoices => self.state.invoice_heartbeat_clock,
        }?;
        (at.0 > clock.0.saturating_add(ahead)).then(|| {
            Rejection::new(
                crate::decode::reason::EVENT_TIME_AHEAD_OF_SOURCE,
                format!("event time {at} is {} h after the source's clock {clock}", (at.0 - clock.0) / 3600),
            )
        })
    }

    /// Why `at` is implausible against the record's own `own` time (a
    /// report, an issue), if it is more than [`CoreConfig::max_ahead`] after it.
    fn after_own(&self, at: EventTime, own: EventTime, reason: &'static str) -> Option<Rejection> {
        (at.0 > own.0.saturating_add(self.config.max_ahead_secs()))
            .then(|| Rejection::new(reason, format!("{at} is {} h after {own}", (at.0 - own.0) / 3600)))
    }

    /// Why a record of provider `key` (a visit of `client`, or `invoice`)
    /// would grow the state beyond a cap, if it would: a new provider in a
    /// full partition, a new client of a full provider, an invoice that
    /// would wait beside too many others (see [`crate::config::StateLimits`]).
    fn over_limit(&self, key: ProviderKey, client: Option<&ClientKey>, invoice: Option<&Invoice>) -> Option<Rejection> {
        use crate::decode::reason;
        let limits = &self.config.limits;
        let Some(provider) = self.state.providers.get(&key) else {
            let n = self.state.providers.len();
            return (n >= limits.providers).then(|| {
                Rejection::new(reason::STATE_LIMIT_PROVIDERS, format!("the partition holds {n} providers already"))
            });
        };
        if let Some(client) = client
            && !provider.clients.contains_key(client)
        {
            let n = provider.clients.len();
            if n >= limits.clients_per_provider {
                return Some(Rejection::new(
                    reason::STATE_LIMIT_CLIENTS,
                    format!("the provider holds {n} clients already"),
                ));
            }
            let held = self.state.clients_held;
            if held >= limits.clients {
                return Some(Rejection::new(
                    reason::STATE_LIMIT_CLIENTS,
                    format!("the partition holds {held} clients already"),
                ));
            }
        }
        if let Some(invoice) = invoice
            && !provider.invoices_seen.contains_key(&invoice.invoice_id)
            && self.state.visits_watermark.current().is_none_or(|w| w < invoice.period_end)
            && provider.pending_invoices.len() >= limits.pending_invoices_per_provider
        {
            let n = provider.pending_invoices.len();
            return Some(Rejection::new(
                reason::STATE_LIMIT_PENDING_INVOICES,
                format!("{n} invoices of the provider wait for their periods already"),
            ));
        }
        None
    }

    fn process_visit(&mut self, visit: &Visit, alerts: &mut Vec<Alert>) -> Disposition {
        let rejection = self.ahead_of_source(Input::TimeReports, visit.check_in).or_else(|| {
            self.after_own(visit.check_in, visit.reported_at, crate::decode::reason::CHECK_IN_AFTER_REPORT)
        });
        if let Some(rejection) = rejection {
            self.state.stats.implausible += 1;
            return Disposition::Rejected(rejection);
        }
        if let Some(rejection) = self.over_limit(visit.provider_key(), Some(&visit.client), None) {
            self.state.stats.over_limit += 1;
            return Disposition::Rejected(rejection);
        }
        if visit.check_in > self.rules_known_through {
            return Disposition::Held(visit.check_in);
        }
        if let Lateness::Late { behind_secs, watermark } = self.state.visits_watermark.observe(visit.check_in) {
            self.state.stats.late_visits += 1;
            return late(Input::TimeReports, visit.check_in, watermark, behind_secs);
        }
        self.state.now = self.state.now.max(visit.check_in);
        self.close_days(alerts);
        self.apply_visit(visit, alerts);
        self.send_progress();
        self.state.stats.visits += 1;
        Disposition::Applied
    }

    fn apply_visit(&mut self, visit: &Visit, alerts: &mut Vec<Alert>) {
        let (day, minute_of_day) = visit.check_in.local_day_and_minute();
        let minutes = visit.duration().0;
        let horizon = self.config.horizon_days as usize;
        let key = visit.provider_key();
        self.wake(key, visit.check_in);
        let provider = self.state.providers.entry(key).or_insert_with(|| Provider::new(visit.municipality, horizon));
        // The provider's clock before this visit, for the staff stage: its
        // newest check-in or the newest heartbeat, whichever is later. Both
        // come in the same order relative to this provider's records in
        // every partitioning.
        let staff_clock = self.state.heartbeat_clock.map_or(provider.visit_clock, |h| h.max(provider.visit_clock));
        provider.last_event = provider.last_event.max(visit.check_in);
        provider.visit_clock = provider.visit_clock.max(visit.check_in);
        provider.first_day = provider.first_day.min(day);
        if let Some(bucket) = provider.days.bucket_mut(day) {
            bucket.visits += 1;
            if visit.method.is_manual_or_edited() {
                bucket.manual_visits += 1;
            }
            bucket.minutes = bucket.minutes.saturating_add(minutes);
            let s = &mut bucket.minutes_by_service[visit.service.index()];
            *s = s.saturating_add(minutes);
        }
        let client = provider.clients.entry(visit.client).or_insert_with(|| {
            self.state.clients_held += 1;
            Default::default()
        });
        client.record(day, visit.service, minutes);
        provider.recent_visits.push(day, &visit.event_id);

        // Decided at the provider's own clock: the same in every partitioning.
        let decided = provider.visit_clock;
        let reference = self.config.reference.enabled;
        let mut ctx = VisitContext { visit, day, minute_of_day, provider, now: decided, reference };
        let (version, rules) = self.rules.at(decided, RuleStage::Provider);
        let before = self.findings.len();
        for rule in rules {
            rule.on_visit(&mut ctx, &mut self.findings);
        }
        stamp(&mut self.findings[before..], version);
        self.flush_findings(decided, alerts);
        if reference && let Some(provider) = self.state.providers.get_mut(&key) {
            let month_minutes =
                provider.clients.get(&visit.client).map_or(0, |c| c.performed(day.month(), visit.service).0);
            // Judged at the later of the provider's clock and the check-in
            // plus the grace, never before the visit before it. Both are
            // before the start of the next day plus the lateness plus the
            // grace: the provider's clock, and every earlier check-in, is
            // at most the lateness ahead of this on-time check-in.
            let grace = self.config.reference.visit_grace_secs();
            let judged = decided.max(visit.check_in.plus_secs(grace)).max(provider.reference_clock);
            provider.reference_clock = judged;
            provider.reference_visits.push_back(ReferenceVisit {
                event_id: visit.event_id.clone(),
                client: visit.client,
                service: visit.service,
                check_in: visit.check_in,
                decided: judged,
                month_minutes,
            });
            self.state.reference_visits_waiting += 1;
        }

        // To the staff stage, re-keyed by staff member, with the time its
        // provider's records had come to when it arrived.
        self.state.staff_seq += 1;
        let seq = self.state.staff_seq;
        let source = self.state.partition.index;
        let clock = staff_clock.max(visit.check_in);
        self.state.staff_outbox.push(ToStaff::Visit(StaffVisit { source, seq, clock, visit: visit.clone() }));
        // And re-keyed by client, for the client rules, when any runs.
        if self.rules.has_client_rules() {
            self.state.staff_seq += 1;
            let seq = self.state.staff_seq;
            self.state.staff_outbox.push(ToStaff::ClientVisit(ClientVisit {
                source,
                seq,
                clock,
                visit: CareVisit::of(visit),
            }));
        }
    }

    /// Tells the staff stage how far this partition's time-report watermark
    /// has come, at most once per [`STAFF_PROGRESS_STEP_SECS`] of event time.
    ///
    /// The bound: every visit this partition sends from now on has an
    /// arrival clock (see [`StaffVisit::clock`]) at or after it. A visit
    /// sent is on time (its check-in at or after the watermark) and its
    /// clock is never behind the newest heartbeat; so the bound is the
    /// later of the two.
    fn send_progress(&mut self) {
        let Some(watermark) = self.state.visits_watermark.current().max(self.state.heartbeat_clock) else { return };
        if self.state.progress_sent.is_some_and(|sent| watermark.0 < sent.0 + STAFF_PROGRESS_STEP_SECS) {
            return;
        }
        self.state.progress_sent = Some(watermark);
        self.state
            .staff_outbox
            .push(ToStaff::Progress(StaffProgress { source: self.state.partition.index, watermark }));
    }

    /// Takes the records for the staff stage produced since the last call:
    /// visits (to the partition of their staff key) and progress (to every
    /// partition), in order.
    pub fn take_staff_records(&mut self) -> Vec<ToStaff> {
        std::mem::take(&mut self.state.staff_outbox)
    }

    /// Takes one record from the staff stage: a finding for one of this
    /// partition's providers, held until every staff partition's frontier
    /// has passed its decision time, or a frontier, which hands the
    /// findings it releases to the episodes in decision-time order and
    /// resolves the staff rules' quiet episodes. Pushes the alerts.
    pub fn offer_staff(&mut self, message: FromStaff, alerts: &mut Vec<Alert>) {
        let before = alerts.len();
        match message {
            FromStaff::Finding(f) => {
                if !self.first_from_staff(f.source, f.seq) {
                    return;
                }
                let key = (f.decided_at, f.trigger.0, f.trigger.1, f.source, f.seq);
                self.state.staff_inbox.insert(key, f.finding);
            }
            FromStaff::Question(q) => {
                if !self.first_from_staff(q.source, q.seq) {
                    return;
                }
                let key = (q.decided_at, q.trigger.0, q.trigger.1, q.source, q.seq);
                self.state.staff_questions.insert(key, q.question);
            }
            FromStaff::Frontier(StaffFrontier { source, through }) => {
                let Some(frontier) = self.state.staff_frontiers.get_mut(source as usize) else { return };
                *frontier = Some(frontier.map_or(through, |f| f.max(through)));
                let Some(through) = self.state.staff_frontiers.iter().copied().min().flatten() else { return };
                if self.state.staff_through.is_some_and(|t| t >= through) {
                    return;
                }
                self.state.staff_through = Some(through);
                while let Some(entry) = self.state.staff_inbox.first_entry() {
                    if entry.key().0 >= through {
                        break;
                    }
                    let decided = entry.key().0;
                    let finding = entry.remove();
                    self.state.stats.findings += 1;
                    self.state.episodes.observe(finding, decided, alerts);
                }
                // A question is answered at the later of its visit's clock
                // and its check-in plus the grace (as a visit's reference
                // check), once the reference data is known through that.
                let grace = self.config.reference.visit_grace_secs();
                while let Some(entry) = self.state.staff_questions.first_entry() {
                    if entry.key().0 >= through {
                        break;
                    }
                    let (key, question) = entry.remove_entry();
                    let judged = key.0.max(question.check_in.plus_secs(grace));
                    self.state.grant_checks.insert((judged, key), question);
                }
                self.state.episodes.resolve_settled(self.staff_settled(through), RuleStage::Staff, alerts);
            }
        }
        self.state.stats.alerts += (alerts.len() - before) as u64;
    }

    /// Whether a finding or question numbered `seq` by staff partition
    /// `source` is new (findings and questions share the numbering), and
    /// takes it if so; a restarted staff partition sends them again.
    fn first_from_staff(&mut self, source: u32, seq: (i64, u32)) -> bool {
        let Some(applied) = self.state.staff_applied.get_mut(source as usize) else { return false };
        if applied.is_some_and(|a| seq <= a) {
            return false;
        }
        *applied = Some(seq);
        true
    }

    fn process_invoice(&mut self, invoice: &Invoice, alerts: &mut Vec<Alert>) -> Disposition {
        // A period that ends long after the invoice would wait for its time
        // reports for ever.
        let rejection = self.ahead_of_source(Input::Invoices, invoice.issued_at).or_else(|| {
            self.after_own(invoice.period_end, invoice.issued_at, crate::decode::reason::PERIOD_END_AFTER_ISSUE)
        });
        if let Some(rejection) = rejection {
            self.state.stats.implausible += 1;
            return Disposition::Rejected(rejection);
        }
        if let Some(rejection) = self.over_limit(invoice.provider_key(), None, Some(invoice)) {
            self.state.stats.over_limit += 1;
            return Disposition::Rejected(rejection);
        }
        if invoice.issued_at > self.rules_known_through {
            return Disposition::Held(invoice.issued_at);
        }
        if let Lateness::Late { behind_secs, watermark } = self.state.invoices_watermark.observe(invoice.issued_at) {
            self.state.stats.late_invoices += 1;
            return late(Input::Invoices, invoice.issued_at, watermark, behind_secs);
        }
        self.state.now = self.state.now.max(invoice.issued_at);
        let horizon = self.config.horizon_days as usize;
        let key = invoice.provider_key();
        self.wake(key, invoice.issued_at);
        let provider = self.state.providers.entry(key).or_insert_with(|| Provider::new(invoice.municipality, horizon));
        if provider.invoices_seen.contains_key(&invoice.invoice_id) {
            self.state.stats.duplicate_invoices += 1;
            return Disposition::Duplicate;
        }
        provider.invoices_seen.insert(invoice.invoice_id.clone(), invoice.issued_at);
        provider.last_event = provider.last_event.max(invoice.issued_at);
        self.state.stats.invoices += 1;
        let complete = self.state.visits_watermark.current().is_some_and(|w| w >= invoice.period_end);
        if complete {
            self.reconcile(invoice, alerts);
        } else {
            provider.pending_invoices.push(invoice.clone());
        }
        Disposition::Applied
    }

    /// Starts a provider that has been dormant for longer than the horizon
    /// afresh, as if it had been evicted: whether its eviction ran before
    /// this event arrived depends on the other partitions' progress, and
    /// the state it gets must not.
    fn wake(&mut self, id: ProviderKey, at: EventTime) {
        let horizon = self.config.horizon_days as i32;
        let dormant = self.state.providers.get(&id).is_some_and(|p| {
            p.last_event.0 < at.day().plus(-horizon).start().0
                && p.pending_invoices.is_empty()
                && p.reference_visits.is_empty()
                && !self.state.episodes.has_open(id)
                && !self.state.grant_checks.values().any(|q| q.provider == id)
        });
        if dormant && let Some(p) = self.state.providers.remove(&id) {
            self.state.clients_held -= p.clients.len();
        }
    }

    /// Runs the invoice rules over an invoice whose period is complete.
    fn reconcile(&mut self, invoice: &Invoice, alerts: &mut Vec<Alert>) {
        let Some(provider) = self.state.providers.get_mut(&invoice.provider_key()) else { return };
        // Decided when the period is complete, whenever that was observed.
        let decided = invoice.issued_at.max(invoice.period_end.plus_secs(self.config.visit_lateness_secs()));
        let mut ctx = InvoiceContext { invoice, provider, now: decided };
        let (version, rules) = self.rules.at(decided, RuleStage::Provider);
        let before = self.findings.len();
        for rule in rules {
            rule.on_invoice(&mut ctx, &mut self.findings);
        }
        stamp(&mut self.findings[before..], version);
        self.flush_findings(decided, alerts);
    }

    /// Hands the findings made so far to the episodes, decided at `at`.
    fn flush_findings(&mut self, at: EventTime, alerts: &mut Vec<Alert>) {
        self.state.stats.findings += self.findings.len() as u64;
        for finding in self.findings.drain(..) {
            self.state.episodes.observe(finding, at, alerts);
        }
    }

    /// Closes every local day that ended before the time-report watermark.
    fn close_days(&mut self, alerts: &mut Vec<Alert>) {
        let Some(watermark) = self.state.visits_watermark.current() else { return };
        if watermark < self.state.next_close_at {
            return;
        }
        // Day d is complete once the watermark reaches the start of d + 1.
        let last_complete = watermark.day().plus(-1);
        let first = match self.state.closed_through {
            None => {
                // Nothing before the first event: start closing from here.
                self.state.closed_through = Some(last_complete);
                self.state.next_close_at = last_complete.plus(2).start();
                return;
            }
            Some(closed) if closed >= last_complete => return,
            Some(closed) => closed.plus(1),
        };
        // After a long silence, only the days within the horizon matter.
        let first = first.max(last_complete.plus(1 - self.config.horizon_days as i32));
        for d in first.0..=last_complete.0 {
            self.close_day(Day(d), alerts);
        }
        self.state.first_closed.get_or_insert(first);
        self.state.closed_through = Some(last_complete);
        self.state.next_close_at = last_complete.plus(2).start();
    }

    /// Active clients of each provider (sorted by id) on `day`: per
    /// service type, and of any service type.
    fn active_clients(&self, ids: &[ProviderKey], day: Day) -> Vec<([u32; SERVICES], u32)> {
        let activity_days = self.config.activity_days;
        ids.iter()
            .map(|id| {
                let mut by_service = [0u32; SERVICES];
                let mut any = 0u32;
                if let Some(p) = self.state.providers.get(id) {
                    for c in p.clients.values() {
                        let mut seen = false;
                        for s in ServiceType::ALL {
                            if c.active(s, day, activity_days) {
                                by_service[s.index()] += 1;
                                seen = true;
                            }
                        }
                        any += u32::from(seen);
                    }
                }
                (by_service, any)
            })
            .collect()
    }

    fn sorted_providers(&self) -> Vec<ProviderKey> {
        let mut ids: Vec<ProviderKey> = self.state.providers.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The partition's close of local day `day`: its providers' samples and
    /// active clients go out as a [`PeerDay`], and invoices whose period is
    /// now complete are reconciled. What needs every partition's samples
    /// (peer and day rules, resolution, eviction) waits for the day to be
    /// final: [`Engine::decide`].
    fn close_day(&mut self, day: Day, alerts: &mut Vec<Alert>) {
        self.state.stats.days_closed += 1;
        let ids = self.sorted_providers();
        let active = self.active_clients(&ids, day);
        let mut by_municipality: BTreeMap<MunicipalityCode, u64> = BTreeMap::new();
        for (id, (_, any)) in ids.iter().zip(&active) {
            let Some(p) = self.state.providers.get_mut(id) else { continue };
            if let Some(b) = p.days.bucket_mut(day) {
                b.active_clients = *any;
            }
            *by_municipality.entry(p.municipality).or_default() += u64::from(*any);
        }

        // Samples, read from the windows up to `day` only: the same
        // whenever this close runs.
        let now = day.plus(1).start().plus_secs(self.config.visit_lateness_secs());
        let none = BTreeMap::new();
        let days = DayClose {
            day,
            activity_days: self.config.activity_days,
            now,
            ids: &ids,
            active: &active,
            municipalities: &none,
            reference: None,
        };
        let mut samples = PeerTable::default();
        let (_, rules) = self.rules.at(now, RuleStage::Provider);
        days.for_each(&mut self.state.providers, &PeerTable::default(), |ctx| {
            for rule in rules {
                rule.record_peer_samples(ctx, &mut samples);
            }
        });
        let peer_day = PeerDay {
            partition: self.state.partition.index,
            partitions: self.state.partition.count,
            day,
            samples: samples.samples().collect(),
            active_clients: by_municipality.into_iter().filter(|(_, n)| *n > 0).collect(),
        };
        if self.config.reference.enabled {
            self.state.unpublished.push_back(peer_day);
        } else {
            self.state.outbox.push(peer_day);
        }

        // Invoices whose period is now complete, in arrival order per provider.
        if let Some(watermark) = self.state.visits_watermark.current() {
            for id in &ids {
                let ready: Vec<Invoice> = match self.state.providers.get_mut(id) {
                    Some(p) if p.pending_invoices.iter().any(|i| i.period_end <= watermark) => {
                        let (ready, waiting) =
                            p.pending_invoices.drain(..).partition(|i: &Invoice| i.period_end <= watermark);
                        p.pending_invoices = waiting;
                        ready
                    }
                    _ => continue,
                };
                for invoice in &ready {
                    self.reconcile(invoice, alerts);
                }
            }
        }
    }

    /// Decides every local day that is final in `table` (closed by every
    /// partition) and closed here: peer and day rules on the final
    /// statistics, resolution of quiet episodes, eviction. Pushes the
    /// alerts onto `alerts`. The shell calls it whenever days became final,
    /// the reference data moved on, or a closed day is ready to be
    /// published ([`Engine::peer_day_ready`]; the service checks on its
    /// tick): with reference data on, it first publishes the closed days
    /// the reference data is known through the decision time of.
    pub fn decide(&mut self, table: &GlobalPeerTable, reference: &ReferenceTable, alerts: &mut Vec<Alert>) {
        let before = alerts.len();
        self.publish_reference_days(reference);
        // First the visits the reference data is now known through: every
        // visit of a day decided below is taken before its day's decision.
        self.check_reference_visits(reference, alerts);
        self.check_grant_questions(reference, alerts);
        let (Some(final_through), Some(closed)) = (table.final_through(), self.state.closed_through) else { return };
        let mut through = final_through.min(closed);
        if reference.in_use() {
            // Day d is decided at the start of d + 1 plus the allowed
            // lateness: the reference data must be known through then, and
            // through the `core.reference.visit_grace` after it, so that
            // every visit of the day has been judged by the visit rules
            // (an on-time visit of day d is judged before the start of
            // d + 1 plus the lateness plus the grace: see `apply_visit`).
            let Some(known) = reference.known_through() else { return };
            let wait = self.config.visit_lateness_secs().saturating_add(self.config.reference.visit_grace_secs());
            let known_day = known.plus_secs(-wait).day().plus(-1);
            through = through.min(known_day);
        }
        let first = match (self.state.decided_through, self.state.first_closed) {
            (Some(d), _) => d.plus(1),
            (None, Some(f)) => f,
            (None, None) => return,
        };
        let first = first.max(through.plus(1 - self.config.horizon_days as i32));
        for d in first.0..=through.0 {
            self.decide_day(Day(d), table, reference, alerts);
        }
        if first <= through {
            self.state.decided_through = Some(through);
        }
        self.state.stats.alerts += (alerts.len() - before) as u64;
    }

    /// Completes and publishes the closed days the reference data is now
    /// known through the decision time of (the start of the next day plus
    /// the allowed lateness and the `core.reference.visit_grace`, as
    /// [`Engine::decide`] waits for): each provider's
    /// [`Rule::record_reference_samples`] are added to the samples taken
    /// at the close, with the reference data as registered by the day's
    /// decision time, so the same whenever this runs. The global table
    /// makes no day final before every partition published it, which
    /// the day's decision waits for anyway.
    fn publish_reference_days(&mut self, reference: &ReferenceTable) {
        while self.peer_day_ready(reference) {
            let Some(mut peer_day) = self.state.unpublished.pop_front() else { break };
            let day = peer_day.day;
            let now = day.plus(1).start().plus_secs(self.config.visit_lateness_secs());
            let ids = self.sorted_providers();
            let active = self.active_clients(&ids, day);
            let none = BTreeMap::new();
            let days = DayClose {
                day,
                activity_days: self.config.activity_days,
                now,
                ids: &ids,
                active: &active,
                municipalities: &none,
                reference: Some(reference),
            };
            let mut samples = PeerTable::default();
            for (group, provider, value) in peer_day.samples.drain(..) {
                samples.record(group, provider, value);
            }
            let (_, rules) = self.rules.at(now, RuleStage::Provider);
            days.for_each(&mut self.state.providers, &PeerTable::default(), |ctx| {
                for rule in rules {
                    rule.record_reference_samples(ctx, &mut samples);
                }
            });
            peer_day.samples = samples.samples().collect();
            self.state.outbox.push(peer_day);
        }
    }

    /// Whether a closed day waits to be published that the reference data
    /// is known far enough for: the shell then calls [`Engine::decide`]
    /// (a day closed after the reference data moved on waits for no more
    /// of it).
    pub fn peer_day_ready(&self, reference: &ReferenceTable) -> bool {
        let Some(front) = self.state.unpublished.front() else { return false };
        let Some(known) = reference.known_through().filter(|_| reference.in_use()) else { return false };
        let wait = self.config.visit_lateness_secs().saturating_add(self.config.reference.visit_grace_secs());
        front.day.plus(1).start().plus_secs(wait) <= known
    }

    /// Runs [`Rule::on_reference_visit`] over the waiting visits whose
    /// judging time (see [`ReferenceVisit::decided`]) the reference data is
    /// known through, each provider's in arrival order (providers in key
    /// order), each visit's findings decided at its judging time.
    ///
    /// The findings' order per rule and provider, and so the episodes, is
    /// the same in every partitioning: a provider's visits arrive in the
    /// same order in all of them. And no finding is decided before a
    /// settled resolution time: a visit still waiting after this is judged
    /// after the reference data's known-through time, which is
    /// past every day decided so far (see [`Engine::decide`]).
    fn check_reference_visits(&mut self, reference: &ReferenceTable, alerts: &mut Vec<Alert>) {
        if !reference.in_use() || self.state.reference_visits_waiting == 0 {
            return;
        }
        let Some(known) = reference.known_through() else { return };
        let mut ids: Vec<ProviderKey> = self
            .state
            .providers
            .iter()
            .filter(|(_, p)| p.reference_visits.front().is_some_and(|v| v.decided <= known))
            .map(|(k, _)| *k)
            .collect();
        ids.sort_unstable();
        for id in ids {
            let Some(provider) = self.state.providers.get_mut(&id) else { continue };
            while provider.reference_visits.front().is_some_and(|v| v.decided <= known) {
                let Some(visit) = provider.reference_visits.pop_front() else { break };
                self.state.reference_visits_waiting -= 1;
                self.state.stats.reference_visits_checked += 1;
                let decided = visit.decided;
                let mut ctx = ReferenceVisitContext {
                    visit: &visit,
                    day: visit.check_in.day(),
                    provider_id: id.provider,
                    provider: &mut *provider,
                    reference,
                    now: decided,
                };
                let (version, rules) = self.rules.at(decided, RuleStage::Provider);
                let before = self.findings.len();
                for rule in rules {
                    rule.on_reference_visit(&mut ctx, &mut self.findings);
                }
                stamp(&mut self.findings[before..], version);
                self.state.stats.findings += self.findings.len() as u64;
                for finding in self.findings.drain(..) {
                    self.state.episodes.observe(finding, decided, alerts);
                }
            }
        }
    }

    /// How far the staff rules' episodes are settled with the staff stage
    /// passed `through`: not past a question still waiting for the
    /// reference data, whose finding would be decided at its judging time
    /// (so an episode is never resolved before a finding that belongs in
    /// it, however late the reference data comes).
    fn staff_settled(&self, through: EventTime) -> EventTime {
        self.state.grant_checks.first_key_value().map_or(through, |((judged, _), _)| through.min(*judged))
    }

    /// Answers the client rules' questions ([`Rule::grant_question`]) the
    /// reference data is known through the judging time of, in judging
    /// order, each with the rules of its judging time; their findings are
    /// decided at it.
    fn check_grant_questions(&mut self, reference: &ReferenceTable, alerts: &mut Vec<Alert>) {
        if self.state.grant_checks.is_empty() || !reference.in_use() {
            return;
        }
        let Some(known) = reference.known_through() else { return };
        let horizon = self.config.horizon_days as usize;
        while let Some(entry) = self.state.grant_checks.first_entry() {
            if entry.key().0 > known {
                break;
            }
            let ((judged, _), question) = entry.remove_entry();
            let key = question.provider;
            let provider = self.state.providers.entry(key).or_insert_with(|| Provider::new(key.municipality, horizon));
            let mut ctx = GrantQuestionContext { question: &question, provider, reference, now: judged };
            let (version, rules) = self.rules.at(judged, RuleStage::Staff);
            let before = self.findings.len();
            for rule in rules {
                rule.on_grant_question(&mut ctx, &mut self.findings);
            }
            stamp(&mut self.findings[before..], version);
            self.flush_findings(judged, alerts);
        }
        if let Some(through) = self.state.staff_through {
            self.state.episodes.resolve_settled(self.staff_settled(through), RuleStage::Staff, alerts);
        }
    }

    fn decide_day(&mut self, day: Day, table: &GlobalPeerTable, reference: &ReferenceTable, alerts: &mut Vec<Alert>) {
        self.state.stats.days_decided += 1;
        let missing = FinalDay::default();
        let today = table.day(day).unwrap_or_else(|| {
            self.state.stats.peer_days_missing += 1;
            &missing
        });
        let yesterday = table.day(day.plus(-1));
        let ids = self.sorted_providers();
        let active = self.active_clients(&ids, day);
        let mut municipalities: BTreeMap<MunicipalityCode, MunicipalityDay> = BTreeMap::new();
        for (code, n) in &today.active_clients {
            municipalities.entry(*code).or_default().active_clients = *n;
        }
        for (code, n) in yesterday.map(|d| &d.active_clients).into_iter().flatten() {
            municipalities.entry(*code).or_default().active_clients_yesterday = *n;
        }
        // Day-close decisions are taken when the watermark passes the end of
        // the day: its end plus the allowed lateness, in event time.
        let now = day.plus(1).start().plus_secs(self.config.visit_lateness_secs());
        let days = DayClose {
            day,
            activity_days: self.config.activity_days,
            now,
            ids: &ids,
            active: &active,
            municipalities: &municipalities,
            reference: Some(reference),
        };
        let (version, rules) = self.rules.at(now, RuleStage::Provider);
        let before = self.findings.len();
        days.for_each(&mut self.state.providers, &today.peers, |ctx| {
            for rule in rules {
                rule.on_day_closed(ctx, &mut self.findings);
            }
        });
        stamp(&mut self.findings[before..], version);
        self.flush_findings(now, alerts);
        self.state.episodes.resolve_settled(
            now.plus_secs(-self.config.visit_lateness_secs()),
            RuleStage::Provider,
            alerts,
        );
        self.evict(day, &ids);
    }

    fn evict(&mut self, day: Day, ids: &[ProviderKey]) {
        let horizon = self.config.horizon_days as i32;
        let oldest_month = day.month().0 - CLIENT_MONTHS as i32 + 1;
        let oldest_invoice = day.plus(-(CLIENT_MONTHS as i32) * 31).start();
        for id in ids {
            let Some(p) = self.state.providers.get_mut(id) else { continue };
            let before = p.clients.len();
            p.clients
                .retain(|_, c| c.last_any() > day.0 - horizon || c.months.iter().any(|m| m.month.0 >= oldest_month));
            self.state.clients_held -= before - p.clients.len();
            p.rules.evict(day);
            p.recent_visits.forget_decided(day);
            p.rule_recent.iter_mut().for_each(|r| r.forget_decided(day));
            p.invoices_seen.retain(|_, issued| *issued >= oldest_invoice);
            let idle = p.clients.is_empty()
                && p.pending_invoices.is_empty()
                && p.reference_visits.is_empty()
                && p.last_event.0 < day.plus(-horizon).start().0
                && !self.state.episodes.has_open(*id)
                && !self.state.grant_checks.values().any(|q| q.provider == *id);
            if idle && let Some(p) = self.state.providers.remove(id) {
                self.state.clients_held -= p.clients.len();
            }
        }
    }
}

/// Applies a reference version from `source` to `table`: whether the
/// table's known-through time moved, or the rejection that dead-letters it
/// (reference data off, or the version is late).
pub fn apply_reference(
    table: &mut ReferenceTable,
    source: u32,
    record: &crate::model::reference::ReferenceRecord,
) -> Result<bool, Rejection> {
    use crate::decode::reason;
    if !table.in_use() {
        return Err(Rejection::new(
            reason::REFERENCE_DATA_OFF,
            format!("{} {}: reference data is off (core.reference.enabled)", record.fact.kind().name(), record.id),
        ));
    }
    table.apply(source, record).map_err(|e| match e {
        ReferenceError::Late { .. } => {
            Rejection::new(reason::REFERENCE_LATE, format!("{} {}: {e}", record.fact.kind().name(), record.id))
        }
        ReferenceError::Source(_) => Rejection::new(reason::REFERENCE_LATE, e.to_string()),
    })
}

/// The engines of a one-partition topology: the provider stage's engine,
/// the global peer table it alone feeds and the one partition of the staff
/// stage. What tests, benchmarks and tools use to run the core over events
/// without a shell: every event's closed days go to the table, its visits
/// to the staff stage and the staff findings back, and what became final
/// is decided, as the partition drivers and the service do.
pub struct Standalone {
    /// The engine (replace it with a restored one to continue from a snapshot).
    pub engine: Engine,
    /// Its peer days (not in the engine's snapshot: on its own topic in the service).
    pub peers: GlobalPeerTable,
    /// The staff stage (its own state and snapshot in the service).
    pub staff: StaffStage,
    /// The reference data (one source: the events themselves), as
    /// `core.reference` asks.
    pub reference: ReferenceTable,
    /// Records the staff stage has taken (its input offsets).
    staff_records: i64,
    from_staff: Vec<FromStaff>,
    /// Peer days published, and their bytes as the service writes them (JSON).
    published: (u64, u64),
}

impl Standalone {
    /// Fresh engines of the only partition.
    pub fn new(config: CoreConfig) -> Self {
        Standalone {
            staff: StaffStage::new(config.clone(), StagePartition::ONLY, 1),
            reference: config.reference.table(1),
            engine: Engine::new(config),
            peers: GlobalPeerTable::new(1),
            staff_records: 0,
            from_staff: Vec::new(),
            published: (0, 0),
        }
    }

    /// Adds a version of the rules' configuration to both stages (see
    /// [`crate::rules::timeline`]).
    pub fn add_rules_version(&mut self, version: &RulesVersion) -> Result<(), TimelineError> {
        self.engine.rules_timeline_check(version)?;
        self.engine.add_rules_version(version)?;
        self.staff.add_rules_version(version)
    }

    /// Processes one event and what follows from it; pushes alerts.
    pub fn process(&mut self, event: &DomainEvent, alerts: &mut Vec<Alert>) -> Disposition {
        let (disposition, moved) = match event {
            DomainEvent::Reference(record) => match apply_reference(&mut self.reference, 0, record) {
                Ok(moved) => (Disposition::Applied, moved),
                Err(rejection) => (Disposition::Rejected(rejection), false),
            },
            DomainEvent::Heartbeat(at) => {
                let moved = self.reference.in_use() && self.reference.heartbeat(0, *at).unwrap_or(false);
                (self.engine.process(event, alerts), moved)
            }
            _ => (self.engine.process(event, alerts), false),
        };
        self.follow(moved, alerts);
        disposition
    }

    /// A heartbeat of the reference data's one source (it has sent every
    /// version registered before `at`), and the days that lets the engine
    /// decide; pushes alerts.
    pub fn reference_heartbeat(&mut self, at: EventTime, alerts: &mut Vec<Alert>) {
        let moved = self.reference.in_use() && self.reference.heartbeat(0, at).unwrap_or(false);
        self.follow(moved, alerts);
    }

    /// A source heartbeat on one input only (as on one topic's partition),
    /// and what follows from it; pushes alerts.
    pub fn heartbeat(&mut self, input: Input, at: EventTime, alerts: &mut Vec<Alert>) {
        let _applied = self.engine.heartbeat(input, at, alerts);
        self.follow(false, alerts);
    }

    /// The peer days and staff records the engine produced: to the table
    /// and the staff stage, and what they give back; and the days the
    /// reference data's progress (`reference_moved`) lets it decide.
    fn follow(&mut self, reference_moved: bool, alerts: &mut Vec<Alert>) {
        let mut finalised = reference_moved || self.engine.peer_day_ready(&self.reference);
        loop {
            for day in self.engine.take_peer_days() {
                self.published.0 += 1;
                self.published.1 += serde_json::to_vec(&day).map_or(0, |v| v.len() as u64);
                // The days of the only partition: never another stage's.
                finalised |= self.peers.apply(day).unwrap_or(false);
            }
            if !finalised {
                break;
            }
            // A decision can publish days (those waiting for the reference
            // data), which can make more days final.
            finalised = false;
            self.engine.decide(&self.peers, &self.reference, alerts);
            self.reference.prune_behind(self.engine.config().reference_keep_days());
        }
        for record in self.engine.take_staff_records() {
            self.staff.offer(record, self.staff_records, &mut self.from_staff);
            self.staff_records += 1;
        }
        for message in self.from_staff.drain(..) {
            self.engine.offer_staff(message, alerts);
        }
    }

    /// Peer days published to the global table so far, and their bytes as
    /// the service writes them to the peer-days topic (JSON).
    pub fn published_peer_days(&self) -> (u64, u64) {
        self.published
    }

    /// Sizes of the state, the staff stage's staff members included.
    pub fn state_size(&self) -> StateSize {
        StateSize { staff: self.staff.size().0, ..self.engine.state_size() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::AlertStatus;
    use crate::rules::testkit::{Scenario, provider};

    fn rejected(d: Disposition) -> &'static str {
        match d {
            Disposition::Rejected(r) => r.reason,
            other => panic!("not rejected: {other:?}"),
        }
    }

    /// A date typed wrong (2099) is dead-lettered and moves nothing: the
    /// watermark stays, the next day's visits are on time, and no day
    /// closes up to 2099.
    #[test]
    fn an_event_time_far_ahead_of_the_source_is_implausible_and_moves_nothing() {
        use crate::decode::reason;
        let mut s = Scenario::only("staff-double-booking");
        s.visit().staff(1).client(1).day(2026, 3, 2).at(9, 0).send();
        s.send(DomainEvent::Heartbeat(s.engine().now().unwrap()));
        let watermark = s.engine().watermark();
        let closed = s.engine().closed_through();
        let far = s.visit().staff(2).client(2).day(2099, 6, 1).at(9, 0).build();
        assert_eq!(rejected(s.send(DomainEvent::Visit(far))), reason::EVENT_TIME_AHEAD_OF_SOURCE);
        let invoice = s.invoice(2099, 5).build();
        assert_eq!(rejected(s.send(DomainEvent::Invoice(invoice))), reason::EVENT_TIME_AHEAD_OF_SOURCE);
        assert_eq!((s.engine().watermark(), s.engine().closed_through()), (watermark, closed));
        // Within the allowed two days: applied.
        s.visit().staff(3).client(3).day(2026, 3, 3).at(20, 0).send();
        assert_eq!(s.engine().stats().implausible, 2);
        // A heartbeat moves the source's clock: the same time is then plausible.
        s.send(DomainEvent::Heartbeat(EventTime(s.engine().now().unwrap().0 + 10 * 86_400)));
        s.visit().staff(4).client(4).day(2026, 3, 14).at(9, 0).send();
    }

    /// A flood of new keys stops at the caps: the record that would grow
    /// the state beyond one is dead-lettered with its reason and changes
    /// nothing; what is held already goes on as before.
    #[test]
    fn new_keys_beyond_the_caps_are_rejected_and_change_nothing() {
        use crate::config::StateLimits;
        use crate::decode::reason;
        let limits = StateLimits {
            providers: 2,
            clients_per_provider: 2,
            clients: 3,
            pending_invoices_per_provider: 1,
            staff: 1,
        };
        let mut s = Scenario::only_with_limits("staff-double-booking", limits);
        s.visit().provider(0).client(1).staff(7).day(2026, 3, 2).at(8, 0).send();
        s.visit().provider(1).client(1).staff(7).day(2026, 3, 2).at(10, 0).send();
        let third = s.visit().provider(2).client(1).staff(7).day(2026, 3, 2).at(12, 0).build();
        assert_eq!(rejected(s.send(DomainEvent::Visit(third))), reason::STATE_LIMIT_PROVIDERS);
        s.visit().provider(0).client(2).staff(7).day(2026, 3, 2).at(13, 0).send();
        let third_client = s.visit().provider(0).client(3).staff(7).day(2026, 3, 2).at(14, 0).build();
        assert_eq!(rejected(s.send(DomainEvent::Visit(third_client))), reason::STATE_LIMIT_CLIENTS);
        // A known client of a full provider still counts.
        s.visit().provider(0).client(1).staff(7).day(2026, 3, 2).at(15, 0).send();
        // Three clients in the partition: provider 1's second is one too many.
        let fourth = s.visit().provider(1).client(5).staff(7).day(2026, 3, 2).at(16, 0).build();
        assert_eq!(rejected(s.send(DomainEvent::Visit(fourth))), reason::STATE_LIMIT_CLIENTS);
        assert_eq!(s.state_size().clients, 3);

        // The staff stage holds one staff member: a second one's visits at
        // two homes at once are left out (and counted), the first one's not.
        s.visit().provider(0).client(1).staff(8).day(2026, 3, 3).at(9, 0).minutes(60).send();
        s.visit().provider(0).client(2).staff(8).day(2026, 3, 3).at(9, 15).minutes(60).send();
        s.visit().provider(0).client(1).staff(7).day(2026, 3, 3).at(11, 0).minutes(60).send();
        s.visit().provider(0).client(2).staff(7).day(2026, 3, 3).at(11, 15).minutes(60).send();
        s.settle();
        assert_eq!(s.staff_stats().over_limit, 2, "{:?}", s.staff_stats());
        assert_eq!(s.state_size().staff, 1);
        assert_eq!(s.alerts().len(), 1, "staff member 7's double booking, not 8's");

        // One invoice of a provider may wait for its period; a second not.
        s.heartbeat(Input::Invoices, EventTime(Day::from_ymd(2026, 4, 5).start().0));
        s.invoice(2026, 3).lines(vec![(1, 60)]).send();
        let second = s.invoice(2026, 3).id("inv-second").lines(vec![(1, 60)]).build();
        assert_eq!(rejected(s.send(DomainEvent::Invoice(second))), reason::STATE_LIMIT_PENDING_INVOICES);
        assert_eq!(s.state_size().providers, 2);
        assert_eq!(s.state_size().pending_invoices, 1);
        assert_eq!(s.engine().stats().over_limit, 4);
        // The count of clients held survives a restart.
        s.restart();
        let fifth = s.visit().provider(1).client(6).staff(7).day(2026, 3, 4).at(16, 0).build();
        assert_eq!(rejected(s.send(DomainEvent::Visit(fifth))), reason::STATE_LIMIT_CLIENTS);
    }

    /// With reference data on, a day is decided once the reference data is
    /// known through its decision time (the start of the next day plus the
    /// allowed lateness) and the visit rules' grace after it, not before;
    /// without it, as soon as it is final.
    #[test]
    fn a_day_is_decided_once_the_reference_data_is_known_through_its_decision() {
        let run = |reference: bool, through: (u32, u32)| {
            let mut s = if reference {
                Scenario::with_reference("billing-during-absence")
            } else {
                Scenario::only("billing-during-absence")
            };
            for day in 1..=20 {
                s.visit().client(1).day(2026, 3, day).at(9, 0).send();
            }
            s.reference_through(2026, through.0, through.1);
            s.engine().decided_through()
        };
        // Closed through the 16th (the 20th less three days of lateness).
        let closed = Some(Day::from_ymd(2026, 3, 16));
        assert_eq!(run(false, (3, 1)), closed, "nothing waits without reference data");
        // Known through the 10th: the 5th is decided; the 6th's decision (at
        // the 7th plus 3 days) waits for the 6 h of grace after it.
        assert_eq!(run(true, (3, 10)), Some(Day::from_ymd(2026, 3, 5)));
        assert_eq!(run(true, (3, 11)), Some(Day::from_ymd(2026, 3, 6)));
        assert_eq!(run(true, (4, 30)), closed, "known far ahead: as without");
        let mut s = Scenario::with_reference("billing-during-absence");
        s.visit().client(1).day(2026, 3, 9).at(9, 0).send();
        s.advance_to(2026, 3, 20);
        assert_eq!(s.engine().decided_through(), None, "a source that said nothing holds every day");
    }

    /// Without a heartbeat, a record's own times still bound it: a time
    /// report checked in days after it was reported, an invoice for a
    /// period ending years after its issue (it would wait for ever).
    #[test]
    fn a_record_far_ahead_of_its_own_report_or_issue_is_implausible() {
        use crate::decode::reason;
        let mut s = Scenario::only("invoiced-above-performed");
        let mut visit = s.visit().client(1).day(2026, 3, 9).at(9, 0).build();
        visit.reported_at = EventTime(visit.check_in.0 - 3 * 86_400);
        assert_eq!(rejected(s.send(DomainEvent::Visit(visit))), reason::CHECK_IN_AFTER_REPORT);
        let mut invoice = s.invoice(2026, 2).lines(vec![(1, 60)]).build();
        invoice.period_end = crate::model::Month::from_ym(2099, 5).end();
        assert_eq!(rejected(s.send(DomainEvent::Invoice(invoice))), reason::PERIOD_END_AFTER_ISSUE);
        assert_eq!(s.state_size().pending_invoices, 0, "nothing waits for 2099");
        assert_eq!(s.engine().stats().implausible, 2);
    }

    #[test]
    fn a_silent_providers_episode_resolves_as_the_partitions_watermark_passes() {
        let mut s = Scenario::only("night-visits-private-provider");
        for day in 2..=4 {
            s.visit().provider(1).client(u64::from(day)).day(2026, 3, day).at(2, 0).send();
        }
        // Provider 1 falls silent; provider 2 keeps the partition's time moving.
        for day in 5..=31 {
            s.visit().provider(2).day(2026, 3, day).at(10, 0).send();
        }
        let of_1: Vec<_> = s.alerts().into_iter().filter(|a| a.provider == provider(1)).map(|a| a.status).collect();
        assert_eq!(of_1, vec![AlertStatus::Opened, AlertStatus::Resolved]);
    }

    #[test]
    fn an_event_beyond_the_allowed_lateness_is_reported_late_and_not_applied() {
        let mut s = Scenario::only("night-visits-private-provider");
        s.visit().day(2026, 3, 10).at(10, 0).send();
        let late = s.visit().day(2026, 3, 6).at(23, 0).build(); // 3 days 11 hours behind
        let d = s.send(DomainEvent::Visit(late));
        let Disposition::Late(l) = d else { panic!("expected late, got {d:?}") };
        assert_eq!((l.input, l.behind_secs), (Input::TimeReports, 11 * 3600));
        assert_eq!(s.engine().stats().visits, 1);
        assert_eq!(s.engine().stats().late_visits, 1);
    }

    #[test]
    fn an_invoice_waits_until_its_periods_time_reports_are_complete() {
        let mut s = Scenario::only("phantom-clients");
        s.visit().client(1).day(2026, 3, 31).at(20, 0).send();
        // Issued on 5 April, when the watermark is still in March: time
        // reports of March may still arrive.
        s.invoice(2026, 3).lines(vec![(2, 600)]).send();
        assert_eq!(s.state_size().pending_invoices, 1);
        assert!(s.alerts().is_empty());
        s.advance_to(2026, 4, 4); // watermark passes 1 April 00:00 local
        assert_eq!(s.state_size().pending_invoices, 0);
        assert_eq!(s.alerts().len(), 1, "reconciled once the period is complete");
    }

    #[test]
    fn staff_and_clients_beyond_the_horizons_are_evicted() {
        let mut s = Scenario::only("staff-double-booking");
        s.visit().provider(1).staff(1).client(1).day(2026, 1, 5).at(9, 0).send();
        s.visit().provider(1).staff(2).client(2).day(2026, 1, 5).at(9, 0).send();
        s.settle();
        assert_eq!(s.state_size().staff, 2, "in the staff stage");
        s.advance_to(2026, 2, 20); // staff horizon 28 days
        s.settle();
        assert_eq!(s.state_size().staff, 1, "only the clock's staff member is left");
        s.advance_to(2026, 6, 1); // provider horizon 90 days, four months of client history
        assert_eq!(s.state_size().providers, 1, "provider 1 evicted, the clock's provider kept");
    }
}
