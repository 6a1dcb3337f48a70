//! A fixed-size ring of per-day buckets.

use crate::model::Day;

/// One bucket per local day for the last `capacity` days up to the newest
/// day written (the head). Writing a newer day moves the head and clears
/// the buckets that fall out; a day older than the horizon is refused.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DayRing<T> {
    head: Option<Day>,
    buckets: Box<[T]>,
}

impl<T: Default + Clone> DayRing<T> {
    /// An empty ring holding `capacity` days (at least 1).
    pub fn new(capacity: usize) -> Self {
        DayRing { head: None, buckets: vec![T::default(); capacity.max(1)].into_boxed_slice() }
    }

    /// Number of days held.
    pub fn capacity(&self) -> usize {
        self.buckets.len()
    }

    /// The newest day written, if any.
    pub fn head(&self) -> Option<Day> {
        self.head
    }

    fn slot(&self, day: Day) -> usize {
        (day.0 as i64).rem_euclid(self.buckets.len() as i64) as usize
    }

    /// Moves the head forward to `day`, clearing the buckets of the days that
    /// leave the horizon. A day at or before the head changes nothing.
    pub fn advance_to(&mut self, day: Day) {
        match self.head {
            None => self.head = Some(day),
            Some(head) if day > head => {
                let gap = (day.0 - head.0) as usize;
                if gap >= self.buckets.len() {
                    self.buckets.iter_mut().for_each(|b| *b = T::default());
                } else {
                    for d in head.0 + 1..=day.0 {
                        let s = self.slot(Day(d));
                        self.buckets[s] = T::default();
                    }
                }
                self.head = Some(day);
            }
            Some(_) => {}
        }
    }

    /// The bucket of `day` for writing, moving the head forward if `day` is
    /// newer. `None` if `day` is older than the horizon.
    pub fn bucket_mut(&mut self, day: Day) -> Option<&mut T> {
        self.advance_to(day);
        if !self.holds(day) {
            return None;
        }
        let s = self.slot(day);
        Some(&mut self.buckets[s])
    }

    fn holds(&self, day: Day) -> bool {
        match self.head {
            Some(head) => day <= head && (head.0 - day.0) < self.buckets.len() as i32,
            None => false,
        }
    }

    /// The bucket of `day`; the default (empty) bucket for a day never
    /// written, in the future, or beyond the horizon.
    pub fn get(&self, day: Day) -> T {
        if self.holds(day) { self.buckets[self.slot(day)].clone() } else { T::default() }
    }

    /// Folds the buckets of the `days` days ending at `end` (inclusive),
    /// oldest first. Days outside the horizon count as empty.
    pub fn fold<A>(&self, end: Day, days: u32, init: A, mut f: impl FnMut(A, &T) -> A) -> A {
        let mut acc = init;
        let Some(head) = self.head else { return acc };
        let first = (end.0 - days as i32 + 1).max(head.0 - self.buckets.len() as i32 + 1);
        let last = end.0.min(head.0);
        if first > last {
            return acc;
        }
        // One division for the first slot, then walk the ring.
        let mut slot = self.slot(Day(first));
        for _ in first..=last {
            acc = f(acc, &self.buckets[slot]);
            slot += 1;
            if slot == self.buckets.len() {
                slot = 0;
            }
        }
        acc
    }

    /// Sums `value` over the `days` days ending at `end`.
    pub fn sum(&self, end: Day, days: u32, value: impl Fn(&T) -> u64) -> u64 {
        self.fold(end, days, 0u64, |acc, b| acc + value(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sums_a_sliding_window() {
        let mut r: DayRing<u32> = DayRing::new(7);
        for d in 0..10 {
            *r.bucket_mut(Day(d)).unwrap() += d as u32;
        }
        // Window of 3 days ending at day 9: 7 + 8 + 9.
        assert_eq!(r.sum(Day(9), 3, |b| u64::from(*b)), 24);
        // Only 7 days are held: 3..=9.
        assert_eq!(r.sum(Day(9), 30, |b| u64::from(*b)), (3..=9).sum::<u64>());
        assert_eq!(r.get(Day(2)), 0, "evicted");
    }

    #[test]
    fn refuses_days_older_than_the_horizon() {
        let mut r: DayRing<u32> = DayRing::new(7);
        r.bucket_mut(Day(100)).unwrap();
        assert!(r.bucket_mut(Day(94)).is_some());
        assert!(r.bucket_mut(Day(93)).is_none());
    }

    #[test]
    fn a_long_gap_clears_everything() {
        let mut r: DayRing<u32> = DayRing::new(5);
        *r.bucket_mut(Day(1)).unwrap() = 5;
        r.advance_to(Day(100));
        assert_eq!(r.sum(Day(100), 5, |b| u64::from(*b)), 0);
        assert_eq!(r.head(), Some(Day(100)));
    }

    proptest! {
        /// Any arrival order of the same (day, value) pairs within the
        /// horizon gives the same window sums as in-order arrival.
        #[test]
        fn arrival_order_within_the_horizon_does_not_matter(
            mut items in proptest::collection::vec((0i32..30, 1u32..100), 1..200),
            seed in any::<u64>(),
        ) {
            let capacity = 40;
            let mut sorted = items.clone();
            sorted.sort();
            let mut in_order: DayRing<u32> = DayRing::new(capacity);
            for (d, v) in &sorted { *in_order.bucket_mut(Day(*d)).unwrap() += v; }
            // A deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..items.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                items.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut shuffled: DayRing<u32> = DayRing::new(capacity);
            for (d, v) in &items { *shuffled.bucket_mut(Day(*d)).unwrap() += v; }
            for end in 0..30 {
                for len in [1, 7, 30] {
                    prop_assert_eq!(in_order.sum(Day(end), len, |b| u64::from(*b)), shuffled.sum(Day(end), len, |b| u64::from(*b)));
                }
            }
        }

        /// A window sum equals the plain sum of the values inside it, for
        /// in-order arrival.
        #[test]
        fn window_sum_matches_a_naive_sum(items in proptest::collection::vec((0i32..200, 1u32..100), 1..300), end in 0i32..200, len in 1u32..60) {
            let mut items = items;
            items.sort();
            let mut r: DayRing<u32> = DayRing::new(60);
            for (d, v) in &items { *r.bucket_mut(Day(*d)).unwrap() += v; }
            let head = items.last().unwrap().0;
            let naive: u64 = items.iter()
                .filter(|(d, _)| *d <= end && *d > end - len as i32 && *d > head - 60)
                .map(|(_, v)| u64::from(*v)).sum();
            prop_assert_eq!(r.sum(Day(end), len, |b| u64::from(*b)), naive);
        }
    }
}
