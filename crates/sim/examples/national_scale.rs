//! National-scale run of the detection core: every municipality's home care
//! at once, through one engine, for long enough to fill the 90-day windows.
//! Prints throughput and resident memory. Run with
//! `cargo run --release --example national_scale -- [days] [--reference]`
//! (default 100 days; `--reference`: with the reference data loaded, a
//! decision for each of the 230,000 clients, the provider register and
//! hospital stays registered as the days go, `core.reference` on), or
//! `scripts/bench.sh`, which runs it with the criterion benchmarks.

use std::time::Instant;

use tillsyn_core::config::CoreConfig;
use tillsyn_core::engine::Standalone;
use tillsyn_core::model::{Day, DomainEvent};
use tillsyn_sim::workload::NationalScale;

/// (VmRSS, VmHWM) of this process in MiB, from /proc.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let days: i32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let reference = std::env::args().any(|a| a == "--reference");
    let scale = NationalScale::default();
    println!(
        "national scale: {} municipalities, {} providers, {} clients, {} staff, {days} days",
        scale.municipalities, scale.providers, scale.clients, scale.staff
    );
    let mut workload = scale.build();
    let mut config = CoreConfig::default();
    config.reference.enabled = reference;
    let mut core = Standalone::new(config);
    let first = Day::from_ymd(2026, 1, 1);
    let (mut events, mut alerts) = (Vec::new(), Vec::new());
    if reference {
        workload.reference_at_start(first, &mut events);
        println!("reference data       {} versions at the start, hospital stays as the days go", events.len());
    }
    let (mut total, mut alert_count) = (0u64, 0u64);
    let mut busy = std::time::Duration::ZERO;
    let mut by_rule = std::collections::BTreeMap::new();
    for d in 0..days {
        let day = first.plus(d);
        if day.ymd().2 == 1 && d > 0 {
            workload.invoices(day, &mut events);
        }
        if reference {
            workload.reference_on(day, &mut events);
        }
        workload.day(day, &mut events);
        total += events.len() as u64;
        let started = Instant::now();
        // A source heartbeat every hour of event time, as the adapters send
        // them: the staff stage then holds about an hour of visits.
        let mut hour = i64::MIN;
        for event in &events {
            let at = event.event_time();
            if at.0.div_euclid(3600) > hour {
                hour = at.0.div_euclid(3600);
                core.process(&DomainEvent::Heartbeat(at), &mut alerts);
            }
            core.process(event, &mut alerts);
        }
        events.clear();
        busy += started.elapsed();
        alert_count += alerts.len() as u64;
        for a in alerts.drain(..) {
            *by_rule.entry(a.rule.id).or_insert(0u64) += 1;
        }
        if (d + 1) % 10 == 0 {
            let (rss, _) = memory_mib();
            println!("  day {:>3}: {total:>11} events, RSS {rss:>7.0} MiB", d + 1);
        }
    }
    drop(events);
    let (rss, hwm) = memory_mib();
    let size = core.state_size();
    if reference {
        let (facts, versions) = core.reference.size();
        println!(
            "reference table      {facts} facts, {versions} versions, known through {:?}",
            core.reference.known_through()
        );
    }
    println!("events processed     {total}");
    println!("core time            {:.1} s", busy.as_secs_f64());
    println!(
        "throughput           {:.2} M events/s (one core, events pre-built)",
        total as f64 / busy.as_secs_f64() / 1e6
    );
    println!("alerts               {alert_count} {by_rule:?}");
    println!(
        "state                {} providers, {} provider-client pairs, {} staff, {} open episodes",
        size.providers, size.clients, size.staff, size.open_episodes
    );
    let (days_published, bytes) = core.published_peer_days();
    let per_day = bytes as f64 / days_published.max(1) as f64;
    println!(
        "global peer table    {days_published} days published, {:.0} kB a day (JSON on the peer-days topic); \
         at most {} days kept: {:.1} MB",
        per_day / 1e3,
        tillsyn_core::baseline::GlobalPeerTable::KEPT_DAYS,
        per_day * tillsyn_core::baseline::GlobalPeerTable::KEPT_DAYS as f64 / 1e6
    );
    println!("resident memory      {rss:.0} MiB (peak {hwm:.0} MiB, including one day of generated events)");
    let target = 2048.0;
    println!("target               <= {target:.0} MiB: {}", if rss <= target { "met" } else { "NOT met" });
}
