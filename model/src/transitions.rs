//! Bounded successor rows: for each item, the items that followed it and how strongly.
//!
//! A row keeps at most `successors_max` entries with the Space-Saving rule (Metwally et al.,
//! 2005): a new successor arriving at a full row replaces the lightest entry and inherits its
//! weight. Heavy successors are therefore never lost, the row's memory is fixed, and the
//! error on any weight is at most the lightest entry's. Rows are tiny arrays scanned linearly,
//! which at 64 entries beats any hash map.

use crate::catalog::ItemRef;

/// One successor and its (forward-decayed) weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The successor item.
    pub item: ItemRef,
    /// Accumulated weight.
    pub weight: f32,
}

/// The successors of one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    entries: Vec<Entry>,
    total: f32,
}

impl Row {
    /// Adds `w` to the successor `item`, keeping at most `max` entries. The scan compares
    /// references only; an evicted item's entry stops growing, sinks to the minimum and is
    /// the first replaced (scoring skips it meanwhile).
    pub fn add(&mut self, item: ItemRef, w: f32, max: usize) {
        self.total += w;
        let mut victim = 0;
        let mut victim_w = f32::INFINITY;
        for (i, e) in self.entries.iter_mut().enumerate() {
            if e.item == item {
                e.weight += w;
                return;
            }
            if e.weight < victim_w {
                victim_w = e.weight;
                victim = i;
            }
        }
        if self.entries.len() < max {
            self.entries.push(Entry { item, weight: w });
        } else if let Some(e) = self.entries.get_mut(victim) {
            *e = Entry {
                item,
                weight: victim_w + w,
            };
        }
    }

    /// The entries, in no particular order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Sum of all weight ever added (after rescales): the row's normalizer.
    pub fn total(&self) -> f32 {
        self.total
    }

    /// Entries sorted by weight, heaviest first (for display).
    pub fn top(&self, n: usize) -> Vec<Entry> {
        let mut v = self.entries.clone();
        v.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        v.truncate(n);
        v
    }

    fn scale(&mut self, factor: f32) {
        self.total *= factor;
        for e in &mut self.entries {
            e.weight *= factor;
        }
    }

    /// Drops entries beyond `max` (lightest first), after the bound was lowered.
    fn shrink(&mut self, max: usize) {
        if self.entries.len() > max {
            self.entries.sort_by(|a, b| b.weight.total_cmp(&a.weight));
            self.entries.truncate(max);
        }
        self.entries.shrink_to_fit();
    }

    /// Rebuilds a row from persisted parts.
    pub fn from_parts(entries: Vec<Entry>, total: f32) -> Self {
        Row { entries, total }
    }
}

/// Rows for every catalog slot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transitions {
    rows: Vec<Row>,
}

impl Transitions {
    /// The row of `from`, if it has one.
    pub fn row(&self, from: ItemRef) -> Option<&Row> {
        self.rows.get(from.slot as usize)
    }

    /// The row of `from`, created if needed.
    pub fn row_mut(&mut self, from: ItemRef) -> &mut Row {
        let i = from.slot as usize;
        if self.rows.len() <= i {
            self.rows.resize_with(i + 1, Row::default);
        }
        &mut self.rows[i]
    }

    /// Forgets the row of an evicted slot.
    pub fn clear_slot(&mut self, slot: u32) {
        if let Some(r) = self.rows.get_mut(slot as usize) {
            *r = Row::default();
        }
    }

    /// Multiplies every weight by `factor` (a decay rescale).
    pub fn scale(&mut self, factor: f32) {
        self.rows.iter_mut().for_each(|r| r.scale(factor));
    }

    /// Applies a lowered row bound to every row.
    pub fn shrink(&mut self, max: usize) {
        self.rows.iter_mut().for_each(|r| r.shrink(max));
    }

    /// Number of (item, successor) pairs stored.
    pub fn len(&self) -> usize {
        self.rows.iter().map(|r| r.entries.len()).sum()
    }

    /// True when no transition is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows by slot, for persistence.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Rebuilds the table from persisted rows.
    pub fn from_rows(rows: Vec<Row>) -> Self {
        Transitions { rows }
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<Row>()
            + self
                .rows
                .iter()
                .map(|r| r.entries.capacity() * std::mem::size_of::<Entry>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::catalog::Catalog;

    fn refs(n: usize) -> Vec<ItemRef> {
        let mut c = Catalog::default();
        (0..n)
            .map(|i| c.intern(&format!("I{i}"), 1000).unwrap().0)
            .collect()
    }

    #[test]
    fn row_accumulates_and_keeps_heavy_hitters_within_bound() {
        let r = refs(20);
        let mut row = Row::default();
        for _ in 0..50 {
            row.add(r[1], 1.0, 4);
        }
        for _ in 0..30 {
            row.add(r[2], 1.0, 4);
        }
        for &item in &r[3..20] {
            row.add(item, 1.0, 4);
        }
        assert_eq!(row.entries().len(), 4);
        assert_eq!(row.total(), 97.0);
        let top = row.top(2);
        assert_eq!(top[0].item, r[1]);
        assert_eq!(top[0].weight, 50.0);
        assert_eq!(top[1].item, r[2]);
    }

    #[test]
    fn a_full_row_replaces_its_lightest_entry_which_passes_on_its_weight() {
        let r = refs(5);
        let mut row = Row::default();
        row.add(r[1], 10.0, 2);
        row.add(r[2], 1.0, 2);
        row.add(r[3], 1.0, 2);
        let e3 = row.entries().iter().find(|e| e.item == r[3]).unwrap();
        assert_eq!(e3.weight, 2.0, "Space-Saving: inherits the evicted minimum");
        assert!(row.entries().iter().all(|e| e.item != r[2]));
    }
}
