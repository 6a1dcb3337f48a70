//! The command line of `tillsyn-sim`: `simulate | evaluate`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tillsyn_core::codec::MessageWriter;
use tillsyn_core::decode::Format;
use tillsyn_core::proto::v1 as wire;
use tillsyn_core::records::{KafkaRecordLine, RecordWriter};
use tillsyn_core::rules::catalogue;
use tillsyn_sim::evaluate::{EvaluationOptions, evaluate_files};
use tillsyn_sim::labels::GroundTruth;
use tillsyn_sim::municipality::hostile::hostile_records;
use tillsyn_sim::municipality::{IntensityRange, RegionConfig, SimConfig, simulate, simulate_region};
use tillsyn_sim::records::{templates, with_hostile};

/// tillsyn-sim: the municipality simulator with labelled fraud and the
/// evaluator of tillsyn's alerts.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a municipality with labelled fraud: events file (or Kafka
    /// records file) + ground truth.
    Simulate(SimulateArgs),
    /// Score alerts against the simulator's ground truth.
    Evaluate(EvaluateArgs),
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// Seed; the same seed and settings give identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulate the region scenario instead of one municipality: three
    /// municipalities (Umeå, Vännäs, Nordmaling) with companies that have a
    /// branch in two of them and staff with two employers.
    #[arg(long, conflicts_with_all = ["providers", "clients", "fraudulent"])]
    region: bool,
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
    /// Also emit reference data (decisions on granted hours, client
    /// absences, the provider register) and inject the patterns that need
    /// it (11, 15, 16).
    #[arg(long)]
    reference: bool,
    /// The range each fraud's intensity is drawn from, `LO..HI` within
    /// 0..1 (0 the subtlest: 3 % added to a tenth of the clients' invoice
    /// lines; 1 the most blatant); the label records it. Default: the
    /// blatant third, 0.667..1.
    #[arg(long, value_parser = parse_intensity)]
    intensity: Option<IntensityRange>,
    /// Events file to write (.ndjson or .pb).
    #[arg(long, default_value = "events.ndjson", conflicts_with = "records")]
    out: PathBuf,
    /// Ground-truth file to write (JSON).
    #[arg(long, default_value = "truth.json")]
    truth: PathBuf,
    /// Write the Kafka records the events are sent as instead of `--out`:
    /// NDJSON, one record a line, in send order (`tillsyn produce
    /// --records` sends them).
    #[arg(long)]
    records: Option<PathBuf>,
    /// With `--records`: encode events as proto3 JSON instead of protobuf.
    #[arg(long, requires = "records")]
    json: bool,
    /// With `--records`: also write this many malformed records of every
    /// kind (random bytes, truncated protobuf, huge fields, deep JSON, wrong
    /// types, year 9999, ...), spread evenly among the events; each must
    /// end in the dead-letter topic.
    #[arg(long, default_value_t = 0, requires = "records")]
    hostile: usize,
}

#[derive(Debug, clap::Args)]
struct EvaluateArgs {
    /// Alerts file written by `tillsyn replay` (or `tillsyn alerts tail --json`).
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

/// `LO..HI` (or one number) within 0..1.
fn parse_intensity(text: &str) -> Result<IntensityRange, String> {
    IntensityRange::parse(text).ok_or_else(|| format!("{text:?} is not LO..HI with 0 <= LO <= HI <= 1"))
}

/// Runs the command line; the exit code is non-zero on any error.
pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(a) => match &a.records {
            Some(records) => simulate_records(&a, records),
            None => simulate_events(&a),
        },
        Command::Evaluate(a) => evaluate(a),
    }
}

impl SimulateArgs {
    /// Runs the scenario the flags name into `sink`.
    fn simulate(&self, sink: &mut dyn FnMut(&wire::Event) -> anyhow::Result<()>) -> anyhow::Result<GroundTruth> {
        if self.region {
            let mut config = RegionConfig { seed: self.seed, reference: self.reference, ..RegionConfig::default() };
            if let Some(v) = self.months {
                config.months = v;
            }
            if let Some(v) = self.intensity {
                config.intensity = v;
            }
            simulate_region(&config, sink)
        } else {
            simulate(&self.config(), sink)
        }
    }

    /// The simulator's configuration: its defaults with the flags given.
    fn config(&self) -> SimConfig {
        let mut config = SimConfig { seed: self.seed, reference: self.reference, ..SimConfig::default() };
        if let Some(v) = self.providers {
            config.providers = v;
        }
        if let Some(v) = self.clients {
            config.clients = v;
        }
        if let Some(v) = self.months {
            config.months = v;
        }
        if let Some(v) = self.intensity {
            config.intensity = v;
        }
        if let Some(v) = self.fraudulent {
            config.fraudulent_providers = v;
        }
        config
    }
}

