//! One user's state as a blob.

use crate::catalog::Hint;
use crate::error::CodecError;
use crate::hash::fingerprint;
use crate::user::{HistoryEntry, PersonalTransition, UserBounds, UserParts, UserState};
use crate::wire::{Kind, Reader, Writer, MAX_NAME_LEN};

/// Current version of the user payload.
/// Version 2 added whether each history entry was privacy-clipped (older blobs load with
/// none clipped).
pub const USER_VERSION: u16 = 2;

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
/// Magnitudes are held to the model's range (counters to [`crate::wire::MAX_COUNTER`], a view's weight
/// to [0, 1], transition weights to [`crate::wire::MAX_WEIGHT`]); structure that no writer produces
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
