//! The pure part of `tillsyn evidence`: finding an alert among alerts,
//! matching records against its evidence ids, and showing a matched
//! record with its personal references as the service's pseudonymous keys
//! (or, on purpose, in clear). No Kafka, no files: the sources hand in
//! decoded messages with their positions.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;

use tillsyn_core::decode::Rejection;
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::validate::Validator;
use tillsyn_core::model::{DomainEvent, EventTime, GeoPoint, HouseholdKey, Invoice, RegistrationMethod, Visit};
use tillsyn_core::proto::v1 as wire;

/// How personal references (client, staff and household references:
/// personal identity numbers or a source system's ids) are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Personal {
    /// Only as the pseudonymous keys the service computes at the edge
    /// (`client:…`, `staff:…`, `household:…`), and no positions.
    Pseudonymous,
    /// The keys, and beside them the references and positions in clear
    /// (`--reveal-personal-references`).
    Revealed,
}

/// Where a record or an alert was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Position {
    /// A topic's partition and offset, with the record's Kafka timestamp
    /// (milliseconds) if it has one.
    Topic {
        /// The topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// The record's timestamp (RFC 3339), as the broker gave it.
        #[serde(skip_serializing_if = "Option::is_none")]
        written: Option<String>,
    },
    /// A file and the record's number in it (from 1: the message of an
    /// events or alerts file, the line of a records file).
    File {
        /// The file.
        file: String,
        /// The record's number.
        record: u64,
    },
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Topic { topic, partition, offset, written } => {
                write!(f, "{topic}[{partition}] offset {offset}")?;
                match written {
                    Some(at) => write!(f, " (written {at})"),
                    None => Ok(()),
                }
            }
            Position::File { file, record } => write!(f, "{file} record {record}"),
        }
    }
}

/// A Kafka timestamp (milliseconds) as RFC 3339, to the second.
pub fn kafka_time(ms: i64) -> String {
    EventTime(ms.div_euclid(1000)).to_string()
}

/// The alert asked for, where it was read, and the earliest window start
/// of its episode's alerts read up to it (an escalated or resolved
/// alert's evidence may go back to its episode's first findings).
#[derive(Debug, Clone)]
pub struct FoundAlert {
    /// The alert.
    pub alert: wire::Alert,
    /// Where it was read.
    pub position: Position,
    /// The earliest `window_start` of the alerts of its episode up to and
    /// including it (seconds).
    pub episode_start: Option<i64>,
    /// Its record's Kafka timestamp (milliseconds), on a topic.
    pub timestamp_ms: Option<i64>,
}

/// Looks for one alert id among alerts offered in their log order.
#[derive(Debug)]
pub struct AlertSearch {
    id: String,
    /// Per episode, the earliest window start seen.
    episode_starts: HashMap<String, i64>,
    found: Option<FoundAlert>,
}

impl AlertSearch {
    /// A search for `id`.
    pub fn new(id: &str) -> Self {
        AlertSearch { id: id.trim().to_string(), episode_starts: HashMap::new(), found: None }
    }

    /// The id looked for.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Offers the next alert in log order; true once the alert is found
    /// (the first record of its id: a copy written again carries the same
    /// alert).
    pub fn offer(&mut self, alert: wire::Alert, position: Position, timestamp_ms: Option<i64>) -> bool {
        if self.found.is_some() {
            return true;
        }
        if let Some(start) = alert.window_start.as_ref().map(|t| t.seconds) {
            let earliest = self.episode_starts.entry(alert.episode_id.clone()).or_insert(start);
            *earliest = (*earliest).min(start);
        }
        if alert.alert_id != self.id {
            return false;
        }
        let episode_start = self.episode_starts.get(&alert.episode_id).copied();
        self.found = Some(FoundAlert { alert, position, episode_start, timestamp_ms });
        true
    }

    /// Whether the alert was found.
    pub fn is_found(&self) -> bool {
        self.found.is_some()
    }

    /// The alert, if found.
    pub fn finish(self) -> Option<FoundAlert> {
        self.found
    }
}

/// One record behind an evidence id, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct ShownRecord {
    /// The event id (a time report's `event_id`, an invoice's `invoice_id`).
    pub event_id: String,
    /// Where it was read.
    pub position: Position,
    /// What it holds.
    #[serde(flatten)]
    pub content: Content,
}

