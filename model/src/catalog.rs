//! Item names interned to dense slots, with popularity, bounded in size.
//!
//! Transition rows and score accumulators index items by slot, which keeps the hot loops on
//! flat arrays. A node that sees millions of distinct ids (a scan, an attack) must not grow
//! without bound, so past `items_max` the least popular of a few sampled items is evicted and
//! its slot reused. A slot carries a generation, bumped on eviction, so that references held
//! elsewhere ([`ItemRef`]) to the evicted item can never be mistaken for the new one.
//! Items known only from peers are evicted before this sampling is reached (see
//! [`crate::learn::node::NodeModel::peer_order`]); federated imports never call on it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use crate::hash::{fingerprint, FpBuild};

/// A catalog reference remembered next to persisted data, valid only in the catalog that
/// issued it (see [`crate::catalog::Catalog::hint`]): a node model restored or replaced
/// under a live user reuses slot numbers and generations for other items. It is only a
/// cache, so it is not persisted, and two entries that differ only in their hints are
/// equal.
#[derive(Debug, Clone, Copy)]
pub struct Hint {
    /// The item's place in the issuing catalog.
    pub item: ItemRef,
    /// The issuing catalog's id (0: none, never valid).
    pub catalog: u32,
}

impl Default for Hint {
    fn default() -> Self {
        Hint {
            item: ItemRef::NONE,
            catalog: 0,
        }
    }
}

impl PartialEq for Hint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A reference to an item that stays valid until the item is evicted, and is then detectably
/// stale rather than silently pointing at whatever took its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemRef {
    /// Index into the catalog's slots.
    pub slot: u32,
    /// Generation of the slot when the reference was made.
    pub gen: u32,
}

impl ItemRef {
    /// A reference to nothing (never live).
    pub const NONE: ItemRef = ItemRef {
        slot: u32::MAX,
        gen: 0,
    };
}

/// One tracked item.
#[derive(Debug, Clone)]
pub struct Item {
    /// The id clients use; shared with the histories that name the item (see
    /// [`crate::user::HistoryEntry`]).
    pub name: Arc<str>,
    /// [`fingerprint`] of the name, cached for seen-set checks.
    pub fp: u64,
    /// Forward-decayed view weight (see [`crate::decay`]).
    pub popularity: f64,
    /// Views ever recorded, undecayed.
    pub views: u64,
    /// `ln(1 + views)`, cached for the popularity-affinity damping of every candidate.
    pub ln_views: f32,
    /// Running mean of full-view durations in seconds (0 until a duration is known): the
    /// yardstick for skip detection.
    pub mean_duration_s: f32,
    /// Size in bytes last reported by a play (0: unknown, the configured default applies).
    pub size_bytes: u64,
    /// Export epoch in which `views` last changed (see [`crate::federation`]).
    pub stamp: u32,
    /// Views of this item at peer edges, from the last federated import.
    pub peer_views: u64,
    /// Decayed popularity at peer edges (in this node's decay units), from the last import.
    pub peer_popularity: f64,
    /// Requests for the item at this node, decayed on the cache's clock of views (see
    /// [`crate::Config::cache_memory`]): the frequency that orders the edge cache. Not
    /// federated: a cache's content follows its own requests.
    pub demand: f64,
}

impl Item {
    /// Popularity here and at peers: what the fallback ranking and ties go by, so a
    /// federated edge ranks like one node that saw every edge's viewers.
    pub fn ranking_popularity(&self) -> f64 {
        self.popularity + self.peer_popularity
    }
}

#[derive(Debug, Clone)]
struct Slot {
    gen: u32,
    item: Option<Item>,
}

/// Marks an occupied slot in `Catalog::live`; generations wrap below it.
const LIVE_BIT: u32 = 1 << 31;

/// How many occupied slots eviction samples; more samples track the true minimum more
/// closely at a linear cost (Redis's own LFU samples 5).
const EVICTION_SAMPLES: usize = 8;

/// Source of catalog ids: every catalog built or cloned in this process gets its own.
static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn next_id() -> u32 {
    // 0 is never issued (a default hint names no catalog); after 2^32 catalogs the ids
    // wrap, long after any hint issued by the first of them has been replaced.
    loop {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if id != 0 {
            return id;
        }
    }
}

