//! The wire protocol between the aggregator (`federator --agent …`) and the agents beside
//! the edges (`federator agent`), so that only masked vectors cross the network.
//!
//! A frame is a version byte, a big-endian `u32` payload length, and the payload: one
//! message as JSON. A frame of another version, longer than the limit, cut short or not
//! a message is refused with a [`WireError`] (the caller logs it and drops the connection),
//! never a panic. Every read is bounded by a deadline, so a silent or slow peer costs at
//! most that long; memory is bounded by the frame limit.
//!
//! A round, driven by the aggregator over one connection per agent:
//! 1. [`ToAgent::Begin`] → [`FromAgent::Meta`]: the agent exports from its edge and says
//!    what it would contribute (its public key, its settings and clocks, the names of its
//!    coordinates and the largest value of each kind), never a count.
//! 2. The aggregator fixes the set of agents that answered and sends each
//!    [`ToAgent::Mask`] (the set's public keys, the union of coordinates, the scales and
//!    clocks) → [`FromAgent::Masked`]: the agent's fixed-point table plus its pairwise masks
//!    among that set.
//! 3. [`ToAgent::Sum`] (the sum of the masked vectors, which is the unmasked total) →
//!    [`FromAgent::Imported`]: the agent imported "total minus mine" into its edge.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::flat::Key;
use crate::secure::Scales;

/// The protocol version every frame starts with; a peer speaking another is refused.
pub const VERSION: u8 = 1;

/// The default limit on one frame's payload (bytes): large enough for a masked vector of
/// millions of coordinates, small enough that a hostile peer cannot make a process
/// allocate without bound.
pub const MAX_FRAME: usize = 256 << 20;

/// A decay clock on the wire: `(landmark_ms, half_life_ms)`.
pub type WireClock = (i64, u64);

/// What the aggregator asks of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToAgent {
    /// Export from your edge and describe what you would contribute.
    Begin,
    /// Mask your table for `round` among `peers` (public keys, in the set's order; yours
    /// among them) over the coordinates `index` at `scales`, on the clocks `(rows, items)`.
    Mask {
        /// The federator round id the edges will import.
        round: u64,
        /// The answering agents' public keys; an agent's position is its mask index.
        peers: Vec<[u8; 32]>,
        /// The coordinates every agent encodes over (sorted).
        index: Vec<Key>,
        /// Fixed-point scales per kind of count.
        scales: Scales,
        /// The reference clocks `(rows, items)` counts are expressed on.
        clocks: (WireClock, WireClock),
    },
    /// The sum of the masked vectors of `round`: import it minus your own table.
    Sum {
        /// The round the sum belongs to.
        round: u64,
        /// The sum, mod 2^32, over the round's index.
        sum: Vec<u32>,
    },
}

/// What an agent answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FromAgent {
    /// The agent's answer to [`ToAgent::Begin`].
    Meta {
        /// Its x25519 public key, for the pairwise key agreement.
        public_key: [u8; 32],
        /// The latest round it masked for or its edge imported: the next round must be
        /// above it (a mask stream is never used twice).
        last_round: u64,
        /// An encoded update with no counts: the edge's learning settings and clocks.
        header: Vec<u8>,
        /// The names of its non-zero coordinates (the support, which is revealed).
        keys: Vec<Key>,
        /// The largest value of each kind of count (sets the fixed-point scales).
        maxima: [f64; 4],
    },
    /// Its masked vector for `round`.
    Masked {
        /// The round.
        round: u64,
        /// Fixed-point table plus pairwise masks, mod 2^32.
        vector: Vec<u32>,
    },
    /// Whether its edge applied the import of `round`.
    Imported {
        /// The round.
        round: u64,
        /// `EDGE.MODEL.IMPORT`'s answer.
        applied: bool,
    },
    /// It refuses the request (a lying or confused aggregator, or its edge failed).
    Refused {
        /// Why, for the aggregator's log.
        why: String,
    },
}

/// Why a frame could not be read or written.
#[derive(Debug, Clone, PartialEq)]
pub enum WireError {
    /// The socket failed.
    Io(String),
    /// The peer closed the connection.
    Closed,
    /// Nothing (or not all of a frame) arrived by the deadline.
    TimedOut,
    /// The frame is of another protocol version.
    Version(u8),
    /// The frame's declared length is over the limit.
    TooLarge {
        /// The declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not a message of this protocol.
    Malformed(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "connection failed: {e}"),
            WireError::Closed => write!(f, "the peer closed the connection"),
            WireError::TimedOut => write!(f, "timed out waiting for the peer"),
            WireError::Version(v) => write!(
                f,
                "frame of protocol version {v}, this side speaks {VERSION}: run the same \
                 federator version on the aggregator and every agent"
            ),
            WireError::TooLarge { len, max } => write!(
                f,
                "frame of {len} bytes is over the {max}-byte limit: refused (a hostile or \
                 confused peer)"
            ),
            WireError::Malformed(e) => write!(f, "malformed message: {e}"),
        }
    }
}

