//! Versioned binary formats: a user's state, and a node's global model with its cache.
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

use crate::cache::{
    Budget, BudgetParts, CacheStats, CachedItem, EdgeCache, GhostKey, LearnedShare, Segment,
    ShareMode,
};
use crate::catalog::{Catalog, Item, ItemRef};
use crate::config::Config;
use crate::decay::Decay;
use crate::engine::Engine;
use crate::error::CodecError;
use crate::global::{Board, GlobalModel, Peers};
use crate::hash::fingerprint;
use crate::stats::Stats;
use crate::transitions::{Entry, Row, Transitions, Val};
use crate::user::{Hint, HistoryEntry, PersonalTransition, UserBounds, UserParts, UserState};

/// First bytes of every blob.
pub const MAGIC: &[u8; 4] = b"EDGC";
const HEADER_LEN: usize = 4 + 1 + 2 + 4;
const TRAILER_LEN: usize = 4;

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
    /// A node's global model, cache and counters.
    Node = 2,
    /// A federated model update (see the federation issue).
    Update = 3,
}

/// Current version of each kind's payload.
/// Version 2 added whether each history entry was privacy-clipped (older blobs load with
/// none clipped).
pub const USER_VERSION: u16 = 2;
/// Current version of the node payload. Version 2 added the prefetch controller's price
/// and credit, version 3 the cache's demand clock and each item's demand, version 4 the
/// popularity board's order, version 5 what the cache's split learned (share, ghosts) and
/// the prefetch controller's window depth, version 6 the local-only rows of privacy-clipped
/// views, version 7 the controller's count of the window's prefetches and their uses,
/// version 8 the keys the cache dropped since its last play (what `EDGE.PLAY … DELTA`
/// reports next); older blobs still load (what they lack starts afresh).
pub const NODE_VERSION: u16 = 8;

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

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
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

/// Encodes one user's state.
pub fn encode_user(u: &UserState) -> Vec<u8> {
    let mut w = Writer::frame(Kind::User, USER_VERSION);
    w.varint(u.records());
    w.ivarint(u.first_ts_ms());
    match u.device() {
        Some(d) => {
            w.u8(1);
            w.str(d);
        }
        None => w.u8(0),
    }
    w.varint(u.history().len() as u64);
    for h in u.history() {
        w.str(&h.item);
        w.ivarint(h.ts_ms);
        w.f32(h.weight);
        w.u8(u8::from(h.clipped));
    }
    w.varint(u.seen_len() as u64);
    for fp in u.seen() {
        w.u64(fp);
    }
    w.varint(u.personal().len() as u64);
    for t in u.personal() {
        w.u64(t.prev);
        w.u64(t.next);
        w.f32(t.weight);
    }
    w.f32(u.affinity());
    let (epoch, views) = u.round_views();
    w.varint(u64::from(epoch));
    w.varint(u64::from(views));
    w.finish()
}

/// Largest |affinity| a user may carry: an item's popularity level (log-views relative to
/// the catalog's mean) lies within ±ln(2^53) ≈ ±37, and the affinity is a mean of them.
const MAX_AFFINITY: f32 = 64.0;

/// Decodes one user's state and applies `bounds` to it, as learning would: the most recent
/// `history_len` views, the latest `seen_max` seen items, the `personal_max` heaviest own
/// transitions. A blob from a node with larger bounds, or a hostile one, so never holds
/// more than the settings allow, however large it was.
///
/// Magnitudes are held to the model's range (counters to [`MAX_COUNTER`], a view's weight
/// to [0, 1], transition weights to [`MAX_WEIGHT`]); structure that no writer produces
/// (a repeated seen item or transition) is refused.
pub fn decode_user(blob: &[u8], bounds: UserBounds) -> Result<UserState, CodecError> {
    let (mut r, version) = Reader::open(blob, Kind::User, USER_VERSION)?;
    let records = r.counter()?;
    let first_ts_ms = r.time()?;
    let device = match r.u8()? {
        0 => None,
        1 => Some(r.str(MAX_NAME_LEN)?.into()),
        _ => return Err(CodecError::Invalid("bad device flag")),
    };
    let n = r.count(6)?;
    let mut history = std::collections::VecDeque::with_capacity(n.min(bounds.history_len));
    for _ in 0..n {
        let item = r.str(MAX_NAME_LEN)?;
        let ts_ms = r.time()?;
        let weight = r.weight()?.min(1.0);
        let clipped = match version {
            1 => false,
            _ => match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(CodecError::Invalid("bad clipped flag")),
            },
        };
        if history.len() == bounds.history_len {
            history.pop_front();
        }
        if bounds.history_len > 0 {
            history.push_back(HistoryEntry {
                item: item.into(),
                fp: fingerprint(item.as_bytes()),
                ts_ms,
                weight,
                hint: Hint::default(),
                clipped,
            });
        }
    }
    let n = r.count(8)?;
    // The oldest are forgotten first, as learning does; they are skipped unread.
    let dropped = n.saturating_sub(bounds.seen_max);
    r.take(8 * dropped)?;
    let mut seen = Vec::with_capacity(n - dropped);
    let mut unique = std::collections::HashSet::with_capacity(n - dropped);
    for _ in dropped..n {
        let fp = r.u64()?;
        if !unique.insert(fp) {
            return Err(CodecError::Invalid("repeated seen item"));
        }
        seen.push(fp);
    }
    let n = r.count(20)?;
    let mut personal = Vec::with_capacity(n);
    let mut pairs = std::collections::HashSet::with_capacity(n);
    for _ in 0..n {
        let t = PersonalTransition {
            prev: r.u64()?,
            next: r.u64()?,
            weight: r.weight()?,
        };
        if !pairs.insert((t.prev, t.next)) {
            return Err(CodecError::Invalid("repeated transition"));
        }
        personal.push(t);
    }
    if personal.len() > bounds.personal_max {
        // Keep the heaviest, in their stored order (Space-Saving would evict the lightest).
        let mut kept: Vec<usize> = (0..personal.len()).collect();
        kept.sort_by(|&a, &b| personal[b].weight.total_cmp(&personal[a].weight));
        kept.truncate(bounds.personal_max);
        kept.sort_unstable();
        personal = kept.into_iter().map(|i| personal[i]).collect();
    }
    let affinity = r.f32()?.clamp(-MAX_AFFINITY, MAX_AFFINITY);
    let small =
        |v: u64| u32::try_from(v).map_err(|_| CodecError::Invalid("round counter overflow"));
    let round_views = (small(r.varint()?)?, small(r.varint()?)?);
    r.end()?;
    Ok(UserState::from_parts(UserParts {
        history: history.into(),
        seen_order: seen,
        personal,
        records,
        first_ts_ms,
        device,
        affinity,
        round_views,
    }))
}

