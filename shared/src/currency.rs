//! ISO 4217 currency codes.
//!
//! A [`Currency`] is an index into the list of active codes, so it is `Copy`,
//! one byte wide and orders like its code. Parsing is case-insensitive; output
//! is always upper-case.

use std::fmt;

/// Active ISO 4217 codes, sorted. Fund and precious-metal codes are included
/// because they are part of the standard; `XTS` (testing) and `XXX` (no
/// currency) are not, since no rate can exist for them.
const CODES: [&str; 175] = [
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD", "BIF", "BMD",
    "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF",
    "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB",
    "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF",
    "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
    "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT",
    "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD",
    "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
    "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS",
    "VED", "VES", "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR",
    "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG",
];

/// An active ISO 4217 currency.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency(u8);

/// Why a string is not a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrencyError {
    /// Not three ASCII letters.
    Malformed(String),
    /// Three letters, but not an active ISO 4217 code.
    Unknown(String),
}

impl fmt::Display for CurrencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurrencyError::Malformed(s) => {
                write!(
                    f,
                    "{s:?} is not a currency code: expected three letters such as USD"
                )
            }
            CurrencyError::Unknown(s) => write!(f, "{s:?} is not an ISO 4217 currency code"),
        }
    }
}

impl std::error::Error for CurrencyError {}

impl Currency {
    /// US dollar, the base of every snapshot.
    pub const USD: Currency = Currency::from_index_const(144);

    const fn from_index_const(i: usize) -> Currency {
        // Checked by the `usd_constant_is_usd` test.
        Currency(i as u8)
    }

    /// Every active code, in code order.
    pub fn all() -> impl ExactSizeIterator<Item = Currency> + Clone {
        (0..CODES.len()).map(|i| Currency(i as u8))
    }

    /// How many codes [`Currency::all`] yields.
    pub const COUNT: usize = CODES.len();

    /// Parses a code case-insensitively (`"usd"`, `"Usd"` and `"USD"` are the same).
    pub fn parse(s: &str) -> Result<Currency, CurrencyError> {
        let b = s.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(CurrencyError::Malformed(truncate_for_message(s)));
        }
        let upper = [
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ];
        Currency::from_upper_bytes(upper)
            .ok_or_else(|| CurrencyError::Unknown(String::from_utf8_lossy(&upper).into_owned()))
    }

    /// Looks up three upper-case ASCII letters.
    pub fn from_upper_bytes(code: [u8; 3]) -> Option<Currency> {
        CODES
            .binary_search_by(|c| c.as_bytes().cmp(&code[..]))
            .ok()
            .map(|i| Currency(i as u8))
    }

    /// The upper-case code, e.g. `"JPY"`.
    pub fn code(self) -> &'static str {
        CODES[self.0 as usize]
    }

    /// A dense index in `0..Currency::COUNT`, for tables keyed by currency.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The inverse of [`Currency::index`].
    pub fn from_index(i: usize) -> Option<Currency> {
        (i < CODES.len()).then_some(Currency(i as u8))
    }
}

/// Keeps error messages bounded when the input is hostile.
pub(crate) fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 32;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Currency {
    type Err = CurrencyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses a comma-separated list such as `"AUD,CAD,usd"`, rejecting duplicates.
pub fn parse_list(s: &str) -> Result<Vec<Currency>, String> {
    let mut out: Vec<Currency> = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("empty entry in currency list {s:?}"));
        }
        let c = Currency::parse(part).map_err(|e| e.to_string())?;
        if out.contains(&c) {
            return Err(format!("{c} appears twice in currency list {s:?}"));
        }
        out.push(c);
    }
    Ok(out)
}

/// Distinct currencies as a command line gives them
/// (`--currencies AUD,CAD,usd`): [`parse_list`] behind [`FromStr`](std::str::FromStr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrencyList(pub Vec<Currency>);

impl std::str::FromStr for CurrencyList {
    type Err = String;

    fn from_str(s: &str) -> Result<CurrencyList, String> {
        parse_list(s).map(CurrencyList)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sorted_unique_and_upper_case() {
        assert!(
            CODES.windows(2).all(|w| w[0] < w[1]),
            "CODES must be sorted and unique"
        );
        assert!(
            CODES
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }

    #[test]
    fn usd_constant_is_usd() {
        assert_eq!(Currency::USD.code(), "USD");
    }

    #[test]
    fn parses_case_insensitively_and_prints_upper_case() {
        for s in ["jpy", "JPY", "Jpy", "jPy"] {
            assert_eq!(Currency::parse(s).unwrap().to_string(), "JPY");
        }
    }

    #[test]
    fn knows_the_codes_one_frame_integrations_use() {
        for s in [
            "AUD", "CAD", "CHF", "EUR", "GBP", "NZD", "JPY", "SGD", "USD", "MYR", "IDR", "KRW", "THB", "VUV",
        ] {
            assert!(Currency::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_unknown_and_malformed_codes() {
        assert_eq!(Currency::parse("QQQ"), Err(CurrencyError::Unknown("QQQ".into())));
        assert_eq!(Currency::parse("xxx"), Err(CurrencyError::Unknown("XXX".into())));
        assert!(matches!(Currency::parse("US"), Err(CurrencyError::Malformed(_))));
        assert!(matches!(
            Currency::parse("USDX"),
            Err(CurrencyError::Malformed(_))
        ));
        assert!(matches!(Currency::parse("U$D"), Err(CurrencyError::Malformed(_))));
        assert!(matches!(Currency::parse(""), Err(CurrencyError::Malformed(_))));
        // Multi-byte input must not be mistaken for three letters.
        assert!(matches!(Currency::parse("ÜSD"), Err(CurrencyError::Malformed(_))));
    }

    #[test]
    fn index_round_trips() {
        for c in Currency::all() {
            assert_eq!(Currency::from_index(c.index()), Some(c));
            assert_eq!(Currency::parse(c.code()), Ok(c));
        }
        assert_eq!(Currency::from_index(Currency::COUNT), None);
    }

    #[test]
    fn list_parsing_rejects_duplicates_and_blanks() {
        let l = parse_list("AUD, cad,USD").unwrap();
        assert_eq!(
            l.iter().map(|c| c.code()).collect::<Vec<_>>(),
            ["AUD", "CAD", "USD"]
        );
        assert!(parse_list("AUD,aud").unwrap_err().contains("twice"));
        assert!(parse_list("AUD,,CAD").unwrap_err().contains("empty"));
        assert!(parse_list("AUD,QQQ").unwrap_err().contains("QQQ"));
        assert_eq!("AUD, cad,USD".parse::<CurrencyList>(), Ok(CurrencyList(l)));
        assert!("AUD,aud".parse::<CurrencyList>().is_err());
    }
}
