//! The edge cache: which items this edge can serve without going to the origin.
//!
//! Capacity is in bytes and items have sizes. Two policies:
//!
//! - [`CachePolicy::Lru`], the baseline: one recency list; prefetched items are ordinary
//!   entries and compete with demand items.
//! - [`CachePolicy::Predictive`], the prediction-aware policy (see [`segmented`]): demand
//!   items live in a frequency-ordered *core* that prefetches can never evict; prefetched
//!   items wait in their own *prefetch segment* (a share of the capacity), refreshed each
//!   time some viewer's prediction names them again, until a request uses them (they join
//!   the core) or they go stale and fall off its end. A controller ([`budget`]) spends at
//!   most a budget of origin fetches per request on the most confident predictions, and
//!   less when too few of its prefetches are used to pay for themselves.
//!
//! Under the predictive policy a missed item enters the core only if it is at least as
//! frequent as the core's next victim (TinyLFU's admission: a one-off must not push out an
//! item that is requested more; the miss costs the same fetch either way).
//!
//! Accounting follows the evaluation protocol: a request found in the cache is a hit; every
//! item brought from the origin, on a miss or by a prefetch, is one origin fetch; a prefetch
//! of an item already cached costs nothing.

mod budget;
mod list;
mod segmented;
mod share;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::hash::{fingerprint, FpBuild};
use crate::wire::bump;

pub use budget::{confidence, Budget, BudgetParts};
use list::{Links, List, Slab, NIL};
use segmented::{Core, CoreKey};
pub use share::{GhostKey, LearnedShare, ShareMode, GHOST_SHARE, SHARE_MAX, SHARE_MIN};
use share::{Ghosts, Part};

/// Eviction policy of the edge cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Least recently used, prefetches included: the baseline.
    Lru,
    /// Frequency core plus a protected, refreshed prefetch segment.
    Predictive,
}

impl CachePolicy {
    /// The name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CachePolicy::Lru => "lru",
            CachePolicy::Predictive => "predictive",
        }
    }
}

impl fmt::Display for CachePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CachePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "lru" => Ok(CachePolicy::Lru),
            "predictive" => Ok(CachePolicy::Predictive),
            _ => Err(format!(
                "unknown cache policy '{s}' (expected lru or predictive)"
            )),
        }
    }
}

/// Whether a request was served from the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from the cache.
    Hit,
    /// Fetched from the origin.
    Miss,
}

impl CacheOutcome {
    /// The status word of EDGE.PLAY's reply.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "HIT",
            CacheOutcome::Miss => "MISS",
        }
    }
}

/// Counters of the cache, all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests served from the cache.
    pub hits: u64,
    /// Requests that went to the origin.
    pub misses: u64,
    /// Items fetched from the origin by a prefetch.
    pub prefetches: u64,
    /// Prefetched items that a request used before they were evicted.
    pub prefetch_used: u64,
    /// Prefetched items evicted without ever being used.
    pub prefetch_unused_evicted: u64,
    /// Items evicted, for any reason.
    pub evictions: u64,
}

impl CacheStats {
    /// Origin fetches: demand misses plus prefetches.
    pub fn origin_fetches(&self) -> u64 {
        self.misses + self.prefetches
    }

    /// Fraction of requests served from the cache.
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses)
    }

    /// Origin fetches per request.
    pub fn fetches_per_request(&self) -> f64 {
        ratio(self.origin_fetches(), self.hits + self.misses)
    }

    /// Fraction of prefetched items that served a request before eviction. Items still
    /// cached and unused count against it, so early in a run it is a lower bound.
    pub fn prefetch_precision(&self) -> f64 {
        ratio(self.prefetch_used, self.prefetches)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Where an entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The single list of the LRU policy.
    Lru,
    /// The predictive policy's demand core.
    Core,
    /// The predictive policy's prefetch segment.
    Prefetch,
}

#[derive(Debug, Clone)]
struct Node {
    key: Box<str>,
    size: u64,
    links: Links,
    segment: Segment,
    /// Frequency the core orders by (the item's decayed request count).
    freq: f64,
    /// Request tick of the last use, the core's tie-breaker (older goes first).
    last: u64,
    /// Prefetched and not yet requested.
    unused_prefetch: bool,
}

