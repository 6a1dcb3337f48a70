//! Range checks for rule parameters. Each returns an error that names the
//! field; the registry prefixes it with `rules.<rule section>.`, so a
//! message reads `rules.impossible_travel.max_speed_kmh must be > 0`.

/// A finite value `> 0`.
pub fn positive(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(format!("{field} must be > 0 (is {value})")) }
}

/// A count `> 0`.
pub fn positive_count(field: &str, value: u64) -> Result<(), String> {
    if value > 0 { Ok(()) } else { Err(format!("{field} must be > 0")) }
}

/// A finite value `>= 0`.
pub fn non_negative(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 { Ok(()) } else { Err(format!("{field} must be >= 0 (is {value})")) }
}

/// A share in `[0, 1]`.
pub fn share(field: &str, value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err(format!("{field} must be within [0, 1] (is {value})")) }
}

/// A value within `[min, max]`.
pub fn within(field: &str, value: f64, min: f64, max: f64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("{field} must be within [{min}, {max}] (is {value})"))
    }
}

/// A window of days within `1..=365`.
pub fn days(field: &str, value: u32) -> Result<(), String> {
    if (1..=365).contains(&value) { Ok(()) } else { Err(format!("{field} must be within 1..=365 days (is {value})")) }
}

/// Severity cut-offs (or limits) that must be strictly ascending, e.g.
/// medium < high < critical. Names the first field out of order.
pub fn ascending(cutoffs: &[(&str, f64)]) -> Result<(), String> {
    for pair in cutoffs.windows(2) {
        let ((lower_name, lower), (name, value)) = (pair[0], pair[1]);
        if value.is_nan() || value <= lower {
            return Err(format!("{name} must be > {lower_name} ({value} <= {lower})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field() {
        assert_eq!(positive("max_speed_kmh", 0.0).unwrap_err(), "max_speed_kmh must be > 0 (is 0)");
        assert!(positive("x", f64::NAN).is_err());
        assert!(share("min_share", 1.5).unwrap_err().starts_with("min_share "));
        assert!(days("window_days", 0).is_err());
        assert_eq!(
            ascending(&[("high_z", 7.0), ("critical_z", 7.0)]).unwrap_err(),
            "critical_z must be > high_z (7 <= 7)"
        );
        assert_eq!(ascending(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]), Ok(()));
    }
}