fn encode_rows(w: &mut Writer, t: &Transitions) {
    let rows = t.rows();
    w.varint(rows.len() as u64);
    for row in rows {
        w.f32(row.total());
        w.varint(u64::from(row.stamp()));
        w.varint(row.len() as u64);
        for en in row.entries() {
            w.varint(u64::from(en.item.slot));
            w.varint(u64::from(en.item.gen));
            w.f32(en.val.count);
            w.f32(en.val.error);
        }
    }
}

fn decode_rows(r: &mut Reader<'_>, catalog: &Catalog) -> Result<Vec<Row>, CodecError> {
    let n = r.count(6)?;
    if n > catalog.slot_count() {
        return Err(CodecError::Invalid("more rows than catalog slots"));
    }
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let total = r.f32()?;
        let stamp =
            u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("stamp overflow"))?;
        let m = r.count(10)?;
        let mut entries = Vec::with_capacity(m);
        for _ in 0..m {
            let slot = r.varint()?;
            let gen = r.varint()?;
            let (count, error) = (r.f32()?, r.f32()?);
            if slot >= catalog.slot_count() as u64 || gen > u64::from(u32::MAX) {
                return Err(CodecError::Invalid("transition to an unknown slot"));
            }
            let item = ItemRef {
                slot: slot as u32,
                gen: gen as u32,
            };
            entries.push(Entry {
                item,
                val: Val {
                    gen: item.gen,
                    count,
                    error,
                },
            });
        }
        rows.push(Row::from_parts(entries, total, stamp));
    }
    Ok(rows)
}

fn segment_code(s: Segment) -> u8 {
    match s {
        Segment::Lru => 0,
        Segment::Core => 1,
        Segment::Prefetch => 2,
    }
}

