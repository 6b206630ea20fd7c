//! One viewer's state: recent history, what they have seen, and their own habits.
//!
//! A user's state lives in its own Redis key, so it moves with its hash slot between cluster
//! nodes (MIGRATE, DUMP/RESTORE). It therefore holds item names and stable fingerprints, never
//! a node's catalog slots. Every part is bounded by [`crate::Config`].

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::catalog::Hint;
use crate::hash::{fingerprint, FpBuild};
use crate::memo::Memo;

/// One recent view.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The item id: the catalog's own string while the item is tracked, so a view costs no
    /// allocation and a viewer's history no copy of each name.
    pub item: Arc<str>,
    /// Its fingerprint, so scoring need not rehash the name.
    pub fp: u64,
    /// When the view happened (ms since the Unix epoch).
    pub ts_ms: i64,
    /// How much the view taught: 1 for a full view, less for a skip.
    pub weight: f32,
    /// Where the item sat in this node's catalog when the view was learned: a cache that
    /// spares a hash lookup while the item stays put (see `Catalog::resolve`).
    pub hint: Hint,
    /// Whether the privacy clip (`dp-clip`) kept this view out of the node's exportable
    /// model: learning never links a later view from it, so what the viewer's over-the-clip
    /// views teach the export is exactly nothing, in this round and later ones.
    pub clipped: bool,
}

/// A transition in the user's own history (previous item → next item), by fingerprint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonalTransition {
    /// Fingerprint of the earlier item.
    pub prev: u64,
    /// Fingerprint of the item that followed.
    pub next: u64,
    /// Space-Saving weight.
    pub weight: f32,
}

/// The user's own transitions as parallel arrays. Every view looks its pair up, and a
/// user's data is cold by the time they come back, so the scan reads 8 bytes per entry (a
/// 32-bit tag of the pair and the weight: 4 cache lines at the default 32 entries, where
/// whole transitions took 12); the pair itself is read only when its tag matches.
#[derive(Debug, Clone, Default, PartialEq)]
struct Personal {
    /// (tag of the pair, Space-Saving weight), in entry order.
    hot: Vec<(u32, f32)>,
    /// (prev, next) fingerprints, in the same order.
    pairs: Vec<(u64, u64)>,
}

/// A 32-bit tag of a pair; fingerprints are already hashes, so folding them mixes enough.
fn pair_tag(prev: u64, next: u64) -> u32 {
    let h = prev ^ next.rotate_left(29);
    (h ^ (h >> 32)) as u32
}

impl Personal {
    fn from_transitions(ts: &[PersonalTransition]) -> Self {
        Personal {
            hot: ts
                .iter()
                .map(|t| (pair_tag(t.prev, t.next), t.weight))
                .collect(),
            pairs: ts.iter().map(|t| (t.prev, t.next)).collect(),
        }
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = PersonalTransition> + '_ {
        self.pairs
            .iter()
            .zip(&self.hot)
            .map(|(&(prev, next), &(_, weight))| PersonalTransition { prev, next, weight })
    }

    /// Space-Saving: adds `w` to the pair, or takes a free entry, or replaces the first of
    /// the lightest.
    fn add(&mut self, prev: u64, next: u64, w: f32, max: usize) {
        if max == 0 {
            return;
        }
        let tag = pair_tag(prev, next);
        let pairs = &self.pairs;
        let found = (0..self.hot.len()).find(|&i| self.hot[i].0 == tag && pairs[i] == (prev, next));
        if let Some(i) = found {
            self.hot[i].1 += w;
        } else if self.hot.len() < max {
            self.hot.push((tag, w));
            self.pairs.push((prev, next));
        } else if let Some(i) =
            (0..self.hot.len()).min_by(|&a, &b| self.hot[a].1.total_cmp(&self.hot[b].1))
        {
            self.hot[i] = (tag, self.hot[i].1 + w);
            self.pairs[i] = (prev, next);
        }
    }

    fn memory_bytes(&self) -> usize {
        self.hot.capacity() * std::mem::size_of::<(u32, f32)>()
            + self.pairs.capacity() * std::mem::size_of::<(u64, u64)>()
    }
}

