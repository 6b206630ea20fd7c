//! The edge cache: which items this edge can serve without going to the origin.
//!
//! Capacity is in bytes and items have sizes. Two policies share one implementation:
//!
//! - [`CachePolicy::Lru`], the baseline: one recency list; prefetched items are ordinary
//!   entries.
//! - [`CachePolicy::Predictive`]: prefetched items wait in their own segment until a request
//!   uses them (then they join the demand segment) or they go stale. Demand traffic cannot
//!   flush a fresh prefetch and prefetches cannot flush more than their share of demand
//!   items: eviction takes stale prefetches first, then the demand LRU tail while the
//!   prefetch segment is within its share, then the oldest prefetch.
//!
//! Accounting follows the evaluation protocol: a request found in the cache is a hit; every
//! item brought from the origin, on a miss or by a prefetch, is one origin fetch; a prefetch
//! of an item already cached costs nothing.

mod list;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use list::{Links, List, Slab, NIL};

/// Eviction policy of the edge cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Least recently used, prefetches included: the baseline.
    Lru,
    /// Prefetches protected in their own segment until used or stale.
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
        let n = self.hits + self.misses;
        if n == 0 {
            0.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Demand,
    Prefetched,
}

#[derive(Debug, Clone)]
struct Node {
    key: Box<str>,
    size: u64,
    links: Links,
    segment: Segment,
    /// When it was prefetched (for staleness), or last requested.
    stamp_ms: i64,
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

/// Default share of the capacity that unused prefetches may hold before they, rather than
/// demand items, are evicted first.
pub const DEFAULT_PREFETCH_SHARE_PCT: u32 = 50;

/// The edge cache of one node.
#[derive(Debug, Clone)]
pub struct EdgeCache {
    policy: CachePolicy,
    capacity: u64,
    used: u64,
    /// How long an unused prefetch stays protected (ms); 0 means until it is evicted by share.
    prefetch_ttl_ms: i64,
    prefetch_share_pct: u32,
    index: HashMap<Box<str>, u32>,
    nodes: Nodes,
    free: Vec<u32>,
    demand: List,
    prefetched: List,
    prefetched_bytes: u64,
    stats: CacheStats,
}

/// A cached entry, for persistence and inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedItem {
    /// Item id.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether it sits in the prefetch segment unused.
    pub unused_prefetch: bool,
    /// Prefetch or last-request time.
    pub stamp_ms: i64,
}

impl EdgeCache {
    /// An empty cache.
    pub fn new(policy: CachePolicy, capacity: u64) -> Self {
        EdgeCache {
            policy,
            capacity,
            used: 0,
            prefetch_ttl_ms: 0,
            prefetch_share_pct: DEFAULT_PREFETCH_SHARE_PCT,
            index: HashMap::new(),
            nodes: Nodes::default(),
            free: Vec::new(),
            demand: List::default(),
            prefetched: List::default(),
            prefetched_bytes: 0,
            stats: CacheStats::default(),
        }
    }

    /// Sets how long unused prefetches stay protected, in ms (0: no expiry).
    pub fn set_prefetch_ttl_ms(&mut self, ttl: i64) {
        self.prefetch_ttl_ms = ttl.max(0);
    }

    /// The policy.
    pub fn policy(&self) -> CachePolicy {
        self.policy
    }