/// Encodes a node's global model, cache contents and counters (the RDB aux payload).
///
/// Slots left free by evictions are written as they are (two or three bytes each), and a
/// save changes nothing: where the next items go depends on which slots are free, so a
/// reload must find the same ones. Free slots are transient: the maintenance step that
/// ends a shrink, and every import, compact them away (see [`Engine::maintain`]).
pub fn encode_node(e: &mut Engine) -> Vec<u8> {
    let (g, cache, s) = e.parts();
    let mut w = Writer::frame(Kind::Node, NODE_VERSION);
    for d in [&g.decay, &g.pop_decay] {
        w.varint(d.half_life());
        w.ivarint(d.landmark());
    }
    w.varint(g.views_total);
    w.varint(g.catalog.hand() as u64);
    w.varint(g.catalog.slot_count() as u64);
    for (gen, item) in g.catalog.slots() {
        w.varint(u64::from(gen));
        match item {
            None => w.u8(0),
            Some(i) => {
                w.u8(1);
                w.str(&i.name);
                w.f64(i.popularity);
                w.varint(i.views);
                w.f32(i.mean_duration_s);
                w.varint(i.size_bytes);
                w.varint(u64::from(i.stamp));
                w.varint(i.peer_views);
                w.f64(i.peer_popularity);
            }
        }
    }
    encode_rows(&mut w, &g.transitions);
    w.varint(u64::from(g.transitions.epoch()));
    w.ivarint(g.last_ts_ms);
    w.varint(u64::from(g.landmark_epoch));
    let p = &g.peers;
    encode_rows(&mut w, &p.rows);
    for v in [p.views_total, p.round, p.rounds, p.last_import_bytes] {
        w.varint(v);
    }
    w.ivarint(p.last_import_ms);
    let entries = cache.entries();
    w.varint(entries.len() as u64);
    for c in &entries {
        w.str(&c.key);
        w.varint(c.size);
        w.u8(segment_code(c.segment));
        w.u8(u8::from(c.unused_prefetch));
        w.f64(c.freq);
        w.varint(c.last);
    }
    w.varint(cache.tick());
    let b = cache.budget().parts();
    w.f64(b.target);
    w.varint(b.k as u64);
    w.varint(u64::from(b.window_requests));
    w.varint(u64::from(b.window_fetches));
    w.f64(b.price);
    w.f64(b.credit);
    let cs = cache.stats();
    for v in [
        cs.hits,
        cs.misses,
        cs.prefetches,
        cs.prefetch_used,
        cs.prefetch_unused_evicted,
        cs.evictions,
    ] {
        w.varint(v);
    }
    for v in [
        s.records,
        s.skips,
        s.predictions,
        s.plays,
        s.forgets,
        s.dp_clipped,
    ] {
        w.varint(v);
    }
    w.varint(s.device_views.len() as u64);
    for (d, n) in &s.device_views {
        w.str(d);
        w.varint(*n);
    }
    // Version 3: the cache's demand clock and each live item's demand, in slot order.
    w.varint(g.demand_ticks);
    w.varint(g.demand_decay.half_life());
    w.ivarint(g.demand_decay.landmark());
    for (_, item) in g.catalog.slots() {
        if let Some(i) = item {
            w.f64(i.demand);
        }
    }
    // Version 4: the popularity board, leaders first.
    let board = g.board.items();
    w.varint(board.len() as u64);
    for r in board {
        w.varint(u64::from(r.slot));
    }
    encode_learning(&mut w, cache);
    // Version 6: the local-only rows of privacy-clipped views.
    encode_rows(&mut w, &g.local);
    // Version 7: the controller's window use.
    encode_window_use(&mut w, cache);
    // Version 8: the drops the next play reports.
    encode_dropped(&mut w, cache);
    w.finish()
}

/// The version 6 section: the controller's count of the window's prefetches and their
/// uses, which decide whether the price may fall.
fn encode_window_use(w: &mut Writer, cache: &EdgeCache) {
    let b = cache.budget().parts();
    w.varint(u64::from(b.window_prefetches));
    w.varint(u64::from(b.window_used));
}

/// The version 8 section: the keys dropped since the last play, and the overflow flag.
fn encode_dropped(w: &mut Writer, cache: &EdgeCache) {
    let (keys, overflow) = cache.dropped();
    w.varint(keys.len() as u64);
    for k in keys {
        w.str(k);
    }
    w.u8(u8::from(overflow));
}

/// The version 5 section: the controller's window depth and what the cache's split learned.
fn encode_learning(w: &mut Writer, cache: &EdgeCache) {
    w.varint(cache.budget().parts().window_deepest as u64);
    let learned = cache.learned();
    let (mode, start) = match learned.mode {
        ShareMode::Fixed(s) => (0, s),
        ShareMode::Adaptive(s) => (1, s),
    };
    w.u8(mode);
    w.f64(start);
    w.f64(learned.share);
    for ghost in [&learned.core, &learned.prefetch] {
        w.varint(ghost.len() as u64);
        for g in ghost {
            w.str(&g.key);
            w.varint(g.size);
            w.f64(g.freq);
        }
    }
}

fn decode_ghost(r: &mut Reader<'_>) -> Result<Vec<GhostKey>, CodecError> {
    let n = r.count(10)?;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.str(MAX_NAME_LEN)?.to_owned();
        let size = r.counter()?;
        let freq = r.f64()?;
        if freq < 0.0 {
            return Err(CodecError::Invalid("negative ghost frequency"));
        }
        keys.push(GhostKey { key, size, freq });
    }
    Ok(keys)
}

