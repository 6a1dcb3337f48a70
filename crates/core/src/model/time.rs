//! Event time and the Swedish civil calendar.
//!
//! Windows are driven by event time, never by the wall clock. Days and months
//! are Swedish local days and months (Europe/Stockholm: CET, and CEST between
//! the last Sundays of March and October at 01:00 UTC, the EU rule), because
//! that is what working-time law, free-choice hours and invoices count in.
//! The offset is computed here by hand rather than through a time-zone
//! database so that the hot path is a few integer operations; a property test
//! checks it against `chrono-tz`.

use std::fmt;

/// Seconds since the Unix epoch, UTC: the time an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct EventTime(pub i64);

/// A Swedish local calendar day, as days since 1970-01-01 (local).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Day(pub i32);

/// A calendar month, as `year * 12 + (month - 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Month(pub i32);

/// Seconds in a day.
pub const DAY_SECS: i64 = 86_400;

impl EventTime {
    /// The time `secs` seconds later (earlier if negative).
    pub fn plus_secs(self, secs: i64) -> Self {
        EventTime(self.0.saturating_add(secs))
    }

    /// Offset of Swedish local time from UTC at this instant, in seconds.
    pub fn stockholm_offset_secs(self) -> i64 {
        let table = &*TRANSITIONS;
        if let (Some(first), Some(last)) = (table.first(), table.last())
            && self.0 >= *first
            && self.0 < *last
        {
            // Start from the year's estimate and step to the last transition
            // at or before t; an odd count of transitions means summer time.
            let mut i = (((self.0 - first) / 31_556_952) as usize * 2).min(table.len() - 1);
            while i > 0 && table[i] > self.0 {
                i -= 1;
            }
            while i + 1 < table.len() && table[i + 1] <= self.0 {
                i += 1;
            }
            return if i.is_multiple_of(2) { 7_200 } else { 3_600 };
        }
        self.stockholm_offset_computed()
    }

    fn stockholm_offset_computed(self) -> i64 {
        let (year, _, _) = civil_from_days(self.0.div_euclid(DAY_SECS));
        let start = last_sunday_utc_0100(year, 3);
        let end = last_sunday_utc_0100(year, 10);
        if self.0 >= start && self.0 < end { 7_200 } else { 3_600 }
    }

    /// Local seconds since 1970-01-01T00:00 local.
    fn local_secs(self) -> i64 {
        self.0 + self.stockholm_offset_secs()
    }

    /// The Swedish local day and the minutes since local midnight, with one
    /// time-zone lookup.
    pub fn local_day_and_minute(self) -> (Day, u32) {
        let local = self.local_secs();
        (Day(local.div_euclid(DAY_SECS) as i32), (local.rem_euclid(DAY_SECS) / 60) as u32)
    }

    /// The Swedish local day of this instant.
    pub fn day(self) -> Day {
        Day(self.local_secs().div_euclid(DAY_SECS) as i32)
    }

    /// Minutes since local midnight (0..1440).
    pub fn local_minute_of_day(self) -> u32 {
        (self.local_secs().rem_euclid(DAY_SECS) / 60) as u32
    }

    /// The Swedish local month of this instant.
    pub fn month(self) -> Month {
        self.day().month()
    }
}

impl fmt::Display for EventTime {
    /// RFC 3339 in UTC, e.g. `2026-03-01T07:30:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(DAY_SECS);
        let secs = self.0.rem_euclid(DAY_SECS);
        let (y, m, d) = civil_from_days(days);
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

impl Day {
    /// The local day of a calendar date.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Self {
        Day(days_from_civil(year, month, day) as i32)
    }

    /// (year, month 1–12, day 1–31).
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(i64::from(self.0))
    }

    /// The month this day is in.
    pub fn month(self) -> Month {
        let (y, m, _) = self.ymd();
        Month(y * 12 + m as i32 - 1)
    }

    /// Day of the week, 0 = Monday … 6 = Sunday.
    pub fn weekday(self) -> u32 {
        // 1970-01-01 was a Thursday (3).
        (i64::from(self.0) + 3).rem_euclid(7) as u32
    }

    /// The UTC instant of local midnight that starts this day.
    pub fn start(self) -> EventTime {
        let local = i64::from(self.0) * DAY_SECS;
        // The offset at local midnight; transitions happen at 02:00/03:00
        // local, so the offset an hour before midnight is the same.
        let guess = EventTime(local - 3_600);
        EventTime(local - guess.stockholm_offset_secs())
    }

    /// The day `n` days later.
    pub fn plus(self, n: i32) -> Self {
        Day(self.0 + n)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl Month {
    /// The month of a year and month number 1–12.
    pub fn from_ym(year: i32, month: u32) -> Self {
        Month(year * 12 + month as i32 - 1)
    }

    /// The first local day of the month.
    pub fn first_day(self) -> Day {
        Day::from_ymd(self.0.div_euclid(12), self.0.rem_euclid(12) as u32 + 1, 1)
    }

    /// The month after this one.
    pub fn next(self) -> Self {
        Month(self.0 + 1)
    }

    /// UTC instant at which the month starts (local midnight of day 1).
    pub fn start(self) -> EventTime {
        self.first_day().start()
    }

    /// UTC instant at which the month ends (exclusive).
    pub fn end(self) -> EventTime {
        self.next().start()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.0.div_euclid(12), self.0.rem_euclid(12) + 1)
    }
}

