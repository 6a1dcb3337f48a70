//! The configuration of every command that takes `--config` (`tillsyn run`,
//! `check-config`, `topics`, `alerts`, `produce` and `replay`,
//! which uses only its `core`): Kafka clients, topics, the HTTP endpoint,
//! logging and the detection core. The CLI loads it in one place, so the
//! same file and the same environment overrides apply to all of them.
//!
//! # Sources and precedence
//!
//! [`ServiceConfig::load`] reads, from lowest to highest precedence:
//!
//! 1. the defaults (the [`Default`] impls in the "Defaults" section below, the
//!    only place they are written);
//! 2. an optional TOML file. Every table and key is optional; unknown keys are
//!    errors. A file with only a `[core]` table is a valid configuration;
//! 3. environment variables `TILLSYN_<SECTION>__<KEY>...` (see below).
//!
//! Loading only parses. [`ServiceConfig::validate`] checks ranges and
//! cross-field constraints, collects every problem into one error and
//! returns warnings (e.g. the default pseudonym secret) when the
//! configuration is usable. Each problem names its key; the core's own
//! ([`tillsyn_core::config::CoreConfigError`]) are named under `core.`.
//!
//! # Environment variables
//!
//! - The prefix is `TILLSYN_`; `__` (two underscores) separates path
//!   segments; segments are case-insensitive (lowercased):
//!   `TILLSYN_KAFKA__BROKERS` is `kafka.brokers`,
//!   `TILLSYN_CORE__RULES__ROUNDED_VISITS__MIN_VISITS` is
//!   `core.rules.rounded_visits.min_visits`.
//! - Only variables with `__` after the prefix are configuration, so the
//!   scripts' own variables (`TILLSYN_STATE_DIR`, `TILLSYN_BROKER_PORT`, ...)
//!   are ignored; but a variable that starts with a section name and one `_`
//!   (`TILLSYN_KAFKA_BROKERS`) is an error, as it is almost certainly a typo.
//! - The librdkafka pass-through maps `kafka.common`, `kafka.consumer` and
//!   `kafka.producer` take exactly one more segment, the librdkafka property,
//!   in which each `_` stands for a `.` (dots are not allowed in shell
//!   variable names): `TILLSYN_KAFKA__COMMON__SASL_PASSWORD` sets
//!   `kafka.common."sasl.password"`, `TILLSYN_KAFKA__COMMON__SSL_CA_LOCATION`
//!   sets `"ssl.ca.location"`. No settable librdkafka property has an `_` in
//!   its name; the few that do are pointers set through the C API.
//! - Values are typed by the key: string keys take the value verbatim (no
//!   quotes needed, nothing is trimmed), and so do durations and retentions,
//!   which are strings in the file too (`TILLSYN_KAFKA__COMMIT_INTERVAL=5s`,
//!   `TILLSYN_TOPICS__ALERTS_RETENTION=forever`); integer, float, boolean and
//!   array keys take a TOML value (`5000`, `0.05`, `true`,
//!   `["rounded-visits", "phantom-clients"]`). A value of the wrong type or a
//!   key that does not exist is an error naming the variable.
//! - A variable whose name ends in `_FILE` takes its value from the file it
//!   names, without a final newline, for secrets mounted as files (as
//!   Kubernetes and container runtimes do):
//!   `TILLSYN_KAFKA__COMMON__SASL_PASSWORD_FILE=/run/secrets/kafka-password`
//!   sets `kafka.common."sasl.password"`. Setting both the variable and its
//!   `_FILE` form is an error.
//!
//! # Durations
//!
//! Every duration is a string of number-unit pairs read by `humantime`
//! (`"500ms"`, `"30s"`, `"5m"`, `"1h 30m"`, `"3d"`; see
//! [`tillsyn_core::config::duration`]) and printed in its largest exact unit.
//! Keys carry no unit suffix (`kafka.commit_interval`, not `..._ms`). Topic
//! retentions are a duration or `"forever"` ([`Retention`]).
//! - A path set by two variables (e.g. in different case) is an error.
//!
//! # Kafka clients
//!
//! [`KafkaConfig::consumer_config`] and [`KafkaConfig::producer_config`] are
//! the only place where `rdkafka` configurations are built. They apply, in
//! order: `kafka.common`, then `kafka.consumer` or `kafka.producer`, then the
//! typed options, then the guarantees the service depends on (see
//! [`CONSUMER_ENFORCED`] and [`PRODUCER_ENFORCED`]). Setting an enforced or
//! typed property in a pass-through map is a validation error naming the key
//! (and, were validation skipped, it would still be overwritten).
//!
//! # Secrets
//!
//! [`ServiceConfig::masked_toml`] prints the effective configuration with
//! every secret (see [`is_secret_key`]) replaced by [`MASK`]. Error messages
//! from validation never contain the value of a secret key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use serde::{Deserialize, Serialize};

use tillsyn_core::config::{CoreConfig, duration};
use tillsyn_core::decode::Format;
use tillsyn_core::engine::Input;
use tillsyn_core::model::reference::ReferenceKind;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "TILLSYN_";
/// The suffix of a variable whose value is read from the file it names
/// (`TILLSYN_KAFKA__COMMON__SASL_PASSWORD_FILE=/run/secrets/kafka`).
pub const FILE_SUFFIX: &str = "_FILE";
/// Separator of path segments in environment variable names.
pub const ENV_SEPARATOR: &str = "__";
/// What [`ServiceConfig::masked_toml`] prints instead of a secret.
pub const MASK: &str = "***";
/// The pseudonym secret of [`CoreConfig::default`]; fine for the demo, a
/// warning in a real deployment.
pub const DEFAULT_PSEUDONYM_SECRET: &str = "change-me";
/// The shortest pseudonym secret `run` accepts.
pub const MIN_PSEUDONYM_SECRET_CHARS: usize = 16;

/// The top-level tables of the configuration file (and the first segment of
/// every environment override).
const SECTIONS: [&str; 8] = ["kafka", "topics", "http", "log", "core", "sink", "notify", "cases"];
/// The librdkafka pass-through maps under `[kafka]`.
const PASS_THROUGH_MAPS: [&str; 3] = ["common", "consumer", "producer"];

/// Consumer properties the service sets itself, with their values and why.
/// The service commits a partition's offsets itself, right after a snapshot
/// of that partition's state covering them is acknowledged (every
/// `kafka.commit_interval` and on revocation), and positions a newly
/// assigned partition at its snapshot's offsets. A new consumer group starts
/// from the beginning of the topics, so nothing is skipped. The `range`
/// assignor gives a member the same partition numbers of both input topics,
/// which co-partitioning needs (`roundrobin` or `cooperative-sticky` would
/// split a provider's time reports and invoices over two members).
pub const CONSUMER_ENFORCED: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("partition.assignment.strategy", "range"),
];

/// Producer properties the service sets itself, with their values. The
/// idempotent producer with `acks=all` neither loses nor duplicates alerts on
/// retries; `murmur2_random` is the Java client's partitioner, so a record
/// keyed by provider id lands in the same partition whichever client
/// produced it (time reports, invoices and alerts are co-partitioned).
pub const PRODUCER_ENFORCED: &[(&str, &str)] =
    &[("enable.idempotence", "true"), ("acks", "all"), ("partitioner", "murmur2_random")];

/// Properties refused in the pass-through maps, with the reason given in the
/// error: the enforced ones, their librdkafka aliases, and the ones set from
/// typed options.
const REFUSED_PASS_THROUGH: &[(&str, &str)] = &[
    ("enable.auto.commit", "enforced (false): the service commits offsets after the state snapshot covering them"),
    ("auto.commit.enable", "an alias of enable.auto.commit, which is enforced"),
    (
        "enable.auto.offset.store",
        "enforced (false): the service commits offsets after the state snapshot covering them",
    ),
    ("partition.assignment.strategy", "enforced (range): both input topics' partition k must go to one member"),
    ("auto.offset.reset", "enforced (earliest): a new consumer group must not skip records"),
    ("enable.idempotence", "enforced (true): retries must not duplicate alerts"),
    ("acks", "enforced (all): an acknowledged alert must be on every in-sync replica"),
    ("request.required.acks", "an alias of acks, which is enforced"),
    ("partitioner", "enforced (murmur2_random): keyed records must land where Java clients put them"),
    ("bootstrap.servers", "set kafka.brokers instead"),
    ("metadata.broker.list", "set kafka.brokers instead"),
    ("group.id", "set kafka.group_id instead"),
    ("client.id", "set kafka.client_id instead"),
    ("auto.commit.interval.ms", "commits follow state snapshots: set kafka.commit_interval instead"),
    ("statistics.interval.ms", "set kafka.statistics_interval instead"),
];

/// Largest value librdkafka accepts for `auto.commit.interval.ms` and
/// `statistics.interval.ms` (one day).
const MAX_LIBRDKAFKA_INTERVAL: Duration = Duration::from_secs(86_400);
/// librdkafka's default `max.poll.interval.ms`.
const LIBRDKAFKA_MAX_POLL_INTERVAL_MS: u64 = 300_000;

/// The whole configuration of `tillsyn run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Brokers, consumer group and librdkafka properties.
    pub kafka: KafkaConfig,
    /// Topic names, formats and the settings topics are created with.
    pub topics: TopicsConfig,
    /// The HTTP endpoint (metrics, health).
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
    /// The detection core (all that `replay` uses).
    pub core: CoreConfig,
    /// The consumers of the alert topic that tillsyn ships:
    /// `tillsyn sink postgres` (the case store).
    pub sink: SinkConfig,
    /// `tillsyn notify`: alerts to the fraud unit's chat channel.
    pub notify: NotifyConfig,
    /// `tillsyn cases`: the case officer's view of the case store.
    pub cases: CasesConfig,
}

/// Where and how `tillsyn notify` posts (see [`crate::sink::notify`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The incoming webhook's URL (a secret: it carries the channel's
    /// token; prefer `TILLSYN_NOTIFY__WEBHOOK_URL_FILE`). Required by
    /// `tillsyn notify`.
    pub webhook_url: String,
    /// The body's shape: `slack` and `mattermost` (`{"text": ...}`),
    /// `teams` (an Adaptive Card message, for a Teams workflow or
    /// connector), `json` (the text and the alert as the contract's JSON).
    pub format: NotifyFormat,
    /// Alerts opened or escalated at or above this severity are posted
    /// (`low`, `medium`, `high`, `critical`).
    pub min_severity: NotifySeverity,
    /// The language of the message's own words (`sv`, `en`); the
    /// explanation is the alert's.
    pub language: NotifyLanguage,
    /// The consumer group of `tillsyn notify` over the alert topic: its
    /// committed offsets say what was posted.
    pub group_id: String,
    /// At most this many posts a minute; more wait (nothing is dropped).
    pub max_per_minute: u32,
    /// The longest wait between attempts of a failed post (the wait doubles
    /// from 1 s; a 429's `Retry-After` is honoured).
    #[serde(with = "duration")]
    pub retry_max: Duration,
    /// How long one post may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Instead of one post per alert, one digest of them every
    /// `digest_every`, at `digest_at` (UTC, `HH:MM`) and every
    /// `digest_every` after it. `"0s"` (the default): no digest.
    #[serde(with = "duration")]
    pub digest_every: Duration,
    /// The time of day (UTC) the digests are anchored at, `HH:MM`.
    pub digest_at: String,
}

/// The body shape of a notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// `{"text": ...}` (Slack incoming webhooks).
    #[default]
    Slack,
    /// `{"text": ...}` (Mattermost incoming webhooks).
    Mattermost,
    /// An Adaptive Card message (Microsoft Teams workflows and connectors).
    Teams,
    /// `{"text": ..., "alerts": [<alert JSON>]}`.
    Json,
}

/// A severity threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifySeverity {
    /// Every severity.
    Low,
    /// Medium and above.
    Medium,
    /// High and critical.
    #[default]
    High,
    /// Critical only.
    Critical,
}

/// The language of a notification's own words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyLanguage {
    /// Swedish.
    #[default]
    Sv,
    /// English.
    En,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhook_url: String::new(),
            format: NotifyFormat::Slack,
            min_severity: NotifySeverity::High,
            language: NotifyLanguage::Sv,
            group_id: "tillsyn-notify".into(),
            max_per_minute: 20,
            retry_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            digest_every: Duration::ZERO,
            digest_at: "06:00".into(),
        }
    }
}

