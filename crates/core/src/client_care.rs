//! What the staff stage keeps about one client, across providers: the
//! minutes of care each provider registered for the client, by week, for
//! the last [`CLIENT_WEEKS`] weeks (the client rules, such as
//! `hours-collapse-after-provider-change`, compare the weeks before and
//! after a change of provider).
//!
//! A client is one pseudonymous client key: a client has one home
//! municipality, and the visits of every provider that serves the client
//! reach the one staff-stage partition that owns the key.

use crate::model::{
    ClientKey, Day, EventId, EventTime, Month, MunicipalityCode, ProviderId, ProviderKey, ServiceType, Visit,
};
use crate::state::SERVICES;
use crate::state::week_of;

/// What the client rules need of a visit (the client copy of a visit is
/// sent to the stage beside the staff copy, so it is kept small).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CareVisit {
    /// The time report's id.
    pub event_id: EventId,
    /// Who bills for the visit.
    pub provider: ProviderId,
    /// Who pays.
    pub municipality: MunicipalityCode,
    /// Pseudonymous client.
    pub client: ClientKey,
    /// Kind of care.
    pub service: ServiceType,
    /// Start of the visit.
    pub check_in: EventTime,
    /// Its duration in whole minutes.
    pub minutes: u32,
}

impl CareVisit {
    /// The client rules' part of `visit`.
    pub fn of(visit: &Visit) -> Self {
        CareVisit {
            event_id: visit.event_id.clone(),
            provider: visit.provider,
            municipality: visit.municipality,
            client: visit.client,
            service: visit.service,
            check_in: visit.check_in,
            minutes: visit.duration().0,
        }
    }

    /// The provider and municipality it is billed under.
    pub fn provider_key(&self) -> ProviderKey {
        ProviderKey { provider: self.provider, municipality: self.municipality }
    }
}

/// A client rule's question about a client's month of one service type,
/// from the staff stage (which sees every provider's visits of the client)
/// to the provider stage of one of the providers (which has the reference
/// data): see [`crate::rules::Rule::grant_question`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrantQuestion {
    /// The provider asked about (the visit's), in the municipality paying it.
    pub provider: ProviderKey,
    /// The client.
    pub client: ClientKey,
    /// The service type.
    pub service: ServiceType,
    /// The calendar month.
    pub month: Month,
    /// The check-in of the visit that raised it.
    pub check_in: EventTime,
    /// Every provider's minutes in the month, through the visit.
    pub total_minutes: u32,
    /// The asked provider's minutes in the month, through the visit.
    pub own_minutes: u32,
    /// The most minutes another provider has in the month.
    pub others_max_minutes: u32,
    /// Providers with minutes in the month.
    pub providers: u32,
    /// The visit, then the newest visit of each other provider.
    pub evidence: Vec<EventId>,
}

/// Weeks of care a client keeps: the newest week with a visit and the ones
/// before it.
pub const CLIENT_WEEKS: usize = 10;

/// The ring slot of the week of Monday `week`.
fn slot(week: Day) -> usize {
    week.0.div_euclid(7).rem_euclid(CLIENT_WEEKS as i32) as usize
}

/// One provider's care of the client: minutes per week slot, and a time
/// report of it for the evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProviderCare {
    /// The provider, in the municipality paying it.
    pub provider: ProviderKey,
    /// Minutes per week slot (saturating at 65,535).
    pub weeks: [u16; CLIENT_WEEKS],
    /// Days with a visit per week slot, one bit per weekday (Monday the
    /// lowest): distinct days whatever order the visits come in.
    pub days: [u8; CLIENT_WEEKS],
    /// The newest of its visits to the client (by check-in).
    pub last_visit: (Day, EventId),
    /// Its minutes in the two newest calendar months it has visits in, by
    /// service type (see [`ClientCare::record_month`]).
    pub months: [MonthCare; 2],
}

/// One provider's minutes for the client in one calendar month, by service
/// type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MonthCare {
    /// The month (`Month(i32::MIN)`: none yet).
    pub month: Month,
    /// Minutes per service type ([`ServiceType::index`]).
    pub minutes: [u32; SERVICES],
}

impl Default for MonthCare {
    fn default() -> Self {
        MonthCare { month: Month(i32::MIN), minutes: [0; SERVICES] }
    }
}

