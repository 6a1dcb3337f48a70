//! `tillsyn evidence --alert ID`: the records behind an alert's evidence
//! ids, decoded, for an investigator to follow.
//!
//! The alert comes from the alert topic (every partition read from its
//! beginning until it is found) or from an alerts file (`tillsyn replay
//! --alerts`); the records from the input topics or from an events file
//! (as `replay` reads it) or a records file (as `produce` reads it). Each
//! record whose event id is one of the alert's evidence ids is decoded and
//! validated as the service does it at the edge, and shown with its
//! position; client, staff and household references as the pseudonymous
//! keys the service computes from them with the configured secret (so they
//! are the keys of the service's state), unless the operator asks for them
//! in clear (`--reveal-personal-references`), which is logged as an audit
//! line naming the alert and the choice, never a reference.
//!
//! **What is read on the topics.** Inputs are keyed by provider id, so the
//! alert's provider's records are in one partition of each input topic.
//! The record timestamps bound the scan: an event is written to Kafka after
//! it happened (a visit is reported after its check-in, an invoice sent
//! after its issue; `core.max_ahead` allows a source's clock that much
//! ahead), and before the alert that names it was written. So:
//!
//! 1. the provider's partition of both input topics, from the records
//!    written at the start of the alert's episode's first window (less
//!    `core.max_ahead` and an hour for clocks) to an hour after the alert's
//!    own record (the end of the partitions for an alert from a file);
//! 2. for ids not found there, the same partitions back to the state's
//!    horizon (`core.horizon_days` before the detection: nothing older is
//!    in the state the evidence comes from);
//! 3. for ids still missing, the other partitions of the time-report topic
//!    over the first range: the staff rules name visits of other providers
//!    (a staff member registered by two providers at once).
//!
//! Each scan stops once every id is found. The offsets of those times come
//! from the broker (`ListOffsets` by timestamp); an answer is checked by
//! reading the record at it, and one that does not check out (tansu 0.6
//! answers offset 0 for a time after its last record) is not used: the
//! bound falls back to the partition's start or end. `--scan-all` reads
//! every partition of both topics whole. The report says what was read.

pub mod show;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use self::show::{AlertSearch, FoundAlert, Matcher, Personal, Position, Scanned, kafka_time};
use super::broker;
use super::config::ServiceConfig;
use tillsyn_core::codec::{CodecError, MessageReader};
use tillsyn_core::decode::{self, CONTENT_TYPE_HEADER};
use tillsyn_core::engine::Input;
use tillsyn_core::model::EventTime;
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::validate::Validator;
use tillsyn_core::partition::partition_for_key;
use tillsyn_core::proto::v1 as wire;
use tillsyn_core::records::RecordReader;

/// `tillsyn evidence`'s arguments.
#[derive(Debug, clap::Args)]
pub struct EvidenceArgs {
    /// The alert's id (`alertId`).
    #[arg(long)]
    pub alert: String,
    /// Configuration file (TOML); `TILLSYN_`-prefixed environment variables
    /// override it. Its `core.pseudonym_secret` must be the service's.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Find the alert in this alerts file (`tillsyn replay --alerts`)
    /// instead of on the alert topic.
    #[arg(long)]
    pub alerts: Option<PathBuf>,
    /// Find the records in this events file (as `tillsyn replay --events`
    /// reads it) instead of on the input topics.
    #[arg(long, conflicts_with = "records")]
    pub events: Option<PathBuf>,
    /// Find the records in this records file (as `tillsyn produce
    /// --records` reads it) instead of on the input topics.
    #[arg(long)]
    pub records: Option<PathBuf>,
    /// One JSON object per line (`kind`: `alert`, `evidence`, `not_found`,
    /// `scanned`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show client, staff and household references and positions in clear
    /// beside their keys. Personal data: the use is logged (audit).
    #[arg(long)]
    pub reveal_personal_references: bool,
    /// Read every partition of both input topics whole instead of the
    /// ranges the record timestamps bound.
    #[arg(long)]
    pub scan_all: bool,
}

/// Clock skew allowed between the sources, the service and the broker.
const CLOCK_SLACK_SECS: i64 = 3600;
/// Longest wait for a record the broker says is there.
const STALL: Duration = Duration::from_secs(30);