/// A matched record's content.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// A time report, validated as the service validates it.
    TimeReport(Box<ShownVisit>),
    /// An invoice, validated as the service validates it.
    Invoice(ShownInvoice),
    /// A record with the id that the service rejects at the edge (it was
    /// never applied: a broken copy of an evidence record).
    Rejected {
        /// The dead-letter reason.
        reason: &'static str,
        /// The detail (no personal data).
        detail: String,
    },
}

/// A time report as shown.
#[derive(Debug, Clone, Serialize)]
pub struct ShownVisit {
    /// The provider's organisation number.
    pub provider_id: String,
    /// The paying municipality.
    pub municipality_code: String,
    /// The client's pseudonymous key.
    pub client: String,
    /// The staff member's pseudonymous key.
    pub staff: String,
    /// The household's pseudonymous key, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub household: Option<String>,
    /// Kind of care.
    pub service_type: &'static str,
    /// Check-in (RFC 3339, UTC).
    pub check_in: String,
    /// Check-out.
    pub check_out: String,
    /// Whole minutes between them.
    pub minutes: u32,
    /// Planned minutes, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned_minutes: Option<u32>,
    /// How it was registered.
    pub registration: &'static str,
    /// When the source reported it.
    pub reported_at: String,
    /// Metres between the check-in and the client's home, when both are
    /// known (what `check-in-away-from-home` measures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_in_distance_from_home_m: Option<u64>,
    /// The staff member's previous visit among the records shown, and how
    /// far its client's home is from this one's (what
    /// `impossible-travel` measures), when both homes are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_visit: Option<AfterVisit>,
    /// The client's home, kept to measure `after_visit`; shown only in
    /// `revealed`.
    #[serde(skip)]
    home: Option<GeoPoint>,
    /// The check-in and check-out, to order the staff member's visits.
    #[serde(skip)]
    times: (EventTime, EventTime),
    /// In clear, only when revealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revealed: Option<RevealedVisit>,
}

/// The staff member's previous visit among those shown.
#[derive(Debug, Clone, Serialize)]
pub struct AfterVisit {
    /// Its event id.
    pub event_id: String,
    /// Metres between its client's home and this visit's client's home.
    pub home_distance_m: u64,
    /// Minutes from its check-out to this check-in (negative: they overlap).
    pub minutes_between: i64,
}

/// A time report's personal references and positions in clear.
#[derive(Debug, Clone, Serialize)]
pub struct RevealedVisit {
    /// The client's reference.
    pub client_ref: String,
    /// The staff member's reference.
    pub staff_ref: String,
    /// The household's reference, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub household_ref: Option<String>,
    /// The client's home, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_home: Option<GeoPoint>,
    /// Where the check-in was made, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_in_location: Option<GeoPoint>,
}

/// An invoice as shown.
#[derive(Debug, Clone, Serialize)]
pub struct ShownInvoice {
    /// The provider's organisation number.
    pub provider_id: String,
    /// The paying municipality.
    pub municipality_code: String,
    /// First instant of the period.
    pub period_start: String,
    /// End of the period (exclusive).
    pub period_end: String,
    /// When it was issued.
    pub issued_at: String,
    /// Sum of the line amounts, öre.
    pub total_ore: u64,
    /// The lines, in the invoice's order.
    pub lines: Vec<ShownLine>,
}

/// An invoice line as shown.
#[derive(Debug, Clone, Serialize)]
pub struct ShownLine {
    /// The client's pseudonymous key.
    pub client: String,
    /// The client's reference in clear, only when revealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ref: Option<String>,
    /// Kind of care billed.
    pub service_type: &'static str,
    /// Billed minutes.
    pub minutes: u32,
    /// Tariff, öre per hour.
    pub tariff_ore_per_hour: u64,
    /// Amount, öre.
    pub amount_ore: u64,
}

/// The key of a household as shown (the client and staff keys have their
/// own `Display`).
fn household_key(key: HouseholdKey) -> String {
    format!("household:{:016x}", key.0)
}

fn registration(method: RegistrationMethod) -> &'static str {
    match method {
        RegistrationMethod::Nfc => "nfc or lock",
        RegistrationMethod::MobileApp => "mobile app",
        RegistrationMethod::Manual => "manual",
        RegistrationMethod::Edited => "edited",
    }
}

