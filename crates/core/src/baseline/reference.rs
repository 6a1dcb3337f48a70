//! The global reference table: every version of every fact of the
//! reference data (granted hours, absences, the provider register), read
//! by every instance, and asked "as of" an event time.
//!
//! # One answer
//!
//! Reference data comes from other systems at its own pace: a hospital
//! stay may be registered days after the admission, a decision revised
//! after the month it covers. A rule that compares what happened at time
//! `t` with the reference data asks the table *as of* `t`: the versions
//! registered (`recorded_at`) before `t`, the newest of each fact.
//! That answer does not depend on when the versions arrived, provided the
//! table has every version registered by `t` when it is asked, so the
//! engine decides a day only once the table is *known through* the day's
//! decision time ([`ReferenceTable::known_through`]), as it waits for the
//! global peer table's final days. A correction registered after a
//! decision changes the decisions taken after it, from its valid-from time
//! on: a hospital stay registered late is found at the first day decided
//! after its registration, for every visit day it covers.
//!
//! **Known through.** Each source (a partition of a reference topic in the
//! service; a file in a replay) moves on with its records and heartbeats,
//! as an input partition's watermark does: the later of its newest
//! heartbeat and its newest registration minus the allowed lateness. A
//! version registered before its source's progress is *late*: refused (the
//! caller dead-letters it), as a late event is. The table is known through
//! the minimum over its sources: a source that has said nothing holds
//! every decision back (waiting costs latency, never the answer).
//!
//! **Not in use.** Without reference data ([`ReferenceTable::unused`]) the
//! table is empty and known through the end of time: nothing waits.

use rustc_hash::FxHashMap;

use crate::model::reference::{Absence, Fact, GrantedHours, Permit, PermitStatus, ReferenceKind, ReferenceRecord};
use crate::model::{ClientKey, Day, EventId, EventTime, MunicipalityCode, ProviderId, ServiceType};

/// One version of a fact, as the table keeps it.
#[derive(Debug, Clone, PartialEq)]
struct Version {
    recorded_at: EventTime,
    retracted: bool,
    fact: Fact,
}

/// Why a version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Registered before its source's progress: the decisions it could
    /// change may be taken already.
    #[error("registered at {recorded_at}, {behind_secs} s behind its source's progress {progress}")]
    Late {
        /// Its registration time.
        recorded_at: EventTime,
        /// The source's progress when it came.
        progress: EventTime,
        /// How far behind.
        behind_secs: i64,
    },
    /// From a source the table does not have.
    #[error("source {0} out of range")]
    Source(u32),
}

/// One source of reference data (a partition of a reference topic; a file
/// in a replay) and how far it has come: the later of its newest heartbeat
/// and its newest registration less the allowed lateness. A version
/// registered before that is late. The table keeps one per source; the
/// service's partition that owns a source's partition judges the same
/// records with one of its own, so the two refuse the same versions (see
/// `PartitionDriver::offer_reference`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReferenceSource {
    progress: Option<EventTime>,
}

impl ReferenceSource {
    /// A source at `progress` (`None`: it has said nothing).
    pub fn at(progress: Option<EventTime>) -> Self {
        ReferenceSource { progress }
    }

    /// How far it has come; `None` while it has said nothing.
    pub fn progress(&self) -> Option<EventTime> {
        self.progress
    }

    /// A heartbeat: it has sent every version registered before `at`.
    pub fn heartbeat(&mut self, at: EventTime) {
        self.progress = Some(self.progress.map_or(at, |old| old.max(at)));
    }

    /// A version registered at `recorded_at`: on time, and the source moves
    /// on (to `recorded_at` less `lateness_secs`), or late.
    pub fn admit(&mut self, recorded_at: EventTime, lateness_secs: i64) -> Result<(), ReferenceError> {
        if let Some(progress) = self.progress
            && recorded_at < progress
        {
            return Err(ReferenceError::Late { recorded_at, progress, behind_secs: progress.0 - recorded_at.0 });
        }
        let moved_to = recorded_at.plus_secs(-lateness_secs.max(0));
        self.progress = Some(self.progress.map_or(moved_to, |old| old.max(moved_to)));
        Ok(())
    }
}

/// Counters of the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReferenceStats {
    /// Versions applied.
    pub applied: u64,
    /// Versions refused as late.
    pub late: u64,
    /// Versions dropped by [`ReferenceTable::prune`].
    pub pruned: u64,
}

