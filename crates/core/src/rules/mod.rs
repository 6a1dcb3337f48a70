//! The fraud rule catalogue: one file per rule, listed once in the
//! registry below.
//!
//! Every rule is a small type implementing [`Rule`]. It reads the shared
//! state (day windows, client activity, staff history; see
//! [`crate::state`]) and the peer table, and returns [`Finding`]s built
//! with [`Finding::new`]. Rules do no I/O and read no clock: "now" is the
//! engine's event time.
//!
//! A rule hooks into one or more moments:
//! - [`Rule::on_visit`]: every applied visit (hard rules on single events);
//! - [`Rule::on_invoice`]: an invoice whose period's time reports are
//!   complete (the time-report watermark passed the period end);
//! - [`Rule::record_peer_samples`] then [`Rule::on_day_closed`]: every
//!   provider when the watermark passes the end of a local day, so windows
//!   of silent providers close too;
//! - [`Rule::on_reference_visit`]: every applied visit again, with reference
//!   data on, once the reference data is known through the time it is
//!   judged (its provider's clock, or its check-in plus
//!   `core.reference.visit_grace`), in the provider's arrival order;
//! - [`Rule::on_staff_visit`]: in the staff stage (rules whose
//!   [`RuleInfo::stage`] is [`RuleStage::Staff`]), every visit of a staff
//!   member whatever provider registered it, in check-in order;
//! - [`Rule::on_client_visit`]: in the staff stage too, every visit of a
//!   client whatever provider registered it, with the client's care by
//!   week and provider (client rules, [`Rule::sees_clients`]).
//!
//! # Declared once
//!
//! Each rule's file declares, once, its identity (`INFO`: id, version,
//! pattern, name, quiet days), its `Params` with their defaults (serde,
//! unknown keys rejected), and its [`RuleSpec`]: the parameters' range
//! checks (errors name the field, e.g.
//! `rules.impossible_travel.max_speed_kmh must be > 0`), its constructor,
//! the window it reads and, for a rule that counts its own events per day,
//! its slot in [`crate::state::ProviderDay::rule_counts`], and its own
//! per-provider state ([`RuleSpec::ProviderState`], `()` if none) with its
//! eviction ([`RuleSpec::evict`]). The `registry!` below lists every rule
//! once, with its `[core.rules.*]` TOML section, and generates
//! [`RulesConfig`] (fields, `build`, `validate`), [`RuleStates`] (one field
//! per rule, named by its section, of the rule's state type), the
//! catalogue [`ALL`] and the rule table of the README
//! ([`catalogue_markdown`]). Adding a rule, with or without state, is one
//! new file and one line: the engine and `state.rs` do not change.
//!
//! # Explanations
//!
//! A rule writes its finding's explanation in Swedish and English at one
//! place in its file, from the same figures, into a [`crate::text::Text`]
//! (numbers, dates and counts through [`crate::text::sv`] and
//! [`crate::text::en`]): every figure it decided on, the limit included.
//! Each rule's tests check, on a finding of its must-fire scenario, that
//! the Swedish names the same figures as the English, with no English left
//! and the terms of the trade (`testkit::assert_bilingual`).
//!
//! # Rule state
//!
//! Each provider's [`Provider`] (`ProviderState<RuleStates>`) holds every
//! registered rule's state in `rules`; a rule reaches its own through the
//! context it is called with, e.g. `ctx.provider.rules.duplicate_billing`.
//! The state of a disabled rule stays at its default. The snapshot
//! serializes `RuleStates` field by field, so its layout follows the
//! registry: adding, removing or reordering a registered rule, or changing
//! a rule's state type, changes the layout. The snapshot fingerprint
//! covers the registered rules' ids and versions (see
//! `engine::snapshot::state_fingerprint`), so a build with other rules
//! rebuilds its state from the inputs instead of misreading a snapshot; a
//! rule that changes its state type without a new version must bump the
//! snapshot format version.
//!
//! Ids are part of the alert contract: change an id never, a version when
//! a rule's meaning changes. Rules evaluated daily over a 30-day window
//! keep an episode open for the window's length, so a provider hovering at
//! the threshold does not open and resolve episodes week after week.
//!
//! | rule id | pattern | kind |
//! |---|---|---|
//! | `invoiced-above-performed` | 1 | excess accumulated across invoices (CUSUM), per invoice |
//! | `staff-double-booking` | 2 | hard, per visit |
//! | `staff-impossible-day` | 3 | hard (> 24 h) and soft (long day, long week, no day off) |
//! | `impossible-travel` | 4 | hard, per visit pair |
//! | `check-in-away-from-home` | 4 | hard, per visit |
//! | `manual-registration-share` | 5 | peers (median/MAD) and a confidence bound over 3–30 days, daily |
//! | `rounded-visits` | 6 | peers (median/MAD) and a confidence bound over 3–30 days, daily |
//! | `phantom-clients` | 7 | hard, per invoice line |
//! | `duplicate-billing` | 8 | hard, per invoice line |
//! | `volume-explosion` | 9 | own history vs municipality (CUSUM), weekly |
//! | `hours-per-client-above-peers` | 10 | peers (median/MAD) per service type, daily |
//! | `hours-per-client-rise` | 10 | own history per client (confidence bound on the risen share), daily |
//! | `night-visits-private-provider` | 12 | hard with a count threshold, per visit |
//! | `relative-employment` | 13 | share of a staff member's home care at one client, per visit |
//! | `billing-during-absence` | 11 | hard against the reference data (absences), daily and per invoice |
//! | `visit-during-absence` | 11 | hard against the reference data (absences) as of the visit, per visit |
//! | `above-granted-hours` | 15 | hard against the reference data (decisions), daily and per invoice |
//! | `provider-without-permit` | 16 | hard against the reference data (provider register), daily and per invoice |
//! | `visit-without-permit` | 16 | hard against the reference data (provider register) as of the visit, per visit |
//! | `visit-above-granted-hours` | 15 | hard against the reference data (decisions) as of the visit, per visit |