/// Decodes a node blob into an engine running under `config`.
pub fn decode_node(blob: &[u8], config: Config) -> Result<Engine, CodecError> {
    let (mut r, version) = Reader::open(blob, Kind::Node, NODE_VERSION)?;
    let decay = Decay::new(r.counter()?, r.time()?);
    let pop_decay = Decay::new(r.counter()?, r.time()?);
    let views_total = r.counter()?;
    let hand = r.varint()? as usize;
    let n = r.count(2)?;
    let mut slots = Vec::with_capacity(n);
    for _ in 0..n {
        let gen =
            u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("generation overflow"))?;
        let item = match r.u8()? {
            0 => None,
            1 => {
                let name = r.str(MAX_NAME_LEN)?;
                let popularity = r.f64()?;
                let views = r.counter()?;
                let mean_duration_s = r.f32()?;
                let size_bytes = r.counter()?;
                let stamp = u32::try_from(r.varint()?)
                    .map_err(|_| CodecError::Invalid("stamp overflow"))?;
                let peer_views = r.counter()?;
                let peer_popularity = r.f64()?;
                Some(Item {
                    name: name.into(),
                    fp: fingerprint(name.as_bytes()),
                    popularity,
                    views,
                    ln_views: (1.0 + (views + peer_views) as f32).ln(),
                    mean_duration_s,
                    size_bytes,
                    stamp,
                    peer_views,
                    peer_popularity,
                    demand: 0.0,
                })
            }
            _ => return Err(CodecError::Invalid("bad slot flag")),
        };
        slots.push((gen, item));
    }
    let mut seen_fp = std::collections::HashSet::with_capacity(slots.len());
    for (_, item) in &slots {
        if let Some(i) = item {
            if !seen_fp.insert(i.fp) {
                return Err(CodecError::Invalid("duplicate item in catalog"));
            }
        }
    }
    let catalog = Catalog::from_slots(slots, hand);
    let rows = decode_rows(&mut r, &catalog)?;
    let epoch = u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("epoch overflow"))?;
    let last_ts_ms = r.time()?;
    let landmark_epoch =
        u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("epoch overflow"))?;
    let peer_rows = decode_rows(&mut r, &catalog)?;
    let mut pv = [0u64; 4];
    for v in &mut pv {
        *v = r.counter()?;
    }
    let peers = Peers {
        rows: Transitions::from_rows(peer_rows, 0),
        views_total: pv[0],
        round: pv[1],
        rounds: pv[2],
        last_import_bytes: pv[3],
        last_import_ms: r.time()?,
    };
    let board = Board::rebuild(&catalog);
    let mut global = GlobalModel {
        catalog,
        transitions: Transitions::from_rows(rows, epoch),
        decay,
        pop_decay,
        demand_decay: Decay::new(0, 0),
        demand_ticks: 0,
        board,
        views_total,
        peers,
        local: Transitions::default(),
        last_ts_ms,
        landmark_epoch,
        peer_order: Vec::new(),
    };
    global.rebuild_peer_order();
    let n = r.count(13)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.str(MAX_NAME_LEN)?.to_owned();
        let size = r.varint()?;
        let segment = match r.u8()? {
            0 => Segment::Lru,
            1 => Segment::Core,
            2 => Segment::Prefetch,
            _ => return Err(CodecError::Invalid("bad cache segment")),
        };
        let unused_prefetch = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(CodecError::Invalid("bad prefetch flag")),
        };
        let freq = r.f64()?;
        let last = r.counter()?;
        entries.push(CachedItem {
            key,
            size,
            segment,
            freq,
            last,
            unused_prefetch,
        });
    }
    let tick = r.counter()?;
    let target = r.f64()?;
    let k = r.varint()? as usize;
    let wr = u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("window overflow"))?;
    let wf = u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("window overflow"))?;
    let fresh = Budget::new(target, k).parts();
    let (price, credit) = if version >= 2 {
        (r.f64()?, r.f64()?)
    } else {
        (fresh.price, fresh.credit)
    };
    let mut budget = BudgetParts {
        target,
        k,
        window_requests: wr,
        window_fetches: wf,
        price,
        credit,
        window_deepest: 0,
        window_prefetches: 0,
        window_used: 0,
    };
    let mut cs = [0u64; 6];
    for v in &mut cs {
        *v = r.counter()?;
    }
    let cache_stats = CacheStats {
        hits: cs[0],
        misses: cs[1],
        prefetches: cs[2],
        prefetch_used: cs[3],
        prefetch_unused_evicted: cs[4],
        evictions: cs[5],
    };
    let mut st = [0u64; 6];
    for v in &mut st {
        *v = r.counter()?;
    }
    let mut stats = Stats {
        records: st[0],
        skips: st[1],
        predictions: st[2],
        plays: st[3],
        forgets: st[4],
        dp_clipped: st[5],
        ..Stats::default()
    };
    let n = r.count(2)?;
    for _ in 0..n {
        let d = r.str(MAX_NAME_LEN)?.to_owned();
        stats.device_views.insert(d, r.counter()?);
    }
    if version >= 3 {
        global.demand_ticks = r.counter()?;
        global.demand_decay = Decay::new(r.counter()?, r.time()?);
        // A clock set ahead of its own time would weigh every new request 0 for good.
        if !(0..=global.demand_ticks as i64).contains(&global.demand_decay.landmark()) {
            return Err(CodecError::Invalid("demand clock out of range"));
        }
        for item in global.catalog.items_mut() {
            item.demand = r.f64()?;
            if item.demand < 0.0 {
                return Err(CodecError::Invalid("negative demand"));
            }
        }
    } else {
        // Before version 3 the cache was ordered by popularity, on another clock: start
        // its frequencies afresh (recency still orders the core until requests return).
        global.demand_ticks = global.views_total;
        global.demand_decay = Decay::new(config.demand_half_life(), global.views_total as i64);
        for e in &mut entries {
            e.freq = 0.0;
        }
    }
    if version >= 4 {
        let n = r.count(1)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = u32::try_from(r.varint()?)
                .ok()
                .and_then(|s| global.catalog.at(s))
                .ok_or(CodecError::Invalid("board names an empty slot"))?;
            items.push(slot.0);
        }
        global.board = Board::restore(items, &global.catalog)
            .ok_or(CodecError::Invalid("board repeats an item or is too long"))?;
    }
    let mut learned = None;
    if version >= 5 {
        budget.window_deepest = r.varint()?.min(u64::from(u32::MAX)) as usize;
        let mode = match (r.u8()?, r.f64()?) {
            (0, s) => ShareMode::Fixed(s),
            (1, s) => ShareMode::Adaptive(s),
            _ => return Err(CodecError::Invalid("bad share mode")),
        };
        learned = Some(LearnedShare {
            mode,
            share: r.f64()?,
            core: decode_ghost(&mut r)?,
            prefetch: decode_ghost(&mut r)?,
        });
    }
    if version >= 6 {
        global.local = Transitions::from_rows(decode_rows(&mut r, &global.catalog)?, 0);
    }
    if version >= 7 {
        let mut count =
            || u32::try_from(r.varint()?).map_err(|_| CodecError::Invalid("window overflow"));
        budget.window_prefetches = count()?;
        budget.window_used = count()?;
    }
    let mut dropped = (Vec::new(), false);
    if version >= 8 {
        let n = r.count(1)?;
        if n > crate::cache::DROPPED_MAX {
            return Err(CodecError::Invalid("too many dropped keys"));
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(Box::from(r.str(MAX_NAME_LEN)?));
        }
        let overflow = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(CodecError::Invalid("bad dropped-overflow flag")),
        };
        dropped = (keys, overflow);
    }
    r.end()?;
    let mut cache = EdgeCache::new(config.cache_policy, config.cache_capacity_bytes);
    cache.configure(
        config.cache_policy,
        config.cache_capacity_bytes,
        config.share_mode(),
        Budget::default(),
    );
    if let Some(l) = learned {
        cache.adopt(l);
    }
    cache.restore(entries, cache_stats, tick, Budget::from_parts(budget));
    // After the restore, which must not count as drops of its own.
    cache.set_dropped(dropped.0, dropped.1);
    Ok(Engine::from_parts(config, global, cache, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::View;

    fn bounds() -> UserBounds {
        Config::default().user_bounds()
    }

    fn trained() -> (Engine, Vec<UserState>) {
        let cfg = Config {
            cache_capacity_bytes: 8,
            default_item_size: 1,
            ..Config::default()
        };
        let mut e = Engine::new(cfg).unwrap();
        let mut users = vec![UserState::default(); 5];
        for t in 0..200i64 {
            let u = &mut users[(t % 5) as usize];
            let item = format!("C{}", (t * 7) % 23);
            let v = View {
                item: &item,
                ts_ms: t * 1000,
                duration_s: Some(40),
                device: Some("TV"),
            };
            e.play(u, &v, None);
        }
        (e, users)
    }

    #[test]
    fn user_round_trips() {
        let (_, users) = trained();
        for u in &users {
            let blob = encode_user(u);
            assert_eq!(&decode_user(&blob, bounds()).unwrap(), u);
        }
    }

    #[test]
    fn node_round_trips_to_identical_predictions() {
        let (mut e, users) = trained();
        let blob = encode_node(&mut e);
        let mut d = decode_node(&blob, e.config().clone()).unwrap();
        assert_eq!(encode_node(&mut d), blob);
        for u in &users {
            assert_eq!(d.predict(Some(u), 10, false), e.predict(Some(u), 10, false));
        }
        assert_eq!(d.cache().entries(), e.cache().entries());
    }

    /// A reloaded node answers every later play as the node that never stopped: the cache's
    /// learned split, both ghosts and the controller's window travel with it.
    /// Drops logged between plays (a lowered capacity) survive a reload: the next play
    /// reports the same delta on the reloaded node as on its twin.
    #[test]
    fn pending_drops_survive_a_reload() {
        let (mut e, mut users) = trained();
        let mut c = e.config().clone();
        c.cache_capacity_bytes = 3;
        e.set_config(c).unwrap();
        let pending = e.cache().dropped().0.len();
        assert!(pending > 0, "the lowered capacity evicted");
        let blob = encode_node(&mut e);
        let mut twin = decode_node(&blob, e.config().clone()).unwrap();
        assert_eq!(encode_node(&mut twin), blob, "re-encodes byte for byte");
        let mut other = users.clone();
        let v = View {
            item: "C3",
            ts_ms: 10_000_000,
            duration_s: None,
            device: None,
        };
        let a = e.play(&mut users[0], &v, None);
        let b = twin.play(&mut other[0], &v, None);
        assert_eq!(a, b);
        assert!(a.dropped.len() >= pending);
    }

    #[test]
    fn a_reloaded_node_plays_on_exactly_as_its_twin() {
        let cfg = Config {
            cache_capacity_bytes: 40,
            default_item_size: 1,
            prefetch_budget: 2.0,
            ..Config::default()
        };
        let mut e = Engine::new(cfg.clone()).unwrap();
        let mut users = vec![UserState::default(); 30];
        // A fixed pseudo-random walk: viewers with tastes, items of several popularities.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut step = |t: i64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x % 30) as usize;
            let item = format!(
                "C{}",
                (x >> 8) % (20 + 60 * ((x >> 20) % 2)) + (u as u64 % 3) * 7
            );
            (u, item, t * 1000)
        };
        let plays: Vec<_> = (0..6000).map(&mut step).collect();
        for (u, item, ts) in &plays[..3000] {
            let v = View {
                item,
                ts_ms: *ts,
                duration_s: Some(40),
                device: None,
            };
            e.play(&mut users[*u], &v, None);
        }
        assert_ne!(
            e.cache().prefetch_share(),
            cfg.share_mode().start(),
            "the split has learned something"
        );
        let blob = encode_node(&mut e);
        let mut d = decode_node(&blob, cfg).unwrap();
        assert!(
            encode_node(&mut d) == blob,
            "the reload re-encodes to its blob"
        );
        let mut twin_users = users.clone();
        for (n, (u, item, ts)) in plays[3000..].iter().enumerate() {
            let v = View {
                item,
                ts_ms: *ts,
                duration_s: Some(40),
                device: None,
            };
            let a = e.play(&mut users[*u], &v, None);
            let b = d.play(&mut twin_users[*u], &v, None);
            assert_eq!(a, b, "play {n} after the reload");
        }
        assert_eq!(e.cache().stats(), d.cache().stats());
        assert!(
            encode_node(&mut d) == encode_node(&mut e),
            "the twins hold the same node"
        );
    }

    /// The version 7 and 8 sections of `e`'s blob.
    fn window_use_section(e: &mut Engine) -> Vec<u8> {
        let mut w = Writer::default();
        encode_window_use(&mut w, e.parts().1);
        encode_dropped(&mut w, e.parts().1);
        w.buf
    }

    /// A version 6 node (before the controller counted its window's prefetch uses) loads
    /// with the same model and cache, the counts started afresh.
    #[test]
    fn a_version_6_node_still_loads() {
        let (mut e, users) = trained();
        let blob = encode_node(&mut e);
        let v7 = window_use_section(&mut e).len();
        let mut w = Writer::frame(Kind::Node, 6);
        w.buf
            .extend_from_slice(&blob[HEADER_LEN..blob.len() - TRAILER_LEN - v7]);
        let mut old = decode_node(&w.finish(), e.config().clone()).expect("version 6 loads");
        for u in &users {
            assert_eq!(
                old.predict(Some(u), 10, false),
                e.predict(Some(u), 10, false)
            );
        }
        assert_eq!(old.cache().entries(), e.cache().entries());
        let (a, b) = (old.cache().budget().parts(), e.cache().budget().parts());
        assert_eq!((a.window_prefetches, a.window_used), (0, 0));
        assert_eq!((a.price, a.credit), (b.price, b.credit));
    }

    /// The version 4 to 7 sections of `e`'s blob: the board's slots, the cache's learning,
    /// the local-only rows, the controller's window use.
    fn sections_after_demand(e: &mut Engine) -> Vec<u8> {
        let mut w = Writer::default();
        let (g, cache, _) = e.parts();
        w.varint(g.board.items().len() as u64);
        for r in g.board.items() {
            w.varint(u64::from(r.slot));
        }
        encode_learning(&mut w, cache);
        encode_rows(&mut w, &g.local);
        encode_window_use(&mut w, cache);
        encode_dropped(&mut w, cache);
        w.buf
    }

    /// A version 2 node (before the cache's demand clock) loads with the same model and
    /// cache contents, its cache frequencies started afresh.
    #[test]
    fn a_version_2_node_still_loads() {
        let (mut e, users) = trained();
        let blob = encode_node(&mut e);
        let later = sections_after_demand(&mut e).len();
        let (g, _, _) = e.parts();
        let mut tail = Writer::default();
        tail.varint(g.demand_ticks);
        tail.varint(g.demand_decay.half_life());
        tail.ivarint(g.demand_decay.landmark());
        let live = g.catalog.slots().filter(|(_, i)| i.is_some()).count();
        // Rebuild the frame around the payload without the version 3 to 6 sections.
        let end = blob.len() - TRAILER_LEN - later;
        let payload = &blob[HEADER_LEN..end - tail.buf.len() - 8 * live];
        let mut w = Writer::frame(Kind::Node, 2);
        w.buf.extend_from_slice(payload);
        let mut old = decode_node(&w.finish(), e.config().clone()).expect("version 2 loads");
        for u in &users {
            assert_eq!(
                old.predict(Some(u), 10, false),
                e.predict(Some(u), 10, false)
            );
        }
        let keys = |c: &crate::cache::EdgeCache| {
            let mut k: Vec<String> = c.entries().into_iter().map(|i| i.key).collect();
            k.sort();
            k
        };
        assert_eq!(keys(old.cache()), keys(e.cache()));
        assert!(old.cache().entries().iter().all(|i| i.freq == 0.0));
        assert!(old.catalog().iter().all(|(_, i)| i.demand == 0.0));
    }

    /// A demand clock ahead of the node's own count of views is refused: it would weigh
    /// every new request 0 for good.
    #[test]
    fn a_demand_clock_from_the_future_is_refused() {
        let (mut e, _) = trained();
        let blob = encode_node(&mut e);
        let later = sections_after_demand(&mut e).len();
        let (g, _, _) = e.parts();
        let live = g.catalog.slots().filter(|(_, i)| i.is_some()).count();
        let mut tail = Writer::default();
        tail.varint(g.demand_ticks);
        tail.varint(g.demand_decay.half_life());
        tail.ivarint(g.demand_decay.landmark());
        let cut = blob.len() - TRAILER_LEN - later - tail.buf.len() - 8 * live;
        let mut w = Writer::frame(Kind::Node, NODE_VERSION);
        w.buf.extend_from_slice(&blob[HEADER_LEN..cut]);
        w.varint(g.demand_ticks);
        w.varint(g.demand_decay.half_life());
        w.ivarint(g.demand_ticks as i64 + 1);
        w.buf.extend_from_slice(
            &blob[blob.len() - TRAILER_LEN - later - 8 * live..blob.len() - TRAILER_LEN],
        );
        assert_eq!(
            decode_node(&w.finish(), e.config().clone()).err(),
            Some(CodecError::Invalid("demand clock out of range"))
        );
    }

    #[test]
    fn every_corruption_is_an_error_not_a_panic() {
        let (mut e, users) = trained();
        for blob in [encode_user(&users[0]), encode_node(&mut e)] {
            for cut in 0..blob.len() {
                assert!(decode_user(&blob[..cut], bounds()).is_err());
                assert!(decode_node(&blob[..cut], Config::default()).is_err());
            }
            for i in 0..blob.len() {
                let mut b = blob.clone();
                b[i] ^= 0x5a;
                assert!(decode_user(&b, bounds()).is_err() || i < 4);
                assert!(decode_node(&b, Config::default()).is_err() || i < 4);
            }
        }
        assert_eq!(
            decode_user(b"nonsense-blob-x", bounds()),
            Err(CodecError::BadMagic)
        );
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        // A well-framed payload announcing 2^60 history entries.
        let mut w = Writer::frame(Kind::User, USER_VERSION);
        w.varint(1);
        w.ivarint(0);
        w.u8(0);
        w.varint(1 << 60);
        let blob = w.finish();
        assert_eq!(
            decode_user(&blob, bounds()),
            Err(CodecError::Invalid("count exceeds the data present"))
        );
        let mut b = encode_user(&UserState::default());
        b[5] = 9;
        let n = b.len();
        let crc = crc32fast::hash(&b[..n - 4]);
        b[n - 4..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode_user(&b, bounds()),
            Err(CodecError::UnsupportedVersion { found: 9, .. })
        ));
    }

    /// A user blob with `n` views of distinct items, each weighing `weight`, and `records`.
    /// Written in version 1's layout (no clipped flags), which still loads.
    fn big_user(n: usize, weight: f32, records: u64) -> Vec<u8> {
        let mut w = Writer::frame(Kind::User, 1);
        w.varint(records);
        w.ivarint(1);
        w.u8(0);
        w.varint(n as u64);
        for i in 0..n {
            w.str(&format!("I{i}"));
            w.ivarint(i as i64);
            w.f32(weight);
        }
        w.varint(n as u64);
        for i in 0..n {
            w.u64(fingerprint(format!("I{i}").as_bytes()));
        }
        w.varint(n as u64 - 1);
        for i in 1..n {
            w.u64(fingerprint(format!("I{}", i - 1).as_bytes()));
            w.u64(fingerprint(format!("I{i}").as_bytes()));
            w.f32(weight * i as f32);
        }
        w.f32(0.0);
        w.varint(0);
        w.varint(0);
        w.finish()
    }

    /// Every per-user bound applies at decode, as learning applies it: the latest views and
    /// seen items, the heaviest own transitions. A blob far over the bounds loads bounded.
    #[test]
    fn decoding_applies_the_user_bounds() {
        let b = UserBounds {
            history_len: 3,
            seen_max: 5,
            personal_max: 2,
        };
        let u = decode_user(&big_user(1000, 1.0, 1000), b).unwrap();
        let h: Vec<&str> = u.history().iter().map(|h| &*h.item).collect();
        assert_eq!(h, ["I997", "I998", "I999"]);
        let seen: Vec<u64> = u.seen().collect();
        let latest: Vec<u64> = (995..1000)
            .map(|i| fingerprint(format!("I{i}").as_bytes()))
            .collect();
        assert_eq!(seen, latest);
        assert!(u.has_seen(latest[0]) && !u.has_seen(fingerprint(b"I994")));
        let weights: Vec<f32> = u.personal().map(|t| t.weight).collect();
        assert_eq!(weights, [998.0, 999.0]);
        assert_eq!(u.records(), 1000);
        // What it holds re-encodes to a blob that decodes to the same user.
        assert_eq!(decode_user(&encode_user(&u), b).unwrap(), u);
    }

    /// Weights past the model's range are held to it: a view weighs at most 1, a
    /// transition at most MAX_WEIGHT, and scoring the user stays finite.
    #[test]
    fn huge_weights_are_held_to_the_models_range() {
        let mut u = decode_user(&big_user(10, 3e38, 10), bounds()).unwrap();
        assert!(u.history().iter().all(|h| h.weight == 1.0));
        assert!(u.personal().all(|t| t.weight <= MAX_WEIGHT));
        let (mut e, _) = trained();
        let v = View {
            item: "I3",
            ts_ms: 100,
            duration_s: None,
            device: None,
        };
        e.record(&mut u, &v);
        let p = e.predict(Some(&u), 10, true);
        assert!(
            !p.is_empty() && p.iter().all(|p| p.score.is_finite()),
            "{p:?}"
        );
        assert_eq!(decode_user(&encode_user(&u), bounds()).unwrap(), u);
    }

    /// A user restored at the counter limit keeps counting at it: the state it reaches
    /// re-encodes to a blob that decodes to the same user (a tenant could otherwise make
    /// the RDB unloadable with a crafted blob and one more view). Larger counts saturate.
    #[test]
    fn a_user_at_the_counter_limit_reloads() {
        for claimed in [MAX_COUNTER, u64::MAX] {
            let mut u = decode_user(&big_user(2, 1.0, claimed), bounds()).unwrap();
            assert_eq!(u.records(), MAX_COUNTER);
            let (mut e, _) = trained();
            let v = View {
                item: "C2",
                ts_ms: 5,
                duration_s: None,
                device: None,
            };
            e.record(&mut u, &v);
            let again = decode_user(&encode_user(&u), bounds()).expect("reloads");
            assert_eq!(again, u);
            assert_eq!(again.records(), MAX_COUNTER);
        }
    }

    /// Repeated seen items or transitions are structure no writer produces: refused.
    #[test]
    fn repeated_entries_are_refused() {
        let mut w = Writer::frame(Kind::User, USER_VERSION);
        w.varint(1);
        w.ivarint(0);
        w.u8(0);
        w.varint(0);
        w.varint(2);
        w.u64(7);
        w.u64(7);
        w.varint(0);
        w.f32(0.0);
        w.varint(0);
        w.varint(0);
        assert_eq!(
            decode_user(&w.finish(), bounds()),
            Err(CodecError::Invalid("repeated seen item"))
        );
    }

    /// The writer never emits a non-finite float, whatever it is handed.
    #[test]
    fn non_finite_floats_are_written_finite() {
        let mut w = Writer::frame(Kind::User, USER_VERSION);
        for v in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            w.f32(v);
        }
        w.f64(f64::INFINITY);
        let blob = w.finish();
        let (mut r, _) = Reader::open(&blob, Kind::User, USER_VERSION).unwrap();
        assert_eq!(r.f32().unwrap(), f32::MAX);
        assert_eq!(r.f32().unwrap(), f32::MIN);
        assert_eq!(r.f32().unwrap(), 0.0);
        assert_eq!(r.f64().unwrap(), f64::MAX);
    }

    /// A node restored under live users (EDGE.NODE.RESTORE in an AOF) reuses slot numbers
    /// and generations for other items: a user's remembered hints must not carry over, or
    /// a viewer of A2 is scored as a viewer of whatever now sits in A2's slot.
    #[test]
    fn hints_do_not_outlive_their_catalog() {
        let cfg = Config::default();
        let node = |prefix: &str, viewer: &mut UserState| {
            let mut e = Engine::new(cfg.clone()).unwrap();
            let mut u = UserState::default();
            for t in 0..60i64 {
                let item = format!("{prefix}{}", t % 6);
                let v = View {
                    item: &item,
                    ts_ms: t * 1000,
                    duration_s: None,
                    device: None,
                };
                e.record(&mut u, &v);
            }
            let item = format!("{prefix}2");
            let v = View {
                item: &item,
                ts_ms: 100_000,
                duration_s: None,
                device: None,
            };
            e.record(viewer, &v);
            e
        };
        let mut viewer = UserState::default();
        let _a = node("A", &mut viewer);
        let mut b = node("B", &mut UserState::default());
        let mut restored = decode_node(&encode_node(&mut b), cfg.clone()).unwrap();
        let unhinted = decode_user(&encode_user(&viewer), bounds()).unwrap();
        let names =
            |p: Vec<crate::scoring::Prediction>| p.into_iter().map(|p| p.item).collect::<Vec<_>>();
        assert_eq!(
            names(restored.predict(Some(&viewer), 5, false)),
            names(restored.predict(Some(&unhinted), 5, false)),
        );
    }
}
