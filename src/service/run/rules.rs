//! The rules topic in a running service: every accepted version of the
//! rules' configuration goes to every partition's driver, and the drivers
//! decide only up to the latest seal (see `tillsyn_core::rules::history`).
//!
//! The service reads the whole topic at start and then again whenever it
//! may have changed (every second, and at once after it wrote a seal). A
//! partition whose records wait for the configuration says so
//! (`Output::RulesNeeded`); the service then seals the topic through that
//! time, or as far as the newest record the partition holds (within
//! `core.max_ahead` of the wall clock), plus `topics.rules_seal_ahead`,
//! and lets the partitions go once it
//! has read its seal back (at once after the broker acknowledged it). A
//! change published later must be in force after that seal, so no
//! decision already made could have needed it. Which changes are accepted
//! depends on the topic's order alone. Records more than `core.max_ahead`
//! after the wall clock are not sealed for: they wait (and say so) rather
//! than make rule changes impossible until their date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tillsyn_core::driver::{Output, PartitionDriver};
use tillsyn_core::model::EventTime;
use tillsyn_core::rules::history::{Outcome, RulesEntry, RulesHistory};
use tillsyn_core::rules::timeline::RulesVersion;
use tracing::{info, warn};

use crate::service::config::ServiceConfig;
use crate::service::state_store;
use crate::telemetry::events::RulesEntryRead;

/// How long one read of the rules topic may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a seal may take to be read back before it is written again.
pub const SEAL_AGAIN_AFTER: Duration = Duration::from_secs(10);

/// The values read from the rules topic (offset, value) and its end.
pub type RulesRead = (Vec<(i64, Option<Vec<u8>>)>, i64);

/// What one read of the rules topic changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// Versions accepted now, in log order.
    pub versions: Vec<RulesVersion>,
    /// The new seal, if it moved.
    pub sealed: Option<EventTime>,
}

/// The rules topic as this instance has read it.
pub struct RulesFeed {
    history: RulesHistory,
    accepted: Vec<RulesVersion>,
    /// The next offset to read.
    next: i64,
    /// This process's name in the keys of its seals.
    writer: String,
    /// The latest time a partition's first waiting record needs.
    wanted: Option<EventTime>,
    /// The newest record held by a partition that waits: how far a seal
    /// is of use.
    reach: Option<EventTime>,
    /// The latest seal this process wrote, and when (wall clock).
    requested: Option<EventTime>,
    requested_at: Option<SystemTime>,
}

impl RulesFeed {
    /// Nothing read yet: version 0 is the configuration file's rules.
    pub fn new(config: &ServiceConfig) -> Self {
        let writer = format!(
            "{}-{}-{}",
            config.kafka.client_id,
            std::process::id(),
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        );
        RulesFeed {
            history: RulesHistory::new(&config.core.rules),
            accepted: Vec::new(),
            next: 0,
            writer,
            wanted: None,
            reach: None,
            requested: None,
            requested_at: None,
        }
    }

    /// Reads what was added to the topic since the last read (blocking).
    pub fn read(config: &ServiceConfig, from: i64) -> anyhow::Result<RulesRead> {
        let topic = config.topics.rules_topic();
        let (records, end) = state_store::read_log(config, &topic, 0, from, READ_TIMEOUT)?;
        Ok((records.into_iter().map(|(offset, _, value)| (offset, value)).collect(), end))
    }

    /// Where the next read starts.
    pub fn next_offset(&self) -> i64 {
        self.next
    }

    /// Takes the records of one read (offset and value), in order. The
    /// next read starts after the last of them, not at the end the read
    /// was for: a read that stopped before its end (an end of partition
    /// the fetch saw earlier than the offsets lookup) skips no seal, which
    /// would be a seal this process may have asked for and would never ask
    /// for again.
    pub fn apply(&mut self, records: Vec<(i64, Option<Vec<u8>>)>) -> Changes {
        let mut changes = Changes::default();
        for (offset, value) in records {
            if offset < self.next {
                continue;
            }
            self.next = offset + 1;
            let Some(value) = value else { continue };
            let (entry, note) = match RulesEntry::decode(&value) {
                Ok(decoded) => decoded,
                Err(reason) => {
                    warn!(offset, reason, "a record of the rules topic is not a rules record: skipped");
                    RulesEntryRead::Skipped.emit();
                    continue;
                }
            };
            match self.history.apply(&entry) {
                Outcome::Accepted(version) => {
                    info!(
                        offset,
                        version = version.version,
                        effective_from = %version.effective_from,
                        note,
                        "rules' configuration version accepted"
                    );
                    RulesEntryRead::Accepted { version: version.version }.emit();
                    self.accepted.push((*version).clone());
                    changes.versions.push(*version);
                }
                Outcome::Rejected { version, reason } => {
                    warn!(offset, version, reason, note, "rules' configuration change rejected");
                    RulesEntryRead::Rejected.emit();
                }
                Outcome::Sealed(through) => {
                    RulesEntryRead::Sealed { through }.emit();
                    changes.sealed = Some(through);
                }
            }
        }
        changes
    }