/// Declares a rule's parameters once: each field with its doc comment, its
/// type and its default. Generates the serde struct (unknown keys are
/// errors, a missing key takes its default) and its `Default`.
macro_rules! params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }
    };
}

pub mod above_granted_hours;
pub mod attribution;
pub mod billing_during_absence;
pub mod catalogue;
pub mod check;
pub mod check_in_away_from_home;
pub mod client_hours_above_granted;
pub mod duplicate_billing;
pub mod granted_hours_utilisation;
pub mod history;
pub mod hours_collapse_after_change;
pub mod hours_per_client;
pub mod hours_per_client_rise;
pub mod impossible_travel;
pub mod invoiced_above_performed;
pub mod manual_registration_share;
pub mod night_visits;
pub mod phantom_clients;
pub mod provider_without_permit;
pub mod reference_support;
pub mod relative_employment;
pub mod rounded_visits;
pub mod share;
pub mod staff_double_booking;
pub mod staff_impossible_day;
pub mod timeline;
pub mod visit_above_granted_hours;
pub mod visit_during_absence;
pub mod visit_without_permit;
pub mod volume_explosion;

#[cfg(test)]
pub(crate) mod testkit;

use crate::baseline::{PeerTable, ReferenceTable};
pub use crate::finding::{Finding, RuleInfo, RuleStage, Severity};
use crate::model::{Day, EventTime, Invoice, ProviderId, Visit};
use crate::state::{MunicipalityDay, ProviderState, RULE_SLOTS, ReferenceVisit, SERVICES, StaffState};

/// One provider's state as rules see it: the shared windows and, in
/// `rules`, every rule's own state.
pub type Provider = ProviderState<RuleStates>;

/// A visit, as a provider-stage rule sees it after the engine applied it
/// to the shared windows.
pub struct VisitContext<'a> {
    /// The visit.
    pub visit: &'a Visit,
    /// The local day of its check-in.
    pub day: Day,
    /// Minutes after local midnight of its check-in.
    pub minute_of_day: u32,
    /// Its provider's state; rules may update their own counters in today's bucket.
    pub provider: &'a mut Provider,
    /// Engine event time.
    pub now: EventTime,
    /// Whether reference data is in use (`core.reference.enabled`): a rule
    /// that compares with it at the day's decision keeps nothing without it.
    pub reference: bool,
}

