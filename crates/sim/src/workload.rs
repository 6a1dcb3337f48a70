//! A synthetic national-scale workload for benchmarks and the memory
//! measurement: every Swedish municipality's home care at once (by default
//! 290 municipalities, 6,000 providers, 230,000 clients, 100,000 staff),
//! as validated domain events, generated day by day in check-in order.
//!
//! It is not the evaluation simulator ([`crate::municipality`]): there is no fraud
//! and no wire format, only the volume and shape of honest traffic
//! (clients with 1–4 visits a day, staff working consecutive visits with
//! travel time, monthly invoices), so that the state the engine builds has
//! the size it would have in production.

use tillsyn_core::model::{
    ClientKey, Day, DomainEvent, EventId, GeoPoint, Invoice, InvoiceLine, Minutes, MunicipalityCode, Ore, ProviderId,
    RegistrationMethod, ServiceType, StaffKey, Visit,
};

/// Size of the workload.
#[derive(Debug, Clone)]
pub struct NationalScale {
    /// Municipalities.
    pub municipalities: u32,
    /// Providers.
    pub providers: u32,
    /// Clients.
    pub clients: u32,
    /// Staff.
    pub staff: u32,
    /// Seed.
    pub seed: u64,
}

impl Default for NationalScale {
    fn default() -> Self {
        NationalScale { municipalities: 290, providers: 6_000, clients: 230_000, staff: 100_000, seed: 7 }
    }
}

/// SplitMix64: small, fast and deterministic.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Client {
    key: ClientKey,
    home: GeoPoint,
    visits_per_day: u32,
    service: ServiceType,
    /// Performed minutes, by month parity, for honest invoices.
    minutes: [u32; 2],
    /// A hospital stay's admission and discharge days: no visit between.
    away: Option<(i32, i32)>,
}

struct Provider {
    id: ProviderId,
    municipality: MunicipalityCode,
    clients: Vec<Client>,
    staff: Vec<StaffKey>,
}

/// The generated population.
pub struct Workload {
    providers: Vec<Provider>,
    rng: Rng,
    next_event: u64,
}

impl NationalScale {
    /// Builds the population.
    pub fn build(&self) -> Workload {
        let mut rng = Rng(self.seed);
        let municipalities: Vec<(MunicipalityCode, f64, f64)> = (0..self.municipalities)
            .map(|i| {
                let code = MunicipalityCode::parse(&format!("{:02}{:02}", 1 + i % 25, 1 + i / 25)).expect("valid code");
                (code, 55.5 + (i as f64 * 0.37) % 12.0, 12.5 + (i as f64 * 0.53) % 10.0)
            })
            .collect();
        let mut providers: Vec<Provider> = (0..self.providers)
            .map(|p| Provider {
                id: ProviderId::from_nine_digits(556_000_000 + u64::from(p)),
                municipality: municipalities[(p % self.municipalities) as usize].0,
                clients: Vec::new(),
                staff: Vec::new(),
            })
            .collect();
        for c in 0..self.clients {
            let p = rng.below(u64::from(self.providers)) as usize;
            let m = municipalities[(p as u32 % self.municipalities) as usize];
            // Each provider serves a district of about 2 × 2 km.
            let (lat, lon) = (m.1 + (p % 7) as f64 * 0.02, m.2 + (p % 11) as f64 * 0.04);
            let home = GeoPoint {
                lat: lat + (rng.below(2_000) as f64 - 1_000.0) / 111_000.0,
                lon: lon + (rng.below(2_000) as f64 - 1_000.0) / 55_000.0,
            };
            let service = if rng.below(10) < 7 { ServiceType::PersonalCare } else { ServiceType::Service };
            providers[p].clients.push(Client {
                key: ClientKey(u64::from(c) * 2 + 1),
                home,
                visits_per_day: 1 + rng.below(4) as u32,
                service,
                minutes: [0; 2],
                away: None,
            });
        }
        // Staff in proportion to clients, at least one per provider with clients.
        let mut next_staff = 0u64;
        for p in &mut providers {
            let n = (p.clients.len() as u64 * u64::from(self.staff) / u64::from(self.clients.max(1))).max(1);
            p.staff = (0..n)
                .map(|_| {
                    next_staff += 1;
                    StaffKey(next_staff * 2)
                })
                .collect();
        }
        Workload { providers, rng, next_event: 0 }
    }
}

