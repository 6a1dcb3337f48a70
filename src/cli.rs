//! The command line: `tillsyn simulate | replay | evaluate | rules`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::replay::replay_partitioned;
use crate::service::config::{LogFormat, ServiceConfig};
use crate::service::{run, tools};
use crate::telemetry;
use tillsyn_core::codec::MessageWriter;
use tillsyn_core::config::CoreConfig;
use tillsyn_core::decode::Format;
use tillsyn_core::rules::catalogue;
use tillsyn_sim::evaluate::{EvaluationOptions, evaluate_files};
use tillsyn_sim::municipality::{SimConfig, simulate};

/// tillsyn: real-time detection of billing fraud in home care and personal assistance.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a municipality with labelled fraud: events file + ground truth.
    Simulate(SimulateArgs),
    /// Run the detection core over an events file and write alerts.
    Replay(ReplayArgs),
    /// Score alerts against the simulator's ground truth.
    Evaluate(EvaluateArgs),
    /// Print the rule catalogue.
    Rules,
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
}

#[derive(Debug, clap::Args)]
struct ServiceArgs {
    /// Configuration file (TOML); `TILLSYN_`-prefixed environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create the service's topics (existing ones are left alone).
    Create(ServiceArgs),
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Print the alerts on the alert topic, one line each, from the beginning.
    Tail {
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
    },
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// Seed; the same seed and settings give identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Providers, including the municipality's own unit.
    #[arg(long)]
    providers: Option<u32>,
    /// Clients at the start.
    #[arg(long)]
    clients: Option<u32>,
    /// Months to simulate.
    #[arg(long)]
    months: Option<u32>,
    /// Providers with injected fraud (0 for a clean municipality).
    #[arg(long)]
    fraudulent: Option<u32>,
    /// Events file to write (.ndjson or .pb).
    #[arg(long, default_value = "events.ndjson")]
    out: PathBuf,
    /// Ground-truth file to write (JSON).
    #[arg(long, default_value = "truth.json")]
    truth: PathBuf,
    /// Produce to the input topics of the service instead of writing
    /// `--out` (brokers, topics and security from the configuration).
    #[arg(long)]
    to_kafka: bool,
    /// Bootstrap brokers for `--to-kafka` (overrides the configuration).
    #[arg(long)]
    brokers: Option<String>,
    /// Configuration file for `--to-kafka`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With `--to-kafka`: at most this many events per second.
    #[arg(long)]
    rate: Option<f64>,
    /// With `--to-kafka`: encode events as proto3 JSON instead of protobuf.
    #[arg(long)]
    json: bool,
    /// With `--to-kafka`: also produce this many malformed records of every
    /// kind (random bytes, truncated protobuf, huge fields, deep JSON, wrong
    /// types, year 9999, ...), spread evenly among the events; each must
    /// end in the dead-letter topic.
    #[arg(long, default_value_t = 0)]
    hostile: usize,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Events file (.ndjson or .pb).
    #[arg(long)]
    events: PathBuf,
    /// Alerts file to write (.ndjson or .pb).
    #[arg(long, default_value = "alerts.ndjson")]
    alerts: PathBuf,
    /// Configuration file (TOML, `[core]` table).
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
}

#[derive(Debug, clap::Args)]
struct EvaluateArgs {
    /// Alerts file written by `replay`.
    #[arg(long)]
    alerts: PathBuf,
    /// Ground truth written by `simulate`.
    #[arg(long)]
    truth: PathBuf,
    /// Days after a label's end within which a detection still counts.
    #[arg(long, default_value_t = 45)]
    grace_days: u32,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// The file configuration: for now the `[core]` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    core: CoreConfig,
}

/// Loads the service configuration: file, then `TILLSYN_` environment;
/// prints warnings to stderr.
fn load_service(path: Option<&PathBuf>) -> anyhow::Result<ServiceConfig> {
    let config = ServiceConfig::load(path.map(|p| p.as_path()), crate::service::config::process_env())?;
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

fn load_core(path: Option<&PathBuf>) -> anyhow::Result<CoreConfig> {
    let config = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            toml::from_str::<FileConfig>(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?.core
        }
        None => CoreConfig::default(),
    };
    config.validate()?;
    Ok(config)
}

