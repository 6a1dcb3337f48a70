//! Tiny builders for rule tests: a [`Scenario`] drives a real [`Engine`]
//! with only the rule under test switched on, so a test states events in
//! domain terms and asserts the alerts that come out.

use crate::alerting::Alert;
use crate::config::CoreConfig;
use crate::engine::{Disposition, Engine, Standalone};
use crate::model::{
    ClientKey, Day, DomainEvent, EventId, GeoPoint, HouseholdKey, Invoice, InvoiceLine, Minutes, Month,
    MunicipalityCode, Ore, ProviderId, RegistrationMethod, ServiceType, StaffKey, Visit,
};
use crate::rules::catalogue;

/// The provider number of the municipality's own unit in tests.
pub const MUNICIPAL: u64 = 999;

/// A decision granting client `client` `hours_per_month` hours of personal
/// care a month in municipality 2480, valid from 1 January 2026.
pub fn decision(client: u64, hours_per_month: u32) -> crate::model::reference::Fact {
    use crate::model::reference::{Fact, GrantedHours, Validity};
    Fact::GrantedHours(GrantedHours {
        municipality: crate::model::MunicipalityCode::parse("2480").expect("a valid code"),
        client: crate::model::ClientKey(client),
        service: ServiceType::PersonalCare,
        minutes_per_month: hours_per_month * 60,
        valid: Validity { from: Day::from_ymd(2026, 1, 1).start(), to: None },
        provider: None,
    })
}

/// Provider `n` of a test: private unless `n == MUNICIPAL`.
pub fn provider(n: u64) -> ProviderId {
    if n == MUNICIPAL {
        ProviderId::from_nine_digits(212_000_272)
    } else {
        ProviderId::from_nine_digits(556_100_000 + n)
    }
}

fn umea() -> MunicipalityCode {
    MunicipalityCode::parse("2480").expect("valid code")
}

/// An engine with one rule on, the global peer table of its one
/// partition, and the alerts it produced.
pub struct Scenario {
    core: Standalone,
    alerts: Vec<Alert>,
    next_id: u64,
}

impl Scenario {
    /// An engine with only `rule_id` enabled and default parameters.
    pub fn only(rule_id: &str) -> Self {
        let mut config = CoreConfig::default();
        config.rules.disabled = catalogue::ALL.iter().filter(|r| r.id != rule_id).map(|r| r.id.to_string()).collect();
        assert!(catalogue::by_id(rule_id).is_some(), "unknown rule {rule_id}");
        Scenario { core: Standalone::new(config), alerts: Vec::new(), next_id: 0 }
    }

    /// [`Self::only`] with reference data on (no lateness): the days are
    /// decided as the reference data is known through them (see
    /// [`Self::reference_through`]).
    pub fn with_reference(rule_id: &str) -> Self {
        let mut s = Scenario::only(rule_id);
        let mut config = s.core.engine.config().clone();
        config.reference =
            crate::config::ReferenceConfig { enabled: true, lateness: std::time::Duration::ZERO, ..Default::default() };
        s.core = Standalone::new(config);
        s
    }

    /// Sends a version of a reference fact registered at `recorded_at`.
    pub fn reference(&mut self, id: &str, recorded_at: crate::model::EventTime, fact: crate::model::reference::Fact) {
        let record =
            crate::model::reference::ReferenceRecord { id: EventId::new(id), recorded_at, retracted: false, fact };
        let d = self.process(&DomainEvent::Reference(record));
        assert_eq!(d, Disposition::Applied, "test reference data is on time");
    }

    /// A hospital stay of client `client` from `from` to `to` (open if none).
    pub fn hospital_stay(
        client: u64,
        from: crate::model::EventTime,
        to: Option<crate::model::EventTime>,
    ) -> crate::model::reference::Fact {
        use crate::model::reference::{Absence, AbsenceKind, Fact, Validity};
        Fact::Absence(Absence {
            municipality: umea(),
            client: ClientKey(client),
            kind: AbsenceKind::HospitalStay,
            period: Validity { from, to },
        })
    }

    /// A period of provider 0's entry in Umeå's provider register.
    pub fn permit(
        status: crate::model::reference::PermitStatus,
        from: crate::model::EventTime,
        to: Option<crate::model::EventTime>,
    ) -> crate::model::reference::Fact {
        use crate::model::reference::{Fact, Permit, Validity};
        Fact::Permit(Permit { provider: provider(0), municipality: umea(), status, valid: Validity { from, to } })
    }