impl NotifyConfig {
    /// The digest anchor as seconds after midnight UTC.
    pub fn digest_anchor(&self) -> Result<u64, String> {
        let bad = || format!("notify.digest_at = {:?} is not a time of day HH:MM", self.digest_at);
        let (h, m) = self.digest_at.split_once(':').ok_or_else(bad)?;
        let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 || self.digest_at.len() != 5 {
            return Err(bad());
        }
        Ok(h * 3600 + m * 60)
    }

    /// Problems that make `tillsyn notify` unusable (the other commands
    /// ignore this section; the webhook is checked when notify starts).
    fn check(&self, problems: &mut Vec<String>) {
        if !self.webhook_url.is_empty() {
            match reqwest::Url::parse(&self.webhook_url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => problems.push("notify.webhook_url is not an http(s) URL".into()),
            }
        }
        if self.group_id.trim().is_empty() {
            problems.push("notify.group_id must not be empty".into());
        }
        if self.max_per_minute == 0 {
            problems.push("notify.max_per_minute must be at least 1".into());
        }
        if self.retry_max < Duration::from_secs(1) || self.retry_max > Duration::from_secs(3600) {
            problems.push("notify.retry_max must be 1s..=1h".into());
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(300) {
            problems.push("notify.timeout must be above 0s and at most 5m".into());
        }
        if !self.digest_every.is_zero() && self.digest_every < Duration::from_secs(1) {
            problems.push("notify.digest_every must be 0s (no digest) or at least 1s".into());
        }
        if let Err(e) = self.digest_anchor() {
            problems.push(e);
        }
    }
}

/// The case officer's view (`tillsyn cases`): web pages over the case
/// store of `[sink.postgres]`, whose `url` and `password` it connects with
/// (it only reads, in read-only transactions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CasesConfig {
    /// Socket address of the pages, and of their /metrics, /healthz and
    /// /readyz, `ip:port` (the view has no login of its own: keep it on
    /// loopback or behind a proxy that authenticates).
    pub listen: String,
    /// Most episodes the list shows, the most severe and oldest first (it
    /// says how many more match).
    pub max_episodes: usize,
}

impl Default for CasesConfig {
    fn default() -> Self {
        CasesConfig { listen: "127.0.0.1:9470".into(), max_episodes: 500 }
    }
}

impl CasesConfig {
    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.listen.trim().parse()
    }

    fn check(&self, problems: &mut Vec<String>) {
        if let Err(e) = self.listen_addr() {
            problems.push(format!("cases.listen = {:?} is not an ip:port socket address ({e})", self.listen));
        }
        if !(1..=10_000).contains(&self.max_episodes) {
            problems.push(format!("cases.max_episodes = {} must be 1..=10000", self.max_episodes));
        }
    }
}

/// The consumers of the alert topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// `tillsyn sink postgres`: the alert topic into a PostgreSQL case store.
    pub postgres: PostgresSinkConfig,
}

/// The PostgreSQL case store (`tillsyn sink postgres`). Its HTTP endpoint
/// (metrics, health) is `http.listen`, as the service's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSinkConfig {
    /// The database, as a libpq connection URL or key-value string without
    /// the password (e.g. `"postgres://tillsyn@db.example:5432/tillsyn"`).
    pub url: String,
    /// The role's password (a secret: prefer
    /// `TILLSYN_SINK__POSTGRES__PASSWORD_FILE`). Empty: the URL's, if any.
    pub password: String,
    /// The consumer group of the sink's instances over the alert topic. Its
    /// positions are kept in the database (`sink_positions`), committed in
    /// the transaction of the rows they produced; the group's offsets in
    /// Kafka are written after, for lag monitoring only.
    pub group_id: String,
    /// Most alert records written in one transaction.
    pub batch_records: usize,
    /// How long a batch may wait for more records once it has one
    /// (e.g. `"100ms"`).
    #[serde(with = "duration")]
    pub batch_linger: Duration,
    /// The longest wait between attempts while the database is unavailable
    /// (the wait doubles from 100 ms up to it, e.g. `"30s"`).
    #[serde(with = "duration")]
    pub retry_max: Duration,
}

impl Default for PostgresSinkConfig {
    fn default() -> Self {
        PostgresSinkConfig {
            url: "postgres://tillsyn@127.0.0.1:55432/tillsyn".into(),
            password: String::new(),
            group_id: "tillsyn-case-store".into(),
            batch_records: 500,
            batch_linger: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
        }
    }
}

impl PostgresSinkConfig {
    /// The parsed connection settings, the password set.
    pub fn connection(&self) -> Result<tokio_postgres::Config, String> {
        let mut config: tokio_postgres::Config =
            self.url.parse().map_err(|e| format!("sink.postgres.url is no PostgreSQL connection string: {e}"))?;
        if !self.password.is_empty() {
            config.password(self.password.as_bytes());
        }
        Ok(config)
    }

    fn check(&self, problems: &mut Vec<String>) {
        match self.url.parse::<tokio_postgres::Config>() {
            Err(e) => problems.push(format!("sink.postgres.url is no PostgreSQL connection string: {e}")),
            Ok(c) if c.get_password().is_some() => problems.push(
                "sink.postgres.url carries a password: set sink.postgres.password (or \
                 TILLSYN_SINK__POSTGRES__PASSWORD_FILE) instead, which is never printed"
                    .into(),
            ),
            Ok(_) => {}
        }
        if self.group_id.trim().is_empty() {
            problems.push("sink.postgres.group_id must not be empty".into());
        }
        if !(1..=100_000).contains(&self.batch_records) {
            problems.push(format!("sink.postgres.batch_records = {} must be 1..=100000", self.batch_records));
        }
        if self.batch_linger > Duration::from_secs(60) {
            problems.push("sink.postgres.batch_linger must be at most 60s".into());
        }
        if self.retry_max < Duration::from_millis(100) || self.retry_max > Duration::from_secs(3600) {
            problems.push("sink.postgres.retry_max must be 100ms..=1h".into());
        }
    }
}

/// Kafka connection and client settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port` (librdkafka
    /// `bootstrap.servers`).
    pub brokers: String,
    /// Consumer group of all instances of the service (`group.id`).
    pub group_id: String,
    /// Client id of the consumer and the producer, shown in broker logs and
    /// quotas (`client.id`).
    pub client_id: String,
    /// Time the service may spend, when partitions are revoked in a
    /// rebalance, finishing the records in flight, flushing the producer and
    /// committing offsets before it lets the partitions go (e.g. `"10s"`).
    /// Must be below the consumer's `max.poll.interval.ms`.
    #[serde(with = "duration")]
    pub revocation_budget: Duration,
    /// How often each assigned partition's state is snapshotted to the
    /// state topic and, once the snapshot is acknowledged, the offsets it
    /// covers are committed (e.g. `"30s"`; as Kafka Streams'
    /// `commit.interval.ms`; whole milliseconds, at most a day). A partition
    /// that had no new record for a second is snapshotted sooner. After a
    /// crash, at most about this much input is processed again (its alerts
    /// are not produced twice).
    #[serde(with = "duration")]
    pub commit_interval: Duration,
    /// How often the consumer's librdkafka statistics are read for the
    /// consumer-lag metric and readiness (`statistics.interval.ms` of the
    /// consumer, e.g. `"5s"`; whole milliseconds, at most a day; `"0s"`
    /// turns them off, and then `/readyz` never reports ready).
    #[serde(with = "duration")]
    pub statistics_interval: Duration,
    /// How long the first contact with the brokers (a metadata request,
    /// made before any command relies on them) may go unanswered before
    /// the command gives up with "no broker answered" (e.g. `"30s"`). An
    /// authentication or TLS failure is reported at once whatever this is.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// librdkafka properties for both clients, e.g. `"security.protocol"`,
    /// `"sasl.mechanisms"`, `"sasl.username"`, `"sasl.password"`,
    /// `"ssl.ca.location"`.
    pub common: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only (override `common`).
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for the producer only (override `common`),
    /// e.g. `"compression.type" = "zstd"`, `"linger.ms"`.
    pub producer: BTreeMap<String, String>,
}

/// Topic names, formats, and how the topics are created.
///
/// Time reports and invoices must be co-partitioned (same partition count,
/// keyed by provider id), since one engine per partition sees both of a
/// provider's inputs; hence one [`TopicsConfig::partitions`] for both, and
/// for the alerts, which are keyed the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Input topic of time reports.
    pub time_reports: String,
    /// Input topic of invoices.
    pub invoices: String,
    /// Output topic of alerts.
    pub alerts: String,
    /// Output topic of rejected input records (see `service::decode`).
    pub dead_letter: String,
    /// Output topic of events that arrived behind the watermark, used when
    /// `late_events_to = "late_events"`.
    pub late_events: String,
    /// The service's own topic of state snapshots (one partition per input
    /// partition; see `service::state_store`).
    pub state: String,
    /// Prefix of the service's internal topics (the peer-days global
    /// table, the staff stage's repartition and findings topics): their
    /// names are this prefix followed by a fixed name, e.g.
    /// `tillsyn.peer-days.v1`. Two deployments on one cluster use two
    /// prefixes.
    pub internal_prefix: String,
    /// Format of a time-report record without a `content-type` header.
    pub time_reports_format: Format,
    /// Format of an invoice record without a `content-type` header.
    pub invoices_format: Format,
    /// Format the alerts are written in.
    pub alerts_format: Format,
    /// Where late events go: their own topic (`"late_events"`) or the
    /// dead-letter topic (`"dead_letter"`, reason `late_event`).
    pub late_events_to: LateEventsTo,
    /// Partitions of the input and alert topics when they are created.
    pub partitions: i32,
    /// Partitions of the dead-letter and late-event topics when created.
    pub dead_letter_partitions: i32,
    /// Replication factor of every topic when it is created.
    pub replication_factor: i32,
    /// Retention of the input topics (`"forever"` or a duration). The
    /// default, 100 days, covers the core's 90-day horizon and 10 days of
    /// invoice lateness, so state can be rebuilt by replaying the inputs.
    pub input_retention: Retention,
    /// Retention of the alert topic.
    pub alerts_retention: Retention,
    /// Retention of the dead-letter and late-event topics.
    pub dead_letter_retention: Retention,
    /// How far past the records waiting for it, or past the wall clock if
    /// later, an instance seals the rules topic (e.g. `"1d"`): a change of
    /// the rules' configuration must be in force after the latest seal, so
    /// this is how far ahead changes must be made; a longer one means fewer
    /// seals. See `tillsyn rules set`.
    #[serde(with = "duration")]
    pub rules_seal_ahead: Duration,
    /// Retention of the state topic. A partition whose newest snapshot is
    /// older than this (every instance down that long) is rebuilt by
    /// replaying the input topics.
    pub state_retention: Retention,
    /// Reference-data topic of decisions on granted hours (biståndsbeslut),
    /// keyed by decision id; compacted, kept forever, partitioned as the
    /// inputs (see `core.reference`).
    pub granted_hours: String,
    /// Reference-data topic of client absences, keyed by absence id.
    pub absences: String,
    /// Reference-data topic of the provider register, keyed by entry id.
    pub provider_register: String,
    /// How long a superseded version of a reference fact stays readable
    /// on the reference-data topics. An instance that starts rebuilds the
    /// reference table from these topics and must find every version a
    /// decision still to be taken can ask about: `"forever"` (the default)
    /// keeps every version (`cleanup.policy=delete`, `retention.ms=-1`); a
    /// duration compacts the topics (`cleanup.policy=compact`, each fact's
    /// newest version kept forever) with it as `min.compaction.lag.ms`,
    /// and must cover `core.horizon_days` + 120 days (the table's own look
    /// back, checked) of event time behind the newest registrations. Only
    /// for a broker whose compaction honours `min.compaction.lag.ms`:
    /// tansu 0.6.0 compacts regardless of it (`tests/tansu/compaction_lag.py`),
    /// and a starting instance then decides without superseded versions
    /// (other alerts than a replay's).
    pub reference_compaction_lag: Retention,
}

/// How long a topic keeps records (its `retention.ms`): `"forever"` (-1) or
/// a duration such as `"30d"` (whole milliseconds, > 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Records are never deleted for age (`retention.ms = -1`).
    Forever,
    /// Records older than this are deleted.
    For(Duration),
}

impl Retention {
    /// How `"forever"` is written.
    pub const FOREVER: &str = "forever";

