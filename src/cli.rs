//! The command line: `tillsyn run | check-config | topics | alerts |
//! produce | replay | rules`, one function per subcommand. (The simulator and
//! the evaluator are the `tillsyn-sim` binary of `crates/sim`.)

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::service::config::{LogFormat, ServiceConfig, process_env};
use crate::service::{run, tools};
use crate::telemetry;
use tillsyn_core::records::RecordReader;
use tillsyn_core::rules::catalogue;

/// tillsyn: real-time detection of billing fraud in home care and personal assistance.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the detection core over an events file and write alerts.
    Replay(ReplayArgs),
    /// The rules: the catalogue, and their configuration while the
    /// service runs (the rules topic).
    Rules {
        #[command(subcommand)]
        command: Option<RulesCommand>,
    },
    /// Run the service: consume the input topics, produce alerts.
    Run(ServiceArgs),
    /// Print the effective configuration (secrets masked); fail on any error.
    CheckConfig(ServiceArgs),
    /// Manage the Kafka topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Read the alert topic.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Print the records behind an alert's evidence ids, decoded, personal
    /// references as the service's pseudonymous keys.
    Evidence(crate::service::evidence::EvidenceArgs),
    /// Produce a records file (`tillsyn-sim simulate --records`) to the
    /// input topics.
    Produce(ProduceArgs),
    /// Consumers of the alert topic that write elsewhere.
    #[command(subcommand)]
    Sink(SinkCommand),
    /// Post opened and escalated alerts at or above `notify.min_severity`
    /// to a webhook (`[notify]`); serves /metrics, /healthz and /readyz on
    /// `http.listen`.
    Notify(ServiceArgs),
    /// The case officer's view of the PostgreSQL case store (`[cases]`,
    /// `[sink.postgres]`): web pages, updated live; /metrics, /healthz and
    /// /readyz on `cases.listen` too.
    Cases(ServiceArgs),
}

#[derive(Debug, Subcommand)]
enum SinkCommand {
    /// The alert topic into the PostgreSQL case store, exactly once
    /// (`[sink.postgres]`); serves /metrics, /healthz and /readyz on
    /// `http.listen`.
    Postgres(ServiceArgs),
}

#[derive(Debug, clap::Args)]
struct ServiceArgs {
    /// Configuration file (TOML); `TILLSYN_`-prefixed environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Print the rule catalogue (the default).
    Catalogue,
    /// Print the history of the rules' configuration on the rules topic:
    /// each change with its outcome, the seals, the version in force.
    Show(RulesShowArgs),
    /// Publish a new version of the rules' configuration, in force from an
    /// event time after the rules topic's latest seal.
    Set(RulesSetArgs),
    /// Write the rules topic's history to a file, for `replay --rules`.
    Export(RulesExportArgs),
}

#[derive(Debug, clap::Args)]
struct RulesShowArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// One JSON object per entry instead.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RulesSetArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// When the new version is in force (event time, RFC 3339, e.g.
    /// 2026-12-01T00:00:00Z): decisions at or after it use it. Must be
    /// after the rules topic's latest seal (`rules show` prints it).
    #[arg(long)]
    from: String,
    /// A parameter to change, `section.key=value` as in `[core.rules]`
    /// (e.g. `check_in_away_from_home.max_distance_m=800`,
    /// `disabled=["rounded-visits"]`); repeatable. The others keep the
    /// values of the version in force last.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    sets: Vec<String>,
    /// Why, for the people who read the history (no personal data).
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(Debug, clap::Args)]
struct RulesExportArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// The file to write (one JSON `tillsyn.v1.RulesRecord` per line, in
    /// log order).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create the service's topics (existing ones are left alone).
    Create(ServiceArgs),
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Print the alerts on the alert topic, one line each, from the beginning.
    Tail(TailArgs),
}

#[derive(Debug, clap::Args)]
struct TailArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Stop after this many alerts.
    #[arg(long)]
    max: Option<usize>,
    /// Stop when nothing new arrived for this many seconds.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Print each alert as JSON instead.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ProduceArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Records file: NDJSON, one Kafka record a line, as `tillsyn-sim
    /// simulate --records` writes it; each goes to the configured topic of
    /// its `input`.
    #[arg(long)]
    records: PathBuf,
    /// At most this many records per second (default: as fast as the
    /// broker takes them).
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Events file (.ndjson or .pb).
    #[arg(long)]
    events: PathBuf,
    /// Alerts file to write (.ndjson or .pb).
    #[arg(long, default_value = "alerts.ndjson")]
    alerts: PathBuf,
    /// Configuration file (TOML): the service's, of which replay uses the
    /// `[core]` table; `TILLSYN_`-prefixed environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write rejected and late records here (NDJSON) with their reasons.
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Write the summary here as JSON.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Split the events by provider into this many partitions, as Kafka's
    /// keyed partitioner splits the topics, one engine each (what the live
    /// service computes). 1 = one engine for everything.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// The history of the rules' configuration to decide with (`tillsyn
    /// rules export` of the live service's rules topic); without it, the
    /// configuration file's rules throughout.
    #[arg(long)]
    rules: Option<PathBuf>,
}

