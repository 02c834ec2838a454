//! How fast a replay goes: the original pace, N times faster, or as fast as possible.

use std::time::Duration;

/// `--speed`: `1` (the original pace), `10` (ten times faster), or `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each request at its original offset divided by the factor (1: the original pace).
    Times(f64),
    /// No waiting: only the concurrency limit holds requests back.
    Max,
}

impl Default for Pace {
    fn default() -> Self {
        Pace::Times(1.0)
    }
}

/// Slowest and fastest `--speed` factors: past them a time would overflow, or the pace
/// would be `max` in all but name.
const MIN_FACTOR: f64 = 0.001;
const MAX_FACTOR: f64 = 1_000_000.0;

/// The latest a request can be due (a year): `Instant` arithmetic stays in range.
const MAX_DUE: Duration = Duration::from_secs(365 * 24 * 3600);

impl Pace {
    /// Parses `--speed`: a positive factor or `max`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("max") {
            return Ok(Pace::Max);
        }
        let factor = text.trim_end_matches(['x', 'X']);
        match factor.parse::<f64>() {
            Ok(f) if (MIN_FACTOR..=MAX_FACTOR).contains(&f) => Ok(Pace::Times(f)),
            _ => Err(format!(
                "speed {text:?} is neither a factor from {MIN_FACTOR} to {MAX_FACTOR} (1 = the original pace, 10 = ten times faster) nor `max`"
            )),
        }
    }

    /// When a request recorded at `offset` is due, from the start of the replay; `None`
    /// at max speed. Saturates rather than overflow (a slow factor on a long recording).
    pub fn due(self, offset: Duration) -> Option<Duration> {
        match self {
            Pace::Times(f) => Some(
                Duration::try_from_secs_f64(offset.as_secs_f64() / f)
                    .unwrap_or(MAX_DUE)
                    .min(MAX_DUE),
            ),
            Pace::Max => None,
        }
    }
}

impl std::fmt::Display for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pace::Times(x) if (*x - 1.0).abs() < f64::EPSILON => f.write_str("the original pace"),
            Pace::Times(x) => write!(f, "{x}× the original pace"),
            Pace::Max => f.write_str("max speed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse_and_divide_offsets() {
        assert_eq!(Pace::parse("max"), Ok(Pace::Max));
        assert_eq!(Pace::parse("10"), Ok(Pace::Times(10.0)));
        assert_eq!(Pace::parse("2x"), Ok(Pace::Times(2.0)));
        assert!(Pace::parse("0").is_err());
        assert!(Pace::parse("fast").is_err());
        assert_eq!(
            Pace::Times(10.0).due(Duration::from_secs(5)),
            Some(Duration::from_millis(500))
        );
        assert_eq!(Pace::Max.due(Duration::from_secs(5)), None);
    }

    #[test]
    fn a_factor_out_of_range_is_refused_and_due_times_saturate() {
        assert!(Pace::parse("1e-20").is_err(), "would overflow a Duration");
        assert!(Pace::parse("1e9").is_err());
        assert_eq!(Pace::parse("0.001"), Ok(Pace::Times(0.001)));
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(
            Pace::Times(0.001).due(day),
            Some(MAX_DUE),
            "1,000 days: capped"
        );
    }
}
