//! Argument parsing shared by the commands: ids, numbers with bounds, and named options.
//!
//! Every parse finishes before any state is touched, so a bad argument can never leave a
//! half-applied change. Errors carry the `ERR` prefix clients expect and name the argument.

use redis_module::{RedisError, RedisString};

use edge_model::codec::MAX_NAME_LEN;

/// Longest device name; device names become INFO dictionary keys, so they are also
/// restricted to a safe alphabet.
pub const MAX_DEVICE_LEN: usize = 32;

/// An error reply with the conventional prefix.
pub fn err(msg: impl std::fmt::Display) -> RedisError {
    RedisError::String(format!("ERR {msg}"))
}

/// A user or item id: non-empty UTF-8 of at most [`MAX_NAME_LEN`] bytes.
pub fn id<'a>(arg: &'a RedisString, what: &str) -> Result<&'a str, RedisError> {
    let bytes = arg.as_slice();
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN {
        return Err(err(format_args!(
            "{what} id must be 1 to {MAX_NAME_LEN} bytes"
        )));
    }
    std::str::from_utf8(bytes).map_err(|_| err(format_args!("{what} id must be valid UTF-8")))
}

/// An integer in `lo..=hi`, named `what` in the error.
pub fn int_in(arg: &RedisString, what: &str, lo: i64, hi: i64) -> Result<i64, RedisError> {
    let v = std::str::from_utf8(arg.as_slice())
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|v| (lo..=hi).contains(v));
    v.ok_or_else(|| {
        err(format_args!(
            "{what} must be an integer between {lo} and {hi}"
        ))
    })
}

/// A device class: 1 to 32 characters of letters, digits, `_`, `-` or `.`.
pub fn device(arg: &RedisString) -> Result<&str, RedisError> {
    let b = arg.as_slice();
    let ok = !b.is_empty()
        && b.len() <= MAX_DEVICE_LEN
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(c));
    if !ok {
        return Err(err(format_args!(
            "DEVICE must be 1 to {MAX_DEVICE_LEN} characters of letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(std::str::from_utf8(b).expect("ASCII"))
}

/// Walks `NAME value` and bare `FLAG` options after the positional arguments.
pub struct Options<'a> {
    args: &'a [RedisString],
    pos: usize,
}

impl<'a> Options<'a> {
    /// Options in `args` (already past the positional arguments).
    pub fn new(args: &'a [RedisString]) -> Self {
        Options { args, pos: 0 }
    }

    /// The next option name, upper-cased, or `None` at the end.
    pub fn next_name(&mut self) -> Option<String> {
        let a = self.args.get(self.pos)?;
        self.pos += 1;
        Some(String::from_utf8_lossy(a.as_slice()).to_ascii_uppercase())
    }

    /// The value following option `name`.
    pub fn value(&mut self, name: &str) -> Result<&'a RedisString, RedisError> {
        let v = self
            .args
            .get(self.pos)
            .ok_or_else(|| err(format_args!("syntax error: {name} needs a value")))?;
        self.pos += 1;
        Ok(v)
    }
}

/// The error for an option a command does not take.
pub fn unknown_option(name: &str) -> RedisError {
    let shown: String = name.chars().take(64).collect();
    err(format_args!("syntax error: unknown option '{shown}'"))
}

/// Rejects a repeated option, which would otherwise silently take the last value.
pub fn once<T>(slot: &Option<T>, name: &str) -> Result<(), RedisError> {
    if slot.is_some() {
        Err(err(format_args!(
            "syntax error: {name} given more than once"
        )))
    } else {
        Ok(())
    }
}
