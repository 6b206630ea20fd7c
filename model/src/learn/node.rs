//! The node's model: what all of this edge's viewers taught it ([`NodeModel`]). It is node-local:
//! peers' evidence joins it only through [`Peers`], and a viewer's own state stays in its key.
//!
//! It holds the item catalog with decayed popularity, the item-to-item transition rows and a
//! leaderboard of the most popular items, and learns one view at a time. It is the part of
//! the state that federation exchanges; per-user state stays in [`crate::user`].

use std::collections::VecDeque;

use crate::catalog::{Catalog, Item, ItemRef};
use crate::config::Learning;
use crate::decay::Decay;
use crate::learn::Transitions;
use crate::user::HistoryEntry;
use crate::wire::bump;

/// Items kept on the popularity leaderboard: enough to fill any `k` up to
/// [`crate::config::MAX_K`] for a user who has already seen a few of the top items.
pub const BOARD_LEN: usize = 1024;

/// Settings the node model learns under, copied from [`crate::Config`].
#[derive(Debug, Clone, Copy)]
pub struct LearnParams {
    /// How views are linked.
    pub learning: Learning,
    /// Row width bound.
    pub successors_max: usize,
    /// Catalog bound.
    pub items_max: usize,
}

/// The most popular items, heaviest first; kept sorted incrementally as views arrive.
#[derive(Debug, Clone, Default)]
pub struct Board {
    items: Vec<ItemRef>,
    /// Position of each catalog slot on the board (`NOT_ON_BOARD` if absent), so a bump
    /// finds its item in O(1) rather than scanning the board.
    pos: Vec<u32>,
}

const NOT_ON_BOARD: u32 = u32::MAX;

impl PartialEq for Board {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl Board {
    /// The leaders, heaviest first.
    pub fn items(&self) -> &[ItemRef] {
        &self.items
    }

    fn position(&self, slot: u32) -> Option<usize> {
        match self.pos.get(slot as usize) {
            Some(&p) if p != NOT_ON_BOARD => Some(p as usize),
            _ => None,
        }
    }

    fn set(&mut self, i: usize, r: ItemRef) {
        self.items[i] = r;
        let slot = r.slot as usize;
        if self.pos.len() <= slot {
            self.pos.resize(slot + 1, NOT_ON_BOARD);
        }
        self.pos[slot] = i as u32;
    }

    /// Re-places `r` after its popularity grew.
    fn bump(&mut self, r: ItemRef, catalog: &Catalog) {
        let pop = |r: ItemRef| {
            catalog
                .get(r)
                .map_or(f64::NEG_INFINITY, Item::ranking_popularity)
        };
        let p = pop(r);
        let mut i = match self.position(r.slot) {
            Some(i) => i,
            None if self.items.len() < BOARD_LEN => {
                self.items.push(r);
                let i = self.items.len() - 1;
                self.set(i, r);
                i
            }
            None if pop(*self.items.last().expect("full board")) < p => {
                let last = self.items.len() - 1;
                self.pos[self.items[last].slot as usize] = NOT_ON_BOARD;
                self.set(last, r);
                last
            }
            None => return,
        };
        while i > 0 && pop(self.items[i - 1]) < p {
            let above = self.items[i - 1];
            self.set(i, above);
            self.set(i - 1, r);
            i -= 1;
        }
    }

    fn memory_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<ItemRef>() + self.pos.capacity() * 4
    }

    /// Follows a catalog compaction (see [`crate::Catalog::compact`]): the same leaders in
    /// the same order, under their new slots.
    fn remap(&mut self, map: &[u32]) {
        let items: Vec<ItemRef> = self
            .items
            .iter()
            .filter_map(|r| remap_ref(map, *r))
            .collect();
        *self = Board {
            items: Vec::with_capacity(items.len()),
            pos: Vec::new(),
        };
        for (i, r) in items.into_iter().enumerate() {
            self.items.push(r);
            self.set(i, r);
        }
    }

    fn remove_slot(&mut self, slot: u32) {
        if let Some(i) = self.position(slot) {
            self.items.remove(i);
            self.pos[slot as usize] = NOT_ON_BOARD;
            for j in i..self.items.len() {
                let r = self.items[j];
                self.set(j, r);
            }
        }
    }

