//! L2 books and venue codecs for crossbook: the Polymarket CLOB market channel and Kalshi
//! WebSocket v2, in exact fixed-point (units of 10^-6), with no panics on any input.
//!
//! The entry point is [`BookSet::apply`]: one frame in, every event in it applied atomically.

// Venue data must never panic us: no unwrap/expect/indexing outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable
    )
)]

pub mod book;
pub mod bookset;
pub mod edge;
pub mod error;
pub mod fixed;
pub mod hash;
pub mod json;
pub mod kalshi;
pub mod poly;

pub use book::{Book, Level, Side, Top};
pub use bookset::{BookSet, Market, Stats};
pub use error::FrameError;

/// A venue, by its canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Venue {
    Polymarket,
    Kalshi,
}

impl Venue {
    /// Accepts the canonical names and the alias `poly`.
    pub fn parse(s: &str) -> Option<Venue> {
        match s {
            "polymarket" | "poly" => Some(Venue::Polymarket),
            "kalshi" => Some(Venue::Kalshi),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Venue::Polymarket => "polymarket",
            Venue::Kalshi => "kalshi",
        }
    }

    /// Minimum decimals when printing (price, size): Polymarket minimal, Kalshi "0.5800"/"13.00".
    pub fn decimals(self) -> (u32, u32) {
        match self {
            Venue::Polymarket => (0, 0),
            Venue::Kalshi => (4, 2),
        }
    }

    /// A price as this venue's decimal string.
    pub fn fmt_price(self, v: i64) -> String {
        fixed::to_string(v, self.decimals().0)
    }

    /// A size as this venue's decimal string.
    pub fn fmt_size(self, v: i64) -> String {
        fixed::to_string(v, self.decimals().1)
    }
}