    /// The reference data's source says it has sent everything registered
    /// before the start of this date; the days that lets the engine decide
    /// are decided.
    pub fn reference_through(&mut self, year: i32, month: u32, day: u32) {
        let at = Day::from_ymd(year, month, day).start();
        self.core.reference_heartbeat(at, &mut self.alerts);
    }

    /// The reference data's source says it has sent everything registered
    /// before `at`.
    pub fn reference_through_time(&mut self, at: crate::model::EventTime) {
        self.core.reference_heartbeat(at, &mut self.alerts);
    }

    /// Turns the rules `ids` on as well (before any event).
    pub fn enable(&mut self, ids: &[&str]) {
        self.configure(|config| config.rules.disabled.retain(|d| !ids.contains(&d.as_str())));
    }

    /// Changes the configuration (before any event).
    pub fn configure(&mut self, change: impl FnOnce(&mut CoreConfig)) {
        let mut config = self.core.engine.config().clone();
        change(&mut config);
        self.core = Standalone::new(config);
    }

    /// [`Self::only`] with the state caps `limits`.
    pub fn only_with_limits(rule_id: &str, limits: crate::config::StateLimits) -> Self {
        let mut s = Scenario::only(rule_id);
        let mut config = s.core.engine.config().clone();
        config.limits = limits;
        s.core = Standalone::new(config);
        s
    }

    fn process(&mut self, event: &DomainEvent) -> Disposition {
        self.core.process(event, &mut self.alerts)
    }

    /// The rules' configuration the scenario started with (version 0).
    pub fn rules(&self) -> crate::rules::RulesConfig {
        self.core.engine.config().rules.clone()
    }

    /// Adds version `version` of the rules' configuration, effective from `from`.
    pub fn add_rules_version(
        &mut self,
        version: u32,
        from: crate::model::EventTime,
        rules: crate::rules::RulesConfig,
    ) -> Result<(), crate::rules::timeline::TimelineError> {
        self.core.add_rules_version(&crate::rules::timeline::RulesVersion { version, effective_from: from, rules })
    }

    /// A source heartbeat at `at` on one input only.
    pub fn heartbeat(&mut self, input: crate::engine::Input, at: crate::model::EventTime) {
        self.core.heartbeat(input, at, &mut self.alerts);
    }

    /// The staff stage's counters.
    pub fn staff_stats(&self) -> crate::engine::staff::StaffStats {
        self.core.staff.stats()
    }

    fn id(&mut self, prefix: &str) -> EventId {
        self.next_id += 1;
        EventId::new(&format!("{prefix}-{}", self.next_id))
    }

    /// A visit with defaults: provider 0, client 0, staff 0, personal care,
    /// 2026-03-02 09:00 local, 30 minutes, NFC.
    pub fn visit(&mut self) -> VisitBuilder<'_> {
        let event_id = self.id("tr");
        let start = Day::from_ymd(2026, 3, 2).start().plus_secs(9 * 3600);
        VisitBuilder {
            visit: Visit {
                event_id,
                provider: provider(0),
                municipality: umea(),
                client: ClientKey(0),
                staff: StaffKey(0),
                service: ServiceType::PersonalCare,
                check_in: start,
                check_out: start.plus_secs(1800),
                method: RegistrationMethod::Nfc,
                planned: None,
                client_home: None,
                check_in_location: None,
                household: None,
                reported_at: start.plus_secs(1800),
            },
            date: Day::from_ymd(2026, 3, 2),
            minute_of_day: 9 * 60,
            minutes: 30,
            scenario: self,
        }
    }

    /// Sends a built visit.
    pub fn send_visit(&mut self, visit: Visit) {
        let d = self.process(&DomainEvent::Visit(visit));
        assert_eq!(d, Disposition::Applied, "test visits are on time");
    }

    /// Moves the time-report watermark: a visit at noon on that date by a
    /// provider, client and staff member used by no test.
    /// The time-report source's clock moves to the day before first (a
    /// heartbeat), as time passes: the visit is not far ahead of it.
    pub fn advance_to(&mut self, year: i32, month: u32, day: u32) {
        let mut v = self.visit().provider(4_242).client(u64::MAX).staff(u64::MAX).day(year, month, day).at(12, 0);
        v.visit.municipality = MunicipalityCode::parse("0180").expect("valid code");
        let visit = v.build();
        let day_before = visit.check_in.plus_secs(-86_400);
        if self.core.engine.now().is_none_or(|now| now < day_before) {
            self.core.heartbeat(crate::engine::Input::TimeReports, day_before, &mut self.alerts);
        }
        self.send_visit(visit);
    }

    /// An invoice of provider 0 for a month, issued on the 5th of the next.
    pub fn invoice(&mut self, year: i32, month: u32) -> InvoiceBuilder<'_> {
        let m = Month::from_ym(year, month);
        let invoice_id = self.id("inv");
        InvoiceBuilder {
            invoice: Invoice {
                invoice_id,
                provider: provider(0),
                municipality: umea(),
                period_start: m.start(),
                period_end: m.end(),
                issued_at: m.next().first_day().plus(4).start().plus_secs(10 * 3600),
                lines: Vec::new(),
                total: Ore(0),
            },
            scenario: self,
        }
    }

    /// Sends a source heartbeat a second past the newest event: the staff
    /// stage decides every visit sent so far (and the staff findings reach
    /// the episodes). Later visits may still come as usual.
    pub fn settle(&mut self) {
        let Some(now) = self.core.engine.now() else { return };
        let at = now.plus_secs(1);
        self.process(&DomainEvent::Heartbeat(at));
    }

    /// Every alert so far.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.clone()
    }

    /// Continues with an engine restored from a snapshot of this one (as
    /// after a restart of the service).
    pub fn restart(&mut self) {
        let bytes = self.core.engine.snapshot();
        self.core.engine =
            Engine::restore(self.core.engine.config().clone(), &bytes).expect("a fresh snapshot restores");
    }

    /// Sizes of the state, the staff stage's included.
    pub fn state_size(&self) -> crate::engine::StateSize {
        self.core.state_size()
    }

    /// Peer days published to the global table so far, and their bytes.
    pub fn published_peer_days(&self) -> (u64, u64) {
        self.core.published_peer_days()
    }

    /// The engine, for assertions on its state.
    pub fn engine(&self) -> &Engine {
        &self.core.engine
    }

    /// Sends any event; returns what the engine did with it.
    pub fn send(&mut self, event: DomainEvent) -> crate::engine::Disposition {
        self.process(&event)
    }
}