fn io_err(e: std::io::Error) -> WireError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => WireError::TimedOut,
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => WireError::Closed,
        _ => WireError::Io(e.to_string()),
    }
}

/// Encodes one message as a frame.
pub fn frame<M: Serialize>(msg: &M) -> Result<Vec<u8>, WireError> {
    let body = serde_json::to_vec(msg).map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLarge {
        len: body.len(),
        max: u32::MAX as usize,
    })?;
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Writes one message, giving up after `timeout`; returns the bytes sent.
pub fn send<M: Serialize>(
    s: &mut TcpStream,
    msg: &M,
    timeout: Duration,
) -> Result<usize, WireError> {
    let f = frame(msg)?;
    s.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(io_err)?;
    s.write_all(&f).and_then(|()| s.flush()).map_err(io_err)?;
    Ok(f.len())
}

/// Reads exactly `buf.len()` bytes, every read bounded by what is left until `deadline`.
fn read_by(s: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), WireError> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WireError::TimedOut);
        }
        s.set_read_timeout(Some(left)).map_err(io_err)?;
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(WireError::Closed),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(())
}

/// Decodes one frame's header: the payload length, if the version and size are right.
pub fn header(h: [u8; 5], max: usize) -> Result<usize, WireError> {
    if h[0] != VERSION {
        return Err(WireError::Version(h[0]));
    }
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    Ok(len)
}

/// Reads one message by `deadline` from a frame of at most `max` bytes; returns it and the
/// frame's size.
pub fn recv<M: for<'de> Deserialize<'de>>(
    s: &mut TcpStream,
    deadline: Instant,
    max: usize,
) -> Result<(M, usize), WireError> {
    let mut h = [0u8; 5];
    read_by(s, &mut h, deadline)?;
    let len = header(h, max)?;
    let mut body = vec![0u8; len];
    read_by(s, &mut body, deadline)?;
    let msg = serde_json::from_slice(&body).map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok((msg, 5 + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected pair of loopback sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(2)
    }

    #[test]
    fn messages_round_trip_and_bad_frames_are_refused() {
        let (mut a, mut b) = pair();
        let msg = ToAgent::Mask {
            round: 7,
            peers: vec![[1; 32], [2; 32]],
            index: vec![Key::Views("x".into()), Key::Link("x".into(), "y".into())],
            scales: [256.0, 1.0, 0.5, 2.0],
            clocks: ((5, 0), (6, 1000)),
        };
        let sent = send(&mut a, &msg, Duration::from_secs(1)).unwrap();
        let (got, size) = recv::<ToAgent>(&mut b, soon(), MAX_FRAME).unwrap();
        assert_eq!((got, size), (msg, sent));

        // Another version, an oversize length, a payload that is not a message.
        let mut f = frame(&ToAgent::Begin).unwrap();
        f[0] = 9;
        a.write_all(&f).unwrap();
        assert_eq!(
            recv::<ToAgent>(&mut b, soon(), MAX_FRAME).unwrap_err(),
            WireError::Version(9)
        );
        let (mut a, mut b) = pair();
        let mut big = vec![VERSION];
        big.extend_from_slice(&u32::MAX.to_be_bytes());
        a.write_all(&big).unwrap();
        assert!(matches!(
            recv::<ToAgent>(&mut b, soon(), 1024),
            Err(WireError::TooLarge { len, max: 1024 }) if len == u32::MAX as usize
        ));
        for junk in [
            &br#"{"kind":"launch"}"#[..],
            b"not json",
            br#"{"kind":"sum","round":1}"#,
        ] {
            let (mut a, mut b) = pair();
            let mut f = vec![VERSION];
            f.extend_from_slice(&(junk.len() as u32).to_be_bytes());
            f.extend_from_slice(junk);
            a.write_all(&f).unwrap();
            assert!(matches!(
                recv::<ToAgent>(&mut b, soon(), MAX_FRAME),
                Err(WireError::Malformed(_))
            ));
        }
    }

    #[test]
    fn a_silent_or_vanished_peer_is_a_timeout_or_a_close() {
        let (mut a, mut b) = pair();
        // Half a header, then silence.
        a.write_all(&[VERSION, 0]).unwrap();
        let t = Instant::now();
        let deadline = t + Duration::from_millis(200);
        assert_eq!(
            recv::<ToAgent>(&mut b, deadline, MAX_FRAME).unwrap_err(),
            WireError::TimedOut
        );
        drop(a);
        assert_eq!(
            recv::<ToAgent>(&mut b, soon(), MAX_FRAME).unwrap_err(),
            WireError::Closed
        );
    }
}
