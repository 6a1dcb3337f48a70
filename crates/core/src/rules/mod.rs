//! The fraud rule catalogue: one file per rule.
//!
//! Every rule is a small type implementing [`Rule`]. It reads the shared
//! state (day windows, client activity, staff history; see
//! [`crate::engine::state`]) and the peer table, and returns [`Finding`]s.
//! Rules do no I/O and read no clock: "now" is the engine's event time.
//!
//! A rule hooks into one or more moments:
//! - [`Rule::on_visit`]: every applied visit (hard rules on single events);
//! - [`Rule::on_invoice`]: an invoice whose period's time reports are
//!   complete (the time-report watermark passed the period end);
//! - [`Rule::record_peer_samples`] then [`Rule::on_day_closed`]: every
//!   provider when the watermark passes the end of a local day, so windows
//!   of silent providers close too.
//!
//! | rule id | pattern | kind |
//! |---|---|---|
//! | `invoiced-above-performed` | 1 | hard, per invoice line |
//! | `staff-double-booking` | 2 | hard, per visit |
//! | `staff-impossible-day` | 3 | hard (> 24 h) and soft (long day, long week, no day off) |
//! | `impossible-travel` | 4 | hard, per visit pair |
//! | `check-in-away-from-home` | 4 | hard, per visit |
//! | `manual-registration-share` | 5 | peers (median/MAD), daily |
//! | `rounded-visits` | 6 | peers (median/MAD), daily |
//! | `phantom-clients` | 7 | hard, per invoice line |
//! | `duplicate-billing` | 8 | hard, per invoice line |
//! | `volume-explosion` | 9 | own history vs municipality (CUSUM), weekly |
//! | `hours-per-client-above-peers` | 10 | peers (median/MAD) per service type, daily |
//! | `night-visits-private-provider` | 12 | hard with a count threshold, per visit |

pub mod attribution;
pub mod catalogue;
pub mod check_in_away_from_home;
pub mod duplicate_billing;
pub mod hours_per_client;
pub mod impossible_travel;
pub mod invoiced_above_performed;
pub mod manual_registration_share;
pub mod night_visits;
pub mod phantom_clients;
pub mod rounded_visits;
pub mod share;
pub mod staff_double_booking;
pub mod staff_impossible_day;
pub mod volume_explosion;

#[cfg(test)]
pub(crate) mod testkit;

use crate::alerting::{Finding, Severity};
use crate::baseline::PeerTable;
use crate::engine::state::{MunicipalityDay, ProviderState, SERVICES, StaffState};
use crate::model::{Day, EventTime, Invoice, ProviderId, Visit};

/// What every alert says about the rule that made it.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleInfo {
    /// Stable kebab-case id; part of the alert contract.
    pub id: &'static str,
    /// Bumped when the rule's logic changes meaning.
    pub version: u32,
    /// The pattern number of the domain catalogue.
    pub pattern: u32,
    /// A short name for people.
    pub name: &'static str,
    /// Days without a finding after which an episode is resolved.
    pub quiet_days: u32,
}

/// A visit, as a rule sees it after the engine applied it to the shared
/// windows. `staff` does not yet contain this visit in `recent`, but its
/// day minutes include it.
pub struct VisitContext<'a> {
    /// The visit.
    pub visit: &'a Visit,
    /// The local day of its check-in.
    pub day: Day,
    /// Minutes after local midnight of its check-in.
    pub minute_of_day: u32,
    /// Its provider's state; rules may update their own counters in today's bucket.
    pub provider: &'a mut ProviderState,
    /// The staff member's state.
    pub staff: &'a StaffState,
    /// Engine event time.
    pub now: EventTime,
}

impl VisitContext<'_> {
    /// The provider's bucket for the visit's day.
    pub fn day_bucket(&mut self) -> Option<&mut crate::engine::state::ProviderDay> {
        self.provider.days.bucket_mut(self.day)
    }
}

/// An invoice whose period is complete in the time reports.
pub struct InvoiceContext<'a> {
    /// The invoice.
    pub invoice: &'a Invoice,
    /// Its provider's state.
    pub provider: &'a mut ProviderState,
    /// Engine event time.
    pub now: EventTime,
}

/// One provider at the close of a local day.
pub struct DayContext<'a> {
    /// The day that closed.
    pub day: Day,
    /// The provider.
    pub provider_id: ProviderId,
    /// Its state.
    pub provider: &'a mut ProviderState,
    /// Clients with a visit in the activity window, per service type.
    pub active_by_service: [u32; SERVICES],
    /// Clients with any visit in the activity window.
    pub active_clients: u32,
    /// Length of the activity window in days (`windows.activity_days`).
    pub activity_days: u32,
    /// Peer statistics, recomputed for this day.
    pub peers: &'a PeerTable,
    /// Totals of the provider's municipality.
    pub municipality: MunicipalityDay,
    /// Engine event time.
    pub now: EventTime,
}