/// Builds one visit.
pub struct VisitBuilder<'a> {
    /// The visit as built so far.
    pub visit: Visit,
    date: Day,
    minute_of_day: u32,
    minutes: i64,
    scenario: &'a mut Scenario,
}

impl VisitBuilder<'_> {
    fn retime(mut self) -> Self {
        let start = self.date.start().plus_secs(i64::from(self.minute_of_day) * 60);
        self.visit.check_in = start;
        self.visit.check_out = start.plus_secs(self.minutes * 60);
        self.visit.reported_at = self.visit.check_out;
        self
    }
    /// Provider `n` (see [`provider`]).
    pub fn provider(mut self, n: u64) -> Self {
        self.visit.provider = provider(n);
        self
    }
    /// Paying municipality `code` (Umeå, 2480, unless set).
    pub fn municipality(mut self, code: &str) -> Self {
        self.visit.municipality = MunicipalityCode::parse(code).expect("valid municipality code");
        self
    }
    /// Client `n`.
    pub fn client(mut self, n: u64) -> Self {
        self.visit.client = ClientKey(n);
        self
    }
    /// Staff member `n`.
    pub fn staff(mut self, n: u64) -> Self {
        self.visit.staff = StaffKey(n);
        self
    }
    /// Household `n`.
    pub fn household(mut self, n: u64) -> Self {
        self.visit.household = Some(HouseholdKey(n));
        self
    }
    /// Service type.
    pub fn service(mut self, s: ServiceType) -> Self {
        self.visit.service = s;
        self
    }
    /// Registration method.
    pub fn method(mut self, m: RegistrationMethod) -> Self {
        self.visit.method = m;
        self
    }
    /// Planned minutes.
    pub fn planned(mut self, m: u32) -> Self {
        self.visit.planned = Some(Minutes(m));
        self
    }
    /// Client home (lat, lon).
    pub fn home(mut self, (lat, lon): (f64, f64)) -> Self {
        self.visit.client_home = Some(GeoPoint { lat, lon });
        self
    }
    /// Check-in position (lat, lon).
    pub fn check_in_at(mut self, (lat, lon): (f64, f64)) -> Self {
        self.visit.check_in_location = Some(GeoPoint { lat, lon });
        self
    }
    /// Local date of the check-in.
    pub fn day(mut self, year: i32, month: u32, day: u32) -> Self {
        self.date = Day::from_ymd(year, month, day);
        self.retime()
    }
    /// Local time of the check-in.
    pub fn at(mut self, hour: u32, minute: u32) -> Self {
        self.minute_of_day = hour * 60 + minute;
        self.retime()
    }
    /// Duration.
    pub fn minutes(mut self, minutes: i64) -> Self {
        self.minutes = minutes;
        self.retime()
    }
    /// The visit, not sent.
    pub fn build(self) -> Visit {
        self.visit
    }
    /// Sends the visit to the engine.
    pub fn send(self) {
        let visit = self.visit;
        self.scenario.send_visit(visit);
    }
}