    /// The topic's `retention.ms`: -1 for [`Retention::Forever`], else the
    /// milliseconds (saturating; validation refuses what does not fit).
    pub fn kafka_ms(self) -> i64 {
        match self {
            Retention::Forever => -1,
            Retention::For(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retention::Forever => f.write_str(Self::FOREVER),
            Retention::For(d) => f.write_str(&duration::format(*d)),
        }
    }
}

impl std::str::FromStr for Retention {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim() == Self::FOREVER {
            return Ok(Retention::Forever);
        }
        duration::parse(text).map(Retention::For).map_err(|e| format!("{e}, or \"{}\"", Self::FOREVER))
    }
}

impl Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Retention;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a duration such as \"30d\", or \"{}\"", Retention::FOREVER)
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Retention, E> {
                text.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// Where late events are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LateEventsTo {
    /// The topic `topics.late_events`.
    #[default]
    LateEvents,
    /// The topic `topics.dead_letter`.
    DeadLetter,
}

/// A topic to create, as the configuration wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// `retention.ms` (-1: forever; see [`Retention::kafka_ms`]).
    pub retention_ms: i64,
    /// `cleanup.policy = compact` (the latest record per key is kept).
    pub compact: bool,
    /// `min.compaction.lag.ms`, if set.
    pub min_compaction_lag_ms: Option<i64>,
}