impl DayContext<'_> {
    /// `[start, end)` of the `days`-day window ending with the closed day.
    pub fn window(&self, days: u32) -> (EventTime, EventTime) {
        (self.day.plus(1 - days as i32).start(), self.day.plus(1).start())
    }
}

/// A fraud rule.
pub trait Rule: Send + Sync {
    /// Id, version, pattern and quiet period.
    fn info(&self) -> &'static RuleInfo;

    /// Called for every applied visit.
    fn on_visit(&self, _ctx: &mut VisitContext<'_>, _out: &mut Vec<Finding>) {}

    /// Called once per invoice when its period is complete.
    fn on_invoice(&self, _ctx: &mut InvoiceContext<'_>, _out: &mut Vec<Finding>) {}

    /// Called for every provider at a day close, before peer statistics are
    /// recomputed: record this provider's samples.
    fn record_peer_samples(&self, _ctx: &DayContext<'_>, _peers: &mut PeerTable) {}

    /// Called for every provider at a day close, after peer statistics are
    /// recomputed.
    fn on_day_closed(&self, _ctx: &mut DayContext<'_>, _out: &mut Vec<Finding>) {}
}

/// Severity from a value and ascending thresholds for medium, high, critical.
pub fn severity_by(value: f64, medium: f64, high: f64, critical: f64) -> Severity {
    if value >= critical {
        Severity::Critical
    } else if value >= high {
        Severity::High
    } else if value >= medium {
        Severity::Medium
    } else {
        Severity::Low
    }
}

/// Configuration of every rule, with defaults. Each rule's section is its
/// `Params` type, documented in the rule's file.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Ids of rules to switch off (all are on by default).
    pub disabled: Vec<String>,
    /// Pattern 1.
    pub invoiced_above_performed: invoiced_above_performed::Params,
    /// Pattern 2.
    pub staff_double_booking: staff_double_booking::Params,
    /// Pattern 3.
    pub staff_impossible_day: staff_impossible_day::Params,
    /// Pattern 4, travel.
    pub impossible_travel: impossible_travel::Params,
    /// Pattern 4, position.
    pub check_in_away_from_home: check_in_away_from_home::Params,
    /// Pattern 5.
    pub manual_registration_share: manual_registration_share::Params,
    /// Pattern 6.
    pub rounded_visits: rounded_visits::Params,
    /// Pattern 7.
    pub phantom_clients: phantom_clients::Params,
    /// Pattern 8.
    pub duplicate_billing: duplicate_billing::Params,
    /// Pattern 9.
    pub volume_explosion: volume_explosion::Params,
    /// Pattern 10.
    pub hours_per_client_above_peers: hours_per_client::Params,
    /// Pattern 12.
    pub night_visits_private_provider: night_visits::Params,
}

impl RulesConfig {
    /// The enabled rules, in catalogue order.
    pub fn build(&self) -> Vec<Box<dyn Rule>> {
        let all: Vec<Box<dyn Rule>> = vec![
            Box::new(invoiced_above_performed::InvoicedAbovePerformed(self.invoiced_above_performed.clone())),
            Box::new(staff_double_booking::StaffDoubleBooking(self.staff_double_booking.clone())),
            Box::new(staff_impossible_day::StaffImpossibleDay(self.staff_impossible_day.clone())),
            Box::new(impossible_travel::ImpossibleTravel(self.impossible_travel.clone())),
            Box::new(check_in_away_from_home::CheckInAwayFromHome(self.check_in_away_from_home.clone())),
            Box::new(manual_registration_share::ManualRegistrationShare(self.manual_registration_share.clone())),
            Box::new(rounded_visits::RoundedVisits(self.rounded_visits.clone())),
            Box::new(phantom_clients::PhantomClients(self.phantom_clients.clone())),
            Box::new(duplicate_billing::DuplicateBilling(self.duplicate_billing.clone())),
            Box::new(volume_explosion::VolumeExplosion(self.volume_explosion.clone())),
            Box::new(hours_per_client::HoursPerClientAbovePeers(self.hours_per_client_above_peers.clone())),
            Box::new(night_visits::NightVisitsPrivateProvider::new(self.night_visits_private_provider.clone())),
        ];
        all.into_iter().filter(|r| !self.disabled.iter().any(|d| d == r.info().id)).collect()
    }

    /// Checks that every disabled id names a rule.
    pub fn validate(&self) -> Result<(), String> {
        self.night_visits_private_provider.validate()?;
        for id in &self.disabled {
            if catalogue::by_id(id).is_none() {
                return Err(format!("rules.disabled: unknown rule id {id:?}"));
            }
        }
        Ok(())
    }

    /// The widest window any rule reads, in days.
    pub fn widest_window_days(&self) -> u32 {
        [
            self.manual_registration_share.window_days,
            self.rounded_visits.window_days,
            self.night_visits_private_provider.window_days,
        ]
        .into_iter()
        .max()
        .unwrap_or(1)
    }
}