impl ProviderCare {
    /// Its minutes for the client in `month` of `service` (0 if the month
    /// is not one of the two it keeps).
    pub fn month_minutes(&self, month: Month, service: ServiceType) -> u32 {
        self.months.iter().find(|m| m.month == month).map_or(0, |m| m.minutes[service.index()])
    }
}

/// Everything the staff stage keeps about one client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientCare {
    /// The Monday of the newest week with a visit: the slots of the
    /// [`CLIENT_WEEKS`] weeks ending with it are the ring's.
    pub head: Day,
    /// The providers with minutes in the ring, in provider order.
    pub providers: Vec<ProviderCare>,
    /// The newest day with a visit (by check-in).
    pub last_day: Day,
}

impl ClientCare {
    /// Most providers kept per client (more in ten weeks is itself odd; the
    /// one with the fewest minutes is forgotten).
    pub const PROVIDERS: usize = 8;

    /// A client with one visit: `minutes` on `day` by `provider`.
    pub fn new(provider: ProviderKey, day: Day, minutes: u32, event: EventId) -> Self {
        let mut care = ClientCare { head: week_of(day), providers: Vec::new(), last_day: day };
        care.record(provider, day, minutes, event);
        care
    }

    /// Records `minutes` of care on `day` by `provider` (visit `event`). A
    /// week after the newest moves the ring on, emptying the weeks that
    /// leave it and dropping the providers left without minutes; a day
    /// before the ring's oldest week is not counted.
    pub fn record(&mut self, provider: ProviderKey, day: Day, minutes: u32, event: EventId) {
        let week = week_of(day);
        if week > self.head {
            let leaving = ((week.0 - self.head.0) / 7).min(CLIENT_WEEKS as i32);
            for k in 0..leaving {
                let s = slot(week.plus(-7 * k));
                for p in &mut self.providers {
                    p.weeks[s] = 0;
                    p.days[s] = 0;
                }
            }
            self.providers.retain(|p| p.weeks.iter().any(|&m| m > 0));
            self.head = week;
        } else if week <= self.head.plus(-7 * CLIENT_WEEKS as i32) {
            return;
        }
        self.last_day = self.last_day.max(day);
        let at = match self.providers.binary_search_by(|p| p.provider.cmp(&provider)) {
            Ok(at) => at,
            Err(at) => {
                self.providers.insert(
                    at,
                    ProviderCare {
                        provider,
                        weeks: [0; CLIENT_WEEKS],
                        days: [0; CLIENT_WEEKS],
                        last_visit: (day, event.clone()),
                        months: [MonthCare::default(); 2],
                    },
                );
                at
            }
        };
        let care = &mut self.providers[at];
        let m = &mut care.weeks[slot(week)];
        *m = m.saturating_add(u16::try_from(minutes).unwrap_or(u16::MAX));
        care.days[slot(week)] |= 1 << day.weekday();
        if day >= care.last_visit.0 {
            care.last_visit = (day, event);
        }
        if self.providers.len() > Self::PROVIDERS {
            let weight = |p: &ProviderCare| (p.weeks.iter().map(|&m| u64::from(m)).sum::<u64>(), p.provider);
            if let Some(least) = (0..self.providers.len()).min_by_key(|&i| weight(&self.providers[i])) {
                self.providers.remove(least);
            }
        }
    }

    /// Adds `minutes` of `service` in `month` to `provider`'s month minutes
    /// (after [`Self::record`] of the same visit, which keeps the
    /// provider). Each provider keeps its two newest months: a visit of an
    /// older month is not counted.
    pub fn record_month(&mut self, provider: ProviderKey, month: Month, service: ServiceType, minutes: u32) {
        let Ok(at) = self.providers.binary_search_by(|p| p.provider.cmp(&provider)) else { return };
        let months = &mut self.providers[at].months;
        let slot = match months.iter().position(|m| m.month == month) {
            Some(i) => i,
            None => {
                let oldest = if months[0].month <= months[1].month { 0 } else { 1 };
                if months[oldest].month > month {
                    return;
                }
                months[oldest] = MonthCare { month, minutes: [0; SERVICES] };
                oldest
            }
        };
        let m = &mut months[slot].minutes[service.index()];
        *m = m.saturating_add(minutes);
    }

    /// Whether the week of Monday `week` is in the ring.
    pub fn holds(&self, week: Day) -> bool {
        week <= self.head && week > self.head.plus(-7 * CLIENT_WEEKS as i32)
    }

