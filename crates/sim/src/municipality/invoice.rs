//! Monthly invoices.
//!
//! The ledger sums each provider's performed minutes per month (of the
//! check-in), client and service type. Between day 3 and 8 of the next
//! month every provider issues one invoice for the local calendar month:
//! one line per client and service type, minutes = performed minutes (or,
//! at providers that round, each visit rounded up to five minutes),
//! amount = minutes × tariff / 60 rounded to the öre. Invoice-side fraud
//! (patterns 1, 7 and 8) is applied here.

use std::collections::BTreeMap;

use anyhow::Result;

use super::engine::World;
use super::geo::at_local;
use super::output::{self, Outbox};
use super::rng::{Rng, tag};
use super::schedule::Rec;
use tillsyn_core::model::{EventTime, Month, ServiceType};
use tillsyn_core::proto::v1 as wire;

/// Tariff in öre per hour: the municipality's LOV compensation for home care
/// (one hourly rate for care, service and escort; double staffing is paid per
/// staff member), the night patrol's internal price, and the national
/// personal-assistance rate.
pub(super) fn tariff(s: ServiceType) -> i64 {
    match s {
        ServiceType::PersonalCare | ServiceType::Service | ServiceType::Escort | ServiceType::DoubleStaffing => 42_600,
        ServiceType::NightPatrol => 52_000,
        ServiceType::PersonalAssistance => 33_300,
    }
}

/// Minutes of one client and service in one month.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Acc {
    /// Sum of whole minutes of the visits.
    pub performed: i64,
    /// Sum of the visits rounded up to five minutes.
    pub rounded: i64,
}

/// Minutes of one provider per month, then per (client, service index).
type ProviderLedger = BTreeMap<Month, BTreeMap<(usize, usize), Acc>>;

/// Performed minutes per provider, month, client and service.
pub(super) struct Ledger {
    acc: Vec<ProviderLedger>,
    seq: u64,
    /// Prefix of invoice ids.
    prefix: String,
    /// Invoices issued.
    pub issued: u64,
}

impl Ledger {
    pub fn new(providers: usize, prefix: &str) -> Self {
        Ledger { acc: vec![BTreeMap::new(); providers], seq: 0, prefix: prefix.to_string(), issued: 0 }
    }

    /// Records a time report.
    pub fn add(&mut self, rec: &Rec) {
        let minutes = (rec.check_out - rec.check_in) / 60;
        let month = EventTime(rec.check_in).month();
        let a = self.acc[rec.provider].entry(month).or_default().entry((rec.client, rec.service.index())).or_default();
        a.performed += minutes;
        a.rounded += (minutes + 4) / 5 * 5;
    }

    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}inv-{:06}", self.prefix, self.seq)
    }
}

/// A line before pricing.
struct Draft {
    client_ref: String,
    service: ServiceType,
    minutes: i64,
}

fn wire_line(d: &Draft) -> wire::InvoiceLine {
    let tariff = tariff(d.service);
    wire::InvoiceLine {
        client_ref: d.client_ref.clone(),
        service_type: output::service(d.service),
        minutes: d.minutes,
        tariff_ore_per_hour: tariff,
        amount_ore: (d.minutes * tariff + 30) / 60,
    }
}

fn wire_invoice(w: &World, id: String, p: usize, month: Month, issued_at: i64, lines: &[Draft]) -> wire::Event {
    let lines: Vec<wire::InvoiceLine> = lines.iter().map(wire_line).collect();
    let total_ore = lines.iter().map(|l| l.amount_ore).sum();
    wire::Event {
        kind: Some(wire::event::Kind::Invoice(wire::Invoice {
            invoice_id: id,
            provider_id: w.providers[p].id.clone(),
            municipality_code: w.cfg.municipality_code.clone(),
            period_start: Some(output::ts(month.start().0)),
            period_end: Some(output::ts(month.end().0)),
            issued_at: Some(output::ts(issued_at)),
            lines,
            total_ore,
        })),
    }
}

fn service_order(d: &Draft) -> (String, usize) {
    (d.client_ref.clone(), d.service.index())
}

