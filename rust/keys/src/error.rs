//! One error type. Messages name the input and the rule it broke, and never carry secret bytes.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// A caller-supplied value is malformed (`field`: which one; `reason`: what is wrong).
    #[error("{field}: {reason}")]
    Input { field: String, reason: String },
    /// Key material is unusable (wrong length, out of range, not the expected kind).
    #[error("invalid key: {0}")]
    Key(&'static str),
    /// Locked memory could not be set up.
    #[error("secret memory: {0}")]
    Memory(&'static str),
    /// A signing primitive failed (should not happen with a valid key).
    #[error("signing failed: {0}")]
    Sign(&'static str),
}

impl KeyError {
    pub fn input(field: impl Into<String>, reason: impl Into<String>) -> Self {
        KeyError::Input {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