fn show_visit(v: &Visit, raw: &wire::TimeReport, personal: Personal) -> ShownVisit {
    ShownVisit {
        provider_id: v.provider.to_string(),
        municipality_code: v.municipality.to_string(),
        client: v.client.to_string(),
        staff: v.staff.to_string(),
        household: v.household.map(household_key),
        service_type: v.service.name(),
        check_in: v.check_in.to_string(),
        check_out: v.check_out.to_string(),
        minutes: v.duration().0,
        planned_minutes: v.planned.map(|m| m.0),
        registration: registration(v.method),
        reported_at: v.reported_at.to_string(),
        check_in_distance_from_home_m: match (v.check_in_location, v.client_home) {
            (Some(at), Some(home)) => Some(at.distance_m(home).round() as u64),
            _ => None,
        },
        after_visit: None,
        home: v.client_home,
        times: (v.check_in, v.check_out),
        revealed: (personal == Personal::Revealed).then(|| RevealedVisit {
            client_ref: raw.client_ref.clone(),
            staff_ref: raw.staff_ref.clone(),
            household_ref: raw.household_ref.clone().filter(|h| !h.is_empty()),
            client_home: v.client_home,
            check_in_location: v.check_in_location,
        }),
    }
}

fn show_invoice(i: &Invoice, raw: &wire::Invoice, personal: Personal) -> ShownInvoice {
    ShownInvoice {
        provider_id: i.provider.to_string(),
        municipality_code: i.municipality.to_string(),
        period_start: i.period_start.to_string(),
        period_end: i.period_end.to_string(),
        issued_at: i.issued_at.to_string(),
        total_ore: i.total.0,
        // The validator keeps the lines in order, one for one.
        lines: i
            .lines
            .iter()
            .zip(&raw.lines)
            .map(|(line, raw)| ShownLine {
                client: line.client.to_string(),
                client_ref: (personal == Personal::Revealed).then(|| raw.client_ref.clone()),
                service_type: line.service.name(),
                minutes: line.minutes.0,
                tariff_ore_per_hour: line.tariff_per_hour.0,
                amount_ore: line.amount.0,
            })
            .collect(),
    }
}

/// The id of a time report, an invoice or a reference fact (none for a
/// heartbeat).
pub fn event_id(event: &wire::Event) -> Option<&str> {
    match &event.kind {
        Some(wire::event::Kind::TimeReport(t)) => Some(&t.event_id),
        Some(wire::event::Kind::Invoice(i)) => Some(&i.invoice_id),
        Some(wire::event::Kind::GrantedHours(g)) => Some(&g.decision_id),
        Some(wire::event::Kind::ClientAbsence(a)) => Some(&a.absence_id),
        Some(wire::event::Kind::ProviderPermit(p)) => Some(&p.permit_id),
        Some(wire::event::Kind::Heartbeat(_)) | None => None,
    }
}

/// The records behind an alert's evidence ids, gathered as records are
/// offered; shown as the service sees them (validated, references
/// pseudonymised with the service's secret).
pub struct Matcher {
    /// The evidence ids, in the alert's order.
    wanted: Vec<String>,
    /// The records found, by id, in the order offered.
    found: HashMap<String, Vec<ShownRecord>>,
    /// The ids found in a record the service applies (not only in a
    /// rejected copy).
    valid: HashSet<String>,
    validator: Validator,
    personal: Personal,
}

/// What a [`Matcher`] found.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The alert's evidence ids, in its order (each once).
    pub wanted: Vec<String>,
    /// The records found, in the order of the alert's evidence ids (an id
    /// found in several records: each, in the order read).
    pub records: Vec<ShownRecord>,
    /// The evidence ids with no valid record (a rejected copy may be
    /// among the records).
    pub missing: Vec<String>,
}

impl Matcher {
    /// A matcher for `alert`'s evidence ids; `pseudonymizer` must be the
    /// service's (its configured `core.pseudonym_secret`) for the keys to
    /// be the service's.
    pub fn new(alert: &wire::Alert, pseudonymizer: Pseudonymizer, personal: Personal) -> Self {
        let mut wanted: Vec<String> = Vec::new();
        for id in &alert.evidence_event_ids {
            if !wanted.contains(id) {
                wanted.push(id.clone());
            }
        }
        Matcher {
            wanted,
            found: HashMap::new(),
            valid: HashSet::new(),
            validator: Validator::new(pseudonymizer),
            personal,
        }
    }

