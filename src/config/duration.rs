//! Durations as Istio writes them (`timeout: 1.5s`, `fixedDelay: 250ms`): the one parser
//! that `check` and the route table share, so they cannot disagree on what a field means.

use std::time::Duration;

/// Why a duration field could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{text}`; write it as 1.5s, 250ms, 1m or 1h")]
pub struct DurationError {
    /// The text as written.
    pub text: String,
}

/// Parses a duration: a decimal number and a unit (`h`, `m`, `s`, `ms`, `us`, `ns`), e.g.
/// `1.5s`, `250ms`, `1m`, `1h`, `10us`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = || DurationError {
        text: text.to_owned(),
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(error)?;
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| error())?;
    let secs = match unit {
        "h" => n * 3600.0,
        "m" => n * 60.0,
        "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        _ => return Err(error()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["5", "s", "5 days", ""] {
            let err = parse_duration(bad).unwrap_err();
            assert_eq!(err.text, bad);
            assert!(err.to_string().contains("250ms"), "{err}");
        }
    }
}