/// Loads and checks the configuration, the one way every command does:
/// defaults, the file at `path`, then the `TILLSYN_` variables of `env`
/// ([`ServiceConfig::load`]), then [`ServiceConfig::validate`]; prints the
/// warnings to stderr.
fn load_config(path: Option<&PathBuf>, env: &[(String, String)]) -> anyhow::Result<ServiceConfig> {
    let config = ServiceConfig::load(path.map(|p| p.as_path()), env.iter().cloned())?;
    for warning in config.validate()? {
        eprintln!("warning: {warning}");
    }
    Ok(config)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn init_logging(config: &ServiceConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
    Ok(())
}

/// Runs the command line; the exit code is non-zero on any error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &process_env()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; `env` is the environment the configuration's
/// overrides are read from (the process's, from [`main`]).
fn run(cli: Cli, env: &[(String, String)]) -> anyhow::Result<()> {
    match cli.command {
        Command::Replay(a) => replay(a, env),
        Command::Rules { command: None | Some(RulesCommand::Catalogue) } => rules(),
        Command::Rules { command: Some(RulesCommand::Show(a)) } => rules_show(a, env),
        Command::Rules { command: Some(RulesCommand::Set(a)) } => rules_set(a, env),
        Command::Rules { command: Some(RulesCommand::Export(a)) } => rules_export(a, env),
        Command::Run(a) => run_service(a, env),
        Command::CheckConfig(a) => check_config(a, env),
        Command::Topics(TopicsCommand::Create(a)) => topics_create(a, env),
        Command::Alerts(AlertsCommand::Tail(a)) => alerts_tail(a, env),
        Command::Evidence(a) => evidence(a, env),
        Command::Produce(a) => produce(a, env),
        Command::Sink(SinkCommand::Postgres(a)) => sink_postgres(a, env),
        Command::Notify(a) => notify(a, env),
        Command::Cases(a) => cases(a, env),
    }
}

/// `replay`: the core over an events file, alerts to a file.
fn replay(a: ReplayArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.config.as_ref(), env)?.core;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let versions = match &a.rules {
        Some(path) => crate::replay::rules_history(path, &config.rules)?,
        None => Vec::new(),
    };
    let summary = crate::replay::replay_with_rules(
        &a.events,
        &a.alerts,
        a.dead_letter.as_deref(),
        config,
        progress,
        a.partitions,
        &versions,
    )?;
    eprintln!("{summary}");
    if let Some(p) = a.summary_json {
        std::fs::write(&p, serde_json::to_vec_pretty(&summary)?)?;
    }
    Ok(())
}

/// `rules`: the rule catalogue as a Markdown table.
fn rules() -> anyhow::Result<()> {
    println!("| rule id | pattern | name | quiet days |\n|---|---|---|---|");
    for r in catalogue::ALL {
        println!("| `{}` | {} | {} | {} |", r.id, r.pattern, r.name, r.quiet_days);
    }
    Ok(())
}

/// `rules show`: the rules topic's history, judged as the service judges it.
fn rules_show(a: RulesShowArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.service.config.as_ref(), env)?;
    let (lines, history, _) = tools::read_rules(&config)?;
    for line in &lines {
        if a.json {
            println!("{}", serde_json::to_string(line)?);
            continue;
        }
        let what = match line.version {
            Some(v) => format!("change {v} from {}", line.at.as_deref().unwrap_or("?")),
            None => format!("{} {}", line.kind, line.at.as_deref().unwrap_or("")),
        };
        let reason = line.reason.as_deref().map_or(String::new(), |r| format!(": {r}"));
        let note = line.note.as_deref().map_or(String::new(), |n| format!(" ({n})"));
        println!("{:>6}  {what}  {}{reason}{note}", line.offset, line.outcome);
    }
    if !a.json {
        let versions: Vec<String> =
            history.timeline().versions().skip(1).map(|(v, t)| format!("{v} from {t}")).collect();
        println!(
            "versions accepted: 0 (the configuration file){}",
            versions.iter().map(|v| format!(", {v}")).collect::<String>()
        );
        match history.sealed_through() {
            Some(t) => println!("sealed through {t}: a new version must be in force after it"),
            None => println!("not sealed yet: a new version may be in force from any time"),
        }
    }
    Ok(())
}