/// Runs the command line; the exit code is non-zero on any error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(a) => {
            let mut config = SimConfig { seed: a.seed, ..SimConfig::default() };
            if let Some(v) = a.providers {
                config.providers = v;
            }
            if let Some(v) = a.clients {
                config.clients = v;
            }
            if let Some(v) = a.months {
                config.months = v;
            }
            if let Some(v) = a.fraudulent {
                config.fraudulent_providers = v;
            }
            if a.to_kafka {
                let mut service = load_service(a.config.as_ref())?;
                if let Some(b) = a.brokers {
                    service.kafka.brokers = b;
                }
                let format = if a.json { Format::Json } else { Format::Protobuf };
                if a.hostile == 0 {
                    let (truth, sent) =
                        runtime()?.block_on(tools::simulate_to_topics(&service, &config, format, a.rate))?;
                    truth.write(&a.truth)?;
                    eprintln!(
                        "produced {sent} events to {} and {}",
                        service.topics.time_reports, service.topics.invoices
                    );
                    return Ok(());
                }
                let mut events = Vec::new();
                let truth = simulate(&config, &mut |e| {
                    events.push(e.clone());
                    Ok(())
                })?;
                let (report, invoice) =
                    tools::templates(&events).ok_or_else(|| anyhow::anyhow!("the scenario has no events"))?;
                let hostile =
                    tillsyn_sim::municipality::hostile::hostile_records(config.seed, a.hostile, &report, &invoice);
                let (sent, bad) =
                    runtime()?.block_on(tools::produce_with_hostile(&service, &events, &hostile, format, a.rate))?;
                truth.write(&a.truth)?;
                eprintln!(
                    "produced {sent} events and {bad} malformed records to {} and {}",
                    service.topics.time_reports, service.topics.invoices
                );
                return Ok(());
            }
            let mut writer = MessageWriter::create(&a.out)?;
            let mut count = 0u64;
            let truth = simulate(&config, &mut |event| {
                count += 1;
                writer.write(event).map_err(Into::into)
            })?;
            writer.finish()?;
            truth.write(&a.truth)?;
            eprintln!(
                "simulated {count} events, {} providers ({} with fraud, {} scenarios) → {}, {}",
                truth.providers.len(),
                truth.labels.iter().map(|l| &l.provider_id).collect::<std::collections::BTreeSet<_>>().len(),
                truth.labels.len(),
                a.out.display(),
                a.truth.display()
            );
        }
        Command::Replay(a) => {
            let config = load_core(a.config.as_ref())?;
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let summary =
                replay_partitioned(&a.events, &a.alerts, a.dead_letter.as_deref(), config, progress, a.partitions)?;
            eprintln!("{summary}");
            if let Some(p) = a.summary_json {
                std::fs::write(&p, serde_json::to_vec_pretty(&summary)?)?;
            }
        }
        Command::Evaluate(a) => {
            let options = EvaluationOptions {
                grace_days: a.grace_days,
                known_rule_ids: Some(catalogue::ALL.iter().map(|r| r.id.to_string()).collect()),
            };
            let evaluation = evaluate_files(&a.alerts, &a.truth, &options)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&evaluation)?);
            } else {
                println!("{evaluation}");
            }
        }
        Command::Run(a) => {
            let config = load_service(a.config.as_ref())?;
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
            })?;
        }
        Command::CheckConfig(a) => {
            let config = load_service(a.config.as_ref())?;
            print!("{}", config.masked_toml());
        }
        Command::Topics(TopicsCommand::Create(a)) => {
            let config = load_service(a.config.as_ref())?;
            for (name, outcome) in runtime()?.block_on(tools::create_topics(&config))? {
                println!("{name}: {}", if outcome == tools::TopicOutcome::Created { "created" } else { "exists" });
            }
        }
        Command::Alerts(AlertsCommand::Tail { service, max, idle_secs, json }) => {
            let config = load_service(service.config.as_ref())?;
            tools::for_each_alert(&config, max, std::time::Duration::from_secs(idle_secs), |alert| {
                use std::io::Write;
                let line = if json { serde_json::to_string(&alert)? } else { tools::describe(&alert) };
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()?;
                Ok(())
            })?;
        }
        Command::Rules => {
            println!("| rule id | pattern | name | quiet days |\n|---|---|---|---|");
            for r in catalogue::ALL {
                println!("| `{}` | {} | {} | {} |", r.id, r.pattern, r.name, r.quiet_days);
            }
        }
    }
    Ok(())
}