/// Builds one invoice.
pub struct InvoiceBuilder<'a> {
    invoice: Invoice,
    scenario: &'a mut Scenario,
}

impl InvoiceBuilder<'_> {
    /// Invoice id.
    pub fn id(mut self, id: &str) -> Self {
        self.invoice.invoice_id = EventId::new(id);
        self
    }
    /// Lines of (client, minutes) for personal care at 426 kr/h.
    pub fn lines(mut self, lines: Vec<(u64, i64)>) -> Self {
        self.invoice.lines = lines
            .into_iter()
            .map(|(client, minutes)| InvoiceLine {
                client: ClientKey(client),
                service: ServiceType::PersonalCare,
                minutes: Minutes(minutes as u32),
                tariff_per_hour: Ore(42_600),
                amount: Ore(minutes as u64 * 42_600 / 60),
            })
            .collect();
        self.invoice.total = Ore(self.invoice.lines.iter().map(|l| l.amount.0).sum());
        self
    }
    /// The invoice, not sent.
    pub fn build(self) -> Invoice {
        self.invoice
    }
    /// Sends the invoice to the engine.
    pub fn send(self) {
        let s = self.scenario;
        let d = s.process(&DomainEvent::Invoice(self.invoice));
        assert!(matches!(d, Disposition::Applied | Disposition::Duplicate), "test invoices are on time: {d:?}");
    }
}

/// English words that must not be left in a Swedish explanation (whole
/// words, lowercase).
const ENGLISH_WORDS: &[&str] = &[
    "the",
    "and",
    "of",
    "with",
    "from",
    "for",
    "to",
    "than",
    "were",
    "was",
    "is",
    "are",
    "has",
    "have",
    "this",
    "its",
    "at",
    "on",
    "or",
    "hour",
    "hours",
    "visit",
    "visits",
    "day",
    "days",
    "week",
    "weeks",
    "client",
    "clients",
    "provider",
    "providers",
    "staff",
    "member",
    "invoice",
    "invoices",
    "line",
    "lines",
    "report",
    "reports",
    "minute",
    "minutes",
    "peers",
    "times",
    "above",
    "below",
    "between",
    "registered",
    "time",
    "share",
    "limit",
    "tolerated",
    "threshold",
    "finding",
    "care",
    "night",
    "home",
    "door",
    "score",
];

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Checks a rule's explanation: the Swedish names the same figures as the
/// English (every number of both, the Swedish format normalised, as
/// multisets), has none of a list of English words left, and uses each
/// of `terms` (lowercase; the terms of the trade the rule's text needs).
/// Checks itself too: dropping or changing any one figure of the Swedish
/// text makes the comparison fail.
pub fn assert_bilingual(text: &crate::text::Text, terms: &[&str]) {
    use crate::text::{Language, figure_spans, figures};
    let (en, sv) = (&text.en, &text.sv);
    assert!(!en.is_empty() && !sv.is_empty(), "both languages are written: {text:?}");
    let en_figures = sorted(figures(en, Language::En));
    assert!(!en_figures.is_empty(), "the English names figures: {en}");
    assert_eq!(
        sorted(figures(sv, Language::Sv)),
        en_figures,
        "the Swedish names the English's figures\n  en: {en}\n  sv: {sv}"
    );
    let chars: Vec<char> = sv.chars().collect();
    for (span, figure) in figure_spans(sv, Language::Sv) {
        let dropped: String = chars[..span.start].iter().chain(&chars[span.end..]).collect();
        let mut changed = chars.clone();
        changed[span.start] = if changed[span.start] == '9' { '8' } else { '9' };
        let changed: String = changed.into_iter().collect();
        for mutant in [dropped, changed] {
            assert_ne!(
                sorted(figures(&mutant, Language::Sv)),
                en_figures,
                "the check must see figure {figure} changed or dropped: {mutant}"
            );
        }
    }
    let lower = sv.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).collect();
    let left: Vec<&&str> = words.iter().filter(|w| ENGLISH_WORDS.contains(w)).collect();
    assert!(left.is_empty(), "English words {left:?} left in the Swedish: {sv}");
    for term in terms {
        assert!(lower.contains(term), "the Swedish uses {term:?}: {sv}");
    }
}