/// Runs `tillsyn evidence` with `config`, writing the report to `out`. An
/// error when the alert is not found, or when none of its evidence ids is.
pub fn command(config: &ServiceConfig, args: &EvidenceArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let personal = if args.reveal_personal_references { Personal::Revealed } else { Personal::Pseudonymous };
    let records_from_topics = args.events.is_none() && args.records.is_none();
    if records_from_topics {
        // The service refuses such a secret, so its keys were computed
        // with another one: the keys shown here would match nothing.
        config.check_pseudonym_secret().context(
            "the keys shown are computed as the service computes them: give the service's core.pseudonym_secret",
        )?;
    } else if config.check_pseudonym_secret().is_err() {
        eprintln!(
            "warning: core.pseudonym_secret is the default or short: the keys shown are those of a replay with \
             the same configuration, not the live service's"
        );
    }
    if records_from_topics || args.alerts.is_none() {
        broker::probe(config)?;
    }
    let found = match &args.alerts {
        Some(path) => alert_from_file(path, &args.alert)?,
        None => alert_from_topic(config, &args.alert)?,
    };
    audit(&found, personal);
    let pseudonymizer = Pseudonymizer::from_secret(&config.core.pseudonym_secret);
    let mut matcher = Matcher::new(&found.alert, pseudonymizer.clone(), personal);
    let validator = Validator::new(pseudonymizer);
    let scanned = if matcher.wanted().is_empty() {
        Vec::new()
    } else if let Some(path) = &args.events {
        vec![events_file(path, &mut matcher)?]
    } else if let Some(path) = &args.records {
        vec![records_file(config, path, &validator, &mut matcher)?]
    } else {
        Topics::new(config, &validator)?.find(&found, &mut matcher, args.scan_all)?
    };
    let matched = matcher.finish();
    show::write_report(out, &found, &matched, &scanned, personal, args.json)?;
    out.flush()?;
    if !matched.wanted.is_empty() && matched.missing.len() == matched.wanted.len() {
        anyhow::bail!(
            "none of alert {}'s {} evidence ids was found in what was read (listed above)",
            found.alert.alert_id,
            matched.wanted.len()
        );
    }
    Ok(())
}

/// Logs to stderr as the other commands do (`log.format`, `log.level`),
/// the audit lines always on.
pub fn init_logging(config: &ServiceConfig) -> anyhow::Result<()> {
    use super::config::LogFormat;
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{},tillsyn::audit=info", config.log.level))?;
    // Colours only on a terminal: an audit line kept in a file is read plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
    Ok(())
}

/// The audit line of a run: the alert and how personal references are
/// shown, never a reference; before anything is shown.
fn audit(found: &FoundAlert, personal: Personal) {
    let operator = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown (USER not set)".into());
    let alert_id = found.alert.alert_id.as_str();
    let evidence_ids = found.alert.evidence_event_ids.len();
    match personal {
        Personal::Revealed => tracing::warn!(
            target: "tillsyn::audit",
            alert_id,
            personal_references = "revealed",
            operator,
            evidence_ids,
            "evidence shown with personal references in clear, as the operator asked (--reveal-personal-references)"
        ),
        Personal::Pseudonymous => tracing::info!(
            target: "tillsyn::audit",
            alert_id,
            personal_references = "pseudonymous",
            operator,
            evidence_ids,
            "evidence shown with pseudonymous keys"
        ),
    }
}

/// The alert `id` in an alerts file (NDJSON or length-delimited protobuf).
fn alert_from_file(path: &Path, id: &str) -> anyhow::Result<FoundAlert> {
    let mut reader = MessageReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut search = AlertSearch::new(id);
    let mut n = 0u64;
    while let Some(alert) =
        reader.next_message::<wire::Alert>().with_context(|| format!("reading {}", path.display()))?
    {
        n += 1;
        let position = Position::File { file: path.display().to_string(), record: n };
        if search.offer(alert, position, None) {
            break;
        }
    }
    search.finish().ok_or_else(|| anyhow::anyhow!("no alert {id:?} among the {n} alerts of {}", path.display()))
}

/// A consumer that reads partitions by offset (no group membership, no
/// commits).
fn reader(config: &ServiceConfig) -> anyhow::Result<BaseConsumer> {
    let mut client = config.kafka.consumer_config();
    client.set("statistics.interval.ms", "0");
    client.set("group.id", format!("{}-evidence-{}", config.kafka.group_id, std::process::id()));
    client.set("enable.auto.commit", "false");
    client.set("enable.partition.eof", "true");
    // Short reads: the broker may otherwise wait before answering a fetch.
    client.set("fetch.wait.max.ms", "20");
    Ok(client.create()?)
}

