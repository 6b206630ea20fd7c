//! Errors a caller can act on.

use std::fmt;

/// A setting outside the range the engine can honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's name as users spell it (`default-k`, `cache-policy`, ...).
    pub name: &'static str,
    /// What is allowed, for the error message.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value for '{}': expected {}",
            self.name, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Why a persisted or received blob could not be decoded. Decoding never panics: every
/// length and count is checked against the bytes that are actually there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The blob ended before a field it announced.
    Truncated { needed: usize, available: usize },
    /// The blob does not start with the expected magic number: it is not ours.
    BadMagic,
    /// Written by a newer (or unknown) format version.
    UnsupportedVersion { found: u32, supported: u32 },
    /// The checksum over the payload does not match: corrupted in transit or at rest.
    BadChecksum,
    /// A field holds a value no writer produces (bad UTF-8, a count over its bound, ...).
    Invalid(&'static str),
    /// Bytes remain after the last field.
    TrailingBytes(usize),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated { needed, available } => {
                write!(
                    f,
                    "blob is truncated: needed {needed} more bytes, {available} left"
                )
            }
            CodecError::BadMagic => {
                write!(f, "blob has a bad magic number (not an edgecache blob)")
            }
            CodecError::UnsupportedVersion { found, supported } => write!(
                f,
                "blob format version {found} is not supported (this build reads up to {supported})"
            ),
            CodecError::BadChecksum => write!(f, "blob checksum mismatch (corrupted)"),
            CodecError::Invalid(what) => write!(f, "blob is malformed: {what}"),
            CodecError::TrailingBytes(n) => write!(f, "blob has {n} unexpected trailing bytes"),
        }
    }
}

impl std::error::Error for CodecError {}