    /// The evidence ids, in the alert's order.
    pub fn wanted(&self) -> &[String] {
        &self.wanted
    }

    /// Whether `id` is an evidence id.
    pub fn wants(&self, id: &str) -> bool {
        self.wanted.iter().any(|w| w == id)
    }

    /// The evidence ids without a valid record yet.
    pub fn missing(&self) -> Vec<&str> {
        self.wanted.iter().filter(|id| !self.valid.contains(*id)).map(String::as_str).collect()
    }

    /// Whether every evidence id has a valid record (a rejected copy is
    /// not the record the alert counted).
    pub fn all_found(&self) -> bool {
        self.wanted.iter().all(|id| self.valid.contains(id))
    }

    /// Offers a decoded record read at `position`; keeps it if its id is
    /// an evidence id. Returns whether it was kept.
    pub fn offer(&mut self, event: &wire::Event, position: impl FnOnce() -> Position) -> bool {
        let Some(id) = event_id(event).filter(|id| self.wants(id)) else { return false };
        let content = match (self.validator.event(event), &event.kind) {
            (Ok(DomainEvent::Visit(v)), Some(wire::event::Kind::TimeReport(raw))) => {
                Content::TimeReport(Box::new(show_visit(&v, raw, self.personal)))
            }
            (Ok(DomainEvent::Invoice(i)), Some(wire::event::Kind::Invoice(raw))) => {
                Content::Invoice(show_invoice(&i, raw, self.personal))
            }
            (Ok(_), _) => return false,
            (Err(e), _) => {
                let rejection = Rejection::from(e);
                Content::Rejected { reason: rejection.reason, detail: rejection.detail }
            }
        };
        let record = ShownRecord { event_id: id.to_string(), position: position(), content };
        if !matches!(record.content, Content::Rejected { .. }) {
            self.valid.insert(record.event_id.clone());
        }
        self.found.entry(record.event_id.clone()).or_default().push(record);
        true
    }

    /// The records found, in the order of the evidence ids, and the ids
    /// without a valid one; each visit with the staff member's previous
    /// one among them.
    pub fn finish(mut self) -> Matched {
        let mut records = Vec::new();
        let mut missing = Vec::new();
        for id in &self.wanted {
            records.extend(self.found.remove(id.as_str()).unwrap_or_default());
            if !self.valid.contains(id) {
                missing.push(id.clone());
            }
        }
        link_staff_visits(&mut records);
        Matched { wanted: self.wanted, records, missing }
    }
}

/// Sets each shown visit's [`ShownVisit::after_visit`]: the same staff
/// member's visit before it among `records` (by check-in), with the
/// distance between the two clients' homes when both are known.
fn link_staff_visits(records: &mut [ShownRecord]) {
    let mut visits: Vec<(usize, &str, EventTime)> = records
        .iter()
        .enumerate()
        .filter_map(|(n, r)| match &r.content {
            Content::TimeReport(v) => Some((n, v.staff.as_str(), v.times.0)),
            _ => None,
        })
        .collect();
    visits.sort_by(|a, b| (a.1, a.2, a.0).cmp(&(b.1, b.2, b.0)));
    let pairs: Vec<(usize, usize)> = visits.windows(2).filter(|w| w[0].1 == w[1].1).map(|w| (w[0].0, w[1].0)).collect();
    for (before, after) in pairs {
        let Content::TimeReport(b) = &records[before].content else { continue };
        let (id, home, check_out) = (records[before].event_id.clone(), b.home, b.times.1);
        let Content::TimeReport(a) = &mut records[after].content else { continue };
        if let (Some(from), Some(to)) = (home, a.home) {
            a.after_visit = Some(AfterVisit {
                event_id: id,
                home_distance_m: from.distance_m(to).round() as u64,
                minutes_between: (a.times.0.0 - check_out.0).div_euclid(60),
            });
        }
    }
}

/// One range of a source that was read, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Scanned {
    /// The topic or the file.
    pub source: String,
    /// The topic's partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// The first offset read (on a topic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_offset: Option<i64>,
    /// The offset after the last one read (on a topic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_offset: Option<i64>,
    /// Records read.
    pub records: u64,
    /// Why this range.
    pub why: String,
}

