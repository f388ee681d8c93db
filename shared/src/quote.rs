//! A quote: One-Frame's answer for one pair.

use crate::pair::Pair;
use crate::time::Timestamp;

/// One pair's bid, ask and price at a moment.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Quote {
    pub pair: Pair,
    pub bid: f64,
    pub ask: f64,
    pub price: f64,
    pub time_stamp: Timestamp,
}

/// What is wrong with a quote's numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum QuoteError {
    /// `price` is NaN, infinite, zero or negative.
    BadPrice { pair: Pair, price: f64 },
    /// `bid` or `ask` is NaN, infinite or negative.
    BadBidAsk { pair: Pair },
    /// `from` equals `to`.
    SameCurrency { pair: Pair },
}

impl std::fmt::Display for QuoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuoteError::BadPrice { pair, price } => {
                write!(
                    f,
                    "{pair} has price {price}: a price must be finite and greater than zero"
                )
            }
            QuoteError::BadBidAsk { pair } => {
                write!(
                    f,
                    "{pair} has a bid or ask that is not a finite, non-negative number"
                )
            }
            QuoteError::SameCurrency { pair } => write!(f, "{pair} quotes a currency against itself"),
        }
    }
}

impl std::error::Error for QuoteError {}

impl Quote {
    /// Checks the numbers a reader relies on.
    pub fn validate(&self) -> Result<(), QuoteError> {
        let pair = self.pair;
        if pair.from == pair.to {
            return Err(QuoteError::SameCurrency { pair });
        }
        if !(self.price.is_finite() && self.price > 0.0) {
            return Err(QuoteError::BadPrice {
                pair,
                price: self.price,
            });
        }
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !(ok(self.bid) && ok(self.ask)) {
            return Err(QuoteError::BadBidAsk { pair });
        }
        Ok(())
    }
}
