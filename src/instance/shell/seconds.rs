//! Time arguments of shell commands: `sleep 1.5`, `curl -m 5`, `ping -W 2`, `wget -T 10`,
//! `nc -w 3`.
//!
//! Every command that takes a number of seconds reads it here, so that no text a learner
//! types can reach `Duration::from_secs_f64` with a value it panics on (NaN, a negative
//! number, infinity, or more seconds than a `Duration` holds). Each command words the
//! refusal the way the real tool does; this module only classifies the text.

use std::time::Duration;

/// The longest finite duration handed out: about 31 years, far beyond any timeout a
/// command waits through, and far below what `Duration` can hold.
const MAX_SECS: f64 = 1e9;

/// A number of seconds as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seconds {
    /// A finite, non-negative amount.
    Finite(Duration),
    /// `inf`, `infinity`, or a number too large to wait for: "forever".
    Forever,
}

impl Seconds {
    /// The duration, with "forever" cut to `cap`.
    pub fn capped(self, cap: Duration) -> Duration {
        match self {
            Seconds::Finite(d) => d.min(cap),
            Seconds::Forever => cap,
        }
    }
}

/// Why a time argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSeconds {
    /// Not a number at all, or `nan`.
    NotANumber,
    /// Below zero (`-1`, `-inf`).
    Negative,
}

/// Parses a number of seconds (`5`, `0.25`, `1e3`, `inf`). NaN and negative values are
/// refused; zero is allowed (the caller decides whether it makes sense).
pub fn parse(text: &str) -> Result<Seconds, BadSeconds> {
    let value: f64 = text.trim().parse().map_err(|_| BadSeconds::NotANumber)?;
    if value.is_nan() {
        return Err(BadSeconds::NotANumber);
    }
    if value < 0.0 {
        return Err(BadSeconds::Negative);
    }
    if value > MAX_SECS {
        // Includes +infinity.
        return Ok(Seconds::Forever);
    }
    // `value` is now a finite number in 0..=MAX_SECS (a `-0.0` compares equal to zero and
    // converts to zero), which `from_secs_f64` accepts.
    Ok(Seconds::Finite(Duration::from_secs_f64(value)))
}

/// Like [`parse`], for tools that have no notion of "forever": infinity is refused as
/// not being a usable number.
pub fn parse_finite(text: &str) -> Result<Duration, BadSeconds> {
    match parse(text)? {
        Seconds::Finite(d) => Ok(d),
        Seconds::Forever => Err(BadSeconds::NotANumber),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_numbers_become_durations() {
        assert_eq!(
            parse("1.5"),
            Ok(Seconds::Finite(Duration::from_millis(1500)))
        );
        assert_eq!(parse(" 2 "), Ok(Seconds::Finite(Duration::from_secs(2))));
        assert_eq!(parse("0"), Ok(Seconds::Finite(Duration::ZERO)));
        assert_eq!(parse("-0"), Ok(Seconds::Finite(Duration::ZERO)));
    }

    #[test]
    fn values_that_panic_in_from_secs_f64_are_classified() {
        for t in ["nan", "NaN", "-nan", "abc", "", "1s"] {
            assert_eq!(parse(t), Err(BadSeconds::NotANumber), "{t}");
        }
        for t in ["-1", "-0.5", "-inf"] {
            assert_eq!(parse(t), Err(BadSeconds::Negative), "{t}");
        }
        for t in ["inf", "infinity", "1e300"] {
            assert_eq!(parse(t), Ok(Seconds::Forever), "{t}");
            assert_eq!(parse_finite(t), Err(BadSeconds::NotANumber), "{t}");
        }
        assert_eq!(
            Seconds::Forever.capped(Duration::from_secs(3600)),
            Duration::from_secs(3600)
        );
    }
}