impl Workload {
    /// The reference data known before `first`: a decision per client
    /// (its service, generous enough for its visits: 45 minutes a visit,
    /// 31 days) and a valid register entry per provider, registered the
    /// day before.
    pub fn reference_at_start(&mut self, first: Day, out: &mut Vec<DomainEvent>) {
        use tillsyn_core::model::reference::{Fact, GrantedHours, Permit, PermitStatus, ReferenceRecord, Validity};
        let recorded = first.plus(-1).start();
        let valid = Validity { from: first.plus(-365).start(), to: None };
        for p in 0..self.providers.len() {
            let (provider, municipality) = (self.providers[p].id, self.providers[p].municipality);
            let id = self.event_id("lov");
            out.push(DomainEvent::Reference(ReferenceRecord {
                id,
                recorded_at: recorded,
                retracted: false,
                fact: Fact::Permit(Permit { provider, municipality, status: PermitStatus::Valid, valid }),
            }));
            for c in 0..self.providers[p].clients.len() {
                let (client, service, visits) = {
                    let c = &self.providers[p].clients[c];
                    (c.key, c.service, c.visits_per_day)
                };
                let id = self.event_id("beslut");
                out.push(DomainEvent::Reference(ReferenceRecord {
                    id,
                    recorded_at: recorded,
                    retracted: false,
                    fact: Fact::GrantedHours(GrantedHours {
                        municipality,
                        client,
                        service,
                        minutes_per_month: visits * 45 * 31,
                        valid,
                        provider: None,
                    }),
                }));
            }
        }
    }

    /// The hospital stays registered on `day` (at its start): about 7 % of
    /// the clients over six months, 2–14 days each, registered closed; the
    /// client gets no visit between the admission and discharge days.
    pub fn reference_on(&mut self, day: Day, out: &mut Vec<DomainEvent>) {
        use tillsyn_core::model::reference::{Absence, AbsenceKind, Fact, ReferenceRecord, Validity};
        for p in 0..self.providers.len() {
            for c in 0..self.providers[p].clients.len() {
                // 7 % over 182 days; not again before the discharge.
                if self.rng.below(2_600) != 0 || self.providers[p].clients[c].away.is_some_and(|(_, b)| day.0 <= b) {
                    continue;
                }
                let length = 2 + self.rng.below(13) as i32;
                self.providers[p].clients[c].away = Some((day.0, day.0 + length));
                let (client, municipality) = (self.providers[p].clients[c].key, self.providers[p].municipality);
                let id = self.event_id("abs");
                out.push(DomainEvent::Reference(ReferenceRecord {
                    id,
                    recorded_at: day.start(),
                    retracted: false,
                    fact: Fact::Absence(Absence {
                        municipality,
                        client,
                        kind: AbsenceKind::HospitalStay,
                        period: Validity {
                            from: day.start().plus_secs(10 * 3600),
                            to: Some(day.plus(length).start().plus_secs(12 * 3600)),
                        },
                    }),
                }));
            }
        }
    }

    fn event_id(&mut self, prefix: &str) -> EventId {
        self.next_event += 1;
        EventId::new(&format!("{prefix}-{:012}", self.next_event))
    }