/// Drops `garbage` (the tables a compaction replaced) on a short-lived thread of its own,
/// as Redis frees large values lazily: dropping a table of a million slots walks all of
/// them and hands their pages back, tens of milliseconds the event loop need not wait for.
/// If no thread can be started, the refused closure drops it here.
pub(crate) fn release<T: Send + 'static>(garbage: T) {
    let _ = std::thread::Builder::new()
        .name("edge-release".into())
        .spawn(move || drop(garbage));
}

/// The interned item table of one node.
#[derive(Debug)]
pub struct Catalog {
    /// Tells this catalog's hints from another's (see [`Catalog::hint`]).
    id: u32,
    slots: Vec<Slot>,
    /// Generation of each slot with the top bit set while occupied: a compact copy that
    /// scoring checks for every candidate without touching the (large) slots.
    live: Vec<u32>,
    by_fp: HashMap<u64, u32, FpBuild>,
    /// Empty slots, lowest first out: which slot a new item takes then depends only on
    /// which slots are empty (what a save keeps), not on the order they emptied in (what
    /// it does not), so a reloaded node places items, and so samples evictions, exactly as
    /// the node that never stopped.
    free: BinaryHeap<Reverse<u32>>,
    hand: usize,
    /// Slots the eviction hand has passed, ever (not persisted): the work of sampling,
    /// which grows as a shrinking catalog thins out (see [`Catalog::scanned`]).
    scanned: u64,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            id: next_id(),
            slots: Vec::new(),
            live: Vec::new(),
            by_fp: HashMap::default(),
            free: BinaryHeap::new(),
            hand: 0,
            scanned: 0,
        }
    }
}

impl Clone for Catalog {
    /// A copy under its own id: the two diverge, so neither may trust the other's hints.
    fn clone(&self) -> Self {
        Catalog {
            id: next_id(),
            slots: self.slots.clone(),
            live: self.live.clone(),
            by_fp: self.by_fp.clone(),
            free: self.free.clone(),
            hand: self.hand,
            scanned: 0,
        }
    }
}

impl Catalog {
    /// A hint for `r`, for a user's history to remember (see [`Catalog::resolve`]).
    pub fn hint(&self, r: ItemRef) -> Hint {
        Hint {
            item: r,
            catalog: self.id,
        }
    }

    /// Distinct items currently tracked.
    pub fn len(&self) -> usize {
        self.by_fp.len()
    }

    /// True when no item is tracked.
    pub fn is_empty(&self) -> bool {
        self.by_fp.is_empty()
    }

    /// Number of slots (occupied or free): the size of per-slot side tables.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Slots left empty by evictions and not yet reused: what [`Catalog::compact`] returns.
    pub fn free_slots(&self) -> usize {
        self.slots.len() - self.by_fp.len()
    }

    /// Renumbers the live items densely, in their slot order, and returns every table's
    /// memory left over from evicted items to the allocator; `None` (and nothing changes)
    /// when no slot is free. Returns the map from old slot to new (`u32::MAX` for a slot
    /// that was free), which every side table indexed by slot must follow (see
    /// [`crate::learn::node::NodeModel::compact`]).
    ///
    /// Generations move with their items, so a reference remapped by the returned map is
    /// live exactly when it was. The catalog takes a new id, so the hints users hold (slot
    /// numbers of the old layout) fall back to a lookup by fingerprint (see
    /// [`Catalog::resolve`]) instead of naming whatever item now sits in their slot. The
    /// clock hand moves to the first live item at or after it, so eviction samples the
    /// items in the same order as before.
    pub fn compact(&mut self) -> Option<Vec<u32>> {
        if self.free_slots() == 0 {
            return None;
        }
        // Found through `live` (4 bytes a slot), not the slots themselves: the pass over a
        // million mostly empty slots is what this step costs, and the old tables are
        // dropped on a thread of their own (see [`release`]).
        let live = self.by_fp.len();
        let mut map = vec![u32::MAX; self.slots.len()];
        let mut old = std::mem::take(&mut self.slots);
        let mut slots = Vec::with_capacity(live);
        let mut hand = None;
        for (i, &l) in self.live.iter().enumerate() {
            if l & LIVE_BIT == 0 {
                continue;
            }
            if hand.is_none() && i >= self.hand {
                hand = Some(slots.len());
            }
            map[i] = slots.len() as u32;
            slots.push(Slot {
                gen: old[i].gen,
                item: old[i].item.take(),
            });
        }
        let mut by_fp = HashMap::with_capacity_and_hasher(live, FpBuild::default());
        for (i, s) in slots.iter().enumerate() {
            if let Some(item) = &s.item {
                by_fp.insert(item.fp, i as u32);
            }
        }
        let garbage = (
            old,
            std::mem::replace(&mut self.by_fp, by_fp),
            std::mem::replace(
                &mut self.live,
                slots.iter().map(|s| s.gen | LIVE_BIT).collect(),
            ),
            std::mem::take(&mut self.free),
        );
        self.slots = slots;
        self.hand = hand.unwrap_or(0);
        self.id = next_id();
        release(garbage);
        Some(map)
    }

