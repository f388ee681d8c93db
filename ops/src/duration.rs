//! Every duration a binary of the project takes, from a flag or an
//! environment variable, is written one way: a humantime duration such as
//! `500ms`, `10s`, `4m` or `1h 30m`. A bare number is refused, since it
//! could mean seconds or milliseconds.

use std::time::Duration;

/// `text` as a duration greater than zero.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text:?} has no unit: write e.g. {text}ms or {text}s (a duration such as 500ms, 10s, 4m or 1h)"
        ));
    }
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}): write e.g. 500ms, 10s, 4m or 1h"))?;
    if d.is_zero() {
        return Err(format!("{text:?}: the duration must be greater than zero"));
    }
    Ok(d)
}

/// `d` as [`parse`] reads it back (e.g. `4m`, `1s 500ms`), for help texts
/// and reports.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_style_for_every_duration() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse(" 30s "), Ok(Duration::from_secs(30)));
        assert_eq!(parse("4m"), Ok(Duration::from_secs(240)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "4", "0s", "4 parsecs", "-1s", "s"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("10000").unwrap_err().contains("10000ms"));
    }

    #[test]
    fn huge_values_are_refused_not_wrapped() {
        let e = parse("99999999999999999999h").unwrap_err();
        assert!(e.contains("not a duration"), "{e}");
        let e = parse("18446744073709551615m").unwrap_err();
        assert!(e.contains("not a duration"), "{e}");
    }

    #[test]
    fn formats_read_back() {
        for d in [
            Duration::from_millis(500),
            Duration::from_secs(240),
            Duration::from_millis(1500),
        ] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
