//! Bounded co-occurrence rows: for each item, the items seen near it and how strongly.
//!
//! A row keeps at most `successors_max` entries with a variant of Space-Saving (Metwally et
//! al., 2005) tuned for ranking:
//!
//! - each entry carries its *error*, the weight it inherited when it took a slot, so that
//!   scoring can use the guaranteed count `count - error` rather than the overestimate;
//! - a newcomer replaces the lightest entry only if its own weight is at least
//!   `admission × guaranteed(lightest)`, so a stream of one-off neighbours cannot keep
//!   flushing the genuine ones (classic Space-Saving admits everything).
//!
//! The admission rule is what keeps bounded rows close to unbounded ones: `loadgen eval …
//! --sweep admission=0,0.25` (0 is classic Space-Saving) measures the difference on a log,
//! and `--sweep successors-max=…` the cost of the bound. Rows are stored as parallel arrays
//! so that finding an item scans 4 bytes per entry, which is what the record path pays for.

use crate::catalog::ItemRef;

/// Weight and bookkeeping of one entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Val {
    /// Generation of the item in its slot (an entry whose slot was recycled is stale).
    pub gen: u32,
    /// Accumulated weight, including what was inherited.
    pub count: f32,
    /// The inherited part of `count`: `count - error` is a guaranteed lower bound.
    pub error: f32,
}

impl Val {
    /// The weight this entry is guaranteed to have earned.
    pub fn guaranteed(&self) -> f32 {
        self.count - self.error
    }
}

/// One entry, as handed out for display and persistence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The neighbour item.
    pub item: ItemRef,
    /// Its weight and error.
    pub val: Val,
}

/// The neighbours of one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    slots: Vec<u32>,
    vals: Vec<Val>,
    total: f32,
    /// Index of the lightest entry, or `NO_MIN` when it must be searched again.
    min: u32,
    /// Export epoch in which the row last changed (see [`crate::federation`]).
    pub(super) stamp: u32,
}

const NO_MIN: u32 = u32::MAX;

/// Position of `x` in `hay`, in chunks the compiler turns into vector compares.
fn find(hay: &[u32], x: u32) -> Option<usize> {
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let c: &[u32; 8] = c.try_into().expect("chunk of 8");
        if c.iter().fold(false, |acc, &v| acc | (v == x)) {
            return c.iter().position(|&v| v == x).map(|i| base + i);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&v| v == x)
        .map(|i| base + i)
}

impl Row {
    /// Adds `w` to the neighbour `item`, keeping at most `max` entries and admitting a
    /// newcomer into a full row only if `w >= admission × guaranteed(lightest)`.
    pub fn add(&mut self, item: ItemRef, w: f32, max: usize, admission: f32) {
        self.total += w;
        if let Some(i) = find(&self.slots, item.slot) {
            let v = &mut self.vals[i];
            if v.gen == item.gen {
                v.count += w;
                if self.min == i as u32 {
                    self.min = NO_MIN;
                }
            } else {
                // The slot was recycled for another item: the old entry is stale, and its
                // weight falls, so it may now be the lightest.
                *v = Val {
                    gen: item.gen,
                    count: w,
                    error: 0.0,
                };
                self.min = NO_MIN;
            }
            return;
        }
        if self.slots.len() < max {
            self.slots.push(item.slot);
            self.vals.push(Val {
                gen: item.gen,
                count: w,
                error: 0.0,
            });
            self.min = NO_MIN;
            return;
        }
        let Some(m) = self.lightest() else { return };
        let light = self.vals[m];
        if w < admission * light.guaranteed() {
            return;
        }
        self.slots[m] = item.slot;
        self.vals[m] = Val {
            gen: item.gen,
            count: light.count + w,
            error: light.count,
        };
        self.min = NO_MIN;
    }

    /// The first entry with the smallest count (cached until it changes).
    fn lightest(&mut self) -> Option<usize> {
        if self.min == NO_MIN {
            let mut best = f32::INFINITY;
            for (i, v) in self.vals.iter().enumerate() {
                if v.count < best {
                    best = v.count;
                    self.min = i as u32;
                }
            }
        }
        (self.min != NO_MIN).then_some(self.min as usize)
    }