    /// Changes the policy; entries stay, in their current order.
    pub fn set_policy(&mut self, policy: CachePolicy) {
        self.policy = policy;
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Changes the capacity, evicting down to it.
    pub fn set_capacity(&mut self, capacity: u64, now_ms: i64) {
        self.capacity = capacity;
        while self.used > self.capacity {
            if !self.evict_one(now_ms) {
                break;
            }
        }
    }

    /// Bytes held.
    pub fn used_bytes(&self) -> u64 {
        self.used
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

    /// Whether `key` is cached (no side effects).
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// A request for `key`: a hit refreshes it, a miss fetches and admits it.
    pub fn request(&mut self, key: &str, size: u64, now_ms: i64) -> CacheOutcome {
        if let Some(&i) = self.index.get(key) {
            self.stats.hits += 1;
            let n = &mut self.nodes.0[i as usize];
            n.stamp_ms = now_ms;
            if n.unused_prefetch {
                n.unused_prefetch = false;
                self.stats.prefetch_used += 1;
            }
            self.detach(i);
            self.attach(i, Segment::Demand);
            return CacheOutcome::Hit;
        }
        self.stats.misses += 1;
        self.admit(key, size, now_ms, false);
        CacheOutcome::Miss
    }

    /// Brings `key` in ahead of demand. Returns whether it was fetched (false if already
    /// cached or larger than the whole cache).
    pub fn prefetch(&mut self, key: &str, size: u64, now_ms: i64) -> bool {
        if self.index.contains_key(key) {
            return false;
        }
        if self.admit(key, size, now_ms, true) {
            self.stats.prefetches += 1;
            true
        } else {
            false
        }
    }

    fn admit(&mut self, key: &str, size: u64, now_ms: i64, prefetch: bool) -> bool {
        if size > self.capacity {
            return false;
        }
        while self.used + size > self.capacity {
            if !self.evict_one(now_ms) {
                return false;
            }
        }
        let node = Node {
            key: key.into(),
            size,
            links: Links::default(),
            segment: Segment::Demand,
            stamp_ms: now_ms,
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
        self.used += size;
        self.index.insert(key.into(), i);
        let seg = if prefetch && self.policy == CachePolicy::Predictive {
            Segment::Prefetched
        } else {
            Segment::Demand
        };
        self.attach(i, seg);
        true
    }

    fn attach(&mut self, i: u32, seg: Segment) {
        let n = &mut self.nodes.0[i as usize];
        n.segment = seg;
        let size = n.size;
        match seg {
            Segment::Demand => self.demand.push_tail(&mut self.nodes, i),
            Segment::Prefetched => {
                self.prefetched_bytes += size;
                self.prefetched.push_tail(&mut self.nodes, i);
            }
        }
    }

    fn detach(&mut self, i: u32) {
        let n = &self.nodes.0[i as usize];
        match n.segment {
            Segment::Demand => self.demand.unlink(&mut self.nodes, i),
            Segment::Prefetched => {
                self.prefetched_bytes -= n.size;
                self.prefetched.unlink(&mut self.nodes, i);
            }
        }
    }

    /// Chooses and removes one victim; false if the cache is empty.
    fn evict_one(&mut self, now_ms: i64) -> bool {
        let victim = match self.policy {
            CachePolicy::Lru => self.demand.head,
            CachePolicy::Predictive => {
                let p = self.prefetched.head;
                let stale = p != NIL
                    && self.prefetch_ttl_ms > 0
                    && now_ms - self.nodes.0[p as usize].stamp_ms > self.prefetch_ttl_ms;
                let over_share = self.prefetched_bytes * 100
                    > self.capacity * u64::from(self.prefetch_share_pct);
                if p != NIL && (stale || over_share || self.demand.head == NIL) {
                    p
                } else {
                    self.demand.head
                }
            }
        };
        let victim = if victim == NIL {
            self.prefetched.head
        } else {
            victim
        };
        if victim == NIL {
            return false;
        }
        self.remove(victim);
        true
    }

    fn remove(&mut self, i: u32) {
        self.detach(i);
        let n = &mut self.nodes.0[i as usize];
        self.used -= n.size;
        self.stats.evictions += 1;
        if n.unused_prefetch {
            self.stats.prefetch_unused_evicted += 1;
        }
        let key = std::mem::take(&mut n.key);
        self.index.remove(&key);
        self.free.push(i);
    }

    /// Drops `key` if cached (an invalidation, not an eviction).
    pub fn invalidate(&mut self, key: &str) -> bool {
        let Some(&i) = self.index.get(key) else {
            return false;
        };
        self.detach(i);
        let n = &mut self.nodes.0[i as usize];
        self.used -= n.size;
        let key = std::mem::take(&mut n.key);
        self.index.remove(&key);
        self.free.push(i);
        true
    }

    /// Entries in eviction order within each segment (demand first, then prefetched),
    /// oldest first, for persistence.
    pub fn entries(&self) -> Vec<CachedItem> {
        let mut out = Vec::with_capacity(self.len());
        for list in [&self.demand, &self.prefetched] {
            let mut i = list.head;
            while i != NIL {
                let n = &self.nodes.0[i as usize];
                out.push(CachedItem {
                    key: n.key.to_string(),
                    size: n.size,
                    unused_prefetch: n.unused_prefetch,
                    stamp_ms: n.stamp_ms,
                });
                i = n.links.next;
            }
        }
        out
    }

    /// Rebuilds a cache from persisted entries and counters.
    pub fn restore(&mut self, entries: Vec<CachedItem>, stats: CacheStats) {
        let (policy, capacity) = (self.policy, self.capacity);
        let ttl = self.prefetch_ttl_ms;
        *self = EdgeCache::new(policy, u64::MAX);
        self.prefetch_ttl_ms = ttl;
        for e in entries {
            if !self.index.contains_key(e.key.as_str()) {
                self.admit(&e.key, e.size, e.stamp_ms, e.unused_prefetch);
            }
        }
        self.capacity = capacity;
        self.stats = stats;
        self.set_capacity(capacity, i64::MIN);
        self.stats = stats;
    }

    /// Heap bytes of the cache's own bookkeeping (not the cached content).
    pub fn memory_bytes(&self) -> usize {
        self.nodes.0.capacity() * std::mem::size_of::<Node>()
            + self.index.capacity() * (std::mem::size_of::<(Box<str>, u32)>() + 1)
            + self.index.keys().map(|k| 2 * k.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_least_recently_used() {
        let mut c = EdgeCache::new(CachePolicy::Lru, 3);
        for k in ["a", "b", "c"] {
            assert_eq!(c.request(k, 1, 0), CacheOutcome::Miss);
        }
        assert_eq!(c.request("a", 1, 0), CacheOutcome::Hit);
        assert_eq!(c.request("d", 1, 0), CacheOutcome::Miss); // evicts b
        assert!(!c.contains("b"));
        assert!(c.contains("a") && c.contains("c") && c.contains("d"));
        assert_eq!(c.stats().hits, 1);
        assert_eq!(c.stats().misses, 4);
        assert_eq!(c.stats().evictions, 1);
    }

    #[test]
    fn sizes_are_respected_and_oversized_items_are_not_admitted() {
        let mut c = EdgeCache::new(CachePolicy::Lru, 10);
        c.request("big", 6, 0);
        c.request("mid", 4, 0);
        assert_eq!(c.used_bytes(), 10);
        c.request("x", 5, 0); // evicts big (6) only
        assert!(!c.contains("big") && c.contains("mid") && c.contains("x"));
        assert_eq!(c.request("huge", 11, 0), CacheOutcome::Miss);
        assert!(!c.contains("huge"));
        assert_eq!(c.used_bytes(), 9);
    }

    #[test]
    fn prefetch_accounting_counts_used_and_unused() {
        let mut c = EdgeCache::new(CachePolicy::Lru, 2);
        assert!(c.prefetch("p1", 1, 0));
        assert!(!c.prefetch("p1", 1, 0), "already cached: no fetch");
        assert!(c.prefetch("p2", 1, 0));
        assert_eq!(c.request("p1", 1, 0), CacheOutcome::Hit);
        c.request("x", 1, 0); // evicts p2, unused
        let s = c.stats();
        assert_eq!(
            (s.prefetches, s.prefetch_used, s.prefetch_unused_evicted),
            (2, 1, 1)
        );
        assert_eq!(s.origin_fetches(), 3);
    }

    #[test]
    fn predictive_protects_fresh_prefetches_from_demand_churn() {
        let mut c = EdgeCache::new(CachePolicy::Predictive, 4);
        c.prefetch("next", 1, 0);
        for k in ["a", "b", "c", "d", "e", "f"] {
            c.request(k, 1, 0);
        }
        assert!(c.contains("next"), "a fresh prefetch survives demand churn");
        let mut lru = EdgeCache::new(CachePolicy::Lru, 4);
        lru.prefetch("next", 1, 0);
        for k in ["a", "b", "c", "d", "e", "f"] {
            lru.request(k, 1, 0);
        }
        assert!(!lru.contains("next"));
    }

    #[test]
    fn predictive_evicts_stale_prefetches_first_and_caps_their_share() {
        let mut c = EdgeCache::new(CachePolicy::Predictive, 4);
        c.set_prefetch_ttl_ms(100);
        c.request("a", 1, 0);
        c.prefetch("old", 1, 0);
        c.request("b", 1, 50);
        c.request("c", 1, 50);
        c.request("d", 1, 500); // full: stale "old" goes first
        assert!(!c.contains("old") && c.contains("a"));
        // Share cap: prefetches beyond half the capacity are evicted before demand items.
        let mut c = EdgeCache::new(CachePolicy::Predictive, 4);
        c.request("a", 1, 0);
        for p in ["p1", "p2", "p3"] {
            c.prefetch(p, 1, 0);
        }
        c.prefetch("p4", 1, 0);
        assert!(
            c.contains("a"),
            "demand item kept while prefetches exceed their share"
        );
        assert!(!c.contains("p1"));
    }

    #[test]
    fn entries_round_trip_through_restore() {
        let mut c = EdgeCache::new(CachePolicy::Predictive, 5);
        c.request("a", 1, 1);
        c.prefetch("b", 2, 2);
        c.request("c", 1, 3);
        let stats = *c.stats();
        let mut d = EdgeCache::new(CachePolicy::Predictive, 5);
        d.restore(c.entries(), stats);
        assert_eq!(d.entries(), c.entries());
        assert_eq!(d.stats(), c.stats());
        assert_eq!(d.used_bytes(), 4);
    }
}
