//! The node's global model: what all of this edge's viewers taught it.
//!
//! It holds the item catalog with decayed popularity, the item-to-item transition rows and a
//! leaderboard of the most popular items, and learns one view at a time. It is the part of
//! the state that federation exchanges; per-user state stays in [`crate::user`].

use std::collections::VecDeque;

use crate::catalog::{Catalog, ItemRef};
use crate::decay::Decay;
use crate::transitions::Transitions;
use crate::user::HistoryEntry;

/// Items kept on the popularity leaderboard: enough to fill any `k` up to
/// [`crate::config::MAX_K`] for a user who has already seen a few of the top items.
pub const BOARD_LEN: usize = 1024;

/// Settings the global model learns under, copied from [`crate::Config`].
#[derive(Debug, Clone, Copy)]
pub struct LearnParams {
    /// Previous items (most recent first) that each view is credited to.
    pub window: usize,
    /// Geometric weight per step back in the window.
    pub recency: f32,
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
        let pop = |r: ItemRef| catalog.get(r).map_or(f64::NEG_INFINITY, |i| i.popularity);
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

    /// Rebuilds the board by a full sort (after load or a merge).
    pub fn rebuild(catalog: &Catalog) -> Self {
        let mut v: Vec<(f64, ItemRef)> = catalog.iter().map(|(r, i)| (i.popularity, r)).collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.slot.cmp(&b.1.slot)));
        v.truncate(BOARD_LEN);
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

/// Global evidence of one node.
#[derive(Debug, Clone)]
pub struct GlobalModel {
    /// Items with popularity.
    pub catalog: Catalog,
    /// Item-to-item evidence.
    pub transitions: Transitions,
    /// The decay clock shared by popularity and transitions.
    pub decay: Decay,
    /// Popularity leaders.
    pub board: Board,
    /// Sum of all popularity (the normalizer of the popularity prior).
    pub total_popularity: f64,
}

impl GlobalModel {
    /// An empty model decaying with the given half-life.
    pub fn new(half_life_ms: u64) -> Self {
        GlobalModel {
            catalog: Catalog::default(),
            transitions: Transitions::default(),
            decay: Decay::new(half_life_ms, 0),
            board: Board::default(),
            total_popularity: 0.0,
        }
    }

    /// Learns that `item` was viewed at `ts_ms` after `history` (oldest first), with
    /// `view_weight` (1 for a full view). Returns the item's reference (`None` in the
    /// astronomically rare case of a fingerprint collision) and, if the decay clock had to
    /// rescale, the factor every stored weight was multiplied by, so that caches keyed by
    /// these weights can follow.
    pub fn learn(
        &mut self,
        history: &VecDeque<HistoryEntry>,
        item: &str,
        ts_ms: i64,
        view_weight: f32,
        p: LearnParams,
    ) -> (Option<ItemRef>, Option<f64>) {
        let rescaled = self.decay.advance(ts_ms);
        if let Some(factor) = rescaled {
            self.scale(factor);
        }
        (
            self.learn_at(history, item, ts_ms, view_weight, p),
            rescaled,
        )
    }

    fn learn_at(
        &mut self,
        history: &VecDeque<HistoryEntry>,
        item: &str,
        ts_ms: i64,
        view_weight: f32,
        p: LearnParams,
    ) -> Option<ItemRef> {
        let w = self.decay.weight(ts_ms) * f64::from(view_weight);
        let (r, evicted) = self.catalog.intern(item, p.items_max)?;
        if let Some(slot) = evicted {
            self.forget_slot(slot);
        }
        let it = self.catalog.get_mut(r).expect("just interned");
        it.popularity += w;
        it.views += 1;
        let fp = it.fp;
        self.total_popularity += w;
        self.board.bump(r, &self.catalog);

        let mut coef = w as f32;
        for prev in history.iter().rev().take(p.window) {
            if prev.fp != fp {
                if let Some(from) = self.catalog.lookup_fp_only(prev.fp) {
                    self.transitions
                        .row_mut(from)
                        .add(r, coef, p.successors_max);
                }
            }
            coef *= p.recency;
        }
        Some(r)
    }

    /// Evicts the catalog's least popular sampled item (used when `items-max` is lowered).
    pub fn evict_least_popular(&mut self) {
        if let Some(slot) = self.catalog.evict_one() {
            self.forget_slot(slot);
        }
    }

    fn forget_slot(&mut self, slot: u32) {
        self.transitions.clear_slot(slot);
        self.board.remove_slot(slot);
    }

    /// Multiplies all stored evidence by `factor` (decay rescale or half-life change).
    pub fn scale(&mut self, factor: f64) {
        self.catalog.scale(factor);
        self.transitions.scale(factor as f32);
        self.total_popularity *= factor;
    }

    /// Updates the running mean duration of an item and tells whether `duration_s` is a
    /// skip: shorter than `threshold_pct` percent of the usual watch time.
    pub fn observe_duration(&mut self, item: ItemRef, duration_s: u32, threshold_pct: u32) -> bool {
        let Some(it) = self.catalog.get_mut(item) else {
            return false;
        };
        let d = duration_s as f32;
        let mean = it.mean_duration_s;
        let skip = mean > 0.0 && d * 100.0 < mean * threshold_pct as f32;
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

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.catalog.memory_bytes()
            + self.transitions.memory_bytes()
            + self.board.items.capacity() * std::mem::size_of::<ItemRef>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::fingerprint;

    fn hist(items: &[&str]) -> VecDeque<HistoryEntry> {
        items
            .iter()
            .map(|i| HistoryEntry {
                item: (*i).into(),
                fp: fingerprint(i.as_bytes()),
                ts_ms: 0,
                weight: 1.0,
            })
            .collect()
    }

    const P: LearnParams = LearnParams {
        window: 2,
        recency: 0.5,
        successors_max: 8,
        items_max: 100,
    };

    #[test]
    fn learn_credits_window_with_geometric_weights() {
        let mut g = GlobalModel::new(0);
        for i in ["A", "B"] {
            g.learn(&VecDeque::new(), i, 0, 1.0, P);
        }
        let c = g.learn(&hist(&["A", "B"]), "C", 0, 1.0, P).0.unwrap();
        let a = g.catalog.lookup("A").unwrap();
        let b = g.catalog.lookup("B").unwrap();
        let wa = g.transitions.row(a).unwrap().entries()[0];
        let wb = g.transitions.row(b).unwrap().entries()[0];
        assert_eq!((wa.item, wa.weight), (c, 0.5));
        assert_eq!((wb.item, wb.weight), (c, 1.0));
        assert_eq!(g.board.items()[0..3].len(), 3);
        assert_eq!(g.total_popularity, 3.0);
    }

    #[test]
    fn board_orders_by_popularity() {
        let mut g = GlobalModel::new(0);
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
        let mut g = GlobalModel::new(0);
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
            .map(|&r| g.catalog.get(r).expect("live").popularity)
            .collect();
        assert!(pops.windows(2).all(|w| w[0] >= w[1]), "sorted: {pops:?}");
        for (i, r) in g.board.items().iter().enumerate() {
            assert_eq!(g.board.position(r.slot), Some(i));
        }
        assert_eq!(g.board.items().len(), g.catalog.len());
    }

    #[test]
    fn skips_are_detected_against_the_usual_duration() {
        let mut g = GlobalModel::new(0);
        let r = g.learn(&VecDeque::new(), "E1", 0, 1.0, P).0.unwrap();
        assert!(!g.observe_duration(r, 2400, 25));
        assert!(g.observe_duration(r, 60, 25));
        assert!(!g.observe_duration(r, 2000, 25));
    }
}