impl std::fmt::Display for Scanned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)?;
        if let Some(p) = self.partition {
            write!(f, "[{p}]")?;
        }
        if let (Some(from), Some(to)) = (self.from_offset, self.to_offset) {
            write!(f, " offsets {from}..{to}")?;
        }
        let s = if self.records == 1 { "" } else { "s" };
        write!(f, ": {} record{s} read ({})", self.records, self.why)
    }
}

/// The alert, as its heading.
pub fn describe_alert(found: &FoundAlert) -> String {
    let a = &found.alert;
    let status = wire::AlertStatus::try_from(a.status).map(|s| s.as_str_name()).unwrap_or("?");
    let severity = wire::Severity::try_from(a.severity).map(|s| s.as_str_name()).unwrap_or("?");
    let time = |seconds: Option<i64>| seconds.map(|s| EventTime(s).to_string());
    let mut s = format!(
        "alert {} ({} {}, revision {}): {} at provider {} in {}\n",
        a.alert_id,
        status.trim_start_matches("ALERT_STATUS_"),
        severity.trim_start_matches("SEVERITY_"),
        a.revision,
        a.rule_id,
        a.provider_id,
        a.municipality_code,
    );
    let _ = writeln!(
        s,
        "  window {} .. {}, detected {}; read at {}",
        time(a.window_start.as_ref().map(|t| t.seconds)).unwrap_or_default(),
        time(a.window_end.as_ref().map(|t| t.seconds)).unwrap_or_default(),
        time(a.detected_at.as_ref().map(|t| t.seconds)).unwrap_or_default(),
        found.position
    );
    let _ = writeln!(s, "  {}", a.explanation);
    s
}

/// Hours with one decimal.
fn hours(minutes: u32) -> String {
    format!("{:.1} h", f64::from(minutes) / 60.0)
}

/// Kronor with two decimals, from öre.
fn kronor(ore: u64) -> String {
    format!("{}.{:02} kr", ore / 100, ore % 100)
}

/// A time as RFC 3339 (UTC) with the Swedish local clock time.
fn with_local(rfc3339: &str, at: Option<EventTime>) -> String {
    match at {
        Some(t) => {
            let local = t.plus_secs(t.stockholm_offset_secs()).0.rem_euclid(86_400);
            format!("{rfc3339} ({:02}:{:02} local)", local / 3600, local / 60 % 60)
        }
        None => rfc3339.to_string(),
    }
}

fn parse_time(rfc3339: &str) -> Option<EventTime> {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| EventTime(d.as_secs() as i64))
}

fn point(p: &GeoPoint) -> String {
    format!("{:.5}, {:.5}", p.lat, p.lon)
}