/// Everything the node knows about one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserState {
    history: VecDeque<HistoryEntry>,
    seen: HashSet<u64, FpBuild>,
    seen_order: VecDeque<u64>,
    personal: Personal,
    records: u64,
    first_ts_ms: i64,
    device: Option<Box<str>>,
    /// The user's usual popularity level (mean log-views of what they watch, relative to the
    /// catalog mean): mainstream viewers sit above 0, niche viewers below.
    affinity: f32,
    /// Export epoch of `round_views`, for the per-round privacy clip.
    round_epoch: u32,
    /// Views in that epoch.
    round_views: u32,
    pub(crate) memo: Memo,
}

impl UserState {
    /// Recent views, oldest first.
    pub fn history(&self) -> &VecDeque<HistoryEntry> {
        &self.history
    }

    /// The most recent view.
    pub fn last(&self) -> Option<&HistoryEntry> {
        self.history.back()
    }

    /// Whether the user has seen the item with this fingerprint (within `seen-max` items).
    pub fn has_seen(&self, fp: u64) -> bool {
        self.seen.contains(&fp)
    }

    /// Distinct items remembered as seen.
    pub fn seen_len(&self) -> usize {
        self.seen_order.len()
    }

    /// Seen fingerprints, oldest first.
    pub fn seen(&self) -> impl Iterator<Item = u64> + '_ {
        self.seen_order.iter().copied()
    }

    /// Personal transitions.
    pub fn personal(&self) -> impl ExactSizeIterator<Item = PersonalTransition> + '_ {
        self.personal.iter()
    }

    /// Views recorded for this user, ever.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Time of the first recorded view.
    pub fn first_ts_ms(&self) -> i64 {
        self.first_ts_ms
    }

    /// The user's popularity level (see [`UserState::observe_affinity`]).
    pub fn affinity(&self) -> f32 {
        self.affinity
    }

    /// Moves the popularity level towards `z`, the popularity of the item about to be
    /// viewed: a plain mean over the first `1/rate` views, an exponential average after.
    /// Call before [`UserState::push`] with the item's popularity before this view.
    pub fn observe_affinity(&mut self, z: f64, rate: f64) {
        let r = rate.max(1.0 / (self.records as f64 + 1.0));
        self.affinity += (r * (z - f64::from(self.affinity))) as f32;
    }

    /// Counts a view in export epoch `epoch` and returns how many this user made in it.
    pub fn count_round_view(&mut self, epoch: u32) -> u32 {
        if self.round_epoch != epoch {
            self.round_epoch = epoch;
            self.round_views = 0;
        }
        self.round_views = self.round_views.saturating_add(1);
        self.round_views
    }

    /// Marks the latest view as kept out of the exportable model by the privacy clip (see
    /// [`HistoryEntry::clipped`]): call right after [`UserState::push`].
    pub fn clip_last(&mut self) {
        if let Some(h) = self.history.back_mut() {
            h.clipped = true;
        }
    }

    /// (epoch, views in it), for persistence.
    pub fn round_views(&self) -> (u32, u32) {
        (self.round_epoch, self.round_views)
    }

    /// The device of the latest view.
    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }

    /// Learns one view. Bounds: `history_len` recent items, `seen_max` seen items (oldest
    /// forgotten first), `personal_max` personal transitions (Space-Saving).
    pub fn push(
        &mut self,
        item: impl Into<Arc<str>>,
        ts_ms: i64,
        weight: f32,
        device: Option<&str>,
        bounds: UserBounds,
        hint: Option<Hint>,
    ) {
        self.memo = Memo::default();
        let item = item.into();
        let fp = fingerprint(item.as_bytes());
        if let Some(prev) = self.history.back() {
            let prev = prev.fp;
            if prev != fp {
                self.personal.add(prev, fp, weight, bounds.personal_max);
            }
        }
        if self.records == 0 {
            self.first_ts_ms = ts_ms;
        }
        crate::wire::bump(&mut self.records);
        self.history.push_back(HistoryEntry {
            item,
            fp,
            ts_ms,
            weight,
            hint: hint.unwrap_or_default(),
            clipped: false,
        });
        while self.history.len() > bounds.history_len {
            self.history.pop_front();
        }
        if bounds.seen_max > 0 && self.seen.insert(fp) {
            self.seen_order.push_back(fp);
            while self.seen_order.len() > bounds.seen_max {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
        if let Some(d) = device {
            if self.device.as_deref() != Some(d) {
                self.device = Some(d.into());
            }
        }
    }

    /// Reads a word from each cache line that learning a view of `fp` touches, folded
    /// into one value for `std::hint::black_box`.
    ///
    /// A returning viewer's state is cold, and learning walks it part by part (history,
    /// seen set, own transitions), each part waiting for the one before. Read here first,
    /// with no load depending on another, the misses overlap (the criterion `record` bench in
    /// `model/benches` measures a record with it).
    pub fn warm(&self, fp: u64, window: usize) -> u64 {
        let mut acc = u64::from(self.seen.contains(&fp));
        for h in self.history.iter().rev().take(window) {
            acc ^= h.ts_ms as u64;
        }
        if let Some(oldest) = self.history.front() {
            // Dropped when the history is full: its name's count is written.
            acc ^= Arc::strong_count(&oldest.item) as u64;
        }
        // 8 tags per line, 4 pairs per line.
        for t in self.personal.hot.iter().step_by(8) {
            acc ^= u64::from(t.0);
        }
        for p in self.personal.pairs.iter().step_by(4) {
            acc ^= p.0;
        }
        acc ^ self.seen_order.back().copied().unwrap_or(0)
            ^ self.seen_order.front().copied().unwrap_or(0)
    }

    /// Heap bytes held, for MEMORY USAGE and the memory bound.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.history.capacity() * std::mem::size_of::<HistoryEntry>()
            // A name shared with the catalog (or other viewers) is not this user's to count.
            + self
                .history
                .iter()
                .filter(|h| Arc::strong_count(&h.item) == 1)
                .map(|h| h.item.len())
                .sum::<usize>()
            + self.seen.capacity() * 9
            + self.seen_order.capacity() * 8
            + self.personal.memory_bytes()
            + self.device.as_ref().map_or(0, |d| d.len())
    }

    /// Rebuilds a user from persisted parts (see [`crate::codec`]).
    pub fn from_parts(parts: UserParts) -> Self {
        let UserParts {
            history,
            seen_order,
            personal,
            records,
            first_ts_ms,
            device,
            affinity,
            round_views,
        } = parts;
        let seen_order: VecDeque<u64> = seen_order.into();
        UserState {
            history: history.into(),
            seen: seen_order.iter().copied().collect(),
            seen_order,
            personal: Personal::from_transitions(&personal),
            records,
            first_ts_ms,
            device,
            affinity,
            round_epoch: round_views.0,
            round_views: round_views.1,
            memo: Memo::default(),
        }
    }
}