    /// A board of exactly `items` in that order, as persisted: kept incrementally, a board
    /// is not always what a full sort would give (ties keep arrival order, an evicted
    /// leader's place stays empty until an item is bumped into it), and a reload must not
    /// change the popular items a new viewer is shown. `None` if an item is not live in
    /// `catalog`, repeated, or there are too many.
    pub fn restore(items: Vec<ItemRef>, catalog: &Catalog) -> Option<Self> {
        if items.len() > BOARD_LEN || items.iter().any(|&r| catalog.get(r).is_none()) {
            return None;
        }
        let mut b = Board {
            items,
            pos: Vec::new(),
        };
        for i in 0..b.items.len() {
            let r = b.items[i];
            if b.position(r.slot).is_some() {
                return None;
            }
            b.set(i, r);
        }
        Some(b)
    }

    /// Rebuilds the board by a full sort (after a merge, or loading a blob from before the
    /// board was persisted).
    pub fn rebuild(catalog: &Catalog) -> Self {
        let mut v: Vec<(f64, ItemRef)> = catalog
            .iter()
            .map(|(r, i)| (i.ranking_popularity(), r))
            .collect();
        // Slots are unique, so this is a strict order: selecting the first BOARD_LEN and
        // sorting only them gives what a full stable sort did.
        let order = |a: &(f64, ItemRef), b: &(f64, ItemRef)| {
            b.0.total_cmp(&a.0).then(a.1.slot.cmp(&b.1.slot))
        };
        if v.len() > BOARD_LEN {
            v.select_nth_unstable_by(BOARD_LEN, order);
            v.truncate(BOARD_LEN);
        }
        v.sort_unstable_by(order);
        let mut b = Board {
            items: v.iter().map(|&(_, r)| r).collect(),
            pos: Vec::new(),
        };
        for i in 0..b.items.len() {
            let r = b.items[i];
            b.set(i, r);
        }
        b
    }
}

/// The steps back from a view at `ts_ms` over `window` (earlier views, latest first), as
/// learning weighs them: each with its decay factor and whether it is still in the view's
/// own group of simultaneous views (see [`NodeModel::learn`]).
fn steps<'h>(
    window: impl Iterator<Item = &'h HistoryEntry>,
    ts_ms: i64,
    l: Learning,
) -> impl Iterator<Item = (&'h HistoryEntry, f32, bool)> {
    let (mut wd, mut same_group, mut t_next) = (1.0f32, true, ts_ms);
    window.enumerate().map(move |(d, prev)| {
        if l.simultaneous_ms < 0 || t_next.saturating_sub(prev.ts_ms) > l.simultaneous_ms {
            same_group = false;
            wd *= l.decay as f32;
        } else if d > 0 {
            wd *= l.group_inner as f32;
        }
        t_next = prev.ts_ms;
        (prev, wd, same_group)
    })
}

/// `r` under a compacted catalog's numbering (see [`crate::Catalog::compact`]), or `None`
/// if its slot was free.
fn remap_ref(map: &[u32], r: ItemRef) -> Option<ItemRef> {
    match map.get(r.slot as usize) {
        Some(&slot) if slot != u32::MAX => Some(ItemRef { slot, gen: r.gen }),
        _ => None,
    }
}

