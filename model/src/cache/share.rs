//! The split of the predictive cache between its demand core and its prefetch segment,
//! fixed or learned online.
//!
//! No fixed split suits every workload: on MovieLens 100K at one fetch per request a 25 %
//! prefetch share beats 10 % at every cache size, on simulated series-and-films traffic 10 %
//! beats 25 %. The adaptive split learns it the way ARC learns its recency/frequency split:
//! each part keeps a *ghost*, the keys (no content) it evicted most recently, and a missed
//! request that finds its key in a ghost is a hit that part would have had if it were a
//! little larger. A core-ghost hit moves the split towards the core, a prefetch-ghost hit
//! towards the prefetch segment, each by the missed item's size.
//!
//! Both ghosts hold the same number of bytes, [`GHOST_SHARE`] of the capacity, whatever the
//! split, so they measure the same thing for both parts: the hits the next
//! `GHOST_SHARE × capacity` bytes would earn. The split settles where the two marginal gains
//! are equal, which is where whole-cache hits peak when the gains fall with size.
//!
//! Each ghost must forget in its own part's order to say what a larger part would hold. The
//! prefetch segment evicts by recency, so its ghost is a recency queue. The core is ordered
//! by frequency and refuses newcomers rarer than its victim, so a larger core would hold
//! the next most frequent items, refused ones included: its ghost keeps the most frequent
//! of the keys it evicted *or refused*. A recency ghost of core evictions alone (ARC's) sees
//! almost none of those; on MovieLens 100K it drifted to the 95 % maximum and lost
//! (0.193/0.324/0.508 hit ratio at 50/100/200 items and one fetch per request, against
//! 0.207/0.340/0.529 for the fixed 10 %), and adding refusals to a recency ghost flooded it
//! with one-off items (0.178 / - / 0.487).
//!
//! The learned share and both ghosts are persisted with the cache ([`LearnedShare`]), so a
//! reloaded edge answers every later request as the edge that never stopped would.

use std::collections::{BTreeMap, HashMap};

use super::segmented;
use crate::hash::{fingerprint, FpBuild};

/// Ghost size of each part, as a share of the capacity.
pub const GHOST_SHARE: f64 = 0.1;
/// Bounds of a learned share: each part keeps some room to show what it is worth.
pub const SHARE_MIN: f64 = 0.05;
/// See [`SHARE_MIN`].
pub const SHARE_MAX: f64 = 0.95;

/// How the split is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShareMode {
    /// A fixed prefetch share.
    Fixed(f64),
    /// Learned online, starting from the given share.
    Adaptive(f64),
}

impl ShareMode {
    /// The share the cache starts from.
    pub fn start(self) -> f64 {
        match self {
            ShareMode::Fixed(s) => s.clamp(0.0, 1.0),
            ShareMode::Adaptive(s) => s.clamp(SHARE_MIN, SHARE_MAX),
        }
    }
}

/// Keys one part no longer holds, bounded in bytes, forgotten lowest *rank* first and
/// oldest first among equal ranks. The prefetch segment ranks all its ghosts equal (it
/// evicts by recency, so its ghost does too); the core ranks them by frequency, so its ghost
/// holds what a slightly larger frequency-ordered core would hold.
#[derive(Debug, Clone, Default)]
pub struct Ghost {
    /// By the key's fingerprint (a ghost is probed on every miss and admission): its place
    /// in `order` and its size. A fingerprint shared by two keys (about 2^-64 a pair) only
    /// makes one ghost stand for both.
    live: HashMap<u64, ((u64, u64), u64), FpBuild>,
    order: BTreeMap<(u64, u64), Box<str>>,
    bytes: u64,
    seq: u64,
}

/// A key a ghost remembers, for persistence. Ghosts list their keys lowest rank (first
/// to be forgotten) first.
#[derive(Debug, Clone, PartialEq)]
pub struct GhostKey {
    /// Item id.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The frequency the key is ranked by (0 in the prefetch ghost, which ranks by age).
    pub freq: f64,
}

impl Ghost {
    /// Every remembered key, first to be forgotten first.
    fn keys(&self) -> Vec<GhostKey> {
        self.order
            .iter()
            .map(|(&(rank, _), k)| GhostKey {
                key: k.to_string(),
                size: self.live.get(&fingerprint(k.as_bytes())).map_or(0, |e| e.1),
                freq: if rank == 0 { 0.0 } else { f64::from_bits(rank) },
            })
            .collect()
    }

    /// Remembers `key` (of `size` bytes) at `rank`, forgetting the lowest beyond `cap`
    /// bytes (possibly `key` itself).
    pub fn push(&mut self, key: &str, size: u64, rank: u64, cap: u64) {
        self.remove(key);
        self.seq += 1;
        let pos = (rank, self.seq);
        self.live.insert(fingerprint(key.as_bytes()), (pos, size));
        self.order.insert(pos, key.into());
        self.bytes = self.bytes.saturating_add(size);
        self.trim(cap);
    }