/// A user's persisted fields, in the order the codec writes them.
#[derive(Debug, Clone, Default)]
pub struct UserParts {
    /// Recent views, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Seen fingerprints, oldest first.
    pub seen_order: Vec<u64>,
    /// Personal transitions.
    pub personal: Vec<PersonalTransition>,
    /// Views ever.
    pub records: u64,
    /// First view time.
    pub first_ts_ms: i64,
    /// Latest device.
    pub device: Option<Box<str>>,
    /// Popularity level.
    pub affinity: f32,
    /// Views in the current export epoch: (epoch, count).
    pub round_views: (u32, u32),
}

/// The per-user bounds, copied out of [`crate::Config`].
#[derive(Debug, Clone, Copy)]
pub struct UserBounds {
    /// Recent items kept.
    pub history_len: usize,
    /// Seen items remembered.
    pub seen_max: usize,
    /// Personal transitions kept.
    pub personal_max: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: UserBounds = UserBounds {
        history_len: 3,
        seen_max: 4,
        personal_max: 2,
    };

    #[test]
    fn history_and_seen_are_bounded_oldest_first() {
        let mut u = UserState::default();
        for i in 0..6 {
            u.push(format!("I{i}"), i, 1.0, Some("TV"), B, None);
        }
        let h: Vec<_> = u.history().iter().map(|e| &*e.item).collect();
        assert_eq!(h, ["I3", "I4", "I5"]);
        assert_eq!(u.seen_len(), 4);
        assert!(!u.has_seen(fingerprint(b"I1")));
        assert!(u.has_seen(fingerprint(b"I2")));
        assert_eq!(u.records(), 6);
        assert_eq!(u.device(), Some("TV"));
        assert_eq!(u.personal().len(), 2);
    }

    #[test]
    fn personal_transitions_accumulate() {
        let mut u = UserState::default();
        for _ in 0..3 {
            u.push("A", 0, 1.0, None, B, None);
            u.push("B", 0, 1.0, None, B, None);
        }
        let ab = u
            .personal()
            .find(|t| t.prev == fingerprint(b"A") && t.next == fingerprint(b"B"))
            .unwrap();
        assert_eq!(ab.weight, 3.0);
    }
}
