//! Geography and clock: where clients live, how long driving between them
//! takes, and Swedish local clock times.
//!
//! The map is Umeå's: a city core with suburbs, and the outlying villages
//! (Holmsund, Obbola, Sävar, Tavelsjö) 13–18 km from the centre. Distances
//! are equirectangular (exact enough at these scales); driving time is the
//! straight line times a road factor of 1.35 at 24–60 km/h (faster on longer
//! trips, which use bigger roads) plus four minutes of walking and parking.

use super::rng::Rng;
use tillsyn_core::model::{Day, EventTime};

/// A WGS 84 position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Geo {
    pub lat: f64,
    pub lon: f64,
}

/// Umeå town centre (Rådhustorget).
pub(super) const CENTRE: Geo = Geo { lat: 63.8258, lon: 20.2630 };

const EARTH_M: f64 = 6_371_000.0;
const M_PER_DEG: f64 = EARTH_M * std::f64::consts::PI / 180.0;

impl Geo {
    /// The point `north_m` metres north and `east_m` metres east of this one.
    pub fn offset_m(self, north_m: f64, east_m: f64) -> Geo {
        Geo { lat: self.lat + north_m / M_PER_DEG, lon: self.lon + east_m / (M_PER_DEG * self.lat.to_radians().cos()) }
    }

    /// Distance in metres (equirectangular approximation).
    pub fn dist_m(self, other: Geo) -> f64 {
        let mean_lat = ((self.lat + other.lat) / 2.0).to_radians();
        let x = (other.lon - self.lon).to_radians() * mean_lat.cos();
        let y = (other.lat - self.lat).to_radians();
        EARTH_M * (x * x + y * y).sqrt()
    }

    /// This point moved by GPS-like noise: normal with `sd_m` metres per
    /// axis, cut at `max_m` metres.
    pub fn jitter(self, rng: &mut Rng, sd_m: f64, max_m: f64) -> Geo {
        let n = (rng.normal() * sd_m).clamp(-max_m, max_m);
        let e = (rng.normal() * sd_m).clamp(-max_m, max_m);
        self.offset_m(n, e)
    }
}

/// A residential area with a share of the population.
struct District {
    centre: Geo,
    /// Standard deviation of homes around the centre, metres.
    spread_m: f64,
    /// Share of the municipality's home-care clients.
    weight: f64,
    /// Inside the town (served by town-only providers).
    town: bool,
}

const fn d(lat: f64, lon: f64, spread_m: f64, weight: f64, town: bool) -> District {
    District { centre: Geo { lat, lon }, spread_m, weight, town }
}

const DISTRICTS: [District; 13] = [
    d(63.8258, 20.2630, 900.0, 0.22, true),  // Centrum
    d(63.8300, 20.2850, 600.0, 0.08, true),  // Haga, Öst på stan
    d(63.8480, 20.3130, 700.0, 0.10, true),  // Ersboda
    d(63.8170, 20.3180, 500.0, 0.07, true),  // Ålidhem
    d(63.8300, 20.3270, 500.0, 0.08, true),  // Mariehem
    d(63.8160, 20.2480, 700.0, 0.10, true),  // Teg
    d(63.8350, 20.2050, 700.0, 0.07, true),  // Västerslätt
    d(63.8170, 20.3600, 500.0, 0.04, true),  // Tomtebo
    d(63.7990, 20.1950, 600.0, 0.04, true),  // Röbäck
    d(63.7070, 20.3660, 900.0, 0.09, false), // Holmsund
    d(63.7000, 20.3100, 600.0, 0.03, false), // Obbola
    d(63.8990, 20.5530, 700.0, 0.05, false), // Sävar
    d(63.9600, 20.0700, 800.0, 0.03, false), // Tavelsjö
];

/// A home drawn from the population map. `town_only` providers serve the
/// town districts; `outlying_bias` multiplies the weight of the villages.
pub(super) fn home(rng: &mut Rng, town_only: bool, outlying_bias: f64) -> Geo {
    let weights: Vec<f64> = DISTRICTS
        .iter()
        .map(|d| match (d.town, town_only) {
            (true, _) => d.weight,
            (false, true) => 0.0,
            (false, false) => d.weight * outlying_bias,
        })
        .collect();
    let district = &DISTRICTS[rng.weighted(&weights)];
    let spread = district.spread_m;
    district.centre.offset_m(
        (rng.normal() * spread).clamp(-3.0 * spread, 3.0 * spread),
        (rng.normal() * spread).clamp(-3.0 * spread, 3.0 * spread),
    )
}

/// Seconds to get from one home to another by car, parking included.
pub(super) fn travel_secs(from: Geo, to: Geo) -> i64 {
    let d = from.dist_m(to);
    if d < 60.0 {
        return 60;
    }
    let kmh = 24.0 + 36.0 * (1.0 - (-d / 8_000.0).exp());
    240 + (d * 1.35 / (kmh / 3.6)) as i64
}

/// The UTC instant (seconds) of local clock time `minute` minutes after
/// local midnight starting `day` (may exceed 1440 for the next day), exact
/// across daylight-saving switches.
pub(super) fn at_local(day: Day, minute: i64) -> i64 {
    let day = day.plus(minute.div_euclid(1440) as i32);
    let minute = minute.rem_euclid(1440);
    let midnight = day.start().0;
    let guess = midnight + minute * 60;
    guess + EventTime(midnight).stockholm_offset_secs() - EventTime(guess).stockholm_offset_secs()
}

/// Rounds `t` up to a multiple of `step` seconds (whole local minutes and
/// five-minute marks coincide with UTC ones: Swedish offsets are whole hours).
pub(super) fn ceil_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step + if t.rem_euclid(step) == 0 { 0 } else { step }
}

/// Rounds `t` to the nearest multiple of `step` seconds.
pub(super) fn round_to(t: i64, step: i64) -> i64 {
    (t + step / 2).div_euclid(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillsyn_core::model::Month;

    #[test]
    fn local_clock_is_exact_across_summer_time() {
        // 2026-03-29 is the switch to CEST: 07:00 local is 05:00 UTC.
        let day = Day::from_ymd(2026, 3, 29);
        assert_eq!(EventTime(at_local(day, 7 * 60)).to_string(), "2026-03-29T05:00:00Z");
        assert_eq!(EventTime(at_local(day, 60)).to_string(), "2026-03-29T00:00:00Z");
        let day = Day::from_ymd(2026, 10, 25);
        assert_eq!(EventTime(at_local(day, 7 * 60)).to_string(), "2026-10-25T06:00:00Z");
        // Past midnight rolls into the next day.
        let jan = Month::from_ym(2026, 1).first_day();
        assert_eq!(EventTime(at_local(jan, 24 * 60 + 90)).to_string(), "2026-01-02T00:30:00Z");
    }

    #[test]
    fn villages_are_far_and_driving_is_plausible() {
        let holmsund = DISTRICTS[9].centre;
        let savar = DISTRICTS[11].centre;
        assert!((13_000.0..15_000.0).contains(&CENTRE.dist_m(holmsund)));
        assert!(holmsund.dist_m(savar) > 20_000.0);
        for (a, b) in [(CENTRE, holmsund), (CENTRE, CENTRE.offset_m(800.0, 300.0)), (holmsund, savar)] {
            let kmh = a.dist_m(b) / travel_secs(a, b) as f64 * 3.6;
            assert!(kmh < 45.0, "{kmh}");
        }
    }
}