/// What one node learned from its own viewers, with its peers' evidence kept apart.
#[derive(Debug, Clone)]
pub struct NodeModel {
    /// Items with popularity.
    pub catalog: Catalog,
    /// Item-to-item co-occurrence evidence.
    pub transitions: Transitions,
    /// The decay clock of the co-occurrence evidence.
    pub decay: Decay,
    /// The decay clock of item popularity.
    pub pop_decay: Decay,
    /// The decay clock of item demand, the edge cache's request frequency: its time is
    /// `demand_ticks`, so the cache remembers a number of requests, however fast they come.
    pub demand_decay: Decay,
    /// Views at this node, privacy-clipped ones included: the demand clock's time.
    pub demand_ticks: u64,
    /// Popularity leaders.
    pub board: Board,
    /// Views learned, ever: with the catalog size, the mean popularity level that users'
    /// popularity affinities are measured against.
    pub views_total: u64,
    /// Peers' evidence, from the last federated import (see [`crate::federation`]).
    pub peers: Peers,
    /// Links that privacy-clipped views taught (see [`NodeModel::learn_local`]): this
    /// edge's own evidence, which scoring adds to [`NodeModel::transitions`] but no export
    /// ever reads, so the clip bounds what leaves the edge without costing the edge what
    /// it learns. Empty while `dp-clip` is 0.
    pub local: Transitions,
    /// Time of the latest view learned.
    pub last_ts_ms: i64,
    /// Export epoch in which a decay clock last moved its landmark: a delta export since
    /// an earlier round would mix scales, so it becomes a full one.
    pub landmark_epoch: u32,
    /// Peer-only items (see [`NodeModel::is_peer_only`]), most important first, as of
    /// the last import or load. A new own item in a full catalog takes the slot of the
    /// last one still peer-only: what this edge's viewers ask for outranks what peers
    /// reported, and popping a stack keeps that eviction O(1) where sampling for a
    /// peer-only item could miss them all in a catalog of mostly own items. Derived from
    /// the catalog, never persisted (see [`NodeModel::rebuild_peer_order`]).
    pub peer_order: Vec<ItemRef>,
}

/// What this node learned from peer edges: their co-occurrence rows over this node's
/// catalog, kept apart from its own evidence so each can be weighted
/// (`weight-federated`), and their view counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Peers {
    /// Peers' rows, keyed like the node's own.
    pub rows: Transitions,
    /// Sum of peers' views over all items.
    pub views_total: u64,
    /// Last federation round imported (imports of it or older change nothing).
    pub round: u64,
    /// Rounds imported.
    pub rounds: u64,
    /// When the last import happened (server clock, ms).
    pub last_import_ms: i64,
    /// Bytes of the last imported blob.
    pub last_import_bytes: u64,
}

/// What one learned view changed beyond the model itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learned {
    /// The item's reference (`None` only on a fingerprint collision, about 2^-64).
    pub item: Option<ItemRef>,
    /// The item's views (here and at peers) before this one: its popularity as the viewer
    /// found it, which the viewer's popularity affinity follows.
    pub prior_views: u64,
}

impl NodeModel {
    /// An empty model with the given half-lives (0: no decay); demand's is in views.
    pub fn new(half_life_ms: u64, popularity_half_life_ms: u64, demand_half_life: u64) -> Self {
        NodeModel {
            catalog: Catalog::default(),
            transitions: Transitions::default(),
            decay: Decay::new(half_life_ms, 0),
            pop_decay: Decay::new(popularity_half_life_ms, 0),
            demand_decay: Decay::new(demand_half_life, 0),
            demand_ticks: 0,
            board: Board::default(),
            views_total: 0,
            peers: Peers::default(),
            local: Transitions::default(),
            last_ts_ms: 0,
            landmark_epoch: 0,
            peer_order: Vec::new(),
        }
        .with_epoch(1)
    }

    fn with_epoch(mut self, epoch: u32) -> Self {
        self.transitions.set_epoch(epoch);
        self
    }

    /// `ln(1 + mean views per item)`: the popularity level of an average item.
    pub fn mean_ln_views(&self) -> f64 {
        let n = self.catalog.len();
        if n == 0 {
            0.0
        } else {
            (1.0 + (self.views_total + self.peers.views_total) as f64 / n as f64).ln()
        }
    }

    /// Views of an item, here and at peers (0 for an unknown one).
    pub fn views(&self, item: Option<ItemRef>) -> u64 {
        item.and_then(|r| self.catalog.get(r))
            .map_or(0, |i| i.views + i.peer_views)
    }

