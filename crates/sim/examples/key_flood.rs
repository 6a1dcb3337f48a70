//! A flood of valid records with ever new keys: 1,000,000 time reports over
//! ten days through the one-partition topology with a source heartbeat
//! every hour, each with a new client and staff reference and either a
//! new (valid) organisation number (`providers`) or one of 100 providers
//! (`references`). Prints what was applied and rejected, the state held,
//! the checkpoint's size and the peak resident memory, under the default
//! caps (`core.limits`) or, with `unlimited`, caps of ten million. Run with
//! `cargo run --release -p tillsyn-sim --example key_flood -- [providers|references] [unlimited]`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tillsyn_core::config::{CoreConfig, StateLimits};
use tillsyn_core::engine::{Disposition, Standalone};
use tillsyn_core::model::{
    ClientKey, Day, DomainEvent, EventId, EventTime, MunicipalityCode, ProviderId, RegistrationMethod, ServiceType,
    StaffKey, Visit,
};

const VISITS: u64 = 1_000_000;
const DAYS: u64 = 10;

/// VmHWM of this process in MiB, from /proc.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let unlimited = args.iter().any(|a| a == "unlimited");
    let new_providers = !args.iter().any(|a| a == "references");
    let mut config = CoreConfig::default();
    if unlimited {
        let n = 10_000_000;
        config.limits = StateLimits {
            providers: n,
            clients_per_provider: n,
            clients: n,
            pending_invoices_per_provider: n,
            staff: n,
        };
    }
    let limits = config.limits.clone();
    let mut core = Standalone::new(config);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let start = Day::from_ymd(2026, 3, 2).start().0 + 7 * 3600;
    let municipality = MunicipalityCode::parse("2480").expect("valid code");
    let (mut alerts, mut applied, mut rejected) = (Vec::new(), 0u64, 0u64);
    let mut hour = i64::MIN;
    let started = std::time::Instant::now();
    for i in 0..VISITS {
        let check_in = EventTime(start + (i * DAYS * 86_400 / VISITS) as i64);
        if check_in.0.div_euclid(3600) > hour {
            hour = check_in.0.div_euclid(3600);
            core.process(&DomainEvent::Heartbeat(check_in), &mut alerts);
        }
        let visit = Visit {
            event_id: EventId::new(&format!("flood-{i}")),
            provider: ProviderId::from_nine_digits(
                556_000_000
                    + if new_providers { rng.random_range(0..4_000_000u64) } else { rng.random_range(0..100u64) },
            ),
            municipality,
            client: ClientKey(rng.random()),
            staff: StaffKey(rng.random()),
            service: ServiceType::PersonalCare,
            check_in,
            check_out: check_in.plus_secs(1_800),
            method: RegistrationMethod::Nfc,
            planned: None,
            client_home: None,
            check_in_location: None,
            household: None,
            reported_at: check_in.plus_secs(1_900),
        };
        match core.process(&DomainEvent::Visit(visit), &mut alerts) {
            Disposition::Applied => applied += 1,
            _ => rejected += 1,
        }
        alerts.clear();
    }
    let size = core.state_size();
    let mut checkpoint = 0usize;
    let mut count = |_, bytes: Vec<u8>| checkpoint += bytes.len();
    core.engine.entities(&mut count);
    core.staff.entities(&mut count);
    println!("caps                 {limits:?}");
    let what = if new_providers {
        "a new provider, client and staff member"
    } else {
        "a new client and staff member of 100 providers"
    };
    println!("visits               {VISITS} over {DAYS} days, every one {what}");
    println!("applied              {applied}");
    println!("dead-lettered        {rejected} ({} at a cap of the provider stage)", core.engine.stats().over_limit);
    let staff = core.staff.stats();
    println!(
        "staff stage          {} visits taken, {} of new staff left out at its cap",
        staff.visits, staff.over_limit
    );
    println!("state                {} providers, {} clients, {} staff", size.providers, size.clients, size.staff);
    println!("checkpoint           {:.1} MiB (both stages)", checkpoint as f64 / (1024.0 * 1024.0));
    println!("peak resident memory {:.0} MiB", peak_mib());
    println!("elapsed              {:.1} s", started.elapsed().as_secs_f64());
}