    /// Entries as (slot, value) pairs, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Val)> {
        self.slots.iter().copied().zip(self.vals.iter())
    }

    /// Entries with their item references.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.iter().map(|(slot, &val)| Entry {
            item: ItemRef { slot, gen: val.gen },
            val,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Export epoch in which the row last changed.
    pub fn stamp(&self) -> u32 {
        self.stamp
    }

    /// True when the row holds no entry.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Sum of all weight ever offered to the row, admitted or not: the normalizer.
    pub fn total(&self) -> f32 {
        self.total
    }

    /// Entries by guaranteed weight, heaviest first (for display).
    pub fn top(&self, n: usize) -> Vec<Entry> {
        let mut v: Vec<Entry> = self.entries().collect();
        v.sort_by(|a, b| b.val.guaranteed().total_cmp(&a.val.guaranteed()));
        v.truncate(n);
        v
    }

    pub(super) fn scale(&mut self, factor: f32) {
        self.total *= factor;
        for v in &mut self.vals {
            v.count *= factor;
            v.error *= factor;
        }
        // Rounding may make distinct weights equal and so change which one is first.
        self.min = NO_MIN;
    }

    /// Drops entries beyond `max` (lightest first), after the bound was lowered.
    pub(super) fn shrink(&mut self, max: usize) {
        if self.len() > max {
            let mut keep: Vec<Entry> = self.entries().collect();
            keep.sort_by(|a, b| b.val.count.total_cmp(&a.val.count));
            keep.truncate(max);
            // Rebuilt at its new length, so the memory of the dropped entries goes back.
            *self = Row::from_parts(keep, self.total, self.stamp);
        }
    }

    /// Rebuilds a row from persisted parts.
    pub fn from_parts(entries: Vec<Entry>, total: f32, stamp: u32) -> Self {
        Row {
            slots: entries.iter().map(|e| e.item.slot).collect(),
            vals: entries.iter().map(|e| e.val).collect(),
            total,
            min: NO_MIN,
            stamp,
        }
    }

    /// Renumbers the entries by `map` (old slot to new, `u32::MAX`: gone), dropping those
    /// whose slot is gone (see [`crate::Catalog::compact`]). Entries keep their order, so
    /// the lightest is still the first lightest unless one was dropped.
    pub(super) fn remap(&mut self, map: &[u32]) {
        let mut kept = 0;
        for i in 0..self.slots.len() {
            let new = map.get(self.slots[i] as usize).copied().unwrap_or(u32::MAX);
            if new != u32::MAX {
                self.slots[kept] = new;
                self.vals[kept] = self.vals[i];
                kept += 1;
            }
        }
        if kept < self.slots.len() {
            self.slots.truncate(kept);
            self.vals.truncate(kept);
            self.min = NO_MIN;
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4 + self.vals.capacity() * std::mem::size_of::<Val>()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    use crate::catalog::Catalog;

    /// `n` distinct items of a fresh catalog.
    pub(in crate::learn) fn refs(n: usize) -> Vec<ItemRef> {
        let mut c = Catalog::default();
        (0..n)
            .map(|i| c.intern(&format!("I{i}"), 1000).unwrap().0)
            .collect()
    }

    fn weight(row: &Row, r: ItemRef) -> Option<Val> {
        row.entries().find(|e| e.item == r).map(|e| e.val)
    }

    #[test]
    fn row_accumulates_and_keeps_heavy_hitters_within_bound() {
        let r = refs(40);
        let mut row = Row::default();
        for _ in 0..50 {
            row.add(r[1], 1.0, 4, 0.0);
        }
        for _ in 0..30 {
            row.add(r[2], 1.0, 4, 0.0);
        }
        for &item in &r[3..40] {
            row.add(item, 1.0, 4, 0.0);
        }
        assert_eq!(row.len(), 4);
        assert_eq!(row.total(), 117.0);
        let top = row.top(2);
        assert_eq!((top[0].item, top[0].val.count), (r[1], 50.0));
        assert_eq!(top[1].item, r[2]);
    }

    #[test]
    fn a_newcomer_inherits_the_lightest_weight_as_error() {
        let r = refs(5);
        let mut row = Row::default();
        row.add(r[1], 10.0, 2, 0.0);
        row.add(r[2], 1.0, 2, 0.0);
        row.add(r[3], 1.0, 2, 0.0);
        let v = weight(&row, r[3]).unwrap();
        assert_eq!((v.count, v.error, v.guaranteed()), (2.0, 1.0, 1.0));
        assert!(weight(&row, r[2]).is_none());
    }

    #[test]
    fn admission_keeps_light_newcomers_out_of_a_full_row() {
        let r = refs(5);
        let mut row = Row::default();
        row.add(r[1], 10.0, 2, 0.5);
        row.add(r[2], 4.0, 2, 0.5);
        row.add(r[3], 1.0, 2, 0.5); // 1 < 0.5 × 4: refused, but counted in the total
        assert!(weight(&row, r[3]).is_none());
        assert_eq!(row.total(), 15.0);
        row.add(r[3], 2.0, 2, 0.5); // 2 >= 0.5 × 4: admitted
        assert_eq!(weight(&row, r[3]).unwrap().count, 6.0);
    }

    #[test]
    fn a_recycled_slot_starts_a_fresh_entry() {
        let mut c = Catalog::default();
        let a = c.intern("A", 1000).unwrap().0;
        let b = c.intern("B", 1000).unwrap().0;
        let mut row = Row::default();
        row.add(b, 5.0, 8, 0.0);
        c.evict(b.slot);
        let b2 = c.intern("B2", 1000).unwrap().0;
        assert_eq!(b2.slot, b.slot);
        row.add(b2, 1.0, 8, 0.0);
        assert_eq!(weight(&row, b2).unwrap().count, 1.0);
        assert!(weight(&row, b).is_none());
        let _ = a;
    }

    /// The plain definition the row must match: a scan for the item, and a scan for the
    /// first entry with the smallest count.
    #[derive(Default)]
    struct Naive {
        cells: Vec<(ItemRef, f32, f32)>,
        total: f32,
    }

    impl Naive {
        fn add(&mut self, item: ItemRef, w: f32, max: usize, admission: f32) {
            self.total += w;
            if let Some(c) = self.cells.iter_mut().find(|c| c.0.slot == item.slot) {
                *c = if c.0.gen == item.gen {
                    (item, c.1 + w, c.2)
                } else {
                    (item, w, 0.0)
                };
            } else if self.cells.len() < max {
                self.cells.push((item, w, 0.0));
            } else {
                let mut m = 0;
                for (i, c) in self.cells.iter().enumerate() {
                    if c.1 < self.cells[m].1 {
                        m = i;
                    }
                }
                let (count, error) = (self.cells[m].1, self.cells[m].2);
                if w >= admission * (count - error) {
                    self.cells[m] = (item, count + w, count);
                }
            }
        }
    }

    #[test]
    fn the_row_matches_a_plain_scan() {
        for (max, span) in [(4, 9), (8, 40), (128, 400), (300, 5000)] {
            let mut row = Row::default();
            let mut naive = Naive::default();
            let mut x: u64 = max as u64;
            for n in 0..40_000 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Skewed slots, a few recycled generations, integer weights (ties happen).
                let r = (x >> 33) % span;
                let slot = (r * r / span) as u32;
                let gen = u32::from((x >> 20).is_multiple_of(50));
                let w = 1.0 + ((x >> 8) % 4) as f32;
                row.add(ItemRef { slot, gen }, w, max, 0.25);
                naive.add(ItemRef { slot, gen }, w, max, 0.25);
                if n % 9_999 == 0 {
                    row.scale(0.5);
                    for c in &mut naive.cells {
                        (c.1, c.2) = (c.1 * 0.5, c.2 * 0.5);
                    }
                    naive.total *= 0.5;
                }
            }
            let got: Vec<_> = row
                .entries()
                .map(|e| (e.item, e.val.count, e.val.error))
                .collect();
            assert_eq!(got, naive.cells, "max {max}");
            assert_eq!(row.total(), naive.total);
            for &(item, count, _) in &naive.cells {
                assert_eq!(
                    find(&row.slots, item.slot).map(|i| row.vals[i].count),
                    Some(count)
                );
            }
            assert_eq!(find(&row.slots, u32::MAX), None);
        }
    }
    #[test]
    fn find_locates_items_in_and_past_full_chunks() {
        let hay: Vec<u32> = (0..21).map(|i| i * 3).collect();
        for (i, &x) in hay.iter().enumerate() {
            assert_eq!(find(&hay, x), Some(i));
        }
        assert_eq!(find(&hay, 1), None);
    }
}