/// Reads `topic`/`partition` from `from` up to `to` (exclusive), handing
/// each record to `each` until it returns false. Returns the records read
/// and the offset after the last one read.
fn scan(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> bool,
) -> anyhow::Result<(u64, i64)> {
    if from >= to {
        return Ok((0, from));
    }
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(from))?;
    consumer.assign(&list)?;
    let (mut read, mut next) = (0u64, from);
    let mut last = Instant::now();
    while next < to {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last = Instant::now();
                if m.offset() >= to {
                    break;
                }
                next = m.offset() + 1;
                read += 1;
                if !each(&m) {
                    break;
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic}[{partition}]")),
            None if last.elapsed() > STALL => {
                anyhow::bail!("reading {topic}[{partition}] at offset {next}: nothing came for {STALL:?}")
            }
            None => {}
        }
    }
    consumer.unassign()?;
    Ok((read, next))
}

fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a [u8]> {
    m.headers().and_then(|h| h.iter().filter(|h| h.key.eq_ignore_ascii_case(name)).last().and_then(|h| h.value))
}

/// The partitions of `topic`.
fn partitions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<i32> {
    let metadata = broker::metadata(consumer.client(), Some(topic), Duration::from_secs(30))?;
    match metadata.topics().first().map_or(0, |t| t.partitions().len()) {
        0 => anyhow::bail!("topic {topic} does not exist"),
        n => Ok(n as i32),
    }
}

/// The alert `id` on the alert topic: every partition from its start to
/// its end at the time of asking, until found.
fn alert_from_topic(config: &ServiceConfig, id: &str) -> anyhow::Result<FoundAlert> {
    let consumer = reader(config)?;
    let topic = &config.topics.alerts;
    let mut search = AlertSearch::new(id);
    let mut read = 0u64;
    for partition in 0..partitions(&consumer, topic)? {
        let (low, high) = broker::watermarks(consumer.client(), topic, partition, Duration::from_secs(30))?;
        let (n, _) = scan(&consumer, topic, partition, low, high, |m| {
            let payload = m.payload().unwrap_or_default();
            let json = header(m, CONTENT_TYPE_HEADER).is_some_and(|v| v.starts_with(b"application/json"));
            let alert = if json { serde_json::from_slice(payload).ok() } else { wire::Alert::decode(payload).ok() };
            // A record that is no alert (not tillsyn's) is passed over.
            let Some(alert) = alert else { return true };
            let position = Position::Topic {
                topic: topic.clone(),
                partition,
                offset: m.offset(),
                written: m.timestamp().to_millis().map(kafka_time),
            };
            !search.offer(alert, position, m.timestamp().to_millis())
        })?;
        read += n;
        if search.is_found() {
            break;
        }
    }
    search.finish().ok_or_else(|| anyhow::anyhow!("no alert {id:?} on the alert topic {topic} ({read} records read)"))
}

/// An events file (as `replay` reads it): every event offered in file
/// order until every id is found. A line that is not JSON is passed over,
/// as `replay` does; a length-delimited file stops at a broken record.
fn events_file(path: &Path, matcher: &mut Matcher) -> anyhow::Result<Scanned> {
    let mut reader = MessageReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut n = 0u64;
    let mut whole = true;
    loop {
        let event = match reader.next_message::<wire::Event>() {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(CodecError::Json { .. }) => {
                n += 1;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {} after record {n}", path.display())),
        };
        n += 1;
        matcher.offer(&event, || Position::File { file: path.display().to_string(), record: n });
        if matcher.all_found() {
            whole = false;
            break;
        }
    }
    Ok(file_scanned(path, n, whole))
}

/// A records file (as `produce` reads it): every record decoded as the
/// service decodes one of its input topic, until every id is found.
fn records_file(
    config: &ServiceConfig,
    path: &Path,
    validator: &Validator,
    matcher: &mut Matcher,
) -> anyhow::Result<Scanned> {
    let reader = RecordReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut n = 0u64;
    let mut whole = true;
    for line in reader {
        n += 1;
        let Ok(line) = line else { continue };
        let format = config.topics.input_format(line.input);
        let decoded =
            decode::decode_message(line.input, Some(&line.value), line.content_type.as_deref(), format, validator);
        if let Ok(event) = decoded {
            matcher.offer(&event, || Position::File { file: path.display().to_string(), record: n });
        }
        if matcher.all_found() {
            whole = false;
            break;
        }
    }
    Ok(file_scanned(path, n, whole))
}

fn file_scanned(path: &Path, records: u64, whole: bool) -> Scanned {
    Scanned {
        source: path.display().to_string(),
        partition: None,
        from_offset: None,
        to_offset: None,
        records,
        why: if whole { "the whole file".into() } else { "from its start; stopped: every id found".into() },
    }
}

/// The input topics, read for one alert's evidence.
struct Topics<'a> {
    config: &'a ServiceConfig,
    validator: &'a Validator,
    consumer: BaseConsumer,
}

