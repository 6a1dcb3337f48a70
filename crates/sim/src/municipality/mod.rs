//! The seeded municipality simulator with labelled fraud.
//!
//! [`simulate`] plays one municipality (Umeå-sized by default) day by day and
//! hands every time report and invoice to a sink in arrival order, then
//! returns the [`GroundTruth`] naming every provider and every injected
//! fraud scenario. Same [`SimConfig`] → byte-identical events and truth: all
//! randomness is ChaCha8 seeded from the seed and a stream path, all
//! collections that reach the output are ordered (`Vec`, `BTreeMap`), and
//! nothing reads a clock.
//!
//! # What is simulated (honest behaviour)
//! - **Providers.** Index 0 is the municipality's own unit (organisation
//!   number `212000-…`, about a quarter of the home-care clients, the whole
//!   municipality, and the only night patrol). The private ones
//!   (`556…`/`559…`, valid Luhn digit) are a few large home-care companies
//!   (200–400 client weight), many small ones (10–60) and, from 7 providers
//!   up, about one in ten personal-assistance companies. 40 % of small
//!   companies also serve the villages, the rest the town only.
//! - **Clients.** A granted time per month per service type (the decision);
//!   the plan schedules 90 % of it. 22 % get service only (cleaning every
//!   week or fortnight, shopping); the others a personal-care need drawn
//!   log-normally (median 22.5 h/month, long tail to 200 h) turned into 1–6
//!   visits a day of 10–60 min (30 after 20:00) around the usual times, each
//!   client with their own clock (first visit 07:00–09:45, last up to
//!   21:15), plus service (70 %) and occasional escorts (25 %); never more
//!   than six visits a day. About 2 % need double staffing at their morning
//!   and evening visits (two staff, two time reports, one client). About 6 %
//!   of clients are in couples sharing a household (`household_ref`): one
//!   staff member serves both in the same slot, two overlapping reports at
//!   one address. About 5 % (mostly heavy-care clients of any provider) get
//!   1–3 night-patrol visits (22–06) from the municipal unit. Clients leave
//!   (1.8 % a month), arrive (replacing them, plus 0.3 % growth; 2–5 % extra
//!   at a few growing companies), cancel single visits (3 %) and go to
//!   hospital for 2–12 days (~2.5 % of days). Homes are drawn from Umeå's
//!   districts (town core, suburbs, villages 13–18 km out). Performed time
//!   comes to about 82 % of granted; home-care clients average ~24 h a
//!   month in ~2.5 visits a day of ~25 min.
//! - **Personal assistance.** 3 % of clients with 110–430 h a month
//!   granted, in 8–12 h shifts (two shifts a day above 12 h) on fixed
//!   weekdays, by a team of assistants in rotation sized so nobody works more
//!   than ~38 h a week or two shifts of one day.
//! - **Staff.** Each belongs to one provider and works one kind of shift:
//!   full mornings (from 06:30–07:30, 8.5 h with a 30-min break taken in the
//!   first idle half hour), full evenings (to 21:30–22:00), part-time peaks
//!   (07:00–12:30, 17:00–21:30), or the night patrol (21:45–06:45). Every
//!   day each provider calls in as many of each kind as its planned visits
//!   need (a full shift covers ~150–170 planned minutes in the quiet hours,
//!   a peak ~110–115), from staff who are not sick (4.5 %) and have worked
//!   at most four of the last six days, with days off two at a time; it
//!   hires when short. So nobody works more than five days in seven and
//!   about half of paid time is spent in clients' homes. Visits are assigned
//!   greedily in time order to whoever can arrive soonest (driving at 24–60
//!   km/h over 1.35× the straight line, plus four minutes of parking), so no
//!   honest staff member is ever in two places or drives impossibly fast;
//!   a visit that cannot start within an hour of its time is cancelled
//!   (about 1 %).
//! - **Time reports.** Check-in at arrival (seconds), duration = planned ×
//!   ~0.97 with 13 % spread (shifts: a few minutes either way), so the
//!   whole minutes equal the plan in ~12 % of visits. Registration: NFC for
//!   most; mobile app 0–6 %; manual or edited 2–10 % depending on the
//!   provider (manual entries are whole minutes and copy the planned time
//!   35 % of the time; edits round the check-out to five minutes). Check-in
//!   positions (where the system exports them; 75 % of small providers)
//!   lie within 70 m of the home. `reported_at` follows the check-out by
//!   seconds (NFC) to hours (manual) or a day (edits); a third of private
//!   providers sometimes (2–8 % of days) send a day's reports in one batch
//!   12–36 h late. Private visits start no later than 21:55 (a few run past
//!   22:00).
//! - **Invoices.** One per provider and local calendar month, issued on day
//!   3–8 of the next month; one line per client and service type with the
//!   performed minutes (35 % of private providers round each visit up to
//!   five minutes: +5–8 % on the invoice); 426 kr/h for home care, 520 kr/h
//!   night patrol, 333 kr/h personal assistance; amount = minutes × tariff /
//!   60 rounded; total = sum of lines.
//!
//! # Fraud scenarios
//! `fraudulent_providers` private providers each get one scenario, patterns
//! taken round-robin from 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12 (so all are
//! covered from 11 up); every fifth one also commits a companion pattern
//! (5+6, 10+9, 1+7…). Each starts on a random day of months 2–4 (invoice
//! patterns bill from the first of that month) and runs to the end, except
//! that one in five time-report scenarios stops after 5–8 weeks. Patterns go
//! to providers that fit (night visits, double-booking and the like need a
//! home-care company with at least 8 clients; pattern 3 goes first to an
//! assistance company, then to a home-care one).
//! 1. *Invoiced above performed*: lines for personal care, service (or
//!    personal assistance) of a stable 25–50 % of clients bill 1.2–1.6× the
//!    performed minutes.
//! 2. *Double-booking*: on 3–5 days a week, 1–2 visits of each of 1–2 staff
//!    members (or, when they are off, of whoever works most that day) are
//!    also registered (manual/edited, 20–45 min) at another client of the
//!    provider, at another address, overlapping the real visit; the second
//!    instance borrows a staff member of an honest provider and registers
//!    them at the fraudulent provider's clients while they are at work there.
//! 3. *Impossible day*: home care: one staff member works every day (no day
//!    off) and the rest of 06:00–22:15 around their real shift is filled
//!    with registered visits of 1–3 h at nearby clients (mostly manual), up
//!    to 14–17 h a day. Assistance: one assistant is registered for all of a
//!    client's hours, every day, 14–20 h at a stretch and some days 24–26 h.
//! 4. *Impossible travel / tag not at home*: for 1–2 staff, 25–45 % of check-
//!    ins are made by app from the staff member's own home (kilometres from
//!    the client's), and on 3–5 days a week a manual visit is registered at a
//!    client 15+ km from the previous (or next) visit 2–8 minutes apart (the
//!    provider has more village clients than most).
//! 5. *Manual/edited registrations*: the provider's manual/edited share
//!    ramps up over 10–28 days to 35–70 %, each such entry adding 5–20 min.
//! 6. *Ghost visits*: a share of the provider's visits (the ghost share,
//!    40–95 % from subtle to blatant) registered by hand on a five-minute
//!    mark, lasting exactly the planned time (so also heaping on whole
//!    hours), whatever the staff member did; the staff time they claim is
//!    kept free, so they do not look like double-booking.
//! 7. *Phantom clients*: 5–12 % extra invoice lines (at least 2) for clients
//!    with no visits in the period: clients who left, topped up with invented
//!    references; the same ones every month.
//! 8. *Duplicate billing*: 6–15 % of lines billed twice, on the same invoice
//!    (first instance) or on a second invoice for the period 4–10 days later.
//! 9. *Volume explosion*: a steady stream of new clients at an extra 10–20 %
//!    a month while the municipality grows 0.3 %.
//! 10. *Hours per client above peers*: every client's care, service and
//!     escort are planned at 2–3× (more and longer visits, up to 90 min),
//!     performed, reported and invoiced consistently; the provider hires to
//!     match, so nothing else looks odd.
//! 12. *Night visits*: 1–2 night staff hired for 2–5 visits 22:30–05:30 on
//!     3–5 nights a week (to heavy-care clients; the staff keep their days
//!     off).
//!
//! A scenario's label has `start` (its first day, or first billed month),
//! `end` (stop, or the truth's end), and `observable_at`: when the first
//! record carrying it reached the municipality: the `reported_at` of its
//! first fraudulent time report (for 10 of the inflated plan's first
//! visit; for 9 of the first visit of a recruit once the recruits are
//! more than the fastest honest growth explains, see
//! `fraud::growth_evident`; for 13 of the relative's visit that first
//! meets the threshold, or a later one of theirs; for 11 of a visit inside
//! a stay, not on its day of admission or discharge), or the
//! `issued_at` of the first invoice carrying it (1, 7, 8). Nothing can see
//! a fraud before its record arrives; the detection delay counts from
//! there. A scenario that left no evidence gets no label.
//! The truth's `start` is local midnight of the first day; its `end` is the
//! local midnight after the last event's arrival (the last month's invoices
//! arrive in the following month).
//!
//! # Reference data
//! With [`SimConfig::reference`] (off by default; off, the output is
//! exactly that of the simulator before it) the stream also carries the
//! decisions on granted hours, client absences and the provider register,
//! honest providers keep within grants and absences, and patterns 11, 15
//! and 16 are injected at two more providers each: see `reference.rs`.
//!
//! # Knobs
//! See [`SimConfig`]: seed, municipality code, first month and number of
//! months, numbers of providers, clients and fraudulent providers, and the
//! shares of municipal clients, personal assistance, night patrol, couples
//! and double staffing, growth, turnover and growing providers.

mod changes;
mod config;
mod engine;
mod fraud;
mod geo;
pub mod hostile;
mod invoice;
mod output;
mod population;
mod reference;
mod region;
mod rng;
mod schedule;
#[cfg(test)]
mod tests;

pub use config::SimConfig;
pub use fraud::IntensityRange;
pub use region::{MunicipalityConfig, RegionConfig, simulate_region};

use crate::labels::GroundTruth;
use tillsyn_core::proto::v1 as wire;

/// Runs the simulation, handing every event to `sink` in arrival order, and
/// returns the ground truth. Fails if the configuration is invalid or the
/// sink fails.
pub fn simulate(
    config: &SimConfig,
    sink: &mut dyn FnMut(&wire::Event) -> anyhow::Result<()>,
) -> anyhow::Result<GroundTruth> {
    engine::run(config, sink).map(|(truth, _)| truth)
}
