//! The global peer table: every partition's peer samples, combined into
//! statistics that are final per local day.
//!
//! A provider-stage partition sees only the providers that hash to it.
//! Peer rules compare a provider with every provider of its municipality,
//! so each partition publishes, when it closes local day D, a [`PeerDay`]:
//! its providers' samples for D and its active clients per municipality.
//! Every instance reads every partition's `PeerDay`s (in the service, from
//! a compacted topic read in full, as a Kafka Streams GlobalKTable; in a
//! replay, in memory) into a [`GlobalPeerTable`].
//!
//! **Final statistics only.** Day D is final once every partition has
//! published that it closed D (the minimum over partitions, as a Flink
//! watermark is the minimum over its input channels): its statistics then
//! cover every provider of every partition, and they can no longer change.
//! Peer rules decide on final days only, so a decision does not depend on
//! when another partition's samples arrived, on how many partitions there
//! are, or on which instance holds them.
//!
//! **Idleness.** A partition that has published nothing holds every day
//! back: there is no timeout. Waiting costs latency, never the answer. A
//! partition without any record at all therefore stops peer decisions
//! until it gets one (or until the producers' source heartbeats reach it);
//! the service shows it as the global watermark's lag.
//!
//! A `PeerDay` is a function of the partition's input alone, so publishing
//! it again (after a restart recomputed it) changes nothing.

use std::collections::BTreeMap;

use super::peer::{PeerGroup, PeerTable};
use crate::model::{Day, MunicipalityCode, ProviderId};

/// What one partition publishes when it closes a local day.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeerDay {
    /// The publishing partition of the provider stage.
    pub partition: u32,
    /// How many partitions the provider stage has.
    pub partitions: u32,
    /// The local day closed.
    pub day: Day,
    /// Each sample of each of its providers, in (group, provider) order.
    pub samples: Vec<(PeerGroup, ProviderId, f64)>,
    /// Active clients of its providers per municipality, in code order.
    pub active_clients: Vec<(MunicipalityCode, u64)>,
}

impl PeerDay {
    /// The compaction key of this day on the peer-days topic: the partition
    /// and the day modulo [`GlobalPeerTable::KEPT_DAYS`], so a compacted
    /// topic keeps each partition's last days and no more.
    pub fn key(&self) -> String {
        format!("{}/{}", self.partition, self.day.0.rem_euclid(GlobalPeerTable::KEPT_DAYS as i32))
    }
}

/// Why a `PeerDay` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerDayError {
    /// Published by a provider stage with another partition count.
    #[error("peer day from a provider stage of {found} partitions, this one has {expected}")]
    PartitionCount {
        /// Partitions of this stage.
        expected: u32,
        /// Partitions the message claims.
        found: u32,
    },
    /// The partition number is out of range.
    #[error("peer day from partition {0}, out of range")]
    Partition(u32),
}

/// A final day: peer statistics and municipality totals over every partition.
#[derive(Debug, Clone, Default)]
pub struct FinalDay {
    /// Statistics of every peer group.
    pub peers: PeerTable,
    /// Active clients per municipality, over all providers.
    pub active_clients: BTreeMap<MunicipalityCode, u64>,
}

/// Every partition's peer days, and the statistics of the final ones.
#[derive(Debug, Clone)]
pub struct GlobalPeerTable {
    partitions: u32,
    /// Per partition, the newest day it closed.
    closed: Vec<Option<Day>>,
    /// Days not final yet: each partition's contribution.
    open: BTreeMap<Day, BTreeMap<u32, PeerDay>>,
    /// The last [`Self::KEPT_DAYS`] final days.
    finals: BTreeMap<Day, FinalDay>,
    final_through: Option<Day>,
}

impl GlobalPeerTable {
    /// Final days kept (a partition's day closes can lag the newest final
    /// day by this much; `volume-explosion` reads the day before).
    pub const KEPT_DAYS: usize = 64;

    /// An empty table for a provider stage of `partitions` partitions.
    pub fn new(partitions: u32) -> Self {
        let partitions = partitions.max(1);
        GlobalPeerTable {
            partitions,
            closed: vec![None; partitions as usize],
            open: BTreeMap::new(),
            finals: BTreeMap::new(),
            final_through: None,
        }
    }

    /// Partitions of the provider stage.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Takes one partition's day. Each partition's days come in the order
    /// it closed them (it publishes them in order to one topic partition);
    /// the partitions may interleave in any way. A day already final, or
    /// one the partition published before, changes nothing (it is the same
    /// day again, e.g. recomputed after a restart). Returns whether days
    /// became final.
    pub fn apply(&mut self, day: PeerDay) -> Result<bool, PeerDayError> {
        if day.partitions != self.partitions {
            return Err(PeerDayError::PartitionCount { expected: self.partitions, found: day.partitions });
        }
        if day.partition >= self.partitions {
            return Err(PeerDayError::Partition(day.partition));
        }
        if self.final_through.is_some_and(|f| day.day <= f) {
            return Ok(false);
        }
        let p = day.partition as usize;
        self.closed[p] = Some(self.closed[p].map_or(day.day, |c| c.max(day.day)));
        self.open.entry(day.day).or_default().insert(day.partition, day);
        Ok(self.finalise())
    }

