//! Demand-fetch cache policies and Belady's MIN: the classic caches the edge cache is judged
//! against.
//!
//! Every policy sees only the request stream (no prediction, no prefetch): a request found
//! in the cache is a hit; a miss fetches the item from the origin and admits it per the
//! policy (W-TinyLFU may reject it; items larger than the whole cache are never admitted).
//! Items are dense indices (see [`crate::logs::Event::item`]) and capacities are in the
//! same unit as sizes: items when every size is 1, bytes otherwise.
//!
//! Tie-breaking is deterministic and documented per policy, so runs are reproducible and
//! match the reference figures (MovieLens 100K: LRU and Belady exactly, the others within
//! about 0.01).
//!
//! Why not a crate: the well-kept Rust caches (`moka`, `quick_cache`, `mini-moka`) are
//! built for concurrent production use; their W-TinyLFU/S3-FIFO variants evict
//! asynchronously or approximately and expose no exact per-request hit accounting, so a
//! single-threaded, deterministic simulation had to be written here.

mod arc;
mod belady;
mod lfu;
mod list;
mod lru;
mod s3fifo;
mod wtinylfu;

pub use arc::ArcCache;
pub use belady::Belady;
pub use lfu::Lfu;
pub use list::DList;
pub use lru::Lru;
pub use s3fifo::S3Fifo;
pub use wtinylfu::{FreqSketch, WTinyLfu};

use std::sync::Arc;

/// A cache driven by demand requests only.
pub trait DemandCache {
    /// Requests `item` of `size` units at trace position `t`; returns `true` on a hit. On a
    /// miss the item is fetched and admitted per the policy.
    fn request(&mut self, t: usize, item: u32, size: u64) -> bool;
    /// Whether `item` is resident.
    fn contains(&self, item: u32) -> bool;
    /// Units held and capacity. Policies that keep a single [`Space`] return it; the others
    /// (ARC, W-TinyLFU) sum their lists.
    fn space(&self) -> Space;
    /// Units held.
    fn used(&self) -> u64 {
        self.space().used
    }
    /// Capacity in units.
    fn capacity(&self) -> u64 {
        self.space().cap
    }
}

/// Units held against a capacity, with the admission rules LRU, LFU, S3-FIFO and Belady
/// share: an item larger than the whole cache is never admitted (it bypasses the cache),
/// and any other miss evicts until it fits. Kept in one place so the policies cannot drift
/// apart on these rules, which the reference figures depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Capacity in units.
    pub cap: u64,
    /// Units held.
    pub used: u64,
}

impl Space {
    /// An empty cache of `cap` units.
    pub fn new(cap: u64) -> Self {
        Space { cap, used: 0 }
    }

    /// Whether an item of `size` units may be admitted at all.
    pub fn admits(&self, size: u64) -> bool {
        size <= self.cap
    }

    /// Whether `size` more units would exceed the capacity.
    pub fn overflows(&self, size: u64) -> bool {
        self.used + size > self.cap
    }

    /// Calls `evict` until `size` more units fit, subtracting the units each call frees.
    /// The caller has checked [`Space::admits`], so the cache is non-empty whenever it is
    /// still too full and `evict` always has a victim.
    pub fn make_room(&mut self, size: u64, mut evict: impl FnMut() -> u64) {
        while self.overflows(size) {
            self.used -= evict();
        }
    }
}

/// The demand policies `loadgen eval` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Least recently used.
    Lru,
    /// Least frequently used, counts kept while resident, ties evicted LRU-first.
    Lfu,
    /// Adaptive Replacement Cache (Megiddo & Modha 2003); unit sizes only.
    Arc,
    /// S3-FIFO (Yang et al., SOSP 2023).
    S3Fifo,
    /// W-TinyLFU (Einziger et al.), Caffeine's layout.
    WTinyLfu,
    /// Belady's MIN: evict the resident item used farthest in the future (offline optimum of
    /// a demand-fetch cache with unit sizes).
    Belady,
}

impl Policy {
    /// All policies, in report order.
    pub const ALL: [Policy; 6] = [
        Policy::Lru,
        Policy::Lfu,
        Policy::Arc,
        Policy::S3Fifo,
        Policy::WTinyLfu,
        Policy::Belady,
    ];

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::Lfu => "lfu",
            Policy::Arc => "arc",
            Policy::S3Fifo => "s3fifo",
            Policy::WTinyLfu => "w-tinylfu",
            Policy::Belady => "belady",
        }
    }

    /// Whether the policy handles items of different sizes.
    pub fn supports_sizes(self) -> bool {
        !matches!(self, Policy::Arc)
    }

    /// A fresh cache of `capacity` units over `n_items` items. `mean_size` sizes
    /// W-TinyLFU's sketch; `next_use` (from [`crate::logs::next_use`]) is what Belady
    /// needs to see the future.
    pub fn build(
        self,
        capacity: u64,
        n_items: usize,
        mean_size: u64,
        next_use: &Arc<[usize]>,
    ) -> Box<dyn DemandCache + Send> {
        match self {
            Policy::Lru => Box::new(Lru::new(capacity, n_items)),
            Policy::Lfu => Box::new(Lfu::new(capacity, n_items)),
            Policy::Arc => Box::new(ArcCache::new(capacity as usize, n_items)),
            Policy::S3Fifo => Box::new(S3Fifo::new(capacity, n_items)),
            Policy::WTinyLfu => Box::new(WTinyLfu::new(capacity, n_items, mean_size.max(1))),
            Policy::Belady => Box::new(Belady::new(capacity, n_items, Arc::clone(next_use))),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::DemandCache;

    /// Runs a unit-size trace of single letters and returns the hit pattern as `H`/`m`.
    pub fn pattern(c: &mut dyn DemandCache, trace: &str) -> String {
        trace
            .bytes()
            .enumerate()
            .map(|(t, b)| {
                if c.request(t, u32::from(b - b'a'), 1) {
                    'H'
                } else {
                    'm'
                }
            })
            .collect()
    }

    /// What the hand-checked traces share: runs `trace` on `c`, asserts the hit pattern is
    /// `expected`, and returns the cache for the test's own checks of what is resident.
    #[track_caller]
    pub fn expect_pattern<C: DemandCache>(mut c: C, trace: &str, expected: &str) -> C {
        assert_eq!(pattern(&mut c, trace), expected);
        c
    }

    /// Item indices of a letter trace.
    pub fn items(trace: &str) -> Vec<crate::logs::Event> {
        trace
            .bytes()
            .map(|b| crate::logs::Event {
                user: 0,
                item: u32::from(b - b'a'),
                ts_ms: 0,
                duration_s: None,
                device: None,
                size: None,
            })
            .collect()
    }
}
