//! Value parsers shared by every option, with Mosquitto 2.0.11's error wording.
//!
//! Each parser takes the option's [`Args`] and returns a typed value or the message of a
//! [`super::ConfigError`] (without the `Error: ` prefix; `resolve` adds file and line).
//! Unlike Mosquitto's `atoi`, numbers are strict: `abc` or `12x` is an error naming the
//! option and value, never a silent 0.

use std::time::Duration;

use super::raw::Args;

/// A parse failure: the message for [`super::ConfigError::at`].
pub type ValueResult<T> = Result<T, String>;

/// `Error: Empty <name> value in configuration.`
pub fn empty(name: &str) -> String {
    format!("Empty {name} value in configuration.")
}

/// `Error: Invalid <name> value (<value>).`
pub fn invalid(name: &str, value: impl std::fmt::Display) -> String {
    format!("Invalid {name} value ({value}).")
}

/// The next token, or the "empty value" error.
pub fn word<'a>(name: &str, args: &mut Args<'a>) -> ValueResult<&'a str> {
    args.next_token().ok_or_else(|| empty(name))
}

/// The rest of the line, trimmed, or the "empty value" error (Mosquitto's string options).
pub fn string<'a>(name: &str, args: &mut Args<'a>) -> ValueResult<&'a str> {
    args.rest_trimmed().ok_or_else(|| empty(name))
}

/// `true`/`1` or `false`/`0` (Mosquitto accepts the digits since 2.0).
pub fn boolean(name: &str, args: &mut Args<'_>) -> ValueResult<bool> {
    match word(name, args)? {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(invalid(name, other)),
    }
}

/// A decimal integer with an optional sign, as the raw token and its value.
pub fn integer<'a>(name: &str, args: &mut Args<'a>) -> ValueResult<(&'a str, i64)> {
    let token = word(name, args)?;
    let value = token.parse::<i64>().map_err(|_| invalid(name, token))?;
    Ok((token, value))
}

/// An integer in `min..=max`; out of range is `Invalid <name> value (<value>).`
pub fn ranged(name: &str, args: &mut Args<'_>, min: i64, max: i64) -> ValueResult<i64> {
    let (token, value) = integer(name, args)?;
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(name, token))
    }
}

/// An integer where negative values mean "no limit" (`None`), capped at `max`.
pub fn limit(name: &str, args: &mut Args<'_>, max: i64) -> ValueResult<Option<i64>> {
    let (token, value) = integer(name, args)?;
    if value < 0 {
        Ok(None)
    } else if value > max {
        Err(invalid(name, token))
    } else {
        Ok(Some(value))
    }
}

/// `persistent_client_expiration`: a number with unit `s`, `h`, `d`, `w` (7 days), `m`
/// (30 days) or `y` (365 days), or plain seconds; must be positive.
pub fn duration(name: &str, args: &mut Args<'_>) -> ValueResult<Duration> {
    let token = word(name, args)?;
    let bad = || format!("Invalid {name} duration in configuration.");
    let (digits, unit) = match token.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&token[..at], c),
        _ => (token, 's'),
    };
    let multiplier: u64 = match unit {
        's' => 1,
        'h' => 3600,
        'd' => 86_400,
        'w' => 86_400 * 7,
        'm' => 86_400 * 30,
        'y' => 86_400 * 365,
        _ => return Err(bad()),
    };
    let count: u64 = digits.parse().map_err(|_| bad())?;
    let seconds = count.checked_mul(multiplier).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawLine;

    fn line(rest: &str) -> RawLine {
        RawLine {
            line: 1,
            key: "k".into(),
            rest: rest.into(),
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(boolean("x", &mut line(" true").args()), Ok(true));
        assert_eq!(boolean("x", &mut line(" 0").args()), Ok(false));
        assert_eq!(
            boolean("x", &mut line(" yes").args()),
            Err("Invalid x value (yes).".into())
        );
        assert_eq!(
            boolean("x", &mut line("").args()),
            Err("Empty x value in configuration.".into())
        );
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(ranged("n", &mut line(" 12").args(), 0, 20), Ok(12));
        assert_eq!(
            ranged("n", &mut line(" 12x").args(), 0, 20),
            Err("Invalid n value (12x).".into())
        );
        assert_eq!(
            ranged("n", &mut line(" 21").args(), 0, 20),
            Err("Invalid n value (21).".into())
        );
        assert_eq!(limit("n", &mut line(" -1").args(), 5), Ok(None));
    }

    #[test]
    fn durations() {
        let secs = |s: &str| duration("d", &mut line(s).args()).map(|d| d.as_secs());
        assert_eq!(secs(" 2h"), Ok(7200));
        assert_eq!(secs(" 14d"), Ok(14 * 86_400));
        assert_eq!(secs(" 1w"), Ok(7 * 86_400));
        assert_eq!(secs(" 1m"), Ok(30 * 86_400));
        assert_eq!(secs(" 1y"), Ok(365 * 86_400));
        assert_eq!(secs(" 90s"), Ok(90));
        assert_eq!(secs(" 90"), Ok(90));
        let bad = Err("Invalid d duration in configuration.".to_string());
        assert_eq!(secs(" 5x"), bad);
        assert_eq!(secs(" 0d"), bad);
        assert_eq!(secs(" d"), bad);
    }
}