/// `rules set`: the version in force last with the changed parameters,
/// published as the next version.
fn rules_set(a: RulesSetArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.service.config.as_ref(), env)?;
    let from = humantime::parse_rfc3339_weak(&a.from)
        .map_err(|e| anyhow::anyhow!("--from {:?}: not an RFC 3339 time: {e}", a.from))?;
    let from =
        tillsyn_core::model::EventTime(from.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64));
    let (_, history, _) = tools::read_rules(&config)?;
    let (newest, _) = history.timeline().versions().last().expect("version 0");
    let mut base = history.timeline().rules_of(newest).clone();
    base = apply_rule_settings(&base, &a.sets)?;
    let line = tools::publish_rules(&config, newest + 1, from, &base, &a.note)?;
    match line.outcome {
        "accepted" => {
            println!("version {} accepted, in force from {}", newest + 1, from);
            Ok(())
        }
        _ => anyhow::bail!("version {} rejected: {}", newest + 1, line.reason.unwrap_or_default()),
    }
}

/// `section.key=value` settings over `base` (values in TOML syntax).
fn apply_rule_settings(
    base: &tillsyn_core::rules::RulesConfig,
    sets: &[String],
) -> anyhow::Result<tillsyn_core::rules::RulesConfig> {
    let mut table = toml::Table::try_from(base)?;
    for set in sets {
        let (path, value) =
            set.split_once('=').ok_or_else(|| anyhow::anyhow!("--set {set:?}: expected SECTION.KEY=VALUE"))?;
        let value: toml::Table = toml::from_str(&format!("v = {value}"))
            .map_err(|e| anyhow::anyhow!("--set {set:?}: the value is not TOML: {e}"))?;
        let value = value["v"].clone();
        let mut at = &mut table;
        let keys: Vec<&str> = path.trim().split('.').collect();
        for key in &keys[..keys.len() - 1] {
            at = at
                .get_mut(*key)
                .and_then(toml::Value::as_table_mut)
                .ok_or_else(|| anyhow::anyhow!("--set {set:?}: no section {key:?} in [core.rules]"))?;
        }
        let last = keys[keys.len() - 1];
        if !at.contains_key(last) {
            anyhow::bail!("--set {set:?}: no parameter {last:?} there");
        }
        at.insert(last.to_string(), value);
    }
    let rules: tillsyn_core::rules::RulesConfig = table.try_into()?;
    rules.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(rules)
}

/// `rules export`: the rules topic's records, in order, as JSON lines.
fn rules_export(a: RulesExportArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    use prost::Message as _;
    let config = load_config(a.service.config.as_ref(), env)?;
    let (_, _, raw) = tools::read_rules(&config)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&a.out)?);
    for value in &raw {
        let record = tillsyn_core::proto::v1::RulesRecord::decode(value.as_slice())?;
        serde_json::to_writer(&mut out, &record)?;
        std::io::Write::write_all(&mut out, b"\n")?;
    }
    std::io::Write::flush(&mut out)?;
    eprintln!("{} entries of the rules topic written to {}", raw.len(), a.out.display());
    Ok(())
}

/// `run`: the service, with its HTTP endpoint, until a shutdown signal.
fn run_service(a: ServiceArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.config.as_ref(), env)?;
    init_logging(&config)?;
    runtime()?.block_on(async {
        let health = telemetry::Health::new();
        let handle = telemetry::install_recorder()?;
        telemetry::describe_all();
        let listener = tokio::net::TcpListener::bind(config.http.listen_addr()?).await?;
        tracing::info!(listen = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http = tokio::spawn(telemetry::serve(listener, handle, health.clone(), async move {
            let _ = http_stopped.await;
        }));
        let result = run::run(config, health, run::shutdown_signal()).await;
        let _ = stop_http.send(());
        let _ = http.await;
        result.map(|_| ())
    })
}

/// `sink postgres`: the case store, until SIGTERM or Ctrl-C.
fn sink_postgres(a: ServiceArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    with_telemetry(a, env, |config, health| async move {
        crate::sink::postgres::run(config, health, run::shutdown_signal()).await.map(|_| ())
    })
}