    /// Learns that `item` was viewed at `ts_ms` after `history` (oldest first), with
    /// `view_weight` (1 for a full view).
    ///
    /// Walking back over the last `window` views, each earlier item `p` gets a forward link
    /// `p → item` and a reverse link `item → p` (weighted `reverse`), both scaled by
    /// `decay` per step back. Views at the same time (within `simultaneous_ms`) form one
    /// unordered group: one step, linked both ways at full weight.
    pub fn learn(
        &mut self,
        history: &VecDeque<HistoryEntry>,
        item: &str,
        ts_ms: i64,
        view_weight: f32,
        p: LearnParams,
    ) -> Learned {
        self.last_ts_ms = self.last_ts_ms.max(ts_ms);
        self.advance_items(ts_ms);
        let adm = p.learning.admission as f32;
        if self.decay.due(ts_ms) {
            // Rescaling edits every row: buffered links land first, as they were learned.
            self.transitions.flush(p.successors_max, adm);
            self.advance_rows(ts_ms);
        }
        if self.catalog.len() >= p.items_max && self.catalog.lookup(item).is_none() {
            // An eviction clears a row: buffered links must land before it, as they would have.
            self.transitions.flush(p.successors_max, adm);
            // Room for an own item comes from peers' items first; only when none is left
            // does the catalog evict its least popular sampled (own) item.
            self.evict_peer_victim();
        }
        let Some((r, evicted)) = self.catalog.intern(item, p.items_max) else {
            return Learned {
                item: None,
                prior_views: 0,
            };
        };
        if let Some(slot) = evicted {
            self.forget_slot(slot);
        }
        let gp = self.pop_decay.weight(ts_ms) * f64::from(view_weight);
        let it = self.catalog.get_mut(r).expect("just interned");
        let prior_views = it.views + it.peer_views;
        it.popularity += gp;
        bump(&mut it.views);
        it.ln_views = (1.0 + (it.views + it.peer_views) as f32).ln();
        it.stamp = self.transitions.epoch();
        let fp = it.fp;
        bump(&mut self.views_total);
        self.board.bump(r, &self.catalog);

        let l = p.learning;
        let base = self.decay.weight(ts_ms) as f32 * view_weight;
        // Views the privacy clip kept out are not there as far as the model is concerned.
        let learned_history = history.iter().rev().filter(|h| !h.clipped);
        for (prev, wd, same_group) in steps(learned_history.take(l.window), ts_ms, l) {
            if prev.fp == fp {
                continue;
            }
            let Some(from) = self.catalog.resolve(prev.hint, prev.fp) else {
                continue;
            };
            let w = base * wd;
            let mut full = self.transitions.defer(from, r, w);
            let back = if same_group { 1.0 } else { l.reverse as f32 };
            if back > 0.0 {
                full |= self.transitions.defer(r, from, w * back);
            }
            if full {
                self.transitions.hand_off(p.successors_max, adm);
            }
        }
        Learned {
            item: Some(r),
            prior_views,
        }
    }

    /// Learns the links of a view that involve a privacy-clipped one into the local-only
    /// table [`NodeModel::local`]: for a clipped view (`clipped`), its links to every
    /// earlier view in the window; for an unclipped one, only those to clipped earlier
    /// views (its links to the others went to the exported rows through
    /// [`NodeModel::learn`]). Same weights as `learn`, over the unfiltered history; only
    /// items the catalog already holds are linked, so the catalog (which exports read) is
    /// never changed by a clipped view.
    pub fn learn_local(
        &mut self,
        history: &VecDeque<HistoryEntry>,
        item: &str,
        ts_ms: i64,
        view_weight: f32,
        clipped: bool,
        p: LearnParams,
    ) {
        let l = p.learning;
        let window = history.iter().rev().take(l.window);
        if !clipped && !window.clone().any(|h| h.clipped) {
            return;
        }
        let Some(r) = self.catalog.lookup(item) else {
            return;
        };
        if self.decay.due(ts_ms) {
            // As `learn` would (only with a half-life, which DP refuses): one clock.
            self.flush(p);
            self.advance_rows(ts_ms);
        }
        let fp = self.catalog.get(r).map_or(0, |i| i.fp);
        let adm = l.admission as f32;
        let base = self.decay.weight(ts_ms) as f32 * view_weight;
        for (prev, wd, same_group) in steps(window, ts_ms, l) {
            if prev.fp == fp || !(clipped || prev.clipped) {
                continue;
            }
            let Some(from) = self.catalog.resolve(prev.hint, prev.fp) else {
                continue;
            };
            let w = base * wd;
            self.local.row_mut(from).add(r, w, p.successors_max, adm);
            let back = if same_group { 1.0 } else { l.reverse as f32 };
            if back > 0.0 {
                self.local
                    .row_mut(r)
                    .add(from, w * back, p.successors_max, adm);
            }
        }
    }