/// `simulate`: the events file and the ground truth.
fn simulate_events(a: &SimulateArgs) -> anyhow::Result<()> {
    let mut writer = MessageWriter::create(&a.out)?;
    let mut count = 0u64;
    let truth = a.simulate(&mut |event| {
        count += 1;
        writer.write(event).map_err(Into::into)
    })?;
    writer.finish()?;
    truth.write(&a.truth)?;
    eprintln!("simulated {count} events, {} → {}, {}", scenario(&truth), a.out.display(), a.truth.display());
    Ok(())
}

/// `simulate --records`: the Kafka records file (with `--hostile` records
/// among the events) and the ground truth.
fn simulate_records(a: &SimulateArgs, path: &std::path::Path) -> anyhow::Result<()> {
    let config = a.config();
    let format = if a.json { Format::Json } else { Format::Protobuf };
    let mut writer = RecordWriter::create(path)?;
    let (truth, events, hostile) = if a.hostile == 0 {
        let mut events = 0u64;
        let truth = a.simulate(&mut |event| {
            for record in KafkaRecordLine::event_for(event, format, a.reference)? {
                writer.write(&record)?;
                events += 1;
            }
            Ok(())
        })?;
        (truth, events, 0)
    } else {
        let mut events = Vec::new();
        let truth = a.simulate(&mut |e| {
            events.push(e.clone());
            Ok(())
        })?;
        let (report, invoice) = templates(&events).ok_or_else(|| anyhow::anyhow!("the scenario has no events"))?;
        let hostile = hostile_records(config.seed, a.hostile, &report, &invoice);
        let counts = with_hostile(&events, &hostile, format, a.reference, |r| writer.write(&r).map_err(Into::into))?;
        (truth, counts.events, counts.hostile)
    };
    writer.finish()?;
    truth.write(&a.truth)?;
    eprintln!(
        "simulated {events} events and {hostile} malformed records, {} → {}, {}",
        scenario(&truth),
        path.display(),
        a.truth.display()
    );
    Ok(())
}

/// "N providers (F with fraud, S scenarios)".
fn scenario(truth: &GroundTruth) -> String {
    format!(
        "{} providers ({} with fraud, {} scenarios)",
        truth.providers.len(),
        truth.labels.iter().map(|l| &l.provider_id).collect::<std::collections::BTreeSet<_>>().len(),
        truth.labels.len()
    )
}

/// `evaluate`: the score of the alerts against the ground truth.
fn evaluate(a: EvaluateArgs) -> anyhow::Result<()> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use tillsyn_core::codec::MessageReader;
    use tillsyn_core::proto::v1 as wire;
    use tillsyn_core::records::RecordReader;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tillsyn-sim").chain(args.iter().copied()))
    }

    fn small(dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
        let truth = dir.join("truth.json").display().to_string();
        let mut args: Vec<String> =
            ["simulate", "--seed", "4", "--providers", "6", "--clients", "200", "--months", "1", "--fraudulent", "2"]
                .map(String::from)
                .into();
        args.extend(["--truth".to_string(), truth]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    #[test]
    fn the_records_file_holds_the_events_file_as_records_with_the_hostile_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let run_args = |extra: &[&str]| {
            let args = small(dir.path(), extra);
            run(parse(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap()).unwrap();
        };
        run_args(&["--out", &path("events.pb")]);
        run_args(&["--records", &path("records.ndjson")]);
        run_args(&["--records", &path("hostile.ndjson"), "--hostile", "30", "--json"]);

        let mut reader = MessageReader::open(&dir.path().join("events.pb")).unwrap();
        let mut expected = Vec::new();
        while let Some(e) = reader.next_message::<wire::Event>().unwrap() {
            expected.extend(KafkaRecordLine::event(&e, Format::Protobuf).unwrap());
        }
        let read = |name: &str| -> Vec<KafkaRecordLine> {
            RecordReader::open(&dir.path().join(name)).unwrap().collect::<Result<_, _>>().unwrap()
        };
        assert_eq!(read("records.ndjson"), expected);
        let hostile = read("hostile.ndjson");
        assert_eq!(hostile.len(), expected.len() + 30);
        // Heartbeats name their envelope: `application/json; proto=tillsyn.v1.Event`.
        let json = hostile
            .iter()
            .filter(|r| r.content_type.as_deref().is_some_and(|c| c.starts_with("application/json")))
            .count();
        assert!(json >= expected.len(), "the events are proto3 JSON");
    }

    #[test]
    fn hostile_and_json_need_records_and_records_excludes_out() {
        assert!(parse(&["simulate", "--hostile", "3"]).is_err());
        assert!(parse(&["simulate", "--json"]).is_err());
        assert!(parse(&["simulate", "--records", "r.ndjson", "--out", "e.ndjson"]).is_err());
        assert!(parse(&["simulate", "--records", "r.ndjson", "--json", "--hostile", "3"]).is_ok());
        assert!(parse(&["evaluate", "--alerts", "a.ndjson", "--truth", "t.json", "--grace-days", "10"]).is_ok());
    }
}