impl VisitContext<'_> {
    /// The provider's bucket for the visit's day.
    pub fn day_bucket(&mut self) -> Option<&mut crate::state::ProviderDay> {
        self.provider.days.bucket_mut(self.day)
    }
}

/// A visit, as a staff rule sees it in the staff stage: every visit of the
/// staff member whatever provider registered it, in the order they arrived
/// (told by their providers' clocks, the same in every partitioning; a
/// late report comes after visits that checked in later). `staff` holds
/// the visits taken before in `recent` (not this one) and this one in its
/// day minutes.
pub struct StaffVisitContext<'a> {
    /// The visit.
    pub visit: &'a Visit,
    /// The local day of its check-in.
    pub day: Day,
    /// The staff member's state.
    pub staff: &'a StaffState,
    /// Event time of the decision (the visit's arrival clock).
    pub now: EventTime,
}

/// A visit, as a client rule sees it in the staff stage: after it is
/// recorded in the client's care, in arrival-clock order with the visits
/// of every provider that serves the client.
pub struct ClientVisitContext<'a> {
    /// The visit.
    pub visit: &'a crate::client_care::CareVisit,
    /// The local day of its check-in.
    pub day: Day,
    /// The client's care by week and provider, this visit included.
    pub client: &'a crate::client_care::ClientCare,
    /// The client's newest visit day before this visit (none: its first).
    pub previous_day: Option<Day>,
    /// Event time of the decision (the visit's arrival clock).
    pub now: EventTime,
}

/// A visit, as a rule that compares it with the reference data sees it:
/// once the reference data is known through the time it is judged
/// ([`ReferenceVisit::decided`], the table is asked as of it), in the order
/// the provider's visits arrived.
pub struct ReferenceVisitContext<'a> {
    /// The visit, as it waited.
    pub visit: &'a ReferenceVisit,
    /// The local day of its check-in.
    pub day: Day,
    /// Its provider.
    pub provider_id: ProviderId,
    /// Its provider's state.
    pub provider: &'a mut Provider,
    /// The reference data, known through `now` at least.
    pub reference: &'a ReferenceTable,
    /// Event time of the decision ([`ReferenceVisit::decided`]): ask the
    /// reference data as of it.
    pub now: EventTime,
}

/// A staff-stage question about a client's month
/// ([`Rule::grant_question`]), as the provider stage of the provider it
/// asks about answers it: once the reference data is known through its
/// judging time (`now`; the table is asked as of it).
pub struct GrantQuestionContext<'a> {
    /// The question.
    pub question: &'a crate::client_care::GrantQuestion,
    /// The state of the provider it asks about.
    pub provider: &'a mut Provider,
    /// The reference data, known through `now` at least.
    pub reference: &'a ReferenceTable,
    /// Its judging time: the decision time of the findings.
    pub now: EventTime,
}

/// An invoice whose period is complete in the time reports.
pub struct InvoiceContext<'a> {
    /// The invoice.
    pub invoice: &'a Invoice,
    /// Its provider's state.
    pub provider: &'a mut Provider,
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
    pub provider: &'a mut Provider,
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
    /// The reference data, known through `now` at least: in
    /// [`Rule::on_day_closed`] only (the day's decision waits for it); none
    /// in [`Rule::record_peer_samples`], which runs when the day closes.
    pub reference: Option<&'a ReferenceTable>,
}

impl DayContext<'_> {
    /// `[start, end)` of the `days`-day window ending with the closed day.
    pub fn window(&self, days: u32) -> (EventTime, EventTime) {
        (self.day.plus(1 - days as i32).start(), self.day.plus(1).start())
    }
}