/// `notify`: alerts to a webhook, until SIGTERM or Ctrl-C.
fn notify(a: ServiceArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    with_telemetry(a, env, |config, health| async move {
        crate::sink::notify::run(config, health, run::shutdown_signal()).await.map(|_| ())
    })
}

/// Runs `body` with the configuration, logging and the HTTP endpoint
/// (/metrics, /healthz, /readyz on `http.listen`) of a long-running command.
fn with_telemetry<F, Fut>(a: ServiceArgs, env: &[(String, String)], body: F) -> anyhow::Result<()>
where
    F: FnOnce(ServiceConfig, telemetry::Health) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = load_config(a.config.as_ref(), env)?;
    init_logging(&config)?;
    runtime()?.block_on(async {
        let health = telemetry::Health::new();
        let handle = telemetry::install_recorder()?;
        let listener = tokio::net::TcpListener::bind(config.http.listen_addr()?).await?;
        tracing::info!(listen = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http = tokio::spawn(telemetry::serve(listener, handle, health.clone(), async move {
            let _ = http_stopped.await;
        }));
        let result = body(config, health).await;
        let _ = stop_http.send(());
        let _ = http.await;
        result
    })
}

/// `cases`: the case officer's view, until SIGTERM or Ctrl-C.
fn cases(a: ServiceArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.config.as_ref(), env)?;
    init_logging(&config)?;
    runtime()?.block_on(crate::cases::run(config, run::shutdown_signal()))
}

/// `check-config`: the effective configuration, secrets masked.
fn check_config(a: ServiceArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.config.as_ref(), env)?;
    print!("{}", config.masked_toml());
    Ok(())
}

/// `topics create`: the service's topics, each created or left as it is.
fn topics_create(a: ServiceArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.config.as_ref(), env)?;
    for (name, outcome) in runtime()?.block_on(tools::create_topics(&config))? {
        println!("{name}: {}", if outcome == tools::TopicOutcome::Created { "created" } else { "exists" });
    }
    Ok(())
}

/// `alerts tail`: the alerts on the alert topic as they are read.
fn alerts_tail(a: TailArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.service.config.as_ref(), env)?;
    tools::for_each_alert(&config, a.max, std::time::Duration::from_secs(a.idle_secs), |alert| {
        use std::io::Write;
        let line = if a.json { serde_json::to_string(&alert)? } else { tools::describe(&alert) };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    })?;
    Ok(())
}

/// `evidence`: the records behind an alert's evidence ids.
fn evidence(a: crate::service::evidence::EvidenceArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.config.as_ref(), env)?;
    crate::service::evidence::init_logging(&config)?;
    crate::service::evidence::command(&config, &a, &mut std::io::stdout().lock())
}

