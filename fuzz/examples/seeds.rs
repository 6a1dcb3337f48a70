//! Writes the seed corpora of the decoder targets from a small simulated
//! municipality (time reports and invoices, fraud included), in every
//! encoding the decoders read, plus a few records of the wrong kind.
//!
//! Usage: cargo run --example seeds -- OUT_DIR
//! Writes OUT_DIR/decode_protobuf/* and OUT_DIR/decode_json/*. Deterministic:
//! the same build writes the same files.

use std::path::Path;

use prost::Message;
use tillsyn_core::engine::Input;
use tillsyn_core::proto::v1 as wire;
use tillsyn_fuzz::Record;
use tillsyn_sim::{SimConfig, simulate};

fn main() -> anyhow_free::Result {
    let out = std::env::args().nth(1).ok_or("usage: seeds OUT_DIR")?;
    let out = Path::new(&out);
    let config =
        SimConfig { seed: 7, providers: 8, clients: 160, months: 2, fraudulent_providers: 3, ..SimConfig::default() };
    let mut reports = Vec::new();
    let mut invoices = Vec::new();
    simulate(&config, &mut |e: &wire::Event| {
        match &e.kind {
            Some(wire::event::Kind::TimeReport(t)) => reports.push(t.clone()),
            Some(wire::event::Kind::Invoice(i)) => invoices.push(i.clone()),
            None => {}
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;

    // An even sample: every k-th report (with and without optional fields)
    // and invoices cut to their first few lines, total adjusted (small seeds
    // fuzz faster; one keeps 20 lines).
    let step = (reports.len() / 48).max(1);
    let mut sample: Vec<wire::event::Kind> =
        reports.iter().step_by(step).take(48).cloned().map(wire::event::Kind::TimeReport).collect();
    let step = (invoices.len() / 12).max(1);
    for (n, invoice) in invoices.iter().step_by(step).take(12).enumerate() {
        let mut invoice = invoice.clone();
        invoice.lines.truncate(if n == 0 { 20 } else { 1 + n % 3 });
        invoice.total_ore = invoice.lines.iter().map(|l| l.amount_ore).sum();
        sample.push(wire::event::Kind::Invoice(invoice));
    }

    let mut protobuf: Vec<Vec<u8>> = Vec::new();
    let mut json: Vec<Vec<u8>> = Vec::new();
    let with = |selector: u8, bytes: &[u8]| -> Vec<u8> { [&[selector][..], bytes].concat() };
    for kind in sample {
        let (input, bare, bare_json, name) = match &kind {
            wire::event::Kind::TimeReport(t) => {
                (Input::TimeReports, t.encode_to_vec(), serde_json::to_vec(t)?, "tillsyn.v1.TimeReport")
            }
            wire::event::Kind::Invoice(i) => {
                (Input::Invoices, i.encode_to_vec(), serde_json::to_vec(i)?, "tillsyn.v1.Invoice")
            }
        };
        let other = match input {
            Input::TimeReports => Input::Invoices,
            Input::Invoices => Input::TimeReports,
        };
        let envelope = wire::Event { kind: Some(kind) };
        let envelope_bytes = envelope.encode_to_vec();
        let envelope_json = serde_json::to_vec(&envelope)?;

        protobuf.push(with(Record::selector(input, 0), &envelope_bytes));
        protobuf.push(with(Record::selector(input, 0), &bare));
        protobuf.push(with(Record::selector(input, 2), &envelope_bytes));
        protobuf.push(with(Record::selector(input, if input == Input::TimeReports { 3 } else { 4 }), &bare));
        protobuf.push(with(Record::selector(other, 0), &bare));
        protobuf.push(with(Record::selector(input, 6), &envelope_json));

        json.push(with(Record::selector(input, 0), &envelope_json));
        json.push(with(Record::selector(input, 0), &bare_json));
        json.push(with(Record::selector(input, 5), &bare_json));
        json.push(with(Record::selector(other, 1), &envelope_json));
        json.push(with(Record::selector(input, 6), &bare));
        let header = format!("application/json; charset=utf-8; proto={name}\n");
        json.push(with(Record::selector(input, 7), &[header.as_bytes(), &bare_json].concat()));
    }
    for (target, seeds) in [("decode_protobuf", protobuf), ("decode_json", json)] {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir)?;
        for (n, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("sim-{n:04}")), seed)?;
        }
        println!("{target}: {} seeds in {}", seeds.len(), dir.display());
    }
    Ok(())
}

/// `main`'s error: any error's message (no extra dependency for it).
mod anyhow_free {
    pub type Result = std::result::Result<(), Box<dyn std::error::Error>>;
}