    /// `provider`'s minutes in the week of Monday `week` (0 outside the ring).
    pub fn minutes(&self, provider: &ProviderCare, week: Day) -> u32 {
        if self.holds(week) { u32::from(provider.weeks[slot(week)]) } else { 0 }
    }

    /// `provider`'s minutes in the `weeks` weeks from the week of Monday
    /// `first` on.
    pub fn minutes_in(&self, provider: &ProviderCare, first: Day, weeks: u32) -> u64 {
        (0..weeks as i32).map(|k| u64::from(self.minutes(provider, first.plus(7 * k)))).sum()
    }

    /// `provider`'s days with a visit in the `weeks` weeks from the week of
    /// Monday `first` on.
    pub fn days_in(&self, provider: &ProviderCare, first: Day, weeks: u32) -> u32 {
        (0..weeks as i32)
            .map(|k| first.plus(7 * k))
            .filter(|&w| self.holds(w))
            .map(|w| provider.days[slot(w)].count_ones())
            .sum()
    }

    /// Every provider's minutes in the `weeks` weeks from the week of
    /// Monday `first` on.
    pub fn total_in(&self, first: Day, weeks: u32) -> u64 {
        self.providers.iter().map(|p| self.minutes_in(p, first, weeks)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MunicipalityCode;
    use crate::rules::testkit::provider;

    fn key(n: u64) -> ProviderKey {
        ProviderKey { provider: provider(n), municipality: MunicipalityCode::parse("2480").expect("code") }
    }

    #[test]
    fn the_ring_keeps_ten_weeks_by_provider_and_forgets_the_weeks_that_leave_it() {
        let monday = week_of(Day(20_000));
        let mut c = ClientCare::new(key(1), monday, 60, EventId::new("a"));
        c.record(key(1), monday.plus(3), 30, EventId::new("b"));
        c.record(key(2), monday.plus(7), 45, EventId::new("c"));
        assert_eq!(c.head, monday.plus(7));
        assert_eq!(c.minutes_in(&c.providers[0], monday, 2), 90);
        assert_eq!(c.total_in(monday, 2), 135);
        assert_eq!(c.providers[0].last_visit.1, EventId::new("b"));
        // Two visits on one day are one day; a day out of order counts.
        c.record(key(1), monday, 15, EventId::new("b2"));
        c.record(key(1), monday.plus(1), 15, EventId::new("b3"));
        assert_eq!(c.days_in(&c.providers[0], monday, 2), 3);
        // Ten weeks after the first: provider 1's weeks have left the ring.
        c.record(key(2), monday.plus(70), 20, EventId::new("d"));
        assert_eq!(c.providers.len(), 1, "{c:?}");
        assert_eq!(c.total_in(monday.plus(7), 10), 65);
        // A visit before the ring's oldest week is not counted.
        c.record(key(3), monday, 500, EventId::new("e"));
        assert_eq!(c.providers.len(), 1);
    }

    #[test]
    fn each_provider_keeps_its_two_newest_months_by_service() {
        let day = Day::from_ymd(2026, 3, 30);
        let (march, april, may) = (day.month(), day.plus(5).month(), day.plus(35).month());
        let (care, service) = (ServiceType::PersonalCare, ServiceType::Service);
        let mut c = ClientCare::new(key(1), day, 30, EventId::new("a"));
        c.record_month(key(1), march, care, 30);
        c.record_month(key(1), march, service, 20);
        c.record(key(1), day.plus(5), 40, EventId::new("b"));
        c.record_month(key(1), april, care, 40);
        let p = &c.providers[0];
        assert_eq!((p.month_minutes(march, care), p.month_minutes(march, service)), (30, 20));
        assert_eq!(p.month_minutes(april, care), 40);
        // A third month takes the oldest's place; a visit of a month older
        // than both is not counted; a provider not recorded is ignored.
        c.record(key(1), day.plus(35), 10, EventId::new("c"));
        c.record_month(key(1), may, care, 10);
        c.record_month(key(1), march, care, 99);
        c.record_month(key(2), may, care, 99);
        let p = &c.providers[0];
        assert_eq!(
            (p.month_minutes(march, care), p.month_minutes(april, care), p.month_minutes(may, care)),
            (0, 40, 10)
        );
        assert_eq!(c.providers.len(), 1);
    }
}
