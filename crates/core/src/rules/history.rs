//! The history of the rules' configuration, as a log of changes and seals,
//! and which changes are accepted: the same log gives the same accepted
//! versions to every instance, live or in replay.
//!
//! A **change** proposes version `n` of the rules' configuration (complete,
//! as JSON of [`RulesConfig`]) in force from an event time. A **seal**
//! says that decisions up to an event time may be made with the versions
//! accepted so far: an instance writes one before it lets its partitions
//! decide past the last seal (see
//! [`crate::driver::PartitionDriver::set_rules_known_through`]). A change
//! is accepted only if it is in force strictly after every seal before it
//! in the log, so that no decision already made could have needed it; and
//! only if its configuration is valid, its number is above every accepted
//! version's, and it keeps the rules' widest window (see
//! [`RuleTimeline::check`]). Otherwise it is rejected with a reason, and
//! the versions in force stay as they were.
//!
//! The order of the log decides, so acceptance depends on nothing but the
//! log: an instance that reads it live and a replay that reads an export of
//! it accept the same changes.

use super::RulesConfig;
use super::timeline::{RuleTimeline, RulesVersion};
use crate::model::EventTime;
use crate::proto::v1 as wire;

/// One entry of the rules' history.
#[derive(Debug, Clone, PartialEq)]
pub enum RulesEntry {
    /// Version `version`, in force from `effective_from`.
    Change {
        /// Its number.
        version: u32,
        /// Decisions at or after this event time are made under it.
        effective_from: EventTime,
        /// The complete configuration, as JSON of [`RulesConfig`].
        rules_json: String,
    },
    /// Decisions up to `through` may be made with the versions accepted
    /// before it.
    Seal {
        /// The event time sealed through.
        through: EventTime,
    },
}

impl RulesEntry {
    /// The entry of a rules-topic record (`tillsyn.v1.RulesRecord`,
    /// protobuf) and its note, or why the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Result<(RulesEntry, String), String> {
        use prost::Message as _;
        let record = wire::RulesRecord::decode(bytes).map_err(|e| format!("not a rules record: {e}"))?;
        let time = |t: Option<pbjson_types::Timestamp>, field: &str| {
            t.map(|t| EventTime(t.seconds)).ok_or_else(|| format!("a rules record without {field}"))
        };
        match record.kind {
            Some(wire::rules_record::Kind::Change(c)) => Ok((
                RulesEntry::Change {
                    version: c.version,
                    effective_from: time(c.effective_from, "effective_from")?,
                    rules_json: c.rules_json,
                },
                c.note,
            )),
            Some(wire::rules_record::Kind::Seal(s)) => {
                Ok((RulesEntry::Seal { through: time(s.through, "through")? }, String::new()))
            }
            None => Err("a rules record of no kind".into()),
        }
    }

    /// The record of this entry on the rules topic, with `note`.
    pub fn encode(&self, note: &str) -> Vec<u8> {
        use prost::Message as _;
        let time = |t: EventTime| Some(pbjson_types::Timestamp { seconds: t.0, nanos: 0 });
        let kind = match self {
            RulesEntry::Change { version, effective_from, rules_json } => {
                wire::rules_record::Kind::Change(wire::RulesChange {
                    version: *version,
                    effective_from: time(*effective_from),
                    rules_json: rules_json.clone(),
                    note: note.to_string(),
                })
            }
            RulesEntry::Seal { through } => wire::rules_record::Kind::Seal(wire::RulesSeal { through: time(*through) }),
        };
        wire::RulesRecord { kind: Some(kind) }.encode_to_vec()
    }

    /// Its key on the rules topic, unique per entry so that compaction
    /// keeps every one (the order of the whole log decides): a change's
    /// version; a seal's time and its writer's unique name.
    pub fn key(&self, writer: &str) -> String {
        match self {
            RulesEntry::Change { version, .. } => format!("change/{version}"),
            RulesEntry::Seal { through } => format!("seal/{}/{writer}", through.0),
        }
    }
}

/// What an entry did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The change joined the versions in force.
    Accepted(Box<RulesVersion>),
    /// The change was refused; nothing changed.
    Rejected {
        /// Its number.
        version: u32,
        /// Why, for people.
        reason: String,
    },
    /// The history is sealed through this time (the later of the seals so far).
    Sealed(EventTime),
}

/// The accepted versions and the seal, built entry by entry.
#[derive(Clone)]
pub struct RulesHistory {
    timeline: RuleTimeline,
    sealed: Option<EventTime>,
}

impl RulesHistory {
    /// No entry yet: version 0 is `base` (the configuration file's rules,
    /// assumed validated), nothing sealed.
    pub fn new(base: &RulesConfig) -> Self {
        RulesHistory { timeline: RuleTimeline::new(base), sealed: None }
    }

    /// Takes the next entry of the log.
    pub fn apply(&mut self, entry: &RulesEntry) -> Outcome {
        match entry {
            RulesEntry::Seal { through } => {
                let sealed = self.sealed.map_or(*through, |s| s.max(*through));
                self.sealed = Some(sealed);
                Outcome::Sealed(sealed)
            }
            RulesEntry::Change { version, effective_from, rules_json } => {
                match self.check(*version, *effective_from, rules_json) {
                    Ok(accepted) => {
                        self.timeline.add(&accepted).expect("checked just before");
                        Outcome::Accepted(Box::new(accepted))
                    }
                    Err(reason) => Outcome::Rejected { version: *version, reason },
                }
            }
        }
    }

