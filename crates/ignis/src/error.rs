//! The framework's error: a message and an HTTP status, like the original's `ApplicationError`.

use std::fmt;

/// An error with the status an HTTP answer about it would carry (400 unless said otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationError {
    /// What went wrong, the original's message where there is one.
    pub message: String,
    /// The HTTP status an answer about the error carries.
    pub status: u16,
}

impl ApplicationError {
    /// A 400 error.
    pub fn new(message: impl Into<String>) -> Self {
        ApplicationError {
            message: message.into(),
            status: 400,
        }
    }

    /// An error with the given HTTP status.
    pub fn with_status(message: impl Into<String>, status: u16) -> Self {
        ApplicationError {
            message: message.into(),
            status,
        }
    }
}

impl fmt::Display for ApplicationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApplicationError {}

/// Any error a user handler returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
