//! The one error a frame can produce: which venue, which field, what was wrong.

use std::fmt;

use crate::fixed::DecimalError;
use crate::json::SyntaxError;
use crate::Venue;

/// Longest excerpt of venue data quoted in a message.
const EXCERPT: usize = 60;

/// A frame that could not be parsed or carried impossible values. It was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub venue: Venue,
    /// The JSON field at fault (`"frame"` for syntax errors).
    pub field: String,
    pub detail: String,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frame rejected: {}: {}",
            self.venue.name(),
            self.field,
            self.detail
        )
    }
}

impl std::error::Error for FrameError {}

/// At most `max` bytes of `s`, cut on a char boundary, with an ellipsis when cut.
pub fn excerpt(s: &str, start: usize, max: usize) -> String {
    let mut a = start.min(s.len());
    while a > 0 && !s.is_char_boundary(a) {
        a -= 1;
    }
    let mut b = a.saturating_add(max).min(s.len());
    while b > a && !s.is_char_boundary(b) {
        b -= 1;
    }
    let body = s.get(a..b).unwrap_or("");
    let mut out = String::with_capacity(body.len() + 8);
    if a > 0 {
        out.push('…');
    }
    out.push_str(body);
    if b < s.len() {
        out.push('…');
    }
    out
}

impl FrameError {
    pub fn new(venue: Venue, field: impl Into<String>, detail: impl Into<String>) -> Self {
        FrameError {
            venue,
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn syntax(venue: Venue, frame: &str, e: &SyntaxError) -> Self {
        let from = e.pos.saturating_sub(20);
        FrameError::new(
            venue,
            "frame",
            format!(
                "invalid JSON at byte {}: {} (near {:?})",
                e.pos,
                e.what,
                excerpt(frame, from, EXCERPT)
            ),
        )
    }

    pub fn value(venue: Venue, field: &str, value: &str, e: DecimalError) -> Self {
        FrameError::new(
            venue,
            field,
            format!("{}: {:?}", e, excerpt(value, 0, EXCERPT)),
        )
    }

    pub fn missing(venue: Venue, field: &str) -> Self {
        FrameError::new(venue, field, "missing (or not a string/number)")
    }

    pub fn bad(venue: Venue, field: &str, value: &str, what: &str) -> Self {
        FrameError::new(
            venue,
            field,
            format!("{what}: {:?}", excerpt(value, 0, EXCERPT)),
        )
    }
}