/// A rule's registration: everything the registry needs to configure,
/// check, build and document it. Implemented once per rule, in its file.
pub trait RuleSpec: Sized + 'static {
    /// Id, version, pattern, name and quiet period.
    const INFO: &'static RuleInfo;
    /// The rule's slot in [`crate::state::ProviderDay::rule_counts`] and
    /// [`crate::state::ProviderState::rule_recent`], if it counts its own
    /// events per day. Distinct and below [`RULE_SLOTS`] (checked at
    /// compile time by the registry).
    const SLOT: Option<usize> = None;
    /// The parameters, with defaults (`[core.rules.<section>]`).
    type Params: Default + Clone + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned;
    /// What the rule keeps per provider (`()` if nothing), in
    /// `Provider::rules.<section>`; starts at its default. Part of the
    /// engine's snapshot: serialize hash maps in key order (see
    /// [`crate::state::sorted_map`]) so that the same state gives the same bytes.
    type ProviderState: Default
        + Clone
        + PartialEq
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync;
    /// Checks every parameter's range; an error names the field (without
    /// the `rules.<section>.` prefix, which the registry adds).
    fn validate(params: &Self::Params) -> Result<(), String>;
    /// The rule with these (validated) parameters.
    fn new(params: Self::Params) -> Self;
    /// Days of the provider's day window the rule reads (0: none beyond
    /// the activity window).
    fn window_days(_params: &Self::Params) -> u32 {
        0
    }
    /// Drops what the rule no longer needs from a provider's state, after
    /// the close of local day `closed` (whether the rule is enabled or not).
    fn evict(_state: &mut Self::ProviderState, _closed: Day) {}
}

/// The identity of a rule object: its registration's [`RuleSpec::INFO`].
pub trait Identity {
    /// Id, version, pattern and quiet period.
    fn info(&self) -> &'static RuleInfo;
}

impl<T: RuleSpec> Identity for T {
    fn info(&self) -> &'static RuleInfo {
        T::INFO
    }
}