/// The HTTP endpoint of the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Socket address to listen on, `ip:port` (e.g. `0.0.0.0:9464` in a
    /// container).
    pub listen: String,
    /// How long the processing loop or the consumer thread may go without
    /// progress before `/healthz` reports the process stuck (503), so that
    /// an orchestrator's liveness probe restarts it (e.g. `"5m"`; `"0s"`
    /// turns the check off). Must be above the longest legitimate wait, the
    /// full-producer-queue budget (2 min), and the revocation budget.
    #[serde(with = "duration")]
    pub stuck_after: Duration,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` (one readable line per event) or `json` (one JSON object per
    /// line, for log shippers).
    pub format: LogFormat,
    /// A level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or
    /// comma-separated `target=level` directives, e.g. `info,rdkafka=warn`.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// JSON lines.
    Json,
}

/// Why a configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file (or the file with the environment overrides applied) is not
    /// a valid configuration: bad TOML, unknown key, wrong type.
    #[error("{origin}: {message}")]
    Parse {
        /// The file, and the environment variables if any were applied.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// An environment override names no key or has a value of the wrong type.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable's name.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// The configuration parsed but breaks one or more rules; each entry
    /// names its key.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

// ---------------------------------------------------------------- Defaults

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "tillsyn".into(),
            client_id: "tillsyn".into(),
            revocation_budget: Duration::from_secs(10),
            commit_interval: Duration::from_secs(30),
            statistics_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            common: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

impl Default for TopicsConfig {
    fn default() -> Self {
        let days = |n: u64| Retention::For(Duration::from_secs(n * 86_400));
        TopicsConfig {
            time_reports: "tillsyn.time-reports.v1".into(),
            invoices: "tillsyn.invoices.v1".into(),
            alerts: "tillsyn.alerts.v1".into(),
            dead_letter: "tillsyn.dead-letter.v1".into(),
            late_events: "tillsyn.late-events.v1".into(),
            state: "tillsyn.state.v1".into(),
            internal_prefix: "tillsyn.".into(),
            time_reports_format: Format::Protobuf,
            invoices_format: Format::Protobuf,
            alerts_format: Format::Protobuf,
            late_events_to: LateEventsTo::LateEvents,
            partitions: 3,
            dead_letter_partitions: 1,
            replication_factor: 1,
            input_retention: days(100),
            alerts_retention: days(365),
            dead_letter_retention: days(30),
            state_retention: days(7),
            rules_seal_ahead: Duration::from_secs(86_400),
            granted_hours: "tillsyn.granted-hours.v1".into(),
            absences: "tillsyn.client-absences.v1".into(),
            provider_register: "tillsyn.provider-register.v1".into(),
            reference_compaction_lag: Retention::Forever,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: "127.0.0.1:9464".into(), stuck_after: Duration::from_secs(300) }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Human, level: "info".into() }
    }
}

// ----------------------------------------------------------------- Loading

/// One environment override, resolved against the configuration's shape.
struct Override {
    var: String,
    path: Vec<String>,
    value: toml::Value,
}

/// A TOML error in the file `text` as "line L, column C: message",
/// without the offending line that the parser's own text quotes (it may
/// hold a secret); quoted values in the message are redacted when that
/// line sets a secret key.
fn file_error_message(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else { return e.message().to_string() };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or_default();
    let key = match line_text.split_once('=') {
        Some((key, _)) => key.trim().trim_matches('"'),
        None => "",
    };
    let message = e.message().trim_end();
    let message = if is_secret_key(key) { redact_values(message) } else { message.to_string() };
    match key {
        "" => format!("line {line}, column {column}: {message}"),
        key => format!("line {line}, column {column}, {key}: {message}"),
    }
}

/// `message` with every quoted (`"…"`, `` `…` ``) part replaced by `…`.
fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    open = Some(c);
                }
            }
        }
    }
    out
}

impl ServiceConfig {
    /// Reads the configuration: defaults, then the TOML file at `path` (if
    /// any), then the `TILLSYN_*__*` variables of `env` (the CLI passes
    /// [`process_env`]). Does not validate: call [`Self::validate`].
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let (mut table, origin) = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?;
                let parse_error = |e: toml::de::Error| ConfigError::Parse {
                    origin: p.display().to_string(),
                    message: file_error_message(&text, &e),
                };
                // Deserialising the text (not a table) first gives errors
                // with the line of the file.
                toml::from_str::<ServiceConfig>(&text).map_err(parse_error)?;
                (toml::from_str::<toml::Table>(&text).map_err(parse_error)?, p.display().to_string())
            }
            None => (toml::Table::new(), "defaults".to_string()),
        };
        let overrides = env_overrides(env)?;
        let vars: Vec<&str> = overrides.iter().map(|o| o.var.as_str()).collect();
        let origin = if vars.is_empty() { origin } else { format!("{origin} with {}", vars.join(", ")) };
        for o in &overrides {
            set_path(&mut table, &o.path, o.value.clone());
        }
        table.try_into::<ServiceConfig>().map_err(|e| ConfigError::Parse { origin, message: e.to_string() })
    }

    /// Refuses a pseudonym secret that protects nothing: the default, or
    /// one shorter than [`MIN_PSEUDONYM_SECRET_CHARS`] characters (anyone
    /// could then turn pseudonyms back into references by trying them).
    /// `run` calls it; tools that write no pseudonyms anywhere do not.
    pub fn check_pseudonym_secret(&self) -> Result<(), ConfigError> {
        let secret = &self.core.pseudonym_secret;
        let problem = if secret == DEFAULT_PSEUDONYM_SECRET {
            format!("core.pseudonym_secret is the default {DEFAULT_PSEUDONYM_SECRET:?}")
        } else if secret.chars().count() < MIN_PSEUDONYM_SECRET_CHARS {
            format!("core.pseudonym_secret must have at least {MIN_PSEUDONYM_SECRET_CHARS} characters")
        } else {
            return Ok(());
        };
        Err(ConfigError::Invalid(vec![format!(
            "{problem}: set a long random secret (e.g. TILLSYN_CORE__PSEUDONYM_SECRET), the same on every \
             instance, and keep it"
        )]))
    }

    /// Checks every rule and returns warnings if the configuration is usable,
    /// or all the problems at once, each naming its key (the core's
    /// [`CoreConfig::problems`] under `core.`). Rules: the core's own checks; brokers
    /// listed; group and client ids set; intervals in librdkafka's ranges;
    /// the revocation budget below `max.poll.interval.ms`; no enforced or
    /// typed property in a pass-through map; every property accepted by
    /// librdkafka; topic names valid Kafka names and distinct; partition
    /// counts and replication factor >= 1; retentions forever or at least a
    /// millisecond; the HTTP
    /// address a socket address; the log level parseable. Warnings: the
    /// default pseudonym secret; a SASL password sent without TLS.
    pub fn validate(&self) -> Result<Vec<String>, ConfigError> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        problems.extend(self.core.problems().into_iter().map(|e| format!("core.{e}")));
        self.kafka.check(&mut problems);
        self.topics.check(&mut problems);
        let keep = Duration::from_secs(u64::from(self.core.reference_keep_days()) * 86_400);
        if let Retention::For(lag) = self.topics.reference_compaction_lag
            && self.core.reference.enabled
            && lag < keep
        {
            problems.push(format!(
                "topics.reference_compaction_lag = {:?} must be at least {:?} (core.horizon_days + 120 days), or \
                 \"forever\": a starting instance must find every version of the reference data a decision can \
                 still ask about",
                duration::format(lag),
                duration::format(keep)
            ));
        }
        self.sink.postgres.check(&mut problems);
        self.notify.check(&mut problems);
        self.cases.check(&mut problems);
        if let Err(e) = self.http.listen_addr() {
            problems.push(format!("http.listen = {:?} is not an ip:port socket address ({e})", self.http.listen));
        }
        let stuck_after = self.http.stuck_after;
        let floor = crate::service::run::produce::QUEUE_FULL_BUDGET.max(self.kafka.revocation_budget);
        if !stuck_after.is_zero() && stuck_after <= floor {
            problems.push(format!(
                "http.stuck_after = {:?} must be 0s (off) or above {:?}, the longest the service may legitimately \
                 wait (the full-producer-queue budget, the revocation budget)",
                duration::format(stuck_after),
                duration::format(floor)
            ));
        }
        if let Err(e) = check_log_level(&self.log.level) {
            problems.push(format!("log.level = {:?}: {e}", self.log.level));
        }
        for (role, config) in [("consumer", self.kafka.consumer_config()), ("producer", self.kafka.producer_config())] {
            let protocol = config.get("security.protocol").unwrap_or("plaintext").to_ascii_lowercase();
            if config.get("sasl.password").is_some() && !protocol.ends_with("ssl") {
                warnings.push(format!(
                    "the {role} sends sasl.password over security.protocol = {protocol:?}, unencrypted; \
                     use sasl_ssl outside a trusted network"
                ));
            }
        }
        if self.topics.replication_factor < 3 {
            warnings.push(format!(
                "topics.replication_factor is {}: a broker lost can lose records, alerts and state; use 3 (with \
                 min.insync.replicas 2) on a production cluster",
                self.topics.replication_factor
            ));
        }
        if self.core.pseudonym_secret == DEFAULT_PSEUDONYM_SECRET {
            warnings.push(format!(
                "core.pseudonym_secret is the default {DEFAULT_PSEUDONYM_SECRET:?}: anyone can link pseudonyms \
                 to client and staff references; set a secret (e.g. TILLSYN_CORE__PSEUDONYM_SECRET) and keep it"
            ));
        }
        if problems.is_empty() { Ok(warnings) } else { Err(ConfigError::Invalid(problems)) }
    }

    /// The effective configuration as TOML, every secret value (see
    /// [`is_secret_key`]) replaced by [`MASK`]. The output parses back into
    /// a [`ServiceConfig`].
    pub fn masked_toml(&self) -> String {
        let mut table = toml::Table::try_from(self).expect("the configuration serialises to TOML");
        mask_secrets(&mut table);
        toml::to_string_pretty(&table).expect("a TOML table serialises")
    }
}

/// The process environment for [`ServiceConfig::load`], converted lossily:
/// unlike `std::env::vars()`, it does not panic on a variable that is not
/// UTF-8 (such a value of a `TILLSYN_` variable gets U+FFFD in place of the
/// bad bytes).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect()
}

/// Collects and resolves the `TILLSYN_*__*` variables, sorted by name.
fn env_overrides(env: impl IntoIterator<Item = (String, String)>) -> Result<Vec<Override>, ConfigError> {
    let shape = toml::Table::try_from(ServiceConfig::default()).expect("the defaults serialise to TOML");
    let mut overrides: Vec<Override> = Vec::new();
    let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    vars.sort();
    for (var, raw) in vars {
        let rest = &var[ENV_PREFIX.len()..];
        let err = |message: String| ConfigError::Env { var: var.clone(), message };
        if !rest.contains(ENV_SEPARATOR) {
            let lower = rest.to_ascii_lowercase();
            if let Some(section) = SECTIONS.iter().find(|s| lower.starts_with(&format!("{s}_"))) {
                return Err(err(format!(
                    "looks like a configuration override but has no `{ENV_SEPARATOR}` after the section \
                     (e.g. {ENV_PREFIX}{}{ENV_SEPARATOR}{})",
                    section.to_ascii_uppercase(),
                    rest[section.len() + 1..].to_ascii_uppercase()
                )));
            }
            continue; // not configuration (e.g. TILLSYN_STATE_DIR of the scripts)
        }
        // `..._FILE`: the value is the content of the file it names.
        let (rest, raw) = match rest.strip_suffix(FILE_SUFFIX) {
            Some(rest) => {
                let text = std::fs::read_to_string(&raw).map_err(|e| err(format!("reading {raw}: {e}")))?;
                let value = text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
                (rest, value.to_string())
            }
            None => (rest, raw),
        };
        let path: Vec<String> = rest.split(ENV_SEPARATOR).map(str::to_ascii_lowercase).collect();
        let value = resolve(&shape, &path, &raw).map_err(err)?;
        let path = normalise_pass_through(path);
        if let Some(other) = overrides.iter().find(|o| o.path == path) {
            return Err(err(format!("sets `{}`, which {} already sets", path.join("."), other.var)));
        }
        overrides.push(Override { var, path, value });
    }
    Ok(overrides)
}

/// Replaces `_` by `.` in the key of a pass-through map path.
fn normalise_pass_through(mut path: Vec<String>) -> Vec<String> {
    if is_pass_through(&path) {
        path[2] = path[2].replace('_', ".");
    }
    path
}

/// Whether `path` is `kafka.{common,consumer,producer}.<key>`.
fn is_pass_through(path: &[String]) -> bool {
    path.len() >= 2 && path[0] == "kafka" && PASS_THROUGH_MAPS.contains(&path[1].as_str())
}

/// Types `raw` by the default value at `path` in `shape`.
fn resolve(shape: &toml::Table, path: &[String], raw: &str) -> Result<toml::Value, String> {
    if path.iter().any(String::is_empty) {
        return Err(format!("empty segment: segments are separated by exactly `{ENV_SEPARATOR}`"));
    }
    if is_pass_through(path) {
        return match path.len() {
            3 => Ok(toml::Value::String(raw.to_string())),
            2 => Err(format!("`kafka.{}` is a map: name a property, e.g. ..._SASL_USERNAME", path[1])),
            _ => Err(format!(
                "a librdkafka property is one segment with `_` for `.`, e.g. {ENV_PREFIX}KAFKA{ENV_SEPARATOR}{}\
                 {ENV_SEPARATOR}SASL_PASSWORD",
                path[1].to_ascii_uppercase()
            )),
        };
    }
    let mut table = shape;
    for (i, segment) in path.iter().enumerate() {
        let key = path[..=i].join(".");
        let Some(default) = table.get(segment) else {
            return Err(format!("no configuration key `{key}`"));
        };
        let last = i + 1 == path.len();
        match (default, last) {
            (toml::Value::Table(t), false) => table = t,
            (toml::Value::Table(_), true) => {
                return Err(format!("`{key}` is a table: name one of its keys"));
            }
            (_, false) => return Err(format!("`{key}` is not a table")),
            (toml::Value::String(_), true) => return Ok(toml::Value::String(raw.to_string())),
            (default, true) => return typed_value(default, raw).map_err(|e| format!("`{key}`: {e}")),
        }
    }
    unreachable!("the loop returns at the last segment")
}

/// Parses `raw` as a TOML value of the same type as `default`.
fn typed_value(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    let parsed: Option<toml::Value> = raw.trim().parse().ok();
    let expected = default.type_str();
    match (default, parsed) {
        (toml::Value::Integer(_), Some(v @ toml::Value::Integer(_))) => Ok(v),
        (toml::Value::Float(_), Some(v @ toml::Value::Float(_))) => Ok(v),
        (toml::Value::Float(_), Some(toml::Value::Integer(i))) => Ok(toml::Value::Float(i as f64)),
        (toml::Value::Boolean(_), Some(v @ toml::Value::Boolean(_))) => Ok(v),
        (toml::Value::Array(_), Some(v @ toml::Value::Array(_))) => Ok(v),
        (toml::Value::Array(_), _) => Err(format!("expected a TOML array such as [\"a\", \"b\"], got {raw:?}")),
        _ => Err(format!("expected {} {expected}, got {raw:?}", if expected == "integer" { "an" } else { "a" })),
    }
}

/// Sets `value` at `path` in `table`, creating tables on the way.
fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let (last, parents) = path.split_last().expect("a path has at least one segment");
    let mut current = table;
    for segment in parents {
        let entry = current.entry(segment.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = entry.as_table_mut().expect("made a table just above");
    }
    current.insert(last.clone(), value);
}

// --------------------------------------------------------- Kafka clients

impl KafkaConfig {
    /// The consumer's configuration: `common`, `consumer`, the typed
    /// options, then [`CONSUMER_ENFORCED`].
    pub fn consumer_config(&self) -> ClientConfig {
        let typed = [
            ("group.id", self.group_id.clone()),
            ("statistics.interval.ms", self.statistics_interval.as_millis().to_string()),
        ];
        self.client_config(&self.consumer, &typed, CONSUMER_ENFORCED)
    }

    /// The producer's configuration: `common`, `producer`, the typed
    /// options, then [`PRODUCER_ENFORCED`].
    pub fn producer_config(&self) -> ClientConfig {
        self.client_config(&self.producer, &[], PRODUCER_ENFORCED)
    }

    /// Where pass-through and typed options meet; the only builder of
    /// `ClientConfig`s.
    fn client_config(
        &self,
        role: &BTreeMap<String, String>,
        role_typed: &[(&str, String)],
        enforced: &[(&str, &str)],
    ) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in self.common.iter().chain(role) {
            config.set(key.trim(), value);
        }
        let brokers: Vec<&str> = self.brokers.split(',').map(str::trim).collect();
        config.set("bootstrap.servers", brokers.join(",")).set("client.id", &self.client_id);
        for (key, value) in role_typed {
            config.set(*key, value);
        }
        for (key, value) in enforced {
            config.set(*key, *value);
        }
        config
    }

    /// The consumer's effective `max.poll.interval.ms`.
    fn max_poll_interval_ms(&self) -> Result<u64, String> {
        match self.consumer.get("max.poll.interval.ms").or_else(|| self.common.get("max.poll.interval.ms")) {
            None => Ok(LIBRDKAFKA_MAX_POLL_INTERVAL_MS),
            Some(v) => v.trim().parse().map_err(|_| format!("max.poll.interval.ms = {v:?} is not a number")),
        }
    }

    fn check(&self, problems: &mut Vec<String>) {
        let before = problems.len();
        let brokers: Vec<&str> = self.brokers.split(',').map(str::trim).collect();
        if brokers.iter().any(|b| b.is_empty() || b.contains(char::is_whitespace)) {
            problems.push(format!(
                "kafka.brokers = {:?} must list one or more host:port, comma-separated, without empty entries",
                self.brokers
            ));
        }
        if self.group_id.trim().is_empty() {
            problems.push("kafka.group_id must not be empty".into());
        }
        if self.client_id.trim().is_empty() {
            problems.push("kafka.client_id must not be empty".into());
        }
        let max = duration::format(MAX_LIBRDKAFKA_INTERVAL);
        if self.commit_interval.is_zero() || !is_librdkafka_interval(self.commit_interval) {
            problems.push(format!(
                "kafka.commit_interval = {:?} must be whole milliseconds within \"1ms\"..={max:?}",
                duration::format(self.commit_interval)
            ));
        }
        if !is_librdkafka_interval(self.statistics_interval) {
            problems.push(format!(
                "kafka.statistics_interval = {:?} must be \"0s\" (off) or whole milliseconds up to {max:?}",
                duration::format(self.statistics_interval)
            ));
        }
        if self.connect_timeout.is_zero() || self.connect_timeout > MAX_LIBRDKAFKA_INTERVAL {
            problems.push(format!(
                "kafka.connect_timeout = {:?} must be > 0 and at most {max:?}",
                duration::format(self.connect_timeout)
            ));
        }
        match self.max_poll_interval_ms() {
            Err(e) => problems.push(format!("kafka.consumer: {e}")),
            Ok(max_poll)
                if self.revocation_budget.is_zero() || self.revocation_budget >= Duration::from_millis(max_poll) =>
            {
                problems.push(format!(
                    "kafka.revocation_budget = {:?} must be > 0 and below the consumer's max.poll.interval.ms \
                     ({max_poll} ms), or the group evicts the instance while it hands partitions over",
                    duration::format(self.revocation_budget)
                ));
            }
            Ok(_) => {}
        }
        for (map, entries) in [("common", &self.common), ("consumer", &self.consumer), ("producer", &self.producer)] {
            for key in entries.keys() {
                let name = key.trim().to_ascii_lowercase();
                if name.is_empty() {
                    problems.push(format!("kafka.{map}: a property name is empty"));
                } else if let Some((_, why)) = REFUSED_PASS_THROUGH.iter().find(|(k, _)| *k == name) {
                    problems.push(format!("kafka.{map}.{key:?} cannot be set here: {why}"));
                }
            }
        }
        // librdkafka's own check of every property, once the typed ones are
        // known to be fine (it would repeat their problems).
        if problems.len() == before {
            for (role, config) in [("consumer", self.consumer_config()), ("producer", self.producer_config())] {
                if let Err(e) = config.create_native_config() {
                    problems.push(format!("kafka ({role}): {}", describe_librdkafka_error(&e)));
                }
            }
        }
    }
}

/// Whether librdkafka can take `interval` as a `*.interval.ms` property:
/// whole milliseconds, at most [`MAX_LIBRDKAFKA_INTERVAL`].
fn is_librdkafka_interval(interval: Duration) -> bool {
    interval.subsec_nanos().is_multiple_of(1_000_000) && interval <= MAX_LIBRDKAFKA_INTERVAL
}

/// librdkafka's rejection of a property, without the value of a secret.
fn describe_librdkafka_error(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, _, key, _) if is_secret_key(key) => {
            format!("property {key:?} was rejected by librdkafka (value not shown: secret)")
        }
        KafkaError::ClientConfig(_, desc, key, _) => {
            format!("property {key:?} was rejected by librdkafka: {}", desc.trim_end())
        }
        other => other.to_string(),
    }
}

// ------------------------------------------------------------------ Topics

impl TopicsConfig {
    /// The input topic of `input`.
    pub fn input_topic(&self, input: Input) -> &str {
        match input {
            Input::TimeReports => &self.time_reports,
            Input::Invoices => &self.invoices,
        }
    }

    /// The format of a record of `input` without a `content-type` header.
    pub fn input_format(&self, input: Input) -> Format {
        match input {
            Input::TimeReports => self.time_reports_format,
            Input::Invoices => self.invoices_format,
        }
    }

    /// The input whose topic is `topic`, if any.
    pub fn input_of(&self, topic: &str) -> Option<Input> {
        [Input::TimeReports, Input::Invoices].into_iter().find(|i| self.input_topic(*i) == topic)
    }

    /// The internal, compacted topic of every provider-stage partition's
    /// closed days (a global table, read in full by every instance).
    pub fn peer_days_topic(&self) -> String {
        format!("{}peer-days.v1", self.internal_prefix)
    }

    /// The internal topic of visits re-keyed by staff member: the staff
    /// stage's input (a repartition topic).
    pub fn visits_by_staff_topic(&self) -> String {
        format!("{}visits-by-staff.v1", self.internal_prefix)
    }

    /// The internal topic of the staff stage's findings, keyed by provider
    /// (read by the provider stage).
    pub fn staff_findings_topic(&self) -> String {
        format!("{}staff-findings.v1", self.internal_prefix)
    }

    /// The compacted topic of the rules' configuration history: changes
    /// (`tillsyn rules set`) and seals (`tillsyn run`), one partition, read
    /// in full and in order by every instance (see
    /// `tillsyn_core::rules::history`).
    pub fn rules_topic(&self) -> String {
        format!("{}rules.v1", self.internal_prefix)
    }

    /// The topics whose partition `k` one instance runs together, in the
    /// order of [`tillsyn_core::driver::Offsets::in_topic_order`]: time
    /// reports, invoices, visits by staff, staff findings, and with
    /// `reference` (`core.reference.enabled`) the reference-data topics.
    pub fn partition_topics(&self, reference: bool) -> Vec<String> {
        let mut topics = vec![
            self.time_reports.clone(),
            self.invoices.clone(),
            self.visits_by_staff_topic(),
            self.staff_findings_topic(),
        ];
        if reference {
            topics.extend(ReferenceKind::ALL.map(|k| self.reference_topic(k).to_string()));
        }
        topics
    }

    /// The reference-data topic of `kind`.
    pub fn reference_topic(&self, kind: ReferenceKind) -> &str {
        match kind {
            ReferenceKind::GrantedHours => &self.granted_hours,
            ReferenceKind::Absences => &self.absences,
            ReferenceKind::ProviderRegister => &self.provider_register,
        }
    }

    /// The kind whose reference-data topic is `topic`, if any.
    pub fn reference_of(&self, topic: &str) -> Option<ReferenceKind> {
        ReferenceKind::ALL.into_iter().find(|k| self.reference_topic(*k) == topic)
    }

    /// The topic late events are written to.
    pub fn late_events_topic(&self) -> &str {
        match self.late_events_to {
            LateEventsTo::LateEvents => &self.late_events,
            LateEventsTo::DeadLetter => &self.dead_letter,
        }
    }

    /// The topics the service reads or writes, as they should be created
    /// (the late-event topic only if it is used).
    pub fn specs(&self) -> Vec<TopicSpec> {
        let spec = |name: &str, partitions, retention: Retention| TopicSpec {
            name: name.to_string(),
            partitions,
            replication_factor: self.replication_factor,
            retention_ms: retention.kafka_ms(),
            compact: false,
            min_compaction_lag_ms: None,
        };
        let mut specs = vec![
            spec(&self.time_reports, self.partitions, self.input_retention),
            spec(&self.invoices, self.partitions, self.input_retention),
            spec(&self.alerts, self.partitions, self.alerts_retention),
            spec(&self.dead_letter, self.dead_letter_partitions, self.dead_letter_retention),
            // Compacted: a checkpoint writes the entities that changed, and
            // only the newest record of each key is needed (`run` refuses a
            // state topic that is not compacted).
            TopicSpec { compact: true, ..spec(&self.state, self.partitions, self.state_retention) },
        ];
        if self.late_events_to == LateEventsTo::LateEvents {
            specs.push(spec(&self.late_events, self.dead_letter_partitions, self.dead_letter_retention));
        }
        // The staff stage's repartition and answer topics: co-partitioned
        // with the inputs, kept as long (a restored partition replays them).
        specs.push(spec(&self.visits_by_staff_topic(), self.partitions, self.input_retention));
        specs.push(spec(&self.staff_findings_topic(), self.partitions, self.input_retention));
        // One partition: a few records a day per provider-stage partition,
        // read in full and in order by every instance; compaction keeps
        // each partition's last days (see `PeerDay::key`).
        specs.push(TopicSpec { compact: true, ..spec(&self.peer_days_topic(), 1, Retention::Forever) });
        // One partition, in order; every key is unique, so compaction keeps
        // the whole history, which replay needs.
        specs.push(TopicSpec { compact: true, ..spec(&self.rules_topic(), 1, Retention::Forever) });
        // The reference data: every fact's newest version kept forever
        // (keyed by the fact's id), superseded ones for the compaction lag;
        // partitioned as the inputs, so that the owner of partition `k`
        // dead-letters what partition `k` of them holds that is refused.
        for kind in ReferenceKind::ALL {
            let topic = spec(self.reference_topic(kind), self.partitions, Retention::Forever);
            specs.push(match self.reference_compaction_lag {
                Retention::Forever => topic,
                lag @ Retention::For(_) => {
                    TopicSpec { compact: true, min_compaction_lag_ms: Some(lag.kafka_ms()), ..topic }
                }
            });
        }
        specs
    }

    fn check(&self, problems: &mut Vec<String>) {
        let names = [
            ("time_reports", &self.time_reports),
            ("invoices", &self.invoices),
            ("alerts", &self.alerts),
            ("dead_letter", &self.dead_letter),
            ("late_events", &self.late_events),
            ("state", &self.state),
            ("internal_prefix + peer-days.v1", &self.peer_days_topic()),
            ("internal_prefix + visits-by-staff.v1", &self.visits_by_staff_topic()),
            ("internal_prefix + staff-findings.v1", &self.staff_findings_topic()),
            ("internal_prefix + rules.v1", &self.rules_topic()),
            ("granted_hours", &self.granted_hours),
            ("absences", &self.absences),
            ("provider_register", &self.provider_register),
        ];
        if self.rules_seal_ahead < Duration::from_secs(60) || self.rules_seal_ahead.subsec_nanos() != 0 {
            problems.push(format!(
                "topics.rules_seal_ahead = {:?} must be whole seconds, at least a minute",
                duration::format(self.rules_seal_ahead)
            ));
        }
        for (key, name) in names {
            if let Err(e) = check_topic_name(name) {
                problems.push(format!("topics.{key} = {name:?}: {e}"));
            }
        }
        for (i, (key_a, a)) in names.iter().enumerate() {
            for (key_b, b) in &names[i + 1..] {
                if a == b {
                    problems.push(format!("topics.{key_a} and topics.{key_b} are the same topic {a:?}"));
                } else if a.replace('.', "_") == b.replace('.', "_") {
                    problems.push(format!(
                        "topics.{key_a} = {a:?} and topics.{key_b} = {b:?} collide (Kafka treats `.` and `_` alike \
                         in metric names and refuses such pairs)"
                    ));
                }
            }
        }
        for (key, value) in [
            ("partitions", self.partitions),
            ("dead_letter_partitions", self.dead_letter_partitions),
            ("replication_factor", self.replication_factor),
        ] {
            if value < 1 {
                problems.push(format!("topics.{key} = {value} must be >= 1"));
            }
        }
        for (key, value) in [
            ("input_retention", self.input_retention),
            ("alerts_retention", self.alerts_retention),
            ("dead_letter_retention", self.dead_letter_retention),
            ("state_retention", self.state_retention),
        ] {
            if let Retention::For(d) = value
                && (d.as_millis() < 1
                    || !d.subsec_nanos().is_multiple_of(1_000_000)
                    || d.as_millis() > i64::MAX as u128)
            {
                problems.push(format!(
                    "topics.{key} = \"{value}\" must be \"{}\" or whole milliseconds, at least \"1ms\"",
                    Retention::FOREVER
                ));
            }
        }
    }
}

/// Whether `name` is a legal Kafka topic name: 1–249 characters of
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!("must be 1 to 249 characters long (is {})", name.len()));
    }
    if name == "." || name == ".." {
        return Err("`.` and `..` are not topic names".into());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{c:?} is not allowed; use ASCII letters, digits, `.`, `_` and `-`"));
    }
    Ok(())
}

// ------------------------------------------------------------ HTTP and log

impl HttpConfig {
    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.listen.trim().parse()
    }
}

/// Checks a level or `target=level` directives (what a `tracing`
/// `EnvFilter` built from `log.level` will be given).
fn check_log_level(level: &str) -> Result<(), String> {
    use tracing_subscriber::filter::LevelFilter;
    if level.split(',').all(|d| d.trim().is_empty()) {
        return Err("must not be empty".into());
    }
    // Empty directives are skipped, as `EnvFilter` does; an empty level is
    // refused (`LevelFilter` would read it as `error`).
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let lvl = directive.rsplit_once('=').map_or(directive, |(_, l)| l).trim();
        if lvl.is_empty() || lvl.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "{directive:?} is not a level (trace, debug, info, warn, error, off) or target=level directive"
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder().parse(level).map(|_| ()).map_err(|e| e.to_string())
}

// ----------------------------------------------------------------- Secrets

/// Whether a key's value is a secret, masked by
/// [`ServiceConfig::masked_toml`]. The key is split into words at `.`, `_`
/// and `-`; it is secret if a word contains `password`, `passwd`, `secret`
/// or `passphrase` (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, `pseudonym_secret`), or if it has a
/// word `key` not followed by a word naming where the key is
/// (`location`, `file`, `path`, `id`): `ssl.key.pem` and `ssl_key` are
/// secret, `ssl.key.location` is a file name and `sasl.kerberos.keytab` a
/// path. `sasl.oauthbearer.config` is secret too (it may carry a client
/// secret), and so is a `webhook_url` (the URL is the credential).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    if key == "sasl.oauthbearer.config" {
        return true;
    }
    let words: Vec<&str> = key.split(['.', '_', '-']).collect();
    if words.iter().any(|w| ["password", "passwd", "secret", "passphrase"].iter().any(|s| w.contains(s))) {
        return true;
    }
    // An incoming webhook's URL is its credential.
    if words.windows(2).any(|w| w == ["webhook", "url"]) {
        return true;
    }
    match words.iter().position(|w| *w == "key") {
        Some(i) => !words[i + 1..].iter().any(|w| matches!(*w, "location" | "file" | "path" | "id")),
        None => false,
    }
}

/// Replaces non-empty secret strings by [`MASK`], recursively.
fn mask_secrets(table: &mut toml::Table) {
    for (key, value) in table.iter_mut() {
        match value {
            toml::Value::Table(t) => mask_secrets(t),
            toml::Value::String(s) if !s.is_empty() && is_secret_key(key) => *s = MASK.to_string(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn from_env(vars: &[(&str, &str)]) -> Result<ServiceConfig, ConfigError> {
        ServiceConfig::load(None, env(vars))
    }

    /// A valid configuration without warnings.
    fn valid() -> ServiceConfig {
        let mut c = ServiceConfig::default();
        c.core.pseudonym_secret = "s3cret-municipality-key".into();
        c.topics.replication_factor = 3;
        c
    }

    /// The warnings of a valid configuration.
    fn warnings(c: &ServiceConfig) -> Vec<String> {
        c.validate().unwrap_or_else(|e| panic!("expected a valid configuration: {e}"))
    }

    /// The problems of an invalid configuration.
    fn problems(c: &ServiceConfig) -> Vec<String> {
        match c.validate() {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    fn assert_one_problem(c: &ServiceConfig, needle: &str) {
        let p = problems(c);
        assert!(p.len() == 1 && p[0].contains(needle), "expected one problem with {needle:?}, got {p:#?}");
    }

    #[test]
    fn defaults_are_valid_and_warn_only_about_replication_and_the_pseudonym_secret() {
        let w = warnings(&ServiceConfig::default());
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("topics.replication_factor is 1"), "{w:?}");
        assert!(w[1].contains("core.pseudonym_secret"), "{w:?}");
        assert_eq!(warnings(&valid()), Vec::<String>::new());
        let c = ServiceConfig::default();
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(c.topics.late_events_topic(), "tillsyn.late-events.v1");
        assert_eq!(c.http.listen_addr().unwrap().port(), 9464);
    }

    #[test]
    fn a_sasl_password_without_tls_is_a_warning() {
        let mut c = valid();
        c.kafka.common.insert("sasl.mechanisms".into(), "PLAIN".into());
        c.kafka.common.insert("sasl.username".into(), "u".into());
        c.kafka.consumer.insert("sasl.password".into(), "pw".into());
        c.kafka.common.insert("security.protocol".into(), "SASL_PLAINTEXT".into());
        let w = warnings(&c);
        assert!(w.len() == 1 && w[0].contains("consumer") && !w[0].contains("pw"), "{w:?}");
        c.kafka.common.insert("security.protocol".into(), "SASL_SSL".into());
        assert_eq!(warnings(&c), Vec::<String>::new());
    }

    #[test]
    fn a_file_error_names_the_line_and_never_echoes_a_secret() {
        let f = file("[core]\npseudonym_secret = \"topsecret-municipality-key\npseudonym_key_id = \"2\"\n");
        let e = ServiceConfig::load(Some(f.path()), []).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("topsecret"), "{e}");
        let f = file("[core]\npseudonym_secret = 98765432109876\n");
        let e = ServiceConfig::load(Some(f.path()), []).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("98765432109876"), "{e}");
        // Not a secret: the value helps.
        let f = file("[core]\nhorizon_days = \"ninety\"\n");
        let e = ServiceConfig::load(Some(f.path()), []).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("ninety"), "{e}");
    }

    #[test]
    fn the_service_refuses_the_default_or_a_short_pseudonym_secret() {
        let mut c = ServiceConfig::default();
        let e = c.check_pseudonym_secret().unwrap_err().to_string();
        assert!(e.contains("core.pseudonym_secret") && e.contains("default"), "{e}");
        c.core.pseudonym_secret = "short-secret".into();
        let e = c.check_pseudonym_secret().unwrap_err().to_string();
        assert!(e.contains("at least 16") && !e.contains("short-secret"), "{e}");
        c.core.pseudonym_secret = "a-long-enough-municipality-secret".into();
        assert!(c.check_pseudonym_secret().is_ok());
    }

    #[test]
    fn the_reference_topics_must_keep_superseded_versions_as_long_as_decisions_ask_about_them() {
        let mut c = ServiceConfig::default();
        c.core.reference.enabled = true;
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        c.topics.reference_compaction_lag = Retention::For(Duration::from_secs(30 * 86_400));
        assert_one_problem(
            &c,
            "topics.reference_compaction_lag = \"30d\" must be at least \"210d\" (core.horizon_days + 120 days), or \
             \"forever\"",
        );
        c.topics.reference_compaction_lag = Retention::For(Duration::from_secs(210 * 86_400));
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        c.core.reference.enabled = false;
        assert!(c.validate().is_ok(), "no reference data, nothing to keep");
    }

    #[test]
    fn a_file_with_only_core_still_loads() {
        let f = file("[core]\nhorizon_days = 100\npseudonym_secret = \"k\"\n");
        let c = ServiceConfig::load(Some(f.path()), []).unwrap();
        assert_eq!(c.core.horizon_days, 100);
        assert_eq!(c.core.pseudonym_secret, "k");
        assert_eq!(c.kafka, KafkaConfig::default());
        assert_eq!(c.topics, TopicsConfig::default());
        assert_eq!(ServiceConfig::load(Some(file("").path()), []).unwrap(), ServiceConfig::default());
        assert_eq!(ServiceConfig::load(None, []).unwrap(), ServiceConfig::default());
    }

    #[test]
    fn a_full_file_is_read() {
        let f = file(
            r#"
            [kafka]
            brokers = "k1:9093,k2:9093"
            group_id = "tillsyn-umea"
            commit_interval = "1s"
            revocation_budget = "1m 30s"
            [kafka.common]
            "security.protocol" = "sasl_ssl"
            "sasl.password" = "pw"
            [topics]
            time_reports = "tr"
            invoices_format = "json"
            late_events_to = "dead_letter"
            partitions = 12
            alerts_retention = "forever"
            state_retention = "2w"
            [http]
            listen = "0.0.0.0:9000"
            [log]
            format = "json"
            level = "debug"
            [core]
            invoice_lateness = "12d"
            [core.rules]
            disabled = ["rounded-visits"]
            "#,
        );
        let c = ServiceConfig::load(Some(f.path()), []).unwrap();
        assert_eq!(c.kafka.brokers, "k1:9093,k2:9093");
        assert_eq!(c.kafka.commit_interval, Duration::from_secs(1));
        assert_eq!(c.kafka.revocation_budget, Duration::from_secs(90));
        assert_eq!(c.kafka.common["sasl.password"], "pw");
        assert_eq!(c.topics.input_topic(Input::TimeReports), "tr");
        assert_eq!(c.topics.input_format(Input::Invoices), Format::Json);
        assert_eq!(c.topics.late_events_topic(), "tillsyn.dead-letter.v1");
        assert_eq!(c.topics.partitions, 12);
        assert_eq!(c.topics.alerts_retention, Retention::Forever);
        assert_eq!(c.topics.state_retention, Retention::For(Duration::from_secs(14 * 86_400)));
        assert_eq!(c.core.invoice_lateness, Duration::from_secs(12 * 86_400));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.core.rules.disabled, ["rounded-visits"]);
    }

    #[test]
    fn file_errors_name_the_file_and_the_key() {
        let f = file("[kafka]\nbrokerz = \"x\"\n");
        let e = ServiceConfig::load(Some(f.path()), []).unwrap_err().to_string();
        assert!(e.contains(&f.path().display().to_string()) && e.contains("brokerz"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = ServiceConfig::load(Some(file("[kafka]\ncommit_interval = \"soon\"\n").path()), []).unwrap_err();
        assert!(e.to_string().contains("commit_interval") && e.to_string().contains("duration"), "{e}");
        let e = ServiceConfig::load(Some(file("[kafka]\ncommit_interval = 5000\n").path()), []).unwrap_err();
        assert!(e.to_string().contains("commit_interval"), "a bare number has no unit: {e}");
        let e = ServiceConfig::load(Some(file("[topics]\nstate_retention = -1\n").path()), []).unwrap_err();
        assert!(e.to_string().contains("state_retention") && e.to_string().contains("\"forever\""), "{e}");
        let e = ServiceConfig::load(Some(file("[core]\nhorizon_dayz = 1\n").path()), []).unwrap_err();
        assert!(e.to_string().contains("horizon_dayz"), "{e}");
        let e = ServiceConfig::load(Some(Path::new("/no/such/tillsyn.toml")), []).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }) && e.to_string().contains("/no/such/tillsyn.toml"), "{e}");
    }

    #[test]
    fn environment_overrides_typed_keys_and_the_file() {
        let f = file("[kafka]\nbrokers = \"from-file:9092\"\ngroup_id = \"file-group\"\n");
        let c = ServiceConfig::load(
            Some(f.path()),
            env(&[
                ("TILLSYN_KAFKA__BROKERS", "from-env:9092"),
                ("TILLSYN_KAFKA__COMMIT_INTERVAL", "2s"),
                ("TILLSYN_TOPICS__INPUT_RETENTION", "forever"),
                ("TILLSYN_CORE__VISIT_LATENESS", "1d 12h"),
                ("TILLSYN_CORE__PSEUDONYM_SECRET", " with spaces "),
                ("TILLSYN_CORE__HORIZON_DAYS", "120"),
                ("TILLSYN_CORE__RULES__ROUNDED_VISITS__Z_THRESHOLD", "5"),
                ("TILLSYN_CORE__RULES__DISABLED", r#"["rounded-visits", "phantom-clients"]"#),
                ("tillsyn_topics__time_reports_format", "json"), // not the prefix: ignored
                ("TILLSYN_TOPICS__INVOICES_FORMAT", "json"),
                ("TILLSYN_TOPICS__ALERTS", "123"), // a string key takes digits verbatim
                ("TILLSYN_LOG__LEVEL", "info,rdkafka=warn"),
                ("TILLSYN_STATE_DIR", "out/broker"), // the scripts' own variables
                ("TILLSYN_BROKER_PORT", "9092"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "from-env:9092");
        assert_eq!(c.kafka.group_id, "file-group", "keys the environment does not set stay");
        assert_eq!(c.kafka.commit_interval, Duration::from_secs(2), "durations are strings");
        assert_eq!(c.topics.input_retention, Retention::Forever);
        assert_eq!(c.core.visit_lateness, Duration::from_secs(36 * 3600));
        assert_eq!(c.core.pseudonym_secret, " with spaces ", "strings are verbatim");
        assert_eq!(c.core.horizon_days, 120);
        assert_eq!(c.core.rules.rounded_visits.z_threshold, 5.0, "an integer is accepted for a float");
        assert_eq!(c.core.rules.disabled, ["rounded-visits", "phantom-clients"]);
        assert_eq!(c.topics.time_reports_format, Format::Protobuf);
        assert_eq!(c.topics.invoices_format, Format::Json);
        assert_eq!(c.topics.alerts, "123");
        assert_eq!(c.log.level, "info,rdkafka=warn");
        let replicated = ServiceConfig { topics: TopicsConfig { replication_factor: 3, ..c.topics.clone() }, ..c };
        assert_eq!(warnings(&replicated), Vec::<String>::new());
    }

    #[test]
    fn pass_through_keys_in_the_environment_use_underscores_for_dots() {
        let c = from_env(&[
            ("TILLSYN_KAFKA__COMMON__SASL_PASSWORD", "pw"),
            ("TILLSYN_KAFKA__COMMON__SECURITY_PROTOCOL", "sasl_ssl"),
            ("TILLSYN_KAFKA__CONSUMER__SESSION_TIMEOUT_MS", "45000"),
            ("TILLSYN_KAFKA__PRODUCER__COMPRESSION_TYPE", "zstd"),
        ])
        .unwrap();
        assert_eq!(c.kafka.common["sasl.password"], "pw");
        assert_eq!(c.kafka.common["security.protocol"], "sasl_ssl");
        assert_eq!(c.kafka.consumer["session.timeout.ms"], "45000", "pass-through values are strings");
        assert_eq!(c.kafka.producer["compression.type"], "zstd");
        // They override the file's entry for the same property.
        let f = file("[kafka.common]\n\"sasl.password\" = \"old\"\n\"sasl.username\" = \"u\"\n");
        let c = ServiceConfig::load(Some(f.path()), env(&[("TILLSYN_KAFKA__COMMON__SASL_PASSWORD", "new")])).unwrap();
        assert_eq!(c.kafka.common["sasl.password"], "new");
        assert_eq!(c.kafka.common["sasl.username"], "u");
    }

    #[test]
    fn a_file_variable_reads_its_value_from_the_file() {
        let password = file("s3cret pass\n");
        let secret = file("a-long-municipal-pseudonym-key");
        let c = from_env(&[
            ("TILLSYN_KAFKA__COMMON__SASL_PASSWORD_FILE", password.path().to_str().unwrap()),
            ("TILLSYN_CORE__PSEUDONYM_SECRET_FILE", secret.path().to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(c.kafka.common["sasl.password"], "s3cret pass", "the final newline is not part of it");
        assert_eq!(c.core.pseudonym_secret, "a-long-municipal-pseudonym-key");
        let e = from_env(&[("TILLSYN_KAFKA__COMMON__SASL_PASSWORD_FILE", "/nonexistent/tillsyn-pw")]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("TILLSYN_KAFKA__COMMON__SASL_PASSWORD_FILE") && text.contains("/nonexistent"), "{text}");
        let e = from_env(&[
            ("TILLSYN_KAFKA__COMMON__SASL_PASSWORD", "pw"),
            ("TILLSYN_KAFKA__COMMON__SASL_PASSWORD_FILE", password.path().to_str().unwrap()),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("already sets"), "{e}");
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let cases: &[(&str, &str, &str)] = &[
            ("TILLSYN_KAFKA__BROKERZ", "x", "no configuration key `kafka.brokerz`"),
            ("TILLSYN_TOPICS__PARTITIONS", "many", "expected an integer"),
            ("TILLSYN_KAFKA__COMMIT_INTERVAL_MS", "5000", "no configuration key `kafka.commit_interval_ms`"),
            ("TILLSYN_CORE__VISIT_LATENESS_SECS", "3600", "no configuration key `core.visit_lateness_secs`"),
            ("TILLSYN_CORE__RULES__ROUNDED_VISITS__Z_THRESHOLD", "high", "expected a float"),
            ("TILLSYN_CORE__RULES__DISABLED", "rounded-visits", "expected a TOML array"),
            ("TILLSYN_CORE__RULES", "x", "`core.rules` is a table"),
            ("TILLSYN_CORE__HORIZON_DAYS__X", "1", "`core.horizon_days` is not a table"),
            ("TILLSYN_KAFKA__BROKERS__", "x", "empty segment"),
            ("TILLSYN_KAFKA_BROKERS", "x", "TILLSYN_KAFKA__BROKERS"),
            ("TILLSYN_CORE_PSEUDONYM_SECRET", "x", "TILLSYN_CORE__PSEUDONYM_SECRET"),
            ("TILLSYN_KAFKA__COMMON__SASL__PASSWORD", "x", "one segment"),
            ("TILLSYN_KAFKA__COMMON", "x", "is a map"),
            ("TILLSYN_NOPE__X", "x", "no configuration key `nope`"),
        ];
        for (var, value, needle) in cases {
            match from_env(&[(var, value)]) {
                Err(e @ ConfigError::Env { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(var) && text.contains(needle), "{var}: {text}");
                }
                other => panic!("{var}: expected an environment error, got {other:?}"),
            }
        }
        let e = from_env(&[("TILLSYN_KAFKA__BROKERS", "a"), ("TILLSYN_kafka__brokers", "b")]).unwrap_err();
        assert!(e.to_string().contains("already sets"), "{e}");
        // A value of the right TOML type but not a valid one for the key.
        let e = from_env(&[("TILLSYN_LOG__FORMAT", "xml"), ("TILLSYN_HTTP__LISTEN", "0.0.0.0:1")]).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("TILLSYN_LOG__FORMAT") && text.contains("xml"), "{text}");
        for (var, value) in [
            ("TILLSYN_KAFKA__COMMIT_INTERVAL", "-5s"),
            ("TILLSYN_KAFKA__COMMIT_INTERVAL", "5000"),
            ("TILLSYN_CORE__INVOICE_LATENESS", "soon"),
            ("TILLSYN_TOPICS__ALERTS_RETENTION", "-1"),
        ] {
            let e = from_env(&[(var, value)]).unwrap_err();
            assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
            assert!(e.to_string().contains(var) && e.to_string().contains(value), "{e}");
        }
    }

    #[test]
    fn the_process_environment_is_read() {
        let env = process_env();
        assert!(env.iter().any(|(k, _)| k == "PATH" || k == "HOME"), "{env:?}");
        // The developer's own TILLSYN_ variables are not this test's business.
        let env = env.into_iter().filter(|(k, _)| !k.starts_with(ENV_PREFIX));
        assert_eq!(ServiceConfig::load(None, env).unwrap(), ServiceConfig::default());
    }

    #[test]
    fn typed_values_follow_toml_scalars() {
        let b = toml::Value::Boolean(false);
        assert_eq!(typed_value(&b, "true"), Ok(toml::Value::Boolean(true)));
        assert!(typed_value(&b, "yes").is_err());
        assert!(typed_value(&toml::Value::Integer(0), "1.5").is_err());
        assert_eq!(typed_value(&toml::Value::Float(0.0), " 2.5 "), Ok(toml::Value::Float(2.5)));
    }

    #[test]
    fn client_configs_join_pass_through_typed_and_enforced_options() {
        let mut k = KafkaConfig { brokers: "k1:9092, k2:9092".into(), group_id: "g".into(), ..KafkaConfig::default() };
        k.common.insert("security.protocol".into(), "sasl_ssl".into());
        k.common.insert("session.timeout.ms".into(), "30000".into());
        k.consumer.insert("session.timeout.ms".into(), "45000".into());
        k.producer.insert("linger.ms".into(), "20".into());
        k.statistics_interval = Duration::from_secs(1);
        k.commit_interval = Duration::from_secs(2);
        let c = k.consumer_config();
        for (key, value) in [
            ("bootstrap.servers", "k1:9092,k2:9092"),
            ("group.id", "g"),
            ("client.id", "tillsyn"),
            ("security.protocol", "sasl_ssl"),
            ("session.timeout.ms", "45000"),
            ("statistics.interval.ms", "1000"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("partition.assignment.strategy", "range"),
        ] {
            assert_eq!(c.get(key), Some(value), "consumer {key}");
        }
        assert_eq!(c.get("linger.ms"), None);
        assert_eq!(c.get("auto.commit.interval.ms"), None, "the service commits itself");
        assert_eq!(c.get("acks"), None);
        let p = k.producer_config();
        for (key, value) in [
            ("bootstrap.servers", "k1:9092,k2:9092"),
            ("security.protocol", "sasl_ssl"),
            ("session.timeout.ms", "30000"),
            ("linger.ms", "20"),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("partitioner", "murmur2_random"),
        ] {
            assert_eq!(p.get(key), Some(value), "producer {key}");
        }
        assert_eq!(p.get("group.id"), None);
        assert_eq!(p.get("enable.auto.commit"), None);
        // The producer's statistics would only be logged, never read.
        assert_eq!(p.get("statistics.interval.ms"), None);
    }

    #[test]
    fn enforced_options_win_even_without_validation() {
        let mut k = KafkaConfig::default();
        for map in [&mut k.common, &mut k.consumer, &mut k.producer] {
            map.insert("enable.auto.commit".into(), "true".into());
            map.insert("partition.assignment.strategy".into(), "roundrobin".into());
            map.insert("acks".into(), "1".into());
            map.insert("group.id".into(), "other".into());
        }
        assert_eq!(k.consumer_config().get("enable.auto.commit"), Some("false"));
        assert_eq!(k.consumer_config().get("partition.assignment.strategy"), Some("range"));
        assert_eq!(k.consumer_config().get("group.id"), Some("tillsyn"));
        assert_eq!(k.producer_config().get("acks"), Some("all"));
    }

    #[test]
    fn overriding_an_enforced_or_typed_property_is_an_error_naming_it() {
        let keys = CONSUMER_ENFORCED.iter().chain(PRODUCER_ENFORCED).map(|(k, _)| *k).chain([
            "request.required.acks",
            "bootstrap.servers",
            "group.id",
            "client.id",
            "statistics.interval.ms",
            "auto.commit.interval.ms",
        ]);
        for key in keys {
            for map in ["common", "consumer", "producer"] {
                let mut c = valid();
                let target = match map {
                    "common" => &mut c.kafka.common,
                    "consumer" => &mut c.kafka.consumer,
                    _ => &mut c.kafka.producer,
                };
                target.insert(key.to_string(), "x".into());
                assert_one_problem(&c, &format!("kafka.{map}.{key:?} cannot be set here"));
            }
        }
    }

    #[test]
    fn librdkafka_checks_every_property_without_showing_secrets() {
        let mut c = valid();
        for (k, v) in [
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "tillsyn"),
            ("sasl.password", "pw"),
            ("ssl.ca.location", "/etc/ssl/certs/ca-certificates.crt"),
        ] {
            c.kafka.common.insert(k.into(), v.into());
        }
        c.kafka.producer.insert("compression.type".into(), "zstd".into());
        c.kafka.consumer.insert("max.poll.interval.ms".into(), "600000".into());
        c.kafka.revocation_budget = Duration::from_secs(400);
        c.http.stuck_after = Duration::from_secs(600);
        assert_eq!(warnings(&c), Vec::<String>::new(), "a SASL/SSL setup passes");

        let mut typo = valid();
        typo.kafka.consumer.insert("sasl.pasword".into(), "hunter2".into());
        assert_one_problem(&typo, "\"sasl.pasword\"");
        assert!(!problems(&typo)[0].contains("hunter2"), "{:?}", problems(&typo));

        let mut bad_value = valid();
        bad_value.kafka.producer.insert("compression.type".into(), "brotli".into());
        assert_one_problem(&bad_value, "compression.type");
    }

    #[test]
    fn the_stuck_limit_is_off_or_above_the_longest_legitimate_wait() {
        let mut c = valid();
        c.kafka.revocation_budget = Duration::from_secs(300);
        c.kafka.common.insert("max.poll.interval.ms".into(), "600000".into());
        assert_one_problem(&c, "http.stuck_after = \"5m\" must be 0s (off) or above \"5m\"");
        c.kafka.revocation_budget = Duration::from_secs(10);
        c.http.stuck_after = Duration::from_secs(120);
        assert_one_problem(&c, "http.stuck_after = \"2m\" must be 0s (off) or above \"2m\"");
        c.http.stuck_after = Duration::from_secs(121);
        assert_eq!(warnings(&c), Vec::<String>::new());
        c.http.stuck_after = Duration::ZERO;
        assert_eq!(warnings(&c), Vec::<String>::new(), "0s: off");
    }

    #[test]
    fn kafka_settings_are_checked() {
        for brokers in ["", " ", "a:9092,,b:9092", "a:9092, b :9092"] {
            let mut c = valid();
            c.kafka.brokers = brokers.into();
            assert_one_problem(&c, "kafka.brokers");
        }
        let mut c = valid();
        c.kafka.group_id = " ".into();
        assert_one_problem(&c, "kafka.group_id");
        for bad in [Duration::ZERO, Duration::from_micros(1_500), Duration::from_millis(86_400_001)] {
            let mut c = valid();
            c.kafka.commit_interval = bad;
            assert_one_problem(&c, "kafka.commit_interval = ");
        }
        let mut c = valid();
        c.kafka.commit_interval = Duration::from_secs(86_400);
        assert_eq!(warnings(&c), Vec::<String>::new(), "a day is librdkafka's maximum");
        for bad in [Duration::from_micros(1), Duration::from_millis(86_400_001)] {
            let mut c = valid();
            c.kafka.statistics_interval = bad;
            assert_one_problem(&c, "kafka.statistics_interval = ");
        }
        let mut c = valid();
        c.kafka.statistics_interval = Duration::ZERO;
        assert_eq!(warnings(&c), Vec::<String>::new(), "0s turns statistics off");
        for bad in [Duration::ZERO, Duration::from_millis(86_400_001)] {
            let mut c = valid();
            c.kafka.connect_timeout = bad;
            assert_one_problem(&c, "kafka.connect_timeout = ");
        }
        let mut c = valid();
        c.kafka.revocation_budget = Duration::ZERO;
        assert_one_problem(&c, "kafka.revocation_budget = \"0s\" must be > 0");
        let mut c = valid();
        c.kafka.revocation_budget = Duration::from_secs(300);
        c.http.stuck_after = Duration::from_secs(360);
        assert_one_problem(&c, "kafka.revocation_budget = \"5m\" must be > 0 and below");
        c.kafka.common.insert("max.poll.interval.ms".into(), "600000".into());
        assert_eq!(
            warnings(&c),
            Vec::<String>::new(),
            "the budget is compared with the effective max.poll.interval.ms"
        );
        c.kafka.consumer.insert("max.poll.interval.ms".into(), "200000".into());
        assert_one_problem(&c, "kafka.revocation_budget");
    }

    #[test]
    fn topic_names_must_be_valid_and_distinct() {
        for bad in ["", ".", "..", "time reports", "tid/rapporter", "åtgärd", &"x".repeat(250)] {
            let mut c = valid();
            c.topics.alerts = bad.into();
            assert_one_problem(&c, "topics.alerts");
            assert!(check_topic_name(bad).is_err(), "{bad}");
        }
        for good in ["a", "...", "A-b_c.9", &"x".repeat(249)] {
            assert_eq!(check_topic_name(good), Ok(()), "{good}");
        }
        let mut c = valid();
        c.topics.dead_letter = c.topics.time_reports.clone();
        assert_one_problem(&c, "topics.time_reports and topics.dead_letter are the same topic");
        let mut c = valid();
        c.topics.late_events = "tillsyn_dead-letter_v1".into();
        assert_one_problem(&c, "collide");
    }

    #[test]
    fn topic_sizes_and_retention_are_checked() {
        let mut c = valid();
        c.topics.partitions = 0;
        assert_one_problem(&c, "topics.partitions");
        let mut c = valid();
        c.topics.dead_letter_partitions = -1;
        assert_one_problem(&c, "topics.dead_letter_partitions");
        let mut c = valid();
        c.topics.replication_factor = 0;
        assert_one_problem(&c, "topics.replication_factor");
        for bad in [Duration::ZERO, Duration::from_micros(999), Duration::from_micros(1_500), Duration::MAX] {
            let mut c = valid();
            c.topics.alerts_retention = Retention::For(bad);
            assert_one_problem(&c, "topics.alerts_retention = ");
        }
        let mut c = valid();
        c.topics.alerts_retention = Retention::For(Duration::ZERO);
        assert_one_problem(&c, "topics.alerts_retention = \"0s\" must be \"forever\" or whole milliseconds");
        let mut c = valid();
        c.topics.alerts_retention = Retention::Forever;
        assert_eq!(warnings(&c), Vec::<String>::new(), "forever is fine");
        assert_eq!(c.topics.specs()[2].retention_ms, -1, "forever is retention.ms = -1");
    }

    #[test]
    fn topic_specs_follow_the_configuration() {
        let mut t = TopicsConfig::default();
        let specs = t.specs();
        assert_eq!(specs.len(), 13);
        for (spec, name) in specs[10..].iter().zip([
            "tillsyn.granted-hours.v1",
            "tillsyn.client-absences.v1",
            "tillsyn.provider-register.v1",
        ]) {
            assert_eq!((spec.name.as_str(), spec.partitions, spec.compact, spec.retention_ms), (name, 3, false, -1));
            assert_eq!(spec.min_compaction_lag_ms, None, "every version kept: not compacted");
        }
        // Compacted, with a lag: each fact's newest version kept forever,
        // superseded ones for the lag.
        t.reference_compaction_lag = Retention::For(Duration::from_secs(365 * 86_400));
        for spec in &t.specs()[10..] {
            assert_eq!((spec.compact, spec.retention_ms), (true, -1));
            assert_eq!(spec.min_compaction_lag_ms, Some(365 * 86_400_000), "superseded versions kept a year");
        }
        t.reference_compaction_lag = Retention::Forever;
        assert_eq!(t.reference_of("tillsyn.client-absences.v1"), Some(ReferenceKind::Absences));
        assert_eq!(t.partition_topics(false).len(), 4);
        assert_eq!(
            t.partition_topics(true)[4..],
            ["tillsyn.granted-hours.v1", "tillsyn.client-absences.v1", "tillsyn.provider-register.v1"]
        );
        assert_eq!((specs[0].name.as_str(), specs[0].partitions), ("tillsyn.time-reports.v1", 3));
        assert_eq!((specs[6].name.as_str(), specs[6].partitions), ("tillsyn.visits-by-staff.v1", 3));
        assert_eq!((specs[7].name.as_str(), specs[7].partitions), ("tillsyn.staff-findings.v1", 3));
        assert_eq!((specs[8].name.as_str(), specs[8].partitions, specs[8].compact), ("tillsyn.peer-days.v1", 1, true));
        assert_eq!((specs[9].name.as_str(), specs[9].partitions, specs[9].compact), ("tillsyn.rules.v1", 1, true));
        assert_eq!(specs[9].retention_ms, -1, "the whole history, for replay");
        assert_eq!((specs[3].name.as_str(), specs[3].partitions), ("tillsyn.dead-letter.v1", 1));
        assert_eq!((specs[4].name.as_str(), specs[4].partitions), ("tillsyn.state.v1", 3), "as the inputs");
        assert_eq!(specs[5].name, "tillsyn.late-events.v1");
        t.late_events_to = LateEventsTo::DeadLetter;
        assert_eq!(t.specs().len(), 12, "no late-event topic when late events go to the dead-letter topic");
        t.internal_prefix = "muni-a.".into();
        assert_eq!(t.specs()[8].name, "muni-a.rules.v1");
        assert_eq!(t.late_events_topic(), "tillsyn.dead-letter.v1");
        assert_eq!(t.input_of("tillsyn.invoices.v1"), Some(Input::Invoices));
        assert_eq!(t.input_of("tillsyn.alerts.v1"), None);
    }

    #[test]
    fn http_and_log_settings_are_checked() {
        for listen in ["localhost:9464", "127.0.0.1", ":9464", ""] {
            let mut c = valid();
            c.http.listen = listen.into();
            assert!(c.validate().is_err(), "{listen:?}");
            assert_one_problem(&c, "http.listen");
        }
        let mut c = valid();
        c.http.listen = "[::]:9464".into();
        assert_eq!(warnings(&c), Vec::<String>::new());
        for level in ["verbose", "", " , ", "info,rdkafka=loud", "info,rdkafka="] {
            let mut c = valid();
            c.log.level = level.into();
            assert!(c.validate().is_err(), "{level:?}");
            assert_one_problem(&c, "log.level");
        }
        for level in ["trace", "WARN", "off", "info,", "info,rdkafka=warn,tillsyn::service=debug"] {
            assert_eq!(check_log_level(level), Ok(()), "{level}");
        }
    }

    #[test]
    fn the_case_views_settings_are_checked_and_overridable() {
        for listen in ["localhost:9470", "9470", ""] {
            let mut c = valid();
            c.cases.listen = listen.into();
            assert_one_problem(&c, "cases.listen");
        }
        for max in [0, 10_001] {
            let mut c = valid();
            c.cases.max_episodes = max;
            assert_one_problem(&c, "cases.max_episodes");
        }
        let c = from_env(&[("TILLSYN_CASES__LISTEN", "0.0.0.0:8080"), ("TILLSYN_CASES__MAX_EPISODES", "50")]).unwrap();
        assert_eq!((c.cases.listen_addr().unwrap().port(), c.cases.max_episodes), (8080, 50));
        let e = from_env(&[("TILLSYN_CASES_LISTEN", "0.0.0.0:8080")]).unwrap_err().to_string();
        assert!(e.contains("TILLSYN_CASES__LISTEN"), "a missing `__` is named: {e}");
        let f = file("[cases]\nlisten = \"127.0.0.1:9999\"\n");
        assert_eq!(ServiceConfig::load(Some(f.path()), []).unwrap().cases.listen, "127.0.0.1:9999");
    }

    #[test]
    fn core_problems_are_reported_and_all_problems_are_collected() {
        let mut c = valid();
        c.core.horizon_days = 3;
        assert_one_problem(&c, "core.horizon_days = 3 must be within 7..=400");
        c.kafka.brokers.clear();
        c.topics.partitions = 0;
        c.http.listen = "nowhere".into();
        let p = problems(&c);
        assert_eq!(p.len(), 4, "{p:#?}");
        let text = c.validate().unwrap_err().to_string();
        assert!(text.starts_with("invalid configuration:\n  - core.horizon_days"), "{text}");
    }

    #[test]
    fn every_core_problem_is_reported_under_core() {
        let mut c = valid();
        c.core.visit_lateness = Duration::from_millis(1_500);
        c.core.evidence_limit = 0;
        c.core.rules.disabled = vec!["no-such-rule".into()];
        let p = problems(&c);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].starts_with("core.visit_lateness = \"1500ms\" must be whole seconds"), "{p:#?}");
        assert!(p[1].starts_with("core.evidence_limit = 0"), "{p:#?}");
        assert!(p[2].starts_with("core.rules.disabled: unknown rule id"), "{p:#?}");
    }

    #[test]
    fn the_default_durations_and_retentions_keep_their_values() {
        let c = ServiceConfig::default();
        assert_eq!(c.kafka.revocation_budget, Duration::from_millis(10_000));
        assert_eq!(c.kafka.commit_interval, Duration::from_millis(30_000));
        assert_eq!(c.kafka.statistics_interval, Duration::from_millis(5_000));
        assert_eq!(c.kafka.consumer_config().get("statistics.interval.ms"), Some("5000"));
        let retention: Vec<(String, i64)> = c.topics.specs().into_iter().map(|s| (s.name, s.retention_ms)).collect();
        assert_eq!(
            retention,
            [
                ("tillsyn.time-reports.v1".to_string(), 8_640_000_000),
                ("tillsyn.invoices.v1".to_string(), 8_640_000_000),
                ("tillsyn.alerts.v1".to_string(), 31_536_000_000),
                ("tillsyn.dead-letter.v1".to_string(), 2_592_000_000),
                ("tillsyn.state.v1".to_string(), 604_800_000),
                ("tillsyn.late-events.v1".to_string(), 2_592_000_000),
                ("tillsyn.visits-by-staff.v1".to_string(), 8_640_000_000),
                ("tillsyn.staff-findings.v1".to_string(), 8_640_000_000),
                ("tillsyn.peer-days.v1".to_string(), -1),
                ("tillsyn.rules.v1".to_string(), -1),
                ("tillsyn.granted-hours.v1".to_string(), -1),
                ("tillsyn.client-absences.v1".to_string(), -1),
                ("tillsyn.provider-register.v1".to_string(), -1),
            ]
        );
        assert_eq!((c.core.visit_lateness_secs(), c.core.invoice_lateness_secs()), (259_200, 864_000));
        let text = c.masked_toml();
        for line in [
            "revocation_budget = \"10s\"",
            "commit_interval = \"30s\"",
            "statistics_interval = \"5s\"",
            "connect_timeout = \"30s\"",
            "input_retention = \"100d\"",
            "alerts_retention = \"365d\"",
            "dead_letter_retention = \"30d\"",
            "state_retention = \"7d\"",
            "visit_lateness = \"3d\"",
            "invoice_lateness = \"10d\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("_ms =") && !text.contains("_secs ="), "no unit suffixes:\n{text}");
    }

    #[test]
    fn the_old_unit_suffixed_keys_are_unknown() {
        for (table, key) in [
            ("kafka", "revocation_budget_ms = 10000"),
            ("kafka", "commit_interval_ms = 30000"),
            ("kafka", "statistics_interval_ms = 5000"),
            ("topics", "input_retention_ms = -1"),
            ("topics", "alerts_retention_ms = -1"),
            ("topics", "dead_letter_retention_ms = -1"),
            ("topics", "state_retention_ms = -1"),
            ("core", "visit_lateness_secs = 259200"),
            ("core", "invoice_lateness_secs = 864000"),
        ] {
            let e = ServiceConfig::load(Some(file(&format!("[{table}]\n{key}\n")).path()), []).unwrap_err();
            let name = key.split(' ').next().unwrap();
            assert!(e.to_string().contains(&format!("unknown field `{name}`")), "{e}");
        }
    }

    #[test]
    fn retentions_are_forever_or_a_duration() {
        assert_eq!("forever".parse(), Ok(Retention::Forever));
        assert_eq!(" 30d ".parse(), Ok(Retention::For(Duration::from_secs(30 * 86_400))));
        for bad in ["-1", "", "Forever", "never", "30"] {
            let e = bad.parse::<Retention>().unwrap_err();
            assert!(e.contains("not a duration") && e.contains("\"forever\""), "{bad}: {e}");
        }
        assert_eq!(Retention::Forever.to_string(), "forever");
        assert_eq!(Retention::For(Duration::from_secs(7 * 86_400)).to_string(), "7d");
        assert_eq!(Retention::For(Duration::from_millis(1_500)).kafka_ms(), 1_500);
        assert_eq!(Retention::For(Duration::MAX).kafka_ms(), i64::MAX, "saturates");
    }

    #[test]
    fn secret_keys_are_recognised() {
        for secret in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "ssl_key",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
            "pseudonym_secret",
            "SASL.PASSWORD",
        ] {
            assert!(is_secret_key(secret), "{secret}");
        }
        for public in [
            "sasl.username",
            "ssl.key.location",
            "ssl.keystore.location",
            "ssl.certificate.pem",
            "ssl.ca.location",
            "sasl.kerberos.keytab",
            "sasl.oauthbearer.client.id",
            "sasl.oauthbearer.token.endpoint.url",
            "sasl.oauthbearer.assertion.private.key.file",
            "brokers",
            "group_id",
        ] {
            assert!(!is_secret_key(public), "{public}");
        }
    }

    #[test]
    fn masked_toml_hides_secrets_and_parses_back() {
        let mut c = valid();
        c.core.pseudonym_secret = "pseudo-SECRET-1".into();
        c.kafka.common.insert("sasl.username".into(), "tillsyn-user".into());
        c.kafka.common.insert("sasl.password".into(), "sasl-SECRET-2".into());
        c.kafka.common.insert("ssl.key.location".into(), "/etc/tillsyn/client.key".into());
        c.kafka.consumer.insert("ssl.key.password".into(), "key-SECRET-3".into());
        c.kafka.producer.insert("sasl.oauthbearer.client.secret".into(), "oauth-SECRET-4".into());
        c.kafka.producer.insert("ssl.key.pem".into(), "-----BEGIN PRIVATE KEY----- SECRET-5".into());
        let text = c.masked_toml();
        assert!(!text.contains("SECRET"), "{text}");
        for visible in ["tillsyn-user", "/etc/tillsyn/client.key", "tillsyn.alerts.v1", "127.0.0.1:9092"] {
            assert!(text.contains(visible), "{visible} missing from\n{text}");
        }
        assert!(text.contains("pseudonym_secret = \"***\""), "{text}");
        assert!(text.contains("\"sasl.password\" = \"***\""), "{text}");
        let back: ServiceConfig = toml::from_str(&text).unwrap();
        let mut expected = c.clone();
        expected.core.pseudonym_secret = MASK.into();
        expected.kafka.common.insert("sasl.password".into(), MASK.into());
        expected.kafka.consumer.insert("ssl.key.password".into(), MASK.into());
        expected.kafka.producer.insert("sasl.oauthbearer.client.secret".into(), MASK.into());
        expected.kafka.producer.insert("ssl.key.pem".into(), MASK.into());
        assert_eq!(back, expected, "everything but the secrets survives");
    }

    #[test]
    fn the_masked_defaults_are_a_complete_reference() {
        let text = ServiceConfig::default().masked_toml();
        for table in ["[kafka]", "[topics]", "[http]", "[log]", "[core]", "[core.rules.rounded_visits]"] {
            assert!(text.contains(table), "{table} missing from\n{text}");
        }
        assert_eq!(toml::from_str::<ServiceConfig>(&text).unwrap().core.pseudonym_secret, MASK);
    }
}