    /// Counts a request for `item` in its demand, the edge cache's frequency. Every view
    /// at this node counts in full: a skip was fetched all the same, and a view the privacy
    /// clip keeps out of the exported model still asked this edge's cache for the item.
    /// Returns the factor every demand was multiplied by if the clock rescaled, which the
    /// cache's stored frequencies must follow.
    pub fn count_demand(&mut self, item: Option<ItemRef>) -> Option<f64> {
        let now = self.demand_ticks as i64;
        bump(&mut self.demand_ticks);
        let rescale = self.demand_decay.advance(now);
        if let Some(f) = rescale {
            self.catalog.scale_demand(f);
        }
        let weight = self.demand_decay.weight(now);
        if let Some(i) = item.and_then(|r| self.catalog.get_mut(r)) {
            i.demand += weight;
        }
        rescale
    }

    /// Rebases the demand clock on a new half-life (in views); returns the factor every
    /// demand was multiplied by, which the cache's stored frequencies must follow.
    pub fn set_demand_half_life(&mut self, half_life: u64) -> Option<f64> {
        if half_life == self.demand_decay.half_life() {
            return None;
        }
        let f = self
            .demand_decay
            .set_half_life(half_life, self.demand_ticks as i64);
        self.catalog.scale_demand(f);
        Some(f)
    }

    /// Applies buffered links (see [`Transitions`]); every reader of the rows calls it.
    pub fn flush(&mut self, p: LearnParams) {
        self.transitions
            .flush(p.successors_max, p.learning.admission as f32);
    }

    /// Moves the co-occurrence clock's landmark to `t` if weights at `t` would pass the
    /// headroom (as learning a view at `t` does, see [`Decay::advance`]), scaling every
    /// stored weight, own and peers', by the factor (below 1) that keeps its meaning.
    /// Flushed model.
    pub fn advance_rows(&mut self, t: i64) {
        if let Some(f) = self.decay.advance(t) {
            self.transitions.scale(f as f32);
            // Peers' rows are on the same clock (see `federation::import`).
            self.peers.rows.scale(f as f32);
            self.local.scale(f as f32);
            self.landmark_epoch = self.transitions.epoch();
        }
    }

    /// Moves the popularity clock's landmark to `t` if weights at `t` would pass the
    /// headroom, as [`NodeModel::advance_rows`] does for rows.
    pub fn advance_items(&mut self, t: i64) {
        if let Some(f) = self.pop_decay.advance(t) {
            self.catalog.scale(f);
            self.landmark_epoch = self.transitions.epoch();
        }
    }

    /// Whether `r` is known only from peers (flushed model): no view at this node and no
    /// own row. Such an item holds no evidence of this edge's own, so it is the only kind a
    /// federated import may evict, and the first kind learning evicts. (An own row without
    /// own views happens when a viewed item was evicted and then re-imported: links from
    /// its viewers' histories are still this edge's evidence.)
    pub fn is_peer_only(&self, r: ItemRef) -> bool {
        self.catalog.get(r).is_some_and(|i| {
            i.views == 0 && self.transitions.row(r).is_none_or(|row| row.is_empty())
        })
    }

    /// How much a peer-only item is worth keeping: its popularity at peers (what the
    /// fallback ranking of every user goes by), then its peer views. Both only grow with
    /// the peers' evidence, so the items that would rank or be linked most stay.
    pub fn peer_importance(item: &Item) -> (f64, u64) {
        (item.peer_popularity, item.peer_views)
    }