    /// Forgets `key`; true if it was remembered.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.live.remove(&fingerprint(key.as_bytes())) {
            Some((pos, size)) => {
                self.bytes -= size;
                self.order.remove(&pos);
                true
            }
            None => false,
        }
    }

    /// Forgets the lowest keys until at most `cap` bytes are remembered.
    pub fn trim(&mut self, cap: u64) {
        while self.bytes > cap {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, size)) = self.live.remove(&fingerprint(k.as_bytes())) {
                self.bytes -= size;
            }
        }
    }

    /// Multiplies every rank by `factor` (ranks are frequency bits), keeping the order.
    pub fn rescale(&mut self, factor: f64) {
        let old = std::mem::take(&mut self.order);
        for ((rank, seq), k) in old {
            let r = segmented::freq_key(f64::from_bits(rank) * factor);
            if let Some(e) = self.live.get_mut(&fingerprint(k.as_bytes())) {
                e.0 = (r, seq);
            }
            self.order.insert((r, seq), k);
        }
    }

    /// Whether `key` is remembered.
    #[cfg(test)]
    pub fn contains(&self, key: &str) -> bool {
        self.live.contains_key(&fingerprint(key.as_bytes()))
    }

    /// Keys remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Bytes remembered.
    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Heap bytes of the bookkeeping.
    pub fn memory_bytes(&self) -> usize {
        let keys: usize = self.order.values().map(|k| k.len()).sum();
        self.live.capacity() * (std::mem::size_of::<(u64, ((u64, u64), u64))>() + 1)
            + self.order.len() * (std::mem::size_of::<((u64, u64), Box<str>)>() + 16)
            + keys
    }
}

/// Which part evicted a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The demand core.
    Core,
    /// The prefetch segment.
    Prefetch,
}

/// What an adaptive split has learned: the share and both ghosts. A cache restored with it
/// makes the same moves as the cache that saved it.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedShare {
    /// The mode it was learned under: a cache under another mode starts afresh.
    pub mode: ShareMode,
    /// The prefetch share reached.
    pub share: f64,
    /// The core's ghost, first to be forgotten first.
    pub core: Vec<GhostKey>,
    /// The prefetch segment's ghost, first to be forgotten first.
    pub prefetch: Vec<GhostKey>,
}

/// The ghosts of an adaptive split and the moves they call for.
#[derive(Debug, Clone, Default)]
pub struct Ghosts {
    core: Ghost,
    prefetch: Ghost,
}

impl Ghosts {
    /// Bytes each ghost may remember for a cache of `capacity` bytes.
    pub fn cap(capacity: u64) -> u64 {
        (capacity as f64 * GHOST_SHARE).round().max(1.0) as u64
    }

    /// Remembers a key `part` evicted (or, for the core, refused), with its request
    /// frequency.
    pub fn evicted(&mut self, part: Part, key: &str, size: u64, freq: f64, capacity: u64) {
        let cap = Self::cap(capacity);
        match part {
            Part::Core => self.core.push(key, size, segmented::freq_key(freq), cap),
            Part::Prefetch => self.prefetch.push(key, size, 0, cap),
        }
    }

    /// The engine's decay rescale, applied to the core ghost's frequencies.
    pub fn rescale(&mut self, factor: f64) {
        self.core.rescale(factor);
    }

    /// A key entered the cache: it is no longer a ghost.
    pub fn admitted(&mut self, key: &str) {
        self.core.remove(key);
        self.prefetch.remove(key);
    }

    /// A missed request for `key`: the part whose ghost held it, if any (the key is
    /// forgotten either way).
    pub fn missed(&mut self, key: &str) -> Option<Part> {
        let core = self.core.remove(key);
        let prefetch = self.prefetch.remove(key);
        match (core, prefetch) {
            (true, false) => Some(Part::Core),
            (false, true) => Some(Part::Prefetch),
            _ => None,
        }
    }

    /// Both ghosts' keys, core first, for persistence.
    pub fn keys(&self) -> (Vec<GhostKey>, Vec<GhostKey>) {
        (self.core.keys(), self.prefetch.keys())
    }

    /// Ghosts remembering `core` and `prefetch` (listed first-forgotten first) within the
    /// bound of a cache of `capacity` bytes.
    pub fn from_keys(core: &[GhostKey], prefetch: &[GhostKey], capacity: u64) -> Self {
        let mut g = Ghosts::default();
        for k in core {
            g.evicted(Part::Core, &k.key, k.size, k.freq, capacity);
        }
        for k in prefetch {
            g.evicted(Part::Prefetch, &k.key, k.size, k.freq, capacity);
        }
        g
    }

    /// The two ghosts, core first.
    #[cfg(test)]
    pub fn parts(&self) -> (&Ghost, &Ghost) {
        (&self.core, &self.prefetch)
    }

    /// Heap bytes of the bookkeeping.
    pub fn memory_bytes(&self) -> usize {
        self.core.memory_bytes() + self.prefetch.memory_bytes()
    }
}