#[derive(Debug, Clone, Default)]
struct Nodes(Vec<Node>);

impl Slab for Nodes {
    fn links(&mut self, i: u32) -> &mut Links {
        &mut self.0[i as usize].links
    }
}

/// Default share of the capacity reserved for prefetches when no budget sets it.
pub const DEFAULT_PREFETCH_SHARE: f64 = 0.1;
/// A cached entry, for persistence and inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedItem {
    /// Item id.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The segment holding it.
    pub segment: Segment,
    /// Core frequency.
    pub freq: f64,
    /// Tick of last use.
    pub last: u64,
    /// Prefetched and not yet used.
    pub unused_prefetch: bool,
}

/// The edge cache of one node.
#[derive(Debug, Clone)]
pub struct EdgeCache {
    policy: CachePolicy,
    capacity: u64,
    /// Share of the capacity reserved for prefetches (predictive policy).
    prefetch_share: f64,
    /// Whether that share is fixed or learned.
    share_mode: ShareMode,
    /// Recently evicted keys of each part, which teach an adaptive share.
    ghosts: Ghosts,
    /// Entries by their key's fingerprint: a play offers up to a hundred predictions and
    /// most are not cached, so a lookup is one probe of a u64 (the key itself is compared
    /// only on a hit) instead of a SipHash of the name.
    index: HashMap<u64, u32, FpBuild>,
    nodes: Nodes,
    free: Vec<u32>,
    /// LRU policy: everything. Predictive policy: the prefetch segment.
    list: List,
    list_bytes: u64,
    core: Core,
    core_bytes: u64,
    tick: u64,
    budget: Budget,
    stats: CacheStats,
    /// Keys that left the cache (evicted or invalidated) since the last
    /// [`EdgeCache::take_dropped`], oldest first, so a store holding the bytes can drop
    /// them too. Transient: never persisted, at most [`DROPPED_MAX`] long.
    dropped: Vec<Box<str>>,
    /// Whether keys left while the log was full: a store must then resynchronise from the
    /// cache's listing instead.
    dropped_overflow: bool,
}

/// Longest log of dropped keys kept between two drains (a play drains it): a lowered
/// capacity may evict the whole cache at once, and nobody may be draining.
pub const DROPPED_MAX: usize = 4096;

