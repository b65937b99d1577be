//! The error of conversions between [`Value`](super::Value) and other types.

use std::fmt::Display;

/// Why a conversion to or from a [`Value`](super::Value) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value does not fit the target type (message from serde).
    #[error("{0}")]
    Message(String),
    /// A map key was not a string or a number.
    #[error("map keys must be strings, integers, booleans or chars")]
    KeyMustBeString,
    /// An integer does not fit in 64 bits.
    #[error("integer out of the 64-bit range")]
    IntegerOutOfRange,
    /// Binary data has no JSON representation.
    #[error("binary data cannot be represented as JSON")]
    BinaryNotJson,
    /// NaN and infinities have no JSON representation.
    #[error("non-finite float cannot be represented as JSON")]
    NonFiniteFloat,
}

impl serde::ser::Error for ValueError {
    fn custom<T: Display>(msg: T) -> Self {
        ValueError::Message(msg.to_string())
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: Display>(msg: T) -> Self {
        ValueError::Message(msg.to_string())
    }
}