    /// The version a change would be, or why it would be rejected if it
    /// came next in the log (what `tillsyn rules set` asks before it
    /// publishes one).
    pub fn check(&self, version: u32, effective_from: EventTime, rules_json: &str) -> Result<RulesVersion, String> {
        let rules: RulesConfig =
            serde_json::from_str(rules_json).map_err(|e| format!("not a rules configuration: {e}"))?;
        if let Some(sealed) = self.sealed
            && effective_from <= sealed
        {
            return Err(format!(
                "in force from {effective_from}, not after {sealed}, through which decisions may already have \
                 been made: choose a later time"
            ));
        }
        let accepted = RulesVersion { version, effective_from, rules };
        self.timeline.check(&accepted).map_err(|e| e.to_string())?;
        Ok(accepted)
    }

    /// The versions accepted so far, with version 0.
    pub fn timeline(&self) -> &RuleTimeline {
        &self.timeline
    }

    /// The latest seal, if any.
    pub fn sealed_through(&self) -> Option<EventTime> {
        self.sealed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Day;

    fn json(rules: &RulesConfig) -> String {
        serde_json::to_string(rules).unwrap()
    }

    fn change(version: u32, from: EventTime, rules: &RulesConfig) -> RulesEntry {
        RulesEntry::Change { version, effective_from: from, rules_json: json(rules) }
    }

    fn day(d: u32) -> EventTime {
        Day::from_ymd(2026, 3, d).start()
    }

    #[test]
    fn a_valid_change_after_the_seal_is_accepted_and_in_force_from_its_time() {
        let base = RulesConfig::default();
        let mut stricter = base.clone();
        stricter.check_in_away_from_home.max_distance_m = 300.0;
        let mut h = RulesHistory::new(&base);
        assert_eq!(h.apply(&RulesEntry::Seal { through: day(5) }), Outcome::Sealed(day(5)));
        let outcome = h.apply(&change(1, day(6), &stricter));
        assert!(matches!(&outcome, Outcome::Accepted(v) if v.version == 1 && v.rules == stricter), "{outcome:?}");
        assert_eq!(h.timeline().versions().collect::<Vec<_>>(), [(0, EventTime(i64::MIN)), (1, day(6))]);
    }

    #[test]
    fn each_kind_of_bad_change_is_rejected_with_its_reason_and_changes_nothing() {
        let base = RulesConfig::default();
        let mut h = RulesHistory::new(&base);
        h.apply(&RulesEntry::Seal { through: day(10) });
        h.apply(&RulesEntry::Seal { through: day(8) });
        assert_eq!(h.sealed_through(), Some(day(10)), "a seal never moves back");
        let mut negative = base.clone();
        negative.check_in_away_from_home.max_distance_m = -1.0;
        let mut wider = base.clone();
        wider.manual_registration_share.window_days += 30;
        let cases: Vec<(RulesEntry, &str)> = vec![
            (change(1, day(10), &base), "not after"),
            (change(1, day(9), &base), "not after"),
            (
                RulesEntry::Change { version: 1, effective_from: day(11), rules_json: "{\"nope\": 1}".into() },
                "not a rules configuration",
            ),
            (change(1, day(11), &negative), "max_distance_m"),
            (change(1, day(11), &wider), "widest window"),
            (change(0, day(11), &base), "not above the newest version 0"),
        ];
        for (entry, needle) in cases {
            match h.apply(&entry) {
                Outcome::Rejected { reason, .. } => assert!(reason.contains(needle), "{needle:?} in {reason:?}"),
                other => panic!("{entry:?}: {other:?}"),
            }
        }
        assert_eq!(h.timeline().newest(), 0, "nothing was accepted");
        assert!(matches!(h.apply(&change(1, day(11), &base)), Outcome::Accepted(_)));
        assert!(matches!(h.apply(&change(1, day(12), &base)), Outcome::Rejected { .. }), "1 is taken now");
    }

    #[test]
    fn entries_round_trip_through_the_wire_and_other_bytes_are_refused() {
        let base = RulesConfig::default();
        for entry in [change(3, day(4), &base), RulesEntry::Seal { through: day(9) }] {
            let (back, note) = RulesEntry::decode(&entry.encode("tighter limit after audit")).unwrap();
            assert_eq!(back, entry);
            assert_eq!(note, if matches!(entry, RulesEntry::Seal { .. }) { "" } else { "tighter limit after audit" });
        }
        assert!(RulesEntry::decode(b"\xff\xff").is_err());
        assert!(RulesEntry::decode(&[]).unwrap_err().contains("no kind"));
        assert_eq!(change(3, day(4), &base).key("w"), "change/3");
        assert_ne!(RulesEntry::Seal { through: day(9) }.key("a"), RulesEntry::Seal { through: day(9) }.key("b"));
    }

    #[test]
    fn the_same_log_gives_the_same_outcomes() {
        let base = RulesConfig::default();
        let mut lax = base.clone();
        lax.check_in_away_from_home.max_distance_m = 2_000.0;
        let log = vec![
            RulesEntry::Seal { through: day(2) },
            change(1, day(3), &lax),
            RulesEntry::Seal { through: day(4) },
            change(2, day(4), &base),
            change(2, day(5), &base),
        ];
        let run = |log: &[RulesEntry]| {
            let mut h = RulesHistory::new(&base);
            log.iter().map(|e| h.apply(e)).collect::<Vec<_>>()
        };
        let outcomes = run(&log);
        assert_eq!(outcomes, run(&log));
        let kinds: Vec<&str> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Accepted(_) => "accepted",
                Outcome::Rejected { .. } => "rejected",
                Outcome::Sealed(_) => "sealed",
            })
            .collect();
        assert_eq!(kinds, ["sealed", "accepted", "sealed", "rejected", "accepted"]);
    }
}