impl EdgeCache {
    /// An empty cache.
    pub fn new(policy: CachePolicy, capacity: u64) -> Self {
        EdgeCache {
            policy,
            capacity,
            prefetch_share: DEFAULT_PREFETCH_SHARE,
            share_mode: ShareMode::Fixed(DEFAULT_PREFETCH_SHARE),
            ghosts: Ghosts::default(),
            index: HashMap::default(),
            nodes: Nodes::default(),
            free: Vec::new(),
            list: List::default(),
            list_bytes: 0,
            core: Core::default(),
            core_bytes: 0,
            tick: 0,
            budget: Budget::default(),
            dropped: Vec::new(),
            dropped_overflow: false,
            stats: CacheStats::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> CachePolicy {
        self.policy
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Share of the capacity reserved for prefetches.
    pub fn prefetch_share(&self) -> f64 {
        self.prefetch_share
    }

    /// Bytes held.
    pub fn used_bytes(&self) -> u64 {
        self.list_bytes + self.core_bytes
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The prefetch-size controller.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Whether `key` is cached (no side effects).
    pub fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// The entry holding `key`. Two keys with one fingerprint (about 2^-64 for a pair)
    /// cannot both be cached: the second is simply never admitted (see [`EdgeCache::admit`]).
    fn find(&self, key: &str) -> Option<u32> {
        let &i = self.index.get(&fingerprint(key.as_bytes()))?;
        (*self.nodes.0[i as usize].key == *key).then_some(i)
    }

    /// Whether the prefetch share is fixed or learned.
    pub fn share_mode(&self) -> ShareMode {
        self.share_mode
    }

    fn adaptive(&self) -> bool {
        self.policy == CachePolicy::Predictive && matches!(self.share_mode, ShareMode::Adaptive(_))
    }

    /// Reconfigures policy, capacity, prefetch share and fetch budget, evicting down to the
    /// new limits. Switching policy re-files every entry into the new policy's segments. A
    /// learned share (and its ghosts) survives a change of capacity, not of the share mode.
    pub fn configure(
        &mut self,
        policy: CachePolicy,
        capacity: u64,
        share: ShareMode,
        budget: Budget,
    ) {
        self.budget.retarget(budget);
        let changed =
            policy != self.policy || capacity != self.capacity || share != self.share_mode;
        if !changed {
            return;
        }
        let learned = self.learned();
        let entries = self.entries();
        let unused_before = entries.iter().filter(|e| e.unused_prefetch).count();
        let before = entries.len();
        let (stats, tick, b) = (self.stats, self.tick, self.budget.clone());
        *self = EdgeCache::new(policy, capacity);
        self.share_mode = share;
        self.prefetch_share = share.start();
        self.adopt(learned);
        self.restore(entries, stats, tick, b);
        // What no longer fits was evicted by the reconfiguration: count it as such.
        let unused_after = self.nodes_in_use().filter(|n| n.unused_prefetch).count();
        self.stats.evictions += (before - self.len()) as u64;
        self.stats.prefetch_unused_evicted += (unused_before - unused_after) as u64;
    }

    /// What the split has learned, for persistence.
    pub fn learned(&self) -> LearnedShare {
        let (core, prefetch) = self.ghosts.keys();
        LearnedShare {
            mode: self.share_mode,
            share: self.prefetch_share,
            core,
            prefetch,
        }
    }

    /// Takes up a split learned under this cache's share mode (see [`EdgeCache::learned`]);
    /// one learned under another mode is dropped, and the split starts afresh. Call it
    /// before [`EdgeCache::restore`], which files the entries under the split.
    pub fn adopt(&mut self, learned: LearnedShare) {
        if learned.mode != self.share_mode || matches!(learned.mode, ShareMode::Fixed(_)) {
            return;
        }
        self.prefetch_share = learned.share.clamp(SHARE_MIN, SHARE_MAX);
        self.ghosts = Ghosts::from_keys(&learned.core, &learned.prefetch, self.capacity);
    }

    /// A miss under an adaptive share: a key its ghost remembers argues for a larger part,
    /// by the key's size; then each part is evicted down to its new cap.
    fn learn_share(&mut self, key: &str, size: u64) {
        let step = size as f64 / self.capacity.max(1) as f64;
        let share = match self.ghosts.missed(key) {
            Some(Part::Prefetch) => self.prefetch_share + step,
            Some(Part::Core) => self.prefetch_share - step,
            None => return,
        };
        self.prefetch_share = share.clamp(SHARE_MIN, SHARE_MAX);
        while self.list_bytes > self.prefetch_cap() && self.list.head != NIL {
            self.evict(self.list.head);
        }
        while self.core_bytes > self.core_cap() {
            match self.core.min() {
                Some(k) => self.evict(k.idx),
                None => break,
            }
        }
    }

    fn prefetch_cap(&self) -> u64 {
        match self.policy {
            CachePolicy::Lru => self.capacity,
            CachePolicy::Predictive => (self.capacity as f64 * self.prefetch_share).round() as u64,
        }
    }

    fn core_cap(&self) -> u64 {
        self.capacity - self.prefetch_cap().min(self.capacity)
    }

    /// A request for `key`. `freq` is the item's request frequency including this request
    /// (its demand, decayed per view), which orders the predictive policy's core. A hit
    /// refreshes the entry (and promotes a prefetched one into the core); a miss fetches the
    /// item and admits it.
    pub fn request(&mut self, key: &str, size: u64, freq: f64) -> CacheOutcome {
        bump(&mut self.tick);
        let found = self.find(key);
        self.budget.on_request(found.is_some());
        if let Some(i) = found {
            bump(&mut self.stats.hits);
            let n = &mut self.nodes.0[i as usize];
            if n.unused_prefetch {
                n.unused_prefetch = false;
                bump(&mut self.stats.prefetch_used);
                self.budget.on_prefetch_used();
            }
            self.detach(i);
            let n = &mut self.nodes.0[i as usize];
            n.freq = freq;
            n.last = self.tick;
            let seg = if self.policy == CachePolicy::Lru {
                Segment::Lru
            } else {
                Segment::Core
            };
            if self.make_room(seg, self.nodes.0[i as usize].size) {
                self.attach(i, seg);
            } else {
                // Fits the prefetch segment but not the core: served once, then dropped.
                let key = std::mem::take(&mut self.nodes.0[i as usize].key);
                self.index.remove(&fingerprint(key.as_bytes()));
                self.free.push(i);
            }
            return CacheOutcome::Hit;
        }
        bump(&mut self.stats.misses);
        if self.adaptive() {
            self.learn_share(key, size);
        }
        let seg = if self.policy == CachePolicy::Lru {
            Segment::Lru
        } else {
            Segment::Core
        };
        if seg == Segment::Core && !self.core_admits(size, freq) {
            if self.adaptive() {
                self.ghosts
                    .evicted(Part::Core, key, size, freq, self.capacity);
            }
            return CacheOutcome::Miss;
        }
        self.admit(key, size, seg, freq, false);
        CacheOutcome::Miss
    }

    /// TinyLFU-style admission: a newcomer that needs room enters only if it is at least as
    /// frequent as the first item it would push out.
    fn core_admits(&self, size: u64, freq: f64) -> bool {
        if self.core_bytes + size <= self.core_cap() {
            return true;
        }
        self.core
            .min()
            .is_none_or(|victim| segmented::freq_key(freq) >= victim.freq)
    }

    /// Offers `key` as a prediction. Returns whether it was fetched from the origin: not if
    /// already cached (under the predictive policy a cached, still unused prefetch is
    /// refreshed instead, for free) or larger than the prefetch segment.
    pub fn prefetch(&mut self, key: &str, size: u64) -> bool {
        self.fetch_or_refresh(key, size, 0)
    }

    fn fetch_or_refresh(&mut self, key: &str, size: u64, rank: usize) -> bool {
        if let Some(i) = self.find(key) {
            self.refresh(i);
            return false;
        }
        self.fetch(key, size, rank)
    }

    /// A prefetch of an item already cached costs nothing: it only counts as recent again.
    fn refresh(&mut self, i: u32) {
        if self.nodes.0[i as usize].segment == Segment::Prefetch {
            self.list.unlink(&mut self.nodes, i);
            self.list.push_tail(&mut self.nodes, i);
        }
    }

    /// Brings an item not in the cache from the origin as a prefetch, if it can be admitted.
    fn fetch(&mut self, key: &str, size: u64, rank: usize) -> bool {
        let seg = if self.policy == CachePolicy::Lru {
            Segment::Lru
        } else {
            Segment::Prefetch
        };
        let fetched = self.admit(key, size, seg, 0.0, true).is_some();
        if fetched {
            bump(&mut self.stats.prefetches);
            self.budget.on_prefetch(rank);
        }
        fetched
    }

    /// Offers the prediction at 0-based `rank` of a viewer's list, with its `confidence`
    /// (see [`confidence`]), to the budget controller. A cached item is refreshed for free
    /// as by [`EdgeCache::prefetch`]; an uncached one is fetched only if the controller can
    /// afford it. The size is asked for only then: most offers are refused, and finding an
    /// item's size is a catalog lookup. Returns whether it was fetched.
    pub fn offer(
        &mut self,
        key: &str,
        size: impl FnOnce() -> u64,
        rank: usize,
        confidence: f64,
    ) -> bool {
        // One lookup per offer: a play makes up to a hundred.
        if let Some(i) = self.find(key) {
            self.refresh(i);
            return false;
        }
        self.budget.affordable(rank, confidence) && self.fetch(key, size(), rank)
    }

    /// How many predictions the next prefetch should look at: the controller's depth when
    /// a budget is set, else `fixed`.
    pub fn prefetch_k(&self, fixed: usize) -> usize {
        if self.budget.active() {
            self.budget.depth()
        } else {
            fixed
        }
    }

    /// Multiplies every stored frequency by `factor` (the engine's decay rescale), which
    /// keeps the core's order.
    pub fn rescale(&mut self, factor: f64) {
        let mut keys = Vec::with_capacity(self.core.len());
        while let Some(k) = self.core.pop_min() {
            keys.push(k);
        }
        for mut k in keys {
            let n = &mut self.nodes.0[k.idx as usize];
            n.freq *= factor;
            k.freq = segmented::freq_key(n.freq);
            self.core.insert(k);
        }
        self.ghosts.rescale(factor);
    }

    fn cap_of(&self, seg: Segment) -> u64 {
        match seg {
            Segment::Lru => self.capacity,
            Segment::Core => self.core_cap(),
            Segment::Prefetch => self.prefetch_cap(),
        }
    }

    fn bytes_of(&self, seg: Segment) -> u64 {
        match seg {
            Segment::Lru | Segment::Prefetch => self.list_bytes,
            Segment::Core => self.core_bytes,
        }
    }

    /// Evicts from `seg` until `size` more bytes fit; false if they never can.
    fn make_room(&mut self, seg: Segment, size: u64) -> bool {
        let cap = self.cap_of(seg);
        if size > cap {
            return false;
        }
        while self.bytes_of(seg) + size > cap {
            let victim = match seg {
                Segment::Lru | Segment::Prefetch => self.list.head,
                Segment::Core => self.core.min().map_or(NIL, |k| k.idx),
            };
            if victim == NIL {
                return false;
            }
            self.evict(victim);
        }
        true
    }

    /// Brings `key` into `seg`, making room; returns its entry, or `None` if it is cached
    /// already (or its fingerprint is taken) or can never fit.
    fn admit(
        &mut self,
        key: &str,
        size: u64,
        seg: Segment,
        freq: f64,
        prefetch: bool,
    ) -> Option<u32> {
        let fp = fingerprint(key.as_bytes());
        if self.index.contains_key(&fp) || !self.make_room(seg, size) {
            return None;
        }
        let node = Node {
            key: key.into(),
            size,
            links: Links::default(),
            segment: seg,
            freq,
            last: self.tick,
            unused_prefetch: prefetch,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes.0[i as usize] = node;
                i
            }
            None => {
                self.nodes.0.push(node);
                (self.nodes.0.len() - 1) as u32
            }
        };
        self.index.insert(fp, i);
        self.attach(i, seg);
        if self.adaptive() {
            self.ghosts.admitted(key);
        }
        Some(i)
    }

    fn attach(&mut self, i: u32, seg: Segment) {
        let n = &mut self.nodes.0[i as usize];
        n.segment = seg;
        let size = n.size;
        match seg {
            Segment::Lru | Segment::Prefetch => {
                self.list_bytes += size;
                self.list.push_tail(&mut self.nodes, i);
            }
            Segment::Core => {
                self.core_bytes += size;
                let n = &self.nodes.0[i as usize];
                self.core.insert(CoreKey::new(n.freq, n.last, i));
            }
        }
    }

    fn detach(&mut self, i: u32) {
        let n = &self.nodes.0[i as usize];
        match n.segment {
            Segment::Lru | Segment::Prefetch => {
                self.list_bytes -= n.size;
                self.list.unlink(&mut self.nodes, i);
            }
            Segment::Core => {
                self.core_bytes -= n.size;
                let k = CoreKey::new(n.freq, n.last, i);
                self.core.remove(&k);
            }
        }
    }

    fn drop_node(&mut self, i: u32) {
        self.detach(i);
        let key = std::mem::take(&mut self.nodes.0[i as usize].key);
        self.index.remove(&fingerprint(key.as_bytes()));
        self.free.push(i);
        if self.dropped.len() < DROPPED_MAX {
            self.dropped.push(key);
        } else {
            self.dropped_overflow = true;
        }
    }

    /// The log of keys that left the cache, and whether it overflowed, for persistence: a
    /// reloaded node must report the same drops at its next play as its twin.
    pub fn dropped(&self) -> (&[Box<str>], bool) {
        (&self.dropped, self.dropped_overflow)
    }

    /// Sets the log of dropped keys (a node being loaded), at most [`DROPPED_MAX`] of them.
    pub fn set_dropped(&mut self, mut keys: Vec<Box<str>>, overflow: bool) {
        let over = keys.len() > DROPPED_MAX;
        keys.truncate(DROPPED_MAX);
        self.dropped = keys;
        self.dropped_overflow = overflow || over;
    }

    /// The keys that left the cache since the last call, oldest first, and whether some
    /// were not logged (more than [`DROPPED_MAX`] between two calls); empties the log.
    pub fn take_dropped(&mut self) -> (Vec<Box<str>>, bool) {
        let overflow = std::mem::take(&mut self.dropped_overflow);
        (std::mem::take(&mut self.dropped), overflow)
    }

    fn evict(&mut self, i: u32) {
        bump(&mut self.stats.evictions);
        if self.nodes.0[i as usize].unused_prefetch {
            bump(&mut self.stats.prefetch_unused_evicted);
        }
        if self.adaptive() {
            let n = &self.nodes.0[i as usize];
            let part = if n.segment == Segment::Core {
                Part::Core
            } else {
                Part::Prefetch
            };
            self.ghosts
                .evicted(part, &n.key, n.size, n.freq, self.capacity);
        }
        self.drop_node(i);
    }

    fn nodes_in_use(&self) -> impl Iterator<Item = &Node> {
        self.index.values().map(|&i| &self.nodes.0[i as usize])
    }

    /// Drops `key` if cached (an invalidation, not an eviction).
    pub fn invalidate(&mut self, key: &str) -> bool {
        match self.find(key) {
            Some(i) => {
                self.drop_node(i);
                true
            }
            None => false,
        }
    }

    /// Up to `count` cached keys with their sizes, in key order, starting after `after`
    /// (from the first without it): a page of the listing a store resynchronises from.
    /// O(entries) per page, whatever its size.
    pub fn page(&self, after: Option<&str>, count: usize) -> Vec<(&str, u64)> {
        let mut keys: Vec<(&str, u64)> = self
            .nodes_in_use()
            .map(|n| (&*n.key, n.size))
            .filter(|(k, _)| after.is_none_or(|a| *k > a))
            .collect();
        if keys.len() > count {
            keys.select_nth_unstable_by(count, |a, b| a.0.cmp(b.0));
            keys.truncate(count);
        }
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        keys
    }

    /// Every entry, oldest first within its segment, for persistence.
    pub fn entries(&self) -> Vec<CachedItem> {
        let mut idx: Vec<u32> = Vec::with_capacity(self.len());
        let mut i = self.list.head;
        while i != NIL {
            idx.push(i);
            i = self.nodes.0[i as usize].links.next;
        }
        idx.extend(self.core.iter().map(|k| k.idx));
        idx.into_iter()
            .map(|i| {
                let n = &self.nodes.0[i as usize];
                CachedItem {
                    key: n.key.to_string(),
                    size: n.size,
                    segment: n.segment,
                    freq: n.freq,
                    last: n.last,
                    unused_prefetch: n.unused_prefetch,
                }
            })
            .collect()
    }

    /// The request tick (persisted with the entries).
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Refills the cache from persisted entries, counters and controller state. Entries are
    /// re-filed under the current policy; whatever no longer fits is dropped silently (it
    /// was not evicted by traffic, so counters stay as they were).
    pub fn restore(
        &mut self,
        entries: Vec<CachedItem>,
        stats: CacheStats,
        tick: u64,
        budget: Budget,
    ) {
        for e in entries {
            let seg = match (self.policy, e.segment) {
                (CachePolicy::Lru, _) => Segment::Lru,
                (CachePolicy::Predictive, Segment::Prefetch) => Segment::Prefetch,
                (CachePolicy::Predictive, Segment::Lru) if e.unused_prefetch => Segment::Prefetch,
                (CachePolicy::Predictive, _) => Segment::Core,
            };
            self.tick = e.last;
            // A repeated key is not admitted twice.
            if let Some(i) = self.admit(&e.key, e.size, seg, e.freq, e.unused_prefetch) {
                self.nodes.0[i as usize].last = e.last;
            }
        }
        self.tick = tick;
        self.stats = stats;
        self.budget = budget;
    }

    /// Heap bytes of the cache's own bookkeeping (not the cached content).
    pub fn memory_bytes(&self) -> usize {
        self.nodes.0.capacity() * std::mem::size_of::<Node>()
            + self.index.capacity() * (std::mem::size_of::<(u64, u32)>() + 1)
            + self.nodes_in_use().map(|n| n.key.len()).sum::<usize>()
            + self.core.len() * 48
            + self.ghosts.memory_bytes()
    }
}

#[cfg(test)]
mod tests;