/// One matched record, for a person: a heading with the id and where it
/// was read, then the record's fields, one group a line.
pub fn describe_record(r: &ShownRecord) -> String {
    let mut s = String::new();
    match &r.content {
        Content::TimeReport(v) => {
            let _ = writeln!(s, "{}: time report, {}", r.event_id, r.position);
            let _ = writeln!(s, "  provider {} in {}, {}", v.provider_id, v.municipality_code, v.service_type);
            let revealed = v.revealed.as_ref();
            let clear = |text: Option<&String>| text.map_or(String::new(), |t| format!(" (in clear: {t})"));
            let _ = write!(
                s,
                "  client {}{}, staff {}{}",
                v.client,
                clear(revealed.map(|r| &r.client_ref)),
                v.staff,
                clear(revealed.map(|r| &r.staff_ref))
            );
            if let Some(h) = &v.household {
                let _ = write!(s, ", household {h}{}", clear(revealed.and_then(|r| r.household_ref.as_ref())));
            }
            s.push('\n');
            let planned = v.planned_minutes.map_or(String::new(), |p| format!(", planned {p} min"));
            let _ = writeln!(
                s,
                "  check-in {}, check-out {}: {} min{planned}",
                with_local(&v.check_in, parse_time(&v.check_in)),
                with_local(&v.check_out, parse_time(&v.check_out)),
                v.minutes
            );
            let _ = writeln!(s, "  registered by {}, reported {}", v.registration, v.reported_at);
            if let Some(d) = v.check_in_distance_from_home_m {
                let _ = writeln!(s, "  checked in {d} m from the client's home");
            }
            if let Some(after) = &v.after_visit {
                let _ = writeln!(
                    s,
                    "  {:.1} km from the home of the staff member's previous visit shown ({}), {} min after its \
                     check-out",
                    after.home_distance_m as f64 / 1000.0,
                    after.event_id,
                    after.minutes_between
                );
            }
            if let Some(r) = revealed {
                let at = |p: Option<&GeoPoint>| p.map_or("unknown".to_string(), point);
                let _ = writeln!(
                    s,
                    "  in clear: home {}, check-in at {}",
                    at(r.client_home.as_ref()),
                    at(r.check_in_location.as_ref())
                );
            }
        }
        Content::Invoice(i) => {
            let _ = writeln!(s, "{}: invoice, {}", r.event_id, r.position);
            let minutes: u32 = i.lines.iter().map(|l| l.minutes).sum();
            let _ = writeln!(
                s,
                "  provider {} in {}, period {} .. {}, issued {}",
                i.provider_id, i.municipality_code, i.period_start, i.period_end, i.issued_at
            );
            let _ = writeln!(s, "  {} lines, {}, total {}", i.lines.len(), hours(minutes), kronor(i.total_ore));
            for (n, l) in i.lines.iter().enumerate() {
                let clear = l.client_ref.as_ref().map_or(String::new(), |r| format!(" (in clear: {r})"));
                let _ = writeln!(
                    s,
                    "  line {:>3}: client {}{clear}, {}, {} min ({}) at {}/h = {}",
                    n + 1,
                    l.client,
                    l.service_type,
                    l.minutes,
                    hours(l.minutes),
                    kronor(l.tariff_ore_per_hour),
                    kronor(l.amount_ore)
                );
            }
        }
        Content::Rejected { reason, detail } => {
            let _ = writeln!(s, "{}: a record the service rejects, {}", r.event_id, r.position);
            let _ = writeln!(s, "  {reason}: {detail} (never applied: not what the alert counted)");
        }
    }
    s
}

/// The report of one run, written to `out`: the alert, each record found
/// (in the order of its evidence ids), the ids not found, and what was
/// read; as text for a person, or (`json`) one JSON object per line, each
/// with a `kind`: `alert`, `evidence`, `not_found`, `scanned`.
pub fn write_report(
    out: &mut dyn std::io::Write,
    found: &FoundAlert,
    matched: &Matched,
    scanned: &[Scanned],
    personal: Personal,
    json: bool,
) -> anyhow::Result<()> {
    let wanted = matched.wanted.len();
    if json {
        let line = |out: &mut dyn std::io::Write, value: serde_json::Value| -> anyhow::Result<()> {
            serde_json::to_writer(&mut *out, &value)?;
            out.write_all(b"\n")?;
            Ok(())
        };
        line(
            out,
            serde_json::json!({"kind": "alert", "position": found.position, "personal_references": personal, "alert": found.alert}),
        )?;
        for r in &matched.records {
            let mut value = serde_json::to_value(r)?;
            value.as_object_mut().expect("a record is an object").insert("kind".into(), "evidence".into());
            line(out, value)?;
        }
        for id in &matched.missing {
            line(out, serde_json::json!({"kind": "not_found", "event_id": id}))?;
        }
        line(
            out,
            serde_json::json!({
                "kind": "scanned",
                "evidence_ids": wanted,
                "found": wanted - matched.missing.len(),
                "not_found": matched.missing.len(),
                "ranges": scanned,
            }),
        )?;
        return Ok(());
    }
    out.write_all(describe_alert(found).as_bytes())?;
    let shown = match personal {
        Personal::Pseudonymous => "personal references as the service's pseudonymous keys",
        Personal::Revealed => "PERSONAL REFERENCES AND POSITIONS IN CLEAR (--reveal-personal-references)",
    };
    let s = if wanted == 1 { "" } else { "s" };
    writeln!(out, "evidence: {wanted} event id{s}, {} found; {shown}", wanted - matched.missing.len())?;
    for r in &matched.records {
        writeln!(out)?;
        out.write_all(describe_record(r).as_bytes())?;
    }
    if !matched.missing.is_empty() {
        writeln!(out)?;
        writeln!(out, "not found (no record the service applies) in what was read: {}", matched.missing.join(", "))?;
    }
    writeln!(out)?;
    writeln!(out, "read:")?;
    for s in scanned {
        writeln!(out, "  {s}")?;
    }
    Ok(())
}