    /// Re-derives [`NodeModel::peer_order`] from the catalog (after an import or a load;
    /// flushed model). Ties go by name, so a replica that loads an RDB derives the order
    /// its primary will evict in.
    pub fn rebuild_peer_order(&mut self) {
        let mut v: Vec<(f64, u64, &str, ItemRef)> = self
            .catalog
            .iter()
            .filter(|&(r, _)| self.is_peer_only(r))
            .map(|(r, i)| {
                let (p, n) = Self::peer_importance(i);
                (p, n, &*i.name, r)
            })
            .collect();
        // Names are unique, so this is a strict order: an unstable sort gives the same
        // result without the stable sort's scratch buffer.
        v.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
        self.peer_order = v.into_iter().map(|(.., r)| r).collect();
    }

    /// Evicts the least important item still peer-only (flushed model), if any; entries of
    /// the order that were evicted or gained own evidence since are dropped on the way.
    fn evict_peer_victim(&mut self) -> bool {
        while let Some(r) = self.peer_order.pop() {
            if self.is_peer_only(r) {
                self.catalog.evict(r.slot);
                self.forget_slot(r.slot);
                return true;
            }
        }
        false
    }

    /// Re-sorts the popularity board from scratch (after an import changed many items).
    pub fn rebuild_board(&mut self) {
        self.board = Board::rebuild(&self.catalog);
    }

    /// Evicts the least important peer-only item, or if none is left the catalog's least
    /// popular sampled item (used when `items-max` is lowered; flushed model).
    pub fn evict_least_popular(&mut self) {
        if self.evict_peer_victim() {
            return;
        }
        if let Some(slot) = self.catalog.evict_one() {
            self.forget_slot(slot);
        }
    }

    /// Evicts items while more than `target` are tracked, at most `max_evictions` of them
    /// and until the eviction hand has passed `max_scanned` slots (flushed model): one
    /// bounded step of a shrink after a bound was lowered. Returns how many were evicted.
    pub fn evict_down_to(
        &mut self,
        target: usize,
        max_evictions: usize,
        max_scanned: u64,
    ) -> usize {
        let mut evicted = 0;
        let scanned = self.catalog.scanned();
        while evicted < max_evictions
            && self.catalog.len() > target
            && self.catalog.scanned() - scanned < max_scanned
        {
            self.evict_least_popular();
            evicted += 1;
        }
        evicted
    }

    /// Renumbers the catalog densely and makes every side table follow (own and peers'
    /// rows, the board, the peer order), returning the memory of evicted items to the
    /// allocator: after a shrink, memory follows the items kept, and a save writes no
    /// empty slot. False (nothing changed) when no slot is free. Flushed model.
    ///
    /// Users' remembered hints stay correct: the catalog takes a new id, so they resolve
    /// by fingerprint (see [`Catalog::resolve`]).
    pub fn compact(&mut self) -> bool {
        let Some(map) = self.catalog.compact() else {
            return false;
        };
        self.transitions.remap(&map);
        self.peers.rows.remap(&map);
        self.local.remap(&map);
        self.board.remap(&map);
        self.peer_order = self
            .peer_order
            .iter()
            .filter_map(|&r| remap_ref(&map, r))
            .collect();
        crate::catalog::release(map);
        true
    }

    /// Forgets everything kept about an evicted slot: own and peers' rows, board place.
    pub fn forget_slot(&mut self, slot: u32) {
        self.transitions.clear_slot(slot);
        self.peers.rows.clear_slot(slot);
        self.local.clear_slot(slot);
        self.board.remove_slot(slot);
    }

    /// Updates the running mean duration of an item and tells whether `duration_s` is a
    /// skip: shorter than `threshold_pct` percent of the usual watch time.
    pub fn observe_duration(&mut self, item: ItemRef, duration_s: u32, threshold_pct: u32) -> bool {
        let skip = self.is_skip(item, duration_s, threshold_pct);
        let Some(it) = self.catalog.get_mut(item) else {
            return false;
        };
        let d = duration_s as f32;
        let mean = it.mean_duration_s;
        if !skip {
            // A running mean of full views, with a floor on the count so it keeps adapting.
            let n = it.views.clamp(1, 100) as f32;
            it.mean_duration_s = if mean == 0.0 {
                d
            } else {
                mean + (d - mean) / n
            };
        }
        skip
    }

