//! Conditional GET of `/rates` (RFC 9110): the strong `ETag` of an answer
//! and whether a request's `If-None-Match` matches it. Transport-free, as
//! the rest of the contract (docs/api.md, "Conditional GET").

use crate::api::Form;
use crate::rates::Rate;

/// Bumped whenever the same rates would be written as other bytes, so that
/// no tag of an older body matches a newer one.
const BODY_FORMAT: u8 = 1;

/// The strong `ETag` of a 200 of `/rates` (quotes included): a hash of
/// what its body is made of, the form and each rate's pair, price and
/// timestamp. No clock time enters it, so every instance serving the same
/// rates gives the same tag, and a new snapshot changes the tag of every
/// pair whose rate it changes.
pub fn etag(form: Form, rates: &[Rate]) -> String {
    // FNV-1a, 64 bits: stable across builds and hosts, and enough to tell
    // one answer of a pair from its next.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&[BODY_FORMAT, form as u8]);
    for r in rates {
        eat(r.pair.from.code().as_bytes());
        eat(r.pair.to.code().as_bytes());
        eat(&r.price.to_bits().to_le_bytes());
        eat(&r.timestamp.unix_millis().to_le_bytes());
    }
    format!("\"r{BODY_FORMAT}-{h:016x}\"")
}

/// Whether an `If-None-Match` value (the field's lines joined by commas)
/// matches `etag`, by RFC 9110 §13.1.2: `*` matches any answer, a list
/// matches when one of its entity tags equals `etag` by the weak comparison
/// (`W/` ignored). A malformed list matches nothing, so the client gets the
/// whole answer.
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    let value = if_none_match.trim_matches([' ', '\t']);
    if value == "*" {
        return true;
    }
    let want = etag.trim_start_matches("W/");
    let mut rest = value;
    let mut matched = false;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return matched;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(after_quote) = tag.strip_prefix('"') else {
            return false;
        };
        let Some(end) = after_quote.find('"') else {
            return false;
        };
        let opaque = &tag[..end + 2];
        if opaque.bytes().any(|b| b < 0x21 || b == 0x7f) {
            return false;
        }
        matched |= opaque == want;
        rest = &after_quote[end + 1..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t', ','])) {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pair, Timestamp};

    fn p(s: &str) -> Pair {
        Pair::parse(s).unwrap()
    }

    fn rate(pair: &str, price: f64, stamp: &str) -> Rate {
        Rate {
            pair: p(pair),
            price,
            timestamp: Timestamp::parse(stamp).unwrap(),
        }
    }

    #[test]
    fn etags_follow_the_rates_and_nothing_else() {
        let jpy = rate("USDJPY", 0.71, "2026-11-24T10:00:00.1Z");
        let gbp = rate("EURGBP", 0.84, "2026-11-24T10:00:00.1Z");
        let tag = etag(Form::Single, &[jpy]);
        assert_eq!(tag, etag(Form::Single, &[jpy]), "the same rates, the same tag");
        assert!(
            tag.starts_with("\"r1-") && tag.ends_with('"') && tag.len() == 21,
            "{tag}"
        );
        // A new snapshot that changes the rate changes the tag.
        assert_ne!(tag, etag(Form::Single, &[Rate { price: 0.72, ..jpy }]));
        let later = rate("USDJPY", 0.71, "2026-11-24T10:04:00.1Z");
        assert_ne!(tag, etag(Form::Single, &[later]));
        // The body's form and the pairs' order are part of the answer.
        assert_ne!(tag, etag(Form::Batch, &[jpy]));
        assert_ne!(etag(Form::Batch, &[jpy, gbp]), etag(Form::Batch, &[gbp, jpy]));
        // Another pair at the same price is another answer.
        assert_ne!(
            tag,
            etag(
                Form::Single,
                &[Rate {
                    pair: p("USDEUR"),
                    ..jpy
                }]
            )
        );
    }

    #[test]
    fn if_none_match_as_rfc_9110_reads_it() {
        let tag = "\"r1-00000000000000ff\"";
        for matching in [
            "*",
            " * ",
            tag,
            "W/\"r1-00000000000000ff\"",
            "\"a\", \"r1-00000000000000ff\"",
            "\"a\",W/\"r1-00000000000000ff\" ,\"b\"",
            "\"x,y\", \"r1-00000000000000ff\"",
        ] {
            assert!(none_match(matching, tag), "{matching:?}");
        }
        for other in [
            "",
            "\"r1-00000000000000fe\"",
            "r1-00000000000000ff",
            "\"r1-00000000000000ff",
            "\"a\" \"r1-00000000000000ff\"x",
            "\"a b\", \"r1-00000000000000ff\"",
            "*, \"r1-00000000000000ff\"",
            "w/\"r1-00000000000000ff\"",
        ] {
            assert!(!none_match(other, tag), "{other:?}");
        }
    }
}
