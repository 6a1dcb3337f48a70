//! What checkpoints cost the broker: bytes written per hour, and the time
//! to restore a partition, for full snapshots (every checkpoint writes the
//! whole state, as tillsyn did before format 9) and for the incremental
//! checkpoints of `service::changelog` (the entities that changed).
//!
//! The detection core runs the events of a scenario in their arrival order;
//! the arrival clock (a visit's `reportedAt`, an invoice's issue time, a
//! source heartbeat) stands for the wall clock of a live run, and a
//! checkpoint is taken every `interval` seconds of it when anything was
//! processed since the last one, as `tillsyn run` does every
//! `kafka.commit_interval` (default 30 s). Both ways are measured in the
//! same run, over the same checkpoints.
//!
//! `cargo run --release --example checkpoint_volume -- municipality [interval_secs] [from_day] [days]`:
//! the simulator's default municipality; `days` (default 7) measured from
//! day `from_day` (default 90) of its six months.
//!
//! `cargo run --release --example checkpoint_volume -- national [interval_secs] [warmup_days] [from_hour] [hours]`:
//! 6,000 providers, 230,000 clients, 100,000 staff in one partition;
//! `warmup_days` (default 35) without checkpoints, then `hours` (default 6)
//! measured from `from_hour` (default 0: midnight, with the day's close).
//! Local midnight is 23:00 UTC in winter.

use std::collections::BTreeMap;
use std::time::Instant;

use tillsyn::service::changelog::{self, Changelog, Epoch};
use tillsyn_core::alerting::Alert;
use tillsyn_core::config::CoreConfig;
use tillsyn_core::driver::PartitionDriver;
use tillsyn_core::engine::{Engine, Entity, StaffStage, Standalone};
use tillsyn_core::model::pseudonym::Pseudonymizer;
use tillsyn_core::model::validate::Validator;
use tillsyn_core::model::{Day, DomainEvent, EventTime};
use tillsyn_core::proto::v1 as wire;
use tillsyn_sim::municipality::{SimConfig, simulate};
use tillsyn_sim::workload::NationalScale;

/// When the event reaches the service in a live run.
fn arrival(event: &DomainEvent) -> EventTime {
    match event {
        DomainEvent::Visit(v) => v.reported_at,
        DomainEvent::Invoice(i) => i.issued_at,
        DomainEvent::Heartbeat(at) => *at,
        DomainEvent::Reference(r) => r.recorded_at,
    }
}

/// Checkpoints of one partition, both ways.
struct Meter {
    interval: i64,
    changelog: Changelog,
    /// The state topic as compaction leaves it.
    topic: BTreeMap<Vec<u8>, Vec<u8>>,
    next_at: Option<EventTime>,
    dirty: bool,
    first: Option<EventTime>,
    last: EventTime,
    checkpoints: u64,
    full_bytes: u64,
    incremental_bytes: u64,
    incremental_records: u64,
    entities_written: u64,
    largest_incremental: u64,
    largest_entity: usize,
    checkpoint_seconds: f64,
    /// Per entity kind: (entities, bytes) in the last checkpoint's state.
    kinds: BTreeMap<&'static str, (u64, u64)>,
    /// Per entity kind: (records, bytes) written.
    written: BTreeMap<&'static str, (u64, u64)>,
}

fn kind(entity: &Entity) -> &'static str {
    match entity {
        Entity::Engine => "engine",
        Entity::Provider(_) => "provider",
        Entity::ProviderBilling(_) => "provider billing",
        Entity::Client(..) => "client",
        Entity::StaffStage => "staff stage",
        Entity::StaffPending(_) => "staff waiting",
        Entity::Staff(_) => "staff member",
        Entity::ClientCare(_) => "client care (staff stage)",
    }
}

impl Meter {
    fn new(interval: i64) -> Self {
        Meter {
            interval,
            changelog: Changelog::new(0, Epoch::default(), Vec::new()),
            topic: BTreeMap::new(),
            next_at: None,
            dirty: false,
            first: None,
            last: EventTime(i64::MIN),
            checkpoints: 0,
            full_bytes: 0,
            incremental_bytes: 0,
            incremental_records: 0,
            entities_written: 0,
            largest_incremental: 0,
            largest_entity: 0,
            checkpoint_seconds: 0.0,
            kinds: BTreeMap::new(),
            written: BTreeMap::new(),
        }
    }

