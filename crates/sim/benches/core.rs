//! Criterion benchmarks of the detection core.
//!
//! - `core/municipality_mix`: the engine over the default simulated
//!   municipality (40 providers, 6 months, fraud injected; about a million
//!   time reports plus invoices), events pre-validated: the core alone.
//! - `core/driver_municipality_mix`: the same events offered, as records of
//!   one partition, to the partition driver that `run` and `replay` share
//!   (offsets, suppression, alignment around the engine).
//! - `edge/decode_validate_json` and `edge/decode_validate_protobuf`: one
//!   wire record to a domain event, for the shell's per-record cost.
//! - `state/snapshot` and `state/restore`: the whole engine state after the
//!   municipality mix (one engine: all 40 providers, so about three
//!   partitions' worth) to bytes and back, the cost of a checkpoint and of
//!   a takeover's restore (the bytes are printed).
//!
//! Run with `cargo bench --bench core` or `scripts/bench.sh`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

use std::collections::HashMap;

use tillsyn_core::config::CoreConfig;
use tillsyn_core::driver::{HoldLimit, Offsets, PartitionDriver, Record};
use tillsyn_core::engine::{Engine, Input, Standalone};
use tillsyn_core::model::DomainEvent;
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::validate::Validator;
use tillsyn_core::proto::v1 as wire;
use tillsyn_sim::municipality::{SimConfig, simulate};

fn simulated() -> Vec<wire::Event> {
    let mut events = Vec::new();
    simulate(&SimConfig::default(), &mut |e| {
        events.push(e.clone());
        Ok(())
    })
    .expect("simulation runs");
    events
}

fn core(c: &mut Criterion) {
    let config = CoreConfig::default();
    let validator = Validator::new(Pseudonymizer::from_secret(&config.pseudonym_secret));
    let wire_events = simulated();
    let events: Vec<DomainEvent> = wire_events.iter().filter_map(|e| validator.event(e).ok()).collect();
    let mut group = c.benchmark_group("core");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("municipality_mix", |b| {
        // A fresh engine per iteration, built and dropped outside the timing.
        b.iter_batched(
            || (Standalone::new(config.clone()), Vec::new()),
            |(mut core, mut alerts)| {
                for event in &events {
                    core.process(event, &mut alerts);
                }
                (core, alerts)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("driver_municipality_mix", |b| {
        // The records (events cloned into them) and a fresh driver are built
        // outside the timing.
        b.iter_batched(
            || {
                let driver = PartitionDriver::new(
                    Engine::new(config.clone()),
                    Offsets::default(),
                    HashMap::new(),
                    HoldLimit::default(),
                );
                let mut next = Offsets::default();
                let records: Vec<Record<()>> = events
                    .iter()
                    .map(|event| {
                        let input =
                            if matches!(event, DomainEvent::Invoice(_)) { Input::Invoices } else { Input::TimeReports };
                        let offset = next.take(input);
                        Record { input, offset, decoded: Ok(event.clone()), handle: (), size: 0 }
                    })
                    .collect();
                (driver, records, Vec::new())
            },
            |(mut driver, records, mut out)| {
                let mut no_unread_invoices = || Some(0);
                for record in records {
                    driver.offer(record, &mut no_unread_invoices, &mut out);
                    out.clear();
                }
                (driver, out)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let mut core = Standalone::new(config.clone());
    let mut alerts = Vec::new();
    for event in &events {
        core.process(event, &mut alerts);
    }
    let engine = core.engine;
    let bytes = engine.snapshot();
    eprintln!("state/snapshot: {} bytes for {:?}", bytes.len(), engine.state_size());
    let mut group = c.benchmark_group("state");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("snapshot", |b| b.iter(|| engine.snapshot().len()));
    group.bench_function("restore", |b| {
        b.iter(|| Engine::restore(config.clone(), &bytes).expect("restores").state_size())
    });
    group.finish();

    let sample: Vec<&wire::Event> = wire_events.iter().step_by(97).take(10_000).collect();
    let json: Vec<String> = sample.iter().map(|e| serde_json::to_string(e).expect("serialises")).collect();
    let proto: Vec<Vec<u8>> = sample.iter().map(|e| e.encode_to_vec()).collect();
    let mut group = c.benchmark_group("edge");
    group.throughput(Throughput::Elements(sample.len() as u64));
    group.bench_function("decode_validate_json", |b| {
        b.iter(|| {
            json.iter()
                .filter_map(|s| serde_json::from_str::<wire::Event>(s).ok())
                .filter_map(|e| validator.event(&e).ok())
                .count()
        })
    });
    group.bench_function("decode_validate_protobuf", |b| {
        b.iter(|| {
            proto
                .iter()
                .filter_map(|bytes| wire::Event::decode(bytes.as_slice()).ok())
                .filter_map(|e| validator.event(&e).ok())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
