//! Durations as Istio reads them (`timeout: 1.5s`, `fixedDelay: 250ms`, `interval: 1m30s`):
//! the one parser that `check` and the route table share, so they cannot disagree on what a
//! field means or on which values Istio refuses.
//!
//! Istio reads a duration field with Go's `time.ParseDuration` (the CRD's CEL rule
//! `duration(self) >= duration('1ms')` and the legacy jsonpb decoder both do), then its
//! validation (`agent.ValidateDuration`) refuses anything under 1 ms or finer than a
//! millisecond. [`parse_duration`] applies all three; [`parse_go_duration`] only the syntax,
//! for the few fields Istio checks differently (a TCP idle timeout of `0s` means "none").

use std::time::Duration;

/// Why a duration field is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{text}`: {problem}")]
pub struct DurationError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub problem: DurationProblem,
}

/// What is wrong with a duration, in Istio's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationProblem {
    /// Not Go duration syntax (a number and a unit, repeated: `1.5s`, `250ms`, `1h30m`).
    #[error("write it as a number and a unit (h, m, s, ms, us, ns), e.g. 1.5s, 250ms, 1m30s")]
    Syntax,
    /// More than Go's limit of about 292 years.
    #[error("it is longer than Go's limit of about 292 years")]
    Overflow,
    /// Under one millisecond, zero or negative: Istio's `duration must be greater than 1ms`.
    #[error("Istio requires at least 1ms")]
    BelowOneMillisecond,
    /// A fraction of a millisecond: Istio's `only durations to ms precision are supported`.
    #[error("Istio supports durations to millisecond precision only")]
    FinerThanMillisecond,
}

/// Parses a duration and applies Istio's rules: Go syntax, at least 1 ms, whole milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = |problem| DurationError {
        text: text.to_owned(),
        problem,
    };
    let nanos = parse_go_duration(text)?;
    let nanos = u64::try_from(nanos).map_err(|_| error(DurationProblem::BelowOneMillisecond))?;
    if nanos < 1_000_000 {
        return Err(error(DurationProblem::BelowOneMillisecond));
    }
    if nanos % 1_000_000 != 0 {
        return Err(error(DurationProblem::FinerThanMillisecond));
    }
    Ok(Duration::from_nanos(nanos))
}

/// Parses Go's duration syntax (`time.ParseDuration`) into signed nanoseconds: an optional
/// sign, then one or more decimal numbers each with a unit (`ns`, `us`, `µs`, `μs`, `ms`,
/// `s`, `m`, `h`); a bare `0` is zero. No spaces anywhere.
pub fn parse_go_duration(text: &str) -> Result<i64, DurationError> {
    let error = |problem| DurationError {
        text: text.to_owned(),
        problem,
    };
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(error(DurationProblem::Syntax));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, after) = duration_term(rest).ok_or_else(|| error(DurationProblem::Syntax))?;
        total = total.saturating_add(nanos);
        rest = after;
    }
    // Go's limit: the magnitude must fit an int64 of nanoseconds (the minimum included).
    let limit = if negative {
        1u128 << 63
    } else {
        (1u128 << 63) - 1
    };
    if total > limit {
        return Err(error(DurationProblem::Overflow));
    }
    let magnitude = i128::try_from(total).map_err(|_| error(DurationProblem::Overflow))?;
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed).map_err(|_| error(DurationProblem::Overflow))
}

/// One `[0-9]*(\.[0-9]*)?unit` term: its nanoseconds and the text after it.
fn duration_term(text: &str) -> Option<(u128, &str)> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let int_len = digits(text);
    let (int_part, mut rest) = text.split_at(int_len);
    let mut frac_part = "";
    if let Some(after_dot) = rest.strip_prefix('.') {
        let frac_len = digits(after_dot);
        frac_part = &after_dot[..frac_len];
        rest = &after_dot[frac_len..];
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let unit_len = rest
        .char_indices()
        .find(|(_, c)| *c == '.' || c.is_ascii_digit())
        .map_or(rest.len(), |(i, _)| i);
    let (unit, rest) = rest.split_at(unit_len);
    let scale: u128 = match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    // Twenty digits already exceed Go's int64 limit in any unit; the caller refuses the sum.
    if int_part.len() > 20 {
        return Some((u128::MAX, rest));
    }
    let whole: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    // Go keeps the fraction's leading digits while they fit and truncates the product.
    let frac_digits = &frac_part[..frac_part.len().min(18)];
    let fraction: u128 = if frac_digits.is_empty() {
        0
    } else {
        frac_digits.parse().ok()?
    };
    let denominator = 10u128.pow(u32::try_from(frac_digits.len()).ok()?);
    Some((whole * scale + fraction * scale / denominator, rest))
}

/// Whether a duration is a whole number of seconds (`corsPolicy.maxAge` must be).
pub fn is_whole_seconds(d: Duration) -> bool {
    d.subsec_nanos() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_istio_accepts() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_duration("+1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5.s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1000000us"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn durations_istio_refuses_say_why() {
        for (bad, problem) in [
            ("5", DurationProblem::Syntax),
            ("s", DurationProblem::Syntax),
            ("5 days", DurationProblem::Syntax),
            ("", DurationProblem::Syntax),
            (" 1s", DurationProblem::Syntax),
            ("1d", DurationProblem::Syntax),
            (".s", DurationProblem::Syntax),
            ("0s", DurationProblem::BelowOneMillisecond),
            ("0", DurationProblem::BelowOneMillisecond),
            ("999us", DurationProblem::BelowOneMillisecond),
            ("-1s", DurationProblem::BelowOneMillisecond),
            ("1.0015s", DurationProblem::FinerThanMillisecond),
            ("1ms500us", DurationProblem::FinerThanMillisecond),
            ("3000000h", DurationProblem::Overflow),
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert_eq!(err.text, bad);
            assert_eq!(err.problem, problem, "{bad}");
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn go_syntax_alone() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-0"), Ok(0));
        assert_eq!(parse_go_duration("0s"), Ok(0));
        assert_eq!(parse_go_duration("-1.5h"), Ok(-5_400_000_000_000));
        assert_eq!(parse_go_duration("1\u{b5}s"), Ok(1_000));
        assert_eq!(parse_go_duration("1\u{3bc}s"), Ok(1_000));
        assert_eq!(parse_go_duration("2562047h47m16.854775807s"), Ok(i64::MAX));
        assert!(parse_go_duration("2562047h47m16.854775808s").is_err());
        assert!(is_whole_seconds(Duration::from_secs(3)));
        assert!(!is_whole_seconds(Duration::from_millis(1500)));
    }
}