    /// The newest day every partition has closed.
    pub fn final_through(&self) -> Option<Day> {
        self.final_through
    }

    /// The newest day each partition has closed (for lag metrics).
    pub fn closed(&self) -> &[Option<Day>] {
        &self.closed
    }

    /// A final day's statistics, if final and still kept.
    pub fn day(&self, day: Day) -> Option<&FinalDay> {
        self.finals.get(&day)
    }

    /// Samples and providers held for days not final yet.
    pub fn open_days(&self) -> usize {
        self.open.len()
    }

    fn finalise(&mut self) -> bool {
        let Some(through) = self.closed.iter().copied().min().flatten() else { return false };
        if self.final_through.is_some_and(|f| f >= through) {
            return false;
        }
        let later = self.open.split_off(&through.plus(1));
        let ready = std::mem::replace(&mut self.open, later);
        for (day, parts) in ready {
            let mut peers = PeerTable::default();
            let mut active_clients: BTreeMap<MunicipalityCode, u64> = BTreeMap::new();
            for part in parts.into_values() {
                for (group, provider, value) in part.samples {
                    peers.record(group, provider, value);
                }
                for (municipality, n) in part.active_clients {
                    *active_clients.entry(municipality).or_default() += n;
                }
            }
            peers.recompute();
            peers.drop_samples();
            self.finals.insert(day, FinalDay { peers, active_clients });
        }
        self.final_through = Some(through);
        while self.finals.len() > Self::KEPT_DAYS {
            self.finals.pop_first();
        }
        true
    }
}

/// Samples of `table` as a `PeerDay`'s list.
pub fn samples_of(table: &PeerTable) -> Vec<(PeerGroup, ProviderId, f64)> {
    table.samples().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::PeerMetric;

    fn group() -> PeerGroup {
        PeerGroup {
            municipality: MunicipalityCode::parse("2480").unwrap(),
            metric: PeerMetric::ManualShare,
            service: None,
        }
    }

    fn day(partition: u32, d: i32, values: &[(u64, f64)]) -> PeerDay {
        PeerDay {
            partition,
            partitions: 2,
            day: Day(d),
            samples: values.iter().map(|(p, v)| (group(), ProviderId::from_nine_digits(556_000_000 + p), *v)).collect(),
            active_clients: vec![(group().municipality, values.len() as u64)],
        }
    }

    #[test]
    fn a_day_is_final_once_every_partition_closed_it_and_covers_them_all() {
        let mut t = GlobalPeerTable::new(2);
        assert!(!t.apply(day(0, 10, &[(1, 1.0), (2, 2.0)])).unwrap());
        assert!(!t.apply(day(0, 11, &[(1, 1.0)])).unwrap());
        assert_eq!(t.final_through(), None, "partition 1 has closed nothing");
        assert!(t.apply(day(1, 10, &[(3, 3.0)])).unwrap());
        assert_eq!(t.final_through(), Some(Day(10)));
        let d = t.day(Day(10)).unwrap();
        assert_eq!(d.peers.stats(&group()).map(|s| (s.n, s.median)), Some((3, 2.0)));
        assert_eq!(d.active_clients[&group().municipality], 3);
        assert!(t.day(Day(11)).is_none());
    }

    #[test]
    fn how_the_partitions_interleave_does_not_change_a_final_day() {
        // Each partition's days in its own order (one producer, one topic
        // partition); the two partitions interleaved in every way.
        let days = [day(0, 5, &[(1, 1.0)]), day(0, 6, &[]), day(1, 5, &[(2, 4.0), (3, 9.0)]), day(1, 6, &[(2, 5.0)])];
        let stats = |order: &[usize]| {
            let mut t = GlobalPeerTable::new(2);
            for &i in order {
                t.apply(days[i].clone()).unwrap();
            }
            let of = |d: i32| t.day(Day(d)).and_then(|d| d.peers.stats(&group()).copied());
            (t.final_through(), of(5), of(6))
        };
        let reference = stats(&[0, 1, 2, 3]);
        assert_eq!(reference.0, Some(Day(6)));
        assert_eq!(reference.1.map(|s| (s.n, s.median)), Some((3, 4.0)));
        for order in [[0, 2, 1, 3], [0, 2, 3, 1], [2, 0, 1, 3], [2, 0, 3, 1], [2, 3, 0, 1]] {
            assert_eq!(stats(&order), reference, "{order:?}");
        }
    }

    #[test]
    fn a_republished_or_foreign_day_changes_nothing() {
        let mut t = GlobalPeerTable::new(2);
        t.apply(day(0, 5, &[(1, 1.0)])).unwrap();
        t.apply(day(1, 5, &[(2, 3.0)])).unwrap();
        assert!(!t.apply(day(0, 5, &[(1, 100.0)])).unwrap(), "day 5 is final");
        assert_eq!(t.day(Day(5)).unwrap().peers.stats(&group()).unwrap().median, 2.0);
        let mut foreign = day(0, 6, &[]);
        foreign.partitions = 3;
        assert!(matches!(t.apply(foreign), Err(PeerDayError::PartitionCount { expected: 2, found: 3 })));
    }
}