    /// Before `event` is processed: a checkpoint if one is due.
    fn before(&mut self, core: &Standalone, event: &DomainEvent, measure: bool) {
        let at = arrival(event);
        let next = *self.next_at.get_or_insert(EventTime(at.0 + self.interval));
        if at >= next {
            if self.dirty && measure {
                self.checkpoint(core);
            }
            self.next_at = Some(EventTime(at.0 + self.interval));
        }
        if measure {
            if self.first.is_none() {
                // The state as measuring begins, written once (as a new
                // owner's first checkpoint is), and not counted.
                self.checkpoint(core);
                *self = Meter {
                    changelog: self.changelog.clone(),
                    topic: std::mem::take(&mut self.topic),
                    ..Meter::new(self.interval)
                };
                self.next_at = Some(EventTime(at.0 + self.interval));
            }
            self.first.get_or_insert(at);
            self.last = self.last.max(at);
        }
        self.dirty = true;
    }

    fn checkpoint(&mut self, core: &Standalone) {
        let started = Instant::now();
        let mut largest = 0usize;
        let mut kinds = BTreeMap::new();
        let planned = self.changelog.plan(
            |out| {
                let mut each = |entity: Entity, bytes: Vec<u8>| {
                    largest = largest.max(bytes.len());
                    let k: &mut (u64, u64) = kinds.entry(kind(&entity)).or_default();
                    k.0 += 1;
                    k.1 += bytes.len() as u64;
                    out(entity, bytes)
                };
                core.engine.entities(&mut each);
                core.staff.entities(&mut each);
            },
            wire::StateManifest::default(),
        );
        self.checkpoint_seconds += started.elapsed().as_secs_f64();
        self.largest_entity = self.largest_entity.max(largest);
        self.kinds = kinds;
        self.checkpoints += 1;
        self.full_bytes += planned.state_bytes;
        self.incremental_bytes += planned.bytes;
        self.incremental_records += planned.records.len() as u64;
        self.entities_written += planned.entities_written;
        self.largest_incremental = self.largest_incremental.max(planned.bytes);
        for (key, value) in &planned.records {
            let k = match changelog::StateKey::decode(key) {
                Some(changelog::StateKey::Entity { entity, .. }) if value.is_some() => kind(&entity),
                Some(changelog::StateKey::Entity { .. }) => "tombstone",
                _ => "manifest",
            };
            let w = self.written.entry(k).or_default();
            w.0 += 1;
            w.1 += (key.len() + value.as_ref().map_or(0, Vec::len)) as u64;
            match value {
                Some(v) => self.topic.insert(key.clone(), v.clone()),
                None => self.topic.remove(key),
            };
        }
        self.changelog.committed(planned);
        self.dirty = false;
    }

    fn report(&mut self, core: &Standalone, config: &CoreConfig) {
        if self.dirty {
            self.checkpoint(core);
        }
        let hours = (self.last.0 - self.first.unwrap_or(self.last).0) as f64 / 3600.0;
        let mib = |b: f64| b / (1024.0 * 1024.0);
        let state_bytes = self.full_bytes as f64 / self.checkpoints.max(1) as f64;
        println!("measured             {hours:.1} h of arrival time, {} checkpoints", self.checkpoints);
        println!("state (last)         {:.1} MiB in {} entities", mib(state_bytes), self.changelog_entities());
        println!("largest entity       {:.1} KiB", self.largest_entity as f64 / 1024.0);
        for (kind, (n, bytes)) in &self.kinds {
            println!("  {kind:<18} {n:>8} entities, {:>8.1} KiB", *bytes as f64 / 1024.0);
        }
        println!(
            "full snapshots       {:.1} MiB/h  ({:.2} GiB/day)",
            mib(self.full_bytes as f64) / hours,
            mib(self.full_bytes as f64) / hours * 24.0 / 1024.0
        );
        println!(
            "incremental          {:.1} MiB/h  ({:.2} GiB/day), {:.0} records/h, {:.0} entities/h; largest checkpoint {:.1} MiB",
            mib(self.incremental_bytes as f64) / hours,
            mib(self.incremental_bytes as f64) / hours * 24.0 / 1024.0,
            self.incremental_records as f64 / hours,
            self.entities_written as f64 / hours,
            mib(self.largest_incremental as f64)
        );
        for (kind, (n, bytes)) in &self.written {
            println!(
                "  written {kind:<12} {:>10.0} records/h, {:>8.2} MiB/h",
                *n as f64 / hours,
                mib(*bytes as f64) / hours
            );
        }
        println!(
            "ratio                {:.1} x fewer bytes; plan+hash {:.1} ms per checkpoint",
            self.full_bytes as f64 / self.incremental_bytes.max(1) as f64,
            1000.0 * self.checkpoint_seconds / self.checkpoints.max(1) as f64
        );
        // Restore: the whole snapshot decoded (before) against the
        // compacted topic recovered and decoded (after).
        let whole = core.engine.snapshot();
        let started = Instant::now();
        let engine = Engine::restore(config.clone(), &whole).expect("restores");
        let before_seconds = started.elapsed().as_secs_f64();
        drop(engine);
        let topic_bytes: usize = self.topic.iter().map(|(k, v)| k.len() + v.len()).sum();
        // As the state topic is read: owned records, oldest first.
        let log: Vec<changelog::StateRecord> = self.topic.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        let started = Instant::now();
        let recovered = changelog::recover(0, log);
        let entities: Vec<(Entity, &[u8])> = recovered.entities.iter().map(|(e, b)| (*e, b.as_slice())).collect();
        let (engine, staff): (Engine, StaffStage) =
            PartitionDriver::<()>::restore_entities(config, &entities).expect("restores");
        let after_seconds = started.elapsed().as_secs_f64();
        assert!(engine.snapshot() == whole, "the changelog restores the same engine state");
        let mut staff_bytes = Vec::new();
        staff.entities(&mut |e, b| staff_bytes.push((e, b)));
        let mut expected = Vec::new();
        core.staff.entities(&mut |e, b| expected.push((e, b)));
        assert!(staff_bytes == expected, "and the same staff stage");
        println!(
            "restore (decode)     whole snapshot {:.0} ms; compacted changelog {:.0} ms ({} records, {:.1} MiB to read)",
            before_seconds * 1000.0,
            after_seconds * 1000.0,
            self.topic.len(),
            mib(topic_bytes as f64)
        );
    }

