//! `.env` in the current directory, as Spin reads it for variables: only
//! the `SPIN_VARIABLE_*` keys, and only in the forms that mean the same to
//! Spin's dotenv parser.

use super::variables::ENV_PREFIX;
use std::collections::HashMap;
use std::path::Path;
use wasmtime::error::Context;
use wasmtime::{Result, bail};

/// The `SPIN_VARIABLE_*` entries of a dotenv file; other keys are skipped.
/// Only the forms that mean the same to Spin's dotenv parser are read:
/// `KEY=value`, `KEY='value'` and `KEY="value"`, optionally after `export `
/// and before ` # comment`. Any other form of a `SPIN_VARIABLE_*` value
/// (spaces, `$`, `\`, a line break) is refused, naming its line.
fn parse(text: &str) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !key.starts_with(ENV_PREFIX) {
            continue;
        }
        let Some(value) = plain_dotenv_value(raw.trim()) else {
            bail!(
                "line {}: runtime-shim reads {key} only as value, 'value' or \"value\" (no $ substitution, \\ escapes, line breaks or unquoted spaces)",
                i + 1
            );
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// A dotenv value in one of the plain forms, or `None`.
fn plain_dotenv_value(raw: &str) -> Option<String> {
    let (value, rest) = match raw.chars().next() {
        Some(q @ ('\'' | '"')) => {
            let end = 1 + raw[1..].find(q)?;
            let value = &raw[1..end];
            if q == '"' && value.contains(['$', '\\']) {
                return None;
            }
            (value, &raw[end + 1..])
        }
        _ => {
            let end = raw.find(char::is_whitespace).unwrap_or(raw.len());
            let value = &raw[..end];
            if value.contains(['$', '\\', '\'', '"']) {
                return None;
            }
            (value, &raw[end..])
        }
    };
    let comment_or_nothing =
        rest.is_empty() || (rest.starts_with(char::is_whitespace) && rest.trim_start().starts_with('#'));
    comment_or_nothing.then(|| value.to_string())
}

/// Reads `path` as `parse` does; a missing file is empty.
pub fn read(path: &Path) -> Result<HashMap<String, String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).with_context(|| format!("in {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_dotenv_values_are_read() {
        let v = plain_dotenv_value;
        assert_eq!(v("plain").as_deref(), Some("plain"));
        assert_eq!(v("").as_deref(), Some(""));
        assert_eq!(v("a#b # comment").as_deref(), Some("a#b"));
        assert_eq!(v("'single $x \\ \"'").as_deref(), Some("single $x \\ \""));
        assert_eq!(v("\"dq 'x' #\" # c").as_deref(), Some("dq 'x' #"));
        for refused in [
            "a b",
            "$HOME",
            "${HOME}",
            "\"$HOME\"",
            "\"a\\nb\"",
            "'open",
            "\"open",
            "'a'b",
            "a\\b",
        ] {
            assert_eq!(v(refused), None, "{refused}");
        }
    }
}