/// The state of a provider in a municipality's register on a day, as of a
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermitState {
    /// The register has no entry for the provider in the municipality:
    /// nothing to judge by.
    Unknown,
    /// A valid period covers the day, and no suspension or revocation.
    Valid,
    /// The provider is in the register but not permitted on the day: the
    /// status that says so (`Revoked`, `Suspended`, or `Valid` when no
    /// period covers the day at all) and the entries behind it.
    NotPermitted(PermitStatus, Vec<EventId>),
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ReferenceTable {
    /// Every fact's versions, in the order registered (then arrival).
    facts: FxHashMap<EventId, Vec<Version>>,
    /// The facts (decisions, absences) that ever named a client.
    by_client: FxHashMap<ClientKey, Vec<EventId>>,
    /// The register entries that ever named a provider in a municipality.
    by_provider: FxHashMap<(ProviderId, MunicipalityCode), Vec<EventId>>,
    /// Per source: its progress (see the module documentation).
    progress: Vec<ReferenceSource>,
    /// Allowed lateness of a registration behind its source's newest one.
    lateness_secs: i64,
    /// Not in use: known through the end of time.
    unused: bool,
    /// The known-through day of the last [`Self::prune_behind`].
    pruned_at: Option<Day>,
    stats: ReferenceStats,
}

impl ReferenceTable {
    /// An empty table fed by `sources` sources, each allowing registrations
    /// `lateness_secs` behind its newest.
    pub fn new(sources: u32, lateness_secs: i64) -> Self {
        ReferenceTable {
            facts: FxHashMap::default(),
            by_client: FxHashMap::default(),
            by_provider: FxHashMap::default(),
            progress: vec![ReferenceSource::default(); sources.max(1) as usize],
            lateness_secs: lateness_secs.max(0),
            unused: false,
            pruned_at: None,
            stats: ReferenceStats::default(),
        }
    }

    /// A table without reference data: empty, known through the end of time.
    pub fn unused() -> Self {
        ReferenceTable { unused: true, ..ReferenceTable::new(1, 0) }
    }

    /// Whether reference data is in use.
    pub fn in_use(&self) -> bool {
        !self.unused
    }

    /// Counters so far.
    pub fn stats(&self) -> ReferenceStats {
        self.stats
    }

    /// Facts held, and their versions.
    pub fn size(&self) -> (usize, usize) {
        (self.facts.len(), self.facts.values().map(Vec::len).sum())
    }

    /// The table holds every version registered before this (the minimum of
    /// its sources' progress); `None` while a source has said nothing.
    pub fn known_through(&self) -> Option<EventTime> {
        if self.unused {
            return Some(EventTime(i64::MAX));
        }
        self.progress.iter().map(ReferenceSource::progress).min().flatten()
    }

    /// Whether the table can answer "as of `t`" for good.
    pub fn known_at(&self, t: EventTime) -> bool {
        self.known_through().is_some_and(|k| k >= t)
    }

    /// The progress of `source`.
    pub fn progress(&self, source: u32) -> Option<EventTime> {
        self.progress.get(source as usize).and_then(ReferenceSource::progress)
    }

    /// A heartbeat of `source`: it has sent every version registered before
    /// `at`. Returns whether the table's known-through time moved.
    pub fn heartbeat(&mut self, source: u32, at: EventTime) -> Result<bool, ReferenceError> {
        let before = self.known_through();
        self.progress.get_mut(source as usize).ok_or(ReferenceError::Source(source))?.heartbeat(at);
        Ok(self.known_through() != before)
    }

    /// Applies one version from `source`, or refuses it as late. Returns
    /// whether the table's known-through time moved.
    pub fn apply(&mut self, source: u32, record: &ReferenceRecord) -> Result<bool, ReferenceError> {
        let before = self.known_through();
        let lateness = self.lateness_secs;
        let p = self.progress.get_mut(source as usize).ok_or(ReferenceError::Source(source))?;
        if let Err(e) = p.admit(record.recorded_at, lateness) {
            self.stats.late += 1;
            return Err(e);
        }
        self.insert(record);
        Ok(self.known_through() != before)
    }

    fn insert(&mut self, record: &ReferenceRecord) {
        self.stats.applied += 1;
        match &record.fact {
            Fact::GrantedHours(GrantedHours { client, .. }) | Fact::Absence(Absence { client, .. }) => {
                let ids = self.by_client.entry(*client).or_default();
                if !ids.contains(&record.id) {
                    ids.push(record.id.clone());
                }
            }
            Fact::Permit(p) => {
                let ids = self.by_provider.entry((p.provider, p.municipality)).or_default();
                if !ids.contains(&record.id) {
                    ids.push(record.id.clone());
                }
            }
        }
        let versions = self.facts.entry(record.id.clone()).or_default();
        let version =
            Version { recorded_at: record.recorded_at, retracted: record.retracted, fact: record.fact.clone() };
        // In registration order; a version registered at the same time as
        // one held comes after it (the order its source sent them in).
        let at = versions.partition_point(|v| v.recorded_at <= record.recorded_at);
        if versions.get(at.wrapping_sub(1)).is_some_and(|v| *v == version) {
            return; // the same version again (a source sending it twice)
        }
        versions.insert(at, version);
    }

    /// The newest version of `id` registered before `as_of`, unless it is
    /// a retraction. (Before, not at: a table known through `t` holds every
    /// version registered before `t`, and one registered at `t` is not late.)
    fn as_of(&self, id: &EventId, as_of: EventTime) -> Option<&Fact> {
        let versions = self.facts.get(id)?;
        let at = versions.partition_point(|v| v.recorded_at < as_of);
        let v = versions.get(at.checked_sub(1)?)?;
        (!v.retracted).then_some(&v.fact)
    }

    /// The client's facts that `pick` takes (its absences, its decisions)
    /// as recorded by `as_of`, with their ids, in id order.
    fn client_facts<'a, T>(
        &'a self,
        client: ClientKey,
        as_of: EventTime,
        pick: impl Fn(&'a Fact) -> Option<&'a T>,
    ) -> Vec<(&'a EventId, &'a T)> {
        let mut out: Vec<(&EventId, &T)> = self
            .by_client
            .get(&client)
            .into_iter()
            .flatten()
            .filter_map(|id| Some((id, pick(self.as_of(id, as_of)?)?)))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// The client's absences as recorded by `as_of`, with their ids, in id
    /// order.
    pub fn absences(&self, client: ClientKey, as_of: EventTime) -> Vec<(&EventId, &Absence)> {
        self.client_facts(client, as_of, |f| match f {
            Fact::Absence(a) if a.client == client => Some(a),
            _ => None,
        })
    }

    /// The client's decisions as recorded by `as_of`, with their ids, in
    /// id order.
    pub fn decisions(&self, client: ClientKey, as_of: EventTime) -> Vec<(&EventId, &GrantedHours)> {
        self.client_facts(client, as_of, |f| match f {
            Fact::GrantedHours(g) if g.client == client => Some(g),
            _ => None,
        })
    }

    /// Minutes granted to the client for `service` over `[start, end)` as
    /// recorded by `as_of` (each decision its monthly minutes pro rata by
    /// the seconds of each calendar month it covers), and the decisions
    /// that granted them; `None` if no decision of the service covers any
    /// of the period.
    pub fn granted_minutes(
        &self,
        client: ClientKey,
        service: ServiceType,
        start: EventTime,
        end: EventTime,
        as_of: EventTime,
    ) -> Option<(f64, Vec<EventId>)> {
        let mut minutes = 0.0;
        let mut ids = Vec::new();
        for (id, g) in self.decisions(client, as_of) {
            if g.service != service || g.valid.overlap_secs(start, end) == 0 {
                continue;
            }
            minutes += pro_rata(g, start, end);
            ids.push(id.clone());
        }
        (!ids.is_empty()).then_some((minutes, ids))
    }

    /// Minutes of the client's grant for `service` over `[start, end)`
    /// ordered from `provider` (the decisions naming it, each pro rata
    /// as in [`Self::granted_minutes`]) as recorded by `as_of`, and those
    /// decisions; `None` if a decision of the service covering some of the
    /// period names no provider (the data does not say who was chosen).
    pub fn ordered_minutes(
        &self,
        client: ClientKey,
        service: ServiceType,
        (start, end): (EventTime, EventTime),
        as_of: EventTime,
        provider: ProviderId,
    ) -> Option<(f64, Vec<EventId>)> {
        let (mut minutes, mut ids) = (0.0, Vec::new());
        for (id, g) in self.decisions(client, as_of) {
            if g.service != service || g.valid.overlap_secs(start, end) == 0 {
                continue;
            }
            if g.provider? == provider {
                minutes += pro_rata(g, start, end);
                ids.push(id.clone());
            }
        }
        Some((minutes, ids))
    }

    /// Whether the provider was permitted in `municipality` on `day`, as
    /// recorded by `as_of`.
    pub fn permit(
        &self,
        provider: ProviderId,
        municipality: MunicipalityCode,
        day: Day,
        as_of: EventTime,
    ) -> PermitState {
        let Some(ids) = self.by_provider.get(&(provider, municipality)) else { return PermitState::Unknown };
        let mut entries: Vec<(&EventId, &Permit)> = ids
            .iter()
            .filter_map(|id| match self.as_of(id, as_of) {
                Some(Fact::Permit(p)) if p.provider == provider && p.municipality == municipality => Some((id, p)),
                _ => None,
            })
            .collect();
        if entries.is_empty() {
            return PermitState::Unknown;
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // The day is covered if any instant of it is.
        let covers = |p: &Permit| p.valid.overlap_secs(day.start(), day.plus(1).start()) > 0;
        let against: Vec<&(&EventId, &Permit)> =
            entries.iter().filter(|(_, p)| p.status != PermitStatus::Valid && covers(p)).collect();
        if let Some(worst) = against.iter().map(|(_, p)| p.status).max() {
            return PermitState::NotPermitted(worst, against.iter().map(|(id, _)| (*id).clone()).collect());
        }
        if entries.iter().any(|(_, p)| p.status == PermitStatus::Valid && covers(p)) {
            PermitState::Valid
        } else {
            PermitState::NotPermitted(PermitStatus::Valid, entries.iter().map(|(id, _)| (*id).clone()).collect())
        }
    }

    /// Drops what no decision can ask for any more: versions superseded
    /// before `before` (every question is asked as of a later time), facts
    /// whose newest version before it is a retraction, and facts that
    /// ended before it.
    pub fn prune(&mut self, before: EventTime) {
        let mut dropped = 0u64;
        self.facts.retain(|_, versions| {
            // Keep the newest version registered before `before` and all later ones.
            let at = versions.partition_point(|v| v.recorded_at < before);
            if at > 1 {
                dropped += (at - 1) as u64;
                versions.drain(..at - 1);
            }
            let ended = |v: &Version| match &v.fact {
                Fact::GrantedHours(g) => g.valid.to.is_some_and(|t| t < before),
                Fact::Absence(a) => a.period.to.is_some_and(|t| t < before),
                Fact::Permit(p) => p.valid.to.is_some_and(|t| t < before),
            };
            let gone = versions.len() == 1
                && versions[0].recorded_at < before
                && (versions[0].retracted || ended(&versions[0]));
            if gone {
                dropped += 1;
            }
            !gone
        });
        let facts = &self.facts;
        self.by_client.retain(|_, ids| {
            ids.retain(|id| facts.contains_key(id));
            !ids.is_empty()
        });
        self.by_provider.retain(|_, ids| {
            ids.retain(|id| facts.contains_key(id));
            !ids.is_empty()
        });
        self.stats.pruned += dropped;
    }

    /// Prunes (see [`Self::prune`]) what lies more than `keep_days` days
    /// behind the time the table is known through, at most once per day
    /// of it: what no decision of a partition within the horizon asks
    /// (`keep_days`: the horizon plus the longest look back of a rule).
    pub fn prune_behind(&mut self, keep_days: u32) {
        let Some(known) = self.known_through().filter(|_| !self.unused) else { return };
        let day = known.day();
        if self.pruned_at.is_some_and(|d| d >= day) {
            return;
        }
        self.pruned_at = Some(day);
        self.prune(day.plus(-(keep_days as i32)).start());
    }

    /// How many facts of each kind the table holds.
    pub fn facts_by_kind(&self) -> [(ReferenceKind, usize); 3] {
        let mut n = [0usize; 3];
        for versions in self.facts.values() {
            if let Some(v) = versions.last() {
                n[v.fact.kind() as usize] += 1;
            }
        }
        [(ReferenceKind::GrantedHours, n[0]), (ReferenceKind::Absences, n[1]), (ReferenceKind::ProviderRegister, n[2])]
    }
}

/// The minutes decision `g` grants over `[start, end)`: its monthly
/// minutes pro rata by the seconds of each calendar month it covers.
fn pro_rata(g: &GrantedHours, start: EventTime, end: EventTime) -> f64 {
    let mut minutes = 0.0;
    let mut month = start.month();
    while month.start() < end {
        let (m_start, m_end) = (month.start(), month.next().start());
        let covered = g.valid.overlap_secs(m_start.max(start), m_end.min(end));
        minutes += f64::from(g.minutes_per_month) * covered as f64 / (m_end.0 - m_start.0) as f64;
        month = month.next();
    }
    minutes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reference::{AbsenceKind, Validity};

    fn t(day: u32) -> EventTime {
        Day::from_ymd(2026, 3, day).start()
    }

    fn absence(id: &str, client: u64, from: u32, to: Option<u32>, recorded: u32, retracted: bool) -> ReferenceRecord {
        ReferenceRecord {
            id: EventId::new(id),
            recorded_at: t(recorded),
            retracted,
            fact: Fact::Absence(Absence {
                municipality: MunicipalityCode::parse("2480").unwrap(),
                client: ClientKey(client),
                kind: AbsenceKind::HospitalStay,
                period: Validity { from: t(from), to: to.map(t) },
            }),
        }
    }

    #[test]
    fn a_question_as_of_a_time_sees_the_versions_registered_by_then() {
        let mut table = ReferenceTable::new(1, 0);
        table.apply(0, &absence("a", 1, 3, None, 3, false)).unwrap();
        table.apply(0, &absence("a", 1, 3, Some(8), 9, false)).unwrap();
        table.apply(0, &absence("a", 1, 3, Some(8), 12, true)).unwrap();
        assert!(table.absences(ClientKey(1), t(3)).is_empty(), "not registered yet");
        assert_eq!(table.absences(ClientKey(1), t(5))[0].1.period.to, None, "open while it lasts");
        assert_eq!(table.absences(ClientKey(1), t(10))[0].1.period.to, Some(t(8)), "corrected at discharge");
        assert_eq!(table.absences(ClientKey(1), t(12)).len(), 1, "a version registered at 12 is not seen as of 12");
        assert!(table.absences(ClientKey(1), t(13)).is_empty(), "retracted");
        assert!(table.absences(ClientKey(2), t(13)).is_empty(), "another client");
    }

    #[test]
    fn the_answer_does_not_depend_on_the_order_versions_of_two_sources_arrive_in() {
        let records = [absence("a", 1, 3, None, 3, false), absence("b", 1, 10, Some(12), 9, false)];
        let mut one = ReferenceTable::new(2, 0);
        one.apply(0, &records[0]).unwrap();
        one.apply(1, &records[1]).unwrap();
        let mut other = ReferenceTable::new(2, 0);
        other.apply(1, &records[1]).unwrap();
        other.apply(0, &records[0]).unwrap();
        for day in 1..=20 {
            assert_eq!(one.absences(ClientKey(1), t(day)), other.absences(ClientKey(1), t(day)));
        }
    }

    #[test]
    fn known_through_is_the_slowest_sources_progress_and_late_versions_are_refused() {
        let mut table = ReferenceTable::new(2, 3600);
        assert_eq!(table.known_through(), None);
        assert!(!table.apply(0, &absence("a", 1, 3, None, 5, false)).unwrap(), "source 1 has said nothing");
        assert!(table.heartbeat(1, t(4)).unwrap());
        assert_eq!(table.known_through(), Some(t(4)));
        assert!(table.heartbeat(1, t(9)).unwrap());
        assert_eq!(table.known_through(), Some(t(5).plus_secs(-3600)));
        let late = table.apply(1, &absence("b", 1, 3, None, 8, false)).unwrap_err();
        assert!(matches!(late, ReferenceError::Late { behind_secs: 86_400, .. }), "{late}");
        assert_eq!(table.stats().late, 1);
        assert!(table.absences(ClientKey(1), t(20)).iter().all(|(id, _)| id.as_str() == "a"), "not applied");
        assert!(ReferenceTable::unused().known_at(EventTime(i64::MAX)));
    }

    #[test]
    fn granted_minutes_are_pro_rata_by_month_and_a_revision_counts_from_its_registration() {
        let decision = |minutes: u32, recorded: EventTime| ReferenceRecord {
            id: EventId::new("d"),
            recorded_at: recorded,
            retracted: false,
            fact: Fact::GrantedHours(GrantedHours {
                municipality: MunicipalityCode::parse("2480").unwrap(),
                client: ClientKey(1),
                service: ServiceType::PersonalCare,
                minutes_per_month: minutes,
                valid: Validity { from: Day::from_ymd(2026, 3, 17).start(), to: None },
                provider: None,
            }),
        };
        let mut table = ReferenceTable::new(1, 0);
        table.apply(0, &decision(3100, t(1))).unwrap();
        table.apply(0, &decision(6200, Day::from_ymd(2026, 4, 10).start())).unwrap();
        let (march, april) = (Day::from_ymd(2026, 3, 1).month(), Day::from_ymd(2026, 4, 1).month());
        let granted = |month: crate::model::Month, as_of| {
            table
                .granted_minutes(ClientKey(1), ServiceType::PersonalCare, month.start(), month.next().start(), as_of)
                .map(|(m, _)| m.round())
        };
        // 15 of March's 31 days (less the hour the clocks go forward).
        let march_share: f64 = 3100.0 * (15.0 * 86_400.0 - 3600.0) / (31.0 * 86_400.0 - 3600.0);
        assert_eq!(granted(march, t(31)), Some(march_share.round()));
        assert_eq!(granted(april, t(31)), Some(3100.0));
        assert_eq!(granted(april, Day::from_ymd(2026, 5, 1).start()), Some(6200.0), "revised upward");
        assert_eq!(
            table.granted_minutes(ClientKey(1), ServiceType::Service, april.start(), april.next().start(), t(31)),
            None,
            "another service"
        );
    }

    #[test]
    fn the_register_says_valid_revoked_suspended_or_unknown() {
        let provider: ProviderId = "556036-0793".parse().unwrap();
        let code = MunicipalityCode::parse("2480").unwrap();
        let entry = |id: &str, status, from: u32, to: Option<u32>, recorded: u32| ReferenceRecord {
            id: EventId::new(id),
            recorded_at: t(recorded),
            retracted: false,
            fact: Fact::Permit(Permit {
                provider,
                municipality: code,
                status,
                valid: Validity { from: t(from), to: to.map(t) },
            }),
        };
        let mut table = ReferenceTable::new(1, 0);
        table.apply(0, &entry("p1", PermitStatus::Valid, 1, None, 1)).unwrap();
        table.apply(0, &entry("p2", PermitStatus::Revoked, 10, None, 12)).unwrap();
        let day = |d: u32| Day::from_ymd(2026, 3, d);
        assert_eq!(table.permit(provider, code, day(5), t(20)), PermitState::Valid);
        assert_eq!(table.permit(provider, code, day(11), t(11)), PermitState::Valid, "revocation not registered yet");
        assert_eq!(
            table.permit(provider, code, day(11), t(20)),
            PermitState::NotPermitted(PermitStatus::Revoked, vec![EventId::new("p2")])
        );
        let other = MunicipalityCode::parse("0180").unwrap();
        assert_eq!(table.permit(provider, other, day(11), t(20)), PermitState::Unknown);
    }

    #[test]
    fn pruning_keeps_what_a_later_question_about_a_later_day_can_see() {
        let mut table = ReferenceTable::new(1, 0);
        table.apply(0, &absence("a", 1, 3, None, 3, false)).unwrap();
        table.apply(0, &absence("b", 1, 3, Some(5), 4, false)).unwrap();
        table.apply(0, &absence("a", 1, 3, Some(20), 9, false)).unwrap();
        let covered = |table: &ReferenceTable| -> Vec<usize> {
            (12..=31)
                .flat_map(|as_of| (12..=31).map(move |day| (as_of, day)))
                .map(|(as_of, day)| {
                    table.absences(ClientKey(1), t(as_of)).iter().filter(|(_, a)| a.period.contains(t(day))).count()
                })
                .collect()
        };
        let before = covered(&table);
        table.prune(t(12));
        assert_eq!(covered(&table), before);
        assert_eq!(table.size(), (1, 1), "b ended, a's first version superseded");
        assert_eq!(table.stats().pruned, 2);
    }
}
