//! Rate derivation through USD: direct legs come from the snapshot, the
//! inverse of a leg is `1 / price`, a cross is `USD→to / USD→from`.

use crate::currency::Currency;
use crate::pair::Pair;
use crate::time::Timestamp;
use std::fmt;

/// A price for a pair, as the API serves it.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Rate {
    pub pair: Pair,
    pub price: f64,
    /// The older of the legs' quote times: the rate is as old as this.
    pub timestamp: Timestamp,
}

/// The snapshot lacks a leg the pair needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupError {
    pub pair: Pair,
    pub missing: Currency,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no rate for {} is available: there is no quote for USD{}",
            self.pair, self.missing
        )
    }
}

impl std::error::Error for LookupError {}

/// Derives `pair` from USD legs. `leg(c)` gives the price and time of
/// `USD → c`; `same_currency_time` is the time stamped on `X → X` (the
/// snapshot's fetch time).
pub fn derive(
    pair: Pair,
    same_currency_time: Timestamp,
    leg: impl Fn(Currency) -> Option<(f64, Timestamp)>,
) -> Result<Rate, LookupError> {
    let usd = Currency::USD;
    let get = |c: Currency| leg(c).ok_or(LookupError { pair, missing: c });
    let (price, timestamp) = if pair.from == pair.to {
        (1.0, same_currency_time)
    } else if pair.from == usd {
        get(pair.to)?
    } else if pair.to == usd {
        let (p, t) = get(pair.from)?;
        (1.0 / p, t)
    } else {
        let (pf, tf) = get(pair.from)?;
        let (pt, tt) = get(pair.to)?;
        (pt / pf, tf.min(tt))
    };
    Ok(Rate {
        pair,
        price,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use crate::currency::Currency;
    use crate::pair::Pair;
    use crate::snapshot::tests::{arb_snapshot, sample};
    use proptest::prelude::*;

    fn pair(s: &str) -> Pair {
        Pair::parse(s).unwrap()
    }

    #[test]
    fn direct_inverse_cross_and_same_currency() {
        let s = sample();
        let jpy = s.usd_leg(Currency::parse("JPY").unwrap()).unwrap();
        let eur = s.usd_leg(Currency::parse("EUR").unwrap()).unwrap();
        let gbp = s.usd_leg(Currency::parse("GBP").unwrap()).unwrap();

        let direct = s.rate(pair("USDJPY")).unwrap();
        assert_eq!((direct.price, direct.timestamp), (jpy.price, jpy.time_stamp));

        let inverse = s.rate(pair("JPYUSD")).unwrap();
        assert_eq!(inverse.price, 1.0 / jpy.price);

        let cross = s.rate(pair("EURJPY")).unwrap();
        assert_eq!(cross.price, jpy.price / eur.price);

        let older = s.rate(pair("GBPJPY")).unwrap();
        assert_eq!(
            older.timestamp, gbp.time_stamp,
            "a cross is as old as its older leg"
        );

        let same = s.rate(pair("CHFCHF")).unwrap();
        assert_eq!((same.price, same.timestamp), (1.0, s.fetched_at));
    }

    #[test]
    fn a_missing_leg_is_named() {
        let e = sample().rate(pair("EURCHF")).unwrap_err();
        assert_eq!(e.missing.code(), "CHF");
        assert!(e.to_string().contains("USDCHF"));
    }

    proptest! {
        #[test]
        fn inverse_times_direct_is_one(s in arb_snapshot()) {
            for q in &s.quotes {
                let d = s.rate(q.pair).unwrap().price;
                let i = s.rate(q.pair.inverse()).unwrap().price;
                prop_assert!((d * i - 1.0).abs() < 1e-12, "{} * {} = {}", d, i, d * i);
            }
        }

        #[test]
        fn crosses_are_consistent(s in arb_snapshot()) {
            let cs: Vec<_> = s.quotes.iter().map(|q| q.pair.to).take(5).collect();
            for &a in &cs { for &b in &cs { for &c in &cs {
                let ab = s.rate(Pair::new(a, b)).unwrap().price;
                let bc = s.rate(Pair::new(b, c)).unwrap().price;
                let ac = s.rate(Pair::new(a, c)).unwrap().price;
                prop_assert!(((ab * bc) / ac - 1.0).abs() < 1e-12);
                let ba = s.rate(Pair::new(b, a)).unwrap().price;
                prop_assert!((ab * ba - 1.0).abs() < 1e-12);
            }}}
        }

        #[test]
        fn a_rate_is_never_newer_than_its_legs(s in arb_snapshot()) {
            for x in &s.quotes { for y in &s.quotes {
                let r = s.rate(Pair::new(x.pair.to, y.pair.to)).unwrap();
                if x.pair.to != y.pair.to {
                    prop_assert!(r.timestamp <= x.time_stamp && r.timestamp <= y.time_stamp);
                }
            }}
        }
    }
}
