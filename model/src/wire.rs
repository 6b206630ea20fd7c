//! The wire format under every blob: the frame, little-endian fields read with bounds
//! checks, and the limits every value entering the model is held to.
//!
//! Every blob is framed the same way, whatever carries it (an RDB value, the RDB aux field,
//! an AOF rewrite, a RESTORE payload):
//!
//! ```text
//! magic "EDGC" | kind u8 | version u16 LE | payload length u32 LE | payload | crc32 u32 LE
//! ```
//!
//! The CRC covers everything before it. Decoding checks the frame first, then reads the
//! payload with bounds checks on every field: lengths and counts are validated against the
//! bytes actually present before anything is allocated, so a corrupt or hostile blob yields
//! a [`CodecError`], never a panic or an allocation it announced but did not carry.

use crate::error::CodecError;

/// First bytes of every blob.
pub const MAGIC: &[u8; 4] = b"EDGC";
/// Bytes of the frame before the payload: magic, kind, version, payload length.
pub const HEADER_LEN: usize = 4 + 1 + 2 + 4;
/// Bytes of the frame after the payload: the CRC.
pub const TRAILER_LEN: usize = 4;

/// Largest counter or |time| the model holds (2^53, exact in an `f64`). Decoding saturates
/// larger values to it and counting stops there, so a counter can never overflow and every
/// state re-encodes to a blob that decodes.
pub const MAX_COUNTER: u64 = 1 << 53;

/// Counts one more, stopping at [`MAX_COUNTER`]: a persisted counter must never hold more
/// than a blob may carry, or a state reached by counting would reload to another one. A
/// compare per count; reaching the limit takes 285 years at a million counts a second, or
/// a restored blob already at it.
#[inline]
pub fn bump(counter: &mut u64) {
    *counter += u64::from(*counter < MAX_COUNTER);
}

/// Largest weight a value may carry when it enters the model from outside (a restored
/// user's transitions, an imported peer row). Learning adds at most 2^40 per view (see
/// [`crate::decay::RESCALE_EXPONENT`]), so a weight that starts here would need about 2^88
/// further views to reach `f32::MAX`: every entered weight stays finite for good.
pub const MAX_WEIGHT: f32 = 1e30;

/// Longest item or device name accepted anywhere (the module rejects longer ids up front).
pub const MAX_NAME_LEN: usize = 1024;

/// What a blob holds; part of the frame so one kind is never decoded as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// One user's state.
    User = 1,
    /// A node's model, cache and counters.
    Node = 2,
    /// A federated model update (see the federation issue).
    Update = 3,
}