/// Issues every provider's invoice for `month`.
pub(super) fn issue(w: &mut World, ledger: &mut Ledger, month: Month, out: &mut Outbox) -> Result<()> {
    for p in 0..w.providers.len() {
        let acc = ledger.acc[p].remove(&month).unwrap_or_default();
        let mut rng = Rng::new(w.cfg.seed, &[tag::INVOICE, p as u64, month.0 as u64]);
        let day_offset = (i64::from(w.providers[p].issue_day) - 1 + rng.int(-1, 1)).clamp(2, 7);
        let issued_at = at_local(month.next().first_day().plus(day_offset as i32), rng.int(7 * 60, 16 * 60));
        let rounds = w.providers[p].rounds_up;
        let mut billed: Vec<(Draft, usize)> = Vec::with_capacity(acc.len());
        for (&(c, s), a) in &acc {
            let minutes = if rounds { a.rounded } else { a.performed };
            if minutes > 0 {
                billed.push((Draft { client_ref: w.clients[c].r.clone(), service: ServiceType::ALL[s], minutes }, c));
            }
        }
        billed.sort_by_key(|(d, _)| service_order(d));
        let (mut lines, billed_clients): (Vec<Draft>, Vec<usize>) = billed.into_iter().unzip();
        let mut supplementary: Vec<Draft> = Vec::new();
        let scenarios: Vec<usize> = (0..w.scenarios.len())
            .filter(|&s| w.scenarios[s].provider == p && w.scenarios[s].month <= month)
            .filter(|&s| w.scenarios[s].end.is_none_or(|e| month.start().0 < e))
            .collect();
        for s in scenarios {
            let sc = &w.scenarios[s];
            match sc.pattern {
                1 => {
                    // Invoiced hours above performed for a stable share of
                    // clients (at least one, even at a tiny provider).
                    let eligible: Vec<(f64, usize)> = lines
                        .iter()
                        .zip(&billed_clients)
                        .enumerate()
                        .filter(|(_, (l, _))| {
                            matches!(
                                l.service,
                                ServiceType::PersonalCare | ServiceType::Service | ServiceType::PersonalAssistance
                            )
                        })
                        .map(|(i, (_, &c))| (super::fraud::client_unit(w.cfg.seed, s, c), i))
                        .collect();
                    let floor = eligible.iter().map(|e| e.0).fold(f64::INFINITY, f64::min);
                    let mut hit = false;
                    for &(u, i) in &eligible {
                        if u < sc.strength || u == floor {
                            // The scenario's mean excess, 0.75–1.25 times it
                            // by client.
                            let excess = (sc.strength2 - 1.0) * (0.75 + 0.5 * (u / sc.strength).min(1.0));
                            let factor = 1.0 + excess;
                            lines[i].minutes = ((lines[i].minutes as f64 * factor / 5.0).ceil() * 5.0) as i64;
                            hit = true;
                        }
                    }
                    if hit {
                        w.scenarios[s].observe(issued_at);
                    }
                }
                7 => {
                    let phantoms = super::fraud::phantoms(w, s, month, lines.len(), &mut rng);
                    if !phantoms.is_empty() {
                        for (client_ref, service, minutes) in phantoms {
                            lines.push(Draft { client_ref, service, minutes });
                        }
                        lines.sort_by_key(service_order);
                        w.scenarios[s].observe(issued_at);
                    }
                }
                8 => {
                    let n = lines.len();
                    let mut copies = Vec::new();
                    for line in lines.iter().take(n) {
                        if rng.chance(sc.strength) {
                            copies.push(Draft {
                                client_ref: line.client_ref.clone(),
                                service: line.service,
                                minutes: line.minutes,
                            });
                        }
                    }
                    if copies.is_empty() && n > 0 {
                        let line = &lines[rng.below(n)];
                        copies.push(Draft {
                            client_ref: line.client_ref.clone(),
                            service: line.service,
                            minutes: line.minutes,
                        });
                    }
                    if copies.is_empty() {
                        continue;
                    }
                    if sc.variant == 0 {
                        // Appended to the same invoice, as "corrections".
                        lines.extend(copies);
                        w.scenarios[s].observe(issued_at);
                    } else {
                        supplementary.extend(copies);
                    }
                }
                11 => {
                    let absent = w.absent_lines(s, month);
                    if !absent.is_empty() {
                        for (client_ref, service, minutes) in absent {
                            lines.push(Draft { client_ref, service, minutes });
                        }
                        lines.sort_by_key(service_order);
                        w.scenarios[s].observe(issued_at);
                    }
                }
                _ => {}
            }
        }
        if lines.is_empty() {
            continue;
        }
        let id = ledger.next_id();
        out.push(issued_at, wire_invoice(w, id, p, month, issued_at, &lines));
        ledger.issued += 1;
        if !supplementary.is_empty() {
            // A second invoice for the same period, a few days later.
            let at = issued_at + rng.int(4, 10) * 86_400 + rng.int(-3600, 3600);
            let id = ledger.next_id();
            out.push(at, wire_invoice(w, id, p, month, at, &supplementary));
            ledger.issued += 1;
            if let Some(s) = (0..w.scenarios.len())
                .find(|&s| w.scenarios[s].provider == p && w.scenarios[s].pattern == 8 && w.scenarios[s].variant == 1)
            {
                w.scenarios[s].observe(at);
            }
        }
    }
    Ok(())
}
