//! `tillsyn replay`: the core over an events file, alerts to a file.
//!
//! Reads `tillsyn.v1.Event` messages (NDJSON or length-delimited protobuf)
//! in file order, validates each one, feeds the engine and writes every
//! alert. A record that fails to decode or validate is counted by reason
//! and, if asked, written to a dead-letter file with the reason; the run
//! continues. Late events are counted by input. The run is deterministic:
//! the same file gives a byte-identical alerts file, for any
//! `--partitions`: the alerts are written in decision-time order (then by
//! alert id), not in the order the partitions happened to emit them.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tillsyn_core::baseline::{GlobalPeerTable, ReferenceTable};
use tillsyn_core::codec::{CodecError, MessageReader, MessageWriter};
use tillsyn_core::config::CoreConfig;
use tillsyn_core::decode::{Rejection, reason};
use tillsyn_core::driver::{HoldLimit, Offsets, Output, PartitionDriver, Record};
use tillsyn_core::engine::{
    Engine, EngineStats, FromStaff, Input, StagePartition, StateSize, ToStaff, apply_reference,
};
use tillsyn_core::model::DomainEvent;
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::validate::Validator;
use tillsyn_core::partition::partition_for_key;
use tillsyn_core::proto::v1 as wire;
use tillsyn_core::rules::timeline::RulesVersion;

/// What a replay did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplaySummary {
    /// Records read.
    pub records: u64,
    /// Records rejected, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Late events, by input.
    pub late: BTreeMap<&'static str, u64>,
    /// Alerts written, by rule id.
    pub alerts_by_rule: BTreeMap<&'static str, u64>,
    /// Alerts written, by status.
    pub alerts_by_status: BTreeMap<&'static str, u64>,
    /// Engine counters.
    pub engine: EngineStats,
    /// State sizes at the end.
    pub state: StateSize,
    /// Wall time of the run, seconds.
    pub elapsed_secs: f64,
}

impl ReplaySummary {
    /// Records per second of wall time.
    pub fn throughput(&self) -> f64 {
        self.records as f64 / self.elapsed_secs.max(1e-9)
    }

    /// Alerts written.
    pub fn alerts(&self) -> u64 {
        self.alerts_by_status.values().sum()
    }
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "records      {:>12}", self.records)?;
        writeln!(f, "  visits     {:>12}", self.engine.visits)?;
        writeln!(f, "  invoices   {:>12}", self.engine.invoices)?;
        writeln!(f, "  rejected   {:>12}", self.rejected.values().sum::<u64>())?;
        for (reason, n) in &self.rejected {
            writeln!(f, "    {reason:<28}{n:>8}")?;
        }
        writeln!(f, "  late       {:>12}", self.late.values().sum::<u64>())?;
        for (input, n) in &self.late {
            writeln!(f, "    {input:<28}{n:>8}")?;
        }
        writeln!(f, "  duplicate invoices {:>4}", self.engine.duplicate_invoices)?;
        writeln!(f, "alerts       {:>12}", self.alerts())?;
        for (status, n) in &self.alerts_by_status {
            writeln!(f, "  {status:<30}{n:>8}")?;
        }
        for (rule, n) in &self.alerts_by_rule {
            writeln!(f, "  {rule:<30}{n:>8}")?;
        }
        writeln!(
            f,
            "state        {} providers, {} clients, {} staff, {} open episodes",
            self.state.providers, self.state.clients, self.state.staff, self.state.open_episodes
        )?;
        write!(f, "elapsed      {:.2} s ({:.0} records/s)", self.elapsed_secs, self.throughput())
    }
}

/// A dead-letter entry of a replay: the record's position, the reason and
/// the record itself (or the raw line when it could not be decoded).
#[derive(Debug, serde::Serialize)]
struct DeadLetter<'a> {
    record: u64,
    reason: &'a str,
    detail: String,
}

/// The versions a rules topic's history accepts over `base` (version 0),
/// from an export (`tillsyn rules export`: one JSON `tillsyn.v1.RulesRecord`
/// per line, in log order), judged as every instance judged them.
pub fn rules_history(path: &Path, base: &tillsyn_core::rules::RulesConfig) -> anyhow::Result<Vec<RulesVersion>> {
    use prost::Message as _;
    use tillsyn_core::rules::history::{Outcome, RulesEntry, RulesHistory};
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let mut history = RulesHistory::new(base);
    let mut accepted = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: wire::RulesRecord = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{} line {}: not a rules record: {e}", path.display(), n + 1))?;
        let (entry, _) = RulesEntry::decode(&record.encode_to_vec())
            .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), n + 1))?;
        if let Outcome::Accepted(version) = history.apply(&entry) {
            accepted.push(*version);
        }
    }
    Ok(accepted)
}