    /// The time the configuration is known through: the latest seal, or
    /// before everything when there is none yet.
    pub fn known_through(&self) -> EventTime {
        self.history.sealed_through().unwrap_or(EventTime(i64::MIN))
    }

    /// Gives a driver that starts every accepted version and the seal.
    pub fn prime<H>(
        &self,
        driver: &mut PartitionDriver<H>,
        invoice_end: &mut impl FnMut() -> Option<i64>,
        out: &mut Vec<Output<H>>,
    ) -> anyhow::Result<()> {
        for version in &self.accepted {
            driver.add_rules_version(version)?;
        }
        driver.set_rules_known_through(self.known_through(), invoice_end, out);
        Ok(())
    }

    /// A partition waits for the configuration through `at`, and holds
    /// records through `through` (see `Output::RulesNeeded`).
    pub fn want(&mut self, at: EventTime, through: EventTime) {
        self.wanted = Some(self.wanted.map_or(at, |w| w.max(at)));
        self.reach = Some(self.reach.map_or(through, |r| r.max(through)));
    }

    /// The seal to write now, if one is needed and not written yet: through
    /// the newest held record (at least the wanted time) plus `ahead`, but
    /// never beyond `max_future` after `now` (the wall clock); none while
    /// the first waiting record itself is beyond that (it waits, and says
    /// so: [`Self::waiting_for_the_future`]). While a held record is beyond
    /// that limit, the limit moves with the wall clock: a seal a day at
    /// most (each reaches `ahead` further).
    pub fn seal_due(&mut self, now: SystemTime, ahead: Duration, max_future: Duration) -> Option<(String, Vec<u8>)> {
        let wanted = self.wanted?;
        let limit = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
            .saturating_add(max_future.as_secs() as i64);
        if wanted.0 > limit {
            return None;
        }
        // As far as the held records go, within the limit: a backlog of
        // months is sealed for in a few steps; an absurd date among the held
        // records brings the seal no further than the limit. Also when the
        // first waiting record is covered already (by a seal another
        // partition asked for) and the held ones are not.
        let target = EventTime(self.reach.map_or(wanted, |r| r.max(wanted)).0.min(limit));
        // A seal asked for and not read back within SEAL_AGAIN_AFTER (lost
        // on the way, or skipped by a read) is written again: partitions
        // must not wait for ever on one record.
        let asked_lately =
            self.requested_at.is_some_and(|at| now.duration_since(at).unwrap_or_default() < SEAL_AGAIN_AFTER);
        if target <= self.known_through() || (self.requested.is_some_and(|r| r >= target) && asked_lately) {
            return None;
        }
        let through = EventTime(target.0.saturating_add(ahead.as_secs() as i64));
        self.requested = Some(through);
        self.requested_at = Some(now);
        let entry = RulesEntry::Seal { through };
        Some((entry.key(&self.writer), entry.encode("")))
    }