    /// Finds an item by name.
    pub fn lookup(&self, name: &str) -> Option<ItemRef> {
        self.lookup_fp(fingerprint(name.as_bytes()), name)
    }

    /// Finds an item by fingerprint and name (the name guards against fingerprint collisions).
    pub fn lookup_fp(&self, fp: u64, name: &str) -> Option<ItemRef> {
        let slot = *self.by_fp.get(&fp)?;
        let s = &self.slots[slot as usize];
        match &s.item {
            Some(item) if &*item.name == name => Some(ItemRef { slot, gen: s.gen }),
            _ => None,
        }
    }

    /// Finds an item by fingerprint alone: the hot paths resolve a user's history this way
    /// without comparing names (a cache miss each). Two live names never share a
    /// fingerprint here ([`Catalog::intern`] refuses the second), so this can only confuse
    /// an item the catalog does not hold with one it does, with probability about 2^-64.
    pub fn lookup_fp_only(&self, fp: u64) -> Option<ItemRef> {
        let slot = *self.by_fp.get(&fp)?;
        Some(ItemRef {
            slot,
            gen: self.slots[slot as usize].gen,
        })
    }

    /// Whether the item behind `r` is still tracked (cheap: one `u32` compare).
    #[inline]
    pub fn is_live(&self, r: ItemRef) -> bool {
        self.live.get(r.slot as usize) == Some(&(r.gen | LIVE_BIT))
    }

    /// Resolves a stored item: the remembered reference if this catalog issued it and it is
    /// still live (a slot's generation changes when it is reused, so a live reference is
    /// still the same item), else a lookup by fingerprint. Saves a hash probe per history
    /// item on the hot paths.
    #[inline]
    pub fn resolve(&self, hint: Hint, fp: u64) -> Option<ItemRef> {
        if hint.catalog == self.id && self.is_live(hint.item) {
            Some(hint.item)
        } else {
            self.lookup_fp_only(fp)
        }
    }

    /// The item behind a reference, or `None` if it has been evicted since.
    pub fn get(&self, r: ItemRef) -> Option<&Item> {
        let s = self.slots.get(r.slot as usize)?;
        if s.gen == r.gen {
            s.item.as_ref()
        } else {
            None
        }
    }

    /// Mutable access to a live item.
    pub fn get_mut(&mut self, r: ItemRef) -> Option<&mut Item> {
        let s = self.slots.get_mut(r.slot as usize)?;
        if s.gen == r.gen {
            s.item.as_mut()
        } else {
            None
        }
    }

    /// The live item in a slot, with its reference.
    pub fn at(&self, slot: u32) -> Option<(ItemRef, &Item)> {
        let s = self.slots.get(slot as usize)?;
        s.item.as_ref().map(|i| (ItemRef { slot, gen: s.gen }, i))
    }