/// A fraud rule.
pub trait Rule: Identity + Send + Sync {
    /// Called for every applied visit.
    fn on_visit(&self, _ctx: &mut VisitContext<'_>, _out: &mut Vec<Finding>) {}

    /// Called, with reference data on, for every applied visit once the
    /// reference data is known through the time it is judged, in the
    /// provider's arrival order.
    fn on_reference_visit(&self, _ctx: &mut ReferenceVisitContext<'_>, _out: &mut Vec<Finding>) {}

    /// Called, in the staff stage, for every visit of a staff member in
    /// arrival order (rules of [`RuleStage::Staff`]).
    fn on_staff_visit(&self, _ctx: &StaffVisitContext<'_>, _out: &mut Vec<Finding>) {}

    /// Called in the staff stage for the client copy of every visit, in
    /// arrival-clock order with every provider's visits of the client
    /// (rules of [`RuleStage::Staff`]).
    fn on_client_visit(&self, _ctx: &ClientVisitContext<'_>, _out: &mut Vec<Finding>) {}

    /// Whether the rule implements [`Self::on_client_visit`] or
    /// [`Self::grant_question`] (a client rule): the staff stage gets the
    /// client copies of the visits only when the base configuration runs
    /// one.
    fn sees_clients(&self) -> bool {
        false
    }

    /// With reference data on: called in the staff stage, after
    /// [`Self::on_client_visit`], for the client copy of every visit. A
    /// question about the client's month for the provider stage of the
    /// visit's provider, which has the reference data: it is answered in
    /// [`Self::on_grant_question`] once the reference data is known through
    /// the question's judging time.
    fn grant_question(&self, _ctx: &ClientVisitContext<'_>) -> Option<crate::client_care::GrantQuestion> {
        None
    }

    /// Called in the provider stage for each question of
    /// [`Self::grant_question`], in the order of their judging times, once
    /// the reference data is known through it (rules of
    /// [`RuleStage::Staff`]).
    fn on_grant_question(&self, _ctx: &mut GrantQuestionContext<'_>, _out: &mut Vec<Finding>) {}

    /// Called once per invoice when its period is complete.
    fn on_invoice(&self, _ctx: &mut InvoiceContext<'_>, _out: &mut Vec<Finding>) {}

    /// Called for every provider at a day close, before peer statistics are
    /// recomputed: record this provider's samples.
    fn record_peer_samples(&self, _ctx: &DayContext<'_>, _peers: &mut PeerTable) {}

    /// With reference data on: called for every provider once the
    /// reference data is known through a closed day's decision time, in
    /// day order and before the day's decision (`ctx.reference` is set,
    /// `ctx.now` is the decision time): record this provider's samples
    /// that need the reference data. They go out with the day's other
    /// samples. Reads the windows up to `ctx.day` only: later days' visits
    /// may be in.
    fn record_reference_samples(&self, _ctx: &mut DayContext<'_>, _peers: &mut PeerTable) {}

    /// Called for every provider at a day close, after peer statistics are
    /// recomputed.
    fn on_day_closed(&self, _ctx: &mut DayContext<'_>, _out: &mut Vec<Finding>) {}
}

/// One rule in the catalogue, for documentation.
pub struct RuleDoc {
    /// Its identity.
    pub info: &'static RuleInfo,
    /// Its `[core.rules.<section>]` table.
    pub section: &'static str,
    /// Its parameters with their defaults (as JSON values), in declaration order.
    pub defaults: Vec<(String, serde_json::Value)>,
}

/// The fields of a serialized struct, in order (serde_json's own map sorts them).
fn fields_in_order(params: &impl serde::Serialize) -> Vec<(String, serde_json::Value)> {
    struct Fields(Vec<(String, serde_json::Value)>);
    impl<'de> serde::Deserialize<'de> for Fields {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Fields;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a struct")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        out.push(entry);
                    }
                    Ok(Fields(out))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    serde_json::to_string(params)
        .ok()
        .and_then(|json| serde_json::from_str::<Fields>(&json).ok())
        .map_or_else(Vec::new, |f| f.0)
}

/// Generates, from one list of rules, [`RulesConfig`] (one field per rule,
/// `build`, `validate`, `widest_window_days`), [`RuleStates`] (one field
/// per rule, `evict`), the catalogue [`ALL`], the list of [`RuleDoc`]s, and
/// a compile-time check of the counter slots.
macro_rules! registry {
    ($($section:ident => $module:ident :: $rule:ident),* $(,)?) => {
        /// Configuration of every rule, with defaults. Each rule's section
        /// is its `Params` type, documented in the rule's file.
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct RulesConfig {
            /// Ids of rules to switch off (all are on by default).
            pub disabled: Vec<String>,
            $(
                #[doc = concat!("`[core.rules.", stringify!($section), "]`: see [`", stringify!($module), "`].")]
                pub $section: <$module::$rule as RuleSpec>::Params,
            )*
        }

        /// Every rule's own state for one provider (its
        /// [`RuleSpec::ProviderState`]), in catalogue order. Serialized
        /// field by field into the engine's snapshot.
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct RuleStates {
            $(
                #[doc = concat!("State of [`", stringify!($module), "`].")]
                pub $section: <$module::$rule as RuleSpec>::ProviderState,
            )*
        }

        impl RuleStates {
            /// Every rule's eviction after the close of `closed`.
            pub fn evict(&mut self, closed: Day) {
                $(<$module::$rule as RuleSpec>::evict(&mut self.$section, closed);)*
            }
        }

        /// Every rule, in catalogue order.
        pub static ALL: [&RuleInfo; [$(stringify!($section)),*].len()] =
            [$(<$module::$rule as RuleSpec>::INFO),*];

        impl RulesConfig {
            /// The enabled rules of `stage`, in catalogue order.
            pub fn build_for(&self, stage: RuleStage) -> Vec<Box<dyn Rule>> {
                let all: Vec<Box<dyn Rule>> =
                    vec![$(Box::new(<$module::$rule as RuleSpec>::new(self.$section.clone()))),*];
                all.into_iter()
                    .filter(|r| r.info().stage == stage && !self.disabled.iter().any(|d| d == r.info().id))
                    .collect()
            }

            /// Checks every rule's parameters, and that every disabled id
            /// names a rule. The error names the field, e.g.
            /// `rules.impossible_travel.max_speed_kmh must be > 0`.
            pub fn validate(&self) -> Result<(), String> {
                $(
                    <$module::$rule as RuleSpec>::validate(&self.$section)
                        .map_err(|e| format!(concat!("rules.", stringify!($section), ".{}"), e))?;
                )*
                for id in &self.disabled {
                    if by_id(id).is_none() {
                        return Err(format!("rules.disabled: unknown rule id {id:?}"));
                    }
                }
                Ok(())
            }

            /// The widest window any rule reads, in days.
            pub fn widest_window_days(&self) -> u32 {
                [$(<$module::$rule as RuleSpec>::window_days(&self.$section)),*].into_iter().max().unwrap_or(1)
            }
        }

        /// Every rule with its section and default parameters, in catalogue order.
        pub fn docs() -> Vec<RuleDoc> {
            vec![$(RuleDoc {
                info: <$module::$rule as RuleSpec>::INFO,
                section: stringify!($section),
                defaults: fields_in_order(&<$module::$rule as RuleSpec>::Params::default()),
            }),*]
        }

        const _: () = {
            let slots = [$(<$module::$rule as RuleSpec>::SLOT),*];
            let mut i = 0;
            while i < slots.len() {
                if let Some(a) = slots[i] {
                    assert!(a < RULE_SLOTS, "a rule's SLOT must be below state::RULE_SLOTS");
                    let mut j = i + 1;
                    while j < slots.len() {
                        if let Some(b) = slots[j] {
                            assert!(a != b, "two rules declare the same SLOT");
                        }
                        j += 1;
                    }
                }
                i += 1;
            }
        };
    };
}
// The rules, each once: `toml_section => module::Type`. The section is
// the rule's table under `[core.rules]` (kept as configs know it).
registry! {
    invoiced_above_performed => invoiced_above_performed::InvoicedAbovePerformed,
    staff_double_booking => staff_double_booking::StaffDoubleBooking,
    staff_impossible_day => staff_impossible_day::StaffImpossibleDay,
    impossible_travel => impossible_travel::ImpossibleTravel,
    check_in_away_from_home => check_in_away_from_home::CheckInAwayFromHome,
    manual_registration_share => manual_registration_share::ManualRegistrationShare,
    rounded_visits => rounded_visits::RoundedVisits,
    phantom_clients => phantom_clients::PhantomClients,
    duplicate_billing => duplicate_billing::DuplicateBilling,
    volume_explosion => volume_explosion::VolumeExplosion,
    hours_per_client_above_peers => hours_per_client::HoursPerClientAbovePeers,
    hours_per_client_rise => hours_per_client_rise::HoursPerClientRise,
    night_visits_private_provider => night_visits::NightVisitsPrivateProvider,
    visit_during_absence => visit_during_absence::VisitDuringAbsence,
    billing_during_absence => billing_during_absence::BillingDuringAbsence,
    visit_without_permit => visit_without_permit::VisitWithoutPermit,
    provider_without_permit => provider_without_permit::ProviderWithoutPermit,
    visit_above_granted_hours => visit_above_granted_hours::VisitAboveGrantedHours,
    above_granted_hours => above_granted_hours::AboveGrantedHours,
    granted_hours_utilisation => granted_hours_utilisation::GrantedHoursUtilisation,
    relative_employment => relative_employment::RelativeEmployment,
    hours_collapse_after_change => hours_collapse_after_change::HoursCollapseAfterChange,
    client_hours_above_granted => client_hours_above_granted::ClientHoursAboveGranted,
}

/// The rule with this id.
pub fn by_id(id: &str) -> Option<&'static RuleInfo> {
    RuleInfo::find(&ALL, id)
}

/// The README's rule table: id, pattern, name, configuration section and
/// parameters with their defaults, generated from the registry. (A test
/// checks README.md carries it between `<!-- rules:begin -->` and
/// `<!-- rules:end -->`.)
pub fn catalogue_markdown() -> String {
    let mut out = String::from(
        "| rule id | pattern | name | section `[core.rules.…]` | parameters (defaults) |\n|---|---:|---|---|---|\n",
    );
    for doc in docs() {
        let params = doc.defaults.iter().map(|(k, v)| format!("`{k}` = {v}")).collect::<Vec<_>>().join(", ");
        out.push_str(&format!(
            "| `{}` | {} | {} | `{}` | {} |\n",
            doc.info.id, doc.info.pattern, doc.info.name, doc.section, params
        ));
    }
    out
}