/// The reason a replay's dead-letter file gives a late event (live, late
/// events go to their own topic or to the dead-letter topic with this reason).
pub const LATE_EVENT_REASON: &str = "late_event";

/// Runs the core over `events`, writing alerts to `alerts` and rejected
/// records to `dead_letter` if given. Shows a progress bar on a terminal.
/// One engine, as if all events were in one partition.
pub fn replay_file(
    events: &Path,
    alerts: &Path,
    dead_letter: Option<&Path>,
    config: CoreConfig,
    progress: bool,
) -> anyhow::Result<ReplaySummary> {
    replay_partitioned(events, alerts, dead_letter, config, progress, 1)
}

/// Like [`replay_file`], with the events split into `partitions` by their
/// provider id exactly as Kafka's keyed partitioner splits the topics
/// (records keyed by the provider id `NNNNNN-NNNN`), one
/// [`PartitionDriver`] each: what the live service computes over the same
/// records. The handle of a record is its number in the file (from 1).
pub fn replay_partitioned(
    events: &Path,
    alerts: &Path,
    dead_letter: Option<&Path>,
    config: CoreConfig,
    progress: bool,
    partitions: i32,
) -> anyhow::Result<ReplaySummary> {
    replay_with_rules(events, alerts, dead_letter, config, progress, partitions, &[])
}