/// A range of one input partition to read, and why.
struct Range {
    input: Input,
    partition: i32,
    from: i64,
    to: i64,
    why: String,
}

impl<'a> Topics<'a> {
    fn new(config: &'a ServiceConfig, validator: &'a Validator) -> anyhow::Result<Self> {
        Ok(Topics { config, validator, consumer: reader(config)? })
    }

    /// Reads the ranges of the module's doc until every evidence id is
    /// found; what was read.
    fn find(&self, found: &FoundAlert, matcher: &mut Matcher, scan_all: bool) -> anyhow::Result<Vec<Scanned>> {
        // Invoices first: a partition of them is small, and an invoice id
        // found there spares reading the time reports.
        let inputs = [Input::Invoices, Input::TimeReports];
        let mut counts = Vec::new();
        for input in inputs {
            counts.push(partitions(&self.consumer, self.config.topics.input_topic(input))?);
        }
        let count = |input: Input| counts[if input == Input::Invoices { 0 } else { 1 }];
        let home = |input: Input| partition_for_key(found.alert.provider_id.as_bytes(), count(input));
        let mut scanned = Vec::new();
        if scan_all {
            // The provider's partitions first, then the others.
            let homes = inputs.map(|input| (input, home(input), "the provider's partition, whole"));
            let others = inputs.into_iter().flat_map(|input| {
                (0..count(input)).filter(move |p| *p != home(input)).map(move |p| (input, p, "whole"))
            });
            for (input, partition, why) in homes.into_iter().chain(others) {
                let (low, high) = self.watermarks(input, partition)?;
                self.read(Range { input, partition, from: low, to: high, why: why.into() }, matcher, &mut scanned)?;
            }
            return Ok(scanned);
        }

        let alert = &found.alert;
        let max_ahead = self.config.core.max_ahead.as_secs() as i64;
        let window_start = alert.window_start.as_ref().map_or(0, |t| t.seconds);
        let first_window = found.episode_start.unwrap_or(window_start).min(window_start);
        let near_from = first_window - max_ahead - CLOCK_SLACK_SECS;
        let detected = alert.detected_at.as_ref().map_or(window_start, |t| t.seconds);
        let horizon = i64::from(self.config.core.horizon_days) * 86_400;
        let wide_from = (detected - horizon - max_ahead - CLOCK_SLACK_SECS).min(near_from);
        let until = found.timestamp_ms.map(|ms| ms + CLOCK_SLACK_SECS * 1000);
        let until_text = match until {
            Some(ms) => format!("{} (an hour after the alert was written)", kafka_time(ms)),
            None => "the end (the alert is from a file)".into(),
        };

        // 1. The provider's partitions over the alert's episode.
        let mut near = Vec::new();
        for input in inputs {
            let partition = home(input);
            let (from, to, note) = self.range(input, partition, near_from, until)?;
            near.push((input, partition, from));
            let why = format!(
                "the provider's partition, records written from {}{note} (the episode's first window start less \
                 core.max_ahead and an hour) to {until_text}",
                EventTime(near_from)
            );
            self.read(Range { input, partition, from, to, why }, matcher, &mut scanned)?;
        }
        // 2. Back to the state's horizon.
        if !matcher.all_found() && wide_from < near_from {
            for &(input, partition, near_start) in &near {
                if matcher.all_found() {
                    break;
                }
                let (from, _, note) = self.range(input, partition, wide_from, None)?;
                let why = format!(
                    "the provider's partition, back to records written from {}{note} (core.horizon_days before the \
                     detection)",
                    EventTime(wide_from)
                );
                self.read(Range { input, partition, from, to: near_start, why }, matcher, &mut scanned)?;
            }
        }
        // 3. Other providers' visits (the staff rules).
        let input = Input::TimeReports;
        for partition in (0..count(input)).filter(|p| *p != home(input)) {
            if matcher.all_found() {
                break;
            }
            let (from, to, note) = self.range(input, partition, near_from, until)?;
            let why = format!(
                "another provider's partition (the staff rules name their visits), records written from {}{note} \
                 to {until_text}",
                EventTime(near_from)
            );
            self.read(Range { input, partition, from, to, why }, matcher, &mut scanned)?;
        }
        Ok(scanned)
    }