    /// Whether `duration_s` is a skip of `item` against its usual watch time, without
    /// learning from it: a privacy-clipped view must not move what the node exports.
    pub fn is_skip(&self, item: ItemRef, duration_s: u32, threshold_pct: u32) -> bool {
        self.catalog.get(item).is_some_and(|it| {
            it.mean_duration_s > 0.0
                && duration_s as f32 * 100.0 < it.mean_duration_s * threshold_pct as f32
        })
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.catalog.memory_bytes()
            + self.transitions.memory_bytes()
            + self.peers.rows.memory_bytes()
            + self.local.memory_bytes()
            + self.board.memory_bytes()
            + self.peer_order.capacity() * std::mem::size_of::<ItemRef>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::fingerprint;

    /// A history of views one second apart.
    fn hist(items: &[&str]) -> VecDeque<HistoryEntry> {
        items
            .iter()
            .enumerate()
            .map(|(t, i)| HistoryEntry {
                item: (*i).into(),
                fp: fingerprint(i.as_bytes()),
                ts_ms: t as i64 * 1000,
                weight: 1.0,
                hint: Default::default(),
                clipped: false,
            })
            .collect()
    }

    const P: LearnParams = LearnParams {
        learning: Learning {
            window: 2,
            decay: 0.5,
            reverse: 0.25,
            simultaneous_ms: 0,
            group_inner: 1.0,
            admission: 0.0,
        },
        successors_max: 8,
        items_max: 100,
    };

    fn w(g: &mut NodeModel, from: &str, to: &str) -> f32 {
        g.flush(P);
        let (f, t) = (
            g.catalog.lookup(from).unwrap(),
            g.catalog.lookup(to).unwrap(),
        );
        g.transitions
            .row(f)
            .and_then(|r| r.entries().find(|e| e.item == t))
            .map_or(0.0, |e| e.val.count)
    }

    fn model() -> NodeModel {
        NodeModel::new(0, 0, 0)
    }

    #[test]
    fn learn_links_the_window_forward_and_back_with_decay() {
        let mut g = model();
        for i in ["A", "B"] {
            g.learn(&VecDeque::new(), i, 0, 1.0, P);
        }
        g.learn(&hist(&["A", "B"]), "C", 5000, 1.0, P);
        assert_eq!(w(&mut g, "B", "C"), 0.5, "one step back");
        assert_eq!(w(&mut g, "A", "C"), 0.25, "two steps back");
        assert_eq!(w(&mut g, "C", "B"), 0.125, "reverse link at a quarter");
        assert_eq!(w(&mut g, "C", "A"), 0.0625);
        assert_eq!(g.views_total, 3);
    }

    #[test]
    fn simultaneous_views_are_one_unordered_step() {
        let mut g = model();
        let mut h = hist(&["A", "B"]);
        h.iter_mut().for_each(|e| e.ts_ms = 7000);
        for i in ["A", "B"] {
            g.learn(&VecDeque::new(), i, 0, 1.0, P);
        }
        g.learn(&h, "C", 7000, 1.0, P);
        assert_eq!(w(&mut g, "B", "C"), 1.0, "same group: no decay");
        assert_eq!(
            w(&mut g, "C", "B"),
            1.0,
            "same group: linked both ways at full weight"
        );
        assert_eq!(w(&mut g, "A", "C"), 1.0);
    }

    #[test]
    fn board_orders_by_popularity() {
        let mut g = model();
        for (item, n) in [("X", 1), ("Y", 3), ("Z", 2)] {
            for _ in 0..n {
                g.learn(&VecDeque::new(), item, 0, 1.0, P);
            }
        }
        let names: Vec<_> = g
            .board
            .items()
            .iter()
            .map(|&r| g.catalog.get(r).unwrap().name.to_string())
            .collect();
        assert_eq!(names, ["Y", "Z", "X"]);
        assert_eq!(Board::rebuild(&g.catalog), g.board);
    }

    #[test]
    fn board_stays_sorted_and_indexed_through_evictions() {
        let mut g = model();
        let p = LearnParams { items_max: 40, ..P };
        for t in 0..5000u64 {
            // A skewed stream over 200 items into a 40-item catalog.
            let item = format!("I{}", (t * t) % 200 % (1 + t % 50));
            g.learn(&VecDeque::new(), &item, t as i64, 1.0, p);
        }
        let pops: Vec<f64> = g
            .board
            .items()
            .iter()
            .map(|&r| g.catalog.get(r).expect("live").ranking_popularity())
            .collect();
        assert!(pops.windows(2).all(|w| w[0] >= w[1]), "sorted: {pops:?}");
        for (i, r) in g.board.items().iter().enumerate() {
            assert_eq!(g.board.position(r.slot), Some(i));
        }
        assert_eq!(g.board.items().len(), g.catalog.len());
    }

    /// A step of a shrink stops when the eviction hand has passed its share of slots,
    /// however few items it evicted: a thinned-out catalog makes sampling slow.
    #[test]
    fn a_shrink_step_is_bounded_by_the_slots_it_scans() {
        let mut g = model();
        let p = LearnParams {
            items_max: 4000,
            ..P
        };
        for t in 0..4000 {
            g.learn(&VecDeque::new(), &format!("I{t}"), t, 1.0, p);
        }
        assert_eq!(g.evict_down_to(10, 3900, u64::MAX), 3900);
        let before = g.catalog.scanned();
        let evicted = g.evict_down_to(10, 1000, 500);
        // Each sample of eight of the 100 items left passes about 320 slots.
        assert!((1..10).contains(&evicted), "{evicted} evicted");
        assert!(g.catalog.scanned() - before < 500 + 4000);
        assert_eq!(g.catalog.len(), 100 - evicted);
    }

    #[test]
    fn popularity_decays_past_its_rescale() {
        let mut g = NodeModel::new(0, 1000, 0);
        g.learn(&VecDeque::new(), "old", 0, 1.0, P);
        g.learn(&VecDeque::new(), "new", 1000, 1.0, P);
        let pop = |g: &NodeModel, i| {
            g.catalog
                .get(g.catalog.lookup(i).unwrap())
                .unwrap()
                .popularity
        };
        assert!((pop(&g, "new") / pop(&g, "old") - 2.0).abs() < 1e-9);
        // Past 2^40 the clock rescales every popularity, keeping the order.
        g.learn(&VecDeque::new(), "new", 60_000, 1.0, P);
        assert!(pop(&g, "new") > pop(&g, "old"));
        assert!(pop(&g, "new") < 4.0, "rescaled: {}", pop(&g, "new"));
    }

    /// The cache's demand decays per view at this node, whatever the timestamps say, and
    /// counts a skip in full.
    #[test]
    fn demand_decays_per_view_and_reports_its_rescale() {
        let mut g = NodeModel::new(0, 0, 2);
        let view = |g: &mut NodeModel, item, ts_ms, w| {
            let r = g.learn(&VecDeque::new(), item, ts_ms, w, P).item;
            g.count_demand(r)
        };
        let demand = |g: &NodeModel, i| g.catalog.get(g.catalog.lookup(i).unwrap()).unwrap().demand;
        view(&mut g, "old", 0, 1.0);
        // Two views later (and a year later by the clock): half the weight of a new one.
        view(&mut g, "x", 0, 1.0);
        view(&mut g, "new", 365 * 86_400_000, 0.25);
        assert!((demand(&g, "new") / demand(&g, "old") - 2.0).abs() < 1e-9);
        let rescaled = (0..100).filter_map(|_| view(&mut g, "x", 0, 1.0)).count();
        assert_eq!(
            rescaled, 1,
            "once past 2^40 in 100 views at a half-life of 2"
        );
        // Without the rescale the last weight would be 2^51; with it, 2^11 or so.
        assert!(demand(&g, "x") > demand(&g, "new") && demand(&g, "x") < 65_536.0);
    }

    #[test]
    fn skips_are_detected_against_the_usual_duration() {
        let mut g = model();
        let r = g.learn(&VecDeque::new(), "E1", 0, 1.0, P).item.unwrap();
        assert!(!g.observe_duration(r, 2400, 25));
        assert!(g.observe_duration(r, 60, 25));
        assert!(!g.observe_duration(r, 2000, 25));
    }
}