/// Summer-time starts and ends, 1990–2200, in order: the hot path's lookup table.
static TRANSITIONS: std::sync::LazyLock<Vec<i64>> = std::sync::LazyLock::new(|| {
    (1990..2200).flat_map(|y| [last_sunday_utc_0100(y, 3), last_sunday_utc_0100(y, 10)]).collect()
});

/// UTC instant 01:00 of the last Sunday of `month` in `year`.
fn last_sunday_utc_0100(year: i32, month: u32) -> i64 {
    let last = days_from_civil(year, month, 31);
    let weekday = (last + 3).rem_euclid(7); // 0 = Monday
    let sunday = last - (weekday - 6).rem_euclid(7);
    sunday * DAY_SECS + 3_600
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Offset, TimeZone};
    use proptest::prelude::*;

    #[test]
    fn summer_and_winter_offsets() {
        // 2026-03-29 01:00 UTC is the switch to CEST; 2026-10-25 01:00 UTC back.
        let switch_on = Day::from_ymd(2026, 3, 29).0 as i64 * DAY_SECS + 3_600;
        assert_eq!(EventTime(switch_on - 1).stockholm_offset_secs(), 3_600);
        assert_eq!(EventTime(switch_on).stockholm_offset_secs(), 7_200);
        let switch_off = Day::from_ymd(2026, 10, 25).0 as i64 * DAY_SECS + 3_600;
        assert_eq!(EventTime(switch_off - 1).stockholm_offset_secs(), 7_200);
        assert_eq!(EventTime(switch_off).stockholm_offset_secs(), 3_600);
    }

    #[test]
    fn local_day_and_minute() {
        // 2026-01-15T23:30Z is 00:30 on the 16th in Stockholm (CET).
        let t = EventTime(Day::from_ymd(2026, 1, 15).0 as i64 * DAY_SECS + 23 * 3600 + 1800);
        assert_eq!(t.day(), Day::from_ymd(2026, 1, 16));
        assert_eq!(t.local_minute_of_day(), 30);
        assert_eq!(t.month(), Month::from_ym(2026, 1));
    }

    #[test]
    fn calendar_helpers() {
        let d = Day::from_ymd(2026, 11, 25);
        assert_eq!(d.to_string(), "2026-11-25");
        assert_eq!(d.weekday(), 2, "2026-11-25 is a Wednesday");
        assert_eq!(Month::from_ym(2026, 12).next().to_string(), "2027-01");
        assert_eq!(Month::from_ym(2026, 7).start().to_string(), "2026-06-30T22:00:00Z");
        assert_eq!(EventTime(0).to_string(), "1970-01-01T00:00:00Z");
    }

    proptest! {
        #[test]
        fn offset_matches_the_time_zone_database(secs in 946_684_800i64..4_102_444_800i64) {
            let tz = chrono_tz::Europe::Stockholm;
            let utc = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            let expected = i64::from(tz.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc());
            prop_assert_eq!(EventTime(secs).stockholm_offset_secs(), expected);
            prop_assert_eq!(EventTime(secs).stockholm_offset_computed(), expected);
        }

        #[test]
        fn local_day_and_minute_agree_with_their_parts(secs in 946_684_800i64..4_102_444_800i64) {
            let t = EventTime(secs);
            prop_assert_eq!(t.local_day_and_minute(), (t.day(), t.local_minute_of_day()));
        }

        #[test]
        fn day_start_is_local_midnight(day in 10_957i32..47_482i32) {
            let d = Day(day);
            prop_assert_eq!(d.start().day(), d);
            prop_assert_eq!(d.start().local_minute_of_day(), 0);
        }

        #[test]
        fn civil_round_trip(days in -1_000_000i64..1_000_000i64) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