/// `produce`: a records file to the input topics.
fn produce(a: ProduceArgs, env: &[(String, String)]) -> anyhow::Result<()> {
    let config = load_config(a.service.config.as_ref(), env)?;
    let records = RecordReader::open(&a.records).with_context(|| format!("opening {}", a.records.display()))?;
    let sent = runtime()?
        .block_on(tools::produce_records(&config, records, a.rate))
        .with_context(|| format!("producing {}", a.records.display()))?;
    eprintln!("produced {sent} records to {} and {}", config.topics.time_reports, config.topics.invoices);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use tillsyn_core::codec::MessageWriter;
    use tillsyn_sim::municipality::{SimConfig, simulate};

    use super::*;

    /// The configuration reference of the README: a complete `tillsyn.toml`
    /// of the service, every table included.
    fn readme_toml() -> &'static str {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n[kafka]").expect("the README has the configuration reference") + 8;
        &readme[start..start + readme[start..].find("```").expect("the block ends")]
    }

    /// A small simulated events file and the README's `tillsyn.toml`.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.ndjson");
        let config = SimConfig {
            seed: 5,
            providers: 10,
            clients: 400,
            months: 2,
            fraudulent_providers: 4,
            ..SimConfig::default()
        };
        let mut writer = MessageWriter::create(&events).unwrap();
        simulate(&config, &mut |e| writer.write(e).map_err(Into::into)).unwrap();
        writer.finish().unwrap();
        let file = dir.path().join("tillsyn.toml");
        std::fs::write(&file, readme_toml()).unwrap();
        (dir, events, file)
    }

    /// `tillsyn replay --config <file>` under the environment `env`; the
    /// summary's alerts by rule and late events by input.
    fn replay(dir: &Path, events: &Path, file: &Path, env: &[(&str, &str)]) -> anyhow::Result<serde_json::Value> {
        let summary = dir.join("summary.json");
        let alerts = dir.join("alerts.ndjson");
        let path = |p: &Path| p.display().to_string();
        let args = ["tillsyn", "replay", "--events", &path(events), "--alerts", &path(&alerts)];
        let cli = Cli::try_parse_from(args.into_iter().map(String::from).chain([
            "--config".into(),
            path(file),
            "--summary-json".into(),
            path(&summary),
        ]))?;
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        run(cli, &env)?;
        Ok(serde_json::from_slice(&std::fs::read(&summary)?)?)
    }

    fn alerts_by_rule(summary: &serde_json::Value) -> BTreeMap<String, u64> {
        serde_json::from_value(summary["alerts_by_rule"].clone()).unwrap()
    }

    #[test]
    fn the_readme_reference_is_a_valid_service_configuration() {
        let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(file.path(), readme_toml()).unwrap();
        let config = ServiceConfig::load(Some(file.path()), []).unwrap();
        assert_eq!(config, ServiceConfig::default(), "the reference shows the defaults");
        assert_eq!(load_config(Some(&file.path().to_path_buf()), &[]).unwrap(), config, "and it is valid");
    }

    #[test]
    fn replay_reads_the_services_configuration_and_its_environment_overrides() {
        let (dir, events, file) = fixture();
        // The service's whole tillsyn.toml ([kafka], [topics], ...) is a
        // replay configuration.
        let base = replay(dir.path(), &events, &file, &[]).unwrap();
        let by_rule = alerts_by_rule(&base);
        let (busiest, _) = by_rule.iter().max_by_key(|(_, n)| **n).expect("the scenario raises alerts");

        // A TILLSYN_CORE__ override reaches the core of the replay.
        let disabled = format!("[{busiest:?}]");
        let off = replay(dir.path(), &events, &file, &[("TILLSYN_CORE__RULES__DISABLED", &disabled)]).unwrap();
        let mut expected = by_rule.clone();
        expected.remove(busiest);
        assert_eq!(alerts_by_rule(&off), expected, "only {busiest} is switched off");

        // Durations too, in the environment as in the file (replay runs
        // with `.core` of exactly this).
        let env = [("TILLSYN_CORE__VISIT_LATENESS".to_string(), "1d 12h".to_string())];
        let core = load_config(Some(&file), &env).unwrap().core;
        assert_eq!(core.visit_lateness, std::time::Duration::from_secs(36 * 3600));
        replay(dir.path(), &events, &file, &[("TILLSYN_CORE__VISIT_LATENESS", "1d 12h")]).unwrap();
    }

    #[test]
    fn an_invalid_core_value_fails_replay_naming_the_key() {
        let (dir, events, file) = fixture();
        let e = replay(dir.path(), &events, &file, &[("TILLSYN_CORE__HORIZON_DAYS", "3")]).unwrap_err().to_string();
        assert!(e.contains("core.horizon_days = 3"), "{e}");
        let e = replay(dir.path(), &events, &file, &[("TILLSYN_CORE__INVOICE_LATENESS", "1500ms")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("core.invoice_lateness = \"1500ms\""), "{e}");
        let e =
            replay(dir.path(), &events, &file, &[("TILLSYN_CORE__VISIT_LATENESS", "soon")]).unwrap_err().to_string();
        assert!(e.contains("TILLSYN_CORE__VISIT_LATENESS") && e.contains("core.visit_lateness"), "{e}");
        std::fs::write(&file, "[core]\nvisit_lateness_secs = 3600\n").unwrap();
        let e = replay(dir.path(), &events, &file, &[]).unwrap_err().to_string();
        assert!(e.contains("unknown field `visit_lateness_secs`"), "{e}");
    }

    #[test]
    fn produce_stops_at_a_bad_line_of_the_records_file_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("records.ndjson");
        std::fs::write(&records, "{\"input\":\"time_report\",\"key\":\"P1\",\"value\":\"%%%\"}\n").unwrap();
        let cli =
            Cli::try_parse_from(["tillsyn", "produce", "--records", &records.display().to_string(), "--rate", "10"])
                .unwrap();
        let env = [("TILLSYN_KAFKA__BROKERS".to_string(), "127.0.0.1:1".to_string())];
        let e = format!("{:#}", run(cli, &env).unwrap_err());
        assert!(e.contains("records.ndjson") && e.contains("line 1: invalid JSON"), "{e}");
    }
}