    fn watermarks(&self, input: Input, partition: i32) -> anyhow::Result<(i64, i64)> {
        let topic = self.config.topics.input_topic(input);
        Ok(broker::watermarks(self.consumer.client(), topic, partition, Duration::from_secs(30))?)
    }

    /// The first offset of `input`'s `partition` whose record was written
    /// at or after `ms`, as the broker answers and a read of the record at
    /// that offset confirms: the partition's end if none was; `None` if
    /// the answer does not check out (tansu 0.6 answers the partition's
    /// first offset for a time after its last record).
    fn offset_at(&self, input: Input, partition: i32, ms: i64) -> anyhow::Result<Option<i64>> {
        let topic = self.config.topics.input_topic(input);
        let (low, high) = self.watermarks(input, partition)?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(ms))?;
        let Ok(answer) = self.consumer.offsets_for_times(list, Duration::from_secs(30)) else { return Ok(None) };
        let offset = match answer.find_partition(topic, partition).map(|e| e.offset()) {
            // No record written at or after that time.
            Some(Offset::End) => return Ok(Some(high)),
            Some(Offset::Offset(o)) if o >= high => return Ok(Some(high)),
            Some(Offset::Offset(o)) if o >= low => o,
            _ => return Ok(None),
        };
        let mut written = None;
        scan(&self.consumer, topic, partition, offset, offset + 1, |m| {
            written = m.timestamp().to_millis();
            false
        })?;
        Ok(written.filter(|at| *at >= ms).map(|_| offset))
    }

    /// The range of `input`'s `partition` written from `from_secs` to
    /// `until_ms` (the end if none), and a note if the start is not the
    /// broker's.
    fn range(
        &self,
        input: Input,
        partition: i32,
        from_secs: i64,
        until_ms: Option<i64>,
    ) -> anyhow::Result<(i64, i64, &'static str)> {
        let (low, high) = self.watermarks(input, partition)?;
        let (from, note) = match self.offset_at(input, partition, from_secs * 1000)? {
            Some(o) => (o, ""),
            None => (low, " (the broker's offset for that time did not check out: read from the start)"),
        };
        // An upper bound that does not check out is the end: nothing
        // written later can be evidence, so reading on is only slower.
        let to = match until_ms {
            Some(ms) => self.offset_at(input, partition, ms)?.unwrap_or(high),
            None => high,
        };
        Ok((from, to, note))
    }

    /// Reads one range, offering each record to `matcher`, until every id
    /// is found.
    fn read(&self, range: Range, matcher: &mut Matcher, scanned: &mut Vec<Scanned>) -> anyhow::Result<()> {
        if matcher.all_found() {
            return Ok(());
        }
        let topic = self.config.topics.input_topic(range.input);
        let format = self.config.topics.input_format(range.input);
        let (records, next) = scan(&self.consumer, topic, range.partition, range.from, range.to, |m| {
            let headers = m.headers().into_iter().flat_map(|h| h.iter()).map(|h| (h.key, h.value));
            let decoded = decode::content_type_header(headers).and_then(|content_type| {
                decode::decode_message(range.input, m.payload(), content_type, format, self.validator)
            });
            if let Ok(event) = decoded {
                matcher.offer(&event, || Position::Topic {
                    topic: topic.to_string(),
                    partition: range.partition,
                    offset: m.offset(),
                    written: m.timestamp().to_millis().map(kafka_time),
                });
            }
            !matcher.all_found()
        })?;
        let stopped = if matcher.all_found() && next < range.to { "; stopped: every id found" } else { "" };
        scanned.push(Scanned {
            source: topic.to_string(),
            partition: Some(range.partition),
            from_offset: Some(range.from),
            to_offset: Some(next.max(range.from)),
            records,
            why: format!("{}{stopped}", range.why),
        });
        Ok(())
    }
}