    /// Returns the item's reference, interning it if new. When the catalog is full the
    /// evicted item's slot is returned as well, so the caller can clear its side tables.
    /// `None` only on a fingerprint collision with a different live name (about 2^-64 per
    /// pair), in which case the item is not tracked globally.
    pub fn intern(&mut self, name: &str, items_max: usize) -> Option<(ItemRef, Option<u32>)> {
        let fp = fingerprint(name.as_bytes());
        if let Some(&slot) = self.by_fp.get(&fp) {
            let s = &self.slots[slot as usize];
            return match &s.item {
                Some(item) if &*item.name == name => Some((ItemRef { slot, gen: s.gen }, None)),
                _ => None,
            };
        }
        // One eviction at most: in a catalog over a bound just lowered, a new item replaces
        // one old one, and the rest of the shrink is left to bounded maintenance steps
        // (see [`crate::Engine::maintain`]) rather than done here all at once.
        let mut evicted = None;
        if self.len() >= items_max.max(1) {
            let victim = self.pick_victim();
            self.evict(victim);
            evicted = Some(victim);
        }
        let slot = match self.free.pop() {
            Some(Reverse(slot)) => slot,
            None => {
                self.slots.push(Slot { gen: 0, item: None });
                self.live.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        self.live[slot as usize] = s.gen | LIVE_BIT;
        s.item = Some(Item {
            name: name.into(),
            fp,
            popularity: 0.0,
            views: 0,
            ln_views: 0.0,
            mean_duration_s: 0.0,
            size_bytes: 0,
            stamp: 0,
            peer_views: 0,
            peer_popularity: 0.0,
            demand: 0.0,
        });
        self.by_fp.insert(fp, slot);
        Some((ItemRef { slot, gen: s.gen }, evicted))
    }

    /// The least popular of a few occupied slots after the clock hand. Deterministic, so a
    /// replica that replays the same commands evicts the same items.
    fn pick_victim(&mut self) -> u32 {
        let n = self.slots.len();
        let mut best: Option<(f64, u32)> = None;
        let mut seen = 0;
        let mut steps = 0;
        while seen < EVICTION_SAMPLES && steps < n {
            let slot = self.hand % n;
            self.hand = (self.hand + 1) % n;
            steps += 1;
            self.scanned += 1;
            if let Some(item) = &self.slots[slot].item {
                seen += 1;
                if best.is_none_or(|(p, _)| item.popularity < p) {
                    best = Some((item.popularity, slot as u32));
                }
            }
        }
        best.map(|(_, s)| s)
            .expect("a full catalog has an occupied slot")
    }

    /// Slots the eviction hand has passed since this catalog was built: in a catalog thinned
    /// out by a shrink, sampling a few items passes many empty slots, and a bounded step
    /// must count that work as well as the evictions.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Evicts the least popular of a few sampled items; returns its slot.
    pub fn evict_one(&mut self) -> Option<u32> {
        if self.is_empty() {
            return None;
        }
        let victim = self.pick_victim();
        self.evict(victim);
        Some(victim)
    }

    /// Removes the item in `slot`; references to it become stale.
    pub fn evict(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if let Some(item) = s.item.take() {
            self.by_fp.remove(&item.fp);
            s.gen = s.gen.wrapping_add(1) & !LIVE_BIT;
            self.live[slot as usize] = s.gen;
            self.free.push(Reverse(slot));
        }
    }

    /// Multiplies every demand by `factor` (a rescale of the cache's clock).
    pub fn scale_demand(&mut self, factor: f64) {
        self.items_mut().for_each(|i| i.demand *= factor);
    }

    /// Multiplies every popularity by `factor` (a decay rescale).
    pub fn scale(&mut self, factor: f64) {
        for item in self.items_mut() {
            item.popularity *= factor;
            item.peer_popularity *= factor;
        }
    }

    /// Live items with their references, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ItemRef, &Item)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.item.as_ref().map(|item| {
                (
                    ItemRef {
                        slot: i as u32,
                        gen: s.gen,
                    },
                    item,
                )
            })
        })
    }

    /// Heap bytes held, for INFO and MEMORY USAGE.
    pub fn memory_bytes(&self) -> usize {
        let names: usize = self.iter().map(|(_, i)| i.name.len()).sum();
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.live.capacity() * 4
            + self.by_fp.capacity() * (std::mem::size_of::<(u64, u32)>() + 1)
            + self.free.capacity() * 4
            + names
    }

    /// Rebuilds a catalog from persisted slots (None = free), keeping slot numbers and
    /// generations so persisted references stay valid.
    pub fn from_slots(slots: Vec<(u32, Option<Item>)>, hand: usize) -> Self {
        let mut c = Catalog::default();
        for (i, (gen, item)) in slots.into_iter().enumerate() {
            match &item {
                Some(it) => {
                    c.by_fp.insert(it.fp, i as u32);
                }
                None => c.free.push(Reverse(i as u32)),
            }
            let gen = gen & !LIVE_BIT;
            c.live
                .push(if item.is_some() { gen | LIVE_BIT } else { gen });
            c.slots.push(Slot { gen, item });
        }
        c.hand = if c.slots.is_empty() {
            0
        } else {
            hand % c.slots.len()
        };
        c
    }

    /// Every slot with its generation, for persistence; plus the clock hand.
    pub fn slots(&self) -> impl Iterator<Item = (u32, Option<&Item>)> + '_ {
        self.slots.iter().map(|s| (s.gen, s.item.as_ref()))
    }

    /// Live items, in slot order (the order [`Catalog::slots`] lists them in).
    pub fn items_mut(&mut self) -> impl Iterator<Item = &mut Item> + '_ {
        self.slots.iter_mut().filter_map(|s| s.item.as_mut())
    }

    /// The eviction clock hand, persisted so eviction stays deterministic across restarts.
    pub fn hand(&self) -> usize {
        self.hand
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intern_is_idempotent_and_lookup_finds_it() {
        let mut c = Catalog::default();
        let (a, _) = c.intern("C1", 10).unwrap();
        let (a2, _) = c.intern("C1", 10).unwrap();
        assert_eq!(a, a2);
        assert_eq!(c.lookup("C1"), Some(a));
        assert_eq!(c.lookup("C2"), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn full_catalog_evicts_least_popular_and_old_refs_go_stale() {
        let mut c = Catalog::default();
        let mut refs = Vec::new();
        for i in 0..16 {
            let (r, ev) = c.intern(&format!("I{i}"), 16).unwrap();
            assert!(ev.is_none());
            c.get_mut(r).unwrap().popularity = 100.0 + i as f64;
            refs.push(r);
        }
        c.get_mut(refs[5]).unwrap().popularity = 1.0;
        let (new, evicted) = c.intern("NEW", 16).unwrap();
        assert_eq!(evicted, Some(refs[5].slot));
        assert_eq!(new.slot, refs[5].slot);
        assert_ne!(new.gen, refs[5].gen);
        assert!(c.get(refs[5]).is_none(), "stale reference must not resolve");
        assert_eq!(&*c.get(new).unwrap().name, "NEW");
        assert_eq!(c.len(), 16);
        assert!(c.lookup("I5").is_none());
    }

    /// Compaction renumbers live items in order, keeps their generations, and makes old
    /// hints resolve by fingerprint rather than name whatever sits in their slot now.
    #[test]
    fn compaction_keeps_order_and_old_hints_resolve_by_fingerprint() {
        let mut c = Catalog::default();
        let refs: Vec<ItemRef> = (0..10)
            .map(|i| c.intern(&format!("I{i}"), 100).unwrap().0)
            .collect();
        let hint9 = c.hint(refs[9]);
        for r in &refs[..8] {
            c.evict(r.slot);
        }
        assert_eq!(c.free_slots(), 8);
        let map = c.compact().expect("free slots to compact");
        assert_eq!(map[8], 0);
        assert_eq!(map[9], 1);
        assert!(map[..8].iter().all(|&m| m == u32::MAX));
        assert_eq!((c.len(), c.slot_count(), c.free_slots()), (2, 2, 0));
        let names: Vec<&str> = c.iter().map(|(_, i)| &*i.name).collect();
        assert_eq!(names, ["I8", "I9"]);
        // The old hint named slot 9; slot 9 no longer exists, and slot 1 is I9 now: the
        // hint must not be trusted, the fingerprint finds I9.
        let fp9 = fingerprint(b"I9");
        assert_eq!(c.resolve(hint9, fp9), c.lookup("I9"));
        let stale = Hint {
            item: ItemRef {
                slot: 0,
                gen: refs[8].gen,
            },
            ..hint9
        };
        assert_eq!(c.resolve(stale, fp9), c.lookup("I9"));
        assert!(c.compact().is_none(), "nothing left to compact");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_distinct_items() {
        let mut c = Catalog::default();
        for i in 0..50_000 {
            c.intern(&format!("flood{i}"), 100).unwrap();
        }
        assert_eq!(c.len(), 100);
        assert!(c.slot_count() <= 100);
    }
}