    /// Records wait for a time more than `max_future` after `now`.
    pub fn waiting_for_the_future(&self, now: SystemTime, max_future: Duration) -> Option<EventTime> {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        self.wanted.filter(|w| *w > self.known_through() && w.0 > now.saturating_add(max_future.as_secs() as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(day: i64) -> Option<Vec<u8>> {
        Some(RulesEntry::Seal { through: EventTime(day * 86_400) }.encode(""))
    }

    /// Day `d` of 2026.
    fn day(d: i64) -> EventTime {
        EventTime(1_767_225_600 + d * 86_400)
    }

    /// A fresh feed, a wall clock, and the default seal-ahead (a day) and
    /// limit ahead of the wall clock (two days).
    fn fixture() -> (RulesFeed, SystemTime, Duration, Duration) {
        let feed = RulesFeed::new(&ServiceConfig::default());
        (
            feed,
            UNIX_EPOCH + Duration::from_secs(1_790_000_000),
            Duration::from_secs(86_400),
            Duration::from_secs(2 * 86_400),
        )
    }

    #[test]
    fn the_next_read_starts_after_the_last_record_read_not_at_the_reads_end() {
        let mut feed = RulesFeed::new(&ServiceConfig::default());
        let changes = feed.apply(vec![(0, seal(3)), (1, None)]);
        assert_eq!(changes.sealed, Some(EventTime(3 * 86_400)));
        assert_eq!(feed.next_offset(), 2);
        // A read for offsets 2..5 that stopped after offset 2: offsets 3
        // and 4 are read next time, and a seal there is seen.
        feed.apply(vec![(2, None)]);
        assert_eq!(feed.next_offset(), 3);
        let changes = feed.apply(vec![(3, None), (4, seal(9))]);
        assert_eq!(changes.sealed, Some(EventTime(9 * 86_400)));
        assert_eq!(feed.known_through(), EventTime(9 * 86_400));
        // Records read again are ignored.
        let changes = feed.apply(vec![(4, seal(9))]);
        assert_eq!(changes.sealed, None);
        assert_eq!(feed.next_offset(), 5);
    }

    #[test]
    fn a_seal_not_read_back_is_written_again_after_a_while() {
        let (mut feed, now, ahead, max_future) = fixture();
        feed.want(day(3), day(3));
        let (key, _) = feed.seal_due(now, ahead, max_future).expect("a seal through day 4");
        assert!(key.starts_with(&format!("seal/{}/", day(4).0)), "{key}");
        // Asked for: not again while it may still be on its way.
        assert!(feed.seal_due(now + Duration::from_secs(1), ahead, max_future).is_none());
        // Not read back after SEAL_AGAIN_AFTER: written again, the same seal.
        let again = feed.seal_due(now + SEAL_AGAIN_AFTER, ahead, max_future).expect("written again");
        assert_eq!(again.0, key);
        // Read back: nothing more to write.
        feed.apply(vec![(0, Some(again.1))]);
        assert!(feed.seal_due(now + 3 * SEAL_AGAIN_AFTER, ahead, max_future).is_none());
    }

    /// A backlog: a partition's first waiting record is of day 3, its newest
    /// held one of day 40. One seal through day 41 releases them all.
    #[test]
    fn a_seal_reaches_as_far_as_the_newest_held_record() {
        let (mut feed, now, ahead, max_future) = fixture();
        feed.want(day(3), day(40));
        let (key, _) = feed.seal_due(now, ahead, max_future).expect("a seal through day 41");
        assert!(key.starts_with(&format!("seal/{}/", day(41).0)), "{key}");
    }

    /// Another partition's seal covers this one's first waiting record
    /// but not the records it holds: a seal is still written, as far as
    /// they go (without it the partition's next waiting record, past the
    /// seal, would find nothing asked for; the cause of five stalled broker
    /// tests on 2026-12-02).
    #[test]
    fn a_seal_is_written_for_held_records_beyond_a_seal_that_covers_the_first() {
        let (mut feed, now, ahead, max_future) = fixture();
        feed.want(day(3), day(3));
        let (_, first) = feed.seal_due(now, ahead, max_future).expect("a seal through day 4");
        feed.apply(vec![(0, Some(first))]);
        assert_eq!(feed.known_through(), day(4));
        feed.want(day(4), day(30));
        let (key, _) = feed.seal_due(now, ahead, max_future).expect("a seal through day 31");
        assert!(key.starts_with(&format!("seal/{}/", day(31).0)), "{key}");
    }

    /// A partition whose held records include an absurd date (2099) gets a
    /// seal as far as the wall clock allows, so the records before that one
    /// go on; nothing is sealed beyond it, and nothing said of waiting for
    /// the future while the first waiting record is not. Once that record
    /// is first, it waits, and says so.
    #[test]
    fn an_absurd_date_among_the_held_records_seals_no_further_than_the_limit() {
        let mut feed = RulesFeed::new(&ServiceConfig::default());
        let now_secs: i64 = 1_790_000_000;
        let now = UNIX_EPOCH + Duration::from_secs(now_secs as u64);
        let (ahead, max_future) = (Duration::from_secs(86_400), Duration::from_secs(2 * 86_400));
        let absurd = EventTime(4_070_908_800); // 2099-01-01
        feed.want(EventTime(now_secs - 30 * 86_400), absurd);
        let (key, value) = feed.seal_due(now, ahead, max_future).expect("a seal up to the limit");
        let limit = now_secs + 3 * 86_400;
        assert!(key.starts_with(&format!("seal/{limit}/")), "{key}");
        assert!(
            feed.waiting_for_the_future(now, max_future).is_none(),
            "the first waiting record is not in the future"
        );
        feed.apply(vec![(0, Some(value))]);
        assert_eq!(feed.known_through(), EventTime(limit));
        assert!(feed.seal_due(now + Duration::from_secs(3_600), ahead, max_future).is_none(), "nothing waits");
        // The absurd record comes first: no seal for it; it waits, and says so.
        feed.want(absurd, absurd);
        assert!(feed.seal_due(now + Duration::from_secs(7_200), ahead, max_future).is_none());
        assert_eq!(feed.waiting_for_the_future(now, max_future), Some(absurd));
    }
}
