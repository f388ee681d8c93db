//! Currency pairs, written `USDJPY` on the wire (One-Frame's form).

use crate::currency::{Currency, CurrencyError, truncate_for_message};
use std::fmt;

/// A `from`/`to` pair: the price is how many `to` one `from` buys.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Pair {
    pub from: Currency,
    pub to: Currency,
}

/// Why a string is not a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairError {
    /// Not six ASCII letters.
    Malformed(String),
    /// Six letters, but one half is not an ISO 4217 code.
    UnknownCurrency(CurrencyError),
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PairError::Malformed(s) => {
                write!(
                    f,
                    "{s:?} is not a currency pair: expected six letters such as USDJPY"
                )
            }
            PairError::UnknownCurrency(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PairError {}

impl Pair {
    pub fn new(from: Currency, to: Currency) -> Pair {
        Pair { from, to }
    }

    /// Parses `USDJPY` (case-insensitive).
    pub fn parse(s: &str) -> Result<Pair, PairError> {
        let b = s.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(PairError::Malformed(truncate_for_message(s)));
        }
        let from = Currency::parse(&s[..3]).map_err(PairError::UnknownCurrency)?;
        let to = Currency::parse(&s[3..]).map_err(PairError::UnknownCurrency)?;
        Ok(Pair { from, to })
    }

    /// The pair in the other direction.
    pub fn inverse(self) -> Pair {
        Pair {
            from: self.to,
            to: self.from,
        }
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_one_frame_form() {
        let p = Pair::parse("usdJPY").unwrap();
        assert_eq!(p.from.code(), "USD");
        assert_eq!(p.to.code(), "JPY");
        assert_eq!(p.to_string(), "USDJPY");
        assert_eq!(p.inverse().to_string(), "JPYUSD");
    }

    #[test]
    fn distinguishes_malformed_from_unknown() {
        assert!(matches!(Pair::parse("USDJP"), Err(PairError::Malformed(_))));
        assert!(matches!(Pair::parse("USD-JPY"), Err(PairError::Malformed(_))));
        assert!(matches!(Pair::parse("USDJP€"), Err(PairError::Malformed(_))));
        assert!(matches!(
            Pair::parse("USDQQQ"),
            Err(PairError::UnknownCurrency(_))
        ));
    }
}