    fn changelog_entities(&self) -> usize {
        self.topic.len().saturating_sub(1)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "municipality".into());
    let interval: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let config = CoreConfig::default();
    let mut core = Standalone::new(config.clone());
    let mut meter = Meter::new(interval);
    let mut alerts: Vec<Alert> = Vec::new();
    match what.as_str() {
        "municipality" => {
            let sim = SimConfig::default();
            println!(
                "default municipality: {} providers, {} clients, {} months; checkpoint every {interval} s",
                sim.providers, sim.clients, sim.months
            );
            let validator = Validator::new(Pseudonymizer::from_secret(&config.pseudonym_secret));
            let mut events = Vec::new();
            simulate(&sim, &mut |e| {
                if let Ok(event) = validator.event(e) {
                    events.push(event);
                }
                Ok(())
            })
            .expect("simulates");
            let from_day: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(90);
            let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
            let start = events.iter().map(arrival).filter(|t| t.0 > 0).min().unwrap_or(EventTime(0));
            let from = EventTime(start.0.div_euclid(86_400) * 86_400 + from_day * 86_400);
            let to = EventTime(from.0 + days * 86_400);
            println!("measured from day {from_day} of the run, {days} days");
            for event in &events {
                let at = arrival(event);
                if at >= to {
                    break;
                }
                meter.before(&core, event, at >= from);
                core.process(event, &mut alerts);
                alerts.clear();
            }
        }
        "national" => {
            let warmup: i32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(35);
            let from_hour: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
            let hours: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
            let scale = NationalScale::default();
            println!(
                "national scale: {} providers, {} clients, {} staff; {warmup} days, then {hours} h measured from \
                 {from_hour}:00; checkpoint every {interval} s",
                scale.providers, scale.clients, scale.staff
            );
            let mut workload = scale.build();
            let first = Day::from_ymd(2026, 1, 1);
            let mut events = Vec::new();
            let measure_from = EventTime(first.plus(warmup).start().0 + from_hour * 3600);
            let measure_to = EventTime(measure_from.0 + hours * 3600);
            let mut hour = i64::MIN;
            for d in 0..=warmup + ((from_hour + hours) / 24) as i32 + 1 {
                let day = first.plus(d);
                if day.ymd().2 == 1 && d > 0 {
                    workload.invoices(day, &mut events);
                }
                workload.day(day, &mut events);
                events.sort_by_key(arrival);
                for event in &events {
                    let at = arrival(event);
                    if at >= measure_to {
                        break;
                    }
                    if at.0.div_euclid(3600) > hour {
                        hour = at.0.div_euclid(3600);
                        let beat = DomainEvent::Heartbeat(at);
                        meter.before(&core, &beat, at >= measure_from);
                        core.process(&beat, &mut alerts);
                    }
                    meter.before(&core, event, at >= measure_from);
                    core.process(event, &mut alerts);
                    alerts.clear();
                }
                events.clear();
                if first.plus(d + 1).start() >= measure_to {
                    break;
                }
            }
        }
        other => {
            eprintln!(
                "usage: checkpoint_volume municipality|national [interval_secs] [warmup_days] [hours] ({other}?)"
            );
            std::process::exit(2);
        }
    }
    meter.report(&core, &config);
}