/// Appends little-endian fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer with the frame header reserved.
    pub fn frame(kind: Kind, version: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(MAGIC);
        buf.push(kind as u8);
        buf.extend_from_slice(&version.to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        Writer { buf }
    }

    /// Appends bytes as they are: a section encoded elsewhere, or (in tests) the payload of
    /// an older version rebuilt around a new frame.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes written so far (with the frame header, if framed).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is written yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written, unframed: for a writer made with `Writer::default()`.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Closes the frame: fills in the length, appends the CRC.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - HEADER_LEN) as u32;
        self.buf[7..11].copy_from_slice(&len.to_le_bytes());
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }

    /// An unsigned LEB128 varint.
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A signed integer, zigzag varint.
    pub fn ivarint(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    /// A byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A fixed 8-byte word.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An f32. The model never holds a non-finite weight (values are bounded where they
    /// enter, see [`MAX_WEIGHT`]); should one appear anyway it is written as the nearest
    /// finite value (NaN as 0), so that no state can produce a blob the decoder refuses: a
    /// node that cannot reload its own RDB would not restart.
    pub fn f32(&mut self, v: f32) {
        let v = if v.is_nan() {
            0.0
        } else {
            v.clamp(f32::MIN, f32::MAX)
        };
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An f64, written finite as [`Writer::f32`] does.
    pub fn f64(&mut self, v: f64) {
        let v = if v.is_nan() {
            0.0
        } else {
            v.clamp(f64::MIN, f64::MAX)
        };
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A length-prefixed string.
    pub fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
}

/// Reads fields back with bounds checks.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the frame (magic, kind, version, length, CRC) and returns a reader over the
    /// payload plus the version found.
    pub fn open(blob: &'a [u8], kind: Kind, supported: u16) -> Result<(Self, u16), CodecError> {
        if blob.len() < HEADER_LEN + TRAILER_LEN {
            if blob.len() >= 4 && &blob[..4] != MAGIC {
                return Err(CodecError::BadMagic);
            }
            return Err(CodecError::Truncated {
                needed: HEADER_LEN + TRAILER_LEN,
                available: blob.len(),
            });
        }
        if &blob[..4] != MAGIC {
            return Err(CodecError::BadMagic);
        }
        if blob[4] != kind as u8 {
            return Err(CodecError::Invalid("blob holds a different kind of data"));
        }
        let version = u16::from_le_bytes([blob[5], blob[6]]);
        let len = u32::from_le_bytes(blob[7..11].try_into().expect("4 bytes")) as usize;
        let end = HEADER_LEN + len;
        if blob.len() < end + TRAILER_LEN {
            return Err(CodecError::Truncated {
                needed: end + TRAILER_LEN,
                available: blob.len(),
            });
        }
        if blob.len() > end + TRAILER_LEN {
            return Err(CodecError::TrailingBytes(blob.len() - end - TRAILER_LEN));
        }
        let crc = u32::from_le_bytes(blob[end..end + 4].try_into().expect("4 bytes"));
        if crc32fast::hash(&blob[..end]) != crc {
            return Err(CodecError::BadChecksum);
        }
        if version == 0 || version > supported {
            return Err(CodecError::UnsupportedVersion {
                found: u32::from(version),
                supported: u32::from(supported),
            });
        }
        Ok((
            Reader {
                buf: &blob[HEADER_LEN..end],
                pos: 0,
            },
            version,
        ))
    }

    /// The next `n` raw bytes (a skipped field, or bytes a caller parses itself); fails if
    /// fewer remain.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(CodecError::Truncated {
                needed: n,
                available,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// An unsigned LEB128 varint.
    pub fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Invalid("varint longer than 64 bits"))
    }

    /// A counter (a magnitude), saturated at [`MAX_COUNTER`]: incrementing a restored
    /// counter can never overflow (2^53 increments at a million a second take 285 years),
    /// and a counter that reached the limit reloads rather than making its RDB unloadable.
    pub fn counter(&mut self) -> Result<u64, CodecError> {
        Ok(self.varint()?.min(MAX_COUNTER))
    }

    /// An identifier that must be a counter's value (a round), refused past
    /// [`MAX_COUNTER`]: unlike a magnitude, a saturated id would mean another thing.
    pub fn id(&mut self) -> Result<u64, CodecError> {
        let v = self.varint()?;
        if v > MAX_COUNTER {
            return Err(CodecError::Invalid("round or id out of range"));
        }
        Ok(v)
    }

    /// A timestamp or landmark in ms, saturated to ±[`MAX_COUNTER`] (about ±285,000 years;
    /// requests carry times within it, see [`crate::request::MAX_TS_MS`]).
    pub fn time(&mut self) -> Result<i64, CodecError> {
        let v = self.ivarint()?;
        Ok(v.clamp(-(MAX_COUNTER as i64), MAX_COUNTER as i64))
    }

    /// A weight that must be finite and at least 0, held to [`MAX_WEIGHT`].
    pub fn weight(&mut self) -> Result<f32, CodecError> {
        let v = self.f32()?;
        if v < 0.0 {
            return Err(CodecError::Invalid("negative weight"));
        }
        Ok(v.min(MAX_WEIGHT))
    }

    /// A zigzag varint.
    pub fn ivarint(&mut self) -> Result<i64, CodecError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    /// A fixed 8-byte word.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// An f32 that must be finite.
    pub fn f32(&mut self) -> Result<f32, CodecError> {
        let v = f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        if v.is_finite() {
            Ok(v)
        } else {
            Err(CodecError::Invalid("non-finite weight"))
        }
    }

    /// An f64 that must be finite.
    pub fn f64(&mut self) -> Result<f64, CodecError> {
        let v = f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        if v.is_finite() {
            Ok(v)
        } else {
            Err(CodecError::Invalid("non-finite weight"))
        }
    }

    /// A UTF-8 string of at most `max` bytes.
    pub fn str(&mut self, max: usize) -> Result<&'a str, CodecError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(CodecError::Invalid("string longer than allowed"));
        }
        std::str::from_utf8(self.take(len as usize)?)
            .map_err(|_| CodecError::Invalid("string is not UTF-8"))
    }

    /// A count of items that each take at least `min_bytes`: rejected if the remaining
    /// bytes could not possibly hold that many, so no hostile count drives an allocation.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize, CodecError> {
        let n = self.varint()?;
        let remaining = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_bytes.max(1) as u64) > remaining {
            return Err(CodecError::Invalid("count exceeds the data present"));
        }
        Ok(n as usize)
    }

    /// Fails if payload bytes remain unread.
    pub fn end(&self) -> Result<(), CodecError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(CodecError::TrailingBytes(n)),
        }
    }
}