/// Like [`replay_partitioned`], deciding with the versions of the rules'
/// configuration `versions` (the accepted ones of a rules topic's history,
/// see [`rules_history`]) besides version 0, each from its effective time,
/// as the live service did.
pub fn replay_with_rules(
    events: &Path,
    alerts: &Path,
    dead_letter: Option<&Path>,
    config: CoreConfig,
    progress: bool,
    partitions: i32,
    versions: &[RulesVersion],
) -> anyhow::Result<ReplaySummary> {
    let started = Instant::now();
    let validator = Validator::new(Pseudonymizer::from_secret(&config.pseudonym_secret));
    let partitions = partitions.max(1);
    let mut drivers: Vec<PartitionDriver<u64>> = (0..partitions)
        .map(|index| {
            let partition = StagePartition { index: index as u32, count: partitions as u32 };
            let engine = Engine::for_partition(config.clone(), partition);
            PartitionDriver::new(engine, Offsets::default(), HashMap::new(), HoldLimit::default())
        })
        .collect();
    for driver in &mut drivers {
        for version in versions {
            driver.add_rules_version(version)?;
        }
    }
    // The rest of the topology, as the service runs it over its internal
    // topics: every partition's closed days (the peer-days topic, read in
    // full by every instance), the staff stage (one partition per input
    // partition, fed over the visits-by-staff topic, answering over the
    // staff-findings topic).
    let mut topology = Topology::new(partitions, config.reference.table(1));
    // The offset each record gets in its (partition, input), as on the topics.
    let mut offsets = vec![Offsets::default(); partitions as usize];
    let mut reader = MessageReader::open(events)?;
    let writer = MessageWriter::create(alerts)?;
    let dead = match dead_letter {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let bar = progress.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {human_pos} events ({per_sec}) {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut sink = Sink { summary: ReplaySummary::default(), writer, dead, alerts: Vec::new() };
    let mut out = Vec::new();
    // A file holds the records in their arrival order: no invoice waits to
    // be read behind a time report, so the driver holds nothing back.
    let mut no_unread_invoices = || Some(0);
    loop {
        let (input, decoded) = match reader.next_message::<wire::Event>() {
            Ok(Some(event)) => {
                let input = match event.kind {
                    Some(wire::event::Kind::Invoice(_)) => Input::Invoices,
                    _ => Input::TimeReports,
                };
                (input, validator.event(&event).map_err(Rejection::from))
            }
            Ok(None) => break,
            Err(e @ CodecError::Json { .. }) => (Input::TimeReports, Err(Rejection::new(reason::JSON_DECODE, e))),
            Err(e @ CodecError::Protobuf { .. }) => {
                (Input::TimeReports, Err(Rejection::new(reason::PROTOBUF_DECODE, e)))
            }
            Err(e) => return Err(e.into()),
        };
        sink.summary.records += 1;
        let stop = matches!(&decoded, Err(r) if r.reason == reason::PROTOBUF_DECODE);
        // Where the record goes, as on the topics: a rejected record has no
        // provider to route by (partition 0, as a shell must put it
        // somewhere); a source heartbeat goes to every partition of both
        // topics, each copy a record with an offset of its own.
        // Reference data goes to the global reference table (one source: the
        // file), the days it lets the partitions decide are decided.
        if let Ok(DomainEvent::Reference(record)) = &decoded {
            match apply_reference(&mut topology.reference, 0, record) {
                Ok(moved) => {
                    if moved {
                        topology.decide(&mut drivers, &mut out);
                    }
                }
                Err(rejection) => {
                    out.push(Output::DeadLetter { handle: sink.summary.records, input, offset: -1, rejection })
                }
            }
            topology.settle(&mut drivers, &mut out, &mut sink)?;
            continue;
        }
        if let Ok(DomainEvent::Heartbeat(at)) = &decoded
            && topology.reference.in_use()
            && topology.reference.heartbeat(0, *at)?
        {
            topology.decide(&mut drivers, &mut out);
        }
        let targets: Vec<(usize, Input, Result<DomainEvent, Rejection>)> = match decoded {
            Ok(DomainEvent::Heartbeat(at)) => (0..partitions as usize)
                .flat_map(|p| {
                    [Input::Invoices, Input::TimeReports].map(|input| (p, input, Ok(DomainEvent::Heartbeat(at))))
                })
                .collect(),
            Ok(event) => {
                let provider = event.provider().map(|p| p.to_string()).unwrap_or_default();
                vec![(partition_for_key(provider.as_bytes(), partitions) as usize, input, Ok(event))]
            }
            Err(rejection) => vec![(0, input, Err(rejection))],
        };
        for (partition, input, decoded) in targets {
            let offset = offsets[partition].take(input);
            // Replay never holds a record (no invoice is unread), so its size is moot.
            let record = Record { input, offset, decoded, handle: sink.summary.records, size: 0 };
            drivers[partition].offer(record, &mut no_unread_invoices, &mut out);
        }
        topology.settle(&mut drivers, &mut out, &mut sink)?;
        if stop {
            // A length-delimited file cannot be resynchronised after a bad record.
            break;
        }
        if let Some(bar) = &bar
            && sink.summary.records.is_multiple_of(4096)
        {
            bar.set_position(sink.summary.records);
            bar.set_message(format!("{} alerts", sink.summary.alerts()));
        }
    }
    let Sink { mut summary, mut writer, dead, mut alerts } = sink;
    alerts.sort_by(|a, b| (a.detected_at, &a.alert_id).cmp(&(b.detected_at, &b.alert_id)));
    for alert in &alerts {
        writer.write(&alert.to_wire())?;
    }
    writer.finish()?;
    if let Some(mut d) = dead {
        d.flush()?;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for driver in &drivers {
        summary.engine.add(&driver.engine().stats());
        summary.state.add(&driver.engine().state_size());
    }
    summary.state.staff = drivers.iter().map(|d| d.staff().size().0).sum();
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// What the partitions talk to, in memory, as the service does over its
/// internal topics: the global peer table (the peer-days topic, read in
/// full by every instance), and the records in flight to each partition's
/// staff stage (visits-by-staff) and back to the provider stage
/// (staff-findings), in the order those topics would carry them.
struct Topology {
    partitions: i32,
    peers: GlobalPeerTable,
    /// The reference data (the file is its one source).
    reference: ReferenceTable,
    /// Per partition: records for its staff stage not yet taken, and for
    /// its provider stage from the staff stage; with each topic's next offset.
    to_staff: Vec<(Vec<ToStaff>, i64)>,
    from_staff: Vec<(Vec<FromStaff>, i64)>,
}

impl Topology {
    fn new(partitions: i32, reference: ReferenceTable) -> Self {
        let n = partitions.max(1);
        Topology {
            partitions: n,
            peers: GlobalPeerTable::new(n as u32),
            reference,
            to_staff: vec![(Vec::new(), 0); n as usize],
            from_staff: vec![(Vec::new(), 0); n as usize],
        }
    }

    /// Decides in every partition what the global tables allow.
    fn decide(&mut self, drivers: &mut [PartitionDriver<u64>], out: &mut Vec<Output<u64>>) {
        for driver in drivers.iter_mut() {
            driver.decide(&self.peers, &self.reference, out);
        }
        if let Some(d) = drivers.first() {
            self.reference.prune_behind(d.engine().config().reference_keep_days());
        }
    }

    /// Carries the drivers' outputs through the topology until nothing is
    /// in flight: peer days to the table (and the days it makes final
    /// decided by every partition), records to the staff stage and its
    /// answers back, alerts and dead letters to the sink.
    fn settle(
        &mut self,
        drivers: &mut [PartitionDriver<u64>],
        out: &mut Vec<Output<u64>>,
        sink: &mut Sink,
    ) -> anyhow::Result<()> {
        loop {
            let mut finalised = false;
            for output in out.drain(..) {
                match output {
                    Output::PeerDay(day) => finalised |= self.peers.apply(day)?,
                    Output::ToStaff(record) => match record.partition(self.partitions) {
                        Some(p) => self.to_staff[p].0.push(record),
                        None => self.to_staff.iter_mut().for_each(|(q, _)| q.push(record.clone())),
                    },
                    Output::FromStaff(record) => match record.provider() {
                        Some(provider) => {
                            let p = partition_for_key(provider.to_string().as_bytes(), self.partitions);
                            self.from_staff[p as usize].0.push(record);
                        }
                        None => self.from_staff.iter_mut().for_each(|(q, _)| q.push(record.clone())),
                    },
                    output => sink.take(output)?,
                }
            }
            if finalised {
                self.decide(drivers, out);
                continue;
            }
            // What the provider stage sent each staff partition since the
            // last round, as one record (the service batches likewise).
            for (driver, (queue, offset)) in drivers.iter_mut().zip(&mut self.to_staff) {
                if !queue.is_empty() {
                    driver.offer_staff_visits(*offset, Some(std::mem::take(queue)), out);
                    *offset += 1;
                }
            }
            if !out.is_empty() {
                continue;
            }
            for (driver, (queue, offset)) in drivers.iter_mut().zip(&mut self.from_staff) {
                for record in queue.drain(..) {
                    driver.offer_staff_finding(*offset, Some(record), out);
                    *offset += 1;
                }
            }
            if out.is_empty() {
                // Days closed after the reference data was known through
                // their decision: published now (see `Engine::decide`).
                if drivers.iter().any(|d| d.engine().peer_day_ready(&self.reference)) {
                    self.decide(drivers, out);
                    continue;
                }
                return Ok(());
            }
        }
    }
}

/// Where a replay's outputs go: the alert file, the dead-letter file, the summary.
struct Sink {
    summary: ReplaySummary,
    writer: MessageWriter<std::io::BufWriter<std::fs::File>>,
    /// Every alert, written at the end in decision-time order.
    alerts: Vec<tillsyn_core::alerting::Alert>,
    dead: Option<std::io::BufWriter<std::fs::File>>,
}

impl Sink {
    fn take(&mut self, output: Output<u64>) -> anyhow::Result<()> {
        match output {
            Output::Alert(alert) => {
                *self.summary.alerts_by_rule.entry(alert.rule.id).or_default() += 1;
                *self.summary.alerts_by_status.entry(alert.status.name()).or_default() += 1;
                self.alerts.push(alert);
            }
            Output::DeadLetter { handle, rejection, .. } | Output::ReferenceDeadLetter { handle, rejection, .. } => {
                *self.summary.rejected.entry(rejection.reason.to_string()).or_default() += 1;
                if let Some(d) = self.dead.as_mut() {
                    write_dead(d, handle, rejection.reason, rejection.detail)?;
                }
            }
            Output::Late { handle, late, .. } => {
                *self.summary.late.entry(late.input.name()).or_default() += 1;
                if let Some(d) = self.dead.as_mut() {
                    write_dead(d, handle, LATE_EVENT_REASON, late.to_string())?;
                }
            }
            // Handled by the topology.
            Output::PeerDay(_) | Output::ToStaff(_) | Output::FromStaff(_) | Output::InternalSkipped { .. } => {}
            // Nothing was read back from an alert topic; nothing is held.
            Output::Processed { .. } | Output::Suppressed(_) | Output::Pause(_) | Output::Resume(_) => {}
            // Replay knows the rules' whole history: nothing waits for it.
            Output::RulesNeeded { at, .. } => {
                anyhow::bail!("a record waited for the rules' configuration through {at}")
            }
        }
        Ok(())
    }
}

fn write_dead(d: &mut impl Write, record: u64, reason: &str, detail: String) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *d, &DeadLetter { record, reason, detail })?;
    d.write_all(b"\n")?;
    Ok(())
}
