//! The forex domain shared by the refresher, the edge components, the
//! One-Frame emulator and the tests: currencies, pairs, quotes, the Valkey
//! snapshot, rate derivation, freshness and the HTTP API contract.
//!
//! Pure code: no I/O, no async, no clock of its own (callers pass "now"), so
//! it builds for the host and for `wasm32-wasip1` alike.

pub mod api;
pub mod conditional;
pub mod contract;
pub mod currency;
pub mod freshness;
pub mod one_frame;
pub mod pair;
pub mod quote;
pub mod rates;
pub mod snapshot;
pub mod table;
pub mod time;

pub use currency::Currency;
pub use pair::Pair;
pub use quote::Quote;
pub use rates::Rate;
pub use snapshot::Snapshot;
pub use time::Timestamp;