    /// The visits of one local day, in check-in order. Staff work five days
    /// of seven; each works from 07:00 in 40-minute steps (about 30
    /// minutes at a client, the rest travel within the provider's district).
    pub fn day(&mut self, day: Day, out: &mut Vec<DomainEvent>) {
        let start = out.len();
        let day_start = day.start();
        for p in 0..self.providers.len() {
            let (id, municipality) = (self.providers[p].id, self.providers[p].municipality);
            let working: Vec<StaffKey> = self.providers[p]
                .staff
                .iter()
                .enumerate()
                .filter(|(i, _)| (*i as i64 + i64::from(day.0)).rem_euclid(7) < 5)
                .map(|(_, s)| *s)
                .collect();
            let working = if working.is_empty() { self.providers[p].staff.clone() } else { working };
            let staff_n = working.len();
            let mut slot = 0usize;
            for c in 0..self.providers[p].clients.len() {
                // An honest provider does not visit a client in hospital.
                if self.providers[p].clients[c].away.is_some_and(|(a, b)| day.0 > a && day.0 < b) {
                    continue;
                }
                for _ in 0..self.providers[p].clients[c].visits_per_day {
                    let staff_index = slot % staff_n;
                    let step = (slot / staff_n) as i64;
                    slot += 1;
                    if step >= 22 {
                        continue; // beyond 07:00–21:40
                    }
                    let jitter = self.rng.below(5) as i64;
                    let check_in = day_start.plus_secs(7 * 3600 + step * 40 * 60 + jitter * 60);
                    let minutes = 25 + self.rng.below(10) as i64;
                    let method = match self.rng.below(100) {
                        0..=3 => RegistrationMethod::Manual,
                        4..=5 => RegistrationMethod::Edited,
                        6..=9 => RegistrationMethod::MobileApp,
                        _ => RegistrationMethod::Nfc,
                    };
                    let event_id = self.event_id("tr");
                    let staff = working[staff_index];
                    let client = &mut self.providers[p].clients[c];
                    client.minutes[(day.month().0 & 1) as usize] += minutes as u32;
                    out.push(DomainEvent::Visit(Visit {
                        event_id,
                        provider: id,
                        municipality,
                        client: client.key,
                        staff,
                        service: client.service,
                        check_in,
                        check_out: check_in.plus_secs(minutes * 60),
                        method,
                        planned: Some(Minutes(30)),
                        client_home: Some(client.home),
                        check_in_location: None,
                        household: None,
                        reported_at: check_in.plus_secs(minutes * 60 + 120),
                    }));
                }
            }
        }
        out[start..].sort_by_key(|e| e.event_time());
    }

    /// One invoice per provider for the month before `day`, billing each
    /// client's performed minutes of that month, issued at 10:00 on `day`.
    /// Call it before the visits of `day`.
    pub fn invoices(&mut self, day: Day, out: &mut Vec<DomainEvent>) {
        let month = day.month();
        let period = tillsyn_core::model::Month(month.0 - 1);
        for p in 0..self.providers.len() {
            let invoice_id = self.event_id("inv");
            let provider = &mut self.providers[p];
            let parity = (period.0 & 1) as usize;
            let lines: Vec<InvoiceLine> = provider
                .clients
                .iter_mut()
                .filter(|c| c.minutes[parity] > 0)
                .map(|c| {
                    let minutes = std::mem::take(&mut c.minutes[parity]);
                    InvoiceLine {
                        client: c.key,
                        service: c.service,
                        minutes: Minutes(minutes),
                        tariff_per_hour: Ore(42_600),
                        amount: Ore(u64::from(minutes) * 42_600 / 60),
                    }
                })
                .collect();
            let total = Ore(lines.iter().map(|l| l.amount.0).sum());
            out.push(DomainEvent::Invoice(Invoice {
                invoice_id,
                provider: provider.id,
                municipality: provider.municipality,
                period_start: period.start(),
                period_end: period.end(),
                issued_at: day.start().plus_secs(10 * 3600),
                lines,
                total,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_workload_has_the_requested_shape() {
        let mut w = NationalScale { municipalities: 3, providers: 10, clients: 200, staff: 90, seed: 1 }.build();
        let mut events = Vec::new();
        w.day(Day::from_ymd(2026, 3, 2), &mut events);
        let visits = events.len();
        assert!((200..=800).contains(&visits), "{visits} visits for 200 clients");
        assert!(events.windows(2).all(|p| p[0].event_time() <= p[1].event_time()));
        w.invoices(Day::from_ymd(2026, 4, 1), &mut events);
        assert_eq!(events.len() - visits, 10);
    }
}
